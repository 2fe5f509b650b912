"""The claims layer: verdict rules on synthetic inputs, the registry, and the report end to end."""
import json
import math

import numpy as np
import pytest

from compare.records import read_csv
from compare.timescales import fit_tau_mem
from figures.claims import CLAIMS
from figures.claims.report import COLUMNS, run_report
from figures.claims.verdicts import VERDICTS, below, interval_check, verdict


def _slope_verdict(true_slope: float, seed: int = 0) -> str:
    """tau = 50 n^slope with 5% log-normal noise, 3 seeds at 5 sizes: claim 5's rule on the fitted slope."""
    rng = np.random.default_rng(seed)
    n = np.repeat([16.0, 32, 64, 128, 256], 3)
    tau = 50 * n ** true_slope * np.exp(0.05 * rng.standard_normal(n.size))
    fit = fit_tau_mem(n, tau, seed=seed)
    return verdict([interval_check(fit["slope_boot_lo"], fit["slope_boot_hi"], low=0.8, high=1.2)])


def test_known_slopes_give_the_stated_verdicts():
    assert all(_slope_verdict(1.0, s) == "reproduced" for s in range(5))
    assert all(_slope_verdict(2.0, s) == "not reproduced" for s in range(5))
    assert all(_slope_verdict(0.0, s) == "not reproduced" for s in range(5))


def test_interval_checks_and_their_combination():
    assert interval_check(0.9, 1.1, low=0.8, high=1.2, strict=True) == 1.0
    assert interval_check(0.7, 0.9, low=0.8, high=1.2) == 1.0               # overlap suffices
    assert interval_check(0.7, 0.9, low=0.8, high=1.2, strict=True) == 0.5  # straddles: undecided
    assert interval_check(1.3, 2.0, low=0.8, high=1.2, strict=True) == 0.0
    assert interval_check(-0.1, 0.2, low=0.0, high=0.0) == 1.0              # "contains 0"
    assert interval_check(0.1, 0.2, low=0.0, high=0.0) == 0.0
    assert interval_check(math.nan, 1.0, low=0.0) is None
    with pytest.raises(ValueError, match="lo, hi"):
        interval_check(2.0, 1.0)
    assert verdict([1.0, 1.0]) == "reproduced"
    assert verdict([1.0, 0.0]) == verdict([0.5, 0.5]) == verdict([1.0, None]) == "partial"
    assert verdict([0.0, 0.0, None]) == "not reproduced"
    assert verdict([None, None]) == verdict([]) == "not run"
    assert below(0.1, 0.2) == 1.0 and below(0.3, 0.2) == 0.0 and below(math.nan, 0.2) is None


def test_twelve_claims_each_declare_three_scales_and_a_stated_criterion():
    assert sorted(CLAIMS) == list(range(1, 13))
    for number, claim in CLAIMS.items():
        assert set(claim.scales) == {"quick", "cpu", "paper"}
        doc = __import__(claim.run.__module__, fromlist=["_"]).__doc__
        assert f"Claim {number}. Criterion" in doc
    with pytest.raises(ValueError, match="scale"):
        CLAIMS[1].settings("gpu")


def test_report_of_the_analytic_claims_is_written_and_reused(tmp_path):
    rows = run_report(tmp_path, scale="quick", only="1,2", progress=False)
    table = read_csv(tmp_path / "claims.csv")
    assert table.columns() == list(COLUMNS) and [r["claim"] for r in table] == [1, 2]
    assert all(r["verdict"] in VERDICTS and r["error"] is None for r in rows)
    assert rows[0]["verdict"] == "reproduced"          # exp(H) of the optimal denoiser: 1 -> n, exactly known
    text = (tmp_path / "report.md").read_text()
    assert "Claim 1. Criterion (fixed before the run)" in text                # the stated criterion is quoted
    assert "(claim01/claim.png)" in text and (tmp_path / "claim01" / "claim.png").is_file()
    assert json.loads((tmp_path / "record.json").read_text())["scale"] == "quick"
    before = (tmp_path / "claim01" / "outcome.json").stat().st_mtime_ns
    again = run_report(tmp_path, scale="quick", only="1", progress=False)      # finished: reused, not rerun
    assert (tmp_path / "claim01" / "outcome.json").stat().st_mtime_ns == before
    assert again[0]["our_value"] == rows[0]["our_value"]
    stale = json.loads((tmp_path / "claim01" / "outcome.json").read_text())
    stale["settings"]["n_draws"] += 1                            # finished with other settings: run again
    (tmp_path / "claim01" / "outcome.json").write_text(json.dumps(stale))
    run_report(tmp_path, scale="quick", only="1", progress=False)
    assert json.loads((tmp_path / "claim01" / "outcome.json").read_text())["settings"] == CLAIMS[1].settings("quick")
    with pytest.raises(ValueError, match="only"):
        run_report(tmp_path, only="13", progress=False)
    with pytest.raises(ValueError, match="scale"):
        run_report(tmp_path, scale="huge", progress=False)


def test_quick_report_of_all_twelve_claims(tmp_path):
    """The CI check of the whole claims layer: every claim runs at quick scale (about 100 s on 2 cores)."""
    rows = run_report(tmp_path, scale="quick", progress=False)
    table = read_csv(tmp_path / "claims.csv")
    assert [r["claim"] for r in table] == list(range(1, 13))
    assert all(r["verdict"] in VERDICTS for r in table)
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows if r["error"]]
