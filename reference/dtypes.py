"""Floating-point formats: unit roundoff, ulp, and rounding to a format (bfloat16 included)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["FORMATS", "Format", "fmt"]


@dataclass(frozen=True)
class Format:
    """An IEEE-style binary format with ``p`` significand bits (the hidden bit counted)."""

    name: str
    p: int
    emin: int  # exponent of the smallest normal number, 2**emin
    max: float

    @property
    def u(self) -> float:
        """Unit roundoff of round-to-nearest: 2^-p."""
        return 2.0 ** -self.p

    @property
    def tiny(self) -> float:
        """Smallest normal number (also the error bound of a flush-to-zero)."""
        return 2.0 ** self.emin

    @property
    def eta(self) -> float:
        """Smallest subnormal: the spacing of the numbers below ``tiny``."""
        return 2.0 ** (self.emin - self.p + 1)

    def ulp(self, x) -> np.ndarray:
        """Spacing of the format at |x| (``eta`` below ``tiny``; inf/nan give nan).

        For |x| = f 2^e, 0.5 <= f < 1, the spacing is 2^(e - p). It is formed from the exponent field of
        |x|'s binary64 encoding, E = e + 1022 for a normal |x|, as the binary64 number whose exponent field
        is E + 1 - p (so 2^(E - 1022 - p)); only where that power is no normal binary64 number (float64
        spacings below 2^-1022, near its smallest normal) is it taken by ``np.ldexp``. Exactly
        ``ldexp(1, frexp(|x|)[1] - p)`` (tests/test_budget.py), at a third of its cost.
        """
        x = np.abs(np.asarray(x, dtype=np.float64))
        field_ = (x.view(np.uint64) >> np.uint64(52)).astype(np.int64)  # the sign bit is clear: |x|
        out_field = field_ + (1 - self.p)
        spacing = (np.maximum(out_field, 1).astype(np.uint64) << np.uint64(52)).view(np.float64)
        low = (out_field < 1) & (x >= self.tiny)
        if low.any():  # a subnormal binary64 spacing (float64 only)
            with np.errstate(over="ignore"):
                spacing = np.where(low, np.ldexp(1.0, field_ - 1022 - self.p), spacing)
        spacing = np.where(x < self.tiny, self.eta, spacing)
        return np.where(np.isfinite(x), spacing, np.nan)

    def round(self, x) -> np.ndarray:
        """Round float64 values to this format (round to nearest even), returned as float64."""
        x = np.asarray(x, dtype=np.float64)
        if self.name == "float64":
            return x.copy()
        if self.name == "float32":
            with np.errstate(over="ignore"):
                return x.astype(np.float32).astype(np.float64)
        if self.name == "float16":
            with np.errstate(over="ignore"):
                return x.astype(np.float16).astype(np.float64)
        # bfloat16: round the float32 rounding's bit pattern to its upper 16 bits, to nearest even.
        # Double rounding (64 -> 32 -> 16) can differ from direct rounding only at exact ties of the
        # second step, which is harmless for representation-error bounds.
        with np.errstate(over="ignore"):
            bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        out = rounded.astype(np.uint32).view(np.float32).astype(np.float64)
        return np.where(np.isnan(x), x, out)

    def rel_error(self, value: float) -> float:
        """|round(value) - value| / |value|: the representation error of a hyperparameter."""
        return _rel_error(self, float(value))

    def holds(self, a) -> bool:
        a = np.asarray(a, dtype=np.float64)
        finite = np.isfinite(a)
        return bool(np.array_equal(self.round(a[finite]), a[finite]))


@functools.lru_cache(maxsize=4096)  # the budget asks for the same few hyperparameters at every step
def _rel_error(F: Format, value: float) -> float:
    if value == 0 or not np.isfinite(value):
        return 0.0
    return float(abs(F.round(np.array([value]))[0] - value) / abs(value))


FORMATS = {
    "float16": Format("float16", 11, -14, 65504.0),
    "bfloat16": Format("bfloat16", 8, -126, 3.3895313892515355e38),
    "float32": Format("float32", 24, -126, 3.4028234663852886e38),
    "float64": Format("float64", 53, -1022, 1.7976931348623157e308),
}


def fmt(dtype: str) -> Format:
    try:
        return FORMATS[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; known: {sorted(FORMATS)}") from None
