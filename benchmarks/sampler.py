"""Time of an exact sampling trajectory: 18 Heun steps (EDM grid, sigma 80 to 0.002) with ``D*``.

    python -m benchmarks.sampler [--m 1000] [--n 50000] [--d 3072] [--sets gaussian clustered]
                                 [--reference plain|reuse|none] [--reference-queries K] [--repeats R] [--device cpu]
                                 [--out bench-out/sampler.json]

Two training sets of n points in d dimensions (seeded): ``gaussian`` (``0.5 N(0, I)`` clipped to
[-1, 1]) and ``clustered`` (200 such centres, each point a centre plus ``0.2 N(0, I)``, clipped). The
plain sampler calls the float32 denoiser 35 times (two per step, one on the last), each a full pass
over the set; ``sample(..., reuse=True)`` (:mod:`toymodels.empirical._reusing_sampler`) carries each query's logits
once its posterior has collapsed. Both are timed in the same run, alternating (plain first) for ``R``
rounds, and the medians are compared: the machine's speed can drift by a third within minutes. Reported per set:
seconds, speed-up, per call the passes over the training set (``F`` every query a full pass, ``P`` as many
passes as queries, some of them products passes, ``p`` fewer, ``.`` none; ``full``/``light``/``dense``
list the counts), the largest difference of the samples, and two caps: ``cap`` = ``35 / (calls in which
every query's output was a full pass over all points)``, the calls that no reuse can shorten, and
``ideal`` = ``35 / sum over calls of (full + light / 2) / m`` (the speed-up if the reused work cost
nothing: a full pass costs a plain call, a products pass one of its two GEMMs). With ``--reference``
the float64 denoiser also samples the first K queries (``plain``: 35 full passes; ``reuse``: the
reusing sampler, whose float64 samples equal the plain ones to float64 rounding, at a fraction of the
time), and the number of them whose final sample is nearest to a different training point than there
is counted for both float32 samplers (the collapse amplifies rounding, so this is counted rather than
hidden in a tolerance). Each trajectory depends on its own query only, so a subset is exact for it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from compare import nearest_two
from memgen import edm_sigmas, sample
from toymodels import EmpiricalDenoiser

SETS = ("gaussian", "clustered")


def training_set(kind: str, n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return (0.5 * torch.randn(n, d, generator=g)).clamp(-1, 1)
    centres = (0.5 * torch.randn(200, d, generator=g)).clamp(-1, 1)
    return (centres[torch.randint(200, (n,), generator=g)] + 0.2 * torch.randn(n, d, generator=g)).clamp(-1, 1)


def pattern(record: list, m: int) -> str:
    """One character per denoiser call: ``F`` every query took a full pass, ``P`` as many passes as queries,
    some of them products passes, ``p`` fewer, ``.`` none."""
    passes = [r["full"] + r["light"] for r in record]
    return "".join("F" if r["full"] == m else "P" if p >= m else "p" if p else "." for r, p in zip(record, passes))


def timed(fn, device: str):
    t0 = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def run_set(kind: str, m: int, n: int, d: int, device: str, reference: str, k: int, repeats: int = 1) -> dict:
    y = training_set(kind, n, d).to(device)
    model = EmpiricalDenoiser(y, kernel="torch")
    noise = torch.randn(m, d, generator=torch.Generator().manual_seed(1)).to(device)
    sigmas = edm_sigmas(18, 0.002, 80.0)
    calls, record = [], []
    counted = lambda x, s: calls.append(1) or model(x, s)         # noqa: E731 -- counts the passes
    sample(EmpiricalDenoiser(y[:64], kernel="torch"), noise[:2], sigmas, reuse=True)   # compiles the loops
    load = os.getloadavg()
    plain, reuse = [], []
    for _ in range(repeats):                                      # alternated: the machine's speed drifts
        calls.clear()
        record.clear()
        x, t = timed(lambda: sample(counted, noise, sigmas), device)
        plain.append(t)
        xr, t = timed(lambda: sample(model, noise, sigmas, reuse=True, record=record), device)
        reuse.append(t)
    t_plain, t_reuse = statistics.median(plain), statistics.median(reuse)
    spread = sum(r["dense"] == m for r in record)                 # calls that no reuse can shorten
    units = sum(r["full"] + r["light"] / 2 for r in record) / m    # a full pass: two GEMMs; a products pass: one
    res = {"seconds": t_plain, "full_passes": len(calls), "finite": bool(torch.isfinite(x).all()),
           "reuse_seconds": t_reuse, "speedup": t_plain / t_reuse, "pattern": pattern(record, m),
           "rounds": [{"plain": a, "reuse": b, "speedup": a / b} for a, b in zip(plain, reuse)],
           "full": [r["full"] for r in record], "light": [r["light"] for r in record],
           "dense": [r["dense"] for r in record],
           "kept": [r["kept"] for r in record], "dropped": max(r["dropped"] for r in record),
           "cap": len(record) / max(spread, 1), "ideal": len(record) / max(units, 1e-9),
           "max_abs_diff": float((xr.to(x.dtype) - x).abs().max()), "load_average_before": load}
    if reference != "none":
        model64 = EmpiricalDenoiser(y.double(), kernel="torch")
        x64, res["float64_seconds"] = timed(
            lambda: sample(model64, noise[:k].double(), sigmas, reuse=reference == "reuse"), device)
        res["reference"], res["reference_queries"] = reference, k
        near = {key: nearest_two(v[:k], y, dtype=torch.float64, progress=False).indices[:, 0]
                for key, v in (("float64", x64), ("plain", x), ("reuse", xr))}
        res["other_point_plain"] = int((near["plain"] != near["float64"]).sum())
        res["other_point_reuse"] = int((near["reuse"] != near["float64"]).sum())
        res["max_abs_diff_float64"] = {"plain": float((x[:k].double() - x64).abs().max()),
                                       "reuse": float((xr[:k].double() - x64).abs().max())}
    res["load_average_after"] = os.getloadavg()
    return res


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=1000)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--d", type=int, default=3072)
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    p.add_argument("--reference", choices=["plain", "reuse", "none"], default="plain")
    p.add_argument("--reference-queries", type=int, default=None, help="K (default: all m)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of plain then reuse; medians are reported")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="bench-out/sampler.json")
    args = p.parse_args(argv)
    res = {"m": args.m, "n": args.n, "d": args.d, "device": args.device, "threads": torch.get_num_threads()}
    from memgen.run_files import atomic_write_json, versions
    for kind in args.sets:
        k = min(args.m, args.reference_queries or args.m)
        r = res[kind] = run_set(kind, args.m, args.n, args.d, args.device, args.reference, k, args.repeats)
        print(f"{kind}: m={args.m} n={args.n} d={args.d} on {args.device}, load {r['load_average_before'][0]:.1f}"
              f" -> {r['load_average_after'][0]:.1f}: plain {r['seconds']:.1f} s ({r['full_passes']} full passes);"
              f" reuse {r['reuse_seconds']:.1f} s ({r['pattern']}), speed-up {r['speedup']:.2f}x"
              f" (cap {r['cap']:.2f}x, ideal {r['ideal']:.2f}x), max |diff| {r['max_abs_diff']:.1e}", flush=True)
        if len(r["rounds"]) > 1:
            print("  rounds (plain s, reuse s, speed-up): " + ", ".join(
                f"({q['plain']:.1f}, {q['reuse']:.1f}, {q['speedup']:.2f}x)" for q in r["rounds"]), flush=True)
        if "other_point_plain" in r:
            print(f"  float64 {args.reference} on {k} queries {r['float64_seconds']:.1f} s; of them, ending nearest"
                  f" another training point than float64: plain float32 {r['other_point_plain']}, reuse float32"
                  f" {r['other_point_reuse']}; max |diff| to float64: {r['max_abs_diff_float64']}", flush=True)
        atomic_write_json(args.out, {**res, "versions": versions()})
    return res


if __name__ == "__main__":
    main()
