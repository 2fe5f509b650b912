"""memgen's exact kernels beside the ways the field computes the same things, measured in one process.

    python -m benchmarks.peers [--size full|small] [--device cpu|cuda] [--precision fp32|tf32|bf16]
                               [--repeats 3] [--no-memory] [--out bench-out/peers.json]

Two tasks, each at one shape, every method timed ``--repeats`` times *interleaved* (method A, B, C,
A, B, C, ...: a drift in the machine's load hits all alike) and reported by its median:

* ``dstar``: the empirical denoiser ``D*(x, sigma)`` of m queries over n training points in d
  dimensions -- memgen's streaming kernel; the ``torch.cdist`` way (all ``[m, n]`` distances, softmax,
  product); one ``addmm`` + softmax over all pairs; the naive ``[b, n, d]`` broadcast (timed on a slice
  of the queries, scaled to m); the matmul limit (``torch.mm`` of the two products D* must do,
  ``[m, d] x [d, n]`` and ``[m, n] x [n, d]``).
* ``nearest``: the two nearest training points of every query -- memgen's ``nearest_two``; cdist +
  top-2; addmm + top-2; faiss ``IndexFlatL2`` (exact, when faiss is installed; same threads); the naive
  broadcast (slice); the matmul limit (``[m, d] x [d, n]``).

Errors are against a float64 computation of the same quantity: the largest ``|D - D_64|`` for
``dstar``, and the fraction of queries whose neighbour pair differs from float64's for ``nearest``.
Peak memory is measured per method in a fresh subprocess (Linux peak-RSS reset, malloc returning
large blocks at once): the growth beyond the inputs. Every table states the load average, since the
machine may be shared. Results go to ``--out`` (default ``bench-out/peers.json``, not tracked).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

SHAPES = {
    "full": {"dstar": (512, 20_000, 3072), "nearest": (2_000, 20_000, 3072)},
    "cifar": {"dstar": (512, 50_000, 3072), "nearest": (10_000, 50_000, 3072)},
    "small": {"dstar": (64, 1_000, 48), "nearest": (64, 1_000, 48)},
}
SIGMA = 20.0          # D* at a sigma where many points share the weight (the whole softmax matters)
NAIVE_ROWS = 8        # queries of the naive broadcast slice


def data(m: int, n: int, d: int, device: str, seed: int = 0):
    """Image-like data in [-1, 1]: queries ``[m, d]`` and training points ``[n, d]``, float32."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(m, d, generator=g) * 2 - 1).to(device), (torch.rand(n, d, generator=g) * 2 - 1).to(device)


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def precision_context(precision: str, device: str):
    """Autocast to bf16 on ``bf16``; TF32 matmuls on ``tf32``; plain float32 otherwise."""
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if precision == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return torch.autocast(device_type=device, enabled=False)


def dstar_methods(x, y, sigma: float = SIGMA) -> dict:
    """``name -> fn()`` returning ``D*`` ``[m, d]`` (the naive one on a slice: ``(fn, fraction)``)."""
    from toymodels import EmpiricalDenoiser
    model = EmpiricalDenoiser(y, kernel="torch")
    coef = -0.5 / sigma ** 2
    ysq = y.square().sum(1)
    probs = torch.rand(x.shape[0], y.shape[0], device=x.device, dtype=x.dtype)

    def cdist_way():
        return torch.softmax(torch.cdist(x, y).square_().mul_(coef), 1) @ y

    def addmm_way():
        d2 = torch.addmm(ysq.unsqueeze(0), x, y.T, alpha=-2).add_(x.square().sum(1, keepdim=True))
        return torch.softmax(d2.mul_(coef), 1) @ y

    def naive(rows=NAIVE_ROWS):
        d2 = ((x[:rows, None, :] - y[None]) ** 2).sum(-1)
        return torch.softmax(d2 * coef, 1) @ y

    def matmul_limit():
        return torch.mm(x, y.T), torch.mm(probs, y)

    return {"memgen": lambda: model(x, sigma), "cdist": cdist_way, "addmm_softmax": addmm_way,
            "naive": (naive, NAIVE_ROWS / x.shape[0]), "matmul_limit": matmul_limit}


def nearest_methods(x, y) -> dict:
    """``name -> fn()`` returning the indices ``[m, 2]`` of the two nearest training points."""
    from compare.neighbours import nearest_two
    ysq = y.square().sum(1)
    out = {
        "memgen": lambda: nearest_two(x, y, progress=False).indices,
        "cdist": lambda: torch.cdist(x, y).topk(2, dim=1, largest=False).indices,
        "addmm_top2": lambda: torch.addmm(ysq.unsqueeze(0), x, y.T, alpha=-2).topk(2, dim=1, largest=False).indices,
        "naive": (lambda rows=NAIVE_ROWS: ((x[:rows, None, :] - y[None]) ** 2).sum(-1)
                  .topk(2, dim=1, largest=False).indices, NAIVE_ROWS / x.shape[0]),
        "matmul_limit": lambda: torch.mm(x, y.T),
    }
    try:
        import faiss
    except ImportError:
        return out
    if x.device.type == "cpu":
        index = faiss.IndexFlatL2(y.shape[1])
        index.add(y.numpy())
        faiss.omp_set_num_threads(torch.get_num_threads())
        out["faiss_flat"] = lambda: torch.from_numpy(index.search(x.numpy(), 2)[1])
    return out


def errors(task: str, methods: dict, x, y) -> dict:
    """Error of each method's result against float64 (see the module doc)."""
    x64, y64 = x.double(), y.double()
    if task == "dstar":
        from toymodels import EmpiricalDenoiser
        ref = EmpiricalDenoiser(y64, kernel="torch")(x64, SIGMA)
    else:
        ref = torch.cdist(x64, y64).topk(2, dim=1, largest=False).indices
    out = {}
    for name, fn in methods.items():
        if name == "matmul_limit":
            continue
        fn, frac = fn if isinstance(fn, tuple) else (fn, 1.0)
        got = fn()
        rows = got.shape[0]
        if task == "dstar":
            out[name] = float((got.double() - ref[:rows]).abs().max())
        else:
            same = (got.sort(1).values.to(ref.device) == ref[:rows].sort(1).values).all(1)
            out[name] = 1.0 - float(same.double().mean())
    return out


def interleaved(methods: dict, repeats: int, device: str) -> dict:
    """Median seconds of each method over ``repeats`` interleaved rounds (one warm-up call each first)."""
    times = {name: [] for name in methods}
    calls = {name: (fn if isinstance(fn, tuple) else (fn, 1.0)) for name, fn in methods.items()}
    for fn, _ in calls.values():
        fn()
    for _ in range(repeats):
        for name, (fn, frac) in calls.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) / frac)
    return {name: statistics.median(t) for name, t in times.items()}


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise OSError(field)


def peak_memory(task: str, method: str, m: int, n: int, d: int) -> float | None:
    """Peak RSS growth (MiB) of one call of ``method``, in this process (inputs allocated before)."""
    x, y = data(m, n, d, "cpu")
    built = (dstar_methods if task == "dstar" else nearest_methods)(x, y)
    entry = built[method]
    fn = (lambda: entry[0](max(1, int(round(entry[1] * m))))) if isinstance(entry, tuple) else entry
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _rss("VmRSS:")
        fn()
        return (_rss("VmHWM:") - base) / 2 ** 20
    except OSError:
        return None


def peak_memory_isolated(task: str, method: str, m: int, n: int, d: int) -> float | None:
    """:func:`peak_memory` in a fresh process (so no earlier call's cached blocks hide the growth)."""
    code = (f"import json, torch; torch.set_num_threads({torch.get_num_threads()});"
            " from benchmarks.peers import peak_memory;"
            f" print(json.dumps(peak_memory({task!r}, {method!r}, {m}, {n}, {d})))")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(size: str = "full", device: str = "cpu", precision: str = "fp32", repeats: int = 3,
        memory: bool = True) -> dict:
    res = {"size": size, "device": device, "precision": precision, "threads": torch.get_num_threads(),
           "repeats": repeats, "load_average_before": os.getloadavg()}
    for task, (m, n, d) in SHAPES[size].items():
        x, y = data(m, n, d, device)
        build = dstar_methods if task == "dstar" else nearest_methods
        with precision_context(precision, device):
            methods = build(x, y)
            secs = interleaved(methods, repeats, device)
            errs = errors(task, methods, x, y)
        flops = (4 if task == "dstar" else 2) * m * n * d
        rows = {}
        for name, t in secs.items():
            rows[name] = {"seconds": t, "gflops": flops / t / 1e9, "rate_vs_matmul": secs["matmul_limit"] / t,
                          "error_vs_float64": errs.get(name)}
            if memory and device == "cpu":
                rows[name]["peak_mib"] = peak_memory_isolated(task, name, m, n, d)
        res[task] = {"m": m, "n": n, "d": d, "methods": rows}
        del x, y, methods
    res["load_average_after"] = os.getloadavg()
    return res


def table(res: dict) -> str:
    """Markdown tables of a :func:`run` result."""
    lines = [f"device {res['device']}, {res['precision']}, {res['threads']} threads, medians of {res['repeats']}"
             f" interleaved; load average {res['load_average_before'][0]:.1f} before,"
             f" {res['load_average_after'][0]:.1f} after"]
    for task in ("dstar", "nearest"):
        r = res[task]
        err = "max abs error vs float64" if task == "dstar" else "pairs differing from float64"
        lines += ["", f"{task} (m = {r['m']:,}, n = {r['n']:,}, d = {r['d']})", "",
                  f"| method | seconds | GFLOP/s | rate / matmul | peak MiB | {err} |", "|---|---|---|---|---|---|"]
        for name, row in r["methods"].items():
            e = row["error_vs_float64"]
            mem = row.get("peak_mib")
            lines.append(f"| {name} | {row['seconds']:.3f} | {row['gflops']:.1f} | {row['rate_vs_matmul']:.2f} |"
                         f" {'' if mem is None else f'{mem:.0f}'} | {'' if e is None else f'{e:.2g}'} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SHAPES), default="full")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--out", default="bench-out/peers.json")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats: expected an integer >= 1")
    res = run(args.size, args.device, args.precision, args.repeats, not args.no_memory)
    print(table(res))
    from memgen.runs import atomic_write_json, versions
    atomic_write_json(args.out, {**res, "versions": versions()})
    return res


if __name__ == "__main__":
    main()
