"""The FLOP count of benchmarks.paper_cost against closed forms, its linearity in the batch, and its plan coverage."""
import pytest
import torch
from torch import nn

from benchmarks.paper_cost import count_flops, cost_table, flops_per_sample, loss_step, planned_configs, report
from lab.claims.networks import override_lines, run_config
from lab.claims.registry import CLAIMS
from neural.presets import model_from_config

MLP = {"data.name": "gmm", "data.params": {"n": 64, "d": 8}, "model.preset": "mlp-small"}
UNET = {"data.name": "mondrian", "data.params": {"n": 16, "size": 8}, "model.preset": "unet-tiny"}


def linear_sum(model) -> int:
    """``sum in x out`` over the network's ``nn.Linear`` layers."""
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


def test_forward_of_the_residual_mlp_is_two_batch_in_out_per_linear_layer():
    cfg = run_config(MLP, 0)
    model = model_from_config(cfg.model, (8,))
    # by hand, mlp-small (width 128, 3 blocks, embedding 128) on d = 8: the embedding's 2 layers 128x128, the
    # input 8x128, 3 blocks of fc1, emb, fc2 (128x128 each), the output 128x8: 11 x 128^2 + 2 x 8 x 128
    assert linear_sum(model) == 11 * 128 ** 2 + 2 * 8 * 128
    with torch.no_grad():
        flops = count_flops(lambda: model(torch.randn(5, 8), torch.ones(5)))
    assert flops == 2 * 5 * linear_sum(model)


def test_training_step_of_the_residual_mlp_counts_forward_weight_and_input_gradients():
    """Per linear layer: forward 2 B in out, weight gradient 2 B in out, input gradient 2 B in out unless its
    input needs none (the input layer on the noisy data, the embedding's first layer on the noise features)."""
    cfg = run_config(MLP, 0)
    model = model_from_config(cfg.model, (8,))
    no_input_grad = sum(m.in_features * m.out_features for m in (model.net.inp, model.net.embed.mlp[0]))
    batch = 6
    assert count_flops(lambda: loss_step(cfg, (8,), None)(batch)) == 2 * batch * (3 * linear_sum(model) - no_input_grad)


def test_step_flops_are_linear_in_the_batch_for_a_unet():
    cfg = run_config(UNET, 0)
    step = loss_step(cfg, (3, 8, 8), None)
    at2, at4, at8 = (count_flops(lambda b=b: step(b)) for b in (2, 4, 8))
    assert at2 > 0 and at4 == 2 * at2 and at8 == 4 * at2
    assert flops_per_sample(step, 2) == at2 / 2


def test_a_count_that_is_not_linear_in_the_batch_is_refused():
    def step(b):                    # a batch-independent product on top of a linear one
        return torch.ones(b, 4) @ torch.ones(4, 4) + (torch.ones(3, 3) @ torch.ones(3, 3)).sum()
    with pytest.raises(RuntimeError, match="count-batch"):
        flops_per_sample(step, 2)


def test_the_table_covers_every_planned_run_once():
    seeds = [0, 1]
    rows, _ = cost_table("quick", seeds)
    configs = planned_configs("quick", seeds)
    distinct = {(tuple(override_lines(ov)), sd) for c in CLAIMS.values() for ov, sd in c.planned_runs("quick", seeds)}
    assert len(configs) == len(distinct) == sum(r["runs"] for r in rows)
    assert sum(r["steps"] for r in rows) == sum(cfg.train.steps for cfg in configs)
    assert len({(r["network"], r["batch"]) for r in rows}) == len(rows)
    assert all(r["flops"] == r["steps"] * r["flops_per_step"] for r in rows)


def test_the_floor_is_total_flops_over_the_peak():
    row = {"preset": "p", "params": "", "data": "d", "shape": [2], "classes": None, "batch": 1, "runs": 1,
           "steps": 10, "flops_per_step": 3.6e17, "flops": 3.6e18}
    text = report([row], 1000.0)
    assert "1.0 GPU-hours at 1000 TFLOP/s" in text and "FLOOR" in text


def test_measured_hours_are_steps_over_the_measured_rate_and_untimed_rows_are_marked(monkeypatch):
    import benchmarks.paper_cost as pc

    rows, networks = cost_table("quick", [0])
    rows, networks = rows[:2], {k: networks[k] for k in {r["network"] for r in rows[:2]}}
    pc.measure(rows, networks, "cpu", steps=1, count_batch=2)
    for r in rows:
        assert r["steps_per_s"] > 0 and r["hours"] == pytest.approx(r["steps"] / r["steps_per_s"] / 3600)
    assert "INCOMPLETE" not in report(rows, 989.0, "cpu")
    monkeypatch.setattr(pc, "CPU_LIMIT_S", 0.0)               # every row predicted over the limit: none timed
    pc.measure(rows, networks, "cpu", steps=1, count_batch=2)
    assert all(r["steps_per_s"] is None and r["hours"] is None for r in rows)
    assert f"INCOMPLETE: {len(rows)} of {len(rows)} rows not timed" in report(rows, 989.0, "cpu")
