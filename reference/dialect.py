"""Dialects: the semantic axes on which Adam implementations disagree, as data.

A ``Dialect`` holds one value per axis; presets name what real frameworks do
(sources in docs/semantics.md, re-checked against the installed code):

========================  ==================================================
axis                      values
========================  ==================================================
epsilon                   "standard": lr * m_hat / (sqrt(v_hat) + eps)
                          (Kingma & Ba 2015, Algorithm 1; PyTorch, optax);
                          "hat": lr*sqrt(bc2)/bc1 * m / (sqrt(v) + eps_hat)
                          (the formula before section 2.1 of the paper; all
                          Keras generations, torch.optim.SparseAdam)
bias_correction           True / False (bc1 = bc2 = 1)
amsgrad_max               "raw": vmax = max(vmax, v), corrected afterwards
                          (PyTorch, Keras); "corrected": vmax = max(vmax,
                          v / bc2) (optax scale_by_amsgrad)
sparse_rows               "dense": untouched rows decay like zero gradients
                          (Keras, optax); "lazy": only touched rows update
                          (torch.optim.SparseAdam)
clip                      "exact": g * c / n when n > c; "tf": g * c*min(1/n,
                          1/c) (equal to exact in exact arithmetic: it differs
                          by rounding only, and always multiplies); "torch":
                          g * min(c / (n + 1e-6), 1) (torch.nn.utils.clip_grad_norm_)
schedule_step             "t-1": schedules and legacy decay see the step count
                          before the increment (Keras iterations, optax count,
                          torch LR schedulers stepped after the optimizer);
                          "t": after it
nonfinite                 "propagate": a step with a NaN or infinite gradient
                          entry is applied and the non-finite values flow into
                          m, v and theta (Kingma & Ba; every optimizer alone);
                          "skip": such a step is not applied at all: theta, m,
                          v, vmax and the step count stay as they were
                          (torch.amp.GradScaler, Keras' LossScaleOptimizer,
                          optax.apply_if_finite)
========================  ==================================================

Weight decay (coupled L2 or decoupled) is a request of the run, so it lives in
``AdamConfig.weight_decay_mode``; which one an implementation's ``weight_decay``
argument *means* is what ``adamconf fingerprint`` reports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

__all__ = ["AXES", "Dialect", "PRESETS", "resolve_dialect"]


@dataclass(frozen=True)
class Dialect:
    epsilon: Literal["standard", "hat"] = "standard"
    bias_correction: bool = True
    amsgrad_max: Literal["raw", "corrected"] = "raw"
    sparse_rows: Literal["dense", "lazy"] = "dense"
    clip: Literal["exact", "tf", "torch"] = "exact"
    schedule_step: Literal["t-1", "t"] = "t-1"
    nonfinite: Literal["propagate", "skip"] = "propagate"

    def __post_init__(self) -> None:
        for axis, allowed in AXES.items():
            value = getattr(self, axis)
            if value not in allowed:
                raise ValueError(f"Dialect.{axis}={value!r} is not one of {allowed}")
        if self.epsilon == "hat" and self.amsgrad_max == "corrected":
            raise ValueError("Dialect(epsilon='hat', amsgrad_max='corrected') has no defined update: "
                             "the hat form divides the raw v; use amsgrad_max='raw'")

    def replace(self, **axes) -> "Dialect":
        return dataclasses.replace(self, **axes)

    def key(self, axes: tuple[str, ...] | None = None) -> str:
        """A stable short id, e.g. ``eps=hat,bc=on``, of the given axes (all by default)."""
        axes = tuple(AXES) if axes is None else axes
        return ",".join(f"{_SHORT[a]}={_fmt(getattr(self, a))}" for a in axes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_key(cls, key: str) -> "Dialect":
        long = {v: k for k, v in _SHORT.items()}
        kwargs = {}
        for part in filter(None, key.split(",")):
            short, _, value = part.partition("=")
            axis = long[short]
            kwargs[axis] = {"on": True, "off": False}.get(value, value) if axis == "bias_correction" else value
        return cls(**kwargs)


AXES: dict[str, tuple] = {
    "epsilon": ("standard", "hat"),
    "bias_correction": (True, False),
    "amsgrad_max": ("raw", "corrected"),
    "sparse_rows": ("dense", "lazy"),
    "clip": ("exact", "tf", "torch"),
    "schedule_step": ("t-1", "t"),
    "nonfinite": ("propagate", "skip"),
}
_SHORT = {"epsilon": "eps", "bias_correction": "bc", "amsgrad_max": "amsmax",
          "sparse_rows": "sparse", "clip": "clip", "schedule_step": "sched", "nonfinite": "nonfinite"}


def _fmt(value) -> str:
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else str(value)


PRESETS: dict[str, Dialect] = {
    # Kingma & Ba (2015), Algorithm 1; no clipping or AMSGrad in the paper.
    "kingma": Dialect(),
    # torch.optim.Adam/AdamW (all paths) with torch.nn.utils.clip_grad_norm_.
    "pytorch": Dialect(clip="torch"),
    # torch.optim.Adam/AdamW stepped through torch.amp.GradScaler: a non-finite step is skipped.
    "pytorch-amp": Dialect(clip="torch", nonfinite="skip"),
    # torch.optim.SparseAdam: lazy rows, epsilon-hat form.
    "pytorch-sparse": Dialect(epsilon="hat", sparse_rows="lazy", clip="torch"),
    # Keras 3, tf_keras (legacy OptimizerV2 and the new optimizer), tf.raw_ops.
    "keras": Dialect(epsilon="hat", clip="tf"),
    # optax.adam / adamw / amsgrad with optax.clip_by_global_norm.
    "optax": Dialect(amsgrad_max="corrected"),
}


def resolve_dialect(dialect: "str | Dialect") -> Dialect:
    """A Dialect from a preset name or a Dialect; unknown names list the presets."""
    if isinstance(dialect, Dialect):
        return dialect
    try:
        return PRESETS[dialect]
    except KeyError:
        raise ValueError(f"unknown dialect preset {dialect!r}; known presets: {sorted(PRESETS)}. "
                         "Pass a adamconf.reference.Dialect(...) for any other combination.") from None
