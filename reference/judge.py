"""The judge: a run against the references of every path class it may follow, each check its own function.

A run in a dtype narrower than float64 (or a float64 run that holds hyperparameters in
float32) is compared with the *variants* of the float64 model (``reference.held``): the
model fed the hyperparameters and the bias corrections exactly as implementations of
each path class hold them (``reference.paths``), so that what is left is the rounding
during the run, which the rounding-only budget bounds. A float64 run of ``hyper=dtype``
is compared with the exact golden itself (its hyperparameters are the binary64 values
the reference takes as exact). For each (reference, class) pair:

- update: |Delta_t - delta_t| <= B_t = k F_t + |u_t| rho_pow(t) + A_t + f_t, with F the
  budget's formula bound (k = 2 when the reference is itself a float64 computation of a
  float64 run: two computations, each within F), rho_pow the unmodelled error of beta^t
  (``paths.pow_residual`` times beta^t / bc), A the final rounding of theta of the class
  (``paths.THETA_ROUNDING``, plus half an ulp for the separate decoupled-decay step), f the
  float64 model's own error against a narrower dtype (64 u_64 |u_t|, negligible);
- trajectory: |theta_t - theta^ref_t| <= sum over s <= t of B_s;
- state: |m - m^ref| <= k E^m + f, likewise v, vmax;
- bias (scenarios with ``bias_check``): the mean relative update error
  Z = sum s (Delta - delta) / sum |delta| (s = sign delta; Z = eps exactly for updates scaled
  by 1 + eps) over the window of steps whose threshold S_sys + LAMBDA sigma is smallest,
  separately over the elements whose update is v-dominated (S / (S + eps) >= 1/2) and those
  that are eps-dominated: how v is held (the variants) moves the first group only, a common
  factor on the updates moves both, so no variant can absorb a constant factor that the
  eps-dominated group sees. Also every recorded step alone against its own threshold.

The run passes if some (reference, class) passes every check; the verdict names it.
Budget used is reported as the part of the error that the exactly attained final rounding
of theta does not explain: max(0, e - A) / (B - A) (the verdict, e <= B, is the same), with
the plain e / B beside it (``raw``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np

from . import cache as _disk
from .budget import LAMBDA, Budget, compute_budget, schedule_rho
from .dialect import resolve_dialect
from .dtypes import fmt
from .held import HeldSet, held_variants
from .model import model_trace, model_trace_and_variants, model_trajectory
from .paths import THETA_ROUNDING, PathClass, candidates, pow_residual

__all__ = ["Assessment", "Finding", "Reference", "judge_against"]

F64_MODEL_ERROR = 64 * 2.0 ** -53  # the float64 model against a narrower dtype: a few dozen float64 roundings


@dataclass
class Finding:
    """The worst element of a check: where, expected, actual, and by how much."""

    check: str
    step: int
    tensor: int
    index: tuple[int, ...]
    expected: float
    actual: float
    error: float
    allowed: float
    ulps: float  # the error in units of the parameter's ulp in the run's dtype

    @property
    def used(self) -> float:
        return self.error / self.allowed if self.allowed > 0 else (0.0 if self.error == 0 else np.inf)

    def describe(self) -> str:
        what = {"update": "applied update", "trajectory": "parameter", "m": "m", "v": "v", "vmax": "vmax"}
        return (f"step {self.step}, tensor {self.tensor}, element {self.index}: {what.get(self.check, self.check)} "
                f"expected {self.expected:.17g}, got {self.actual:.17g}; error {self.error:.3g} = "
                f"{self.ulps:.3g} ulp of the parameter, allowed {self.allowed:.3g} "
                f"({100 * self.used:.1f}% of budget)")


@dataclass
class Assessment:
    checks: dict[str, float | None] = field(default_factory=dict)   # budget used (margin) per check
    raw: dict[str, float | None] = field(default_factory=dict)      # plain error / bound per check
    first_failing_step: int | None = None
    worst: dict[str, Finding] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    series: dict[str, list] = field(default_factory=dict)
    bias: dict[str, Any] = field(default_factory=dict)
    path_class: str | None = None
    reference: str | None = None
    classes_tried: int = 0

    @property
    def budget_used(self) -> float | None:
        used = [v for v in self.checks.values() if v is not None]
        return max(used) if used else None

    @property
    def passed(self) -> bool:
        return not self.failures

    def message(self) -> str:
        lines = list(self.failures)
        for name, f in self.worst.items():
            if f.used > 1:
                lines.append(f"worst {name}: {f.describe()}")
        if self.failures and self.path_class:
            lines.append(f"closest arithmetic path: {self.path_class} ({self.reference}), of {self.classes_tried} "
                         f"(reference, class) pairs tried")
        return "\n".join(lines)


@dataclass
class Reference:
    """What a run is compared with: theta (hi, lo) at the recorded steps and the state at the state steps."""

    name: str
    powers: str | None            # the variant's path; None: the exact golden (every path bounded)
    theta: list[np.ndarray]       # (R, *shape)
    theta_lo: list[np.ndarray]
    state: dict[str, tuple[list[np.ndarray], list[np.ndarray]]]  # key -> (hi, lo), (S, *shape)
    exact: bool
    lr_float32: bool = False      # the variant holds lr_t as a float32 value (``Held.lr_float32``)


# -- exact arithmetic helpers ---------------------------------------------------------------------

def _two_diff(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a - b as an unevaluated sum hi + lo, exactly (Knuth's TwoSum)."""
    s = a - b
    bb = s - a
    err = (a - (s - bb)) + (-b - bb)
    return s, np.where(np.isfinite(s), err, 0.0)


def _dd_sub(ahi, alo, bhi, blo) -> np.ndarray:
    """(ahi + alo) - (bhi + blo) rounded once to float64, for nearby values."""
    hi, lo = _two_diff(ahi, bhi)
    return hi + (lo + (alo - blo))


def _finite(a):
    return np.where(np.isfinite(a), a, 0.0)


# -- the checks -----------------------------------------------------------------------------------

def nonfinite_pattern(golden_theta: list[np.ndarray], run_at_steps: list[np.ndarray], steps: np.ndarray) -> list[str]:
    """Where the golden is NaN or +-inf the run must be the same, and only there."""
    out = []
    names = {0: "finite", 1: "nan", 2: "+inf", 3: "-inf"}
    for k, (g_hi, r) in enumerate(zip(golden_theta, run_at_steps)):
        g_cls = np.where(np.isnan(g_hi), 1, np.where(np.isposinf(g_hi), 2, np.where(np.isneginf(g_hi), 3, 0)))
        r_cls = np.where(np.isnan(r), 1, np.where(np.isposinf(r), 2, np.where(np.isneginf(r), 3, 0)))
        bad = g_cls != r_cls
        if np.any(bad):
            row, *idx = np.argwhere(bad)[0]
            idx = tuple(int(i) for i in idx)
            out.append((int(steps[row]),
                        f"non-finite pattern differs: step {int(steps[row])}, tensor {k}, element {idx}: golden "
                        f"{names[int(g_cls[row][idx])]} ({g_hi[row][idx]!r}), run {names[int(r_cls[row][idx])]} "
                        f"({r[row][idx]!r}); {int(np.sum(bad))} element-steps differ"))
    return out


@dataclass
class _Ratios:
    """One check of one (reference, class): error, bound, attained part, at its steps, every tensor side by side.

    Each array is (len(steps), M), the tensors' elements in columns ``parts[k]`` (the state check's parts are
    its (moment, tensor) pairs), so that a check is a few numpy calls whatever the number of tensors; what
    the verdict reports per tensor (the worst element, the misfit's sums) is taken part by part.
    """

    name: str
    steps: np.ndarray
    parts: list[tuple[int, int]]  # columns [lo, hi) of each tensor (the finding's "tensor k")
    err: np.ndarray
    bound: np.ndarray
    attained: np.ndarray
    expected: np.ndarray
    actual: np.ndarray
    basis: np.ndarray          # the parameter whose ulp expresses the error
    scale: np.ndarray | None = None  # the bound without the path's own residual (``_Combo.misfit``)

    def raw(self) -> float | None:
        # asked again by every ranking of the pair (``_choose``, the rank's early exit): computed once
        if not hasattr(self, "_raw"):
            r = self._ratio()
            self._raw = float(np.max(np.where(np.isnan(r), np.inf, r))) if r.size else None
        return self._raw

    def _ratio(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.err == 0, 0.0, self.err / self.bound)

    def margin(self) -> float | None:
        e, b, a = self.err, self.bound, self.attained
        if not e.size:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(e <= a, 0.0, (e - a) / (b - a))
        return float(np.max(np.where(np.isnan(r), np.inf, r)))

    def first_fail(self) -> int | None:
        bad = np.any(~(self._ratio() <= 1.0), axis=1)
        hit = np.flatnonzero(bad)
        return int(self.steps[hit[0]]) if hit.size else None

    def worst(self, F) -> Finding | None:
        """The largest ratio: of the tensors, the first holding it; in that tensor, the first (step-major)."""
        r = self._ratio()
        if r.size == 0:
            return None
        rr = np.where(np.isnan(r), np.inf, r)
        top = rr.max(axis=0)
        best = None
        for k, (lo, hi) in enumerate(self.parts):
            if hi > lo and (best is None or top[lo:hi].max() > best[0]):
                best = (top[lo:hi].max(), k)
        if best is None:
            return None
        k = best[1]
        lo, hi = self.parts[k]
        row, j = divmod(int(np.argmax(rr[:, lo:hi])), hi - lo)
        pos = (row, lo + j)
        basis = float(self.basis[pos])
        ulp = float(F.ulp(np.array([basis]))[0]) if np.isfinite(basis) else np.nan
        err = float(self.err[pos])
        return Finding(self.name, int(self.steps[row]), k, (j,), float(self.expected[pos]), float(self.actual[pos]),
                       err, float(self.bound[pos]), err / ulp if ulp and np.isfinite(ulp) else np.nan)


def _exceeding(err: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """For each row of ``err`` (R, steps, N) against ``bound`` (steps, N): whether its ``_Ratios.raw()`` is
    above 1, computing only the ratios of the errors that exceed their bounds.

    Exact: an error e <= b that is finite has the ratio 0 or e / b <= 1, which rounds to at most 1; the
    other elements' ratios (NaN or inf / inf counted as infinite) are computed as ``_Ratios._ratio`` does.
    The update check of every (reference, class) pair of a case is this one comparison of its errors,
    the references of a class stacked, instead of every ratio of every pair.
    """
    if err.size == 0:
        return np.zeros(err.shape[0], dtype=bool)
    rest = ~(err <= bound) | np.isinf(err)  # inf / inf is NaN, which raw() counts as infinite
    if not rest.any():
        return np.zeros(err.shape[0], dtype=bool)
    r = np.where(rest, np.where(err == 0, 0.0, err / bound), 0.0)
    return np.any(~(r <= 1.0), axis=tuple(range(1, err.ndim)))


def _bias(run_delta: list[np.ndarray], ref_delta: list[np.ndarray], sys_: list[np.ndarray], var: list[np.ndarray],
          sd_state: list[np.ndarray], wv: list[np.ndarray], steps: np.ndarray) -> dict[str, Any]:
    """The mean-error check of one (reference, class); all arrays (T_u, n) per tensor.

    For each group (v-dominated, eps-dominated elements): over the window t >= t0 whose
    threshold S_sys + LAMBDA sigma is smallest (chosen from the model and the run's ulps,
    never from its errors), Z against the threshold; and Z of every single step against its own.
    """
    Tu = len(steps)
    groups = {"v": [w >= 0.5 for w in wv], "eps": [w < 0.5 for w in wv]}
    out: dict[str, Any] = {"groups": {}}
    worst_used = 0.0
    for gname, masks in groups.items():
        num = np.zeros(Tu)
        weight = np.zeros(Tu)
        s_sys = np.zeros(Tu)
        v_step = np.zeros(Tu)
        sd_suffix_sq = np.zeros(Tu)
        for a, d, sy, va, sd, msk in zip(run_delta, ref_delta, sys_, var, sd_state, masks):
            ok = msk & np.isfinite(d) & (d != 0) & np.isfinite(a)
            num += np.sum(np.where(ok, np.sign(d) * (a - d), 0.0), axis=1)
            weight += np.sum(np.where(ok, np.abs(d), 0.0), axis=1)
            s_sys += np.sum(np.where(ok, sy, 0.0), axis=1)
            v_step += np.sum(np.where(ok, va, 0.0), axis=1)
            # the moments' rounding is taken as fully correlated over the steps of an element
            suffix = np.cumsum(np.where(ok, sd, 0.0)[::-1], axis=0)[::-1]
            sd_suffix_sq += np.sum(suffix ** 2, axis=1)
        if not np.any(weight > 0):
            continue
        suf = lambda x: np.cumsum(x[::-1])[::-1]  # noqa: E731
        W, N, S, V = suf(weight), suf(num), suf(s_sys), suf(v_step)
        with np.errstate(divide="ignore", invalid="ignore"):
            thr = np.where(W > 0, S / W + LAMBDA * np.sqrt(V + sd_suffix_sq) / W, np.inf)
        i0 = int(np.argmin(thr))
        z = float(N[i0] / W[i0])
        used = abs(z) / thr[i0] if thr[i0] > 0 else (0.0 if z == 0 else math.inf)
        g = {"z": z, "threshold": float(thr[i0]), "systematic": float(S[i0] / W[i0]),
             "sigma": float(math.sqrt(V[i0] + sd_suffix_sq[i0]) / W[i0]), "from_step": int(steps[i0]),
             "used": float(used)}
        if gname == "v" or "z" not in out:
            out.update({k: g[k] for k in ("z", "threshold", "systematic", "sigma", "from_step")})
        out["groups"][gname] = g
        worst_used = max(worst_used, used)
    # every step alone, all elements
    num = sum(np.sum(np.where(np.isfinite(d) & (d != 0) & np.isfinite(a), np.sign(d) * (a - d), 0.0), axis=1)
              for a, d in zip(run_delta, ref_delta))
    weight = sum(np.sum(np.where(np.isfinite(d) & (d != 0), np.abs(d), 0.0), axis=1) for d in ref_delta)
    s_sys = sum(np.sum(np.where(np.isfinite(sy), sy, 0.0), axis=1) for sy in sys_)
    var_t = sum(np.sum(np.where(np.isfinite(va), va, 0.0), axis=1) for va in var)
    sd_t = sum(np.sum(np.where(np.isfinite(sd), sd, 0.0) ** 2, axis=1) for sd in sd_state)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_t = np.where(weight > 0, num / weight, 0.0)
        thr_t = np.where(weight > 0, s_sys / weight + LAMBDA * np.sqrt(var_t + sd_t) / weight, np.inf)
        r_t = np.where(z_t == 0, 0.0, np.abs(z_t) / thr_t)
    r_t = np.where(np.isnan(r_t), np.inf, r_t)
    worst_step = int(np.argmax(r_t)) if Tu else 0
    out.update({"worst_step": int(steps[worst_step]) if Tu else None,
                "worst_step_used": float(r_t[worst_step]) if Tu else 0.0,
                "series_step": [int(s) for s in steps], "series_z": z_t.tolist(), "series_threshold": thr_t.tolist()})
    out["used"] = max(worst_used, float(r_t[worst_step]) if Tu else 0.0)
    out.setdefault("z", 0.0)
    return out


# -- one (reference, class) -----------------------------------------------------------------------

@dataclass
class _Combo:
    ref: Reference
    cls: PathClass
    checks: dict[str, _Ratios]
    bias: dict[str, Any] | None
    complete: bool = True   # False: stopped after a failed update check

    def misfit(self) -> float:
        """How far the reference is from the run, on a scale that is the same for every reference of a rank:
        the mean squared error of the applied updates (or parameters) and of the state, each over its bound
        without the unmodelled part of beta^t (which differs between paths and would favour the loosest)."""
        total = 0.0
        for name in ("update", "state") if "update" in self.checks else ("trajectory", "state"):
            r = self.checks.get(name)
            if r is None:
                continue
            s, count = 0.0, 0
            scales = r.scale if r.scale is not None else r.bound
            with np.errstate(divide="ignore", invalid="ignore"):
                qs = np.where(scales > 0, r.err / scales, 0.0)
            for lo, hi in r.parts:  # summed tensor by tensor, each in step-major order (the sum's rounding)
                if hi > lo and len(r.steps):
                    q = qs[:, lo:hi]
                    q = q[np.isfinite(q)]
                    s += float(np.sum(q * q))
                    count += q.size
            total += s / count if count else 0.0
        return total

    def raw_used(self) -> float:
        vals = [r.raw() for r in self.checks.values()]
        if self.bias is not None:
            vals.append(self.bias["used"])
        vals = [v for v in vals if v is not None]
        return max(vals) if vals else 0.0


class _Bounds(NamedTuple):
    """A class's update bound at the update steps (U, N), and what goes with it."""

    bound: np.ndarray
    finite: np.ndarray | None     # where the bound is finite; None: everywhere
    attained: np.ndarray          # its exactly attainable part (the final rounding of theta)
    scale: np.ndarray             # the bound without the pow residual (``_Combo.misfit``)
    rho_pow: np.ndarray           # the pow residual per step (T,)


def _class_bounds(cls: PathClass, budget: Budget, run: "_Run", factor: float, config, exact: bool,
                  ctx: dict) -> _Bounds:
    """What a class's pairs share within one case, for the update check: the per-step bound B_t of ``_evaluate``
    at the update steps (with where it is finite, None if everywhere), its attained part, its scale without the
    pow residual, and the pow residual rho per step.

    ctx keeps each piece under the key of what it depends on: the unmodelled error of beta^t per path, the final
    rounding of theta per theta class, the formula bound (the same for every class).
    """
    key = ("bounds", id(budget), cls.powers, cls.theta, exact)
    if key not in ctx:
        rho_pow, P = _pow_bound(cls, budget, exact, config, ctx)
        A = _theta_bound(cls, budget, run, exact, ctx)
        Fb = _formula_bound(budget, factor, exact, ctx)
        us = run.u_steps
        Fu, Au = Fb[us - 1], A[us - 1]
        bound = Fu + P[us - 1] + Au
        finite = np.isfinite(bound)
        ctx[key] = _Bounds(bound, None if finite.all() else finite, Au, Fu + Au, rho_pow)
    return ctx[key]


def _trajectory_bounds(cls: PathClass, budget: Budget, run: "_Run", factor: float, config, exact: bool,
                       ctx: dict) -> tuple:
    """The trajectory check's bound of a class at the recorded steps, the running sum of the per-step bounds
    (with where it is finite), and its attained part: made for the classes of the pairs the update check leaves."""
    key = ("trajectory", id(budget), cls.powers, cls.theta, exact)
    if key not in ctx:
        def running_sum(name: str, part: Any, make) -> np.ndarray:
            """Row t: the sum of the per-step bound ``make()`` over steps 1..t, at the recorded steps."""
            sub = (name, part, id(budget), exact)
            if sub not in ctx:
                x = make()
                ctx[sub] = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])[run.steps]
            return ctx[sub]

        cumF = running_sum("formula", None, lambda: _formula_bound(budget, factor, exact, ctx))
        cumP = running_sum("pow", cls.powers, lambda: _pow_bound(cls, budget, exact, config, ctx)[1])
        cumA = running_sum("theta", cls.theta, lambda: _theta_bound(cls, budget, run, exact, ctx))
        t_bound = cumF + cumP + cumA
        ctx[key] = (t_bound, np.isfinite(t_bound), cumA)
    return ctx[key]


def _pow_bound(cls: PathClass, budget: Budget, exact: bool, config, ctx: dict) -> tuple:
    """The unmodelled error of beta^t of the class's path per step, rho, and times |u|: P (T, N)."""
    key = ("pow", id(budget), cls.powers, exact)
    if key not in ctx:
        bf = _budget_flat(budget)
        t_all = np.arange(1, bf.formula.shape[0] + 1)
        u_round = fmt(budget.dtype).u
        rho = (budget.amp1 * pow_residual(cls.powers, config.beta1, t_all, u_round, exact)
               + budget.amp2 * pow_residual(cls.powers, config.beta2, t_all, u_round, exact) / 2)
        ctx[key] = (rho, bf.adam_update * rho[:, None])
    return ctx[key]


def _theta_bound(cls: PathClass, budget: Budget, run: "_Run", exact: bool, ctx: dict) -> np.ndarray:
    """The final rounding of theta of the class's theta form per step (+ the float64 model's own): A (T, N)."""
    key = ("theta", id(budget), cls.theta, exact)
    if key not in ctx:
        ctx[key] = np.where(run.touched, _theta_rounding(cls.theta, run.ulp_prev, run.ulp_next, budget.decoupled)
                            + (0.0 if exact else 0.5 * (run.ulp64_prev + run.ulp64_next)), 0.0)
    return ctx[key]


def _formula_bound(budget: Budget, factor: float, exact: bool, ctx: dict) -> np.ndarray:
    """The budget's formula bound k F_t (+ the float64 model's own error against a narrower dtype): (T, N)."""
    key = ("formula", id(budget), exact)
    if key not in ctx:
        bf = _budget_flat(budget)
        ctx[key] = factor * bf.formula + (0.0 if exact else F64_MODEL_ERROR * np.abs(bf.model_update))
    return ctx[key]


def _reference_errors(refs: Sequence[Reference], run: "_Run", ctx: dict) -> None:
    """Each reference's applied updates delta (hi + lo rounded once), the run's update errors |Delta - delta|
    (0 where either side is not finite), its parameter errors at the recorded steps, and its theta: into ctx
    under ("ref", id(ref)) for every reference not there yet.

    The references are stacked (R, rows, N) and every operation is elementwise, so each row is bit for bit
    what the reference alone gives; a case's few dozen references cost one pass of numpy calls, not one each.
    """
    todo = [r for r in {id(r): r for r in refs}.values() if ("ref", id(r)) not in ctx]
    rows, state_rows = len(run.steps), len(run.state_steps)
    for lo in range(0, len(todo), _REF_CHUNK):
        chunk = todo[lo:lo + _REF_CHUNK]
        flats = [_reference_flat(r, rows, state_rows) for r in chunk]
        th = np.stack([f.theta for f in flats])
        fin = np.isfinite(th)
        ghi, glo = np.where(fin, th, 0.0), _finite(np.stack([f.theta_lo for f in flats]))
        p, q = run.pairs, run.pairs - 1
        d_hi, d_lo0 = _two_diff(ghi[:, p], ghi[:, q])
        d_lo = d_lo0 + (glo[:, p] - glo[:, q])
        err = np.abs(_dd_sub(run.d_hi, run.d_lo, d_hi, d_lo))
        # a non-finite run value where the reference is finite is the non-finite pattern's failure, not a size
        rt, rt_fin = run.theta_at, run.theta_finite
        judged = fin[:, p] & fin[:, q] & rt_fin[p] & rt_fin[q]
        r = np.where(rt_fin, rt, 0.0)
        # (r + 0) - (theta + lo) rounded once; with every lo zero (a float64 variant) that is fl(r - theta) itself
        e = np.abs(_dd_sub(r, np.zeros_like(r), ghi, glo) if glo.any() else r - ghi)
        t_err = np.where(fin & rt_fin, e, 0.0)
        ref_delta, err = d_hi + d_lo, np.where(judged, err, 0.0)
        for i, ref in enumerate(chunk):
            ctx[("ref", id(ref))] = (ref_delta[i], err[i], t_err[i], flats[i].theta)


_REF_CHUNK = 64  # references stacked at once: a case has up to ~45; keeps a long scenario's stack to tens of MB


def _assess_pairs(pairs: Sequence[tuple[Reference, PathClass]], budget: Budget, run: "_Run", factor: float,
                  bias_check: bool, config, ctx: dict) -> list["_Combo"]:
    """Every (reference, class) pair of one class group and rank: the update check of all of them at once
    (``_exceeding``, the references of each class stacked), then every check of the pairs it leaves in.

    A pair whose update check fails is out (``_Combo.complete`` False; its update ratio still ranks it).
    """
    _reference_errors([r for r, _ in pairs], run, ctx)
    out: dict[int, _Combo] = {}
    by_class: dict[tuple, list[int]] = {}
    for i, (ref, cls) in enumerate(pairs):
        by_class.setdefault((id(cls), ref.exact), []).append(i)
    for members in by_class.values():
        cls = pairs[members[0]][1]
        exact = pairs[members[0]][0].exact
        bounds = _class_bounds(cls, budget, run, factor, config, exact, ctx)
        if not len(run.u_steps):
            fails = np.zeros(len(members), dtype=bool)
        else:
            errs = _judged(np.stack([ctx[("ref", id(pairs[i][0]))][1] for i in members]), bounds)
            fails = _exceeding(errs, bounds.bound)
        if run.states:  # the state checks of the references the update check leaves in, stacked
            _state_checks([pairs[i][0] for j, i in enumerate(members) if not fails[j]], budget, run, factor, exact,
                          ctx)
        for j, i in enumerate(members):
            ref = pairs[i][0]
            if fails[j]:
                upd = _update_ratios(run, errs[j], ctx[("ref", id(ref))][0], bounds)
                out[i] = _Combo(ref, cls, {"update": upd}, None, complete=False)
            else:
                out[i] = _evaluate(ref, cls, budget, run, factor, bias_check, config, ctx)
    return [out[i] for i in range(len(pairs))]


def _judged(err: np.ndarray, bounds: _Bounds) -> np.ndarray:
    """The update errors (err: where both the run and the reference are finite) where the class's bound is
    finite too, 0 elsewhere; err may be one reference's (U, N) or a stack (R, U, N)."""
    return err if bounds.finite is None else np.where(bounds.finite, err, 0.0)


def _update_ratios(run: "_Run", err: np.ndarray, ref_delta: np.ndarray, bounds: _Bounds) -> _Ratios:
    """The update check of one pair: its judged errors against the class's bounds (``_class_bounds``)."""
    return _Ratios("update", run.u_steps, run.parts, err, bounds.bound, bounds.attained, ref_delta, run.delta,
                   run.basis, bounds.scale)


def _evaluate(ref: Reference, cls: PathClass, budget: Budget, run: "_Run", factor: float, bias_check: bool,
              config, ctx: dict) -> _Combo:
    """Every check of the run against one reference under one path class.

    ctx caches what several (reference, class) pairs share within one case: the reference's updates and
    errors (``_reference_errors``), the class's bounds (``_class_bounds``), the reference's state check.
    Every array is (steps, N), the tensors side by side.
    """
    bf = _budget_flat(budget)
    exact = ref.exact
    us, steps = run.u_steps, run.steps
    _reference_errors([ref], run, ctx)
    ref_delta, err, t_err, th = ctx[("ref", id(ref))]
    bounds = _class_bounds(cls, budget, run, factor, config, exact, ctx)
    rho_pow = bounds.rho_pow
    t_bound, t_bound_finite, t_attained = _trajectory_bounds(cls, budget, run, factor, config, exact, ctx)
    checks: dict[str, _Ratios] = {}
    if len(us):
        checks["update"] = _update_ratios(run, _judged(err, bounds), ref_delta, bounds)
    # trajectory: the running sum of the per-step bounds, at the recorded steps; every step's final
    # rounding can be attained, all in one direction: their sum is the attainable part
    checks["trajectory"] = _Ratios("trajectory", steps, run.parts, np.where(t_bound_finite, t_err, 0.0),
                                   t_bound, t_attained, th, run.theta_at, th)
    if run.states:
        _state_checks([ref], budget, run, factor, exact, ctx)
        state = ctx[("state", id(ref), id(budget), factor, exact)]
        if state is not None:
            checks["state"] = state
    bias = None
    if bias_check and len(us):
        a0, _, var_c = THETA_ROUNDING[cls.theta]
        U = bf.adam_update[us - 1]
        sys_ = factor * bf.bias_sys[us - 1] + U * rho_pow[us - 1][:, None]
        ulp_n, ulp_p = run.ulp_next[us - 1], run.ulp_prev[us - 1]
        tch = run.touched[us - 1]
        theta_var = var_c * (ulp_n ** 2 if a0 == 0 else (ulp_n ** 2 + ulp_p ** 2) / 2)
        if cls.theta in ("once", "twice"):
            # Round to nearest of fl(y - x), y = theta_{t-1} a number of D, commits an error e with
            # |e| <= min(|x|, ulp/2) (y itself is a candidate at distance |x|), a deterministic function of
            # f = |x| / ulp: for f < 1/2 the part is lost outright (e = x, always against the update), for
            # 1/2 <= f < 1 it becomes exactly one ulp (e = ulp - |x|, always with it). Only where f ranges
            # over several units across the element-steps summed is the fractional position of x spread and
            # e zero-mean (the variance ulp^2/12). Below one ulp (f < 1, ulp the wider of the two binades)
            # theta - x has two candidates, y and its neighbour, and which one is taken is a threshold of f:
            # with the steps of the elements at one fixed fraction of an ulp (an update held at +-clipvalue,
            # a decoupled decay lr_t w |theta| = lr_t w 2^(p-1) M ulp with M the mantissa in [1, 2): a fixed
            # multiple of the ulp) every element errs the same way (measured: Z = +0.57 in float16 keras with
            # the decay at 0.5..1 ulp, Z = -0.56 with updates of 0.1-0.5 ulp lost). There the rounding is
            # bounded, systematically, by min(|x|, ulp/2) instead of being counted as a variance.
            # x is the update the run applies, which the statistic measures against this reference's
            # delta: lost outright, the error is -delta_run, of size up to |delta_ref| (the variants hold
            # beta as the dtype does, so |delta_ref| may exceed the float64 model's |u| by more than the
            # formula's systematic part: 6.5e-6 with float32's 0.999) plus that systematic part (already in
            # bias_sys): hence x = max(|u|, |delta_ref|), never below what a lost update costs
            wide = np.fmax(ulp_n, ulp_p)
            x = np.fmax(U, np.abs(ref_delta))
            sub = tch & (x < wide)
            sys_ = sys_ + np.where(sub, np.fmin(x, 0.5 * wide), 0.0)
            theta_var = np.where(sub, 0.0, theta_var)
            if budget.decoupled and budget.decay_update is not None:
                # the separate decay step theta - lr_t w theta (torch's theta fl(1 - lr_t w), Keras' theta -
                # (theta w) lr_t) is one more rounding of theta, of the part x = lr_t w |theta_{t-1}|: the
                # same rule, the bound min(x, ulp/2) where x is below one ulp, and above one ulp a second
                # zero-mean rounding, variance ulp^2/12 (the wider binade's ulp)
                dd = bf.decay_update[us - 1]
                dsub = tch & (dd < wide)
                sys_ = sys_ + np.where(dsub, np.fmin(dd, 0.5 * wide), 0.0)
                theta_var = theta_var + np.where(tch & ~dsub & (dd > 0), wide ** 2 / 12, 0.0)
        var = factor ** 2 * bf.bias_var_step[us - 1] + np.where(tch, theta_var, 0.0)
        if cls.theta == "twice":
            # theta=twice rounds an intermediate theta - a before subtracting the rest b of the update
            # (a + b = u). That rounding is zero-mean only while the parts are wide against the ulp:
            # a part below half an ulp of theta is lost outright (fl(y - b) = y for y on the grid), an
            # error of exactly b, always against the update, on every element where it happens. With
            # a = 3u/4, b = u/4 and |u| = f ulp, f uniform on [0, 2], the mean error is -ulp/3
            # (measured: Z = -0.15 in float16 with updates of about one ulp, tests/random_scenarios.py).
            # The split is the implementation's, unknown here; whatever it is, the part lost is below
            # half an ulp, so the intermediate rounding contributes at most a0 * wide = ulp/2 per
            # element to the systematic part, not (only) a variance.
            sys_ = sys_ + np.where(tch, a0 * np.fmax(ulp_n, ulp_p), 0.0)
        sd = factor * bf.bias_sd_state[us - 1]
        # the sums over the elements go tensor by tensor, as each tensor's own (their rounding is the statistic's)
        split = lambda a: [a[:, lo:hi] for lo, hi in run.parts]  # noqa: E731
        bias = _bias(split(run.delta), split(ref_delta), split(sys_), split(var), split(sd),
                     split(bf.wv[us - 1]), us)
    return _Combo(ref, cls, checks, bias)


def _theta_rounding(theta: str, ulp_prev: np.ndarray, ulp_next: np.ndarray, decoupled: bool) -> np.ndarray:
    """Bound on what rounding theta contributes to |Delta_t - delta_t| under a theta class (``THETA_ROUNDING``).

    Round to nearest errs by at most half the spacing at the result (ulp_next); an intermediate
    value (a second rounding, the separate decoupled-decay step) or a stochastic rounding may
    lie in the wider of the two binades, hence the larger ulp there. Kahan and master weights
    report a value within half an ulp of a precise one at each end of the step.
    """
    a0, a1, _ = THETA_ROUNDING[theta]
    wide = np.fmax(ulp_prev, ulp_next)
    if theta in ("kahan", "master"):
        out = a0 * ulp_prev + a1 * ulp_next
    else:
        out = a0 * wide + a1 * (wide if theta == "stochastic" else ulp_next)
    return out + (0.5 * wide if decoupled else 0.0)


def _state_checks(refs: Sequence[Reference], budget: Budget, run: "_Run", factor: float, exact: bool,
                  ctx: dict) -> None:
    """|m - m^ref| <= k E^m + f at the state steps, likewise v and vmax (the parts: m's tensors, v's, vmax's):
    a ``_Ratios`` (None where nothing is compared) into ctx under ("state", id(ref), id(budget), factor, exact)
    for every reference not there yet.

    A reference's state check is its own, whatever class it is paired with. The references holding the same
    moments are stacked (R, state steps, N), every operation elementwise: each is bit for bit its own check.
    """
    bf = _budget_flat(budget)
    key = lambda r: ("state", id(r), id(budget), factor, exact)  # noqa: E731
    todo = [r for r in {id(r): r for r in refs}.values() if key(r) not in ctx]
    if not run.n:
        ctx.update({key(r): None for r in todo})
        return
    rows_n, state_n = len(run.steps), len(run.state_steps)
    held: dict[tuple, list[tuple[Reference, _ReferenceFlat]]] = {}
    for r in todo:
        f = _reference_flat(r, rows_n, state_n)
        held.setdefault(tuple(k for k in ("m", "v", "vmax") if k in f.state), []).append((r, f))
    for moments, members in held.items():
        s_err, s_bound, s_att, s_exp, s_act, s_steps, parts = [], [], [], [], [], [], []
        for key_ in moments:
            bound_arr = getattr(bf, key_)
            if bound_arr is None or key_ not in run.state_flat:
                continue
            rows, ts, got = run.state_flat[key_]
            h = np.stack([f.state[key_][0][rows] for _, f in members])
            lo = np.stack([f.state[key_][1][rows] for _, f in members])
            e = np.abs(_dd_sub(_finite(got), np.zeros_like(got), _finite(h), _finite(lo)))
            b = np.broadcast_to(factor * bound_arr[ts] + (0.0 if exact else F64_MODEL_ERROR * np.abs(h)), h.shape)
            judged = np.isfinite(h) & np.isfinite(b)
            offset = sum(x.shape[2] for x in s_err)
            parts += [(offset + a, offset + z) for a, z in run.parts]
            s_err.append(np.where(judged, e, 0.0))
            s_bound.append(b)
            s_att.append(np.fmin(0.5 * run.F.ulp(_finite(h)), b))  # storing the moment rounds it: attained
            s_exp.append(h)
            s_act.append(got)
            s_steps = ts
        if not s_err:
            ctx.update({key(r): None for r, _ in members})
            continue
        cat = lambda xs: np.concatenate(xs, axis=-1)  # noqa: E731
        err, bound, att, expected, actual = cat(s_err), cat(s_bound), cat(s_att), cat(s_exp), cat(s_act)
        steps = np.array(s_steps)
        for i, (r, _) in enumerate(members):
            ctx[key(r)] = _Ratios("state", steps, parts, err[i], bound[i], att[i], expected[i], actual, expected[i])


@dataclass
class _Run:
    """The run's parameters at the golden's steps, its applied updates and the ulps the classes need: every
    array (steps, N), the tensors side by side in the columns ``parts``."""

    F: Any
    n: int
    parts: list[tuple[int, int]]
    steps: np.ndarray
    pairs: np.ndarray
    u_steps: np.ndarray
    theta_at: np.ndarray
    d_hi: np.ndarray
    d_lo: np.ndarray
    ulp_prev: np.ndarray   # (T, N): ulp of theta_{t-1}, run and model, the larger
    ulp_next: np.ndarray
    ulp64_prev: np.ndarray  # the same in float64: the model's own rounding of theta
    ulp64_next: np.ndarray
    touched: np.ndarray
    states: dict
    state_steps: np.ndarray
    # moment -> (rows of state_steps, those steps, the run's values there (steps, N)), where the run has it
    state_flat: dict = field(default_factory=dict)

    @functools.cached_property
    def delta(self) -> np.ndarray:
        """The run's applied updates, d_hi + d_lo rounded once (what every reference is compared with)."""
        return self.d_hi + self.d_lo

    @functools.cached_property
    def theta_finite(self) -> np.ndarray:
        """Where the run's parameters at the recorded steps are finite."""
        return np.isfinite(self.theta_at)

    @functools.cached_property
    def basis(self) -> np.ndarray:
        """The parameters after each applied update: their ulp expresses an update's error."""
        return self.theta_at[self.pairs]


def _flat_list(arrays: Sequence[np.ndarray], rows: int) -> np.ndarray:
    """Per-tensor arrays (rows, *shape_k) side by side: (rows, N)."""
    # the columns of each from its own trailing shape: reshape(rows, -1) is undefined for rows = 0
    return (np.concatenate([np.asarray(a).reshape(rows, int(np.prod(np.shape(a)[1:], dtype=np.int64)))
                            for a in arrays], axis=1) if len(arrays) else np.zeros((rows, 0)))


def _parts(arrays: Sequence[np.ndarray]) -> list[tuple[int, int]]:
    """The columns [lo, hi) of each tensor of per-tensor arrays (rows, *shape_k) set side by side."""
    bounds = np.cumsum([0] + [int(np.prod(np.shape(a)[1:], dtype=np.int64)) for a in arrays])
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


@dataclass
class _BudgetFlat:
    """A ``Budget``'s per-tensor arrays side by side (made once per budget, kept on it)."""

    formula: np.ndarray
    adam_update: np.ndarray
    model_update: np.ndarray
    model_theta: np.ndarray
    touched: np.ndarray
    bias_sys: np.ndarray
    bias_var_step: np.ndarray
    bias_sd_state: np.ndarray
    wv: np.ndarray
    decay_update: np.ndarray | None
    m: np.ndarray
    v: np.ndarray
    vmax: np.ndarray | None


def _budget_flat(budget: Budget) -> _BudgetFlat:
    flat = getattr(budget, "_flat", None)
    if flat is None:
        T = len(budget.amp1)
        per_step = {name: _flat_list(getattr(budget, name), T)
                    for name in ("formula", "adam_update", "model_update", "touched", "bias_sys", "bias_var_step",
                                 "bias_sd_state", "wv")}
        flat = _BudgetFlat(**per_step, model_theta=_flat_list(budget.model_theta, T + 1),
                           decay_update=None if budget.decay_update is None else _flat_list(budget.decay_update, T),
                           m=_flat_list(budget.m, T + 1), v=_flat_list(budget.v, T + 1),
                           vmax=None if budget.vmax is None else _flat_list(budget.vmax, T + 1))
        budget._flat = flat  # type: ignore[attr-defined]
    return flat


@dataclass
class _ReferenceFlat:
    theta: np.ndarray
    theta_lo: np.ndarray
    state: dict[str, tuple[np.ndarray, np.ndarray]]


def _reference_flat(ref: Reference, rows: int, state_rows: int) -> _ReferenceFlat:
    """A ``Reference``'s per-tensor arrays side by side (made once per reference, kept on it): theta at the
    ``rows`` recorded steps, the state at the ``state_rows`` state steps."""
    flat = getattr(ref, "_flat", None)
    if flat is None:
        state = {key: (_flat_list(hi, state_rows), _flat_list(lo, state_rows)) for key, (hi, lo) in ref.state.items()}
        flat = _ReferenceFlat(_flat_list(ref.theta, rows), _flat_list(ref.theta_lo, rows), state)
        ref._flat = flat  # type: ignore[attr-defined]
    return flat


def _prepare_run(theta_run: Sequence[np.ndarray], steps: np.ndarray, state_steps: np.ndarray, states: dict,
                 dtype: str, budget: Budget) -> _Run:
    F = fmt(dtype)
    n = len(theta_run)
    T = np.asarray(theta_run[0]).shape[0] - 1 if n else len(budget.amp1)
    run = _flat_list([np.asarray(th, dtype=np.float64) for th in theta_run], T + 1)
    pairs = np.flatnonzero(np.diff(steps) == 1) + 1
    u_steps = steps[pairs]
    d_hi, d_lo = _two_diff(_finite(run[u_steps]), _finite(run[u_steps - 1]))
    F64 = fmt("float64")
    model = _budget_flat(budget).model_theta
    ulps = np.fmax(F.ulp(_finite(run)), F.ulp(model))
    ulps64 = np.fmax(F64.ulp(_finite(run)), F64.ulp(model))
    state_flat = {}
    for key in ("m", "v", "vmax") if n and states else ():
        rows = [row for row, t in enumerate(state_steps) if states.get(int(t), {}).get(key) is not None]
        if rows:
            ts = [int(state_steps[row]) for row in rows]
            state_flat[key] = (rows, ts, np.stack([np.concatenate([np.asarray(a, np.float64).reshape(-1)
                                                                   for a in states[t][key]]) for t in ts]))
    return _Run(F, n, _parts(theta_run), steps, pairs, u_steps, run[steps], d_hi, d_lo, ulps[:-1], ulps[1:],
                ulps64[:-1], ulps64[1:], _budget_flat(budget).touched, states or {}, state_steps, state_flat)


# -- references and caches ------------------------------------------------------------------------

_CACHE: dict[tuple, Any] = {}
_CACHE_LIMIT = 256  # entries; the largest (long-default-mixed) holds ~30 MB


def _cached(key: tuple | None, make, golden=None):
    """What depends only on (scenario, dialect, dtype, class group), shared by every adapter: kept per process,
    and on disk (``reference.cache``, content-addressed by the golden and the reference's code) when the
    golden is given."""
    if key is None:
        return make()
    if key in _CACHE:
        return _CACHE[key]
    digest = None if golden is None or _disk.cache_dir() is None else _disk.golden_digest(golden)
    value = _disk.load(digest, key)
    if value is None:
        value = make()
        _disk.store(digest, key, value)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = value
    return value


def _golden_reference(golden) -> Reference:
    rec = golden.record
    return Reference("exact", None, rec.theta, rec.theta_lo, rec.moments(), True)


def _variant_references(golden, dialect, dtype: str, round_dtype: str, classes: list[PathClass], *,
                        with_trace: bool = False) -> tuple[list[Reference], Any]:
    """The float64 model under every way ``classes`` hold the hyperparameters, at the golden's steps; and, with
    ``with_trace``, the exact model's ``model.Trace`` from the same pass (else None)."""
    s = golden.scenario
    variants = held_variants(s.config, dtype, classes)
    hs = HeldSet(variants, round_dtype, len(golden.grads))
    record, record_state = [int(t) for t in golden.steps], [int(t) for t in golden.state_steps]
    trace = None
    if with_trace:
        trace, tr = model_trace_and_variants(s.config, dialect, golden.params0, golden.grads, hs, record=record,
                                             record_state=record_state)
    else:
        tr = model_trajectory(s.config, dialect, golden.params0, golden.grads, held=hs, record=record,
                              record_state=record_state)
    rows = [tr.index(int(t)) for t in golden.state_steps]
    refs = []
    for i, h in enumerate(variants):
        theta = [th[:, i] for th in tr.theta]
        state = {"m": ([x[rows, i] for x in tr.m], [np.zeros_like(x[rows, i]) for x in tr.m]),
                 "v": ([x[rows, i] for x in tr.v], [np.zeros_like(x[rows, i]) for x in tr.v])}
        if tr.vmax is not None:
            state["vmax"] = ([x[rows, i] for x in tr.vmax], [np.zeros_like(x[rows, i]) for x in tr.vmax])
        refs.append(Reference(h.name, h.powers, theta, [np.zeros_like(x) for x in theta], state, False,
                              h.lr_float32))
    return refs, trace


def lr_fit_applies(config, steps: np.ndarray, T: int) -> bool:
    """Whether the judge identifies a float32 schedule's per-step value from the run (``_fit_lr32``).

    It needs a schedule whose value is not a held constant (exponential decay), every step recorded
    (the per-step updates) and updates proportional to lr_t: no weight decay, whose coupled form
    feeds theta, and so the lr history, back into the gradient, and whose decoupled form makes the
    update depend on theta_{t-1}.
    """
    sched = config.schedule
    return (sched is not None and sched.kind != "piecewise_constant" and not config.weight_decay
            and len(steps) == T + 1 and bool(np.all(np.asarray(steps) == np.arange(T + 1))))


@dataclass
class _Lr32Schedule:
    """Per step t (row t - 1), what ``_fit_lr32`` needs of the schedule alone: L_t = fl32(lr(k)), a quarter of
    float32's spacing at L_t, and the float32 bounds of lr(k) (1 -+ rho(k)) that the fitted value stays within."""

    held: np.ndarray
    quarter_ulp: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, config, dialect, T: int) -> "_Lr32Schedule":
        F32 = fmt("float32")
        ks = [t - 1 if dialect.schedule_step == "t-1" else t for t in range(1, T + 1)]
        exact = np.array([float(config.base_lr(k)) for k in ks])
        rho = np.array([schedule_rho(F32, config, k) for k in ks])
        a, b = exact * (1 - rho), exact * (1 + rho)
        f32 = lambda x: x.astype(np.float32).astype(np.float64)  # noqa: E731
        held = f32(exact)
        return cls(held, F32.ulp(held) / 4, f32(np.minimum(a, b)), f32(np.maximum(a, b)))


def _fit_lr32(ref: Reference, run_all: list[np.ndarray], sched: _Lr32Schedule, T: int) -> Reference | None:
    """The variant with each step's float32 schedule value identified from the run, exactly; None where the
    run's updates do not identify it.

    An implementation that computes lr(k) in float32 (Keras and tf_keras schedules, optax's in a float64
    run) applies lr_t = c_t, a float32 number within rho(k) (``budget.schedule_rho``, float32) of the exact
    lr(k), not necessarily the nearest one: which one depends on its pow. Bounding that choice costs a few
    float32 ulps of every update, and a constant bug of that size would pass. But with no weight decay the
    update is proportional to lr_t (m and v do not depend on it), so c_t is read off the run: the least
    squares factor s_t = sum(Delta delta) / sum(delta^2) between the run's updates Delta and the variant's
    delta (variant lr L_t = fl32(lr(k))), times L_t, rounded to the nearest float32 and kept within
    rho(k). The estimate is good to the float64 rounding of theta (~1e-14 relative) against a float32
    spacing of 6e-8 to 1.2e-7, so a correct run's c_t is found exactly; a run whose lr_t is no float32
    number (a bug of 1e-12 times a float32 value) is then off by its own error, which the float64 budget
    resolves. The reference becomes theta_t + sum_{s<=t} (c_s / L_s - 1) delta_s, the sum kept as the low
    part so that no rounding is added.

    Identified only where the updates determine it: each applied update is the difference of two
    parameters rounded in float64 (the run's, and the variant's), each off by at most ulp64 of the larger
    parameter, so s_t is off by at most sigma_t = 2 sum(|delta| ulp) / sum(delta^2), and rounding s_t L_t
    to the nearest float32 finds the run's value when sigma_t L_t is below a quarter of float32's spacing
    at L_t. Where the updates are smaller against the parameters (|delta| below about 1e-8 |theta|, e.g. a
    schedule decayed to lr ~ 1e-9) the result is None and the judge bounds the schedule instead
    (``budget._rho_lr`` without ``lr_fitted``); a 1e-12 bug in such an update is 1e-4 ulp of theta.
    """
    F64 = fmt("float64")
    flat_ref = [np.asarray(th, dtype=np.float64).reshape(T + 1, -1) for th in ref.theta]
    flat_run = [np.asarray(th, dtype=np.float64).reshape(T + 1, -1) for th in run_all]
    deltas = [np.diff(r, axis=0) for r in flat_ref]
    # per step t (row t - 1), summed over every tensor's elements where both updates are finite and delta != 0:
    # sum(Delta delta), sum(delta^2), and the bound on the first one's error, 2 sum(|delta| ulp64(max |theta|))
    num, den, err = np.zeros(T), np.zeros(T), np.zeros(T)
    for dl, fr, fu in zip(deltas, flat_ref, flat_run):
        rd = np.diff(fu, axis=0)
        ok = np.isfinite(dl) & np.isfinite(rd) & (dl != 0)
        num += np.sum(np.where(ok, rd * dl, 0.0), axis=1)
        den += np.sum(np.where(ok, dl * dl, 0.0), axis=1)
        big = np.maximum(np.maximum(np.abs(fu[1:]), np.abs(fu[:-1])), np.maximum(np.abs(fr[1:]), np.abs(fr[:-1])))
        err += 2.0 * np.sum(np.where(ok, np.abs(dl) * F64.ulp(np.where(ok, big, 0.0)), 0.0), axis=1)
    held = sched.held
    fit = (den != 0) & (held != 0) & np.isfinite(num)  # the other steps keep the variant's own L_t
    with np.errstate(all="ignore"):
        if np.any(fit & (~np.isfinite(err) | (err / den * np.abs(held) > sched.quarter_ulp))):
            return None  # float32 neighbours cannot be told apart at some step
        c = np.minimum(np.maximum((num / den * held).astype(np.float32).astype(np.float64), sched.lo), sched.hi)
        factor = np.where(fit, c / held, 1.0)
    corr = [np.vstack([np.zeros((1, dl.shape[1])),
                       np.cumsum(np.where(np.isfinite(dl), (factor[:, None] - 1.0) * dl, 0.0), axis=0)])
            for dl in deltas]
    lo_parts = [(lo + c).reshape(np.shape(th)) for lo, c, th in
                zip((np.asarray(x, np.float64).reshape(T + 1, -1) for x in ref.theta_lo), corr, ref.theta)]
    return Reference(ref.name + ",lr:fitted", ref.powers, ref.theta, lo_parts, ref.state, ref.exact, True)


_THETA_RANK = {t: i for i, t in enumerate(("once", "master", "kahan", "twice", "stochastic"))}


def _rank(c: PathClass) -> tuple[int, bool]:
    return _THETA_RANK[c.theta], c.hyper != "dtype"


def _choose(combos: list[_Combo]) -> _Combo:
    """The (reference, class) the verdict names: of those that pass, the one whose parameter rounding is
    tightest (round once before compensated, twice or stochastic), hyperparameters in the dtype before
    float32, then the best fit; if none passes, the closest."""
    passing = [c for c in combos if c.complete and c.raw_used() <= 1.0]
    if not passing:
        return min(combos, key=lambda c: c.raw_used())
    # the best fit is the reference closest to the run, not the pair with the loosest bound
    return min(passing, key=lambda c: (_rank(c.cls), c.misfit()))


def judge_against(golden, dialect, theta_run, dtype: str, *, states: dict | None = None, declared: Any = None,
                  bias_check: bool = False, cache: bool = True) -> Assessment:
    """Judge a run (theta after every step 0..T, per tensor) against every class ``declared`` allows.

    golden: a ``golden.store.Golden`` (from the store, or ``Golden.from_trajectory`` for inputs made now). cache: keep the budgets and
    variants of (scenario, dialect, dtype) for the next run of the same case (catalogue scenarios,
    whose inputs are fixed by their name); False for inputs of this run alone (closed loop).
    """
    with np.errstate(all="ignore"):
        return _judge(golden, dialect, theta_run, dtype, states, declared, bias_check, cache)


def _judge(golden, dialect, theta_run, dtype, states, declared, bias_check, cache) -> Assessment:
    out = Assessment()
    s = golden.scenario
    steps = np.asarray(golden.steps)
    n = len(golden.record.theta)
    run_all = [np.asarray(th, dtype=np.float64) for th in theta_run]
    T = run_all[0].shape[0] - 1 if n else len(golden.grads)
    if n and steps[-1] > T:
        out.failures.append(f"the run has {T} steps, the golden {int(steps[-1])}")
        return out
    for step, msg in nonfinite_pattern(golden.record.theta, [r[steps] for r in run_all], steps):
        out.failures.append(msg)
        out.first_failing_step = step if out.first_failing_step is None else min(out.first_failing_step, step)
    classes = candidates(declared, dtype)
    groups: dict[tuple, list[PathClass]] = {}
    for c in classes:
        groups.setdefault((c.round_dtype(dtype), c.hyper, c.theta == "master"), []).append(c)
    base = (s.name, golden.dialect_key, len(golden.grads))
    prepared: dict[tuple, tuple] = {}  # class group -> budget, references, factor, run: made when a rank needs it

    traced: list = []
    trace_key = cache and base + ("trace",) or None

    def trace():
        """The float64 model's trace, which every budget of these inputs starts from (whatever the dtype):
        made once per case, and kept in memory for the other dtypes of the scenario."""
        if not traced:
            traced.append(_cached(trace_key, lambda: model_trace(s.config, dialect, golden.params0, golden.grads)))
        return traced[0]

    def variants(round_dtype: str, cls_group: list[PathClass]) -> list[Reference]:
        """The variant references; the trace too, in the same pass, where no earlier case of these inputs made it
        (the exact model is one more row beside the variants: one loop over the steps instead of two)."""
        want = not traced and (trace_key is None or trace_key not in _CACHE)
        refs, tr = _variant_references(golden, dialect, dtype, round_dtype, cls_group, with_trace=want)
        if tr is not None:
            traced.append(_cached(trace_key, lambda: tr))
        return refs

    def prepare(key: tuple) -> tuple:
        if key not in prepared:
            round_dtype, hyper, _master = key
            cls_group = groups[key]
            exact = dtype == "float64" and hyper == "dtype"
            if exact:
                refs = [_golden_reference(golden)]
            else:
                refs = _cached(cache and base + ("variants", round_dtype, hyper, dtype,
                                                 tuple(c.key() for c in cls_group)) or None,
                               lambda: variants(round_dtype, cls_group), golden)
            # per run: each step's float32 schedule value, read off the run, where its updates determine it
            fitted = hyper == "float32" and lr_fit_applies(s.config, steps, T)
            if fitted:
                sched = _Lr32Schedule.of(s.config, resolve_dialect(dialect), T)
                fits = [_fit_lr32(r, run_all, sched, T) if r.lr_float32 else r for r in refs]
                fitted = all(f is not None for f in fits)
            budget = _cached(cache and base + ("budget", round_dtype, hyper, exact, fitted) or None,
                             lambda: compute_budget(
                s.config, dialect, golden.params0, golden.grads, round_dtype, held=not exact,
                rep_dtype="float32" if hyper == "float32" else round_dtype, lr_modelled=hyper == "float32",
                lr_fitted=fitted, trace=trace()), golden)
            if fitted:
                refs = fits
            factor = 2.0 if (not exact and round_dtype == "float64") else 1.0
            run = _prepare_run(run_all, steps, np.asarray(golden.state_steps), states, dtype, budget)
            prepared[key] = (cls_group, budget, refs, factor, run)
        return prepared[key]

    # classes from the tightest rounding of theta to the widest: the first rank with a passing pair decides,
    # and the groups of the ranks after it are never prepared (their budgets and variants are not computed)
    ranks = sorted({_rank(c) for c in classes})
    combos: list[_Combo] = []
    ctx: dict = {}
    for rank in ranks:
        for key, members in groups.items():
            if not any(_rank(c) == rank for c in members):
                continue
            cls_group, budget, refs, factor, run = prepare(key)
            pairs = [(ref, c) for c in cls_group if _rank(c) == rank
                     for ref in refs if ref.powers is None or ref.powers == c.powers]
            combos += _assess_pairs(pairs, budget, run, factor, bias_check, s.config, ctx)
        if any(c.complete and c.raw_used() <= 1.0 for c in combos):
            break
    out.classes_tried = len(combos)
    if not combos:
        return out
    best = _choose(combos)
    if not best.complete:
        # nothing passed: the verdict's multiple is the distance to the closest pair of the tightest
        # rank, every check measured (a pair whose update fails may still be the closest overall)
        def complete(c: _Combo) -> _Combo:
            if c.complete:
                return c
            group = next(g for g in prepared.values() if c.cls in g[0])
            return _evaluate(c.ref, c.cls, group[1], group[4], group[3], bias_check, s.config, ctx)

        best = min((complete(c) for c in combos if _rank(c.cls) == ranks[0]), key=lambda c: c.raw_used())
    out.path_class, out.reference = best.cls.key(), best.ref.name
    F = fmt(dtype)
    for name, r in best.checks.items():
        out.raw[name] = r.raw()
        out.checks[name] = r.margin()
        f = r.worst(F)
        if f is not None:
            out.worst[name] = f
        first = r.first_fail()
        if first is not None:
            what = "state" if name == "state" else name
            out.failures.append(f"{what} outside its budget from step {first}")
            out.first_failing_step = first if out.first_failing_step is None else min(out.first_failing_step, first)
    upd = best.checks.get("update")
    if upd is not None and len(upd.steps):
        ratios = upd._ratio()
        # the largest ratio of each step (0 where no tensor has an element)
        per_step = ratios.max(axis=1) if ratios.shape[1] else np.zeros(len(upd.steps))
        if any(hi == lo for lo, hi in upd.parts) and ratios.shape[1]:
            per_step = np.maximum(per_step, 0.0)
        out.series["step"] = [int(t) for t in upd.steps]
        out.series["update"] = [None if not np.isfinite(v) else float(v) for v in per_step]
    if best.bias is not None:
        b = best.bias
        out.bias = {k: v for k, v in b.items() if not k.startswith("series_")}
        out.bias["variant"] = best.ref.name
        out.series["bias"] = [None if not np.isfinite(z) or not np.isfinite(t) or t == 0 else abs(z) / t
                              for z, t in zip(b["series_z"], b["series_threshold"])]
        out.raw["bias"] = out.checks["bias"] = b["used"]
        if b["used"] > 1:
            z = b["z"]
            groups_txt = "; ".join(f"{g}-dominated elements Z = {v['z']:+.3g} against {v['threshold']:.3g} from step "
                                   f"{v['from_step']}" for g, v in b["groups"].items())
            out.failures.append(
                f"mean relative update error outside its budget: {groups_txt}; at step {b['worst_step']} alone "
                f"{b['worst_step_used']:.3g} times its threshold; measured against the closest way of holding the "
                f"hyperparameters ({best.ref.name}, {best.cls.key()}). On average the updates are off by a common "
                f"factor of about 1 {'+' if z > 0 else '-'} {abs(z):.2g}")
    return out
