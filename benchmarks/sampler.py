"""Time of an exact sampling trajectory: 18 Heun steps (EDM grid, sigma 80 to 0.002) with ``D*``.

    python -m benchmarks.sampler [--m 1000] [--n 50000] [--d 3072] [--device cpu] [--out bench-out/sampler.json]

Two training sets of n points in d dimensions (seeded): ``gaussian`` (``0.5 N(0, I)`` clipped to
[-1, 1]) and ``clustered`` (200 such centres, each point a centre plus ``0.2 N(0, I)``, clipped). The
sampler calls the denoiser 35 times (two per step, one on the last), each a full pass over the set;
``sample(..., reuse=True)`` (:mod:`toymodels.trajectory`) skips the passes after the collapse. Both are
timed in the same run; reported: seconds, speed-up, which calls were full passes, the largest
difference of the samples, and the cap ``35 / (calls before the first reused one)``.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from memgen import edm_sigmas, sample
from toymodels import EmpiricalDenoiser


def training_set(kind: str, n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return (0.5 * torch.randn(n, d, generator=g)).clamp(-1, 1)
    centres = (0.5 * torch.randn(200, d, generator=g)).clamp(-1, 1)
    return (centres[torch.randint(200, (n,), generator=g)] + 0.2 * torch.randn(n, d, generator=g)).clamp(-1, 1)


def run(m: int, n: int, d: int, device: str) -> dict:
    res = {"m": m, "n": n, "d": d, "device": device, "threads": torch.get_num_threads(),
           "load_average_before": os.getloadavg()}
    for kind in ("gaussian", "clustered"):
        y = training_set(kind, n, d).to(device)
        model = EmpiricalDenoiser(y, kernel="torch")
        noise = torch.randn(m, d, generator=torch.Generator().manual_seed(1)).to(device)
        calls, record = [], []
        counted = lambda x, s: calls.append(1) or model(x, s)         # noqa: E731 -- counts the passes
        sigmas = edm_sigmas(18, 0.002, 80.0)
        t0 = time.perf_counter()
        x = sample(counted, noise, sigmas)
        if device == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        xr = sample(model, noise, sigmas, reuse=True, record=record)
        if device == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        full = [r["full"] for r in record]
        first_reuse = full.index(False) if False in full else len(full)
        res[kind] = {"seconds": t1 - t0, "full_passes": len(calls), "finite": bool(torch.isfinite(x).all()),
                     "reuse_seconds": t2 - t1, "speedup": (t1 - t0) / (t2 - t1), "reuse_full": full,
                     "reuse_full_passes": sum(full), "cap": len(full) / max(1, first_reuse),
                     "max_abs_diff": float((xr.to(x.dtype) - x).abs().max())}
    res["load_average_after"] = os.getloadavg()
    return res


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=1000)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--d", type=int, default=3072)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="bench-out/sampler.json")
    args = p.parse_args(argv)
    res = run(args.m, args.n, args.d, args.device)
    for kind in ("gaussian", "clustered"):
        r = res[kind]
        print(f"{kind}: m={args.m} n={args.n} d={args.d} on {args.device}: {r['seconds']:.2f} s,"
              f" {r['full_passes']} full passes; reuse: {r['reuse_seconds']:.2f} s, {r['reuse_full_passes']} full"
              f" passes ({''.join('F' if f else '.' for f in r['reuse_full'])}), speed-up {r['speedup']:.2f}x"
              f" (cap {r['cap']:.2f}x), max |diff| {r['max_abs_diff']:.1e}")
    from memgen.runs import atomic_write_json, versions
    atomic_write_json(args.out, {**res, "versions": versions()})
    return res


if __name__ == "__main__":
    main()
