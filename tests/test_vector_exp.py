"""The branch-free exp is within 4 eps of numpy's over its range, 0 below it, and vectorizes."""
import os
import platform
import re
import subprocess
import sys
from decimal import Decimal, localcontext

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from toymodels.empirical import _vector_exp as ve

EPS = np.finfo(np.float64).eps
BOUND = 4 * EPS


@numba.njit(fastmath={"reassoc"})
def _exp_loop(x, out):
    """A loop over :func:`ve.exp` the way the kernels use it: stores plus a reassociated sum."""
    s = 0.0
    for i in range(x.shape[0]):
        e = ve.exp(x[i])
        out[i] = e
        s += e
    return s


def _relative_error(x, got):
    ref = np.exp(x)
    return np.abs(got - ref) / ref


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(st.floats(min_value=np.nextafter(ve.UNDERFLOW, 0), max_value=709.0))
def test_scalar_exp_within_bound(x):
    assert _relative_error(np.float64(x), ve.exp(x)) <= BOUND


@settings(max_examples=100, derandomize=True, database=None, deadline=None)
@given(st.floats(min_value=-1e300, max_value=ve.UNDERFLOW))
def test_clamped_range_is_zero(x):
    assert ve.exp(x) == 0.0 and np.exp(x) <= np.exp(ve.UNDERFLOW)


@settings(max_examples=25, derandomize=True, database=None, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.sampled_from([(-708.0, 709.0), (-1.0, 1.0), (-40.0, 0.0), (-1e-12, 1e-12)]))
def test_vectorized_loop_within_bound(seed, bounds):
    """The SIMD body and its scalar remainder over many points, sums included."""
    x = np.random.default_rng(seed).uniform(*bounds, size=1003)
    x = x[x > ve.UNDERFLOW]
    out = np.empty_like(x)
    s = _exp_loop(x, out)
    assert _relative_error(x, out).max() <= BOUND
    assert abs(s - np.exp(x).sum()) <= (x.size + 4) * EPS * np.exp(x).sum()     # any order of summation


def test_reduction_points():
    """Exactly representable values around the reduction's break points and the edges of the range."""
    ks = np.arange(-1021, 1023)
    x = np.concatenate([ks * np.log(2), (ks + 0.5) * np.log(2), [0.0, -0.0, 709.0, np.nextafter(ve.UNDERFLOW, 0)]])
    x = x[(x > ve.UNDERFLOW) & (x <= 709.0)]
    x = np.concatenate([x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)])
    x = x[(x > ve.UNDERFLOW) & (x <= 709.0)]
    out = np.empty_like(x)
    _exp_loop(x, out)
    assert _relative_error(x, out).max() <= BOUND
    assert ve.exp(0.0) == 1.0 and ve.exp(ve.UNDERFLOW) == 0.0 and ve.exp(-np.inf) == 0.0


def test_ln2_split_is_exact_enough():
    with localcontext() as ctx:
        ctx.prec = 50
        ln2 = Decimal(2).ln()
        assert abs(Decimal(ve.LN2_HI) + Decimal(ve.LN2_LO) - ln2) < Decimal(1e-25)
    assert ve.LN2_HI * 2 ** 32 == int(ve.LN2_HI * 2 ** 32)       # k * LN2_HI exact for |k| < 2^20


def test_fmin_is_the_minimum():
    @numba.njit
    def smallest(a):
        m = np.inf
        for v in a:
            m = ve.fmin(m, v)
        return m
    a = np.random.default_rng(3).normal(size=1001)
    assert smallest(a) == a.min() and smallest(np.array([2.0, -0.0, 1.0])) == 0.0


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="checks x86 packed instructions")
def test_loop_compiles_to_packed_instructions():
    """A loop over exp is vectorized: its machine code multiplies packed doubles (``mulpd``/``vfmadd...pd``)."""
    x = np.linspace(-5, 0, 64)
    _exp_loop(x, np.empty_like(x))
    asm = _exp_loop.inspect_asm(_exp_loop.signatures[0])
    assert re.search(r"\bv?(mul|fmadd\d*|fmsub\d*)pd\b", asm)


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="baseline x86-64 target")
def test_baseline_cpu_without_fma_or_avx():
    """Compiled for baseline x86-64 (SSE2: no FMA, no AVX, no AVX-512) the bound still holds, the loop
    is still vectorized and the dense posterior kernel equals a float64 brute force: the results do
    not depend on the build machine's CPU."""
    code = (
        "import re, numpy as np\n"
        "from tests.test_vector_exp import _exp_loop, _relative_error, BOUND\n"
        "x = np.random.default_rng(5).uniform(-707.9, 709, 200001)\n"
        "out = np.empty_like(x); _exp_loop(x, out)\n"
        "assert _relative_error(x, out).max() <= BOUND, _relative_error(x, out).max()\n"
        "asm = _exp_loop.inspect_asm(_exp_loop.signatures[0])\n"
        "assert re.search(r'\\bmulpd\\b', asm) and not re.search(r'ymm|zmm|vfmadd', asm)\n"
        "from toymodels.empirical._numba import numba_posterior\n"
        "y = np.random.default_rng(6).random((700, 2)); x = np.random.default_rng(7).random((9, 2))\n"
        "c = y.mean(0); radius = float(np.sqrt(((y - c) ** 2).sum(1).max()))\n"
        "logits = -((x[:, None] - y[None]) ** 2).sum(-1) / (2 * 0.05 ** 2)\n"
        "w = np.exp(logits - logits.max(1, keepdims=True)); w /= w.sum(1, keepdims=True)\n"
        "got = numba_posterior(x, y, c, radius, np.full(9, 0.05))['mean']\n"
        "assert np.abs(got - w @ y).max() <= 1e-13, np.abs(got - w @ y).max()\n"
    )
    env = {**os.environ, "NUMBA_CPU_NAME": "x86-64", "NUMBA_CPU_FEATURES": ""}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
