"""`memgen demo` runs end to end and writes its figures, summary and record."""
import json

from memgen.cli import main


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--samples", "60", "--steps", "20"]) == 0
    for name in ["flow_fields.png", "samples.png", "summary.csv", "summary.json", "record.json"]:
        assert (out / name).stat().st_size > 0, name
    rows = {r["model"].split()[0]: r for r in json.loads((out / "summary.json").read_text())}
    # the optimal denoiser memorizes: every sample lands on a training point; the smoothed one does not
    assert rows["optimal"]["near_fraction"] == 1.0
    assert rows["smoothed"]["near_fraction"] < 0.2
    record = json.loads((out / "record.json").read_text())
    assert record["seed"] == 0 and record["data"]["split"]["train"] == list(range(0, 20, 2))
    assert record["versions"]["torch"]
    assert "optimal" in capsys.readouterr().out
