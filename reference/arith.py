"""Two arithmetics for the one reference algorithm: mpmath at a chosen precision, and float64.

``MpArith`` is the reference: mpmath's correctly rounded ``libmp`` kernels on raw
mpf tuples at ``prec`` bits, in a private ``MPContext`` (never the global
``mp.dps``). It works on flat Python lists, element by element, without the
``mpf`` object layer; that is what makes the golden build several times faster
than a loop over ``mpf`` objects (see benchmarks/golden_throughput.py).
``F64Arith`` runs the very same algorithm in numpy float64: the fast model the
error budget and the fingerprinting use for magnitudes and sensitivities.

Vectors are lists (mp) or float64 arrays (f64); scalars are mpf tuples or floats.
Every binary operation accepts any mix of vector and scalar operands.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import mpmath
import numpy as np
from mpmath import libmp

__all__ = ["F64Arith", "MpArith"]

_FNAN = libmp.fnan


def _ieee_div(x: tuple, y: tuple, prec: int, rnd: str) -> tuple:
    if y == libmp.fzero:
        if x == libmp.fzero or x == _FNAN:
            return _FNAN
        return libmp.finf if (x[0] == 0) else libmp.fninf  # sign of x; +0 divisor
    return libmp.mpf_div(x, y, prec, rnd)


def _exact_sum(m1: int, e1: int, m2: int, e2: int) -> tuple[int, int]:
    """m1*2^e1 + m2*2^e2 exactly, as (signed mantissa, exponent)."""
    if e1 >= e2:
        return (m1 << (e1 - e2)) + m2, e2
    return m1 + (m2 << (e2 - e1)), e1


def _axpby(a: tuple, x: tuple, b: tuple, y: tuple, prec: int, z: tuple | None = None) -> tuple:
    """a*x + b*y (or a*x + b*y*z), computed exactly in integers and rounded once.

    The moment updates are the hot loop of the golden build: one integer sum and one
    normalisation instead of three correctly rounded operations (and more accurate).
    Zeros and special values take the operation-by-operation path.
    """
    asign, aman, aexp, _ = a
    xsign, xman, xexp, _ = x
    bsign, bman, bexp, _ = b
    ysign, yman, yexp, _ = y
    if z is not None:
        zsign, zman, zexp, _ = z
    else:
        zsign, zman, zexp = 0, 1, 0
    if not (aman and xman and bman and yman and zman):
        q = libmp.mpf_mul(b, y, prec, "n") if z is None else libmp.mpf_mul(libmp.mpf_mul(b, y, prec, "n"), z, prec, "n")
        return libmp.mpf_add(libmp.mpf_mul(a, x, prec, "n"), q, prec, "n")
    p_man, q_man = aman * xman, bman * yman * zman
    total, exp = _exact_sum(-p_man if asign ^ xsign else p_man, aexp + xexp,
                            -q_man if bsign ^ ysign ^ zsign else q_man, bexp + yexp + zexp)
    if not total:
        return libmp.fzero
    sign = 1 if total < 0 else 0
    man = -total if sign else total
    return libmp.normalize(sign, man, exp, libmp.bitcount(man), prec, "n")


def _apply_update(theta: tuple, s: tuple, m: tuple, r: tuple, eps: tuple, prec: int) -> tuple:
    """theta - s*m / (r + eps), computed as one exact fraction and rounded once.

    (theta*(r + eps) - s*m) / (r + eps) with integer numerator and denominator; the
    quotient is taken to at least prec + 3 bits with a sticky bit, so the final
    normalisation rounds it correctly (the method of libmp.mpf_div).
    """
    tsign, tman, texp, _ = theta
    ssign, sman, sexp, _ = s
    msign, mman, mexp, _ = m
    rsign, rman, rexp, _ = r
    esign, eman, eexp, _ = eps
    if not (sman and mman and rman and tman) or rsign or (esign and eman) or (not eman and eexp):
        u = _ieee_div(libmp.mpf_mul(s, m, prec, "n"), libmp.mpf_add(r, eps, prec, "n"), prec, "n")
        return libmp.mpf_sub(theta, u, prec, "n")
    # d = r + eps and the numerator n = theta*d - s*m, exactly
    d_man, d_exp = _exact_sum(rman, rexp, eman, eexp) if eman else (rman, rexp)
    a_man, b_man = tman * d_man, sman * mman
    n, n_exp = _exact_sum(-a_man if tsign else a_man, texp + d_exp,
                          b_man if ssign ^ msign else -b_man, sexp + mexp)
    if not n:
        return libmp.fzero
    sign = 1 if n < 0 else 0
    n = -n if sign else n
    extra = prec + 3 - (libmp.bitcount(n) - libmp.bitcount(d_man))
    if extra > 0:
        n <<= extra
    else:
        extra = 0
    quot, rem = divmod(n, d_man)
    exp = n_exp - d_exp - extra
    if rem:  # sticky bit: the quotient is inexact, beyond the rounding position
        quot = (quot << 1) | 1
        exp -= 1
    return libmp.normalize(sign, quot, exp, libmp.bitcount(quot), prec, "n")


def _low_part(x: tuple, h: float) -> float:
    """The nearest double to x - h, where h is the nearest double to the mpf x.

    x - h is an exact integer multiple of a power of two: computed with Python
    integers (twice as fast as an mpf subtraction) and rounded once by float().
    """
    sign, man, exp, _ = x
    if not man or h == 0.0 or not math.isfinite(h):  # zero, inf, nan, or outside the double range
        return 0.0
    frac, e = math.frexp(h)
    h_man, h_exp = int(frac * 9007199254740992.0), e - 53  # h = h_man * 2**h_exp, |h_man| < 2**53
    x_man = -int(man) if sign else int(man)
    base = min(exp, h_exp)
    diff = (x_man << (exp - base)) - (h_man << (h_exp - base))
    return math.ldexp(float(diff), base)


class MpArith:
    """Correctly rounded arithmetic at ``prec`` bits (round to nearest) on mpf tuples."""

    name = "mpmath"

    def __init__(self, dps: int = 50) -> None:
        ctx = mpmath.MPContext()
        ctx.dps = dps  # a private context: the global mpmath.mp is never touched
        self.ctx = ctx
        self.dps = dps
        self.prec = ctx.prec
        self.zero = libmp.fzero
        self.one = libmp.fone

    # -- conversion ---------------------------------------------------------------
    def scalar(self, x: float) -> tuple:
        """The exact value of a binary64 number."""
        return libmp.from_float(float(x))

    def vector(self, a: np.ndarray) -> list:
        f = libmp.from_float
        return [f(x) for x in np.asarray(a, dtype=np.float64).ravel().tolist()]

    def zeros(self, n: int) -> list:
        return [libmp.fzero] * n

    def to_hi_lo(self, vec: Sequence[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """Double-double split: hi = nearest double, lo = nearest double to (x - hi)."""
        to_f = libmp.to_float
        hi = [to_f(x, rnd="n") for x in vec]
        lo = [_low_part(x, h) for x, h in zip(vec, hi)]
        return np.array(hi, dtype=np.float64), np.array(lo, dtype=np.float64)

    def to_float(self, x: tuple) -> float:
        return libmp.to_float(x, rnd="n")

    # -- elementwise --------------------------------------------------------------
    def _binary(self, fn, a, b):
        prec = self.prec
        if isinstance(a, list):
            if isinstance(b, list):
                return [fn(x, y, prec, "n") for x, y in zip(a, b)]
            return [fn(x, b, prec, "n") for x in a]
        if isinstance(b, list):
            return [fn(a, y, prec, "n") for y in b]
        return fn(a, b, prec, "n")

    def add(self, a, b):
        return self._binary(libmp.mpf_add, a, b)

    def sub(self, a, b):
        return self._binary(libmp.mpf_sub, a, b)

    def mul(self, a, b):
        return self._binary(libmp.mpf_mul, a, b)

    def div(self, a, b):
        """a / b with IEEE semantics at zero divisors: x/0 = +-inf, 0/0 = nan (frameworks agree)."""
        return self._binary(_ieee_div, a, b)

    def sqrt(self, a):
        fn, prec = libmp.mpf_sqrt, self.prec
        if isinstance(a, list):
            return [fn(x, prec, "n") for x in a]
        return fn(a, prec, "n")

    def square(self, a):
        return self.mul(a, a)

    def axpby(self, a, x: list, b, y: list) -> list:
        """a*x + b*y elementwise (a, b scalars), each element rounded once."""
        prec = self.prec
        return [_axpby(a, xi, b, yi, prec) for xi, yi in zip(x, y)]

    def axpbyy(self, a, x: list, b, y: list) -> list:
        """a*x + b*y^2 elementwise (a, b scalars), each element rounded once."""
        prec = self.prec
        return [_axpby(a, xi, b, yi, prec, yi) for xi, yi in zip(x, y)]

    def apply_update(self, theta: list, s, m: list, r: list, eps) -> list:
        """theta - s*m/(r + eps) elementwise (s, eps scalars), each element rounded once."""
        prec = self.prec
        return [_apply_update(ti, s, mi, ri, eps, prec) for ti, mi, ri in zip(theta, m, r)]

    def maximum(self, a, b):
        """max(a, b), NaN-propagating like torch.maximum / tf.maximum."""
        cmp = libmp.mpf_cmp

        def mx(x, y):
            if x == _FNAN or y == _FNAN:
                return _FNAN
            return x if cmp(x, y) >= 0 else y

        return [mx(x, y) for x, y in zip(a, b)] if isinstance(a, list) else mx(a, b)

    def clip(self, a: list, lo, hi) -> list:
        cmp = libmp.mpf_cmp

        def c(x):
            if x == _FNAN:
                return x
            if cmp(x, lo) < 0:
                return lo
            if cmp(x, hi) > 0:
                return hi
            return x

        return [c(x) for x in a]

    def sumsq(self, a: list):
        """sum of squares, correctly rounded per operation at prec bits."""
        add, mul, prec = libmp.mpf_add, libmp.mpf_mul, self.prec
        s = libmp.fzero
        for x in a:
            s = add(s, mul(x, x, prec, "n"), prec, "n")
        return s

    def gt(self, a, b) -> bool:
        return libmp.mpf_cmp(a, b) > 0

    def lt(self, a, b) -> bool:
        return libmp.mpf_cmp(a, b) < 0

    def pow_int(self, a, n: int):
        return libmp.mpf_pow_int(a, n, self.prec, "n")

    def pow_frac(self, a, num: int, den: int):
        """a ** (num/den) for a > 0, as exp(num/den * log a) with guard bits."""
        if num % den == 0:
            return self.pow_int(a, num // den)
        wp = self.prec + 20
        y = libmp.mpf_div(libmp.from_int(num), libmp.from_int(den), wp, "n")
        return libmp.mpf_exp(libmp.mpf_mul(y, libmp.mpf_log(a, wp, "n"), wp, "n"), self.prec, "n")

    # -- vector bookkeeping ---------------------------------------------------------
    def gather(self, a: list, idx: Sequence[int]) -> list:
        return [a[i] for i in idx]

    def scatter(self, a: list, idx: Sequence[int], values: list) -> list:
        out = list(a)
        for i, x in zip(idx, values):
            out[i] = x
        return out

    def concat(self, parts: Sequence[list]) -> list:
        out: list = []
        for p in parts:
            out.extend(p)
        return out


class F64Arith:
    """The same operations in IEEE float64 (numpy); lo parts are zero."""

    name = "float64"
    zero = 0.0
    one = 1.0

    def scalar(self, x: float) -> float:
        return float(x)

    def vector(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, dtype=np.float64).ravel()

    def zeros(self, n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float64)

    def to_hi_lo(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.array(vec, dtype=np.float64), np.zeros(np.shape(vec), dtype=np.float64)

    def to_float(self, x: Any) -> float:
        return float(x)

    def add(self, a, b):
        return np.add(a, b)

    def sub(self, a, b):
        return np.subtract(a, b)

    def mul(self, a, b):
        return np.multiply(a, b)

    def div(self, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.divide(a, b)

    def sqrt(self, a):
        with np.errstate(invalid="ignore"):
            return np.sqrt(a)

    def square(self, a):
        return np.multiply(a, a)

    def axpby(self, a, x, b, y):
        return np.add(np.multiply(a, x), np.multiply(b, y))

    def axpbyy(self, a, x, b, y):
        return np.add(np.multiply(a, x), np.multiply(b, np.multiply(y, y)))

    def apply_update(self, theta, s, m, r, eps):
        with np.errstate(divide="ignore", invalid="ignore"):
            return theta - s * m / (r + eps)

    def maximum(self, a, b):
        return np.maximum(a, b)

    def clip(self, a, lo, hi):
        return np.clip(a, lo, hi)

    def sumsq(self, a) -> float:
        return math.fsum(np.square(np.asarray(a, dtype=np.float64)).tolist())

    def gt(self, a, b) -> bool:
        return bool(a > b)

    def lt(self, a, b) -> bool:
        return bool(a < b)

    def pow_int(self, a, n: int):
        return float(a) ** n

    def pow_frac(self, a, num: int, den: int):
        return float(a) ** (num / den)

    def gather(self, a, idx):
        return np.asarray(a)[..., np.asarray(idx, dtype=np.int64)]

    def scatter(self, a, idx, values):
        # the last axis holds the elements; a leading variant axis (``held=``) broadcasts
        a, values = np.asarray(a), np.asarray(values)
        lead = np.broadcast_shapes(a.shape[:-1], values.shape[:-1])
        out = np.array(np.broadcast_to(a, lead + a.shape[-1:]), copy=True)
        out[..., np.asarray(idx, dtype=np.int64)] = values
        return out

    def concat(self, parts):
        return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]) if len(parts) else np.zeros(0)
