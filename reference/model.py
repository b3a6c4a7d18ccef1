"""The float64 model: the reference algorithm of ``adam.trajectory`` in binary64, every tensor at once.

The error budget needs the float64 model's intermediates at every step (``model_trace``), and the
judge the model under every way of holding the hyperparameters (``model_trajectory`` with a
``held.HeldSet``). ``adam.trajectory(arithmetic="float64")`` computes the same numbers one tensor
and one step at a time through ``arith.F64Arith``: it is the specification, written once for
mpmath and float64. Here

- every tensor's elements sit side by side in one flat vector of N (the variants of a HeldSet on a
  leading axis, (V, N)), so a step is one numpy call per operation instead of one per tensor;
- what does not depend on the running state is done before the loop: the gradients as one (T, N)
  matrix, clipping (it depends on the gradients only), the schedule, the bias corrections, the
  step sizes;
- the intermediates are written into preallocated (T, N) arrays instead of per-step records.

Every value is the same to the bit as ``trajectory``'s: each element goes through the same IEEE
operations in the same order, and an elementwise numpy operation gives an element the same result
whichever other elements share the call (the norms of clipping are ``trajectory``'s own ``_clip``,
per step). tests/test_model.py checks it bitwise against ``trajectory`` over the catalogue in every
preset dialect, under held variants, and over random scenarios. What ``trajectory`` leaves
undefined (lazy rows with AMSGrad: the maximum is then taken over mismatched shapes) is handed to
``trajectory`` itself, which raises or answers as it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .adam import Trajectory, _clip, _flat_rows, _learning_rate, trajectory
from .arith import F64Arith
from .config import AdamConfig
from .dialect import Dialect, resolve_dialect
from .grads import GradEntry, SparseGrad, all_finite, check_entries
from .held import HeldSet

__all__ = ["Trace", "model_trace", "model_trace_and_variants", "model_trajectory"]

_A = F64Arith()


@dataclass
class Trace:
    """The float64 model's intermediates: row i of every (T, N) array is step i + 1, all tensors side by side.

    ``theta``, ``m_prev``, ``v_prev`` are the values before the step; ``g`` the gradient entering the
    moments (after clipping and L2), ``m``, ``v`` after the step, ``v_used`` the v of the update (vmax
    under AMSGrad), ``root`` sqrt(v_hat [+ eps_root]), ``update`` u with theta_{t+1} = theta_t - lr_t w
    theta_t (decoupled) - u. Elements a step does not touch (lazy rows, a skipped non-finite step) keep
    their state and have g = root = update = 0. ``t`` is the harness's step, ``count`` the Adam step the
    bias corrections and the schedule see (fewer when non-finite steps were skipped).
    """

    sizes: list[int]
    t: np.ndarray                 # (T,) int
    count: np.ndarray             # (T,) int
    lr: np.ndarray                # (T,) lr_t (0 on a skipped step)
    bc1: np.ndarray               # (T,) 1 on a skipped step or without bias correction
    bc2: np.ndarray
    clipnorm_fired: np.ndarray    # (T, K) bool
    global_fired: np.ndarray      # (T,) bool
    g_raw: np.ndarray             # (T, N) before clipping
    g_clipped: np.ndarray         # (T, N) after clipping, before L2
    g: np.ndarray
    theta: np.ndarray
    m_prev: np.ndarray
    v_prev: np.ndarray
    m: np.ndarray
    v: np.ndarray
    v_used: np.ndarray
    root: np.ndarray
    update: np.ndarray
    touched: np.ndarray           # (T, N) bool

    def tensors(self, row: np.ndarray) -> list[np.ndarray]:
        """A row of N split into its tensors (flat)."""
        bounds = np.cumsum([0] + self.sizes)
        return [row[..., lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def model_trace(config: AdamConfig, dialect: "Dialect | str", params0: Sequence[np.ndarray],
                grads: Sequence[Sequence[GradEntry]]) -> Trace:
    """Every step's intermediates of the float64 model (``trajectory(..., arithmetic="float64", trace=...)``)."""
    out = _run(config, resolve_dialect(dialect), params0, grads, None, trace=True)
    if isinstance(out, Trace):
        return out
    raise AssertionError("unreachable: the fallback returns a trace")  # pragma: no cover


def model_trajectory(config: AdamConfig, dialect: "Dialect | str", params0: Sequence[np.ndarray],
                     grads: Sequence[Sequence[GradEntry]], *, held: HeldSet | None = None,
                     record: Iterable[int] | None = None, record_state: Iterable[int] | None = None) -> Trajectory:
    """``trajectory(..., arithmetic="float64", held=held, record=..., record_state=...)``, bitwise."""
    return _run(config, resolve_dialect(dialect), params0, grads, held, trace=False, record=record,
                record_state=record_state)


def model_trace_and_variants(config: AdamConfig, dialect: "Dialect | str", params0: Sequence[np.ndarray],
                             grads: Sequence[Sequence[GradEntry]], held: HeldSet, *,
                             record: Iterable[int] | None = None,
                             record_state: Iterable[int] | None = None) -> tuple[Trace, Trajectory]:
    """``model_trace`` and ``model_trajectory(held=held)`` in one pass: the exact model as one more row of the
    variants (each row's arithmetic is its own, so both are bitwise what the two calls give)."""
    return _run(config, resolve_dialect(dialect), params0, grads, held, trace=True, record=record,
                record_state=record_state)


def _fallback(config, d, params0, grads, held, trace, record, record_state):
    """``trajectory`` itself, for what this module does not vectorize."""
    if trace and held is not None:
        return (_fallback(config, d, params0, grads, None, True, None, None),
                _fallback(config, d, params0, grads, held, False, record, record_state))
    if not trace:
        return trajectory(config, d, params0, grads, arithmetic="float64", held=held, record=record,
                          record_state=record_state)
    steps: list = []
    trajectory(config, d, params0, grads, arithmetic="float64", trace=steps)
    sizes = [int(np.prod(np.shape(p), dtype=np.int64)) for p in params0]
    K, T = len(sizes), len(steps)

    def stacked(name, dtype=np.float64):
        if not T or not sizes:
            return np.zeros((T, sum(sizes)), dtype)
        return np.concatenate([np.stack([np.asarray(getattr(st, name)[k], dtype=dtype).ravel() for st in steps])
                               for k in range(K)], axis=1)

    return Trace(sizes, np.array([st.t for st in steps]), np.array([st.count for st in steps]),
                 np.array([st.lr for st in steps], dtype=np.float64), np.array([st.bc1 for st in steps], np.float64),
                 np.array([st.bc2 for st in steps], np.float64),
                 np.array([st.clip["clipnorm"] for st in steps], dtype=bool).reshape(T, K),
                 np.array([st.clip["global"] for st in steps], dtype=bool),
                 stacked("g_raw"), stacked("g_clipped"), stacked("g"), stacked("theta"), stacked("m_prev"),
                 stacked("v_prev"), stacked("m"), stacked("v"), stacked("v_used"), stacked("root"),
                 stacked("update"), stacked("touched", bool))


def _run(config: AdamConfig, d: Dialect, params0, grads, held: HeldSet | None, *, trace: bool,
         record=None, record_state=None):
    if d.sparse_rows == "lazy" and config.weight_decay:
        raise ValueError("lazy sparse rows with weight decay is not defined (SparseAdam has none)")
    if d.epsilon == "hat" and config.amsgrad and d.amsgrad_max == "corrected":
        raise ValueError("epsilon='hat' with amsgrad_max='corrected' is not defined")
    if d.sparse_rows == "lazy" and config.amsgrad:
        return _fallback(config, d, params0, grads, held, trace, record, record_state)
    with np.errstate(all="ignore"):
        return _vectorized(config, d, params0, grads, held, trace, record, record_state)


def _vectorized(config, d, params0, grads, held, trace, record, record_state):
    A = _A
    params0 = [np.asarray(p, dtype=np.float64) for p in params0]
    shapes = [p.shape for p in params0]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    bounds = np.cumsum([0] + sizes)
    K, N, T = len(sizes), int(bounds[-1]), len(grads)
    lazy = d.sparse_rows == "lazy"
    wanted = set(range(T + 1)) if record is None else {int(t) for t in record if 0 <= int(t) <= T}
    wanted.add(0)
    wanted_state = wanted if record_state is None else {int(t) for t in record_state} & wanted

    # -- what does not depend on the running state: per step, before the loop -------------------
    G = np.zeros((T, N))            # the gradients as trajectory's step 2 makes them (dense, coalesced)
    positions: list = [None] * T    # lazy: the touched flat positions of the step, all tensors
    skipped = np.zeros(T, dtype=bool)
    columns = [[row[k] for row in grads] for k in range(K)] if all(len(row) == K for row in grads) else None
    dense = columns is not None and all(type(e) is np.ndarray and e.shape == shapes[k]
                                        for k in range(K) for e in columns[k])
    if dense and not lazy:  # every entry a dense array of its parameter's shape: one copy per tensor
        for k in range(K):
            G[:, bounds[k]:bounds[k + 1]] = np.asarray(columns[k], dtype=np.float64).reshape(T, sizes[k])
    for i, entries in enumerate(grads):
        if not dense:
            check_entries(entries, shapes)
        if d.nonfinite == "skip" and not all_finite(entries):
            skipped[i] = True
            continue
        if dense and not lazy:
            continue
        touched = []
        for k, e in enumerate(entries):
            lo = bounds[k]
            if isinstance(e, SparseGrad):
                pos, vals = _flat_rows(e)
                G[i, lo + np.asarray(pos, dtype=np.int64)] = vals
                touched.append(lo + np.asarray(pos, dtype=np.int64))
            else:
                G[i, lo:bounds[k + 1]] = A.vector(e)
                touched.append(np.arange(lo, bounds[k + 1]) if lazy else None)
        if lazy:
            positions[i] = np.concatenate(touched) if touched else np.zeros(0, dtype=np.int64)
    clipping = config.clipvalue is not None or config.clipnorm is not None or config.global_clipnorm is not None
    Gc = G.copy() if clipping else G
    clipnorm_fired = np.zeros((T, K), dtype=bool)
    global_fired = np.zeros(T, dtype=bool)
    if clipping:
        for i in np.flatnonzero(~skipped):
            parts, info = _clip(A, config, d, [G[i, lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])])
            Gc[i] = A.concat(parts)
            clipnorm_fired[i], global_fired[i] = info["clipnorm"], info["global"]

    # with a trace and variants both (``both``), row 0 is the exact model, the trace's, and rows 1.. the variants
    both = trace and held is not None
    beta1, beta2, eps = A.scalar(config.beta1), A.scalar(config.beta2), A.scalar(config.eps)
    omb1, omb2 = A.sub(A.one, beta1), A.sub(A.one, beta2)
    pow_base1, pow_base2 = beta1, beta2
    wd = A.scalar(config.weight_decay)
    if held is not None:
        exact = (beta1, omb1, beta2, omb2, eps, wd)
        beta1, omb1, beta2, omb2, eps, wd = (
            np.vstack([[[x]], h]) if both else h for x, h in zip(exact, (
                held.beta1, held.one_minus_beta1, held.beta2, held.one_minus_beta2, held.eps, held.weight_decay)))
    eps_root = A.scalar(config.eps_root)
    l2 = bool(config.weight_decay) and config.weight_decay_mode == "l2"
    decoupled = bool(config.weight_decay) and config.weight_decay_mode == "decoupled"

    # the per-step scalars of the applied steps, as trajectory forms them: the schedule and beta^t in
    # Python (binary64 pow), the rest elementwise over the steps (the same IEEE operations)
    counts = np.cumsum(~skipped)                    # the Adam step count t of each step (applied so far)
    applied = np.flatnonzero(~skipped)
    ts = [int(t) for t in counts[applied]]
    ks = [t - 1 if d.schedule_step == "t-1" else t for t in ts]
    if config.schedule is None and not config.decay:
        lr_exact = [A.to_float(_learning_rate(A, config, 0))] * len(ts)
    else:
        lr_exact = [A.to_float(_learning_rate(A, config, k)) for k in ks]
    lrs = np.zeros(T)
    lrs[applied] = lr_exact
    lr_s = np.array(lr_exact, dtype=np.float64)
    bc1_s = bc2_s = None
    if d.bias_correction and (held is None or both):
        bc1_s = np.subtract(1.0, np.array([A.pow_int(pow_base1, t) for t in ts], dtype=np.float64))
        bc2_s = np.subtract(1.0, np.array([A.pow_int(pow_base2, t) for t in ts], dtype=np.float64))
    if held is not None:
        lr_h = held.lrs(config, ks, lr_exact)
        lr_s = np.concatenate([lr_s.reshape(-1, 1, 1), lr_h], axis=1) if both else lr_h
        if d.bias_correction:
            idx = np.array(ts, dtype=np.int64) - 1
            bc1_h, bc2_h = held.bc1[:, idx].T[..., None], held.bc2[:, idx].T[..., None]
            bc1_s, bc2_s = ((np.concatenate([bc1_s.reshape(-1, 1, 1), bc1_h], axis=1),
                             np.concatenate([bc2_s.reshape(-1, 1, 1), bc2_h], axis=1)) if both else (bc1_h, bc2_h))
    if not d.bias_correction:
        bc1_s = bc2_s = np.ones(np.shape(lr_s))
    step_s = (np.divide(lr_s, bc1_s) if d.epsilon == "standard"
              else np.divide(np.multiply(lr_s, np.sqrt(bc2_s)), bc1_s))
    decay_s, inv_bc2_s = np.multiply(lr_s, wd), np.divide(1.0, bc2_s)
    scal: list = [None] * T  # (bc1, bc2, step_size, decay_factor, inv_bc2) per applied step
    for j, i in enumerate(applied):
        scal[i] = (bc1_s[j], bc2_s[j], step_s[j], decay_s[j], inv_bc2_s[j])

    # -- the recursion -------------------------------------------------------------------------------
    lead = () if held is None else (len(held) + both,)
    first = (lambda x: x[0]) if both else (lambda x: x)  # noqa: E731  the trace's row
    theta = np.broadcast_to(A.concat([p.ravel() for p in params0]), lead + (N,)).copy()
    m, v = np.zeros(lead + (N,)), np.zeros(lead + (N,))
    vmax = np.zeros(lead + (N,)) if config.amsgrad else None
    if trace:
        # m and v before a step are m and v after the one before it (rows shifted after the loop)
        rec = {name: np.zeros((T, N)) for name in ("g", "theta", "m", "v", "v_used", "root", "update")}
        touched_all = np.zeros((T, N), dtype=bool)
    snapshots = held is not None or not trace  # the recorded steps of a trajectory (the variants')
    rows: list[int] = []
    snaps: dict[str, list] = {"theta": [], "m": [], "v": [], "vmax": []}

    def snapshot(t: int) -> None:
        rows.append(t)
        for key, x in (("theta", theta), ("m", m), ("v", v), ("vmax", vmax)):
            if x is not None:
                x = x[1:] if both else x
                snaps[key].append(x.copy() if key == "theta" or t in wanted_state else np.full(x.shape, np.nan))

    if snapshots:
        snapshot(0)
    for i in range(T):
        if skipped[i]:  # nothing moves: every element untouched
            if trace:
                rec["theta"][i], rec["m"][i], rec["v"][i] = first(theta), first(m), first(v)
                rec["v_used"][i] = first(v if vmax is None else vmax)
            if snapshots and i + 1 in wanted:
                snapshot(i + 1)
            continue
        bc1, bc2, step_size, decay_factor, inv_bc2 = scal[i]
        pos = positions[i]
        g = Gc[i]
        if pos is not None:  # lazy: only the touched rows take part in this step
            th, m0, v0 = theta[..., pos], m[..., pos], v[..., pos]
            g = g[pos]
        else:
            th, m0, v0 = theta, m, v
        # arith.F64Arith's operations, called directly (the errstate they enter is already on)
        if l2:
            g = np.add(g, np.multiply(wd, th))
        m1 = np.add(np.multiply(beta1, m0), np.multiply(omb1, g))
        v1 = np.add(np.multiply(beta2, v0), np.multiply(omb2, np.multiply(g, g)))
        v_used = v1
        vmax_before = vmax
        if vmax is not None:
            if d.amsgrad_max == "raw":
                vmax = np.maximum(vmax, v1)
                v_used = vmax
            else:
                vmax = np.maximum(vmax, np.divide(v1, bc2))
                v_used = np.multiply(vmax, bc2)
        if d.epsilon == "standard":
            v_hat = np.multiply(v_used, inv_bc2)
            root = np.sqrt(np.add(v_hat, eps_root) if config.eps_root else v_hat)
        else:
            root = np.sqrt(np.add(v_used, np.multiply(eps_root, bc2)) if config.eps_root else v_used)
        if decoupled:
            th = np.subtract(th, np.multiply(decay_factor, th))
        update = np.divide(np.multiply(step_size, m1), np.add(root, eps))
        th = np.subtract(th, update)  # trajectory's apply_update: theta - s * m / (r + eps)
        if trace:
            rec["theta"][i] = first(theta)
            g0 = np.broadcast_to(g, np.shape(m1))  # the gradient is common to the rows (without L2)
            if pos is None:
                rec["g"][i], rec["m"][i], rec["v"][i], rec["v_used"][i] = first(g0), first(m1), first(v1), first(v_used)
                rec["root"][i], rec["update"][i] = first(root), first(update)
                touched_all[i] = True
            else:
                rec["m"][i], rec["v"][i] = first(m), first(v)
                rec["v_used"][i] = first(v if vmax_before is None else vmax_before)
                for name, x in (("g", g0), ("m", m1), ("v", v1), ("v_used", v_used), ("root", root),
                                ("update", update)):
                    rec[name][i, pos] = first(x)
                touched_all[i, pos] = True
        if pos is not None:
            theta, m, v = A.scatter(theta, pos, th), A.scatter(m, pos, m1), A.scatter(v, pos, v1)
        else:
            theta, m, v = th, m1, v1
        if snapshots and i + 1 in wanted:
            snapshot(i + 1)

    out = None
    if trace:
        bc = [(1.0, 1.0) if s is None else (float(first(s[0]).ravel()[0]), float(first(s[1]).ravel()[0]))
              for s in scal]
        out = Trace(sizes, np.arange(1, T + 1), counts, lrs, np.array([b[0] for b in bc], dtype=np.float64),
                     np.array([b[1] for b in bc], dtype=np.float64), clipnorm_fired, global_fired,
                     np.where(skipped[:, None], 0.0, G), np.where(skipped[:, None], 0.0, Gc), rec["g"],
                     rec["theta"], np.concatenate([np.zeros((min(T, 1), N)), rec["m"][:-1]]),
                     np.concatenate([np.zeros((min(T, 1), N)), rec["v"][:-1]]), rec["m"], rec["v"], rec["v_used"], rec["root"],
                     rec["update"], touched_all)
        if not snapshots:
            return out
    lead = lead[:-1] + (len(held),) if both else lead

    def split(key: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if not snaps[key]:
            return [], []
        stack = np.stack(snaps[key])  # (R, *lead, N)
        his = [stack[..., lo:hi].reshape(len(rows), *lead, *shape)
               for lo, hi, shape in zip(bounds[:-1], bounds[1:], shapes)]
        # low parts: zero (a float64 value is exact), NaN where the state was not kept (as its high part)
        dropped = np.array([key != "theta" and t not in wanted_state for t in rows], dtype=bool)
        los = [np.zeros_like(h) for h in his]
        for lo in los:
            lo[dropped] = np.nan
        return his, los

    th_hi, th_lo = split("theta")
    m_hi, m_lo = split("m")
    v_hi, v_lo = split("v")
    vm_hi, vm_lo = split("vmax") if config.amsgrad else (None, None)
    trajectory_ = Trajectory(np.array(rows, dtype=np.int64), th_hi, th_lo, m_hi, m_lo, v_hi, v_lo, vm_hi, vm_lo, lrs)
    return (out, trajectory_) if both else trajectory_
