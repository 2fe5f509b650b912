"""Every public entry point turns a bad argument into a one-line ValueError/TypeError that names it.

Each case below is an entry point called with small valid arguments; for each of its arguments a kind
(count, positive number, point set, ...) says which values are bad, and hypothesis draws bad values of
that kind (NaN, inf, negatives, zero, fractions, bools, strings, wrong shapes, empty arrays, ...). The
valid call itself must succeed (so a case cannot pass by always failing), and every bad call must raise
a ``ValueError``/``TypeError`` whose message starts with the argument's name.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import compare
import memgen
from memgen import data as mdata
from neural.checkpoint import checkpoint_steps
from toymodels import EmpiricalDenoiser, GaussianDenoiser, GMMDenoiser, SmoothedDenoiser

NAN, INF = float("nan"), float("inf")
D = 3
TRAIN = torch.randn(6, D, generator=torch.Generator().manual_seed(0))
X = torch.randn(4, D, generator=torch.Generator().manual_seed(1))
MODELS = {"empirical": EmpiricalDenoiser(TRAIN), "smoothed": SmoothedDenoiser(TRAIN, 0.5),
          "gaussian": GaussianDenoiser.fit(TRAIN), "gmm": GMMDenoiser([1, 1], TRAIN[:2], [1.0, 1.0])}
TRAJ = memgen.sample(MODELS["empirical"], X, memgen.edm_sigmas(3, 0.1, 5.0), return_trajectory=True)[1]

# --- bad values, by kind ---------------------------------------------------------------------------------

NOT_A_NUMBER = st.sampled_from([None, "1", "abc", [1.0, 2.0], {"a": 1}, True, False, object()])


def _floats(**kw):
    return st.floats(allow_nan=False, **kw)


def _fractions(lo=-1e6, hi=1e6):
    return _floats(min_value=lo, max_value=hi).filter(lambda v: v != int(v))


def _arrays_with(bad_value, shape=(5, D)):
    """A valid-looking array with ``bad_value`` at a drawn position."""
    return st.tuples(st.integers(0, shape[0] - 1), st.integers(0, shape[1] - 1)).map(
        lambda ij: _put(torch.randn(*shape, dtype=torch.float64), ij, bad_value))


def _put(t, ij, v):
    t[ij] = v
    return t


def _wrong_arrays(shape=(5, D)):
    """Arrays that are not a point set ``[n, D]``: NaN/inf inside, empty, 1-D, wrong width, non-numeric."""
    return st.one_of(
        _arrays_with(NAN, shape), _arrays_with(INF, shape), _arrays_with(-INF, shape),
        st.sampled_from([torch.empty(0, D), torch.randn(D), torch.randn(shape[0], D + 1), torch.randn(2, D, 1),
                         np.array([["a"] * D] * 2), "abc", None, {"x": 1}, 3.0, True,
                         torch.ones(2, D, dtype=torch.complex64)]))


KINDS = {
    "count": st.one_of(st.integers(max_value=0), _fractions(0, 1e6), st.sampled_from([NAN, INF, -INF]),
                       NOT_A_NUMBER),
    "opt_count": st.one_of(st.integers(max_value=0), _fractions(0, 1e6), st.sampled_from([NAN, INF, -INF, "1", True])),
    "count0": st.one_of(st.integers(max_value=-1), _fractions(0, 1e6), st.sampled_from([NAN, INF]), NOT_A_NUMBER),
    "positive": st.one_of(_floats(max_value=0.0), st.sampled_from([NAN, INF, -INF]), NOT_A_NUMBER),
    "nonneg": st.one_of(_floats(max_value=-1e-9), st.sampled_from([NAN, INF, -INF]), NOT_A_NUMBER),
    "finite": st.one_of(st.sampled_from([NAN, INF, -INF]), NOT_A_NUMBER),
    "open_unit": st.one_of(_floats(max_value=0.0), _floats(min_value=1.0), st.sampled_from([NAN, INF]),
                           NOT_A_NUMBER),
    "half_open_unit": st.one_of(_floats(max_value=0.0), _floats(min_value=1.0, exclude_min=True),
                                st.sampled_from([NAN, INF]), NOT_A_NUMBER),
    "ratio": st.one_of(_floats(max_value=0.0), _floats(min_value=1.0, exclude_min=True), st.sampled_from([NAN]),
                       NOT_A_NUMBER),
    "flag": st.sampled_from(["yes", "False", 1, 0, None, 1.0, [True]]),
    "points": _wrong_arrays(),
    "batch": _wrong_arrays((4, D)),
    "sigma": st.one_of(_floats(max_value=0.0), st.sampled_from([NAN, INF, "abc", None, True, torch.ones(3),
                                                                 torch.tensor([1.0, NAN, 1.0, 1.0])])),
    "grid": st.one_of(_floats(max_value=0.0, exclude_max=True).map(lambda v: [1.0, v]),
                      st.sampled_from([[1.0], [1.0, 2.0, 0.0], [1.0, NAN], [INF, 0.0], "abc", None, [[]]])),
    "sigmas": st.one_of(_floats(max_value=0.0).map(lambda v: [1.0, v]),
                        st.sampled_from([[], [1.0, NAN], [INF], "abc", None, [[]]])),
    "values_pos": st.one_of(_floats(max_value=0.0), st.sampled_from([NAN, INF, "abc", None, [1.0, NAN], [1.0, -1.0],
                                                                     True])),
    "values_nonneg": st.one_of(_floats(max_value=-1e-9), st.sampled_from([NAN, INF, "abc", None, [1.0, NAN],
                                                                           [0.5, -1.0], True])),
    "values_unit": st.one_of(_floats(max_value=0.0), _floats(min_value=1.0, exclude_min=True),
                             st.sampled_from([NAN, INF, "abc", None, [0.5, NAN], [0.5, 0.0], True])),
    "spectrum": st.one_of(_floats(max_value=-1e-9).map(lambda v: [1.0, v]),
                          st.sampled_from([[NAN, 1.0], [1.0, INF], [], [[1.0]], "abc", None])),
    "model": st.sampled_from([None, "model", 3.0, torch.randn(2, 2)]),
    "callable": st.sampled_from(["f", 3.0, [1], torch.randn(2)]),
    "tags": st.sampled_from(["abc", [1, 2], 3.0]),
    "choice": st.one_of(st.text(max_size=8), st.sampled_from([None, 1, 2.5, True])),
    "seed": st.one_of(st.integers(max_value=-1), _fractions(0, 1e6), st.sampled_from([NAN, INF]), NOT_A_NUMBER),
    "labels": st.sampled_from([[0.5] * 4, [0] * 3, [-1] * 4, "abc", [[0, 1]] * 4, [NAN] * 4, [True] * 4]),
    "label_count": st.sampled_from([[0] * 5, [0] * 7, "abc", [[0, 1]] * 6]),
    "array": st.one_of(_arrays_with(NAN), _arrays_with(INF), st.sampled_from(
        [torch.empty(0, D), torch.randn(D), np.array([["a"] * D] * 2), "abc", None, 3.0, True,
         torch.ones(2, D, dtype=torch.bool), torch.ones(2, D, dtype=torch.complex64)])),
    "opt_seed": st.one_of(st.integers(max_value=-1), _fractions(0, 1e6), st.sampled_from([NAN, INF, "1", True])),
    "root": st.sampled_from([3, 2.5, None, [1], True]),
    "data": st.one_of(_arrays_with(NAN), _arrays_with(INF), st.sampled_from(
        [np.empty((0, D)), np.zeros(D), np.array([["a"] * D] * 4), None, 3.0, np.ones((4, D), dtype=bool)])),
    "sizes": st.sampled_from([[10, 20, 0, 80], [10, -20, 40, 80], [10, 20, NAN, 80], "abc", None, [[]]]),
    "vector": st.sampled_from([torch.tensor([0.0, NAN, 1.0]), np.array([0.0, 1.0, INF]), torch.empty(0), "abc", None,
                               torch.ones(D, dtype=torch.bool), torch.ones(D, dtype=torch.complex64)]),
    "cov": st.one_of(_floats(max_value=-1e-6), st.sampled_from([NAN, INF, "abc", None, [1.0, NAN, 1.0],
                                                                 [0.5, -1.0, 1.0], [1.0, 1.0], True])),
    "finite_values": st.sampled_from([[0.1, NAN], [INF, 1.0], "abc", None, [], 3.0]),
    "taus": st.sampled_from([[1.0, -2.1, 3.9, 8.2], [1.0, 0.0, 3.9, 8.2], [1.0, 2.0], "abc", None, []]),
    "steps": st.sampled_from([[3, 2, 1], [0, 1, 2], [1, 1, 2], [], "abc", [1.0, NAN, 3.0]]),
    "series": st.sampled_from([[0.1, NAN, 0.3], [0.1, 0.2], [], "abc", None]),
}


@dataclass
class Case:
    name: str
    fn: object
    valid: dict
    bad: dict = field(default_factory=dict)


def _call(fn, **kw):
    return fn(**kw)


GMM_MEANS = TRAIN[:2]
_ROOT = []


def tmp_root() -> str:
    """A folder, written once and removed at exit, holding a binary CIFAR-10 copy of one image per batch
    (labels 0..5) and, in ``images/``, three 4x4 PNG images."""
    if not _ROOT:
        root = tempfile.mkdtemp(prefix="memgen-bad-inputs-")
        atexit.register(shutil.rmtree, root, True)
        os.mkdir(f"{root}/cifar-10-batches-bin")
        for k, stem in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
            with open(f"{root}/cifar-10-batches-bin/{stem}.bin", "wb") as f:
                f.write(bytes([k]) + bytes(3072))
        os.mkdir(f"{root}/images")
        for k in range(3):
            Image.fromarray(np.full((4, 4, 3), 60 * k, np.uint8)).save(f"{root}/images/{k}.png")
        _ROOT.append(root)
    return _ROOT[0]


def _at_tmp(loader, arg: str, sub: str = ""):
    """``loader`` with its folder argument ``arg`` of value ``'<tmp>'`` replaced by the folder of :func:`tmp_root`."""
    return lambda **kw: loader(**{**kw, arg: tmp_root() + sub if kw[arg] == "<tmp>" else kw[arg]})

CASES = [
    # memgen: schedules and conversions
    Case("edm_sigmas", memgen.edm_sigmas, dict(steps=4, sigma_min=0.1, sigma_max=2.0, rho=7.0),
         dict(steps="count", sigma_min="positive", sigma_max="positive", rho="positive")),
    Case("log_sigmas", memgen.log_sigmas, dict(num=4, sigma_min=0.1, sigma_max=2.0),
         dict(num="count", sigma_min="positive", sigma_max="positive")),
    Case("vp_to_ve", memgen.vp_to_ve, dict(alpha_bar=0.5), dict(alpha_bar="values_unit")),
    Case("ve_to_vp", memgen.ve_to_vp, dict(sigma=0.5), dict(sigma="values_nonneg")),
    Case("ddpm_linear_alpha_bar", memgen.ddpm_linear_alpha_bar, dict(T=10, beta_start=1e-4, beta_end=0.02),
         dict(T="count", beta_start="open_unit", beta_end="open_unit")),
    Case("iddpm_cosine_alpha_bar", memgen.iddpm_cosine_alpha_bar, dict(T=10, s=0.008, max_beta=0.999),
         dict(T="count", s="nonneg", max_beta="open_unit")),
    Case("schedule_sigmas", memgen.schedule_sigmas, dict(alpha_bar=[0.9, 0.5]), dict(alpha_bar="values_unit")),
    Case("sigma_to_timestep", memgen.sigma_to_timestep,
         dict(sigma=0.5, alpha_bar=memgen.ddpm_linear_alpha_bar(10)),
         dict(sigma="values_pos", alpha_bar="values_unit")),
    Case("ou_to_ve", memgen.ou_to_ve, dict(t=0.5), dict(t="values_pos")),
    Case("ve_to_ou", memgen.ve_to_ou, dict(sigma=0.5), dict(sigma="values_nonneg")),
    Case("ou_delta", memgen.ou_delta, dict(t=0.5), dict(t="values_nonneg")),
    # memgen: the contract's views and the sampler
    *[Case(f"{view.__name__}", view, dict(model=MODELS["empirical"], x=X, sigma=1.0),
           dict(x="batch", sigma="sigma")) for view in (memgen.score, memgen.eps, memgen.velocity)],
    Case("sample", memgen.sample, dict(model=MODELS["gaussian"], noise=X, sigmas=[2.0, 1.0, 0.0], method="euler"),
         dict(noise="batch", sigmas="grid", method="choice", return_trajectory="flag")),
    # memgen.data: data sets and splits
    Case("circle", mdata.circle, dict(n=6, radius=2.0), dict(n="count", radius="positive")),
    Case("gaussian", mdata.gaussian, dict(n=6, spectrum=(1.0, 0.5), n_train=3, seed=0, rotate=True),
         dict(n="count", spectrum="spectrum", n_train="opt_count", seed="seed", rotate="flag")),
    Case("gmm", mdata.gmm, dict(n=6, d=2, n_train=3, seed=0, center=1.0, variance=1.0, weights=(0.5, 0.5)),
         dict(n="count", d="count", n_train="opt_count", seed="seed", center="finite", variance="positive",
              weights="values_nonneg")),
    Case("mondrian", mdata.mondrian, dict(n=2, size=8, seed=0, n_train=1, bar_width=1),
         dict(n="count", size="count", seed="seed", n_train="opt_count", bar_width="opt_count")),
    Case("gm_dummies", mdata.gm_dummies, dict(n=2, size=4, seed=0, n_templates=2, std=0.5, template_seed=0,
                                              n_train=1),
         dict(n="count", size="count", seed="seed", n_templates="count", std="nonneg", template_seed="seed",
              n_train="opt_count")),
    Case("random_ink", mdata.random_ink, dict(n=2, size=4, seed=0, n_train=1),
         dict(n="count", size="count", seed="seed", n_train="opt_count")),
    Case("mixture", mdata.mixture, dict(parts={"mondrian": 2, "random_ink": 2}, size=8, seed=0, n_train=3),
         dict(size="count", seed="seed", n_train="opt_count")),
    Case("from_array", mdata.from_array, dict(path_or_array=np.zeros((4, 2)), labels=np.arange(4), n_train=2, seed=0),
         dict(path_or_array="data", labels="labels", n_train="opt_count", seed="seed")),
    Case("image_folder", _at_tmp(mdata.image_folder, "path", "/images"), dict(path="<tmp>", size=2, n_train=2, seed=0),
         dict(path="root", size="opt_count", n_train="opt_count", seed="seed")),
    Case("digits", mdata.digits, dict(n=20, n_train=10, seed=0, classes=[0, 1]),
         dict(n="opt_count", n_train="opt_count", seed="seed")),
    Case("random_split", mdata.random_split, dict(n=6, n_train=3, seed=0),
         dict(n="count", n_train="opt_count", seed="seed")),
    Case("seeded_split", mdata.seeded_split, dict(n=6, n_train=3, seed=0),
         dict(n="count", n_train="opt_count", seed="seed")),
    Case("first_split", mdata.first_split, dict(n=6, n_train=3), dict(n="count", n_train="opt_count")),
    Case("alternating_split", mdata.alternating_split, dict(n=6), dict(n="count")),
    Case("cifar10", _at_tmp(mdata.cifar10, "root"),
         dict(root="<tmp>", train=True, classes=None, n=3, subset_seed=1, n_train=2, seed=0),
         dict(root="root", train="flag", n="opt_count", subset_seed="opt_seed", n_train="opt_count", seed="seed")),
    Case("load", mdata.load, dict(name="circle"), dict(name="choice")),
    # toymodels: constructors, calls and extra methods
    Case("EmpiricalDenoiser", EmpiricalDenoiser, dict(train=TRAIN, budget=2 ** 20, kernel="torch"),
         dict(train="array", budget="count", kernel="choice")),
    Case("SmoothedDenoiser", SmoothedDenoiser, dict(train=TRAIN, delta=0.5), dict(train="array", delta="nonneg")),
    Case("GaussianDenoiser", GaussianDenoiser, dict(mean=np.zeros(D), cov=1.0, rank=2),
         dict(mean="vector", cov="cov", rank="opt_count")),
    Case("GaussianDenoiser.fit", GaussianDenoiser.fit, dict(data=TRAIN, rank=2), dict(data="array", rank="opt_count")),
    Case("GMMDenoiser", GMMDenoiser, dict(weights=[1, 1], means=GMM_MEANS, covs=[1.0, 1.0], rank=2),
         dict(weights="values_nonneg", means="array", covs="values_nonneg", rank="opt_count")),
    *[Case(f"{name}(x, sigma)", lambda model, x, sigma: model(x, sigma), dict(model=m, x=X, sigma=1.0),
           dict(x="batch", sigma="sigma")) for name, m in MODELS.items()],
    *[Case(f"{name}.posterior", lambda model, x, sigma, topk: model.posterior(x, sigma, topk=topk),
           dict(model=MODELS[name], x=X, sigma=1.0, topk=2), dict(x="batch", sigma="sigma", topk="opt_count"))
      for name in ("empirical", "smoothed")],
    Case("GMMDenoiser.log_density", lambda x, sigma: MODELS["gmm"].log_density(x, sigma), dict(x=X, sigma=0.5),
         dict(x="batch", sigma="nonneg")),
    Case("GMMDenoiser.sample", lambda num: MODELS["gmm"].sample(num), dict(num=3), dict(num="count")),
    # compare: every metric
    Case("common_noise", compare.common_noise, dict(n_points=3, shape=(D,), n_draws=2, seed=0),
         dict(n_points="count", n_draws="count", seed="seed")),
    Case("denoising_error", compare.denoising_error,
         dict(model=MODELS["gaussian"], points=TRAIN, sigmas=[0.5, 1.0], n_draws=2, seed=0, n_boot=20, level=0.9,
              boot_seed=0, batch_size=4, tags={"m": 1}, squared=True, progress=False),
         dict(model="model", points="points", sigmas="sigmas", n_draws="count", seed="seed", n_boot="count",
              level="open_unit", boot_seed="seed", batch_size="count", tags="tags", squared="flag")),
    Case("generalization_gap", compare.generalization_gap,
         dict(model=MODELS["gaussian"], train=TRAIN, val=X, sigmas=[0.5, 1.0], n_boot=20, progress=False),
         dict(model="model", train="points", val="points", sigmas="sigmas", n_boot="count")),
    Case("localization", compare.localization,
         dict(model=MODELS["empirical"], x=X, sigmas=[0.5, 1.0], batch_size=2, progress=False),
         dict(model="model", x="batch", sigmas="sigmas", batch_size="count", tags="tags")),
    Case("trajectory_distances", compare.trajectory_distances,
         dict(trajectory=TRAJ, train=TRAIN, n_reference=8, seed=0, progress=False),
         dict(train="array", n_reference="count", seed="seed", budget="count", tags="tags")),
    Case("nearest_two", compare.nearest_two, dict(queries=X, train=TRAIN, budget=2 ** 20, progress=False),
         dict(queries="batch", train="points", budget="count")),
    Case("replicates", compare.replicates,
         dict(samples=X, train=TRAIN, threshold=0.5, n_boot=20, level=0.9, seed=0, progress=False),
         dict(samples="batch", train="points", threshold="ratio", n_boot="count", level="open_unit", seed="seed",
              budget="count", train_labels="label_count", tags="tags")),
    Case("mondrian_validity", compare.mondrian_validity,
         dict(images=mdata.mondrian(2, size=8).x, tol=0.01, bar_width=1, batch_size=2),
         dict(tol="nonneg", bar_width="opt_count", batch_size="count")),
    Case("log_likelihood", compare.log_likelihood, dict(samples=X, density=MODELS["gmm"], batch_size=2),
         dict(samples="batch", density="model", batch_size="count")),
    Case("sliced_wasserstein", compare.sliced_wasserstein,
         dict(a=TRAIN, b=X, projections=8, p=2.0, seed=0, chunk=4),
         dict(a="points", b="points", projections="count", p="positive", seed="seed", chunk="count",
              features="callable")),
    Case("frechet_distance", compare.frechet_distance, dict(a=TRAIN, b=X), dict(a="points", b="points",
                                                                                   features="callable")),
    Case("bootstrap", lambda n_boot, level, seed: compare.bootstrap(lambda w: w.sum(1), 4, n_boot=n_boot,
                                                                    level=level, seed=seed),
         dict(n_boot=10, level=0.9, seed=0), dict(n_boot="count", level="open_unit", seed="seed")),
    Case("mean_interval", compare.mean_interval, dict(values=np.arange(5.0), n_boot=10, level=0.9, seed=0),
         dict(values="finite_values", n_boot="count", level="open_unit", seed="seed")),
    Case("tau_gen", compare.tau_gen, dict(steps=[1, 2, 3], quality=[3.0, 2.0, 1.0], tol=0.1),
         dict(steps="steps", quality="series", tol="nonneg")),
    Case("tau_mem", compare.tau_mem, dict(steps=[1, 2, 3], values=[0.0, 0.2, 0.5], threshold=0.1),
         dict(steps="steps", values="series", threshold="finite")),
    Case("fit_tau_mem", compare.fit_tau_mem, dict(n=[10, 20, 40, 80], tau=[1.0, 2.1, 3.9, 8.2], n_boot=20),
         dict(n="sizes", tau="taus", level="open_unit", n_boot="count", seed="seed")),
    # neural: the checkpoint grid
    Case("checkpoint_steps", checkpoint_steps, dict(steps=100, per_decade=4, first=10),
         dict(steps="count", per_decade="count", first="count")),
]
NAME = r"[\w.\[\]']+"
"""A message names its argument first: ``arg: ...``, or ``a, b: ...`` when two arguments disagree."""
PAIRS = [(case, arg) for case in CASES for arg in case.bad]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_valid_call_succeeds(case):
    case.fn(**case.valid)


@pytest.mark.parametrize("case, arg", PAIRS, ids=[f"{c.name}-{a}" for c, a in PAIRS])
@settings(max_examples=12, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_bad_argument_is_named(case, arg, data):
    value = data.draw(KINDS[case.bad[arg]], label=arg)
    with pytest.raises((ValueError, TypeError)) as info:
        case.fn(**{**case.valid, arg: value})
    msg = str(info.value)
    assert re.match(rf"({NAME}, )*{re.escape(arg)}\b", msg), f"{case.name}({arg}={value!r}) raised {info.type.__name__}: {msg}"
    assert "\n" not in msg.strip(), msg


# --- the silent wrong answers reported in issue 11, each by its exact call ---------------------------------

REPORTED = [
    ("vp_to_ve(nan)", lambda: memgen.vp_to_ve(NAN), "alpha_bar"),
    ("ve_to_vp(-1) was 0.5", lambda: memgen.ve_to_vp(-1.0), "sigma"),
    ("ou_delta(-1) was -6.39", lambda: memgen.ou_delta(-1.0), "t"),
    ("ddpm_linear_alpha_bar(10, 1e-4, 2.0) went negative", lambda: memgen.ddpm_linear_alpha_bar(10, 1e-4, 2.0),
     "beta_end"),
    ("log_sigmas(0) was empty", lambda: memgen.log_sigmas(0), "num"),
    ("log_sigmas(2.7) gave two levels", lambda: memgen.log_sigmas(2.7), "num"),
    ("log_sigmas(5, 10, 1) was decreasing", lambda: memgen.log_sigmas(5, 10, 1), "sigma_min"),
    ("gaussian(10, (nan, 1))", lambda: mdata.gaussian(10, (NAN, 1.0)), "spectrum"),
    ("gmm(center=inf)", lambda: mdata.gmm(10, center=INF), "center"),
    ("gaussian(10, n_train=2.5) was truncated", lambda: mdata.gaussian(10, n_train=2.5), "n_train"),
    ("alternating_split(0) was empty", lambda: mdata.alternating_split(0), "n"),
    ("sliced_wasserstein(p=inf) was 1.0", lambda: compare.sliced_wasserstein(TRAIN, X, p=INF), "p"),
    ("score(E, numpy_x, 1.0) blamed sigma", lambda: memgen.score(MODELS["empirical"], np.zeros((2, 4)), 1.0), "x"),
    ("an empty val in generalization_gap blamed points",
     lambda: compare.generalization_gap(MODELS["gaussian"], TRAIN, torch.empty(0, D), [1.0], progress=False), "val"),
    ("budget='abc'", lambda: EmpiricalDenoiser(TRAIN, budget="abc"), "budget"),
    ("batch_size=0", lambda: compare.denoising_error(MODELS["gaussian"], TRAIN, [1.0], batch_size=0), "batch_size"),
    ("checkpoint_steps(per_decade=0) was a ZeroDivisionError", lambda: checkpoint_steps(100, per_decade=0),
     "per_decade"),
]


@pytest.mark.parametrize("call, arg", [r[1:] for r in REPORTED], ids=[r[0] for r in REPORTED])
def test_reported_silent_answers_are_errors_naming_the_argument(call, arg):
    with pytest.raises((ValueError, TypeError), match=rf"^({NAME}, )*{re.escape(arg)}\b"):
        call()


def test_numpy_input_to_score_gives_numpy_and_the_same_numbers():
    model, x = MODELS["gmm"], X.double().numpy()
    for view in (memgen.score, memgen.eps):
        out = view(model, x, 0.7)
        assert isinstance(out, np.ndarray)
        np.testing.assert_allclose(out, view(model, torch.from_numpy(x), 0.7).numpy(), rtol=1e-12)



def test_gaussian_denoisers_at_huge_inputs_are_right_or_refused():
    """``|x| = 1e20`` (issue 11 gave NaN): a Gaussian follows its closed form ``mu + lam / (lam + s^2) (x - mu)``;
    a two-component mixture (means ±1, variances 1) its float64 closed form ``r_1 = sigmoid((x . (mu_1 - mu_2)) /
    (1 + s^2))`` to relative accuracy in norm; beyond float64's range of squares (|x| = 1e200) it is an error."""
    x = torch.tensor([[1e20, -1e20, 3.0], [1e20, 5.0, -2.0]])
    lam = torch.tensor([1.0, 2.0, 0.5])
    mu = torch.tensor([0.5, -1.0, 2.0])
    out = GaussianDenoiser(mu, lam)(x, 0.7)
    ref = mu.double() + lam.double() / (lam.double() + 0.49) * (x.double() - mu.double())
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)

    means = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    for dtype in (torch.float32, torch.float64):
        out = GMMDenoiser([1, 1], means, [1.0, 1.0], dtype=dtype)(x.to(dtype), 1.0)
        xd = x.double()
        r1 = torch.sigmoid(xd @ (means[0] - means[1]).double() / 2.0)[:, None]
        comp = [m.double() + 0.5 * (xd - m.double()) for m in means]
        ref = r1 * comp[0] + (1 - r1) * comp[1]
        assert bool(torch.isfinite(out).all())
        assert float((out.double() - ref).norm() / ref.norm()) < 1e-6
    huge = torch.tensor([[1e200, 0.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="^x: too far"):
        GMMDenoiser([1, 1], means, [1.0, 1.0], dtype=torch.float64)(huge, 1.0)


def test_train_and_val_of_different_shapes_are_refused_even_for_shapeless_models():
    identity = lambda x, sigma: x                                       # noqa: E731  (a model without event_shape)
    with pytest.raises(ValueError, match=r"^train, val: points of different shapes \(3,\) and \(4,\)"):
        compare.generalization_gap(identity, TRAIN, torch.randn(5, 4), [1.0], n_boot=10, progress=False)


def test_a_density_that_returns_nan_is_named():
    class Broken:
        def log_density(self, x):
            return torch.full((len(x),), NAN)

    with pytest.raises(ValueError, match="^density: log_density returned NaN"):
        compare.log_likelihood(X, Broken())


# --- the finiteness check every array input goes through ---------------------------------------------------

@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                                 st.sampled_from([NAN, INF, -INF, 3.4e38, -3.4e38, 0.0])), min_size=0, max_size=40),
       dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
       cols=st.integers(1, 4))
def test_all_finite_agrees_with_isfinite(values, dtype, cols):
    """``all_finite`` (one aminmax reduction) says what ``isfinite(t).all()`` says, in every float dtype
    (values beyond float16's range become infinite there), empty tensors included."""
    t = torch.tensor(values[:len(values) // cols * cols], dtype=torch.float64).to(dtype).reshape(-1, cols)
    assert memgen.checks.all_finite(t) == bool(torch.isfinite(t).all())
