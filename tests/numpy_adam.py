"""Small independent numpy Adams, one per dialect, computing entirely in one dtype.

Written from the formulas (Kingma & Ba 2015; docs/semantics.md), not from the
reference code, to calibrate the error budget: the correct ones must pass with
margin, the mutants must fail. Every scalar is held in the dtype the way a
framework does it: beta rounded to the dtype, 1 - beta and beta^t computed in it.
"""

from __future__ import annotations

import numpy as np

from adamconf.adapters.contract import BaseAdapter
from adamconf.reference.dialect import resolve_dialect
from adamconf.reference.grads import SparseGrad, coalesce

NP = {"float16": np.float16, "float32": np.float32, "float64": np.float64}

MUTANTS = {
    None: "correct",
    "bc_off_by_one": "bias correction uses step t + 1",
    "eps_in_root": "epsilon inside the square root: sqrt(v_hat + eps)",
    "scale_1e-5": "every update multiplied by 1 + 1e-5",
}


class NumpyRun:
    def __init__(self, config, dialect, params, dtype, mutant=None, scale=0.0):
        """scale: every update is multiplied by D(1 + scale) before theta is rounded (a planted bug)."""
        self.c, self.d, self.dt, self.mutant = config, resolve_dialect(dialect), NP[dtype], mutant
        self.scale = 1e-5 if mutant == "scale_1e-5" else scale
        D = self.dt
        self.theta = [np.asarray(p, dtype=D).copy() for p in params]
        self.m = [np.zeros_like(p) for p in self.theta]
        self.v = [np.zeros_like(p) for p in self.theta]
        self.vmax = [np.zeros_like(p) for p in self.theta] if config.amsgrad else None
        self.t = 0
        self.b1, self.b2 = D(config.beta1), D(config.beta2)
        self.eps = D(config.eps)

    def _lr(self, k):
        D, c = self.dt, self.c
        lr = D(c.base_lr(k))
        if c.decay:
            lr = lr / (D(1) + D(c.decay) * D(k))
        return lr

    def step(self, grads):
        D, c, d = self.dt, self.c, self.d
        self.t += 1
        t = self.t
        k = t - 1 if d.schedule_step == "t-1" else t
        lr = self._lr(k)
        gs = []
        for g in grads:
            if isinstance(g, SparseGrad):
                cg = coalesce(g)
                dense = np.zeros(cg.dense_shape, dtype=D)
                dense[cg.indices] = cg.values.astype(D)
                gs.append((dense, cg.indices))
            else:
                gs.append((np.asarray(g, dtype=D), None))
        if c.clipvalue is not None:
            gs = [(np.clip(g, -D(c.clipvalue), D(c.clipvalue)), r) for g, r in gs]
        if c.clipnorm is not None:
            gs = [(self._clipped(g, np.sqrt(np.sum(g * g, dtype=D)), D(c.clipnorm)), r) for g, r in gs]
        if c.global_clipnorm is not None:
            n = np.sqrt(sum((np.sum(g * g, dtype=D) for g, _ in gs), D(0)))
            gs = [(self._clipped(g, n, D(c.global_clipnorm)), r) for g, r in gs]
        tb = t + 1 if self.mutant == "bc_off_by_one" else t
        bc1 = D(1) - self.b1 ** D(tb) if d.bias_correction else D(1)
        bc2 = D(1) - self.b2 ** D(tb) if d.bias_correction else D(1)
        for i, (g, rows) in enumerate(gs):
            sel = Ellipsis if (rows is None or d.sparse_rows == "dense") else rows
            th, m, v = self.theta[i][sel], self.m[i][sel], self.v[i][sel]
            g = g[sel]
            if c.weight_decay and c.weight_decay_mode == "l2":
                g = g + D(c.weight_decay) * th
            m = self.b1 * m + (D(1) - self.b1) * g
            v = self.b2 * v + (D(1) - self.b2) * g * g
            vu = v
            if self.vmax is not None:
                if d.amsgrad_max == "raw":
                    self.vmax[i][sel] = np.maximum(self.vmax[i][sel], v)
                    vu = self.vmax[i][sel]
                else:
                    self.vmax[i][sel] = np.maximum(self.vmax[i][sel], v / bc2)
                    vu = self.vmax[i][sel] * bc2
            if d.epsilon == "standard":
                vhat = vu / bc2 + D(c.eps_root)
                denom = np.sqrt(vhat + self.eps) if self.mutant == "eps_in_root" else np.sqrt(vhat) + self.eps
                upd = (lr / bc1) * m / denom
            else:
                alpha = lr * np.sqrt(bc2) / bc1
                root = np.sqrt(vu + D(c.eps_root) * bc2)
                denom = np.sqrt(vu + self.eps) if self.mutant == "eps_in_root" else root + self.eps
                upd = alpha * m / denom
            if self.scale:
                upd = upd * D(1 + self.scale)
            if c.weight_decay and c.weight_decay_mode == "decoupled":
                th = th - th * (D(c.weight_decay) * lr)
            self.theta[i][sel] = (th - upd).astype(D)
            self.m[i][sel], self.v[i][sel] = m, v

    def _clipped(self, g, n, c):
        D = self.dt
        if self.d.clip == "torch":
            coef = c / (n + D(1e-6))
            return g * min(coef, D(1))
        return g * (c / n) if n > c else g

    def params(self):
        return [p.copy() for p in self.theta]

    def state(self):
        return {"step": self.t, "m": [x.copy() for x in self.m], "v": [x.copy() for x in self.v],
                "vmax": None if self.vmax is None else [x.copy() for x in self.vmax]}


class NumpyAdapter(BaseAdapter):
    """The numpy Adam of one dialect as an adapter (optionally with a planted bug)."""

    dtypes = ("float16", "float32", "float64")
    features = ("amsgrad", "weight_decay", "decoupled_weight_decay", "lr_decay", "schedule", "eps_root",
                "clipnorm", "global_clipnorm", "clipvalue", "sparse", "state", "nonfinite")

    def __init__(self, dialect="kingma", mutant=None):
        self.dialect = dialect
        self.mutant = mutant
        self.name = f"numpy.{dialect}" + (f"+{mutant}" if mutant else "")

    def start(self, config, params, *, dtype, device):
        return NumpyRun(config, self.dialect, params, dtype, self.mutant)
