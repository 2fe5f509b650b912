"""Speed and memory of the exact empirical denoiser, as ratios measured in one run.

    python -m benchmarks.empirical [--out bench-out/empirical.json] [--quick] [--only lowdim_grid ...]

1. GEMM-rate ratio: ``D*`` for m queries against n training points in d dimensions costs two matrix
   products, ``4 m n d`` flops; its rate is divided by the rate of ``torch.matmul`` on this machine
   at the matching shapes (``[m, d] @ [d, n]`` then ``[m, n] @ [n, d]``), timed in the same run.
2. Against the naive broadcast implementation (``[B, n, d]`` differences, then softmax) on a shape
   where that still fits in memory.
3. Low dimension (d = 2, float64): the fused numba kernel against the torch streaming kernel, and
   the largest difference of their outputs; then the automatic kernel (pruned or dense) against the
   torch kernel over a log-spaced sigma grid from 1e-3 to 10, interleaved, with both checked against
   a float64 brute force on the first queries.
4. Memory: the peak resident memory added by one call beyond inputs and output (Linux peak-RSS
   reset through /proc/self/clear_refs), against the chunk budget.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from memgen.pairwise import DEFAULT_BUDGET
from memgen.progress import progress_bar
from toymodels import EmpiricalDenoiser


def best_time(fn, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def naive_empirical(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """The textbook way: ``[B, n, d]`` differences, squared distances, softmax, weighted sum."""
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return torch.softmax(-d2 / (2 * sigma ** 2), dim=1) @ y


def gemm_ratio(m: int, n: int, d: int, sigma: float = 20.0) -> dict:
    g = torch.Generator().manual_seed(0)
    y = torch.rand(n, d, generator=g) * 2 - 1
    x = torch.rand(m, d, generator=g) * 2 - 1
    model = EmpiricalDenoiser(y)
    probs = torch.rand(m, n, generator=g)
    t_model = best_time(lambda: model(x, sigma))
    t_gemm = best_time(lambda: (torch.mm(x, y.T), torch.mm(probs, y)))
    flops = 4 * m * n * d
    return {"m": m, "n": n, "d": d, "dtype": "float32", "seconds": t_model,
            "gflops": flops / t_model / 1e9, "matmul_gflops": flops / t_gemm / 1e9, "ratio_to_matmul": t_gemm / t_model}


def naive_ratio(m: int, n: int, d: int, sigma: float = 20.0) -> dict:
    g = torch.Generator().manual_seed(1)
    y = torch.rand(n, d, generator=g) * 2 - 1
    x = torch.rand(m, d, generator=g) * 2 - 1
    model = EmpiricalDenoiser(y)
    t_model = best_time(lambda: model(x, sigma))
    t_naive = best_time(lambda: naive_empirical(x, y, sigma), repeats=1)
    diff = float((model(x, sigma) - naive_empirical(x, y, sigma)).abs().max())
    return {"m": m, "n": n, "d": d, "seconds": t_model, "naive_seconds": t_naive, "speedup": t_naive / t_model,
            "max_abs_diff": diff}


def lowdim_ratio(m: int, n: int, sigma: float = 0.05) -> dict:
    g = torch.Generator().manual_seed(2)
    y = torch.rand(n, 2, generator=g, dtype=torch.float64)
    x = torch.rand(m, 2, generator=g, dtype=torch.float64)
    fused = EmpiricalDenoiser(y, dtype=torch.float64, kernel="numba")
    streamed = EmpiricalDenoiser(y, dtype=torch.float64, kernel="torch")
    t_numba = best_time(lambda: fused(x, sigma), repeats=2)
    t_torch = best_time(lambda: streamed(x, sigma), repeats=1)
    diff = float((fused(x, sigma) - streamed(x, sigma)).abs().max())
    return {"m": m, "n": n, "d": 2, "dtype": "float64", "numba_seconds": t_numba, "torch_seconds": t_torch,
            "speedup": t_torch / t_numba, "max_abs_diff": diff}


REFERENCE_QUERIES = 256
"""Queries of the sigma grid also checked against :func:`brute_force_mean`."""


def brute_force_mean(x: torch.Tensor, y: torch.Tensor, sigma: float, rows: int = 16) -> torch.Tensor:
    """Float64 reference: exact differences ``x - y_j``, softmax of the logits, weighted sum (``rows``
    queries at a time)."""
    out = [torch.softmax(-((xb[:, None] - y[None]) ** 2).sum(-1) / (2 * sigma ** 2), dim=1) @ y
           for xb in x.double().split(rows)]
    return torch.cat(out)


def lowdim_grid(m: int, n: int, sigmas=tuple(float(s) for s in torch.logspace(-3, 1, 9, dtype=torch.float64)),
                threads: int = 2) -> dict:
    """d = 2, float64, over a log-spaced sigma grid: the auto kernel (certified series at large sigma,
    pruning at small sigma, the dense vectorized kernel elsewhere) against the torch streaming kernel,
    interleaved sigma by sigma, both on ``threads`` threads; total times, the largest difference
    relative to the data's scale, and how many queries the series took at each sigma."""
    import numba

    from toymodels.empirical._far_series import series_posterior
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    g = torch.Generator().manual_seed(2)
    y = torch.rand(n, 2, generator=g, dtype=torch.float64)
    x = torch.rand(m, 2, generator=g, dtype=torch.float64)
    auto, streamed = EmpiricalDenoiser(y), EmpiricalDenoiser(y, kernel="torch")
    for s in (sigmas[0], sigmas[-1]):                   # compile, build the tree outside the timing
        auto(x if s == sigmas[-1] else x[:10], s)       # (the series only runs for many queries)
        streamed(x[:10], s)
    scale = float(y.abs().max())
    load_before = os.getloadavg()
    rows = []
    for s in progress_bar(sigmas, desc="sigma grid"):
        t0 = time.perf_counter()
        a = auto(x, s)
        t1 = time.perf_counter()
        b = streamed(x, s)
        t2 = time.perf_counter()
        sig = torch.full((m,), s, dtype=torch.float64).numpy()
        taken = series_posterior(x.numpy(), y.numpy(), auto.center.numpy(), auto.radius, sig)[0]   # untimed
        rows.append({"sigma": s, "auto_seconds": t1 - t0, "torch_seconds": t2 - t1,
                     "max_rel_diff": float((a - b).abs().max()) / scale, "series_queries": int(taken.sum())})
        ref = brute_force_mean(x[:REFERENCE_QUERIES], y, s)
        rows[-1].update({"auto_err": float((a[:REFERENCE_QUERIES] - ref).abs().max()) / scale,
                         "torch_err": float((b[:REFERENCE_QUERIES] - ref).abs().max()) / scale})
    total_a, total_t = sum(r["auto_seconds"] for r in rows), sum(r["torch_seconds"] for r in rows)
    return {"m": m, "n": n, "threads": threads, "rows": rows, "auto_seconds": total_a, "torch_seconds": total_t,
            "speedup": total_t / total_a, "max_rel_diff": max(r["max_rel_diff"] for r in rows),
            "load_average_before": load_before, "load_average_after": os.getloadavg()}


def print_grid(lg: dict) -> None:
    """The per-sigma table of :func:`lowdim_grid` and its totals."""
    print(f"low-d sigma grid, m={lg['m']} n={lg['n']} d=2 float64, {lg['threads']} threads, load average"
          f" {lg['load_average_before'][0]:.1f} before, {lg['load_average_after'][0]:.1f} after")
    for r in lg["rows"]:
        print(f"  sigma {r['sigma']:8.3g}: auto {r['auto_seconds']:8.2f} s  torch {r['torch_seconds']:8.2f} s"
              f"  {r['torch_seconds'] / r['auto_seconds']:6.1f}x  max rel diff {r['max_rel_diff']:.1e}"
              f"  (vs brute force: auto {r['auto_err']:.1e}, torch {r['torch_err']:.1e})"
              f"  series {r['series_queries']}/{lg['m']}")
    print(f"  total: auto {lg['auto_seconds']:.1f} s, torch {lg['torch_seconds']:.1f} s, {lg['speedup']:.2f}x"
          f" (max rel diff {lg['max_rel_diff']:.1e})   [target >= 3x, 1e-12]")


def _rss(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_check(m: int, n: int, d: int, budget: int = DEFAULT_BUDGET) -> dict:
    g = torch.Generator().manual_seed(3)
    model = EmpiricalDenoiser(torch.rand(n, d, generator=g), budget=budget)
    x = torch.rand(m, d, generator=g)
    model(x[:2], 1.0)                                 # warm-up: thread pools, first allocations
    out_bytes = m * d * 4
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                # reset the peak-RSS mark (Linux >= 4.0)
    except OSError:
        return {"budget_bytes": budget, "extra_peak_bytes": None, "note": "peak RSS reset unavailable"}
    base = _rss("VmRSS:")
    model(x, 1.0)
    peak = _rss("VmHWM:")
    extra = peak - base - out_bytes
    return {"m": m, "n": n, "d": d, "budget_bytes": budget, "output_bytes": out_bytes, "extra_peak_bytes": extra,
            "within_budget": extra <= budget}


def memory_check_isolated(m: int, n: int, d: int, budget: int = DEFAULT_BUDGET) -> dict:
    """:func:`memory_check` in a fresh process whose malloc returns every block above 128 KiB to the
    system at once (``MALLOC_MMAP_THRESHOLD_``), so that resident memory tracks live tensors."""
    code = ("import json; from benchmarks.empirical import memory_check; "
            f"print(json.dumps(memory_check({m}, {n}, {d}, {budget})))")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


SECTIONS = ("memory", "gemm", "naive", "lowdim", "lowdim_grid")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--quick", action="store_true", help="smaller shapes (a smoke run, not the stated targets)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="run these sections only")
    p.add_argument("--grid-m", type=int, help="queries of the sigma grid (default 10,000; 200 with --quick)")
    p.add_argument("--threads", type=int, default=2, help="threads of both kernels in the sigma grid")
    args = p.parse_args(argv)
    q = args.quick
    run = {
        "memory": lambda: memory_check_isolated(512, 2_000 if q else 20_000, 3072),
        "gemm": lambda: gemm_ratio(512, 2_000 if q else 20_000, 3072),
        "naive": lambda: naive_ratio(32, 500 if q else 2_000, 3072),
        "lowdim": lambda: lowdim_ratio(1_000 if q else 10_000, 10_000 if q else 100_000),
        "lowdim_grid": lambda: lowdim_grid(args.grid_m or (200 if q else 10_000), 10_000 if q else 100_000,
                                           threads=args.threads),
    }
    res = {"threads": torch.get_num_threads()}
    res.update({k: run[k]() for k in SECTIONS if k in args.only})
    print(f"torch threads: {res['threads']}")
    if "gemm" in res:
        gm = res["gemm"]
        print(f"exact D*, m={gm['m']} n={gm['n']} d={gm['d']} float32: {gm['seconds']:.3f} s, {gm['gflops']:.1f} GFLOP/s"
              f" = {gm['ratio_to_matmul']:.2f} x matmul ({gm['matmul_gflops']:.1f} GFLOP/s)   [target >= 0.7]")
    if "naive" in res:
        nv = res["naive"]
        print(f"vs naive [B, n, d] broadcast, m={nv['m']} n={nv['n']} d={nv['d']}: {nv['speedup']:.0f}x faster"
              f" (max |diff| {nv['max_abs_diff']:.1e})   [target >= 50x]")
    if "lowdim" in res:
        ld = res["lowdim"]
        print(f"low-d numba vs torch, m={ld['m']} n={ld['n']} d=2 float64: {ld['speedup']:.1f}x faster"
              f" (max |diff| {ld['max_abs_diff']:.1e})   [target >= 2x, equal to 1e-10]")
    if "lowdim_grid" in res:
        print_grid(res["lowdim_grid"])
    if "memory" in res:
        mem = res["memory"]
        if mem["extra_peak_bytes"] is None:
            print(f"memory: {mem['note']}")
        else:
            print(f"memory, m={mem['m']} n={mem['n']} d={mem['d']}: extra peak {mem['extra_peak_bytes'] / 2**20:.1f} MiB"
                  f" beyond inputs and output; budget {mem['budget_bytes'] / 2**20:.0f} MiB")
    if args.out:
        from memgen.run_files import atomic_write_json, versions
        atomic_write_json(args.out, {**res, "versions": versions()})
    return res


if __name__ == "__main__":
    main()
