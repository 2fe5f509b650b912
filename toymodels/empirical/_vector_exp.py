"""Branch-free ``exp`` and ``min`` for numba loops that LLVM can vectorize (no SVML needed).

numba calls libm's scalar ``exp`` unless llvmlite is SVML-patched, and a scalar call per element keeps
a loop from being vectorized. :func:`exp` uses only multiplies, adds and integer bit operations, so a
loop over it compiles to SIMD instructions of whatever width the CPU has (AVX2, AVX-512 or plain SSE2):

    ``x = k ln2 + f``,  ``k = round(x / ln2)``,  ``|f| <= ln2 / 2 (1 + 2^-40)``,
    ``exp(x) = 2^k P(f)``,  ``P(f) = sum_{i <= 13} f^i / i!``  (Horner),

with ``ln2 = LN2_HI + LN2_LO`` split so that ``k LN2_HI`` is exact for ``|k| < 2^20`` (Cody and
Waite), ``k`` read from the low mantissa bits of ``x / ln2 + 1.5 * 2^52`` and ``2^k`` assembled in the
exponent bits. The truncated Taylor tail is below ``0.347^14 / 14! < 4e-18`` relative; the constants,
the reduction and the Horner steps add a few roundings, so the result is within ``4 eps`` (``8.9e-16``)
relative of ``exp(x)`` for ``-708 < x <= 709`` (tests/test_vector_exp.py checks this against ``numpy.exp``
over generated inputs). For ``x <= -708`` it returns exactly 0, although ``exp(x)`` is still below
``3.4e-308`` there: callers sum weights ``exp(l_j - max_j l_j)``, whose total is at least 1, so each
dropped weight is below ``3.4e-308`` of the total. NaN inputs give 0. Above 709 the result is undefined.

Only the ``contract`` fast-math flag is used (fused multiply-adds: each rounds once, which only tightens
the bound above); callers may compile their reductions with ``reassoc``, which LLVM needs to vectorize
a sum, because fast-math flags belong to each instruction and stay off the instructions of :func:`exp`
when it is inlined into such a caller.
"""
from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _ln2_split() -> tuple[float, float]:
    """``ln2 = HI + LO`` (to ~1e-26): HI has 32 fractional bits, LO is the rest rounded to float64."""
    with localcontext() as ctx:
        ctx.prec = 50
        ln2 = Decimal(2).ln()
        hi = math.ldexp(math.floor(math.ldexp(float(ln2), 32)), -32)
        return hi, float(ln2 - Decimal(hi))


LN2_HI, LN2_LO = _ln2_split()
LOG2_E = 1.0 / math.log(2.0)
ROUNDER = 1.5 * 2.0 ** 52
"""Adding it to a float of magnitude below ``2^51`` rounds that float to an integer held in the low mantissa bits."""
_ROUNDER_BITS = int(np.float64(ROUNDER).view(np.int64))
UNDERFLOW = -708.0
"""At and below this argument :func:`exp` returns 0 (``2^k`` would no longer be a normal float)."""
_TAYLOR = tuple(1.0 / math.factorial(i) for i in range(13, -1, -1))
"""``1 / i!`` for ``i = 13, ..., 0``."""


@intrinsic
def _float_bits(typingctx, x):
    """The bits of a float64 as an int64 (a register move, no conversion)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_float(typingctx, i):
    """The float64 whose bits are the int64 ``i``."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def fmin(typingctx, a, b):
    """``min(a, b)`` for finite floats as ``llvm.minnum`` with no-NaN flags, which LLVM vectorizes as a
    reduction (a compare-and-select is not, whatever the flags on the compare)."""
    def codegen(context, builder, sig, args):
        dbl = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.minnum", [dbl], ir.FunctionType(dbl, [dbl, dbl]))
        return builder.call(fn, args, fastmath=("nnan", "nsz"))
    return types.float64(types.float64, types.float64), codegen


@numba.njit(fastmath={"contract"}, cache=True)
def exp(x):
    """``exp(x)`` within ``4 eps`` relative for ``-708 < x <= 709``; exactly 0 for ``x <= -708`` (module doc)."""
    xc = x if x > UNDERFLOW else UNDERFLOW
    t = xc * LOG2_E + ROUNDER
    k = t - ROUNDER                                   # round(x / ln2), exactly
    f = xc - k * LN2_HI                               # exact: k LN2_HI has at most 43 significant bits
    f = f - k * LN2_LO
    p = 0.0
    for c in _TAYLOR:                                 # Horner, highest degree first
        p = p * f + c
    scale = _bits_float((_float_bits(t) - _ROUNDER_BITS + 1023) << 52)     # 2^k
    return p * scale if x > UNDERFLOW else 0.0
