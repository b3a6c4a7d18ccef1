"""How an implementation holds the hyperparameters: the variants the judge models exactly.

A float32 Adam does not compute with beta2 = 0.999 but with numbers near it, and
implementations choose differently (docs/semantics.md, "Where the scalars are rounded"):

- form "A", (fl(beta), 1 - fl(beta)): the moment kernel gets beta as a D scalar and forms
  1 - beta in D, exactly (tf.raw_ops.ResourceApplyAdam, tf_keras legacy);
- form "B", (1 - fl(1-beta), fl(1-beta)): a lerp / ``m += (g - m) * (1 - beta)`` with
  1 - beta formed in double and rounded (torch exp_avg.lerp_, Keras 3);
- form "C", (fl(beta), fl(1-beta)): both rounded separately, so they do not sum to 1
  (torch exp_avg_sq.mul_(beta2).addcmul_(..., value=1-beta2), optax);
- form "X", (beta, 1 - beta) in double: with hyperparameters held in float32 inside a float64
  run, the moments may still use the double (Keras 3 forms only beta^t from float32).

Beside the forms, each variant carries its arithmetic path's bias corrections
(``paths.powers_table``: beta^t by double pow, pow in D, repeated squaring or a running
product) and, for ``hyper=float32``, lr_t either as the double or rounded to float32.
``HeldSet`` stacks the variants so that the float64 model runs all of them at once
(a leading variant axis); what is left between a correct run and its variant is the
rounding *during* the run, which the rounding-only budget bounds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .config import AdamConfig
from .dtypes import fmt
from .paths import PathClass, powers_table

__all__ = ["Held", "HeldSet", "held_variants"]


@dataclass(frozen=True)
class Held:
    """One way of holding the hyperparameters (a variant of the float64 model)."""

    name: str
    powers: str
    hyper: str
    beta1: float
    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    pow_base1: float
    pow_base2: float
    eps: float
    lr_float32: bool = False
    weight_decay: float = 0.0


def _forms(F, beta: float, with_double: bool) -> dict[str, tuple[float, float]]:
    r = lambda x: float(F.round([x])[0])  # noqa: E731
    out = {"A": (r(beta), 1.0 - r(beta)), "B": (1.0 - r(1.0 - beta), r(1.0 - beta)), "C": (r(beta), r(1.0 - beta))}
    if with_double:
        out["X"] = (beta, 1.0 - beta)
    return out


def held_variants(config: AdamConfig, dtype: str, classes: list[PathClass]) -> list[Held]:
    """The distinct ways implementations of ``classes`` hold ``config``'s hyperparameters in ``dtype``."""
    seen: dict[tuple, Held] = {}
    for c in classes:
        D = c.round_dtype(dtype)
        F_h = fmt("float32" if c.hyper == "float32" else D)
        double = c.hyper == "float32"
        f1, f2 = _forms(F_h, config.beta1, double), _forms(F_h, config.beta2, double)
        # eps as the dtype holds it; with hyper=float32 also as float32 (tf_keras's epsilon is a Python float,
        # Keras 3 and others may cast it through float32)
        eps_forms = (float(fmt(D).round([config.eps])[0]),) + ((float(F_h.round([config.eps])[0]),) if double else ())
        rb = lambda b: float(F_h.round([b])[0])  # noqa: E731
        p1, p2 = (config.beta1, config.beta2) if c.powers in ("double", "rounded") else \
            (rb(config.beta1), rb(config.beta2))
        # weight decay: Keras casts it like beta (tf.cast of a Python float passes through float32)
        wd_forms = sorted({config.weight_decay} | ({float(F_h.round([config.weight_decay])[0])} if double else set()))
        for (n1, (b1, omb1)), (n2, (b2, omb2)), lr32, eps, wd in itertools.product(
                f1.items(), f2.items(), (False, True) if double else (False,), sorted(set(eps_forms)), wd_forms):
            key = (c.powers, D, b1, omb1, b2, omb2, p1, p2, eps, lr32, wd)
            if key not in seen:
                name = (f"m:{n1},v:{n2},powers:{c.powers}" + (",lr:float32" if lr32 else "")
                        + (",eps:float32" if double and eps != config.eps else "")
                        + (",wd:float32" if wd != config.weight_decay else ""))
                seen[key] = Held(name, c.powers, c.hyper, b1, omb1, b2, omb2, p1, p2, eps, lr32, wd)
    return list(seen.values())


@dataclass
class HeldSet:
    """Variants stacked for the float64 model: (V, 1) scalars and (V, T) bias corrections."""

    variants: list[Held]
    dtype: str   # the dtype the powers are formed in
    steps: int
    beta1: np.ndarray = field(init=False)
    one_minus_beta1: np.ndarray = field(init=False)
    beta2: np.ndarray = field(init=False)
    one_minus_beta2: np.ndarray = field(init=False)
    eps: np.ndarray = field(init=False)
    weight_decay: np.ndarray = field(init=False)
    bc1: np.ndarray = field(init=False)
    bc2: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        col = lambda name: np.array([[getattr(h, name)] for h in self.variants], dtype=np.float64)  # noqa: E731
        self.beta1, self.one_minus_beta1 = col("beta1"), col("one_minus_beta1")
        self.beta2, self.one_minus_beta2 = col("beta2"), col("one_minus_beta2")
        self.eps = col("eps")
        self.weight_decay = col("weight_decay")
        tables: dict[tuple, np.ndarray] = {}

        def table(base: float, powers: str) -> np.ndarray:
            key = (base, powers)
            if key not in tables:
                tables[key] = powers_table(base, self.steps, powers, self.dtype)
            return tables[key]

        self.bc1 = np.stack([table(h.pow_base1, h.powers) for h in self.variants]) if self.steps else \
            np.zeros((len(self.variants), 0))
        self.bc2 = np.stack([table(h.pow_base2, h.powers) for h in self.variants]) if self.steps else \
            np.zeros((len(self.variants), 0))
        self._lr32 = np.array([[h.lr_float32] for h in self.variants])

    def __len__(self) -> int:
        return len(self.variants)

    def bias_corrections(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return self.bc1[:, t - 1:t], self.bc2[:, t - 1:t]

    def lrs(self, config: AdamConfig, ks: list[int], lr_exact: list[float]) -> np.ndarray:
        """``lr`` at the schedule indices ``ks`` (the exact lr_t of each given): (len(ks), V, 1)."""
        exact = np.array(lr_exact, dtype=np.float64).reshape(-1, 1, 1)
        if not self._lr32.any():
            return np.repeat(exact, len(self), axis=1)
        f32 = lambda x: float(np.float32(x))  # noqa: E731
        held32 = [f32(config.base_lr(k)) / (1.0 + f32(config.decay) * k) if config.decay else f32(config.base_lr(k))
                  for k in ks]
        return np.where(self._lr32[None], np.array(held32, dtype=np.float64).reshape(-1, 1, 1), exact)

    def lr(self, config: AdamConfig, k: int, lr_t: float) -> np.ndarray:
        """lr_t per variant: the exact one, or (lr:float32) tf_keras OptimizerV2's, whose learning rate and
        decay are float32 variables cast to the run's dtype: fl32(lr(k)) / (1 + fl32(decay) k)."""
        if not self._lr32.any():
            return np.full(self._lr32.shape, float(lr_t))
        f32 = lambda x: float(np.float32(x))  # noqa: E731
        held32 = f32(config.base_lr(k)) / (1.0 + f32(config.decay) * k) if config.decay else f32(config.base_lr(k))
        return np.where(self._lr32, held32, float(lr_t))
