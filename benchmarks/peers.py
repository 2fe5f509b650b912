"""memgen's exact kernels beside the ways the field computes the same things, measured in one process.

    python -m benchmarks.peers [--size full|cifar|issue|small] [--device cpu|cuda] [--precision fp32|tf32|bf16]
                               [--repeats 3] [--load 1] [--no-memory] [--out bench-out/peers.json]

Two tasks, each at one shape, every method timed ``--repeats`` times *interleaved*, in a new (seeded)
random order each round, so that a drift in the machine's load, and what one method leaves behind for
the next, hit all alike, and reported by its median. The naive broadcast is timed after those rounds:
freeing its gigabytes of temporaries sets the kernel to work seconds later (on a virtual machine it
hands the free pages back to the host), which took CPU time from whichever method ran then (measured:
nearest-two 0.93-1.04 s in a call 4 s after a naive one, while 576 MiB were reported, against
0.84-0.88 s 0-2 s after it).

* ``dstar``: the empirical denoiser ``D*(x, sigma)`` of m queries over n training points in d
  dimensions -- memgen's streaming kernel; memgen's posterior (``posterior(x, sigma, topk=8)``: the
  8 largest weights, with the entropy and the normalizer, timed against the same two products); the ``torch.cdist`` way (all ``[m, n]`` distances, softmax,
  product); one ``addmm`` + softmax over all pairs; the naive ``[b, n, d]`` broadcast (timed on a slice
  of the queries, scaled to m); the matmul limit (``torch.mm`` of the two products D* must do,
  ``[m, d] x [d, n]`` and ``[m, n] x [n, d]``).
* ``nearest``: the two nearest training points of every query -- memgen's ``nearest_two``; cdist +
  top-2; addmm + top-2; faiss ``IndexFlatL2`` (exact, when faiss is installed; same threads); the naive
  broadcast (slice); the matmul limit (``[m, d] x [d, n]``).

Errors are against a float64 computation of the same quantity: the largest ``|D - D_64|`` for
``dstar`` (of the top weights for the posterior), and the fraction of queries whose neighbour pair
differs from float64's for ``nearest``.
``--size issue`` is the issue's faiss comparison alone: nearest-two at (10,000 x 50,000 x 3072) for
memgen, faiss and the matmul limit, each called once after a warm-up at a small size; a float64
brute force there would cost twice the whole run, so each pair set is compared with memgen's and
every differing query is settled by the float64 distances of both pairs.

``--load N`` measures everything a second time beside N processes that each keep one core busy
(a plain Python spin loop, started after the quiet measurement and killed before the end), and
reports both. faiss-cpu's wheels bundle an OpenBLAS that may not know a recent CPU and fall back to
generic kernels (``Core: Prescott`` under ``OPENBLAS_VERBOSE=2``); unless ``OPENBLAS_CORETYPE`` is
set, it is set before faiss is imported to the newest kernel family the CPU's flags allow
(``SkylakeX`` with AVX-512, ``Haswell`` with AVX2), and the table says which.
Peak memory is measured per method in a fresh subprocess (Linux peak-RSS reset, malloc returning
large blocks at once): the growth beyond the inputs. Every table states the load average, since the
machine may be shared. Results go to ``--out`` (default ``bench-out/peers.json``, not tracked).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import torch

SHAPES = {
    "full": {"dstar": (512, 20_000, 3072), "nearest": (2_000, 20_000, 3072)},
    "cifar": {"dstar": (512, 50_000, 3072), "nearest": (10_000, 50_000, 3072)},
    "issue": {"nearest": (10_000, 50_000, 3072)},
    "small": {"dstar": (64, 1_000, 48), "nearest": (64, 1_000, 48)},
}
ISSUE_METHODS = ("memgen", "faiss_flat", "matmul_limit")     # --size issue: the peers of the issue's claim
SIGMA = 20.0          # D* at a sigma where many points share the weight (the whole softmax matters)
POSTERIOR_TOPK = 8    # weights returned by the posterior method of ``dstar``
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
    """``name -> fn()`` returning ``D*`` ``[m, d]`` (the naive one on a slice: ``(fn, fraction)``), or for
    ``memgen_posterior`` the top weights ``[m, POSTERIOR_TOPK]``."""
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

    return {"memgen": lambda: model(x, sigma),
            "memgen_posterior": lambda: model.posterior(x, sigma, topk=POSTERIOR_TOPK).weights, "cdist": cdist_way, "addmm_softmax": addmm_way,
            "naive": (naive, NAIVE_ROWS / x.shape[0]), "matmul_limit": matmul_limit}


def openblas_coretype() -> str:
    """``OPENBLAS_CORETYPE`` for faiss's bundled OpenBLAS: as set, else from the CPU's flags (see the module doc)."""
    if "OPENBLAS_CORETYPE" not in os.environ:
        try:
            with open("/proc/cpuinfo") as f:
                flags = next((line.split() for line in f if line.startswith("flags")), [])
        except OSError:
            flags = []
        core = "SkylakeX" if "avx512f" in flags else "Haswell" if "avx2" in flags else ""
        if core:
            os.environ["OPENBLAS_CORETYPE"] = core
    return os.environ.get("OPENBLAS_CORETYPE", "")


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
    openblas_coretype()
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


def settled_against(got: torch.Tensor, ref: torch.Tensor, x, y) -> dict:
    """Queries whose pair ``got`` differs from ``ref`` (as sets), and among them how many have the
    smaller sum of float64 squared distances in ``got``, in ``ref``, or tie (both ``[m, 2]`` indices)."""
    differ = (got.sort(1).values != ref.sort(1).values).any(1).nonzero().reshape(-1)
    out = {"differing": int(differ.numel()), "nearer_here": 0, "nearer_in_reference": 0, "tied": 0}
    for b in differ.tolist():
        sums = [float((x[b].double() - y[p.long()].double()).square().sum()) for p in (got[b], ref[b])]
        key = "tied" if sums[0] == sums[1] else "nearer_here" if sums[0] < sums[1] else "nearer_in_reference"
        out[key] += 1
    return out


def errors(task: str, methods: dict, x, y, reference: str | None = None, results: dict | None = None) -> dict:
    """Error of each method's result against float64 (see the module doc); with ``reference`` (a
    method's name), the nearest pairs are compared with that method's instead (:func:`settled_against`),
    taken from ``results`` (each method's output of its last timed call)."""
    if reference is not None:
        return {name: settled_against(got, results[reference], x, y) for name, got in results.items()
                if name not in ("matmul_limit", reference)}
    x64, y64 = x.double(), y.double()
    if task == "dstar":
        from toymodels import EmpiricalDenoiser
        model64 = EmpiricalDenoiser(y64, kernel="torch")
        ref = model64(x64, SIGMA)
        ref_posterior = model64.posterior(x64, SIGMA, topk=POSTERIOR_TOPK).weights
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
            want = ref_posterior if name == "memgen_posterior" else ref
            out[name] = float((got.double() - want[:rows]).abs().max())
        else:
            same = (got.sort(1).values.to(ref.device) == ref[:rows].sort(1).values).all(1)
            out[name] = 1.0 - float(same.double().mean())
    return out


def interleaved(methods: dict, repeats: int, device: str, warmup: dict | None = None,
                results: dict | None = None, seed: int = 0) -> dict:
    """Median seconds of each method over ``repeats`` rounds, after one warm-up call of each (of
    ``warmup``'s methods of the same names when given: the same code on smaller data). Each round calls
    the full-size methods once each in a random order (``seed``); the sliced ones (``(fn, fraction)``:
    the naive broadcast) run after all rounds (see the module doc). Each method's last output goes into
    ``results`` when given."""
    times = {name: [] for name in methods}
    calls = {name: (fn if isinstance(fn, tuple) else (fn, 1.0)) for name, fn in methods.items()}
    for name, (fn, _) in calls.items():
        w = (warmup or {}).get(name, fn)
        (w[0] if isinstance(w, tuple) else w)()
    rng = random.Random(seed)
    whole = [name for name, (_, frac) in calls.items() if frac == 1.0]
    rounds = [rng.sample(whole, len(whole)) for _ in range(repeats)]
    rounds += [[name for name in calls if name not in whole]] * repeats
    for order in rounds:
        for name in order:
            fn, frac = calls[name]
            sync(device)
            t0 = time.perf_counter()
            out = fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) / frac)
            if results is not None and name != "matmul_limit":
                results[name] = out
            del out
    return {name: statistics.median(t) for name, t in times.items()}


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise OSError(field)


def peak_memory(task: str, method: str, m: int, n: int, d: int) -> float | None:
    """Peak RSS growth (MiB) of one call of ``method``, in this process (inputs allocated before, and the
    method called once on a few rows first, so that one-time library set-up -- BLAS buffers, numba's
    compiled kernels -- is not counted)."""
    x, y = data(m, n, d, "cpu")
    build = dstar_methods if task == "dstar" else nearest_methods
    small = build(x[:4], y[:64])[method]
    (small[0] if isinstance(small, tuple) else small)()
    entry = build(x, y)[method]
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


SPIN = "import numpy as np\nwhile True:\n    np.sqrt(np.arange(64.0)).sum()\n"


def spinners(count: int) -> list:
    """``count`` processes that each keep one core busy (a plain numpy spin loop) until killed."""
    return [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            for _ in range(count)]


def run(size: str = "full", device: str = "cpu", precision: str = "fp32", repeats: int = 3,
        memory: bool = True) -> dict:
    res = {"size": size, "device": device, "precision": precision, "threads": torch.get_num_threads(),
           "repeats": repeats, "load_average_before": os.getloadavg()}
    for task, (m, n, d) in SHAPES[size].items():
        x, y = data(m, n, d, device)
        build = dstar_methods if task == "dstar" else nearest_methods
        with precision_context(precision, device):
            methods = build(x, y)
            warmup = results = None
            if size == "issue":
                methods = {k: v for k, v in methods.items() if k in ISSUE_METHODS}
                warmup, results = build(x[:64], y[:2048]), {}
            secs = interleaved(methods, repeats, device, warmup, results)
            errs = errors(task, methods, x, y, reference="memgen" if size == "issue" else None, results=results)
            del results
        flops = (4 if task == "dstar" else 2) * m * n * d
        rows = {}
        for name, t in secs.items():
            rows[name] = {"seconds": t, "gflops": flops / t / 1e9, "rate_vs_matmul": secs["matmul_limit"] / t,
                          "error_vs_float64": errs.get(name)}
            if memory and device == "cpu" and size != "issue":
                rows[name]["peak_mib"] = peak_memory_isolated(task, name, m, n, d)
        res[task] = {"m": m, "n": n, "d": d, "methods": rows}
        del x, y, methods
    if "OPENBLAS_CORETYPE" in os.environ:
        res["faiss_openblas_coretype"] = os.environ["OPENBLAS_CORETYPE"]
    res["load_average_after"] = os.getloadavg()
    return res


def run_with_load(load: int, size: str = "full", device: str = "cpu", precision: str = "fp32", repeats: int = 3,
                  memory: bool = True) -> dict:
    """:func:`run` as it is, then (``load > 0``) again beside ``load`` busy processes, under ``"loaded"``."""
    res = run(size, device, precision, repeats, memory)
    if load > 0:
        procs = spinners(load)
        try:
            time.sleep(2.0)                                  # let them reach the scheduler's steady state
            res["loaded"] = {**run(size, device, precision, repeats, memory=False), "busy_processes": load}
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    return res


def table(res: dict) -> str:
    """Markdown tables of a :func:`run` result (and of its ``loaded`` run, if any)."""
    lines = [f"device {res['device']}, {res['precision']}, {res['threads']} threads, medians of {res['repeats']}"
             f" interleaved; load average {res['load_average_before'][0]:.1f} before,"
             f" {res['load_average_after'][0]:.1f} after"
             + (f"; faiss's OpenBLAS as {res['faiss_openblas_coretype']}" if res.get("faiss_openblas_coretype") else "")
             + (f"; beside {res['busy_processes']} busy process(es)" if res.get("busy_processes") else "")]
    for task in ("dstar", "nearest"):
        if task not in res:
            continue
        r = res[task]
        err = "max abs error vs float64" if task == "dstar" else (
            "queries differing from memgen (nearer here / in memgen / tied, float64)" if res["size"] == "issue"
            else "pairs differing from float64")
        lines += ["", f"{task} (m = {r['m']:,}, n = {r['n']:,}, d = {r['d']})", "",
                  f"| method | seconds | GFLOP/s | rate / matmul | peak MiB | {err} |", "|---|---|---|---|---|---|"]
        for name, row in r["methods"].items():
            e = row["error_vs_float64"]
            if isinstance(e, dict):
                e = f"{e['differing']} ({e['nearer_here']} / {e['nearer_in_reference']} / {e['tied']})"
            mem = row.get("peak_mib")
            lines.append(f"| {name} | {row['seconds']:.3f} | {row['gflops']:.1f} | {row['rate_vs_matmul']:.2f} |"
                         f" {'' if mem is None else f'{mem:.0f}'} | {'' if e is None else e if isinstance(e, str) else f'{e:.2g}'} |")
    if "loaded" in res:
        lines += ["", "Loaded:", "", table({**res["loaded"], "size": res["size"]})]
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SHAPES), default="full")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--load", type=int, default=0, help="also measure beside this many busy processes")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--out", default="bench-out/peers.json")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats: expected an integer >= 1")
    if args.load < 0:
        p.error("--load: expected an integer >= 0")
    res = run_with_load(args.load, args.size, args.device, args.precision, args.repeats, not args.no_memory)
    print(table(res))
    from memgen.run_files import atomic_write_json, versions
    atomic_write_json(args.out, {**res, "versions": versions()})
    return res


if __name__ == "__main__":
    main()
