"""The reference Adam: one algorithm of (config, dialect, inputs), every dialect.

Step t = 1, 2, ... with k the schedule index (t - 1 or t, ``Dialect.schedule_step``):

1. lr_t = lr(k) / (1 + decay * k)            schedule, then legacy Keras inverse-time
                                              decay (tf_keras OptimizerV2 ``_decayed_lr``)
2. g <- coalesce(g)                          repeated sparse rows are summed
3. g <- clip(g, -c, c)                        clipvalue
   g <- g * f(n_k, c)  per tensor            clipnorm,        n_k = ||g_k||_2
   g <- g * f(n, c)    all tensors           global_clipnorm, n   = sqrt(sum_k n_k^2)
   f = c/n if n > c else 1   ("exact", "tf": tf's c*min(1/n, 1/c) is the same number)
   f = min(c / (n + 1e-6), 1) ("torch": torch.nn.utils.clip_grad_norm_)
4. g <- g + w * theta                         coupled L2 (weight_decay_mode="l2")
5. m <- beta1*m + (1-beta1)*g ;  v <- beta2*v + (1-beta2)*g^2
   (sparse_rows="lazy": only the rows present in the coalesced gradient)
6. bc1 = 1 - beta1^t, bc2 = 1 - beta2^t  (both 1 with bias_correction off)
   AMSGrad "raw":       vmax <- max(vmax, v);        v' = vmax
   AMSGrad "corrected": vmax <- max(vmax, v / bc2);  v' = vmax * bc2
7. theta <- theta - lr_t * w * theta         decoupled (AdamW), from theta_t
8. standard: u = lr_t * (m/bc1) / (sqrt(v'/bc2 + eps_root) + eps)   (Kingma & Ba, Alg. 1;
             optax scale_by_adam adds eps_root)
   hat:      u = lr_t * sqrt(bc2)/bc1 * m / (sqrt(v' + eps_root*bc2) + eps)
             (Kingma & Ba, before section 2.1; Keras, torch SparseAdam)
   theta <- theta - u

Non-finite gradients (``Dialect.nonfinite``): "propagate" applies the step whatever its values;
"skip" leaves a step with any NaN or infinite gradient entry out entirely (theta, m, v, vmax
unchanged) and does not count it: t above is then the number of steps applied, which the bias
corrections and the schedule index see (GradScaler skips ``optimizer.step()``).

Exactness: every input (parameters, gradients and every hyperparameter in
``AdamConfig``, including 0.999 or 1e-8, and torch's 1e-6) is taken as the exact
value of the binary64 float given: no decimal is assumed. ``1 - beta``,
``beta^t``, ``sqrt`` and divisions are then computed at ``dps`` digits, each
correctly rounded (the moment updates beta*m + (1-beta)*g are rounded once as a
whole), so the result is the exact trajectory up to a relative error of about
(number of operations) * 10^-dps. How an implementation rounds the
hyperparameters to its own dtype is not modelled here: the error budget does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

from .arith import F64Arith, MpArith
from .config import AdamConfig
from .dialect import Dialect, resolve_dialect
from .grads import GradEntry, SparseGrad, all_finite, check_entries, coalesce
from .held import HeldSet

__all__ = ["StepTrace", "Trajectory", "trajectory"]

TORCH_CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6)


@dataclass
class Trajectory:
    """A recorded trajectory: theta after each step in ``steps`` (0 = initial state), the moments
    (m, v, vmax) after each step in ``state_steps``.

    ``theta[k]`` has shape (len(steps), *shape_k), ``m[k]`` (len(state_steps), *shape_k); ``*_lo`` hold
    the low parts of the double-double values (zeros for the float64 arithmetic). ``state_steps`` None:
    the moments are recorded at ``steps`` (what ``trajectory`` makes); a golden keeps them at its own
    state steps only (``with_state_at``).
    """

    steps: np.ndarray
    theta: list[np.ndarray]
    theta_lo: list[np.ndarray]
    m: list[np.ndarray]
    m_lo: list[np.ndarray]
    v: list[np.ndarray]
    v_lo: list[np.ndarray]
    vmax: list[np.ndarray] | None = None
    vmax_lo: list[np.ndarray] | None = None
    lr: np.ndarray = field(default_factory=lambda: np.zeros(0))  # lr_t at each step 1..T
    state_steps: np.ndarray | None = None  # the steps of m's rows (None: ``steps``)

    def index(self, t: int) -> int:
        """Row of step t in theta."""
        return _row(self.steps, t)

    def state_index(self, t: int) -> int:
        """Row of step t in m, v and vmax."""
        return _row(self.recorded_state_steps(), t)

    def recorded_state_steps(self) -> np.ndarray:
        """The steps whose moments are recorded."""
        return np.asarray(self.steps if self.state_steps is None else self.state_steps)

    def with_state_at(self, state_steps: Sequence[int]) -> "Trajectory":
        """The same trajectory with the moments of ``state_steps`` only (each one recorded here)."""
        rows = np.array([self.state_index(int(t)) for t in state_steps], dtype=np.int64)
        pick = lambda xs: None if xs is None else [x[rows] for x in xs]  # noqa: E731
        return replace(self, m=pick(self.m), m_lo=pick(self.m_lo), v=pick(self.v), v_lo=pick(self.v_lo),
                       vmax=pick(self.vmax), vmax_lo=pick(self.vmax_lo),
                       state_steps=np.asarray(state_steps, dtype=np.int64))

    def moments(self) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
        """{"m": (hi, lo), "v": ..., "vmax": ...} per tensor at the state steps; vmax only where recorded."""
        out = {"m": (self.m, self.m_lo), "v": (self.v, self.v_lo)}
        if self.vmax is not None:
            out["vmax"] = (self.vmax, self.vmax_lo)
        return out


def _row(steps: np.ndarray, t: int) -> int:
    pos = int(np.searchsorted(steps, t))
    if pos >= len(steps) or steps[pos] != t:
        raise KeyError(f"step {t} was not recorded (recorded: {np.asarray(steps)[:8].tolist()}...)")
    return pos


@dataclass
class StepTrace:
    """The float64 model's intermediates of one step (flat per tensor), for the error budget.

    For lazy sparse rows, untouched elements keep their values and ``touched`` is False.
    ``update`` is u with theta_{t+1} = theta_t - lr_t*w*theta_t (decoupled) - u.
    """

    t: int
    lr: float
    clip: dict
    g_raw: list
    g_clipped: list
    count: int = 0  # the Adam step count the bias corrections and the schedule see (t unless steps are skipped)
    bc1: float = 1.0
    bc2: float = 1.0
    touched: list = field(default_factory=list)
    theta: list = field(default_factory=list)  # theta_{t-1}... i.e. before this step
    m_prev: list = field(default_factory=list)
    v_prev: list = field(default_factory=list)
    vmax_prev: list = field(default_factory=list)
    g: list = field(default_factory=list)  # entering the moments (after clipping and L2)
    m: list = field(default_factory=list)
    v: list = field(default_factory=list)
    v_used: list = field(default_factory=list)
    root: list = field(default_factory=list)
    update: list = field(default_factory=list)

    def record(self, x, pos, theta_before, m_before, v_before, vmax_before, g, m, v, v_used, root, update) -> None:
        n = len(theta_before)
        mask = np.ones(n, dtype=bool)

        def full(part, fill):
            if pos is None:
                return np.asarray(part, dtype=np.float64)
            out = np.array(fill, dtype=np.float64, copy=True)
            out[np.asarray(pos, dtype=np.int64)] = part
            return out

        if pos is not None:
            mask[:] = False
            mask[np.asarray(pos, dtype=np.int64)] = True
        zeros = np.zeros(n)
        self.touched.append(mask)
        self.theta.append(np.asarray(theta_before, dtype=np.float64))
        self.m_prev.append(np.asarray(m_before, dtype=np.float64))
        self.v_prev.append(np.asarray(v_before, dtype=np.float64))
        self.vmax_prev.append(None if vmax_before is None else np.asarray(vmax_before, dtype=np.float64))
        self.g.append(full(g, zeros))
        self.m.append(full(m, m_before))
        self.v.append(full(v, v_before))
        self.v_used.append(full(v_used, v_before if vmax_before is None else vmax_before))
        self.root.append(full(root, zeros))
        self.update.append(full(update, zeros))


def _flat_rows(g: SparseGrad) -> tuple[list[int], np.ndarray]:
    """Flat element positions of the (coalesced) rows, and their values."""
    c = coalesce(g)
    row = int(np.prod(c.dense_shape[1:], dtype=np.int64))
    pos = (c.indices[:, None] * row + np.arange(row)[None, :]).ravel().tolist()
    return pos, c.values.reshape(-1)


class _Tensor:
    """One parameter tensor's state in the chosen arithmetic (flat)."""

    def __init__(self, A, theta0: np.ndarray, amsgrad: bool) -> None:
        self.shape = theta0.shape
        n = theta0.size
        self.theta = A.vector(theta0)
        self.m = A.zeros(n)
        self.v = A.zeros(n)
        self.vmax = A.zeros(n) if amsgrad else None


def trajectory(
    config: AdamConfig,
    dialect: "Dialect | str",
    params0: Sequence[np.ndarray],
    grads: Sequence[Sequence[GradEntry]],
    *,
    dps: int = 50,
    record: Iterable[int] | None = None,
    record_state: Iterable[int] | None = None,
    arithmetic: str = "mpmath",
    trace: list | None = None,
    held: "HeldSet | None" = None,
) -> Trajectory:
    """Run the reference Adam over ``grads`` (one list of entries per step).

    record: the steps whose parameters are kept (0 = initial; default: every step).
    record_state: the steps, among ``record``, whose m, v, vmax are kept too (default: all
    of ``record``); the others hold NaN.
    arithmetic: "mpmath" (the reference, ``dps`` digits) or "float64" (the fast
    model used by the error budget).
    trace: with arithmetic="float64", a list that receives one ``StepTrace`` per
    step (the intermediates the error budget needs).
    held: with arithmetic="float64", compute every variant of a ``HeldSet`` at once (the
    hyperparameters and bias corrections as implementations hold them,
    ``adamconf.reference.held``): the recorded arrays then have a variant axis after the
    step axis, (len(steps), V, *shape). Without a trace.
    """
    d = resolve_dialect(dialect)
    A = MpArith(dps) if arithmetic == "mpmath" else F64Arith()
    if arithmetic not in ("mpmath", "float64"):
        raise ValueError(f"arithmetic={arithmetic!r}; use 'mpmath' or 'float64'")
    if (trace is not None or held is not None) and arithmetic != "float64":
        raise ValueError("trace= and held= need arithmetic='float64'")
    if trace is not None and held is not None:
        raise ValueError("trace= and held= exclude each other")
    if d.sparse_rows == "lazy" and config.weight_decay:
        raise ValueError("lazy sparse rows with weight decay is not defined (SparseAdam has none)")
    if d.epsilon == "hat" and config.amsgrad and d.amsgrad_max == "corrected":
        raise ValueError("epsilon='hat' with amsgrad_max='corrected' is not defined")
    params0 = [np.asarray(p, dtype=np.float64) for p in params0]
    shapes = [p.shape for p in params0]
    n_steps = len(grads)
    wanted = set(range(n_steps + 1)) if record is None else {int(t) for t in record if 0 <= int(t) <= n_steps}
    wanted.add(0)
    wanted_state = wanted if record_state is None else {int(t) for t in record_state} & wanted

    tensors = [_Tensor(A, p, config.amsgrad) for p in params0]
    if held is not None:  # one row per variant
        V = len(held)
        for x in tensors:
            x.theta, x.m, x.v = (np.repeat(a[None, :], V, axis=0) for a in (x.theta, x.m, x.v))
            x.vmax = None if x.vmax is None else np.repeat(x.vmax[None, :], V, axis=0)
    beta1, beta2, eps = A.scalar(config.beta1), A.scalar(config.beta2), A.scalar(config.eps)
    one_m_b1, one_m_b2 = A.sub(A.one, beta1), A.sub(A.one, beta2)
    pow_base1, pow_base2 = beta1, beta2
    if held is not None:
        beta1, one_m_b1, beta2, one_m_b2 = held.beta1, held.one_minus_beta1, held.beta2, held.one_minus_beta2
        eps = held.eps
    eps_root = A.scalar(config.eps_root)
    wd = A.scalar(config.weight_decay) if held is None else held.weight_decay
    rec: dict[str, list[list]] = {k: [] for k in ("theta", "m", "v", "vmax")}
    rec_steps: list[int] = []
    lrs: list[float] = []

    def snapshot(t: int) -> None:
        rec_steps.append(t)
        rec["theta"].append([A.to_hi_lo(x.theta) for x in tensors])
        for key in ("m", "v") + (("vmax",) if config.amsgrad else ()):
            if t in wanted_state:  # converting to double-double costs as much as a step: only where kept
                rec[key].append([A.to_hi_lo(getattr(x, key)) for x in tensors])
            else:
                blank = [np.shape(x.theta) if held is not None else (len(x.theta),) for x in tensors]
                rec[key].append([(np.full(b, np.nan), np.full(b, np.nan)) for b in blank])

    snapshot(0)
    count = 0  # steps applied: t, unless nonfinite="skip" left some out
    for t in range(1, n_steps + 1):
        entries = grads[t - 1]
        check_entries(entries, shapes)
        if d.nonfinite == "skip" and not all_finite(entries):
            lrs.append(0.0)  # nothing applied
            if trace is not None:  # nothing moves: every element untouched, as a lazy row
                st = StepTrace(t=t, lr=0.0, clip={"clipnorm": [False] * len(tensors), "global": False},
                               g_raw=[np.zeros(int(np.prod(x.shape, dtype=np.int64))) for x in tensors],
                               g_clipped=[np.zeros(int(np.prod(x.shape, dtype=np.int64))) for x in tensors],
                               count=count)
                empty = np.zeros(0)
                for x in tensors:
                    st.record(x, [], x.theta, x.m, x.v, x.vmax, empty, empty, empty, empty, empty, empty)
                trace.append(st)
            if t in wanted:
                snapshot(t)
            continue
        count += 1
        t_step = t  # the harness's step, for the records
        t = count   # the Adam step count, for the bias corrections and the schedule
        k = t - 1 if d.schedule_step == "t-1" else t
        lr_t = _learning_rate(A, config, k)
        lrs.append(A.to_float(lr_t))
        if held is not None:
            lr_t = held.lr(config, k, lr_t)

        # Step 2: gradients as flat vectors, with the touched positions for lazy rows.
        g_vecs, touched = [], []
        for x, e in zip(tensors, entries):
            if isinstance(e, SparseGrad):
                pos, vals = _flat_rows(e)
                dense = np.zeros(int(np.prod(x.shape, dtype=np.int64)))
                dense[pos] = vals
                g_vecs.append(A.vector(dense))
                touched.append(pos if d.sparse_rows == "lazy" else None)
            else:
                g_vecs.append(A.vector(e))
                touched.append(None)

        g_raw = g_vecs
        g_vecs, clip_info = _clip(A, config, d, g_vecs)
        if trace is not None:
            st = StepTrace(t=t_step, lr=float(lr_t), clip=clip_info, g_raw=list(g_raw), g_clipped=list(g_vecs),
                           count=t)

        if d.bias_correction and held is not None:
            bc1, bc2 = held.bias_corrections(t)
        elif d.bias_correction:
            bc1 = A.sub(A.one, A.pow_int(pow_base1, t))
            bc2 = A.sub(A.one, A.pow_int(pow_base2, t))
        else:
            bc1 = bc2 = A.one
        if d.epsilon == "standard":
            step_size = A.div(lr_t, bc1)
        else:
            step_size = A.div(A.mul(lr_t, A.sqrt(bc2)), bc1)
        decay_factor = A.mul(lr_t, wd)
        inv_bc2 = A.div(A.one, bc2)

        if trace is not None:
            st.bc1, st.bc2 = float(bc1), float(bc2)
        for x, g, pos in zip(tensors, g_vecs, touched):
            theta_before, m_before, v_before = x.theta, x.m, x.v
            vmax_before = x.vmax
            if pos is not None:  # lazy: only touched rows take part in this step
                theta, m, v = A.gather(x.theta, pos), A.gather(x.m, pos), A.gather(x.v, pos)
                g = A.gather(g, pos)
            else:
                theta, m, v = x.theta, x.m, x.v
            if config.weight_decay and config.weight_decay_mode == "l2":
                g = A.add(g, A.mul(wd, theta))
            m = A.axpby(beta1, m, one_m_b1, g)
            v = A.axpbyy(beta2, v, one_m_b2, g)
            v_used = v
            if x.vmax is not None:
                if d.amsgrad_max == "raw":
                    x.vmax = A.maximum(x.vmax, v)
                    v_used = x.vmax
                else:
                    x.vmax = A.maximum(x.vmax, A.div(v, bc2))
                    v_used = A.mul(x.vmax, bc2)
            if d.epsilon == "standard":
                v_hat = A.mul(v_used, inv_bc2)  # v / bc2, through 1/bc2 computed once per step
                root = A.sqrt(A.add(v_hat, eps_root) if config.eps_root else v_hat)
            else:
                root = A.sqrt(A.add(v_used, A.mul(eps_root, bc2)) if config.eps_root else v_used)
            if config.weight_decay and config.weight_decay_mode == "decoupled":
                theta = A.sub(theta, A.mul(decay_factor, theta))
            update = A.div(A.mul(step_size, m), A.add(root, eps)) if trace is not None else None
            theta = A.apply_update(theta, step_size, m, root, eps)
            if trace is not None:
                st.record(x, pos, theta_before, m_before, v_before, vmax_before, g, m, v, v_used, root, update)
            if pos is not None:
                x.theta, x.m, x.v = A.scatter(x.theta, pos, theta), A.scatter(x.m, pos, m), A.scatter(x.v, pos, v)
            else:
                x.theta, x.m, x.v = theta, m, v
        t = t_step
        if t in wanted:
            snapshot(t)
        if trace is not None:
            trace.append(st)

    lead = (len(rec_steps),) if held is None else (len(rec_steps), len(held))

    def stack(key: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        his, los = [], []
        for k, shape in enumerate(shapes):
            his.append(np.stack([row[k][0] for row in rec[key]]).reshape(*lead, *shape))
            los.append(np.stack([row[k][1] for row in rec[key]]).reshape(*lead, *shape))
        return his, los

    theta, theta_lo = stack("theta")
    m, m_lo = stack("m")
    v, v_lo = stack("v")
    vmax, vmax_lo = stack("vmax") if config.amsgrad else (None, None)
    return Trajectory(np.array(rec_steps, dtype=np.int64), theta, theta_lo, m, m_lo, v, v_lo,
                      vmax, vmax_lo, np.array(lrs, dtype=np.float64))


def _learning_rate(A, config: AdamConfig, k: int):
    """lr(k) / (1 + decay*k), exactly (schedule values are binary64 numbers)."""
    sched = config.schedule
    if sched is None:
        lr = A.scalar(config.lr)
    elif sched.kind == "piecewise_constant":
        lr = A.scalar(sched.values[sched.segment(k)])
    else:  # exponential_decay: initial * rate^(k/steps), the exponent an exact fraction
        num, den = sched.exponent(k)
        lr = A.mul(A.scalar(sched.initial), A.pow_frac(A.scalar(sched.decay_rate), num, den))
    if config.decay:
        lr = A.div(lr, A.add(A.one, A.mul(A.scalar(config.decay), A.scalar(float(k)))))
    return lr


def _norm_factor(A, d: Dialect, norm, c):
    """The clip factor for a gradient of norm ``norm`` and threshold ``c`` (None: unchanged)."""
    if d.clip == "torch":
        coef = A.div(c, A.add(norm, A.scalar(TORCH_CLIP_EPS)))
        return coef if A.lt(coef, A.one) else None
    return A.div(c, norm) if A.gt(norm, c) else None


def _clip(A, config: AdamConfig, d: Dialect, g_vecs: list) -> tuple[list, dict]:
    """clipvalue -> clipnorm (per tensor) -> global_clipnorm, tf_keras OptimizerV2's order.

    Returns the clipped gradients and what fired: {"clipnorm": [bool per tensor],
    "global": bool}.
    """
    info: dict = {"clipnorm": [False] * len(g_vecs), "global": False}
    if config.clipvalue is not None:
        c = A.scalar(config.clipvalue)
        g_vecs = [A.clip(g, A.sub(A.zero, c), c) for g in g_vecs]
    if config.clipnorm is not None:
        c = A.scalar(config.clipnorm)
        out = []
        for k, g in enumerate(g_vecs):
            f = _norm_factor(A, d, A.sqrt(A.sumsq(g)), c)
            info["clipnorm"][k] = f is not None
            out.append(g if f is None else A.mul(g, f))
        g_vecs = out
    if config.global_clipnorm is not None:
        c = A.scalar(config.global_clipnorm)
        total = A.zero
        for g in g_vecs:
            total = A.add(total, A.sumsq(g))
        f = _norm_factor(A, d, A.sqrt(total), c)
        info["global"] = f is not None
        if f is not None:
            g_vecs = [A.mul(g, f) for g in g_vecs]
    return g_vecs, info
