"""Measurement: metrics have one signature, are chosen by name from the caller's registry, share one
draw of samples per checkpoint, and are left out when they need samples and none are drawn."""
import pytest
import torch

import memgen.data
from memgen import edm_sigmas, sample
from neural import Measurement, make_probes, uses_samples
from neural.config import ModelConfig
from neural.measure import select
from neural.presets import model_from_config


def _model():
    torch.manual_seed(0)
    return model_from_config(ModelConfig(params={"width": 8, "depth": 1}), (2,))


def test_metrics_share_one_draw_of_samples_and_see_the_fixed_probes():
    data = memgen.data.load("gmm", n=40, d=2)
    probes = make_probes(data, probes=4, sigmas=3, samples=6, seed=1)
    seen = []

    @uses_samples
    def first(snap):
        seen.append(snap.samples)
        return {"first": float(snap.samples.sum())}

    @uses_samples
    def second(snap):
        seen.append(snap.samples)
        return {"second": len(snap.samples)}

    def probe_count(snap):
        return {"probes": len(snap.probes.train)}

    m = Measurement(probes, {"a": first, "b": second, "c": probe_count}, sample_steps=3, seed=5)
    model = _model()
    row = m(model)
    assert row["second"] == 6 and row["probes"] == 4
    assert seen[0] is seen[1]                                  # drawn once per checkpoint
    with torch.no_grad():                                      # the deterministic sampler from the fixed noise
        ref = sample(model, probes.sample_noise, edm_sigmas(3), method="heun")
    torch.testing.assert_close(seen[0], ref)
    assert row["first"] == pytest.approx(float(ref.sum()))

    none = make_probes(data, probes=4, sigmas=3, samples=0, seed=1)
    assert Measurement(none, {"a": first, "c": probe_count})(model) == {"probes": 4}


def test_metrics_are_chosen_by_name_from_the_registry():
    registry = {"gap": lambda s: {}, "replicates": lambda s: {}}
    assert list(select(registry, ["replicates"])) == ["replicates"]
    with pytest.raises(ValueError, match=r"^measure.metrics: 'gpa' .* did you mean 'gap'\?"):
        select(registry, ["gpa"])
    with pytest.raises(TypeError, match="^metrics"):
        select([lambda s: {}], ["gap"])
    with pytest.raises(TypeError, match="metrics\\['x'\\]"):
        Measurement(make_probes(memgen.data.load("gmm", n=20, d=2), probes=2, samples=0), {"x": 3})
