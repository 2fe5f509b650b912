"""The GPU benchmark script runs end to end at a toy size on CPU (so it cannot rot), and its numbers are sane."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_script_small_on_cpu(tmp_path):
    env = {**os.environ, "SIZE": "small", "DEVICE": "cpu", "OUT": str(tmp_path), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}
    subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=900)
    fp32 = json.loads((tmp_path / "peers_fp32.json").read_text())
    d = fp32["dstar"]["methods"]
    assert d["memgen"]["error_vs_float64"] < 1e-5 and d["cdist"]["error_vs_float64"] < 1e-5
    assert fp32["nearest"]["methods"]["memgen"]["error_vs_float64"] == 0
    assert set(d) >= {"memgen", "cdist", "addmm_softmax", "naive", "matmul_limit"}
    bf16 = json.loads((tmp_path / "peers_bf16.json").read_text())
    assert bf16["precision"] == "bf16" and bf16["dstar"]["methods"]["memgen"]["error_vs_float64"] < 0.5
    sampler = json.loads((tmp_path / "sampler.json").read_text())
    assert sampler["gaussian"]["full_passes"] == 35 and sampler["clustered"]["finite"]
    train = json.loads((tmp_path / "train_compile_off.json").read_text())
    assert train["memgen_images_per_s"] > 0 and train["plain_images_per_s"] > 0
    assert "load:" in (tmp_path / "log.txt").read_text()
    cost = json.loads((tmp_path / "paper_cost.json").read_text())
    assert cost["total_steps"] == sum(r["steps"] for r in cost["rows"]) > 0
    assert all(r["hours"] == pytest.approx(r["steps"] / r["steps_per_s"] / 3600) for r in cost["rows"])
