"""``memgen rf-spectrum`` and ``memgen rf-dynamics`` end to end (small sizes): the figure code with the
user's settings."""
import csv
import json

import numpy as np
import pytest

from lab.cli import main


def test_rf_spectrum_command(tmp_path):
    assert main(["rf-spectrum", "--psi-p", "3", "--psi-n", "1", "--d", "40", "--out", str(tmp_path)]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())["custom"]
    assert s["total_mass"] == pytest.approx(1.0, abs=1e-4)
    assert s["delta_mass"] == pytest.approx(1 - 2 / 3, abs=1e-6)
    assert (tmp_path / "rf_spectrum.png").stat().st_size > 0
    ev = np.loadtxt(tmp_path / "eigenvalues_ge_custom.csv", skiprows=1)
    assert ev.size == 120 and np.all(ev >= s["constants"]["s2"] * (1 - 1e-9))  # U_GE >= s_t^2 I


def test_rf_dynamics_command(tmp_path):
    assert main(["rf-dynamics", "--psi-p", "2", "--psi-n", "1,2", "--d", "12", "--matrices", "ge",
                 "--num", "50", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "curves.csv")))
    assert len(rows) == 2 * 51
    first = [r for r in rows if float(r["tau"]) == 0.0]
    assert all(float(r["train"]) == pytest.approx(1.0, abs=1e-12) for r in first)  # A_0 = 0: loss 1
    s = json.loads((tmp_path / "summary.json").read_text())
    assert set(s) == {"1", "2"} and all(v["measured"]["tau_gen"] > 0 for v in s.values())
