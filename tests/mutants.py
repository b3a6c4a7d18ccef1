"""A catalogue of mutants: correct numpy Adams with exactly one planted deviation each.

What it is for: proving that the suites catch bugs. ``Base`` is an independent, correct
Adam written from the formulas (Kingma & Ba 2015; the dialect axes of
adamconf.reference.dialect), not from reference/adam.py. Every mutant subclasses it and
overrides one hook; tests/test_mutants.py runs each mutant on the scenarios that must kill
it (and the base on the same cases, which must pass), and benchmarks/mutant_table.py runs
them over the whole catalogue and writes docs/mutants.md.

The base (D the run's dtype; every operation between D numbers rounded once in D; the
scalars formed in binary64 from the configured doubles, then rounded to D, as torch's
single-tensor Adam does: path class powers=double, theta=once, hyper=dtype). Step t,
k = t - 1 or t (``Dialect.schedule_step``):

    lr_t = lr(k) / (1 + decay k);  bc_i = 1 - beta_i^t (1 with bias correction off)
    g <- sum of repeated sparse rows (in binary64, exact for the catalogue), rounded to D
    g <- clip(g, -c, c);  g <- g f(||g_k||, c) per tensor;  g <- g f(||g||, c) globally
         f: exact c/n if n > c else 1;  tf (g c)/max(n, c), global c min(1/n, 1/c);
            torch min(c/(n + 1e-6), 1)
    g <- g + w theta                                    (coupled L2)
    m <- fl(b1) m + fl(1-b1) g;   v <- fl(b2) v + (fl(1-b2) g) g
    AMSGrad raw: w = vmax = max(vmax, v);  corrected: vmax = max(vmax, v / fl(bc2))
    standard: u = fl(lr_t/bc1) (m / (sqrt(w + fl(er bc2)) / fl(sqrt bc2) + eps))
              (corrected vmax: u = fl(lr_t/bc1) (m / (sqrt(vmax + er) + eps)))
    hat:      u = fl(lr_t sqrt(bc2)/bc1) (m / (sqrt(w + fl(er bc2)) + eps))
    theta <- theta fl(1 - lr_t w)                       (decoupled, AdamW)
    theta <- theta - u

With sparse_rows="lazy" only the rows present in the summed gradient take part in the
step. The adapter declares every feature of the catalogue (state, checkpoint, config
round trip, sparse, non-finite...), so no scenario a mutant may fail is skipped.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from adamconf.adapters.contract import BaseAdapter, Unsupported
from adamconf.reference.config import AdamConfig
from adamconf.reference.dialect import resolve_dialect
from adamconf.reference.grads import SparseGrad

__all__ = ["BASE_FEATURES", "CATALOGUE", "Base", "Mutant", "get"]

NP = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
BASE_FEATURES = ("amsgrad", "weight_decay", "decoupled_weight_decay", "lr_decay", "schedule", "eps_root",
                 "clipnorm", "global_clipnorm", "clipvalue", "sparse", "state", "nonfinite", "checkpoint",
                 "config")
TORCH_CLIP_EPS = 1e-6


class BaseRun:
    """One run of the base Adam; each method is a hook a mutant may override."""

    def __init__(self, adapter: "Base", config: AdamConfig, params, dtype: str) -> None:
        self.adapter, self.c, self.dtype, self.D = adapter, config, dtype, NP[dtype]
        self.d = resolve_dialect(adapter.dialect)
        if self.lazy() and config.weight_decay:
            raise Unsupported("lazy sparse rows with weight decay are not defined (SparseAdam has none)")
        if config.amsgrad and self.d.epsilon == "hat" and self.d.amsgrad_max == "corrected":
            raise Unsupported("epsilon='hat' with amsgrad_max='corrected' is not defined")
        params = [np.asarray(p, dtype=np.float64) for p in params]
        self.shapes = [p.shape for p in params]
        self.theta = [p.astype(self.D) for p in params]
        self.m = [np.zeros(p.shape, self.D) for p in params]
        self.v = [np.zeros(p.shape, self.v_dtype()) for p in params]
        self.vmax = [np.zeros(p.shape, self.D) for p in params] if config.amsgrad else None
        self.t = 0

    # -- hooks: what is computed --------------------------------------------------------------
    def v_dtype(self):
        return self.D

    def lazy(self) -> bool:
        return self.d.sparse_rows == "lazy"

    def form(self) -> str:
        return self.d.epsilon

    def betas(self) -> tuple[float, float]:
        return self.c.beta1, self.c.beta2

    def eps(self) -> float:
        return self.c.eps

    def decay_mode(self) -> str:
        return self.c.weight_decay_mode

    def schedule_index(self, t: int) -> int:
        return t - 1 if self.d.schedule_step == "t-1" else t

    def decay_index(self, t: int) -> int:
        return self.schedule_index(t)

    def bc_step(self, t: int) -> int:
        return t

    def bias_corrections(self, t: int) -> tuple[float, float]:
        """bc1, bc2 in binary64 (1 with bias correction off)."""
        if not self.d.bias_correction:
            return 1.0, 1.0
        b1, b2 = self.betas()
        tb = self.bc_step(t)
        return 1.0 - b1 ** tb, 1.0 - b2 ** tb

    def lr(self, t: int) -> float:
        lr = self.c.base_lr(self.schedule_index(t))
        if self.c.decay:
            lr = lr / (1.0 + self.c.decay * self.decay_index(t))
        return lr

    def keep(self, lr: float) -> float:
        """The decoupled decay factor 1 - lr_t w (binary64)."""
        return 1.0 - lr * self.c.weight_decay

    def prepare(self, t: int) -> SimpleNamespace:
        D, c = self.D, self.c
        b1, b2 = self.betas()
        bc1, bc2 = (np.float64(x) for x in self.bias_corrections(t))
        lr = np.float64(self.lr(t))
        step = lr / bc1 if self.form() == "standard" else lr * np.sqrt(bc2) / bc1
        return SimpleNamespace(b1=D(b1), omb1=D(1.0 - b1), b2=D(b2), omb2=D(1.0 - b2), eps=D(self.eps()),
                               step=D(step), lr=lr, bc2=D(bc2), sqrt_bc2=D(np.sqrt(bc2)),
                               er=D(c.eps_root * bc2), er0=D(c.eps_root), wd=D(c.weight_decay),
                               keep=D(self.keep(lr)))

    def gradient(self, e, shape):
        """(g in D, the touched rows or None): repeated sparse rows summed in binary64."""
        if isinstance(e, SparseGrad):
            dense = np.zeros(shape, np.float64)
            np.add.at(dense, np.asarray(e.indices, np.int64), np.asarray(e.values, np.float64))
            rows = np.unique(np.asarray(e.indices, np.int64)) if self.lazy() else None
            return dense.astype(self.D), rows
        return np.asarray(e, np.float64).astype(self.D), None

    def square_term(self, g, e, s):
        """What v receives: fl(1-b2) g g (e: the step's raw gradient entry)."""
        return (s.omb2 * g) * g

    def moments(self, m, v, g, sq, s):
        return s.b1 * m + s.omb1 * g, s.b2 * v + sq

    def second(self, i, sel, v, s):
        """(w, corrected): what the denominator takes for v, updating vmax."""
        if self.vmax is None:
            return v, False
        if self.d.amsgrad_max == "raw":
            w = np.maximum(self.vmax[i][sel], v)
            self.vmax[i][sel] = w
            return w, False
        w = np.maximum(self.vmax[i][sel], v / s.bc2)
        self.vmax[i][sel] = w
        return w, True

    def denominator(self, w, corrected, s):
        er = bool(self.c.eps_root)
        if corrected:
            return np.sqrt(w + s.er0 if er else w) + s.eps
        root = np.sqrt(w + s.er if er else w)
        return (root / s.sqrt_bc2 if self.form() == "standard" else root) + s.eps

    def direction(self, m, denom, s):
        return s.step * (m / denom)

    def decoupled(self, th, s):
        return th * s.keep

    def apply(self, th, u, s):
        return th - u

    # -- clipping ---------------------------------------------------------------------------
    def norm(self, gs):
        return np.sqrt(sum((np.sum(g * g, dtype=self.D) for g in gs), self.D(0)))

    def scaled(self, g, n, cn, per_tensor: bool):
        D = self.D
        if self.d.clip == "torch":
            return g * np.minimum(cn / (n + D(TORCH_CLIP_EPS)), D(1))
        if self.d.clip == "tf":
            if per_tensor:
                return (g * cn) / np.maximum(n, cn)
            return g * (cn * np.minimum(D(1) / n, D(1) / cn))
        return g * (cn / n) if n > cn else g

    def clip_per_tensor(self, gs, cn):
        return [self.scaled(g, self.norm([g]), cn, True) for g in gs]

    def clip_global(self, gs, cn):
        n = self.norm(gs)
        return [self.scaled(g, n, cn, False) for g in gs]

    def clipped(self, gs):
        """value -> per-tensor norm -> global norm, each where configured."""
        c, D = self.c, self.D
        if c.clipvalue is not None:
            gs = [np.minimum(np.maximum(g, -D(c.clipvalue)), D(c.clipvalue)) for g in gs]
        if c.clipnorm is not None:
            gs = self.clip_per_tensor(gs, D(c.clipnorm))
        if c.global_clipnorm is not None:
            gs = self.clip_global(gs, D(c.global_clipnorm))
        return gs

    # -- the step ---------------------------------------------------------------------------
    def step(self, grads) -> None:
        with np.errstate(all="ignore"):
            self.t += 1
            s = self.prepare(self.t)
            entries = list(grads)
            pairs = [self.gradient(e, shape) for e, shape in zip(entries, self.shapes)]
            gs = self.clipped([g for g, _ in pairs])
            for i, (g, (_, rows)) in enumerate(zip(gs, pairs)):
                self.update(i, Ellipsis if rows is None else rows, g, entries[i], s)

    def update(self, i, sel, g, e, s) -> None:
        th, m, v = self.theta[i][sel], self.m[i][sel], self.v[i][sel].astype(self.D)
        g = g[sel]
        if self.c.weight_decay and self.decay_mode() == "l2":
            g = g + s.wd * th
        m, v = self.moments(m, v, g, self.square_term(g, e, s), s)
        self.m[i][sel], self.v[i][sel] = m, v
        v = self.v[i][sel].astype(self.D)  # as stored
        w, corrected = self.second(i, sel, v, s)
        u = self.direction(m, self.denominator(w, corrected, s), s)
        if self.c.weight_decay and self.decay_mode() == "decoupled":
            th = self.decoupled(th, s)
        self.theta[i][sel] = self.apply(th, u, s)

    # -- the contract -----------------------------------------------------------------------
    def params(self):
        return [p.copy() for p in self.theta]

    def state(self):
        return {"step": self.t, "m": [x.copy() for x in self.m], "v": [x.copy() for x in self.v],
                "vmax": None if self.vmax is None else [x.copy() for x in self.vmax]}

    def checkpoint_arrays(self) -> dict:
        out = {}
        for name in ("theta", "m", "v", "vmax"):
            for k, x in enumerate(getattr(self, name) or ()):
                out[f"{name}.{k}"] = x
        return out

    def save(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, __t__=np.array(self.t, np.int64), **self.checkpoint_arrays())
        return buf.getvalue()

    def load(self, blob: bytes) -> None:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            self.t = int(z["__t__"])
            for key in z.files:
                if key != "__t__":
                    name, k = key.rsplit(".", 1)
                    getattr(self, name)[int(k)] = z[key].copy()

    def config_dict(self) -> dict:
        return self.c.to_dict()

    def config(self) -> str:
        return json.dumps({"adam": self.config_dict()}, sort_keys=True)


class Base(BaseAdapter):
    """The correct base Adam of one dialect (the control: it passes every scenario it runs)."""

    key = "base"
    description = "correct numpy Adam, torch-like scalars in binary64"
    run_class = BaseRun
    dtypes = ("float16", "float32", "float64")
    devices = ("cpu",)
    features = BASE_FEATURES
    path_class = "powers=double,theta=once,hyper=dtype"

    def __init__(self, dialect: str = "pytorch") -> None:
        self.dialect = dialect
        self.name = f"mutant.{self.key}@{dialect}"

    def start(self, config, params, *, dtype, device):
        return self.run_class(self, config, params, dtype)

    def restore(self, config, blob, *, dtype, device):
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            shapes = [z[k].shape for k in sorted((k for k in z.files if k.startswith("theta.")),
                                                 key=lambda k: int(k.split(".")[1]))]
        run = self.start(config, [np.zeros(s) for s in shapes], dtype=dtype, device=device)
        run.load(blob)
        return run

    def rebuild(self, config_text, params, *, dtype, device):
        return self.start(AdamConfig.from_dict(json.loads(config_text)["adam"]), params, dtype=dtype,
                          device=device)


# -- the mutants' runs: one override each ------------------------------------------------------------

class _BcLate(BaseRun):
    def bc_step(self, t):
        return t - 1


class _BcEarly(BaseRun):
    def bc_step(self, t):
        return t + 1


class _BcMissingM(BaseRun):
    def bias_corrections(self, t):
        return 1.0, super().bias_corrections(t)[1]


class _BcMissingV(BaseRun):
    def bias_corrections(self, t):
        return super().bias_corrections(t)[0], 1.0


class _Bc2Half(BaseRun):
    def bias_corrections(self, t):
        bc1, bc2 = super().bias_corrections(t)
        return bc1, float(np.float16(bc2))


class _EpsInRoot(BaseRun):
    def denominator(self, w, corrected, s):
        if corrected:
            return np.sqrt(w + s.eps)
        if self.form() == "standard":
            return np.sqrt(w / s.bc2 + s.eps)
        return np.sqrt(w + s.eps)


class _EpsFormSwapped(BaseRun):
    def form(self):
        return "standard" if self.d.epsilon == "hat" else "hat"


class _EpsHatUnscaled(BaseRun):
    """The standard form rewritten as alpha_t m / (sqrt(v) + eps'), eps' = eps instead of eps sqrt(bc2)."""

    def prepare(self, t):
        s = super().prepare(t)
        bc1, bc2 = (np.float64(x) for x in self.bias_corrections(t))
        s.alpha = self.D(s.lr * np.sqrt(bc2) / bc1)
        return s

    def denominator(self, w, corrected, s):
        if corrected or self.form() != "standard":
            return super().denominator(w, corrected, s)
        return np.sqrt(w + s.er if self.c.eps_root else w) + s.eps  # should be + fl(eps sqrt(bc2))

    def direction(self, m, denom, s):
        return s.alpha * (m / denom) if self.form() == "standard" else super().direction(m, denom, s)


class _EpsFixed8(BaseRun):
    def eps(self):
        return 1e-8


class _EpsFixed7(BaseRun):
    def eps(self):
        return 1e-7


class _EpsRootIgnored(BaseRun):
    def prepare(self, t):
        s = super().prepare(t)
        s.er, s.er0 = self.D(0), self.D(0)
        return s


class _BetasSwapped(BaseRun):
    def betas(self):
        return self.c.beta2, self.c.beta1


class _AbsG(BaseRun):
    def square_term(self, g, e, s):
        return s.omb2 * np.abs(g)


class _VHalf(BaseRun):
    def v_dtype(self):
        return np.float16


class _AmsgradIgnored(BaseRun):
    def second(self, i, sel, v, s):
        return v, False


class _AmsgradCorrectedMax(BaseRun):
    """Claims raw (torch): keeps vmax = max(vmax, v / bc2) and uses it as v_hat."""

    def second(self, i, sel, v, s):
        if self.vmax is None:
            return v, False
        w = np.maximum(self.vmax[i][sel], v / s.bc2)
        self.vmax[i][sel] = w
        return w, True


class _AmsgradRawMax(BaseRun):
    """Claims corrected (optax): keeps vmax = max(vmax, v) over the raw v, corrected afterwards."""

    def second(self, i, sel, v, s):
        if self.vmax is None:
            return v, False
        w = np.maximum(self.vmax[i][sel], v)
        self.vmax[i][sel] = w
        return w, False


class _SparseOverwrite(BaseRun):
    def gradient(self, e, shape):
        if not isinstance(e, SparseGrad):
            return super().gradient(e, shape)
        dense = np.zeros(shape, np.float64)
        dense[np.asarray(e.indices, np.int64)] = np.asarray(e.values, np.float64)  # last write wins
        rows = np.unique(np.asarray(e.indices, np.int64)) if self.lazy() else None
        return dense.astype(self.D), rows


class _SparseSumOfSquares(BaseRun):
    """m gets sum_j g_j, v gets sum_j g_j^2 (duplicates not merged before squaring)."""

    def square_term(self, g, e, s):
        if not isinstance(e, SparseGrad):
            return super().square_term(g, e, s)
        sq = np.zeros(e.dense_shape, np.float64)
        vals = np.asarray(e.values, np.float64).astype(self.D)
        np.add.at(sq, np.asarray(e.indices, np.int64), ((s.omb2 * vals) * vals).astype(np.float64))
        rows = np.unique(np.asarray(e.indices, np.int64)) if self.lazy() else Ellipsis
        return sq.astype(self.D)[rows]


class _SparseLazyFlipped(BaseRun):
    def lazy(self):
        return self.d.sparse_rows != "lazy"


class _ClipnormGlobal(BaseRun):
    def clip_per_tensor(self, gs, cn):
        return BaseRun.clip_global(self, gs, cn)


class _GlobalClipnormPerTensor(BaseRun):
    def clip_global(self, gs, cn):
        return [self.scaled(g, self.norm([g]), cn, False) for g in gs]


class _ClipTorchEpsMissing(BaseRun):
    def scaled(self, g, n, cn, per_tensor):
        if self.d.clip != "torch":
            return super().scaled(g, n, cn, per_tensor)
        return g * np.minimum(cn / n, self.D(1))  # min(c/n, 1): the + 1e-6 dropped


class _ClipAfterMoments(BaseRun):
    """The moments take the raw gradient; the clipping is applied to the Adam direction
    d = m_hat / (sqrt(v_hat) + eps) instead, before the learning rate (optax.chain(adam-direction, clip, lr))."""

    def step(self, grads):
        with np.errstate(all="ignore"):
            self.t += 1
            s = self.prepare(self.t)
            entries = list(grads)
            pairs = [self.gradient(e, shape) for e, shape in zip(entries, self.shapes)]
            sels, dirs, ths = [], [], []
            for i, (g, rows) in enumerate(pairs):
                sel = Ellipsis if rows is None else rows
                th, m, v = self.theta[i][sel], self.m[i][sel], self.v[i][sel].astype(self.D)
                g = g[sel]
                if self.c.weight_decay and self.decay_mode() == "l2":
                    g = g + s.wd * th
                m, v = self.moments(m, v, g, self.square_term(g, entries[i], s), s)
                self.m[i][sel], self.v[i][sel] = m, v
                w, corrected = self.second(i, sel, v, s)
                dirs.append(self.direction(m, self.denominator(w, corrected, s), s) / self.D(s.lr))
                sels.append(sel)
                ths.append(th)
            dirs = self.clipped(dirs)
            for i, (sel, th, q) in enumerate(zip(sels, ths, dirs)):
                if self.c.weight_decay and self.decay_mode() == "decoupled":
                    th = self.decoupled(th, s)
                self.theta[i][sel] = th - self.D(s.lr) * q


class _LrDecayOffByOne(BaseRun):
    def decay_index(self, t):
        return self.schedule_index(t) + 1


class _ScheduleOffByOne(BaseRun):
    def lr(self, t):
        lr = self.c.base_lr(self.schedule_index(t) + 1)
        if self.c.decay:
            lr = lr / (1.0 + self.c.decay * self.decay_index(t))
        return lr


class _CoupledClaimsDecoupled(BaseRun):
    def decay_mode(self):
        return "l2"


class _DecoupledClaimsCoupled(BaseRun):
    def decay_mode(self):
        return "decoupled"


class _DecayNotLrScaled(BaseRun):
    def keep(self, lr):
        return 1.0 - self.c.weight_decay


class _DecayAfterUpdate(BaseRun):
    def decoupled(self, th, s):
        return th  # applied in apply(), after the update

    def apply(self, th, u, s):
        if self.c.weight_decay and self.decay_mode() == "decoupled":
            return (th - u) * s.keep
        return th - u


class _Scaled(BaseRun):
    factor = 0.0

    def apply(self, th, u, s):
        return th - u * self.D(1.0 + self.factor)


def _scaled_run(delta: float) -> type:
    return type(f"_Scaled{delta:+g}", (_Scaled,), {"factor": delta})


class _NonfiniteZeroed(BaseRun):
    def gradient(self, e, shape):
        g, rows = super().gradient(e, shape)
        return np.where(np.isfinite(g), g, self.D(0)), rows


class _Nondeterministic(BaseRun):
    """Each element's update takes one of two legitimate orders, fl(step fl(m/d)) or fl(fl(step m)/d),
    chosen by an unseeded generator (kernel selection or a reduction order that varies from run to run)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.rng = np.random.default_rng()  # unseeded: OS entropy

    def direction(self, m, denom, s):
        other = (s.step * m) / denom
        return np.where(self.rng.random(np.shape(m)) < 0.5, s.step * (m / denom), other)


class _CheckpointDropsV(BaseRun):
    def checkpoint_arrays(self):
        return {k: x for k, x in super().checkpoint_arrays().items() if not k.startswith("v.")}


class _ConfigLosesBeta2(BaseRun):
    def config_dict(self):
        d = super().config_dict()
        d.pop("beta2")
        return d


class _DoNothing(BaseRun):
    def step(self, grads):
        self.t += 1


# -- the catalogue -----------------------------------------------------------------------------------

#: how a mutant must fail: "budget" (verdict failed, a numeric check over its budget), "nonfinite"
#: (failed: NaN/inf where the golden has none, or the reverse), "roundtrip" (failed: the restored or
#: rebuilt optimizer did not continue bitwise), "determinism" (failed: two runs differ), "error"
#: (the adapter raised)
KINDS = ("budget", "nonfinite", "roundtrip", "determinism", "error")


@dataclass(frozen=True)
class Mutant:
    """One mutant: the deviation (``run_class``, a BaseRun subclass), the dialect it claims, the dtype it
    runs in, the scenarios that must kill it and how (``kind``, one of KINDS)."""

    name: str
    description: str
    run_class: type
    dialect: str
    dtype: str
    kills: tuple[str, ...]  # scenario names; "determinism/<name>" for the determinism suite
    kind: str = "budget"

    @property
    def verdict(self) -> str:
        """The verdict the killing cases must have."""
        return "error" if self.kind == "error" else "failed"

    def adapter(self) -> Base:
        adapter = Base(self.dialect)
        adapter.run_class = self.run_class
        adapter.key = self.name
        adapter.description = self.description
        adapter.name = f"mutant.{self.name}@{self.dialect}"
        return adapter

    def base(self) -> Base:
        """The correct base of the same dialect: the control, which must pass the killing cases."""
        return Base(self.dialect)


def _m(name, description, run_class, kills, dialect="pytorch", dtype="float32", kind="budget") -> Mutant:
    assert kind in KINDS, kind
    return Mutant(name, description, run_class, dialect, dtype, tuple(kills), kind)


def _scale(delta: float) -> str:
    sign, power = "+" if delta > 0 else "-", round(math.log10(abs(delta)))
    return (f"every applied update u multiplied by fl(1 {sign} 1e{power}) before theta is rounded (a constant "
            "relative error: a mis-scaled step size, a slightly wrong constant)")


CATALOGUE: tuple[Mutant, ...] = (
    # -- bias correction ----------------------------------------------------------------------------
    # its first step divides by zero: NaN parameters from finite inputs, which the driver refuses as a
    # broken contract (verdict error) before anything is judged
    _m("bc_late", "bias corrections from t - 1 (the step counter read before its increment): bc = 0 at step 1, "
       "a division by zero", _BcLate, ["dense-default", "dense-first-steps"], kind="error"),
    _m("bc_early", "bias corrections from t + 1 (the counter incremented twice, or started at 1): an "
       "off-by-one in the step count", _BcEarly, ["dense-default", "dense-first-steps"]),
    _m("bc_missing_m", "bc1 = 1: m not bias-corrected (one correction forgotten in a refactor)",
       _BcMissingM, ["dense-first-steps", "dense-default"]),
    _m("bc_missing_v", "bc2 = 1: v not bias-corrected (one correction forgotten in a refactor)",
       _BcMissingV, ["dense-first-steps", "dense-default"]),
    _m("bc2_float16", "bc2 = 1 - beta2^t rounded through float16 (a half-precision scalar in a mixed-precision "
       "kernel)", _Bc2Half, ["dense-default", "dense-first-steps"]),
    # -- epsilon ----------------------------------------------------------------------------------
    _m("eps_in_root", "epsilon inside the square root, sqrt(v_hat + eps) (eps_root confused with eps)",
       _EpsInRoot, ["edge-eps-dominant", "dense-dyadic"]),
    _m("eps_form_swapped", "claims the epsilon-hat form (Keras) but computes the standard one, "
       "m_hat / (sqrt(v_hat) + eps): the two forms of the paper confused", _EpsFormSwapped,
       ["edge-eps-dominant", "dense-dyadic-hat"], dialect="keras"),
    _m("eps_hat_unscaled", "standard form rewritten as lr sqrt(bc2)/bc1 m / (sqrt(v) + eps') with eps' = eps, "
       "not eps sqrt(bc2) (a fused-kernel rewrite that silently becomes the hat form)", _EpsHatUnscaled,
       ["edge-eps-dominant", "dense-dyadic-hat"]),
    _m("eps_fixed_1e-8", "the configured epsilon ignored, 1e-8 hard-coded (a default that shadows the argument)",
       _EpsFixed8, ["dense-dyadic-hat", "dtype-half"]),
    _m("eps_fixed_1e-7", "the configured epsilon ignored, 1e-7 hard-coded (the Keras default shadowing it)",
       _EpsFixed7, ["edge-eps-dominant", "dense-dyadic-hat"]),
    _m("eps_root_ignored", "optax's eps_root dropped from the root (an option accepted and not passed on)",
       _EpsRootIgnored, ["dense-eps-root"]),
    # -- moments --------------------------------------------------------------------------------------
    _m("betas_swapped", "beta1 and beta2 swapped (positional arguments in the wrong order)", _BetasSwapped,
       ["dense-default"]),
    _m("abs_g", "v accumulates |g| instead of g^2 (the wrong elementwise op, an AdaMax/L1 confusion)", _AbsG,
       ["dense-default"]),
    _m("v_float16", "v stored in float16 in a float32 run (a low-precision optimizer-state option applied by "
       "mistake)", _VHalf, ["dense-default", "edge-huge"]),
    # -- AMSGrad ------------------------------------------------------------------------------------
    _m("amsgrad_ignored", "amsgrad=True accepted and ignored: the update uses v, vmax never updated (a flag "
       "not plumbed through)", _AmsgradIgnored, ["amsgrad-decreasing-v", "amsgrad-dyadic"]),
    _m("amsgrad_corrected_max", "claims torch's raw maximum but keeps max(vmax, v / bc2), the bias-corrected "
       "one (optax's; optax issue 1389)", _AmsgradCorrectedMax, ["amsgrad-decreasing-v"]),
    _m("amsgrad_raw_max", "claims optax's corrected maximum but keeps max(vmax, v) over the raw v (torch's)",
       _AmsgradRawMax, ["amsgrad-decreasing-v"], dialect="optax"),
    # -- sparse -------------------------------------------------------------------------------------
    _m("sparse_overwrite", "repeated sparse indices overwrite each other (last write wins) instead of being "
       "summed (a scatter instead of a scatter-add)", _SparseOverwrite, ["sparse-repeated-indices"]),
    _m("sparse_sum_of_squares", "repeated sparse indices squared separately: v gets sum g_j^2 instead of "
       "(sum g_j)^2 (Keras 3 on TensorFlow densifying IndexedSlices)", _SparseSumOfSquares,
       ["sparse-repeated-indices"]),
    _m("sparse_lazy_claims_dense", "only the touched rows update while claiming dense rows (a SparseAdam-style "
       "kernel behind a dense API)", _SparseLazyFlipped, ["sparse-untouched-rows"]),
    _m("sparse_dense_claims_lazy", "every row decays while claiming lazy rows (SparseAdam densifying its "
       "gradient)", _SparseLazyFlipped, ["sparse-untouched-rows"], dialect="pytorch-sparse"),
    # -- clipping -----------------------------------------------------------------------------------
    _m("clipnorm_global", "per-tensor clipnorm computed over the global norm of all tensors (clipnorm and "
       "global_clipnorm confused)", _ClipnormGlobal, ["clip-norm-fires"]),
    _m("global_clipnorm_per_tensor", "global_clipnorm applied per tensor (the norm of each tensor, not of all)",
       _GlobalClipnormPerTensor, ["clip-global-fires", "clip-global-sweep"]),
    _m("clip_after_moments", "clipping applied to the Adam direction after the moments instead of to g "
       "before them (transformations chained in the wrong order)", _ClipAfterMoments,
       ["clip-norm-fires", "clip-value-fires"]),
    _m("clip_torch_eps_missing", "claims torch's clip_grad_norm_ but computes min(c/n, 1), without its + 1e-6",
       _ClipTorchEpsMissing, ["clip-global-fires"]),
    # -- decay ----------------------------------------------------------------------------------------
    _m("lr_decay_off_by_one", "legacy decay lr / (1 + decay k) with k one step late (iterations read after "
       "the increment)", _LrDecayOffByOne, ["decay-legacy-inverse-time"]),
    _m("schedule_off_by_one", "learning-rate schedule evaluated at k + 1 (scheduler stepped before the "
       "optimizer)", _ScheduleOffByOne, ["decay-piecewise", "decay-exponential"]),
    _m("coupled_claims_decoupled", "decoupled weight decay requested, coupled L2 applied (keras issue 19051: "
       "AdamW silently became Adam + L2)", _CoupledClaimsDecoupled, ["decay-weight-decoupled", "decay-dyadic"]),
    _m("decoupled_claims_coupled", "coupled L2 requested, decoupled decay applied (Adam(weight_decay) taken "
       "for AdamW)", _DecoupledClaimsCoupled, ["decay-weight-l2"]),
    _m("decay_not_lr_scaled", "decoupled decay theta (1 - w) instead of theta (1 - lr_t w) (ONNX-style, or "
       "the lr factor forgotten)", _DecayNotLrScaled, ["decay-weight-decoupled", "decay-dyadic"]),
    _m("decay_after_update", "decoupled decay applied after the update, (theta - u)(1 - lr_t w), instead of "
       "before it (statements in the wrong order)", _DecayAfterUpdate,
       ["decay-weight-decoupled", "decay-dyadic"]),
    # -- constant factors ---------------------------------------------------------------------------
    _m("scale_+1e-4", _scale(1e-4), _scaled_run(1e-4), ["dense-dyadic", "dense-default"]),
    _m("scale_-1e-4", _scale(-1e-4), _scaled_run(-1e-4), ["dense-dyadic", "dense-default"]),
    _m("scale_+1e-5", _scale(1e-5), _scaled_run(1e-5), ["dense-dyadic"]),
    _m("scale_-1e-5", _scale(-1e-5), _scaled_run(-1e-5), ["dense-dyadic"]),
    _m("scale_+1e-12", _scale(1e-12), _scaled_run(1e-12), ["dense-dyadic"], dtype="float64"),
    _m("scale_-1e-12", _scale(-1e-12), _scaled_run(-1e-12), ["dense-dyadic"],
       dtype="float64"),
    # -- non-finite, determinism, round trips, nothing ------------------------------------------------
    _m("nonfinite_zeroed", "non-finite gradient entries silently replaced by 0 (a nan_to_num guard that hides "
       "divergence)", _NonfiniteZeroed, ["edge-nan", "edge-inf"], kind="nonfinite"),
    _m("nondeterministic", "each element's update takes one of two legitimate rounding orders at random, "
       "unseeded (a race, a run-dependent reduction order or kernel choice)", _Nondeterministic,
       ["determinism/dense-default", "determinism/dense-mixed-shapes"], kind="determinism"),
    _m("checkpoint_drops_v", "the checkpoint omits v: the restored optimizer restarts v at 0 (a state key "
       "missing from save)", _CheckpointDropsV, ["roundtrip-checkpoint"], kind="roundtrip"),
    _m("config_loses_beta2", "the serialised config omits beta2: the rebuilt optimizer takes the default 0.999 "
       "(get_config missing a key)", _ConfigLosesBeta2, ["roundtrip-config"], kind="roundtrip"),
    _m("do_nothing", "step() only counts: the parameters never move (an update applied to a copy, a "
       "detached tensor)", _DoNothing, ["dense-default", "dense-dyadic"]),
)

_BY_NAME = {m.name: m for m in CATALOGUE}
assert len(_BY_NAME) == len(CATALOGUE), "duplicate mutant names"


def get(name: str) -> Mutant:
    return _BY_NAME[name]


# -- running a case the way the suites do, and reading how it failed -------------------------------

DETERMINISM_PREFIX = "determinism/"


def scenario_of(label: str):
    from adamconf.golden import scenarios

    return scenarios.get(label.removeprefix(DETERMINISM_PREFIX))


def has_golden(adapter, scenario) -> bool:
    """Whether the scenario has a golden in the adapter's dialect (pytorch-sparse has none outside sparse)."""
    key = scenario.dialect_key(resolve_dialect(adapter.dialect))
    return key in {scenario.dialect_key(d) for d in scenario.golden_dialects()}


def run(adapter, label: str, dtype: str):
    """The suites' code path for one case: ``run_case`` for a catalogue scenario, the determinism
    suite's ``run_twice`` for ``determinism/<scenario>``. Returns the CaseOutcome."""
    from adamconf.suites.cases import DETERMINISM, Case
    from adamconf.suites.runner import run_case
    from adamconf.suites.test_determinism import run_twice

    scenario = scenario_of(label)
    with np.errstate(all="ignore"):
        if label.startswith(DETERMINISM_PREFIX):
            return run_twice(Case(f"tests/mutants.py:{adapter.name}", adapter, scenario, dtype, "cpu", DETERMINISM))
        return run_case(adapter, scenario, dtype)


def failure_kind(outcome) -> str | None:
    """How a case failed (one of KINDS), or None if it did not (passed or skipped)."""
    if outcome.verdict in ("error", "crashed", "timeout"):
        return "error"
    if outcome.verdict != "failed":
        return None
    if outcome.family == "determinism":
        return "determinism"
    if outcome.assessment is None:
        return "roundtrip" if "round trip" in outcome.message else "error"
    if outcome.budget_used is not None and outcome.budget_used > 1:
        return "budget"
    if "non-finite pattern differs" in outcome.message:
        return "nonfinite"
    return "budget"
