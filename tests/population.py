"""A population of correct Adam implementations, one per arithmetic path class.

What it is for: the error budget (reference/budget.py, with the path classes of
reference/paths.py) claims that it *never fails a correct implementation, however
legitimately it rounds*. ``tests/numpy_adam.py`` calibrates it with one arithmetic
path per dialect; real implementations take many others (beta^t by libm pow, by
repeated squaring or by a running product; moments by lerp or by multiply-add;
fused multiply-adds; approximate division and square root in GPU kernels; two
roundings of the parameter per step; Kahan-compensated, stochastically rounded or
float32-master parameters; hyperparameters held in float32 inside a float64 run).
Each member below takes one such path, written from the formulas of Kingma & Ba
(2015) and the dialect semantics (reference/dialect.py), not from reference/adam.py,
and declares it in ``path_class`` ("powers=...,theta=...,hyper=..."). A member is
an adapter (adapters/contract.py) parametrised by a dialect, so that one member
runs every scenario of the catalogue its features allow; tests/test_population.py
runs them all and requires every verdict to be "passed".

Every member is *correct*: it differs from the exact Adam only by rounding (the
rounding of each hyperparameter to the dtype it is held in and of each operation
in the dtype it runs in). The only exception by design is ``pop.gpu2ulp``, whose
divisions and square roots err by up to 2 ulp, as GPU kernels' do.

Notation: D is the run's dtype ("float16", "bfloat16", "float32", "float64"),
fl_D(x) the rounding of x to nearest D number (ties to even), every operation
written between D numbers is a D operation (rounded once), ``k`` the schedule
index (t - 1 or t, ``Dialect.schedule_step``), lr_t = lr(k) / (1 + decay k).
Shared by all members (class ``_Run``): sparse gradients are coalesced (repeated
rows summed), clipping runs value -> per-tensor norm -> global norm (formula of
the dialect: "exact" g c/n if n > c; "tf" per tensor (g c)/max(n, c), global
g (c min(1/n, 1/c)); "torch" g min(c/(n + 1e-6), 1)), norms are sqrt(sum g^2)
in the arithmetic dtype; with sparse_rows="lazy" only the rows present in the
coalesced gradient take part in the step; AMSGrad "raw" keeps vmax = max(vmax, v)
and uses vmax for v, "corrected" keeps vmax = max(vmax, v/bc2) and uses it as
v_hat; coupled L2 adds w theta to g; decoupled decay shrinks theta_t by lr_t w.
"""

from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import ml_dtypes
import numpy as np

from adamconf.adapters.contract import BaseAdapter, Unsupported
from adamconf.reference.config import AdamConfig
from adamconf.reference.dialect import Dialect, resolve_dialect
from adamconf.reference.grads import SparseGrad, coalesce

__all__ = ["DIALECTS", "MEMBERS", "approx_2ulp", "fma_round", "member", "population", "rnd", "stochastic_round",
           "ulp"]

BF16 = ml_dtypes.bfloat16
DTYPES = {"float16": np.float16, "bfloat16": BF16, "float32": np.float32, "float64": np.float64}
_NAME_OF = {np.dtype(v): k for k, v in DTYPES.items()}
PREC = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}
EMIN = {"float16": -14, "bfloat16": -126, "float32": -126, "float64": -1022}
UINT = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}
ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")
TORCH_CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_: max_norm / (total_norm + 1e-6)

FULL_FEATURES = ("amsgrad", "weight_decay", "decoupled_weight_decay", "lr_decay", "schedule", "eps_root",
                 "clipnorm", "global_clipnorm", "clipvalue", "sparse", "state", "nonfinite", "checkpoint", "config")


# -- rounding primitives (independent of adamconf.reference) ----------------------------------------

def rnd(x, dtype: str) -> np.ndarray:
    """fl_D(x): float64 values rounded once to nearest ``dtype`` (ties to even), as a ``dtype`` array.

    numpy rounds float64 to float16/float32 directly; ml_dtypes rounds float64 to bfloat16 through
    float32 (a double rounding, wrong at float32-rounded ties), which is corrected here.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        if dtype != "bfloat16":
            return x.astype(DTYPES[dtype])
        r = x.astype(np.float32).astype(BF16)
        r64 = r.astype(np.float64)
        other = np.nextafter(r, np.where(x > r64, np.inf, -np.inf).astype(BF16))
        o64 = other.astype(np.float64)
        dr, do = np.abs(x - r64), np.abs(x - o64)  # exact: x and its two neighbours are within an ulp
        other_even = (other.view(np.uint16) & 1) == 0
        better = np.isfinite(r64) & np.isfinite(o64) & (x != r64) & ((do < dr) | ((do == dr) & other_even))
    return np.where(better, other, r).astype(BF16)


def ulp(x, dtype: str) -> np.ndarray:
    """The spacing of ``dtype`` at |x| (the subnormal spacing below the smallest normal)."""
    _, e = np.frexp(np.abs(np.asarray(x, dtype=np.float64)))
    return np.ldexp(1.0, (np.maximum(e - 1, EMIN[dtype]) - PREC[dtype] + 1).astype(np.int64))


def fma_round(a, b, c, dtype: str) -> np.ndarray:
    """fl_D(a*b + c), rounded once (a fused multiply-add), for a, b, c in a dtype narrower than float64.

    a*b is exact in float64 (at most 2*24 significand bits); the sum s = fl64(a*b + c) carries the
    error e (TwoSum, exact); fl_D(s) is the correctly rounded result except when s is a midpoint of
    two D numbers and e != 0, where the neighbour on e's side is.
    """
    D = DTYPES[dtype]
    a, b, c = (np.asarray(x).astype(np.float64) for x in (a, b, c))
    with np.errstate(all="ignore"):
        p = a * b
        s = p + c
        bb = s - p
        err = (p - (s - bb)) + (c - bb)
        r = rnd(s, dtype)
        r64 = r.astype(np.float64)
        other = np.nextafter(r, np.where(s > r64, np.inf, -np.inf).astype(D))
        o64 = other.astype(np.float64)
        tie = np.isfinite(s) & (s != r64) & (np.abs(s - r64) == np.abs(o64 - s)) & (err != 0)
        pick = tie & (np.sign(err) == np.sign(o64 - r64))
    return np.where(pick, other, r).astype(D)


_SPLIT = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def ulp_shift(idx, t: int, op: int) -> np.ndarray:
    """A deterministic pseudo-random k in {-2, ..., 2} per element index, step and operation (splitmix64)."""
    idx = np.asarray(idx, dtype=np.uint64)
    shape = idx.shape
    z = idx.reshape(-1) * _SPLIT[0] + np.full(idx.size, (t * 1_000_003 + op * 7919) % 2 ** 63, np.uint64)
    z = (z ^ (z >> np.uint64(30))) * _SPLIT[1]  # uint64 arrays wrap silently
    z = (z ^ (z >> np.uint64(27))) * _SPLIT[2]
    z = z ^ (z >> np.uint64(31))
    return ((z % np.uint64(5)).astype(np.int64) - 2).reshape(shape)


def approx_2ulp(x64, dtype: str, k) -> np.ndarray:
    """A D result within 2 ulp of the float64 value x64, as GPU division and sqrt give (__fdividef, rsqrtf).

    fl_D(x64) moved by k ulps (k in {-2..2}, stepping the bit pattern), k shrunk towards 0 wherever
    that would leave 2 ulp(x64) of x64, become non-finite or cross zero; zeros, infinities and NaN
    are left exact.
    """
    D, U = DTYPES[dtype], UINT[dtype]
    x64 = np.asarray(x64, dtype=np.float64)
    r = rnd(x64, dtype)
    with np.errstate(all="ignore"):
        lim = 2.0 * ulp(x64, dtype)
        k = np.where(np.isfinite(x64) & (x64 != 0), np.asarray(k, dtype=np.int64), 0)
        bits = np.asarray(r.view(U), dtype=np.uint64)
        for _ in range(3):
            cand = (bits + k.astype(np.uint64)).astype(U).view(D)
            c64 = cand.astype(np.float64)
            ok = (k == 0) | (np.isfinite(c64) & (np.abs(c64 - x64) <= lim) & (np.sign(c64) != -np.sign(x64)))
            if np.all(ok):
                break
            k = np.where(ok, k, k - np.sign(k))
    return np.where(ok, cand, r).astype(D)


def stochastic_round(x64, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """x rounded to one of its two D neighbours, up with probability (x - lo)/(hi - lo): unbiased.

    Draws one uniform number per element on every call (the stream depends only on the shapes).
    """
    D = DTYPES[dtype]
    x64 = np.asarray(x64, dtype=np.float64)
    draw = rng.random(x64.shape)
    with np.errstate(all="ignore"):
        r = rnd(x64, dtype)
        r64 = r.astype(np.float64)
        up = x64 > r64
        other = np.nextafter(r, np.where(up, np.inf, -np.inf).astype(D))
        o64 = other.astype(np.float64)
        lo, hi = np.where(up, r, other), np.where(up, other, r)
        lo64, hi64 = np.where(up, r64, o64), np.where(up, o64, r64)
        frac = (x64 - lo64) / (hi64 - lo64)  # exact differences of neighbours
        out = np.where(draw < frac, hi, lo)
        keep = (x64 == r64) | ~np.isfinite(x64) | ~np.isfinite(o64)
    return np.where(keep, r, out).astype(D)


def _f64(x) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


# -- the shared run: schedule index, gradients, clipping, lazy rows, state, checkpoint -----------------

class _Run:
    """Plumbing shared by all members; the arithmetic of a step is the member's ``prepare``/``update``."""

    def __init__(self, member: "_Member", config: AdamConfig, params, dtype: str) -> None:
        self.member, self.c, self.dtype = member, config, dtype
        self.d = resolve_dialect(member.dialect)
        if self.d.sparse_rows == "lazy" and config.weight_decay:
            raise Unsupported("lazy sparse rows with weight decay are not defined (SparseAdam has none)")
        if config.amsgrad and self.d.epsilon == "hat" and self.d.amsgrad_max == "corrected":
            raise Unsupported("epsilon='hat' with amsgrad_max='corrected' is not defined")
        self.cd = self.compute_dtype(dtype)
        self.C = DTYPES[self.cd]
        self.one, self.zero = self.sc(1.0), self.sc(0.0)
        params = [np.asarray(p, dtype=np.float64) for p in params]
        self.shapes = [p.shape for p in params]
        self.flat = [np.arange(p.size, dtype=np.int64).reshape(p.shape) for p in params]
        self.t = 0
        self.s: dict[str, np.generic] = {}
        self.rng: np.random.Generator | None = None
        self.a: dict[str, list[np.ndarray]] = {"theta": [rnd(p, self.param_dtype()) for p in params]}
        for key in ("m", "v") + (("vmax",) if config.amsgrad else ()):
            self.a[key] = [np.zeros(p.shape, dtype=self.C) for p in params]
        self.init()

    # -- hooks ---------------------------------------------------------------------------------------
    def compute_dtype(self, dtype: str) -> str:
        return dtype

    def param_dtype(self) -> str:
        """The dtype theta is stored in (the arithmetic dtype unless the member says otherwise)."""
        return self.cd

    def init(self) -> None:
        pass

    def visible(self, i: int) -> np.ndarray:
        return self.a["theta"][i]

    def prepare(self, t: int, k: int) -> SimpleNamespace:
        raise NotImplementedError

    def update(self, i: int, sel, g: np.ndarray, s: SimpleNamespace) -> None:
        raise NotImplementedError

    def apply(self, i: int, sel, th: np.ndarray, u: np.ndarray) -> None:
        """theta = fl(theta - u): one rounding."""
        self.put("theta", i, sel, th - u)

    # -- helpers -------------------------------------------------------------------------------------
    def sc(self, x: float):
        """A Python float as a scalar of the arithmetic dtype, fl_C(x)."""
        return rnd(np.float64(x), self.cd)[()]

    def lr_double(self, k: int) -> float:
        lr = self.c.base_lr(k)
        return lr / (1.0 + self.c.decay * k) if self.c.decay else lr

    def lr_c(self, k: int):
        """lr_t in the arithmetic dtype: fl(lr(k)) / (1 + fl(decay) * k), each operation rounded."""
        lr = self.sc(self.c.base_lr(k))
        if self.c.decay:
            lr = lr / (self.one + self.sc(self.c.decay) * self.sc(float(k)))
        return lr

    def bc_pow(self, b1, b2, t: int):
        """bc = 1 - pow(beta_C, t) in C (libm pow), or 1 with bias correction off."""
        if not self.d.bias_correction:
            return self.one, self.one
        tt = self.sc(float(t))
        return self.one - np.power(b1, tt), self.one - np.power(b2, tt)

    def bc_double(self, t: int) -> tuple[float, float]:
        if not self.d.bias_correction:
            return 1.0, 1.0
        return 1.0 - self.c.beta1 ** t, 1.0 - self.c.beta2 ** t

    def get(self, name: str, i: int, sel) -> np.ndarray:
        return self.a[name][i][sel]

    def put(self, name: str, i: int, sel, value) -> None:
        arr = self.a[name][i]
        value = np.asarray(value)
        if value.dtype != arr.dtype:  # a silent promotion would change the arithmetic path: a bug here
            raise AssertionError(f"{self.member.name}: {name} computed in {value.dtype}, stored in {arr.dtype}")
        arr[sel] = value

    def vmax(self, i: int, sel, candidate) -> np.ndarray:
        new = np.maximum(self.get("vmax", i, sel), candidate)
        self.put("vmax", i, sel, new)
        return new

    # -- the step ------------------------------------------------------------------------------------
    def step(self, grads) -> None:
        with np.errstate(all="ignore"):
            self.t += 1
            k = self.t - 1 if self.d.schedule_step == "t-1" else self.t
            s = self.prepare(self.t, k)
            for i, (g, rows) in enumerate(self.clipped(self.gradients(grads))):
                sel = Ellipsis if rows is None else rows
                self.update(i, sel, g[sel], s)

    def gradients(self, entries):
        out = []
        for e, shape in zip(entries, self.shapes):
            rows = None
            if isinstance(e, SparseGrad):
                cg = coalesce(e)
                dense = np.zeros(shape, dtype=np.float64)
                dense[cg.indices] = cg.values
                if self.d.sparse_rows == "lazy":
                    rows = cg.indices
            else:
                dense = np.asarray(e, dtype=np.float64)
            out.append((rnd(dense, self.cd), rows))
        return out

    def clip_sc(self, x: float):
        return self.sc(x)

    def clipped(self, gs):
        c = self.c
        if c.clipvalue is not None:
            hi = self.clip_sc(c.clipvalue)
            gs = [(np.minimum(np.maximum(g, -hi), hi), r) for g, r in gs]
        if c.clipnorm is not None:
            cn = self.clip_sc(c.clipnorm)
            gs = [(self.scaled(g, np.sqrt(self.sumsq(g)), cn, per_tensor=True), r) for g, r in gs]
        if c.global_clipnorm is not None:
            cn = self.clip_sc(c.global_clipnorm)
            total = self.zero
            for g, _ in gs:
                total = total + self.sumsq(g)
            n = np.sqrt(total)
            gs = [(self.scaled(g, n, cn, per_tensor=False), r) for g, r in gs]
        return gs

    def sumsq(self, g):
        return np.sum(g * g, dtype=self.C)

    def scaled(self, g, n, c, per_tensor: bool):
        clip = self.d.clip
        if clip == "torch":
            coef = c / (n + self.clip_sc(TORCH_CLIP_EPS))
            return g * np.minimum(coef, self.one)
        if clip == "tf":
            if per_tensor:  # tf.clip_by_norm: t * clip_norm / maximum(l2norm, clip_norm)
                return (g * c) / np.maximum(n, c)
            return g * (c * np.minimum(self.one / n, self.one / c))  # tf.clip_by_global_norm
        return g * (c / n) if n > c else g

    # -- the contract --------------------------------------------------------------------------------
    def params(self) -> list[np.ndarray]:
        out = []
        for i in range(len(self.shapes)):
            x = np.array(self.visible(i), copy=True)
            out.append(x.astype(np.float32) if x.dtype == BF16 else x)
        return out

    def state(self) -> dict:
        return {"step": self.t, "m": [x.copy() for x in self.a["m"]], "v": [x.copy() for x in self.a["v"]],
                "vmax": [x.copy() for x in self.a["vmax"]] if "vmax" in self.a else None}

    def save(self) -> bytes:
        meta = {"t": self.t, "shapes": [list(s) for s in self.shapes], "arrays": {}, "scalars": {},
                "rng": None if self.rng is None else self.rng.bit_generator.state}
        arrays = {}
        for name, lst in self.a.items():
            for i, x in enumerate(lst):
                dname = _NAME_OF[x.dtype]
                arrays[f"{name}.{i}"] = x.view(UINT[dname])
                meta["arrays"][f"{name}.{i}"] = dname
        for name, x in self.s.items():
            dname = _NAME_OF[np.asarray(x).dtype]
            meta["scalars"][name] = [dname, int(np.asarray(x).view(UINT[dname]))]
        buf = io.BytesIO()
        np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
        return buf.getvalue()

    def load(self, blob: bytes) -> None:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            self.t = int(meta["t"])
            for key, dname in meta["arrays"].items():
                name, i = key.rsplit(".", 1)
                self.a[name][int(i)] = z[key].view(DTYPES[dname]).copy()
        for name, (dname, bits) in meta["scalars"].items():
            self.s[name] = np.array(bits, dtype=UINT[dname]).view(DTYPES[dname])[()]
        if meta["rng"] is not None:
            self.rng.bit_generator.state = meta["rng"]

    def config(self) -> str:
        return json.dumps({"member": self.member.key, "dialect": self.d.key(), "adam": self.c.to_dict()},
                          sort_keys=True)

    # -- pieces several members share ------------------------------------------------------------------
    def amsgrad_v(self, i, sel, v, corrected_candidate):
        """(w, corrected): what the update uses for v. ``corrected_candidate()`` gives v/bc2 as the member forms it."""
        if not self.c.amsgrad:
            return v, False
        if self.d.amsgrad_max == "raw":
            return self.vmax(i, sel, v), False
        return self.vmax(i, sel, corrected_candidate()), True


# -- the members ----------------------------------------------------------------------------------------

class _TorchLikeRun(_Run):
    def prepare(self, t, k):
        c, sc = self.c, self.sc
        lr = self.lr_double(k)
        bc1, bc2 = self.bc_double(t)
        step = lr / bc1 if self.d.epsilon == "standard" else lr * math.sqrt(bc2) / bc1
        return SimpleNamespace(omb1=sc(1.0 - c.beta1), b2=sc(c.beta2), omb2=sc(1.0 - c.beta2), eps=sc(c.eps),
                               wd=sc(c.weight_decay), keep=sc(1.0 - lr * c.weight_decay), step=sc(step),
                               bc2=sc(bc2), sqrt_bc2=sc(math.sqrt(bc2)), er=sc(c.eps_root * bc2),
                               er0=sc(c.eps_root))

    def moments(self, m, v, g, s):
        return m + s.omb1 * (g - m), s.b2 * v + (s.omb2 * g) * g

    def denominator(self, i, sel, v, s):
        er = bool(self.c.eps_root)
        w, corrected = self.amsgrad_v(i, sel, v, lambda: v / s.bc2)
        if corrected:
            return np.sqrt(w + s.er0 if er else w) + s.eps
        root = np.sqrt(w + s.er if er else w)
        return (root / s.sqrt_bc2 if self.d.epsilon == "standard" else root) + s.eps

    def update(self, i, sel, g, s):
        th, m, v = self.get("theta", i, sel), self.get("m", i, sel), self.get("v", i, sel)
        if self.c.weight_decay and self.c.weight_decay_mode == "l2":
            g = g + s.wd * th
        m, v = self.moments(m, v, g, s)
        u = s.step * (m / self.denominator(i, sel, v, s))
        if self.c.weight_decay and self.c.weight_decay_mode == "decoupled":
            th = th * s.keep
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.apply(i, sel, th, u)


class _KerasLikeRun(_Run):
    def prepare(self, t, k):
        c, sc = self.c, self.sc
        b1, b2 = sc(c.beta1), sc(c.beta2)
        lr = self.lr_c(k)
        bc1, bc2 = self.bc_pow(b1, b2, t)
        er0 = sc(c.eps_root)
        return SimpleNamespace(omb1=self.one - b1, omb2=self.one - b2, lr=lr, bc1=bc1, bc2=bc2, eps=sc(c.eps),
                               wd=sc(c.weight_decay), alpha=lr * np.sqrt(bc2) / bc1, er0=er0, er=er0 * bc2)

    def update(self, i, sel, g, s):
        c = self.c
        er = bool(c.eps_root)
        th, m, v = self.get("theta", i, sel), self.get("m", i, sel), self.get("v", i, sel)
        if c.weight_decay and c.weight_decay_mode == "l2":
            g = g + s.wd * th
        m = m + (g - m) * s.omb1
        v = v + (g * g - v) * s.omb2
        w, corrected = self.amsgrad_v(i, sel, v, lambda: v / s.bc2)
        if self.d.epsilon == "standard":
            vh = w if corrected else w / s.bc2
            u = s.lr * ((m / s.bc1) / (np.sqrt(vh + s.er0 if er else vh) + s.eps))
        else:
            u = (m * s.alpha) / (np.sqrt(w + s.er if er else w) + s.eps)
        if c.weight_decay and c.weight_decay_mode == "decoupled":
            th = th - (th * s.wd) * s.lr
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.apply(i, sel, th, u)


def int_pow_square(x, y: int, one):
    """x^y by XLA's integer_pow: right-to-left binary exponentiation, every product rounded in x's dtype."""
    acc = None
    while y > 0:
        if y & 1:
            acc = x if acc is None else acc * x
        y >>= 1
        if y:
            x = x * x
    return one if acc is None else acc


class _SquareRun(_Run):
    def prepare(self, t, k):
        c, sc = self.c, self.sc
        b1, b2 = sc(c.beta1), sc(c.beta2)
        if self.d.bias_correction:
            bc1 = self.one - int_pow_square(b1, t, self.one)
            bc2 = self.one - int_pow_square(b2, t, self.one)
        else:
            bc1 = bc2 = self.one
        er0 = sc(c.eps_root)
        return SimpleNamespace(b1=b1, b2=b2, omb1=sc(1.0 - c.beta1), omb2=sc(1.0 - c.beta2), lr=self.lr_c(k),
                               bc1=bc1, bc2=bc2, ratio=np.sqrt(bc2) / bc1, eps=sc(c.eps), wd=sc(c.weight_decay),
                               er0=er0, er=er0 * bc2)

    def update(self, i, sel, g, s):
        c = self.c
        er = bool(c.eps_root)
        th, m, v = self.get("theta", i, sel), self.get("m", i, sel), self.get("v", i, sel)
        if c.weight_decay and c.weight_decay_mode == "l2":
            g = g + s.wd * th
        m = s.omb1 * g + s.b1 * m
        v = s.omb2 * (g * g) + s.b2 * v
        w, corrected = self.amsgrad_v(i, sel, v, lambda: v / s.bc2)
        if self.d.epsilon == "standard":
            vh = w if corrected else w / s.bc2
            d = (m / s.bc1) / (np.sqrt(vh + s.er0 if er else vh) + s.eps)
        else:
            d = (m * s.ratio) / (np.sqrt(w + s.er if er else w) + s.eps)
        if c.weight_decay and c.weight_decay_mode == "decoupled":
            d = d + s.wd * th  # optax.add_decayed_weights, before the learning rate
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.apply(i, sel, th, s.lr * d)


class _ProductRun(_Run):
    def init(self):
        self.s["bp1"], self.s["bp2"] = self.one, self.one

    def prepare(self, t, k):
        c, sc = self.c, self.sc
        b1, b2 = sc(c.beta1), sc(c.beta2)
        self.s["bp1"] = self.s["bp1"] * b1  # beta1^t as the running product of the D number beta1
        self.s["bp2"] = self.s["bp2"] * b2
        if self.d.bias_correction:
            bc1, bc2 = self.one - self.s["bp1"], self.one - self.s["bp2"]
        else:
            bc1 = bc2 = self.one
        lr = self.lr_c(k)
        er0 = sc(c.eps_root)
        return SimpleNamespace(b1=b1, b2=b2, omb1=self.one - b1, omb2=self.one - b2, lr=lr, step=lr / bc1,
                               ibc2=self.one / bc2, alpha=lr * np.sqrt(bc2) / bc1, eps=sc(c.eps),
                               wd=sc(c.weight_decay), lrwd=lr * sc(c.weight_decay), er0=er0, er=er0 * bc2)

    def update(self, i, sel, g, s):
        c = self.c
        er = bool(c.eps_root)
        th, m, v = self.get("theta", i, sel), self.get("m", i, sel), self.get("v", i, sel)
        if c.weight_decay and c.weight_decay_mode == "l2":
            g = g + s.wd * th
        m = s.b1 * m + s.omb1 * g
        v = s.b2 * v + s.omb2 * (g * g)
        w, corrected = self.amsgrad_v(i, sel, v, lambda: v * s.ibc2)
        if self.d.epsilon == "standard":
            vh = w if corrected else w * s.ibc2
            u = (s.step * m) / (np.sqrt(vh + s.er0 if er else vh) + s.eps)
        else:
            u = (s.alpha * m) / (np.sqrt(w + s.er if er else w) + s.eps)
        if c.weight_decay and c.weight_decay_mode == "decoupled":
            th = th - s.lrwd * th
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.apply(i, sel, th, u)


class _FmaRun(_Run):
    def prepare(self, t, k):
        c, sc = self.c, self.sc
        b1, b2 = sc(c.beta1), sc(c.beta2)
        lr = self.lr_c(k)
        bc1, bc2 = self.bc_pow(b1, b2, t)
        step = lr / bc1 if self.d.epsilon == "standard" else lr * np.sqrt(bc2) / bc1
        return SimpleNamespace(b1=b1, b2=b2, omb1=sc(1.0 - c.beta1), omb2=sc(1.0 - c.beta2), bc2=bc2,
                               ibc2=self.one / bc2, rs=self.one / np.sqrt(bc2), neg_step=-step, eps=sc(c.eps),
                               wd=sc(c.weight_decay), neg_lrwd=-(lr * sc(c.weight_decay)), er0=sc(c.eps_root))

    def update(self, i, sel, g, s):
        c, cd = self.c, self.cd
        er = bool(c.eps_root)
        f = lambda a, b, z: fma_round(a, b, z, cd)  # noqa: E731
        th, m, v = self.get("theta", i, sel), self.get("m", i, sel), self.get("v", i, sel)
        if c.weight_decay and c.weight_decay_mode == "l2":
            g = f(s.wd, th, g)
        m = f(s.b1, m, s.omb1 * g)
        v = f(s.b2, v, (s.omb2 * g) * g)
        w, corrected = self.amsgrad_v(i, sel, v, lambda: v * s.ibc2)
        if self.d.epsilon == "hat":
            denom = (np.sqrt(f(s.er0, s.bc2, w)) if er else np.sqrt(w)) + s.eps
        elif corrected:
            denom = np.sqrt(w + s.er0 if er else w) + s.eps
        elif er:
            denom = np.sqrt(f(w, s.ibc2, s.er0)) + s.eps
        else:
            denom = f(np.sqrt(w), s.rs, s.eps)
        q = m / denom
        if c.weight_decay and c.weight_decay_mode == "decoupled":
            th = f(s.neg_lrwd, th, th)
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.put("theta", i, sel, f(s.neg_step, q, th))


# operation codes of pop.gpu2ulp's approximate operations (the perturbation depends on them)
_OP_STEP, _OP_IBC2, _OP_RS, _OP_SQBC2, _OP_ALPHA, _OP_SQRT, _OP_DIV = range(1, 8)


class _Gpu2UlpRun(_Run):
    def approx(self, x64, op: int, idx):
        return approx_2ulp(x64, self.cd, ulp_shift(idx, self.t, op))

    def sapprox(self, values, ops):
        """Scalar operations approximated together (one vector; the operation code is the element index)."""
        out = self.approx(np.array(values, dtype=np.float64), 0, np.array(ops, dtype=np.int64))
        return [x[()] for x in out]

    def prepare(self, t, k):
        c, sc = self.c, self.sc
        b1, b2 = sc(c.beta1), sc(c.beta2)
        lr = self.lr_c(k)
        bc1, bc2 = self.bc_pow(b1, b2, t)
        s = SimpleNamespace(b1=b1, b2=b2, omb1=self.one - b1, omb2=self.one - b2, eps=sc(c.eps),
                            lrwd=lr * sc(c.weight_decay), wd=sc(c.weight_decay), er0=sc(c.eps_root))
        lr64, bc1_64, bc2_64 = float(lr), float(bc1), float(bc2)
        if self.d.epsilon == "standard":  # step = lr/bc1, 1/bc2, rsqrt(bc2)
            s.step, s.ibc2, s.rs = self.sapprox([lr64 / bc1_64, 1.0 / bc2_64, 1.0 / math.sqrt(bc2_64)],
                                                [_OP_STEP, _OP_IBC2, _OP_RS])
        else:  # sqrt(bc2), 1/bc2, then alpha = (lr sqrt(bc2)) / bc1
            sq, s.ibc2 = self.sapprox([math.sqrt(bc2_64), 1.0 / bc2_64], [_OP_SQBC2, _OP_IBC2])
            (s.step,) = self.sapprox([float(lr * sq) / bc1_64], [_OP_ALPHA])
            s.er = s.er0 * bc2
        return s

    def update(self, i, sel, g, s):
        c = self.c
        er = bool(c.eps_root)
        idx = self.flat[i][sel]
        op = lambda code: code * 64 + i  # noqa: E731
        th, m, v = self.get("theta", i, sel), self.get("m", i, sel), self.get("v", i, sel)
        if c.weight_decay and c.weight_decay_mode == "l2":
            g = g + s.wd * th
        m = s.b1 * m + s.omb1 * g
        v = s.b2 * v + s.omb2 * (g * g)
        w, corrected = self.amsgrad_v(i, sel, v, lambda: v * s.ibc2)
        if self.d.epsilon == "hat":
            root = self.approx(np.sqrt(_f64(w + s.er if er else w)), op(_OP_SQRT), idx)
        elif corrected:
            root = self.approx(np.sqrt(_f64(w + s.er0 if er else w)), op(_OP_SQRT), idx)
        elif er:
            root = self.approx(np.sqrt(_f64(w * s.ibc2 + s.er0)), op(_OP_SQRT), idx)
        else:
            root = self.approx(np.sqrt(_f64(w)), op(_OP_SQRT), idx) * s.rs
        denom = root + s.eps
        u = s.step * self.approx(_f64(m) / _f64(denom), op(_OP_DIV), idx)
        if c.weight_decay and c.weight_decay_mode == "decoupled":
            th = th - s.lrwd * th
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.apply(i, sel, th, u)


class _TwiceRun(_KerasLikeRun):
    def apply(self, i, sel, th, u):
        a = u * self.sc(0.75)  # fl(3u/4): u/2 <= a <= 2u, so b = u - a is exact (Sterbenz) and a + b = u
        b = u - a
        self.put("theta", i, sel, (th - a) - b)


class _KahanRun(_TorchLikeRun):
    def init(self):
        self.a["comp"] = [np.zeros(x.shape, dtype=self.C) for x in self.a["theta"]]

    def prepare(self, t, k):
        s = super().prepare(t, k)
        s.b1 = self.sc(self.c.beta1)
        s.lrwd = self.sc(self.lr_double(k) * self.c.weight_decay)
        return s

    def moments(self, m, v, g, s):  # AnyPrecisionAdamW: mul_(beta).add_(g, alpha=1-beta), addcmul_
        return m * s.b1 + g * s.omb1, v * s.b2 + (s.omb2 * g) * g

    def update(self, i, sel, g, s):
        th, m, v = self.get("theta", i, sel), self.get("m", i, sel), self.get("v", i, sel)
        if self.c.weight_decay and self.c.weight_decay_mode == "l2":
            g = g + s.wd * th
        m, v = self.moments(m, v, g, s)
        u = s.step * (m / self.denominator(i, sel, v, s))
        if self.c.weight_decay and self.c.weight_decay_mode == "decoupled":
            u = u + s.lrwd * th
        comp = self.get("comp", i, sel)
        y = -u - comp
        new = th + y
        comp = (new - th) - y
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.put("theta", i, sel, new)
        self.put("comp", i, sel, comp)


class _StochasticRun(_TorchLikeRun):
    def compute_dtype(self, dtype):
        return "float64" if dtype == "float32" else "float32"

    def param_dtype(self):
        return self.dtype

    def init(self):
        self.rng = np.random.default_rng(self.member.seed)

    def sc(self, x):
        """Hyperparameters and step scalars held in the run's dtype D (hyper=dtype), widened exactly to C."""
        d = getattr(self, "dtype", None)
        return rnd(rnd(np.float64(x), d).astype(np.float64), self.cd)[()]

    def moments(self, m, v, g, s):  # torchao: exp_avg.lerp_(g, 1-beta1), exp_avg_sq.lerp_(g^2, 1-beta2)
        return m + s.omb1 * (g - m), v + s.omb2 * (g * g - v)

    def update(self, i, sel, g, s):
        th = self.get("theta", i, sel).astype(self.C)
        if self.c.weight_decay and self.c.weight_decay_mode == "l2":
            g = g + s.wd * th
        m, v = self.moments(self.get("m", i, sel), self.get("v", i, sel), g, s)
        u = s.step * (m / self.denominator(i, sel, v, s))
        if self.c.weight_decay and self.c.weight_decay_mode == "decoupled":
            th = th * s.keep
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.put("theta", i, sel, stochastic_round(_f64(th) - _f64(u), self.dtype, self.rng))


class _MasterRun(_Run):
    def compute_dtype(self, dtype):
        return "float32"

    def visible(self, i):
        return rnd(self.a["theta"][i].astype(np.float64), self.dtype)

    def prepare(self, t, k):
        c, sc = self.c, self.sc
        lr = self.lr_double(k)
        bc1, bc2 = self.bc_double(t)
        return SimpleNamespace(b1=sc(c.beta1), omb1=sc(1.0 - c.beta1), b2=sc(c.beta2), omb2=sc(1.0 - c.beta2),
                               bc1=sc(bc1), bc2=sc(bc2), lr=sc(lr), alpha=sc(lr * math.sqrt(bc2) / bc1),
                               eps=sc(c.eps), wd=sc(c.weight_decay), lrwd=sc(lr * c.weight_decay),
                               er0=sc(c.eps_root), er=sc(c.eps_root * bc2))

    def update(self, i, sel, g, s):
        c = self.c
        er = bool(c.eps_root)
        decoupled = c.weight_decay and c.weight_decay_mode == "decoupled"
        p, m, v = self.get("theta", i, sel), self.get("m", i, sel), self.get("v", i, sel)
        if c.weight_decay and c.weight_decay_mode == "l2":
            g = g + s.wd * p
        m = s.b1 * m + s.omb1 * g
        v = s.b2 * v + (s.omb2 * g) * g
        w, corrected = self.amsgrad_v(i, sel, v, lambda: v / s.bc2)
        if self.d.epsilon == "standard":  # apex multi_tensor_adam
            vh = w if corrected else w / s.bc2
            upd = (m / s.bc1) / (np.sqrt(vh + s.er0 if er else vh) + s.eps)
            if decoupled:
                upd = upd + s.wd * p
            p = p - s.lr * upd
        else:
            u = s.alpha * (m / (np.sqrt(w + s.er if er else w) + s.eps))
            if decoupled:
                u = u + s.lrwd * p
            p = p - u
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.put("theta", i, sel, p)


class _TfKeras32Run(_Run):
    @staticmethod
    def h(x: float) -> np.float64:
        """A hyperparameter as a float32 variable holds it, read in float64."""
        return np.float64(np.float32(x))

    def prepare(self, t, k):
        c, h = self.c, self.h
        b1, b2 = h(c.beta1), h(c.beta2)
        lr = h(c.base_lr(k))
        if c.decay:
            lr = lr / (np.float64(1.0) + h(c.decay) * np.float64(k))
        if self.d.bias_correction:
            bc1, bc2 = 1.0 - np.power(b1, np.float64(t)), 1.0 - np.power(b2, np.float64(t))
        else:
            bc1 = bc2 = np.float64(1.0)
        er0 = np.float64(c.eps_root)
        return SimpleNamespace(omb1=1.0 - b1, omb2=1.0 - b2, lr=lr, bc1=bc1, bc2=bc2,
                               alpha=lr * np.sqrt(bc2) / bc1, eps=np.float64(c.eps), wd=np.float64(c.weight_decay),
                               er0=er0, er=er0 * bc2)

    def update(self, i, sel, g, s):
        c = self.c
        er = bool(c.eps_root)
        th, m, v = self.get("theta", i, sel), self.get("m", i, sel), self.get("v", i, sel)
        if c.weight_decay and c.weight_decay_mode == "l2":
            g = g + s.wd * th
        m = m + (g - m) * s.omb1
        v = v + (g * g - v) * s.omb2
        w, corrected = self.amsgrad_v(i, sel, v, lambda: v / s.bc2)
        if self.d.epsilon == "standard":
            vh = w if corrected else w / s.bc2
            u = (s.lr * (m / s.bc1)) / (np.sqrt(vh + s.er0 if er else vh) + s.eps)
        else:
            u = (s.alpha * m) / (np.sqrt(w + s.er if er else w) + s.eps)
        if c.weight_decay and c.weight_decay_mode == "decoupled":
            th = th - (s.lr * s.wd) * th
        self.put("m", i, sel, m)
        self.put("v", i, sel, v)
        self.apply(i, sel, th, u)


# -- adapters ---------------------------------------------------------------------------------------------

class _Member(BaseAdapter):
    key = ""
    run_class: type = _Run
    path_class = "powers=pow,theta=once,hyper=dtype"
    dtypes = ALL_DTYPES
    devices = ("cpu",)
    features = FULL_FEATURES
    seed = 2015

    def __init__(self, dialect: "str | Dialect" = "kingma", label: str | None = None) -> None:
        self.dialect = dialect
        self.label = label or (dialect if isinstance(dialect, str) else dialect.key())
        self.name = f"pop.{self.key}@{self.label}"

    def start(self, config, params, *, dtype, device):
        if dtype not in self.dtypes:
            raise Unsupported(f"{self.name} does not run in {dtype}")
        return self.run_class(self, config, params, dtype)

    def restore(self, config, blob, *, dtype, device):
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            shapes = [tuple(s) for s in json.loads(str(z["__meta__"]))["shapes"]]
        run = self.start(config, [np.zeros(s) for s in shapes], dtype=dtype, device=device)
        run.load(blob)
        return run

    def rebuild(self, config_text, params, *, dtype, device):
        return self.start(AdamConfig.from_dict(json.loads(config_text)["adam"]), params, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return f"<population member {self.name} path_class={self.path_class!r}>"


class TorchLike(_Member):
    r"""torch.optim.Adam single-tensor, the scalars in Python doubles (powers=double).

    bc_i = 1 - beta_i^t, step = lr_t/bc1 (hat: lr_t sqrt(bc2)/bc1), sqrt(bc2), 1 - beta_i, beta2,
    eps, eps_root*bc2, 1 - lr_t w all computed in binary64 from the configured doubles, then each
    rounded to D. In D:
      m <- m + fl(1-beta1) (g - m)                        (exp_avg.lerp_)
      v <- fl(beta2) v + (fl(1-beta2) g) g                (mul_(beta2).addcmul_)
      standard: denom = sqrt(v + fl(eps_root bc2)) / fl(sqrt bc2) + fl(eps)
      hat:      denom = sqrt(v + fl(eps_root bc2)) + fl(eps)          (SparseAdam)
      AMSGrad corrected: vmax = max(vmax, v / fl(bc2)), denom = sqrt(vmax + fl(eps_root)) + fl(eps)
      theta <- theta fl(1 - lr_t w)  (decoupled),  theta <- theta - fl(step) (m / denom)
    """

    key = "torchlike"
    run_class = _TorchLikeRun
    path_class = "powers=double,theta=once,hyper=dtype"
    description = "torch single-tensor Adam: double bias corrections, lerp m, mul-add v, sqrt(v)/sqrt(bc2)"


class KerasLike(_Member):
    r"""Keras 3 / optax style: beta^t by pow in D, 1 - beta formed in D (powers=pow).

    In D: b_i = fl(beta_i), bc_i = 1 - pow(b_i, t), lr_t = fl(lr(k)) / (1 + fl(decay) k),
      m <- m + (g - m)(1 - b1),  v <- v + (g g - v)(1 - b2)
      standard (optax): u = lr_t ((m / bc1) / (sqrt(v / bc2 + eps_root) + eps))
      hat (Keras):      alpha = lr_t sqrt(bc2) / bc1,  u = (m alpha) / (sqrt(v + eps_root bc2) + eps)
      theta <- theta - (theta w) lr_t (decoupled, Keras AdamW),  theta <- theta - u
    """

    key = "keraslike"
    run_class = _KerasLikeRun
    path_class = "powers=pow,theta=once,hyper=dtype"
    description = "Keras 3/optax style: pow(beta_D, t), m += (g - m)(1 - beta_D), sqrt(v/bc2)"


class Square(_Member):
    r"""optax with a static step: beta^t by XLA's integer_pow (powers=square).

    In D: b_i = fl(beta_i), beta_i^t by right-to-left binary exponentiation (every square and
    product rounded), bc_i = 1 - that; fl(1 - beta_i) rounded from the double (optax's form):
      m <- fl(1-beta1) g + b1 m,   v <- fl(1-beta2) (g g) + b2 v
      standard: d = (m / bc1) / (sqrt(v / bc2 + eps_root) + eps)
      hat:      d = (m (sqrt(bc2) / bc1)) / (sqrt(v + eps_root bc2) + eps)
      d <- d + w theta (decoupled: optax.add_decayed_weights),  theta <- theta - lr_t d
    """

    key = "square"
    run_class = _SquareRun
    path_class = "powers=square,theta=once,hyper=dtype"
    description = "optax-like, beta^t by integer_pow (repeated squaring in D), multiply-add moments"


class Product(_Member):
    r"""TF1 AdamOptimizer / paddle: beta^t as a running product kept in D (powers=product).

    In D: b_i = fl(beta_i); state bp_i <- bp_i b_i each step (bp_i = 1 before step 1),
    bc_i = 1 - bp_i, step = lr_t / bc1, ibc2 = 1 / bc2,
      m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2)(g g)
      standard: u = (step m) / (sqrt(v ibc2 + eps_root) + eps)
      hat:      u = ((lr_t sqrt(bc2) / bc1) m) / (sqrt(v + eps_root bc2) + eps)
      theta <- theta - (lr_t w) theta (decoupled),  theta <- theta - u
    """

    key = "product"
    run_class = _ProductRun
    path_class = "powers=product,theta=once,hyper=dtype"
    description = "TF1/paddle style: beta^t as a running product in D, multiply-add moments"


class Fma(_Member):
    r"""A CUDA-style kernel whose a*b + c contract into fused multiply-adds (one rounding each).

    F(a, b, c) = fl_D(a b + c) (exact product, one rounding). b_i = fl(beta_i), fl(1 - beta_i)
    from the double, bc_i = 1 - pow(b_i, t) in D, step = lr_t/bc1 (hat lr_t sqrt(bc2)/bc1),
      g <- F(w, theta, g) (L2);  m <- F(b1, m, fl(1-beta1) g);  v <- F(b2, v, (fl(1-beta2) g) g)
      standard: denom = F(sqrt(v), 1/sqrt(bc2), eps)  (eps_root: sqrt(F(v, 1/bc2, eps_root)) + eps)
      hat:      denom = sqrt(F(eps_root, bc2, v)) + eps
      theta <- F(-lr_t w, theta, theta) (decoupled),  theta <- F(-step, m / denom, theta)
    """

    key = "fma"
    run_class = _FmaRun
    path_class = "powers=pow,theta=once,hyper=dtype"
    dtypes = ("float16", "bfloat16", "float32")
    description = "every a*b + c fused (rounded once); pow(beta_D, t)"


class Gpu2Ulp(_Member):
    r"""A GPU kernel with approximate division and square root: each within 2 ulp of exact.

    A(x) = the float64 result fl_D-rounded and moved by k ulp, k in {-2..2} a hash of (element,
    step, operation), kept within 2 ulp(x). In D: b_i = fl(beta_i), bc_i = 1 - pow(b_i, t),
      step = A(lr_t / bc1), rs = A(1 / sqrt(bc2)) (rsqrt), ibc2 = A(1 / bc2);
      hat: alpha = A((lr_t A(sqrt(bc2))) / bc1)
      m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2)(g g)
      standard: denom = A(sqrt(v)) rs + eps  (eps_root: A(sqrt(v ibc2 + eps_root)) + eps)
      hat:      denom = A(sqrt(v + eps_root bc2)) + eps
      u = step A(m / denom) (hat: alpha A(m / denom));  theta <- theta - (lr_t w) theta;  theta <- theta - u
    """

    key = "gpu2ulp"
    run_class = _Gpu2UlpRun
    path_class = "powers=pow,theta=once,hyper=dtype"
    description = "divisions and square roots within 2 ulp (GPU fast math), the rest in D"


class Twice(_Member):
    r"""KerasLike's arithmetic with the parameter rounded twice per step (theta=twice).

    u as KerasLike; a = fl(3u/4), b = u - a (exact, a + b = u); theta <- fl(fl(theta - a) - b).
    """

    key = "twice"
    run_class = _TwiceRun
    path_class = "powers=pow,theta=twice,hyper=dtype"
    description = "Keras-like update applied in two rounded parts"


class Kahan(_Member):
    r"""AnyPrecisionAdamW / torch-optimi: Kahan-compensated parameters in D (theta=kahan).

    Scalars as TorchLike (binary64, rounded to D). In D:
      m <- m fl(beta1) + g fl(1-beta1),   v <- v fl(beta2) + (fl(1-beta2) g) g
      u = fl(step) (m / denom) (denom as TorchLike) (+ fl(lr_t w) theta, decoupled)
      y = -u - c;  s = theta + y;  c <- (s - theta) - y;  theta <- s        (c: compensation, in D)
    """

    key = "kahan"
    run_class = _KahanRun
    path_class = "powers=double,theta=kahan,hyper=dtype"
    description = "Kahan-compensated parameter update, torch-like scalars"


class Stochastic(_Member):
    r"""torchao's low-precision path: arithmetic in float32 (float64 for float32 parameters), the new
    parameter rounded stochastically to D (theta=stochastic).

    C = float32 (float64 for D = float32). Hyperparameters and step scalars computed in binary64
    (powers=double), held in D (hyper=dtype) and widened to C. In C:
      m <- m + fl(1-beta1)(g - m),  v <- v + fl(1-beta2)(g g - v)       (lerp_)
      u = fl(step) (m / denom) (denom as TorchLike),  theta_C <- theta fl(1 - lr_t w) (decoupled)
      theta <- SR_D(theta_C - u), the difference formed in float64, rounded up with probability
      equal to its fractional position between its two D neighbours (seeded numpy Generator).
    """

    key = "stochastic"
    run_class = _StochasticRun
    path_class = "powers=double,theta=stochastic,hyper=dtype"
    dtypes = ("float16", "bfloat16", "float32")
    description = "float32 arithmetic, stochastic rounding of the parameter to D"


class Master(_Member):
    r"""apex FusedAdam / DeepSpeed: float32 master weights, moments and arithmetic (theta=master).

    Scalars in binary64 (powers=double) rounded to float32. In float32, p the master parameter:
      m <- b1 m + (1-b1) g,  v <- b2 v + ((1-b2) g) g
      standard: upd = (m / bc1) / (sqrt(v / bc2 + eps_root) + eps) (+ w p, decoupled); p <- p - lr_t upd
      hat:      u = alpha (m / (sqrt(v + eps_root bc2) + eps)) (+ lr_t w p); p <- p - u
    params() reports fl_D(p) for D = float16 / bfloat16.
    """

    key = "master"
    run_class = _MasterRun
    path_class = "powers=double,theta=master,hyper=dtype"
    dtypes = ("float16", "bfloat16")
    description = "float32 master weights and arithmetic, float16/bfloat16 parameters reported"


class TfKeras32(_Member):
    r"""tf_keras legacy OptimizerV2 in float64: lr, beta1, beta2 and decay held as float32 (hyper=float32).

    h(x) = float32(x) read as a double. In float64: b_i = h(beta_i), lr_t = h(lr(k)) / (1 + h(decay) k),
    bc_i = 1 - pow(b_i, t), eps, eps_root and w the configured doubles,
      m <- m + (g - m)(1 - b1),  v <- v + (g g - v)(1 - b2)          (ResourceApplyAdam)
      standard: u = (lr_t (m / bc1)) / (sqrt(v / bc2 + eps_root) + eps)
      hat:      u = ((lr_t sqrt(bc2) / bc1) m) / (sqrt(v + eps_root bc2) + eps)
      theta <- theta - (lr_t w) theta (decoupled),  theta <- theta - u
    """

    key = "tfkeras32"
    run_class = _TfKeras32Run
    path_class = "powers=pow,theta=once,hyper=float32"
    dtypes = ("float64",)
    description = "float64 run with float32-held lr, betas and decay (tf_keras OptimizerV2)"


MEMBERS: tuple[type[_Member], ...] = (TorchLike, KerasLike, Square, Product, Fma, Gpu2Ulp, Twice, Kahan,
                                      Stochastic, Master, TfKeras32)

#: the dialects every member is instantiated with: the presets, and the separated alternatives
#: no preset takes (bias correction off, schedule index t), which have goldens where a scenario separates them
DIALECTS: dict[str, "str | Dialect"] = {
    "kingma": "kingma", "pytorch": "pytorch", "keras": "keras", "optax": "optax",
    "pytorch-sparse": "pytorch-sparse",
    "bc-off": Dialect(bias_correction=False),
    "sched-t": Dialect(schedule_step="t"),
}


def member(key: str, dialect: str = "kingma") -> _Member:
    """One member by key ("torchlike", ...) in one of ``DIALECTS``."""
    cls = {m.key: m for m in MEMBERS}[key]
    return cls(DIALECTS[dialect], label=dialect)


def population() -> list[_Member]:
    """Every member in every dialect of ``DIALECTS``."""
    return [cls(d, label=label) for cls in MEMBERS for label, d in DIALECTS.items()]
