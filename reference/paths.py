"""Arithmetic path classes: how an implementation computes, beside what (its dialect) it computes.

Correct implementations of one dialect differ in three independent ways, each legitimate
(docs/semantics.md, "Where the scalars are rounded"); a class is one value per axis:

- ``powers``, how beta^t (and so bc = 1 - beta^t) is formed:
  ``double``  beta**t in binary64 from the configured beta (torch single-tensor, CPU fused);
  ``rounded`` the same power rounded once to the dtype D, then 1 - beta^t in D (callers of
              tf.raw_ops.ApplyAdam / ResourceApplyAdam pass beta_power as a D scalar);
  ``pow``     pow(beta_D, t) in the dtype D by libm or XLA (exp(t log beta): residual error
              (2 + t |ln beta|) u beyond the correctly rounded power);
  ``square``  repeated squaring of beta_D in D (``jnp.power(beta, t)`` with a Python int t is
              XLA's integer_pow, right-to-left binary exponentiation);
  ``product`` a running product beta_t = beta_{t-1} * beta_D kept in D (TF1 AdamOptimizer,
              paddle's beta_pow accumulators).
  All four are deterministic functions of t and the held beta, so the judge models them
  exactly (``powers_table``); only ``pow``'s libm residual is bounded.
- ``theta``, how the parameter is rounded each step:
  ``once`` round to nearest once (most); ``twice`` two roundings per step; ``kahan`` a
  compensated parameter (torch-optimi, AnyPrecisionAdamW); ``stochastic`` stochastic
  rounding (torchao's bfloat16 path); ``master`` float32 master weights, arithmetic in
  float32, the float16/bfloat16 copy reported (apex, DeepSpeed).
- ``hyper``, where the hyperparameters live: ``dtype`` (rounded to the run's dtype) or
  ``float32`` (held in float32 variables inside a float64 run: tf_keras OptimizerV2; Keras 3
  and tf_keras on TensorFlow form beta^t from ``tf.cast(python_float, float64)``).

An adapter may declare its class (``path_class = "powers=double,theta=once"``; axes left out
are open); one that declares nothing is judged against every class that applies to its dtype,
and the verdict names the class that fits.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .dtypes import fmt

__all__ = ["AXES", "HYPER", "POWERS", "THETA", "PathClass", "candidates", "parse_path_class", "powers_table",
           "pow_residual"]

POWERS = ("double", "rounded", "pow", "square", "product")
THETA = ("once", "twice", "kahan", "stochastic", "master")
HYPER = ("dtype", "float32")
AXES: dict[str, tuple[str, ...]] = {"powers": POWERS, "theta": THETA, "hyper": HYPER}

#: per-step parameter rounding, in ulps of theta: (attained bound on |Delta - delta_impl| as
#: (coefficient of ulp(theta_t), of ulp(theta_t+1)), variance of that error in ulp^2)
#: once: |fl(x) - x| <= ulp/2, uniform (var 1/12); twice: two such roundings; kahan and master:
#: the reported theta is within half an ulp of a more precise one at both ends of the step;
#: stochastic: below one ulp, a two-point distribution (var <= 1/4).
THETA_ROUNDING: dict[str, tuple[float, float, float]] = {
    "once": (0.0, 0.5, 1 / 12),
    "twice": (0.5, 0.5, 1 / 6),
    "kahan": (0.5, 0.5, 1 / 6),
    "stochastic": (0.0, 1.0, 1 / 4),
    "master": (0.5, 0.5, 1 / 6),
}


@dataclass(frozen=True)
class PathClass:
    powers: str = "double"
    theta: str = "once"
    hyper: str = "dtype"

    def key(self) -> str:
        return f"powers={self.powers},theta={self.theta},hyper={self.hyper}"

    def round_dtype(self, dtype: str) -> str:
        """The dtype the arithmetic runs in (float32 for master weights)."""
        return "float32" if self.theta == "master" else dtype

    def applies(self, dtype: str) -> bool:
        if self.hyper == "float32" and dtype != "float64":
            return False
        if self.theta == "master" and dtype not in ("float16", "bfloat16"):
            return False
        if self.theta == "stochastic" and dtype == "float64":
            return False
        return True

    def __str__(self) -> str:
        return self.key()


def parse_path_class(spec: Any) -> dict[str, tuple[str, ...]]:
    """The values an adapter's ``path_class`` allows on each axis (all where it says nothing).

    Accepts None, a ``PathClass``, a mapping axis -> value(s), or a string
    ``"powers=square,theta=kahan"`` (``|`` separates alternatives: ``powers=pow|square``).
    """
    allowed = dict(AXES)
    if spec is None:
        return allowed
    if isinstance(spec, PathClass):
        return {a: (getattr(spec, a),) for a in AXES}
    if isinstance(spec, str):
        items = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                raise ValueError(f"path_class {spec!r}: {part!r} is not axis=value; axes: {', '.join(AXES)}")
            axis, _, value = part.partition("=")
            items[axis.strip()] = tuple(v.strip() for v in value.split("|"))
        spec = items
    if not isinstance(spec, Mapping):
        raise ValueError(f"path_class must be a string, a mapping or a PathClass, not {type(spec).__name__}")
    for axis, values in spec.items():
        if axis not in AXES:
            raise ValueError(f"path_class: unknown axis {axis!r}; axes: {', '.join(AXES)}")
        values = (values,) if isinstance(values, str) else tuple(values)
        bad = [v for v in values if v not in AXES[axis]]
        if bad:
            raise ValueError(f"path_class: {axis}={bad[0]!r} is not one of {', '.join(AXES[axis])}")
        allowed[axis] = values
    return allowed


def candidates(declared: Any, dtype: str) -> list[PathClass]:
    """Every class the declaration allows that applies to ``dtype`` (declaration order kept)."""
    allowed = parse_path_class(declared)
    out = [PathClass(p, t, h) for p, t, h in itertools.product(allowed["powers"], allowed["theta"], allowed["hyper"])]
    out = [c for c in out if c.applies(dtype)]
    if allowed["hyper"] == HYPER and allowed["powers"] == POWERS:
        # undeclared: the frameworks that hold hyperparameters in float32 (TF/Keras) form beta^t by pow
        out = [c for c in out if c.hyper == "dtype" or c.powers in ("double", "rounded", "pow")]
    if not out:
        raise ValueError(f"path_class {declared!r} allows no class for {dtype} (master weights need float16 or "
                         f"bfloat16, stochastic rounding a dtype narrower than float64, hyper=float32 float64)")
    return out


def powers_table(base: float, steps: int, powers: str, dtype: str) -> np.ndarray:
    """beta^t for t = 1..steps as an implementation of ``powers`` forms it, then bc = 1 - beta^t.

    Returns bc (float64 values). ``base``: beta as the implementation holds it (the configured
    double for ``double``). In D the products and 1 - beta^t are rounded like D does
    (numpy's float16/float32 arithmetic is IEEE; bfloat16 through ``Format.round``).
    """
    F = fmt(dtype)
    r = F.round if dtype == "bfloat16" else (lambda x: np.asarray(x, dtype=np.float64)
                                             .astype(_NP[dtype]).astype(np.float64))
    t = np.arange(1, steps + 1)
    if powers == "double":
        return np.array([1.0 - base ** int(k) for k in t])
    if powers in ("pow", "rounded"):  # the correctly rounded power; pow's libm residual is bounded (pow_residual)
        p = r(np.array([base ** int(k) for k in t]))
    elif powers == "square":
        p = np.array([_integer_pow(base, int(k), r) for k in t])
    elif powers == "product":
        p = np.empty(steps)
        acc = 1.0
        for i in range(steps):
            acc = float(r(np.array([acc * base]))[0])
            p[i] = acc
    else:
        raise ValueError(f"powers={powers!r}; known: {', '.join(POWERS)}")
    return r(1.0 - p)


_NP = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def _integer_pow(x: float, y: int, r) -> float:
    """x^y by right-to-left binary exponentiation, each product rounded by r (jax.lax integer_pow)."""
    acc = None
    while y > 0:
        if y & 1:
            acc = x if acc is None else float(r(np.array([acc * x]))[0])
        y >>= 1
        if y:
            x = float(r(np.array([x * x]))[0])
    return 1.0 if acc is None else acc


def pow_residual(powers: str, beta: float, t: np.ndarray, u: float, exact_reference: bool) -> np.ndarray:
    """Relative error of beta^t that the judge does not model, for each t.

    exact_reference: the run is compared with the exact golden (float64 runs), so the whole
    error of forming beta^t is unmodelled: pow (2 + t|ln beta|) u, double 2u (libm pow within an
    ulp, then a product), square and product t u (a relative error e of x becomes 2e + u
    after a squaring, so (2^k - 1) u after k of them; a product of t factors errs by t u).
    Otherwise the path is modelled exactly and only libm's residual in ``pow`` is left.
    """
    t = np.asarray(t, dtype=np.float64)
    lnb = abs(math.log(beta)) if 0 < beta < 1 else 0.0
    if powers == "pow":
        return (2.0 + t * lnb) * u
    if not exact_reference:
        return np.zeros_like(t)
    if powers in ("double", "rounded"):
        return np.full_like(t, 2.0 * u)
    return t * u
