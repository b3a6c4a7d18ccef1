"""Deterministic scenario inputs, exact in every dtype a scenario runs in.

Values come from PCG64's raw 64-bit output (``random_raw``, whose stream numpy
guarantees) through integer arithmetic only: no libm, no distribution method
whose algorithm may change between numpy versions. A draw is an approximately
normal integer (the sum of four uniform 16-bit integers, centred; Irwin-Hall)
cut to 8 significant bits and scaled by a power of two, so every value is
exactly representable in bfloat16, float16 (within its range), float32 and
float64, and the golden computed from it is the exact answer for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from adamconf.reference.grads import SparseGrad

__all__ = ["Inputs", "generate", "representable"]

_IRWIN_HALL_CENTRE = 131070  # 4 * 32767.5: the mean of the sum of four draws in [0, 65535]


@dataclass(frozen=True)
class Inputs:
    """How a scenario's inputs are made: a generator name, a seed and its options."""

    generator: str
    seed: int
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def opt(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def to_dict(self) -> dict:
        return {"generator": self.generator, "seed": self.seed, "options": {k: v for k, v in self.options}}


class _Stream:
    """Approximately N(0, 1) values with 8 significant bits, from a PCG64 raw stream."""

    def __init__(self, seed: int) -> None:
        self._bits = np.random.PCG64(seed)

    def raw(self, n: int) -> np.ndarray:
        return self._bits.random_raw(n).astype(np.uint64) if n else np.zeros(0, dtype=np.uint64)

    def normal8(self, shape) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64))
        r = self.raw(n)
        parts = [(r >> np.uint64(16 * j)) & np.uint64(0xFFFF) for j in range(4)]
        s = sum(p.astype(np.int64) for p in parts) - _IRWIN_HALL_CENTRE
        # s is an integer in [-2^17, 2^17] with std 2^16/sqrt(3) ~ 2^15.2; keep 8 significant bits
        mag = np.abs(s)
        _, bitlen = np.frexp(mag.astype(np.float64))  # exact: |s| < 2^53
        shift = np.maximum(bitlen - 8, 0).astype(np.int64)
        mag = (mag >> shift) << shift
        # dividing by 2^15 gives std ~1.15, bounded by 4
        return (np.sign(s) * mag).astype(np.float64).reshape(shape) * 2.0 ** -15

    def integers(self, n: int, high: int) -> np.ndarray:
        """n integers in [0, high) (modulo bias is irrelevant here)."""
        return (self.raw(n) % np.uint64(high)).astype(np.int64)

    def distinct(self, pool: list, n: int) -> list:
        """n distinct items of pool (a partial Fisher-Yates shuffle)."""
        items = list(pool)
        r = self.raw(n)
        for i in range(n):
            j = i + int(r[i] % np.uint64(len(items) - i))
            items[i], items[j] = items[j], items[i]
        return items[:n]


def _normal(spec: Inputs, shapes, steps, stream: _Stream):
    """theta0 = theta_scale*N, g_t = grad_scale*N (optionally a per-step scale profile)."""
    ts, gs = spec.opt("theta_scale", 2.0 ** -7), spec.opt("grad_scale", 1.0)
    params = [stream.normal8(s) * ts for s in shapes]
    profile = spec.opt("profile", "flat")
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    # one draw for all steps: the same stream order as step by step, tensor by tensor
    block = stream.normal8((steps, sum(sizes)))
    bounds = np.cumsum([0] + sizes)
    grads = []
    for t in range(1, steps + 1):
        scale = gs * _profile_scale(profile, t, steps)
        row = [block[t - 1, a:b].reshape(s) * scale for a, b, s in zip(bounds[:-1], bounds[1:], shapes)]
        if spec.opt("tensor_scales") is not None:  # powers of two per tensor: values stay exact
            row = [g * f for g, f in zip(row, spec.opt("tensor_scales"))]
        if profile == "sign_flip":
            row = [np.abs(g) * (1.0 if t % 2 else -1.0) for g in row]
        if profile == "zero_then_normal" and t <= steps // 3:
            row = [np.zeros(s) for s in shapes]
        if spec.opt("zero_tensor") is not None:
            row[spec.opt("zero_tensor")] = np.zeros(shapes[spec.opt("zero_tensor")])
        grads.append(row)
    return params, grads


def _profile_scale(profile: str, t: int, steps: int) -> float:
    """A power-of-two scale per step (powers of two keep values exact)."""
    if profile == "decreasing":  # large early gradients, then small: v decreases (AMSGrad)
        return 2.0 ** (4 - min(8, (8 * (t - 1)) // max(1, steps // 2)))
    if profile == "increasing":
        return 2.0 ** (-4 + min(8, (8 * (t - 1)) // max(1, steps)))
    if profile == "norm_sweep":  # gradient norms that cross a clip threshold both ways
        return 2.0 ** ((t % 7) - 3)
    return 1.0


def _sparse(spec: Inputs, shapes, steps, stream: _Stream):
    """Row-sparse gradients for tensor 0; dense for the others.

    Options: nnz (distinct rows drawn per step), rows_early (rows touched only in the
    first third), repeats (how many of the drawn rows appear once more), empty_every
    (an empty gradient every k steps), empty_at (the steps whose gradient is empty),
    never (rows never touched).
    """
    params, dense = _normal(spec, shapes, steps, stream)
    n_rows = shapes[0][0]
    never = set(range(n_rows - spec.opt("never", 2), n_rows))
    early = set(range(spec.opt("rows_early", 2)))
    nnz, repeats, empty_every = spec.opt("nnz", 4), spec.opt("repeats", 1), spec.opt("empty_every", 0)
    empty_at = set(spec.opt("empty_at", ()))
    pool = [r for r in range(n_rows) if r not in never]
    grads = []
    for t in range(1, steps + 1):
        row = list(dense[t - 1])
        if (empty_every and t % empty_every == 0) or t in empty_at:
            idx = np.zeros(0, dtype=np.int64)
        else:
            allowed = pool if t <= steps // 3 else [r for r in pool if r not in early]
            idx = np.array(stream.distinct(allowed, min(nnz, len(allowed))), dtype=np.int64)
            if repeats and idx.size:  # repeats only where asked: they are their own axis of trouble
                idx = np.concatenate([idx, idx[stream.integers(repeats, idx.size)]])
        vals = stream.normal8((idx.size, *shapes[0][1:])) * spec.opt("grad_scale", 1.0)
        row[0] = SparseGrad(idx, vals, tuple(shapes[0]))
        grads.append(row)
    return params, grads


def _nonfinite(spec: Inputs, shapes, steps, stream: _Stream):
    """Normal inputs with one non-finite gradient entry at step ``at``."""
    params, grads = _normal(spec, shapes, steps, stream)
    at, value = spec.opt("at", 3), spec.opt("value", "nan")
    bad = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[value]
    g = grads[at - 1][0].copy()
    g.flat[0] = bad
    grads[at - 1][0] = g
    return params, grads


_GENERATORS: dict[str, Callable] = {"normal": _normal, "sparse": _sparse, "nonfinite": _nonfinite}


def generate(spec: Inputs, shapes, steps: int):
    """(params0, grads) for a scenario: float64 arrays, grads one list per step."""
    try:
        gen = _GENERATORS[spec.generator]
    except KeyError:
        raise ValueError(f"unknown input generator {spec.generator!r}; known: {sorted(_GENERATORS)}") from None
    return gen(spec, [tuple(s) for s in shapes], steps, _Stream(spec.seed))


def representable(a: np.ndarray, dtype: str) -> bool:
    """True if every finite value of ``a`` is exact in ``dtype`` (non-finite values pass)."""
    a = np.asarray(a, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if dtype == "float64":
        return True
    if dtype == "float16":
        return bool(np.all(finite.astype(np.float16).astype(np.float64) == finite))
    f32 = finite.astype(np.float32)
    if not np.all(f32.astype(np.float64) == finite):
        return False
    if dtype == "bfloat16":
        return bool(np.all((f32.view(np.uint32) & np.uint32(0xFFFF)) == 0))
    return True
