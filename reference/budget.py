r"""The error budget: how far a *correct* Adam in a dtype may be from its reference.

Derivation (first-order rounding error analysis; u = 2^-p is the unit roundoff
of the dtype D, r(x) = |fl_D(x) - x| / |x| the representation error of a
hyperparameter x in D, "tiny" the smallest normal of D). All magnitudes come
from the float64 model of the same dialect (``trajectory(arithmetic="float64")``, computed by
``model.model_trace``: the same numbers to the bit, all tensors and steps at once),
whose own error is ~1e-16 relative: negligible in a bound against a narrower dtype.

The reference is either the exact golden (``held=False``: the representation of beta1,
beta2 and eps in D is bounded here) or a variant of the float64 model that holds them
exactly as the implementation does (``held=True``, ``reference.held``: no representation
error is left for them). What depends on the arithmetic path class (``reference.paths``),
the final rounding of theta and the part of beta^t that is not modelled, is added by the
judge (``reference.judge``); here is everything else.

1. Common (per step) relative error of the step size, the same for all elements:

   rho_lr   = r(lr_t as D holds it) (+ 3u when a schedule or legacy decay computes it)
   rho_bc   = (beta^t / bc) t r(beta) + u
              (bc = 1 - beta^t: an error e in beta^t becomes e beta^t / bc; beta rounded by r
              makes beta^t off by t r; how beta^t itself is formed is the path class's:
              ``amplification`` = beta^t / bc is what its residual is multiplied by;
              docs/semantics.md "Where the scalars are rounded")
   rho_step = rho_lr + rho_bc1 + rho_bc2 / 2 + N_SCALAR u

2. Per element, the update formula given m and v: N_ELEM = 8 roundings (the
   longest known chain: optax's m/bc1, v/bc2, + eps_root, sqrt, + eps, /, * lr,
   and the cast of the update to D), each at most u relative: N_ELEM u.
   The rounding of eps: r(eps) eps / (S + eps), S = sqrt(v_hat).

3. The moments accumulate errors (running error analysis, Wilkinson):

   E^m_t = beta1 E^m_{t-1} + C_M u (|m_{t-1}| + (1-beta1)|g_t|)             rounding
           + r(beta1)|m_{t-1}| + r1(beta1)(1-beta1)|g_t| + (1-beta1) e^g_t   representation, gradient
   E^v_t = beta2 E^v_{t-1} + C_V u (v_{t-1} + (1-beta2) g_t^2)
           + r(beta2) v_{t-1} + r1(beta2)(1-beta2) g_t^2 + (1-beta2)(2|g_t| + e^g_t) e^g_t

   with C_M = 3 (beta*m, (1-beta)*g, +; or torch's lerp m + (1-beta)(g-m): the same
   bound since (1-beta)|m| <= |m|), C_V = 4 (g*g, two products, +), r1(beta) the
   error of 1 - beta as an implementation may form it: max(r(1-beta),
   u + r(beta) beta / (1-beta)). AMSGrad: |max(a,b) - max(a',b')| <= max(|a-a'|,|b-b'|).
   e^g, the error of the gradient entering the moments: clipping by norm
   ((N+1)/2 + 3) u + r(c) (the norm of N squares summed in any order, sqrt, c/n,
   g*f; "torch" adds the rounding of its 1e-6; "tf" multiplies even when idle: 2u)
   + N tiny / n^2 (squares and partial sums below tiny lost: ``_norm_underflow``; where that loss
   can reach the whole norm, up to no clipping at all: 1 / f - 1 for a model factor f)
   + tiny / max(n, c) per element where TF forms g c before dividing (``_clip_product_underflow``),
   clip by value r(c) c on clipped entries, repeated sparse rows summed in D gamma_{c-1} sum |g_j|
   (``_coalesce_error``), coupled L2 u|g + w theta| + (u + r(w))|w theta|
   + w T_t (T_t: the trajectory bound, fed back, with the widest class's rounding of theta).

4. The applied update Delta_t = theta_{t+1} - theta_t (exact in float64 for D narrower
   than float64) differs from the reference's by at most F_t + (what the judge adds), with

   F_t = |U| (rho_step + N_ELEM u + eps term) + (dU/dm) E^m_t k + |U| (S - S') / (S' + eps)
         + [decoupled] lr_t w |theta| (rho_lr + r(w) + 2u) + r_keep |theta| + lr_t w T_t
           (r_keep <= u: the factor 1 - lr_t w rounded to D, ``_r_keep``)
         + N_ELEM tiny                                     underflow, flush-to-zero

   with dU/dm = step size / (S + eps), S' = S sqrt(1 - x) at v's relative error x = E^v'_t / v'_t
   (v' the v the update uses), k = (S + eps) / (S' + eps): v's error taken exactly, not to first
   order |U| (w/2) x with w = S / (S + eps) (``_v_error_in_update``). The judge adds
   the final rounding of theta of the class and |U| times the unmodelled part of beta^t;
   the trajectory bound is the running sum of the per-step bounds (theta_0 is exact), the
   state bounds are E^m, E^v, E^vmax. These bounds are worst cases: a correct
   implementation stays well inside them.

5. The mean-error (bias) statistic resolves what a worst case cannot: a small relative
   error common to every update. With s = sign(delta),
   Z = sum s (Delta - delta) / sum |delta| equals eps exactly for updates scaled by
   1 + eps. The representation of the hyperparameters (float32(0.999) makes 1 - beta2
   wrong by 1.3e-5) is a systematic error of that very size, so delta here is not the
   golden but the variant of the float64 model that holds the hyperparameters *as the
   implementation does* (``reference.held``; the judge groups v- and eps-dominated updates so
   that no variant can absorb a common factor, docs/verdicts.md). What
   is left of Z for a correct implementation is (i) systematic rounding, bounded in the
   worst case (the per-step scalars, clipping, the unmodelled part of beta^t), and
   (ii) rounding errors that are independent across elements and zero-mean (Higham &
   Mary, "A new approach to probabilistic rounding error analysis", SIAM J. Sci.
   Comput. 2019): the final rounding of theta (variance ulp^2/12 for round to nearest,
   added by the judge per class), the formula (N_ELEM u^2/3 relative), and the moments'
   rounding (variance u^2/3 per operation, propagated with beta^2, and taken as fully
   correlated across the steps of an element). The threshold is  S_sys + LAMBDA sigma_Z
   with LAMBDA = 6: by the central limit theorem over the >= 10^3 terms of the scenarios
   that enable it, a correct implementation exceeds it with probability ~2e-9. It is
   applied to the window of steps t >= t0 whose threshold is smallest (chosen from the
   model, not the run) and to every recorded step alone with its own threshold.
   Measured (tests/test_budget.py, docs/verdicts.md): a float32 Adam with every update
   scaled by 1 +- 1e-5 fails dense-dyadic at 12.6 budgets and long-default-2000 (default
   hyperparameters) at 5.8; correct ones use 0.1-0.3 of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .model import Trace, model_trace
from .config import AdamConfig
from .dialect import Dialect, resolve_dialect
from .dtypes import Format, fmt
from .grads import SparseGrad
from .paths import POWERS, pow_residual

__all__ = ["Budget", "amplification", "compute_budget", "C_M", "C_V", "LAMBDA", "N_ELEM", "N_SCALAR"]

N_ELEM = 8     # roundings in the per-element update formula (item 2)
N_SCALAR = 4   # roundings in the per-step scalars lr/bc1, sqrt(bc2), lr*sqrt(bc2)/bc1 (item 1)
C_M = 3        # roundings in the first-moment update (item 3)
C_V = 4        # roundings in the second-moment update (item 3)
LAMBDA = 6.0   # standard deviations allowed to the mean-error statistic (item 5)
TORCH_CLIP_EPS = 1e-6


@dataclass
class Budget:
    """Per-step, per-element bounds of one case before its path class is applied (lists per tensor).

    formula[k][t-1]: bound on |Delta_t - delta_t| from everything but the final rounding of
    theta and the unmodelled part of beta^t (t = 1..T); the judge adds both per path class
    (``reference.judge``). m, v, vmax: state bounds (t = 0..T). adam_update: |u_t| of the
    model, which the residual of beta^t scales; amp1, amp2: beta^t / bc per step (T,);
    model_update / model_theta: the model's signed applied update and theta; bias_*: the
    ingredients of the mean-error threshold (item 5); wv: S / (S + eps), how much an update
    depends on v (an update with wv ~ 0 is eps-dominated and blind to how v is held).
    """

    dtype: str
    formula: list[np.ndarray]
    m: list[np.ndarray]
    v: list[np.ndarray]
    vmax: list[np.ndarray] | None
    adam_update: list[np.ndarray]
    amp1: np.ndarray
    amp2: np.ndarray
    touched: list[np.ndarray]
    model_update: list[np.ndarray]
    model_theta: list[np.ndarray]
    bias_sys: list[np.ndarray]
    bias_var_step: list[np.ndarray]
    bias_sd_state: list[np.ndarray]
    wv: list[np.ndarray]
    decoupled: bool = False
    decay_update: list[np.ndarray] | None = None  # decoupled: lr_t w |theta_{t-1}| of the model, the decay step


def _r1(F: Format, beta: float) -> float:
    """Relative error of 1 - beta however an implementation forms it in F."""
    if beta == 0:
        return 0.0
    return max(F.rel_error(1.0 - beta), F.u + F.rel_error(beta) * beta / (1.0 - beta))


def _r_keep(F: Format, lr: float, w: float, rho_lr: float) -> float:
    """Relative error of the decoupled-decay factor fl(1 - lr_t w) (item 4), 0 where it is exact.

    An implementation that shrinks theta by a factor, theta fl(1 - lr_t w) (torch's
    ``param.mul_(1 - lr * weight_decay)``, the factor a binary64 number cast to D at the multiply),
    commits |theta| (1 - lr_t w) r with r <= u the rounding of the factor: an absolute error of
    up to u |theta|, not a relative error of the decay lr_t w |theta| (which the term
    lr_t w |theta| (rho_lr + r_w + 2u) bounds). It is zero only if the factor is exact however it
    is formed: lr_t held exactly (rho_lr = 0), w, lr_t w and 1 - lr_t w all numbers of D.
    """
    from fractions import Fraction

    x = Fraction(lr) * Fraction(w)
    # 1 - lr_t w is tested as the exact rational: ``1.0 - float(x)`` would be rounded to binary64 before the
    # test and so always "exact" in float64 (a float64 run with lr 2^-10, w 1e-4 was judged without the
    # factor's rounding: its update at 1.16 ulp of theta against a bound of 1 ulp)
    keep = Fraction(1) - Fraction(float(x))
    exact = (rho_lr == 0 and F.rel_error(w) == 0 and Fraction(float(x)) == x
             and F.rel_error(float(x)) == 0 and Fraction(float(keep)) == keep
             and F.rel_error(float(keep)) == 0)
    return 0.0 if exact else F.u


def _tensor_sq_norms(config: AdamConfig, g_raw: Sequence) -> list[float]:
    """The model's squared norm of each tensor's gradient as the per-tensor clip sees it (after clipvalue)."""
    with np.errstate(all="ignore"):
        gv = [np.asarray(g, dtype=np.float64).ravel() for g in g_raw]
        if config.clipvalue is not None:
            gv = [np.clip(g, -config.clipvalue, config.clipvalue) for g in gv]
        return [float(np.sum(g * g)) for g in gv]


def _clip_product_underflow(F: Format, config: AdamConfig, g_raw: Sequence) -> list[float]:
    """Absolute error per element of tf.clip_by_norm's product, per tensor (item 3).

    TF and Keras clip per tensor as g c / max(n, c), the product g c formed first, whether the clip
    fires or not. Where |g| c falls below the smallest normal, the product is subnormal or, with
    TensorFlow's flush-to-zero on the CPU, 0: an absolute error up to tiny before the division, so
    tiny / max(n, c) on the clipped value. It matters only where gradient and threshold are both
    tiny. Measured: tf_keras.legacy.adam, float32, gradients of 7e-20 against clipnorm 7.4e-20,
    the clipped gradient lost whole (m's sign flipped at step 7; state check 27x). n is the model's
    norm after clipvalue (``_tensor_sq_norms``).
    """
    return [F.tiny / max(math.sqrt(x), config.clipnorm) for x in _tensor_sq_norms(config, g_raw)]


def _norm_underflow(F: Format, config: AdamConfig, d: Dialect, g_raw: Sequence, sizes: Sequence[int]):
    """Relative error of the clip factors from underflow (item 3): per tensor, and of the global norm's.

    The norm n = sqrt(sum g_i^2) of N entries is summed in D: each of its N squares and N - 1
    additions can lose up to tiny in absolute value below the smallest normal (flush-to-zero, the
    same bound as the budget's other underflow terms), so |fl(n^2) - n^2| <= 2 N tiny + (the relative
    rounding bounded by ((N+1)/2 + 3) u). It matters where the gradients are below sqrt(tiny) (1e-19
    in float32 and bfloat16, 4e-3 in float16). Underflow only loses: with x = 2 N tiny / n^2 the run's
    norm is at least n sqrt(1 - x), so a factor c / n (or c / (n + 1e-6), torch) that clips in the
    model is too large by at most 1 / sqrt(1 - x) - 1 (to first order x / 2 = N tiny / n^2), and
    never by more than 1 / f - 1, f the model's factor: a run's factor is at most 1 (a norm that
    underflows to 0 does not clip at all). Where the model does not clip, the first-order term is
    kept (the run's norm sits on the same side). The clipped g inherits the factor's error.
    n is the model's (float64): per tensor after clipvalue, globally after the per-tensor clip.
    """
    with np.errstate(all="ignore"):
        sq = _tensor_sq_norms(config, g_raw)

        def factor(c: float, x: float) -> float:
            """The model's clip factor for a norm whose square is x."""
            if x <= 0:
                return 1.0
            norm = math.sqrt(x)
            return min(c / (norm + TORCH_CLIP_EPS), 1.0) if d.clip == "torch" else (c / norm if norm > c else 1.0)

        def rel(n_sq: float, n: int, f: float) -> float:
            if n_sq <= 0:
                return 0.0
            x = 2 * n * F.tiny / n_sq
            if f >= 1.0:
                return x / 2
            lost = 1 / math.sqrt(1 - x) - 1 if x < 1 else math.inf
            return max(x / 2, min(lost, 1 / f - 1))

        under_k = [rel(x, n, factor(config.clipnorm, x)) if config.clipnorm is not None else 0.0
                   for x, n in zip(sq, sizes)]
        if config.global_clipnorm is None:
            return under_k, 0.0
        total = 0.0
        for x in sq:
            f = factor(config.clipnorm, x) if config.clipnorm is not None else 1.0
            total += x * f * f
        return under_k, rel(total, sum(sizes), factor(config.global_clipnorm, total))


def _coalesce_error(F: Format, row: Sequence, sizes: Sequence[int]) -> np.ndarray:
    """The rounding of a step's repeated sparse rows summed in D (item 3), per element, flat.

    A row given c times is summed by the implementation in its dtype (``torch.Tensor.coalesce``,
    ``tf.math.unsorted_segment_sum``); recursive summation of c terms errs by at most
    gamma_{c-1} sum |g_j|, gamma_k = k u / (1 - k u), in any order. Relative to the sum that can be
    large where the terms cancel. Rows given once, and dense entries, are exact.
    """
    out = []
    for g, n in zip(row, sizes):
        if isinstance(g, SparseGrad) and n:
            idx = np.asarray(g.indices, dtype=np.int64)
            uniq, inverse, counts = np.unique(idx, return_inverse=True, return_counts=True)
            err = np.zeros((int(g.dense_shape[0]), *g.dense_shape[1:]), dtype=np.float64)
            if np.any(counts > 1):
                abs_sum = np.zeros((uniq.shape[0], *g.dense_shape[1:]), dtype=np.float64)
                np.add.at(abs_sum, inverse, np.abs(np.asarray(g.values, dtype=np.float64)))
                k = (counts - 1).astype(np.float64)
                gamma = k * F.u / (1 - k * F.u)
                err[uniq] = abs_sum * gamma.reshape(-1, *([1] * (abs_sum.ndim - 1)))
            out.append(err.ravel())
        else:
            out.append(np.zeros(n))
    return np.concatenate(out) if out else np.zeros(0)


def _rho_bc(F: Format, beta: float, ts: Sequence[int], bias_correction: bool, r_beta: float) -> np.ndarray:
    """Relative error of bc = 1 - beta^t from beta's representation (r_beta), and the rounding of bc, at the
    steps ``ts``: (beta^t / bc) t r_beta + u.

    An error e in beta^t becomes e beta^t / bc in bc; beta rounded by r makes beta^t off by t r.
    How beta^t itself is formed (pow, squaring, a product) is the path class's: ``amplification``
    gives the factor beta^t / bc that its residual (``paths.pow_residual``) is multiplied by.
    """
    if not bias_correction or beta == 0:
        return np.zeros(len(ts))
    return amplification(beta, ts, bias_correction) * np.asarray(ts, dtype=np.float64) * r_beta + F.u


def amplification(beta: float, ts: Sequence[int], bias_correction: bool) -> np.ndarray:
    """beta^t / (1 - beta^t) at the steps ``ts``: how a relative error of beta^t enters bc.

    beta^t is Python's binary64 pow of each step (``float.__pow__``, C's pow), never numpy's, whose
    power may differ from it in the last bit.
    """
    if not bias_correction or beta == 0:
        return np.zeros(len(ts))
    bt = np.array([beta ** int(t) for t in ts], dtype=np.float64)
    return bt / (1.0 - bt)


def schedule_rho(F: Format, config: AdamConfig, k: int) -> float:
    """Relative error of the schedule's value lr(k) as an implementation in F computes it, from the
    configured binary64 values: their representation in F, then the arithmetic.

    Exponential decay initial * rate^y (y = k/steps): r(initial) + y r(rate) from the held values
    (d(rate^y)/rate^y = y d(rate)/rate), and (3 + y |ln rate|) u for the pow (exp(y log rate): the
    error of log, amplified by y |ln rate|, of exp and of the product; y itself is exact for the
    catalogue's small k and power-of-two steps, and within u otherwise, which the 3 u covers).
    Piecewise constant: r(value) + 3u (a select and a cast). No schedule: r(lr).
    """
    sched = config.schedule
    if sched is None:
        return F.rel_error(float(config.lr))
    if sched.kind == "piecewise_constant":
        return F.rel_error(sched(k)) + 3 * F.u
    num, den = sched.exponent(k)
    y = num / den
    return (F.rel_error(sched.initial) + y * F.rel_error(sched.decay_rate)
            + (3.0 + y * abs(math.log(sched.decay_rate))) * F.u)


def _rho_lr(F: Format, config: AdamConfig, k: int, lr_modelled: bool = False, lr_fitted: bool = False) -> float:
    """Relative error of lr_t as an implementation in F computes it at schedule index k.

    lr_modelled: the judge's variants hold a constant lr exactly as the implementation does
    (hyper=float32), so its representation is not an error. A schedule's value is held by the variants
    as fl32(lr(k)) of the exact lr(k), while an implementation computes it from its own float32 initial
    and rate (Keras: fl32(rate)^y, whose error y r(rate) grows with the step), so the whole float32
    schedule bound is kept (``schedule_rho``: r(initial) + y r(rate) + (3 + y |ln rate|) u_32), unless
    lr_fitted: the judge then takes each step's float32 value of the schedule from the run itself
    (``judge._fit_lr32``: the value is a float32 number, and which one is identified exactly), leaving
    the double arithmetic of the variants that compute the schedule in binary64, (3 + y |ln rate|) u_64.
    """
    sched = config.schedule
    if lr_modelled:  # the variants hold lr (and decay) as the implementation does: only the arithmetic is left
        u64 = fmt("float64").u
        if sched is None or sched.kind == "piecewise_constant":
            return 3 * u64
        if not lr_fitted:
            return schedule_rho(F, config, k)
        num, den = sched.exponent(k)
        return (3.0 + abs(math.log(sched.decay_rate)) * num / den) * u64
    rho = schedule_rho(F, config, k)
    if config.decay:
        dk = config.decay * k
        rho += F.rel_error(config.decay) * dk / (1 + dk) + 3 * F.u
    return rho


def _v_error_in_update(U: np.ndarray, root: np.ndarray, eps: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a relative error x of v (|v' - v| <= x v) does to the update U = a m / (S + eps), S = sqrt(v-ish).

    U falls with v, and fastest on the low side: the worst v' is v (1 - x), S' = S sqrt(1 - x) (with
    eps_root, sqrt(v + eps_root) falls less: S' is a lower bound still). Exactly, not to first order:
        |U(v') - U(v)| <= |U| (S - S') / (S' + eps)      (first order: |U| (S / (S + eps)) x / 2)
    and m's error acts through the smaller denominator: (dU/dm) E^m times (S + eps) / (S' + eps). Both
    are the first-order terms where x is small; where a cancelling gradient makes v's relative error
    large (measured: 15 % in bfloat16, L2 decay at step 1) the first order is 13 % short. x >= 1 leaves
    S' = 0: |U| S / eps (inf when eps = 0: v's error allows any update).
    Returns (the v part, the gain on m's part).
    """
    q = np.sqrt(np.fmax(1.0 - x, 0.0))
    den = root * q + eps
    with np.errstate(divide="ignore", invalid="ignore"):
        # (S - S') / (S' + eps) with S - S' = S (1 - q) = S x / (1 + q): no cancellation at small x, and
        # S / (S' + eps) <= 1 / q formed first, so that no product of two small numbers underflows
        v_part = np.where((x > 0) & (U != 0), U * (np.fmin(x, 1.0) / (1.0 + q)) * (root / den), 0.0)
        gain = np.where(x > 0, (root + eps) / den, 1.0)
    return v_part, gain


def compute_budget(config: AdamConfig, dialect: "Dialect | str", params0: Sequence[np.ndarray],
                   grads: Sequence[Sequence], dtype: str, *, held: bool = False, rep_dtype: str | None = None,
                   lr_modelled: bool = False, lr_fitted: bool = False, trace: Trace | None = None) -> Budget:
    """Bounds for every step of a case whose arithmetic runs in ``dtype`` (see the module docstring).

    held: the comparison is with a variant of the float64 model that holds beta1, beta2 and eps
    as the implementation does (``reference.held``), so their representation is no error;
    otherwise (the exact golden) it is bounded. rep_dtype: the format lr, its schedule and the
    legacy decay are held in (default ``dtype``; float32 for hyper=float32: tf_keras OptimizerV2's
    hyperparameter variables); clip thresholds, weight decay and eps_root are in ``dtype``.
    lr_modelled: a constant lr is held exactly by the variants. lr_fitted: so is a schedule's value,
    fitted per step by the judge (``_rho_lr``).
    Non-finite model values (NaN gradients) give non-finite bounds, silently: the
    assessment judges those elements by their non-finite pattern.
    trace: the float64 model's ``model_trace`` of these inputs, if the caller has it (it depends on the
    config, dialect and inputs only, not on the dtype: the judge shares one between a case's budgets).
    """
    with np.errstate(all="ignore"):
        return _compute_budget(config, dialect, params0, grads, dtype, held, rep_dtype or dtype, lr_modelled,
                               lr_fitted, trace)


def _compute_budget(config, dialect, params0, grads, dtype, held, rep_dtype, lr_modelled, lr_fitted,
                    trace=None) -> Budget:
    d = resolve_dialect(dialect)
    F = fmt(dtype)
    Fr = fmt(rep_dtype)
    u = F.u
    tr = model_trace(config, d, params0, grads) if trace is None else trace
    shapes = [np.shape(p) for p in params0]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    n_total = sum(sizes)
    T = len(tr.t)
    b1, b2, eps, w = config.beta1, config.beta2, config.eps, config.weight_decay
    rep = (lambda x: 0.0) if held else Fr.rel_error  # noqa: E731  beta, eps: modelled by the variants
    # weight decay: as the dtype holds it, or (hyper=float32) modelled by the variants
    r_w = 0.0 if lr_modelled else F.rel_error(w)
    r_b1, r_b2, r_eps = rep(b1), rep(b2), rep(eps)
    r1_b1, r1_b2 = (0.0, 0.0) if held else (_r1(Fr, b1), _r1(Fr, b2))
    r_eps_root = F.rel_error(config.eps_root)
    decoupled = bool(w) and config.weight_decay_mode == "decoupled"
    coupled = bool(w) and config.weight_decay_mode == "l2"

    # every tensor's elements side by side in one flat vector of n_total (the bounds are elementwise;
    # what is per tensor, the clip factors, is spread over its elements), and the steps stacked: row i of
    # every (T, N) array is step i + 1 (``model.Trace``). What does not depend on the running bounds is
    # computed for all steps at once; the loop carries only the recursions (the moments' bounds, theta's
    # running sum), each expression in the same order of operations as a step-by-step evaluation, so
    # the bounds are the same to the bit (benchmarks/judge_digest.py).
    N = n_total
    per_tensor = lambda xs: np.repeat(np.asarray(xs, dtype=np.float64), sizes)  # noqa: E731

    def cat(xs, dtype=np.float64):
        return np.concatenate([np.asarray(x, dtype=dtype).ravel() for x in xs]) if xs else np.zeros(0, dtype)

    def col(xs):
        return np.asarray(xs, dtype=np.float64).reshape(T, 1)

    theta_model = np.zeros((T + 1, N))
    theta_model[0] = cat(params0)
    clipping_norm = config.clipnorm is not None or config.global_clipnorm is not None

    # -- per step, the scalars: the step's count, lr's error, the bias corrections, the clip factors' error,
    # as arrays over the steps
    ts = [int(t) for t in tr.t]
    cs = [max(int(c), 1) for c in tr.count]  # the Adam step count (t unless a non-finite step was skipped)
    amp1, amp2 = amplification(b1, cs, d.bias_correction), amplification(b2, cs, d.bias_correction)
    ks = [c - 1 if d.schedule_step == "t-1" else c for c in cs]
    if config.schedule is None and not config.decay:  # the same lr at every step
        rho_lr_s = [_rho_lr(Fr, config, 1, lr_modelled, lr_fitted)] * T
    else:
        rho_lr_s = [_rho_lr(Fr, config, k, lr_modelled, lr_fitted) for k in ks]
    rho_step_s = (np.array(rho_lr_s, dtype=np.float64) + _rho_bc(F, b1, cs, d.bias_correction, r_b1)
                  + _rho_bc(F, b2, cs, d.bias_correction, r_b2) / 2 + N_SCALAR * u)
    lr_s, bc1_s, bc2_s = tr.lr, tr.bc1, tr.bc2
    r_keep_s = [0.0] * T
    if decoupled:
        # the factor 1 - lr_t w as D holds it (torch's param.mul_(1 - lr * wd)): item 4
        keeps: dict = {}  # _r_keep tests rationals: once per distinct (lr_t, rho_lr)
        for i, (x, r) in enumerate(zip(tr.lr, rho_lr_s)):
            if (float(x), r) not in keeps:
                keeps[float(x), r] = _r_keep(F, float(x), w, r)
            r_keep_s[i] = keeps[float(x), r]
    rb2_s = np.zeros(T)
    if config.amsgrad and d.amsgrad_max != "raw":
        # bc2's error in max(vmax, v / bc2): its representation part, and the worst path residual (t u)
        rb2_s = _rho_bc(F, b2, ts, d.bias_correction, r_b2) + amp2 * np.asarray(ts, dtype=np.float64) * u
    rho_clip_rows = np.zeros((T, N)) if clipping_norm else None
    tf_product = config.clipnorm is not None and d.clip == "tf"
    clip_under_rows = np.zeros((T, N)) if tf_product else None
    for i in range(T) if tf_product or clipping_norm else ():
        g_raw_i = tr.tensors(tr.g_raw[i])
        if tf_product:
            clip_under_rows[i] = per_tensor(_clip_product_underflow(F, config, g_raw_i))
        # gradient clipping: relative error common to the step (systematic)
        if clipping_norm:
            rho_k = [0.0] * len(sizes)
            under_k, under_g = _norm_underflow(F, config, d, g_raw_i, sizes)
            for kk in range(len(sizes)):
                rho = under_k[kk] + under_g  # the squares of the norms below tiny (item 3): fired or not
                if config.clipnorm is not None and tr.clipnorm_fired[i, kk]:
                    rho += ((sizes[kk] + 1) / 2 + 3) * u + F.rel_error(config.clipnorm)
                if config.global_clipnorm is not None and tr.global_fired[i]:
                    rho += ((n_total + 1) / 2 + 3) * u + F.rel_error(config.global_clipnorm)
                if d.clip == "tf":
                    rho += 2 * u  # g * c * min(1/n, 1/c) multiplies even when it does not clip
                if d.clip == "torch":
                    rho += u + F.rel_error(TORCH_CLIP_EPS)  # n + 1e-6, and 1e-6 as D holds it
                rho_k[kk] = rho
            rho_clip_rows[i] = per_tensor(rho_k)
    rho_lr_c, rho_step_c, lr_c = col(rho_lr_s), col(rho_step_s), col(lr_s)
    bc1_c, bc2_c = col(bc1_s), col(bc2_s)

    # -- for all steps at once: the model's values and every term that does not recurse
    touched = tr.touched
    g_clip = np.abs(tr.g_clipped)
    rho_clip = rho_clip_rows if clipping_norm else 0.0
    if config.clipvalue is not None:
        clipped = np.abs(tr.g_raw) > config.clipvalue
        e_g_sys0 = g_clip * rho_clip + np.where(clipped, config.clipvalue * F.rel_error(config.clipvalue), 0.0)
    else:
        e_g_sys0 = g_clip * rho_clip
    if tf_product:
        e_g_sys0 = e_g_sys0 + clip_under_rows
    theta = tr.theta
    g_signed = tr.g
    e_g_rnd = np.zeros((T, N))
    if coupled:
        e_g_rnd = u * np.abs(g_signed) + u * np.abs(w * theta)
        e_g_sys0 = e_g_sys0 + r_w * np.abs(w * theta)  # + w T_{t-1}, in the loop
    if any(isinstance(g, SparseGrad) for row in grads for g in row):  # repeated rows summed in D
        e_g_rnd = e_g_rnd + np.stack([_coalesce_error(F, row, sizes) for row in grads[:T]]) if T else e_g_rnd
    g = np.abs(g_signed)
    m_prev, v_prev = np.abs(tr.m_prev), tr.v_prev
    # moments (item 3), only where this step touches them (lazy rows freeze)
    lam_m = C_M * u * (m_prev + (1 - b1) * g) + C_M * F.tiny
    lam_v = C_V * u * (v_prev + (1 - b2) * g * g) + C_V * F.tiny
    rep_m0 = r_b1 * m_prev + r1_b1 * (1 - b1) * g  # + (1 - b1) e_g, in the loop
    rep_v0 = r_b2 * v_prev + r1_b2 * (1 - b2) * g * g  # + (1 - b2) (2 |g| + e_g) e_g, in the loop
    two_g = 2 * g
    lam_m2, lam_v2 = lam_m ** 2 / 3, lam_v ** 2 / 3
    if config.amsgrad and d.amsgrad_max != "raw":
        v_abs_bc2 = np.abs(tr.v) / bc2_c
        e_corr_part = v_abs_bc2 * (col(rb2_s) + u)
        e_corr_sys_part = v_abs_bc2 * col(rb2_s)
        bc2_sq = bc2_c ** 2
    # the update (item 4)
    update = tr.update
    U = np.abs(update)
    root, v_used = tr.root, np.abs(tr.v_used)
    step_size = lr_c / bc1_c if d.epsilon == "standard" else lr_c * np.sqrt(bc2_c) / bc1_c
    dU_dm = step_size / (root + eps)
    wv = np.where(root + eps > 0, root / (root + eps), 0.0)
    positive_v = v_used > 0
    eps_term = np.where(root + eps > 0, r_eps * eps / (root + eps), 0.0)
    eps_root_term = 0.0
    if config.eps_root:
        vhat = v_used / bc2_c if d.epsilon == "standard" else v_used
        eps_root_term = np.where(vhat + config.eps_root > 0,
                                 0.5 * wv * r_eps_root * config.eps_root / (vhat + config.eps_root), 0.0)
    theta_next = theta - U * np.sign(update) - (lr_c * w * theta if decoupled else 0.0)
    # the final rounding of theta is the path class's (judge); the feedback of the trajectory
    # bound into the weight-decay terms takes the widest class's: one ulp, across a binade
    ulp_fb = 2 * F.ulp(theta_next)
    b_fixed = U * (rho_step_c + N_ELEM * u + eps_term + eps_root_term)
    b_sys_fixed = U * (rho_step_c + eps_term + eps_root_term)
    u_wv = U * 0.5 * wv
    if decoupled:
        wd = lr_c * w * np.abs(theta)
        keep = col(r_keep_s) * np.abs(theta)
        wd_b = wd * (rho_lr_c + r_w + 2 * u)
        wd_b_sys = wd * (rho_lr_c + r_w)
        lr_w = lr_c * w
    # ... and the part of the update's error that the judge adds for the unmodelled part of beta^t,
    # |U| (amp1 res1 + amp2 res2 / 2) (``judge._evaluate``: ``paths.pow_residual`` of the class times
    # beta^t / bc), with the widest class's residual. The trajectory check bounds theta's error by the
    # running sum of the judge's per-step bounds, this term included; the weight-decay feedback (coupled
    # L2: g + w theta, so e_g gains w T_{t-1}; decoupled: lr_t w T_{t-1}) must carry the same sum, or the
    # moments of a run whose theta errs by that part (beta2 = 0.99999: beta^t / bc ~ 1e5 / t, so a pow
    # within 2u makes bc2 off by 1e5 u / t and theta by |U| 5e4 u / t) exceed their bound (measured: m,
    # v, vmax of a float64 pytorch run with L2 0.5 at 8x their bound, each off by the w-multiple of a
    # theta error of ~1e-13 relative that the trajectory bound allowed).
    counts = np.maximum(tr.count, 1).astype(np.float64)
    res = [np.max([pow_residual(p, beta, counts, u, not held) for p in POWERS], axis=0)
           if d.bias_correction and beta and T else np.zeros(T) for beta in (b1, b2)]
    pow_fb = U * (amp1.reshape(T, 1) * res[0].reshape(T, 1) + amp2.reshape(T, 1) * res[1].reshape(T, 1) / 2)
    fb = np.where(touched, ulp_fb * (1.5 if decoupled else 1.0) + pow_fb, 0.0)

    # -- the recursions, step by step. The moments' six running bounds are one (6, N) array X, rows
    # E^m, E^v, E^m_sys, E^v_sys, V^m_rnd, V^v_rnd, each updated as (c X + a1) + a2 (a zero a1 or a2 adds
    # nothing: every bound is >= 0, so x + 0 is x to the bit). Only coupled L2 feeds the trajectory bound
    # back into the gradient (e_g gains w T_{t-1}), and so into the moments: then everything is formed
    # step by step; otherwise the moments recurse alone and every other term is formed for all steps at
    # once, and theta's running sum last.
    B, Tb = np.zeros((T, N)), np.zeros((T + 1, N))
    Em, Ev, Evmax = np.zeros((T + 1, N)), np.zeros((T + 1, N)), np.zeros((T + 1, N))
    hist = np.zeros((T, 6, N))  # X after each step
    coef = np.array([b1, b2, b1, b2, b1 ** 2, b2 ** 2]).reshape(6, 1)
    zero = np.zeros((T, N))
    a1 = np.stack([lam_m, lam_v, zero, zero, lam_m2, lam_v2], axis=1)  # (T, 6, N)

    def moment_errors(e_g):
        """rep_m, rep_v: the gradient's error e_g (and the betas' representation) entering m and v."""
        rep_m = rep_m0_rows + (1 - b1) * e_g
        # (g + e)^2 - g^2 = (2 g + e) e exactly: the e^2 term is no second-order nicety where e is not small
        # against g (L2's g + w theta cancelling: measured, a bfloat16 optax run whose v erred by 15 % at step
        # 1, 1.04 of the first-order bound)
        return rep_m, rep_v0_rows + (1 - b2) * (two_g_rows + e_g) * e_g

    def update_bounds(rows, X_rows, Em_rows):
        """For the steps ``rows`` (one step or all): the update's bound and its systematic part before
        theta's feedback (decoupled decay adds lr_t w T_{t-1}), and the moments' random part (item 5)."""
        Ev_rows, Em_sys, Ev_sys, Vm_rnd, Vv_rnd = (X_rows[..., j, :] for j in (1, 2, 3, 4, 5))
        E_vused, E_vused_sys, V_vused = Ev_rows, Ev_sys, Vv_rnd
        if config.amsgrad:
            E_vused, E_vused_sys, V_vused = vmax_bounds(rows, Ev_rows, Ev_sys, Vv_rnd)
        pv, vu = positive_v[rows], v_used[rows]
        rel_v = np.where(pv, E_vused / vu, 0.0)
        rel_v_sys = np.where(pv, E_vused_sys / vu, 0.0)
        sd_v = np.where(pv, np.sqrt(V_vused) / vu, 0.0)
        v_part, m_gain = _v_error_in_update(U[rows], root[rows], eps, rel_v)
        v_part_sys, m_gain_sys = _v_error_in_update(U[rows], root[rows], eps, rel_v_sys)
        m_part, m_part_sys = dU_dm[rows] * Em_rows, dU_dm[rows] * Em_sys
        m_part = np.where(m_part != 0, m_part * m_gain, 0.0)  # 0 * inf (v's error unbounded, m exact) is 0
        m_part_sys = np.where(m_part_sys != 0, m_part_sys * m_gain_sys, 0.0)
        b = b_fixed[rows] + m_part + v_part + N_ELEM * F.tiny
        b_sys = b_sys_fixed[rows] + m_part_sys + v_part_sys
        if decoupled:
            b = b + wd_b[rows] + keep[rows]
            b_sys = b_sys + wd_b_sys[rows] + keep[rows]
        sd = np.where(touched[rows], dU_dm[rows] * np.sqrt(Vm_rnd) + u_wv[rows] * sd_v, 0.0)
        return b, b_sys, sd

    vmax_state: dict = {}

    def vmax_bounds(rows, Ev_rows, Ev_sys, Vv_rnd):
        """AMSGrad: |max(a, b) - max(a', b')| <= max(|a - a'|, |b - b'|), a running maximum over the steps.
        Corrected (max(vmax, v / bc2)): the division adds u and bc2's error."""
        if d.amsgrad_max == "raw":
            terms = (Ev_rows, Ev_sys, Vv_rnd)
        else:
            terms = (Ev_rows / bc2_c[rows] + e_corr_part[rows], Ev_sys / bc2_c[rows] + e_corr_sys_part[rows],
                     Vv_rnd / bc2_sq[rows])
        if isinstance(rows, slice):  # every step: the running maximum from zero, as np.maximum.accumulate
            out = tuple(np.maximum.accumulate(np.concatenate([np.zeros((1, N)), x]), axis=0)[1:] for x in terms)
        else:  # one step, after the steps before it
            prev = vmax_state.get("prev", (np.zeros(N),) * 3)
            out = tuple(np.maximum(p, x) for p, x in zip(prev, terms))
            vmax_state["prev"] = out
        Evmax[1:][rows] = out[0]
        return out

    rep_m0_rows, rep_v0_rows, two_g_rows = rep_m0, rep_v0, two_g
    X = np.zeros((6, N))
    if coupled:
        sys_, sd_state = np.zeros((T, N)), np.zeros((T, N))
        for i in range(T):
            t = i + 1
            tch = touched[i]
            e_g = (e_g_sys0[i] + w * Tb[t - 1]) + e_g_rnd[i]
            rep_m0_rows, rep_v0_rows, two_g_rows = rep_m0[i], rep_v0[i], two_g[i]
            rep_m, rep_v = moment_errors(e_g)
            X = np.where(tch, (coef * X + a1[i]) + np.stack([rep_m, rep_v, rep_m, rep_v, zero[i], zero[i]]), X)
            hist[i] = X
            Em[t], Ev[t] = X[0], X[1]
            b, b_sys, sd_state[i] = update_bounds(i, X, X[0])
            b = np.where(tch, b, 0.0)  # lazy rows that are not touched must not move at all
            B[i] = b
            Tb[t] = Tb[t - 1] + b + fb[i]
            sys_[i] = np.where(tch, b_sys, 0.0)
    else:
        rep_m, rep_v = moment_errors(e_g_sys0 + e_g_rnd)
        a2 = np.stack([rep_m, rep_v, rep_m, rep_v, zero, zero], axis=1)
        for i in range(T):
            X = np.where(touched[i], (coef * X + a1[i]) + a2[i], X)
            hist[i] = X
        Em[1:], Ev[1:] = hist[:, 0], hist[:, 1]
        b, b_sys, sd_state = update_bounds(slice(None), hist, Em[1:])
        if decoupled:  # lr_t w T_{t-1}: theta's bound feeds the next step's
            for i in range(T):
                t = i + 1
                B[i] = np.where(touched[i], b[i] + lr_w[i] * Tb[t - 1], 0.0)  # untouched lazy rows do not move
                Tb[t] = Tb[t - 1] + B[i] + fb[i]
            b_sys = b_sys + lr_w * Tb[:-1]
        elif T:
            # T_t = (T_{t-1} + B_t) + fb_t: np.add.accumulate adds the interleaved rows B_1, fb_1, B_2, ... in
            # order, column by column, the same additions as the loop (T_0 = 0 and 0 + B_1 = B_1, B >= 0)
            B[:] = np.where(touched, b, 0.0)  # lazy rows that are not touched must not move at all
            Tb[1:] = np.add.accumulate(np.stack([B, fb], axis=1).reshape(2 * T, N), axis=0)[1::2]
        sys_ = np.where(touched, b_sys, 0.0)

    theta_model[1:] = theta_next
    model_update = theta_next - theta
    adam_update = np.where(touched, U, 0.0)
    decay_update = np.where(touched, lr_c * w * np.abs(theta), 0.0) if decoupled else np.zeros((T, N))
    touched_all = touched
    wvs = wv
    var_step = np.where(touched, (U * u) ** 2 * N_ELEM / 3, 0.0)

    bounds = np.cumsum([0] + sizes)

    def shaped(arr, rows):
        return [arr[:, lo:hi].reshape(rows, *shape) for lo, hi, shape in zip(bounds[:-1], bounds[1:], shapes)]

    return Budget(
        dtype=dtype, formula=shaped(B, T),
        m=shaped(Em, T + 1), v=shaped(Ev, T + 1), vmax=shaped(Evmax, T + 1) if config.amsgrad else None,
        adam_update=shaped(adam_update, T), amp1=amp1, amp2=amp2,
        touched=shaped(touched_all, T),
        model_update=shaped(model_update, T), model_theta=shaped(theta_model, T + 1),
        bias_sys=shaped(sys_, T), bias_var_step=shaped(var_step, T), bias_sd_state=shaped(sd_state, T),
        wv=shaped(wvs, T), decoupled=decoupled, decay_update=shaped(decay_update, T) if decoupled else None,
    )
