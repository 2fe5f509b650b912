"""The claims layer: conditions and verdicts, the two-level interval, controls, the registry, and the report."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compare.bootstrap import bootstrap, mean_interval, weighted_mean
from compare.records import read_csv
from compare.timescales import fit_tau_mem
from lab.claims import CLAIMS
from lab.claims.base import Claim, Control, Outcome, regime
from lab.claims.networks import override_lines, run_config, run_folder
from lab.claims.report import COLUMNS, run_claim, run_report
from lab.claims.verdicts import VERDICTS, Condition, controlled, from_row, verdict
from neural import load_config


def _cond(lo, hi, low=0.8, high=1.2, main=True, **kw):
    return Condition("(x)", "slope about 1", (lo + hi) / 2, lo, hi, low=low, high=high, main=main, **kw)


def test_condition_statuses():
    assert _cond(0.9, 1.1).status == "pass"                          # inside the target
    assert _cond(1.3, 2.0).status == "fail"                          # outside it
    assert _cond(0.7, 0.9).status == "inconclusive"                  # overlap is not enough
    assert _cond(-2.27, 1.73).status == "inconclusive"               # the reviewer's noisy slope no longer passes
    assert _cond(0.9, 1.1, max_width=0.1).status == "inconclusive"   # wider than the question allows
    assert Condition("(x)", "t", math.nan, math.nan, math.nan).status == "not measured"
    assert Condition("(x)", "t", 0.0, 0.0, 0.0, low=0.1).status == "fail"   # both arms measured 0: a failure
    zero = Condition("(z)", "difference below 0", 0.0, 0.0, 0.0, high=0.0)
    assert zero.status == "pass" and zero.target() == "<= 0"                  # a closed region holds its boundary
    strict = Condition("(z)", "difference below 0", 0.0, 0.0, 0.0, high=0.0, strict=True)
    assert strict.status == "fail" and strict.target() == "< 0"               # an open one does not
    assert Condition("(z)", "t", -0.1, -0.2, 0.0, high=0.0, strict=True).status == "inconclusive"   # touches it
    assert Condition("(z)", "t", -0.1, -0.2, -0.01, high=0.0, strict=True).status == "pass"
    assert Condition("(z)", "t", 0.5, 0.0, 1.0, low=0.0, high=1.0, strict=True).target() == "in (0, 1)"
    with pytest.raises(ValueError, match="lo > hi"):
        _cond(2.0, 1.0)
    with pytest.raises(ValueError, match="empty"):
        _cond(0.9, 1.0, low=2, high=1)
    c = _cond(0.9, 1.1)
    assert from_row(json.loads(json.dumps(c.row()))) == c and c.row()["target"] == "in [0.8, 1.2]"


@settings(max_examples=300, deadline=None)
@given(st.floats(-5, 5), st.floats(0, 3), st.floats(0, 3), st.floats(-5, 5), st.floats(0, 4))
def test_a_wider_interval_never_passes_more_easily(centre, half, extra, low, span):
    """Noise cannot help: widening an interval around the same value turns pass or fail into inconclusive at most,
    never fail or inconclusive into pass."""
    narrow = _cond(centre - half, centre + half, low=low, high=low + span)
    wide = _cond(centre - half - extra, centre + half + extra, low=low, high=low + span)
    rank = {"fail": 0, "inconclusive": 1, "pass": 2}
    if wide.status == "pass":
        assert narrow.status == "pass"
    if narrow.status == "fail" and wide.status != "fail":
        assert wide.status == "inconclusive"
    assert not (rank[wide.status] == 2 and rank[narrow.status] < 2)


def test_verdict_words_and_reasons():
    ok, bad, open_ = _cond(0.9, 1.1), _cond(1.3, 2.0), _cond(0.7, 0.9)
    sec = lambda c: Condition(c.name.replace("x", "s"), "secondary", c.value, c.lo, c.hi, c.low, c.high, main=False)
    nan = Condition("(n)", "not measurable", math.nan, math.nan, math.nan)
    assert verdict([ok, sec(ok)])[0] == "reproduced"
    word, reason = verdict([ok, sec(bad)])
    assert word == "partial" and "(s) secondary" in reason                  # names the failed condition
    assert verdict([bad, sec(ok)])[0] == "not reproduced"                    # the main effect failed
    assert verdict([ok, bad])[0] == "not reproduced"
    assert verdict([open_, sec(ok)])[0] == "inconclusive"
    assert verdict([ok, sec(open_)])[0] == "inconclusive"
    assert verdict([ok, nan])[0] == "not run"                                # never "partial" for a missing number
    assert verdict([])[0] == "not run"
    assert controlled("reproduced", "r", negative="reproduced", positive="reproduced")[0] == "not testable here"
    assert controlled("reproduced", "r", negative="not reproduced", positive="reproduced") == ("reproduced", "r")
    word, reason = controlled("not reproduced", "r", negative="not reproduced", positive="inconclusive")
    assert word == "not reproduced" and "positive control" in reason
    assert set(VERDICTS) == {"reproduced", "partial", "not reproduced", "inconclusive", "not run", "not testable here"}


def test_regime_of_a_replicate_fraction():
    assert regime(0.0, 0.2) == "generalizing" and regime(0.7, 0.9) == "memorizing" and regime(0.3, 0.6) == "between"


def test_two_level_interval_covers_where_the_pooled_one_does_not():
    """10 seeds of 50 units, seed effects of sd 1 and unit noise of sd 1: the mean's standard error is
    sqrt(1/10 + 1/500) = 0.32. The interval that resamples seeds first covers the true mean about 90% of the time
    (10 clusters); pooling the 500 units as if independent (half-width 1.96 sqrt(2/500) = 0.12) covers about 30%."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 50)
    hit_two = hit_pooled = 0
    for k in range(200):
        v = rng.standard_normal(10)[labels] + rng.standard_normal(500)
        _, lo, hi = mean_interval(v, clusters=labels, n_boot=400, seed=k)
        hit_two += lo <= 0 <= hi
        _, lo, hi = mean_interval(v, n_boot=400, seed=k)
        hit_pooled += lo <= 0 <= hi
    assert hit_two / 200 > 0.8 and hit_pooled / 200 < 0.6


def test_two_level_reduces_to_the_seed_bootstrap_with_one_unit_per_seed():
    """One unit per seed: every replicate draws seeds only, so a 3-seed interval is [min, max] of the seeds
    (each seed drawn three times has probability 1/27 > 2.5%)."""
    v = np.array([0.0, 10.0, 5.0])
    assert mean_interval(v, clusters=np.arange(3), n_boot=2000)[1:] == (0.0, 10.0)
    # the labels may skip numbers (a seed whose runs were all left out); two samples share the seed draws, so
    # the difference of one seed-level quantity measured in both is 0 in every replicate (paired), while
    # independent draws of the two samples would spread it over [-10, 10]
    labels = np.array([0, 4, 7])
    est, lo, hi = bootstrap(lambda a, b: weighted_mean(a, v) - weighted_mean(b, v), 3, 3, n_boot=500,
                            clusters=[labels, labels])
    assert est == lo == hi == 0.0
    _, lo, hi = bootstrap(lambda a, b: weighted_mean(a, v) - weighted_mean(b, v), 3, 3, n_boot=500)
    assert lo < -3 and hi > 3
    with pytest.raises(ValueError, match="clusters"):
        mean_interval(v, clusters=np.arange(2))


def test_slope_interval_over_seeds_of_runs():
    """tau = 50 n^1 with a per-seed factor: the two-level slope interval holds 1 and is inside [0.8, 1.2]; runs that
    never memorized are left out, whichever seed they belong to."""
    rng = np.random.default_rng(1)
    n = np.tile([16.0, 32, 64, 128, 256], 3)
    seeds = np.repeat(np.arange(3), 5)
    tau = 50 * n * np.exp(0.3 * rng.standard_normal(3))[seeds] * np.exp(0.05 * rng.standard_normal(15))
    tau[seeds == 2] = np.inf
    fit = fit_tau_mem(n, tau, clusters=seeds)
    assert fit["n_used"] == 10 and 0.8 <= fit["slope_boot_lo"] <= 1 <= fit["slope_boot_hi"] <= 1.2


def _fake(value):
    """A run function whose only (main) condition is ``value`` in [0.5, 1] with a tight interval."""
    def run(s, out, seeds, progress):
        return Outcome([Condition("(a)", "effect", value, value - 0.01, value + 0.01, low=0.5, high=1.0)],
                       f"effect {value}")
    return run


def test_a_claim_whose_negative_control_passes_is_not_testable(tmp_path):
    claim = Claim(99, "P", "s", "p", {"quick": {}}, _fake(0.8), Control("pos", _fake(0.9)), Control("neg", _fake(0.7)))
    row = run_claim(claim, tmp_path / "c", "quick", [0], False)
    assert row["verdict"] == "not testable here" and row["claim_verdict"] == "reproduced"
    assert row["negative_control"] == "reproduced" and "negative control" in row["reason"]
    claim = Claim(99, "P", "s", "p", {"quick": {}}, _fake(0.8), Control("pos", _fake(0.9)), Control("neg", _fake(0.1)))
    row = run_claim(claim, tmp_path / "d", "quick", [0], False)
    assert (row["verdict"], row["positive_control"], row["negative_control"]) == ("reproduced", "reproduced",
                                                                                 "not reproduced")
    assert json.loads((tmp_path / "d" / "negative" / "outcome.json").read_text())["verdict"] == "not reproduced"


def test_twelve_claims_each_declare_three_scales_a_stated_criterion_and_two_controls():
    assert sorted(CLAIMS) == list(range(1, 13))
    for number, claim in CLAIMS.items():
        assert set(claim.scales) == {"quick", "cpu", "paper"}
        doc = __import__(claim.run.__module__, fromlist=["_"]).__doc__
        assert f"Claim {number}. Criterion" in doc
        assert isinstance(claim.positive, Control) and isinstance(claim.negative, Control), number
    with pytest.raises(ValueError, match="scale"):
        CLAIMS[1].settings("gpu")


def test_report_of_claim_one_is_written_and_reused(tmp_path):
    rows = run_report(tmp_path, scale="quick", only="1", progress=False)
    table = read_csv(tmp_path / "claims.csv")
    assert table.columns() == list(COLUMNS) and [r["claim"] for r in table] == [1]
    r = rows[0]
    assert (r["verdict"], r["positive_control"], r["negative_control"]) == ("reproduced", "reproduced", "not reproduced")
    text = (tmp_path / "report.md").read_text()
    assert "Claim 1. Criterion (fixed before the run)" in text and "two-level bootstrap" in text
    assert text.count("| (a) |") == 3                       # the claim's and both controls' condition tables
    assert "(claim01/claim.png)" in text and (tmp_path / "claim01" / "claim.png").is_file()
    assert json.loads((tmp_path / "record.json").read_text())["scale"] == "quick"
    before = (tmp_path / "claim01" / "outcome.json").stat().st_mtime_ns
    again = run_report(tmp_path, scale="quick", only="1", progress=False)      # finished: reused, not rerun
    assert (tmp_path / "claim01" / "outcome.json").stat().st_mtime_ns == before
    assert again[0]["our_value"] == r["our_value"]
    stale = json.loads((tmp_path / "claim01" / "outcome.json").read_text())
    stale["settings"]["n_draws"] += 1                            # finished with other settings: run again
    (tmp_path / "claim01" / "outcome.json").write_text(json.dumps(stale))
    run_report(tmp_path, scale="quick", only="1", progress=False)
    assert json.loads((tmp_path / "claim01" / "outcome.json").read_text())["settings"] == CLAIMS[1].settings("quick")
    stale = json.loads((tmp_path / "claim01" / "negative" / "outcome.json").read_text())
    stale["criterion"] = "Claim 1. Criterion: an earlier wording"             # judged under another criterion
    (tmp_path / "claim01" / "negative" / "outcome.json").write_text(json.dumps(stale))
    run_report(tmp_path, scale="quick", only="1", progress=False)
    assert json.loads((tmp_path / "claim01" / "negative" / "outcome.json").read_text())["criterion"].startswith(
        "Claim 1. Criterion (fixed before the run)")
    side = run_report(tmp_path / "jobs", scale="quick", only="1", progress=False, jobs=2)   # in a process of its own
    assert side[0]["conditions"] == r["conditions"] and side[0]["verdict"] == r["verdict"]
    with pytest.raises(ValueError, match="only"):
        run_report(tmp_path, only="13", progress=False)
    with pytest.raises(ValueError, match="jobs"):
        run_report(tmp_path, only="1", progress=False, jobs=0)
    with pytest.raises(ValueError, match="scale"):
        run_report(tmp_path, scale="huge", progress=False)


@pytest.mark.slow
def test_quick_report_of_all_twelve_claims(tmp_path):
    """Every claim and both its controls run at quick scale; each control is judged as it must be, except claim 11's
    positive control, which one seed of three runs cannot decide (its module doc: a power limit of quick scale)."""
    rows = run_report(tmp_path, scale="quick", progress=False, jobs=2)
    assert [r["claim"] for r in read_csv(tmp_path / "claims.csv")] == list(range(1, 13))
    assert all(r["verdict"] in VERDICTS for r in rows)
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows if r["error"]]
    assert [(r["claim"], r["positive_control"], r["negative_control"]) for r in rows] == \
        [(n, "inconclusive" if n == 11 else "reproduced", "not reproduced") for n in range(1, 13)]



# The text the claims hashed when they built override strings (before issue 24); a run folder must not move.
_AS_TEXT = [
    ({"data.name": "gmm", "data.params": {"n": 2064, "d": 2, "n_train": 64}, "model.preset": "mlp-small",
      "train.lr": 0.001, "train.first_checkpoint": 5, "measure.fidelity": "compare.fidelity:sliced_wasserstein"},
     ["data.name=gmm", "data.params={n = 2064, d = 2, n_train = 64}", "model.preset=mlp-small", "train.lr=0.001",
      "train.first_checkpoint=5", "measure.fidelity=compare.fidelity:sliced_wasserstein"]),
    ({"data.name": "mixture", "data.params": {"parts": {"mondrian": 100, "random_ink": 4}, "size": 8, "seed": 1},
      "model.params": {"width": 16}, "train.lr": 1e-4, "train.steps": 200000, "model.class_conditional": True,
      "measure.enabled": False},
     ["data.name=mixture", "data.params={parts = {mondrian = 100, random_ink = 4}, size = 8, seed = 1}",
      "model.params={width = 16}", "train.lr=0.0001", "train.steps=200000", "model.class_conditional=true",
      "measure.enabled=false"]),
    ({"train.lr": 2e-5, "train.ema_decay": 0.999, "measure.metrics": ["gap", "replicates", "sliced_wasserstein"],
      "model.preset": "unet-tiny"},
     ["train.lr=2e-05", "train.ema_decay=0.999", 'measure.metrics=["gap", "replicates", "sliced_wasserstein"]',
      "model.preset=unet-tiny"]),
]


@pytest.mark.parametrize("values, lines", _AS_TEXT)
def test_run_folder_of_values_is_the_hash_of_the_old_override_text(values, lines):
    import hashlib
    assert override_lines(values) == lines
    for seed in (0, 2):
        old = hashlib.sha1(("\n".join(lines) + f"\nseed={seed}").encode()).hexdigest()[:12]
        assert run_folder("/R", values, seed).name == old
    assert run_folder("/R", values, 0) != run_folder("/R", values, 1)
    # the config is the one the text parsed to, with the run's seed and its one thread
    extra = ["train.seed=3", "measure.seed=3", "train.threads=1", "train.progress=false", "train.device=auto"]
    assert run_config(values, 3) == load_config(None, [*lines, *extra])


def test_every_claim_plans_config_values():
    for claim in CLAIMS.values():
        for values, seed in claim.planned_runs("quick", [0]):
            assert isinstance(values, dict) and all(isinstance(v, str) for v in values) and isinstance(seed, int)
            run_config(values, seed)


def test_paper_scale_cifar10_claims_need_the_users_copy_before_anything_is_written(tmp_path, capsys):
    """Claims 11 and 12 train on CIFAR-10 at paper scale: without ``cifar10`` (``--cifar10 ROOT``) the report
    stops at once naming the option and the claims; with it, every planned run's config reads that copy."""
    from lab.cli import main
    from lab.claims.report import local_copies, planned

    out = tmp_path / "report"
    with pytest.raises(ValueError, match=r"^cifar10: claims 11, 12 train on cifar10 at scale 'paper'; .*--cifar10 "):
        run_report(out, scale="paper", only="11,12", progress=False)
    assert main(["report", "--out", str(out), "--scale", "paper", "--only", "12"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cifar10: claim 12 trains on cifar10" in err
    assert not out.exists()
    with pytest.raises(ValueError, match=r"^cifar10: no folder or archive"):
        local_copies([CLAIMS[11]], "paper", tmp_path / "missing")
    assert local_copies([CLAIMS[n] for n in CLAIMS if n < 11], "paper") == {}   # no claim before 11 needs it

    copy = tmp_path / "my cifar"
    copy.mkdir()
    roots = local_copies([CLAIMS[11], CLAIMS[12]], "paper", copy)
    runs = planned([CLAIMS[11], CLAIMS[12]], tmp_path / "runs", "paper", [0], roots)
    assert len(runs) == len(CLAIMS[11].planned_runs("paper", [0], roots)) > 0
    for values, seed in runs.values():
        cfg = run_config(values, seed)
        assert cfg.data.name == "cifar10" and cfg.data.params["root"] == str(copy.resolve())
