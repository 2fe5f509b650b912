"""`memgen demo` runs end to end and writes its figures, summary and record."""
import json

from lab.cli import main


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--samples", "60", "--steps", "20"]) == 0
    for name in ["flow_fields.png", "samples.png", "summary.csv", "summary.json", "record.json",
                 "circle_panels.png", "circle_gap.csv", "circle_trajectories.csv"]:
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["model"].split()[0]: r for r in summary["samples"]}
    # the optimal denoiser memorizes: every sample lands on a training point; the smoothed one does not
    assert rows["optimal"]["near_fraction"] == 1.0
    assert rows["smoothed"]["near_fraction"] < 0.2
    # Kaiser & Kollmann: the gap peaks at an intermediate sigma (inside the grid 0.01..100, not at its ends)
    for peak in summary["gap_peaks"].values():
        assert 0.1 < peak["sigma_peak"] < 10 and peak["gap_peak_lo"] > 0
    record = json.loads((out / "record.json").read_text())
    assert record["seed"] == 0 and record["data"]["split"]["train"] == list(range(0, 20, 2))
    assert record["versions"]["torch"]
    assert "optimal" in capsys.readouterr().out
