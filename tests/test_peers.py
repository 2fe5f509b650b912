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


def test_interleaved_rounds_rotate_the_order():
    """Each method is called once to warm up, then once per round; round r starts with the r-th method, so
    no method always follows the same one (what it leaves in the caches is spread over all)."""
    calls = []
    methods = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    secs = peers.interleaved(methods, repeats=4, device="cpu")
    assert calls == list("abc") + list("abc") + list("bca") + list("cab") + list("abc")
    assert set(secs) == set("abc") and all(t >= 0 for t in secs.values())
