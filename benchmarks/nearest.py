"""Benchmark: the exact nearest-two search (:func:`compare.neighbours.nearest_two`) against GEMM.

(Beside faiss and the other peers, at the issue's size: ``python -m benchmarks.peers --size issue``.)

Work: ``2 m n d`` flops for the distance products of m queries against n training points in d
dimensions. Reported, all measured in this one run on this machine:

* ``rate_vs_gemm`` (wall time) and ``cpu_rate_vs_gemm`` (process CPU time): the search's flop rate
  over the rate of bare ``torch.addmm`` on exactly the blocks the search computes (same query-block
  and chunk shapes, same dtype), the ceiling it can reach (both timed ``--repeats`` times,
  interleaved, best of each, since the machine may be shared);
* ``rate_vs_big_gemm``: against one large square-ish GEMM (the machine's best GEMM rate);
* ``speedup_vs_naive``: against the naive broadcast ``((q[:, None] - y[None]) ** 2).sum(-1)`` + top-2
  (timed on a slice, rate extrapolated);
* ``peak_rss_growth_mb``: growth of the process's peak resident memory during the first search (the
  data are allocated before; the search copies nothing of the training set, its temporaries are
  bounded by the memory budget).

Default: m = 10,000, n = 20,000, d = 3072, float32. ``--full`` also times the CIFAR-10-sized case
(10,000 x 50,000) once. Run: ``python -m benchmarks.nearest [--out result.json] [--full]``.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from compare.neighbours import nearest_two, search_shape
from memgen.pairwise import DEFAULT_BUDGET
from memgen.run_files import atomic_write_json, versions


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(m: int, n: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, d, generator=g) * 2 - 1, torch.rand(n, d, generator=g) * 2 - 1


def _timed(fn):
    """``(wall seconds, process CPU seconds)`` of ``fn()``; CPU time is what this process got, so it is
    less sensitive than wall time to other processes loading a shared machine."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def gemm_on_search_blocks(m: int, n: int, d: int, budget: int = DEFAULT_BUDGET):
    """Bare ``torch.mm`` over the query blocks and training chunks that ``nearest_two`` uses (rows read
    in place, as for data centred near the origin): a closure."""
    block, c, _ = search_shape(m, n, d, torch.float32, budget, centred=False)
    q, y = _data(block, n, d, 1)
    out = torch.empty(block * c)

    def work():
        for b0 in range(0, m, block):
            rows = min(block, m - b0)
            for j0 in range(0, n, c):
                j1 = min(j0 + c, n)
                torch.mm(q[:rows], y[j0:j1].T, out=out[:rows * (j1 - j0)].view(rows, j1 - j0))
    return work


def big_gemm_rate(size: int = 4096, d: int = 3072) -> float:
    a, b = torch.randn(size, d), torch.randn(d, size)
    torch.mm(a, b)
    t0 = time.perf_counter()
    torch.mm(a, b)
    return 2 * size * size * d / (time.perf_counter() - t0)


def naive_rate(m: int = 40, n: int = 2000, d: int = 3072) -> float:
    q, y = _data(m, n, d, 2)
    t0 = time.perf_counter()
    for b in range(0, m, 10):
        ((q[b:b + 10, None, :] - y[None]) ** 2).sum(-1).topk(2, dim=1, largest=False)
    return 2 * m * n * d / (time.perf_counter() - t0)


def run(m: int = 10_000, n: int = 20_000, d: int = 3072, full: bool = False, repeats: int = 2) -> dict:
    q, y = _data(m, n, d, 0)
    rss0 = _peak_rss_mb()
    search = [_timed(lambda: nearest_two(q, y, progress=False))]
    rss_growth = _peak_rss_mb() - rss0
    gemm = gemm_on_search_blocks(m, n, d)
    bare = [_timed(gemm)]
    for _ in range(max(1, repeats) - 1):   # interleaved, best of each: the machine is shared and its load drifts
        search.append(_timed(lambda: nearest_two(q, y, progress=False)))
        bare.append(_timed(gemm))
    t_search, t_gemm = min(t[0] for t in search), min(t[0] for t in bare)
    cpu_search, cpu_gemm = min(t[1] for t in search), min(t[1] for t in bare)
    flops = 2 * m * n * d
    result = {
        "m": m, "n": n, "d": d, "dtype": "float32", "threads": torch.get_num_threads(), "repeats": repeats,
        "search_seconds": t_search, "search_gflops": flops / t_search / 1e9,
        "gemm_seconds_same_blocks": t_gemm, "gemm_gflops_same_blocks": flops / t_gemm / 1e9,
        "rate_vs_gemm": t_gemm / t_search,
        "cpu_seconds_search": cpu_search, "cpu_seconds_gemm": cpu_gemm, "cpu_rate_vs_gemm": cpu_gemm / cpu_search,
        "big_gemm_gflops": big_gemm_rate(d=d) / 1e9,
        "naive_gflops": naive_rate(d=d) / 1e9,
        "peak_rss_growth_mb": rss_growth, "budget_mb": DEFAULT_BUDGET / 2 ** 20,
        "versions": versions(),
    }
    result["rate_vs_big_gemm"] = result["search_gflops"] / result["big_gemm_gflops"]
    result["speedup_vs_naive"] = result["search_gflops"] / result["naive_gflops"]
    if full:
        del q, y
        q, y = _data(10_000, 50_000, d, 3)
        result["full_10k_x_50k_seconds"], result["full_10k_x_50k_cpu_seconds"] = _timed(
            lambda: nearest_two(q, y, progress=True))
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=10_000)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--d", type=int, default=3072)
    p.add_argument("--repeats", type=int, default=2, help="interleaved repetitions (best time of each kept)")
    p.add_argument("--full", action="store_true", help="also time the 10,000 x 50,000 case once")
    p.add_argument("--out", help="write the result as JSON here")
    args = p.parse_args(argv)
    r = run(args.m, args.n, args.d, args.full, args.repeats)
    print(f"nearest_two  m={r['m']} n={r['n']} d={r['d']} float32, {r['threads']} threads")
    print(f"  search:                 {r['search_seconds']:8.2f} s  {r['search_gflops']:7.1f} GFLOP/s")
    print(f"  mm on same blocks:      {r['gemm_seconds_same_blocks']:8.2f} s"
          f"  {r['gemm_gflops_same_blocks']:7.1f} GFLOP/s")
    print(f"  rate vs same-run GEMM:  {r['rate_vs_gemm']:8.2f}   (target >= 0.9; wall time)")
    print(f"  same, by CPU time:      {r['cpu_rate_vs_gemm']:8.2f}"
          f"   ({r['cpu_seconds_search']:.1f} vs {r['cpu_seconds_gemm']:.1f} CPU s)")
    print(f"  rate vs big GEMM:       {r['rate_vs_big_gemm']:8.2f}   ({r['big_gemm_gflops']:.1f} GFLOP/s)")
    print(f"  speed-up vs naive:      {r['speedup_vs_naive']:8.1f}x  ({r['naive_gflops']:.2f} GFLOP/s)")
    print(f"  peak RSS growth:        {r['peak_rss_growth_mb']:8.0f} MB (budget {r['budget_mb']:.0f} MB per block)")
    if "full_10k_x_50k_seconds" in r:
        print(f"  full 10,000 x 50,000:   {r['full_10k_x_50k_seconds']:8.1f} s"
              f" ({r['full_10k_x_50k_cpu_seconds']:.1f} CPU s)")
    if args.out:
        atomic_write_json(args.out, r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
