"""benchmarks.peers: the comparison of pair sets against a reference, and a loaded run end to end."""
import json

import pytest
import torch

from benchmarks import peers


def test_settled_against_counts_and_settles_differing_pairs():
    x = torch.tensor([[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]])
    y = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [9.0, 0.0], [11.0, 0.0], [5.0, 4.0], [5.0, 6.0]])
    ref = torch.tensor([[0, 1], [3, 4], [5, 6]])                     # the true pairs (6 and 5 tie at distance 1)
    got = torch.tensor([[1, 0], [3, 2], [6, 5]])                    # same set, a farther pair, same set
    assert peers.settled_against(got, ref, x, y) == {"differing": 1, "nearer_here": 0, "nearer_in_reference": 1,
                                                     "tied": 0}
    swapped = torch.tensor([[0, 1], [3, 4], [5, 1]])                # farther for query 2
    assert peers.settled_against(ref, swapped, x, y)["nearer_here"] == 1


@pytest.mark.slow
def test_loaded_run_reports_both_halves(tmp_path):
    out = tmp_path / "peers.json"
    peers.main(["--size", "small", "--load", "1", "--repeats", "1", "--no-memory", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["loaded"]["busy_processes"] == 1
    for half in (res, res["loaded"]):
        assert half["nearest"]["methods"]["memgen"]["error_vs_float64"] == 0
        assert half["dstar"]["methods"]["memgen"]["error_vs_float64"] < 1e-5
        assert half["dstar"]["methods"]["memgen_posterior"]["error_vs_float64"] < 1e-5   # weights in [0, 1]


def test_interleaved_rounds_shuffle_the_order_and_time_slices_last():
    """One warm-up call of each method, then each full-size method once per round in a seeded random order
    (not always the same neighbours), then the sliced methods' rounds."""
    calls = []
    methods = {name: (lambda name=name: calls.append(name)) for name in "abcd"}
    methods["slice"] = (lambda: calls.append("slice"), 0.5)
    secs = peers.interleaved(methods, repeats=6, device="cpu", seed=3)
    rounds = [calls[5 + 4 * r:9 + 4 * r] for r in range(6)]
    assert calls[:5] == list("abcd") + ["slice"] and calls[29:] == ["slice"] * 6 and len(calls) == 35
    assert all(sorted(r) == list("abcd") for r in rounds) and len({tuple(r) for r in rounds}) > 1
    calls.clear()
    peers.interleaved(methods, repeats=6, device="cpu", seed=3)
    assert [calls[5 + 4 * r:9 + 4 * r] for r in range(6)] == rounds          # seeded
    assert set(secs) == set(methods) and all(t >= 0 for t in secs.values())
