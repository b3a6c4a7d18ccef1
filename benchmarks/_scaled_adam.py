"""A correct numpy Adam whose every applied update is multiplied by a constant 1 + delta.

Written from the formulas (Kingma & Ba 2015; the dialect table of
adamconf.reference.dialect), not from the reference code, for
benchmarks/resolution.py: with ``delta = 0`` it is a correct implementation
computing entirely in the dtype (beta rounded to the dtype, 1 - beta and beta^t
computed in it, like tests/numpy_adam.py); with ``delta != 0`` it is the
smallest systematic bug there is, a constant relative error in every update.

Step t (k = t - 1 or t, ``Dialect.schedule_step``), all in the dtype D:

    lr_t = D(config.base_lr(k)) [/ (1 + decay*k)]        schedule, legacy decay
    g <- coalesce(g) (repeated sparse rows summed)
    g <- clip(g, -c, c)                                   clipvalue
    g <- g * f(||g_k||, c) per tensor, then f(||g||, c) global
         exact: c/n if n > c;  tf: c*min(1/n, 1/c);  torch: min(c/(n + 1e-6), 1)
    g <- g + w*theta                                      coupled L2
    m <- b1*m + (1-b1)*g ;  v <- b2*v + (1-b2)*g*g        (lazy rows: touched rows only)
    AMSGrad raw: vmax = max(vmax, v), v' = vmax; corrected: vmax = max(vmax, v/bc2), v' = vmax*bc2
    theta <- theta - theta*(w*lr_t)                       decoupled (AdamW)
    standard: u = (lr_t/bc1) * m / (sqrt(v'/bc2 + eps_root) + eps)
    hat:      u = (lr_t*sqrt(bc2)/bc1) * m / (sqrt(v' + eps_root*bc2) + eps)
    u <- D(float64(u) * (1 + delta))   (float64: u + u*delta, one rounding, so 1e-12 survives)
    theta <- theta - u

The decoupled weight-decay term is not scaled (it is not part of Adam's update
u; tests/numpy_adam.py's scale_1e-5 mutant does the same).

The adapter has every feature the catalogue asks for (state, checkpoint, config
round trip, sparse, non-finite) so no scenario is skipped.
"""

from __future__ import annotations

import io
import json
from typing import Sequence

import numpy as np

from adamconf.adapters.contract import BaseAdapter
from adamconf.reference.config import AdamConfig
from adamconf.reference.dialect import Dialect, resolve_dialect
from adamconf.reference.grads import SparseGrad, coalesce

try:  # bfloat16 in numpy
    import ml_dtypes

    _BF16 = ml_dtypes.bfloat16
except ImportError:  # pragma: no cover - depends on the environment
    _BF16 = None

NP = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
if _BF16 is not None:
    NP["bfloat16"] = _BF16

TORCH_CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_: max_norm / (total_norm + 1e-6)

__all__ = ["NP", "ScaledAdam", "ScaledAdamRun"]


class ScaledAdamRun:
    def __init__(self, config: AdamConfig, dialect: Dialect, params: Sequence[np.ndarray], dtype: str,
                 delta: float, *, state: dict | None = None):
        self.c, self.d, self.dtype, self.delta = config, dialect, dtype, float(delta)
        self.D = D = NP[dtype]
        self.theta = [self._a(p).copy() for p in params]
        self.m = [np.zeros_like(p) for p in self.theta]
        self.v = [np.zeros_like(p) for p in self.theta]
        self.vmax = [np.zeros_like(p) for p in self.theta] if config.amsgrad else None
        self.t = 0
        if state is not None:
            self.t = int(state["t"])
            self.m = [self._a(x) for x in state["m"]]
            self.v = [self._a(x) for x in state["v"]]
            if self.vmax is not None:
                self.vmax = [self._a(x) for x in state["vmax"]]
        self.b1, self.b2, self.eps = D(config.beta1), D(config.beta2), D(config.eps)
        self.one_m_b1, self.one_m_b2 = D(1) - self.b1, D(1) - self.b2

    # -- helpers --------------------------------------------------------------------------
    def _a(self, x) -> np.ndarray:
        """x as an array of the dtype (ml_dtypes bfloat16 ufuncs sometimes answer in float32)."""
        return np.asarray(x, dtype=np.float64).astype(self.D) if np.asarray(x).dtype != self.D else np.asarray(x)

    def _s(self, x):
        """x as a scalar of the dtype."""
        return self.D(x)

    def _lr(self, k: int):
        D, c = self.D, self.c
        lr = D(c.base_lr(k))
        if c.decay:
            lr = self._s(lr / (D(1) + D(c.decay) * D(k)))
        return lr

    def _sumsq(self, g):
        return self._s(np.sum(self._a(g * g), dtype=self.D)) if g.size else self._s(0)

    def _clip_factor(self, n, c):
        """The factor g is multiplied by, or None when g is left alone."""
        D = self.D
        if self.d.clip == "torch":
            coef = self._s(c / self._s(n + D(TORCH_CLIP_EPS)))
            return min(coef, D(1))  # torch always multiplies by the clamped coefficient
        if self.d.clip == "tf":
            inv_n = self._s(D(1) / n) if n != 0 else D(np.inf)
            return self._s(c * min(inv_n, self._s(D(1) / c)))
        return self._s(c / n) if n > c else None

    def _scaled(self, upd: np.ndarray) -> np.ndarray:
        if self.delta == 0.0:
            return upd
        if self.D is np.float64:
            return upd + upd * self.delta  # the product is tiny: one rounding of the exact sum, nearly
        return (upd.astype(np.float64) * (1.0 + self.delta)).astype(self.D)

    # -- the contract ---------------------------------------------------------------------
    def step(self, grads) -> None:
        D, c, d = self.D, self.c, self.d
        self.t += 1
        t = self.t
        k = t - 1 if d.schedule_step == "t-1" else t
        lr = self._lr(k)
        gs = []
        for p, g in zip(self.theta, grads):
            if isinstance(g, SparseGrad):
                cg = coalesce(g)
                dense = np.zeros(p.shape, dtype=D)
                if cg.nnz:
                    dense[cg.indices] = self._a(cg.values)
                gs.append([dense, np.asarray(cg.indices, dtype=np.int64)])
            else:
                gs.append([self._a(g), None])
        if c.clipvalue is not None:
            cv = D(c.clipvalue)
            for e in gs:
                e[0] = self._a(np.clip(e[0], -cv, cv))
        if c.clipnorm is not None:
            cn = D(c.clipnorm)
            for e in gs:
                f = self._clip_factor(self._s(np.sqrt(self._sumsq(e[0]))), cn)
                if f is not None:
                    e[0] = self._a(e[0] * f)
        if c.global_clipnorm is not None:
            cn = D(c.global_clipnorm)
            total = D(0)
            for e in gs:
                total = self._s(total + self._sumsq(e[0]))
            f = self._clip_factor(self._s(np.sqrt(total)), cn)
            if f is not None:
                for e in gs:
                    e[0] = self._a(e[0] * f)
        if d.bias_correction:
            bc1 = self._s(D(1) - self._s(self.b1 ** D(t)))
            bc2 = self._s(D(1) - self._s(self.b2 ** D(t)))
        else:
            bc1 = bc2 = D(1)
        if d.epsilon == "standard":
            step_size = self._s(lr / bc1)
        else:
            step_size = self._s(self._s(lr * self._s(np.sqrt(bc2))) / bc1)
        for i, (g, rows) in enumerate(gs):
            sel = Ellipsis if (rows is None or d.sparse_rows == "dense") else rows
            th, m, v = self.theta[i][sel], self.m[i][sel], self.v[i][sel]
            g = g[sel]
            if c.weight_decay and c.weight_decay_mode == "l2":
                g = self._a(g + self._a(D(c.weight_decay) * th))
            m = self._a(self._a(self.b1 * m) + self._a(self.one_m_b1 * g))
            v = self._a(self._a(self.b2 * v) + self._a(self._a(self.one_m_b2 * g) * g))
            vu = v
            if self.vmax is not None:
                if d.amsgrad_max == "raw":
                    vm = self._a(np.maximum(self.vmax[i][sel], v))
                    vu = vm
                else:
                    vm = self._a(np.maximum(self.vmax[i][sel], self._a(v / bc2)))
                    vu = self._a(vm * bc2)
                self.vmax[i][sel] = vm
            if d.epsilon == "standard":
                vhat = self._a(vu / bc2)
                if c.eps_root:
                    vhat = self._a(vhat + D(c.eps_root))
                denom = self._a(self._a(np.sqrt(vhat)) + self.eps)
            else:
                inner = self._a(vu + self._s(D(c.eps_root) * bc2)) if c.eps_root else vu
                denom = self._a(self._a(np.sqrt(inner)) + self.eps)
            upd = self._a(self._a(step_size * m) / denom)
            upd = self._scaled(upd)
            if c.weight_decay and c.weight_decay_mode == "decoupled":
                th = self._a(th - self._a(th * self._s(D(c.weight_decay) * lr)))
            self.theta[i][sel] = self._a(th - upd)
            self.m[i][sel], self.v[i][sel] = m, v

    def _out(self, x: np.ndarray) -> np.ndarray:
        # bfloat16 widened to float32 (exact), as the contract asks; others as themselves
        return x.astype(np.float32) if self.D is _BF16 else x.copy()

    def params(self) -> list[np.ndarray]:
        return [self._out(p) for p in self.theta]

    def state(self) -> dict:
        return {"step": self.t, "m": [self._out(x) for x in self.m], "v": [self._out(x) for x in self.v],
                "vmax": None if self.vmax is None else [self._out(x) for x in self.vmax]}

    def save(self) -> bytes:
        arrays = {"t": np.array(self.t, dtype=np.int64)}
        for key in ("theta", "m", "v") + (("vmax",) if self.vmax is not None else ()):
            for k, x in enumerate(getattr(self, key)):
                arrays[f"{key}/{k}"] = x.astype(np.float64)  # exact for every dtype here
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def config(self) -> str:
        return json.dumps({"config": self.c.to_dict(), "dialect": self.d.to_dict(), "delta": self.delta})


class ScaledAdam(BaseAdapter):
    """The numpy Adam of one dialect with every update multiplied by 1 + delta."""

    devices = ("cpu",)
    features = ("amsgrad", "weight_decay", "decoupled_weight_decay", "lr_decay", "schedule", "eps_root",
                "clipnorm", "global_clipnorm", "clipvalue", "sparse", "state", "nonfinite", "checkpoint",
                "config")

    def __init__(self, dialect: "str | Dialect" = "pytorch", delta: float = 0.0):
        self.dialect = dialect
        self._dialect = resolve_dialect(dialect)
        self.delta = float(delta)
        self.dtypes = tuple(NP)
        label = dialect if isinstance(dialect, str) else self._dialect.key()
        self.name = f"bench.scaled_adam.{label}" + (f"*(1{self.delta:+.3g})" if self.delta else "")

    def start(self, config, params, *, dtype, device):
        return ScaledAdamRun(config, self._dialect, params, dtype, self.delta)

    def restore(self, config, blob, *, dtype, device):
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            a = {name: z[name] for name in z.files}
        n = sum(1 for name in a if name.startswith("theta/"))
        state = {"t": int(a["t"]), "m": [a[f"m/{k}"] for k in range(n)], "v": [a[f"v/{k}"] for k in range(n)],
                 "vmax": [a[f"vmax/{k}"] for k in range(n)] if "vmax/0" in a else None}
        return ScaledAdamRun(config, self._dialect, [a[f"theta/{k}"] for k in range(n)], dtype, self.delta,
                             state=state)

    def rebuild(self, config_text, params, *, dtype, device):
        spec = json.loads(config_text)
        return ScaledAdamRun(AdamConfig.from_dict(spec["config"]), Dialect(**spec["dialect"]), params, dtype,
                             float(spec["delta"]))

