"""A third-party adapter in a few dozen lines: a plain numpy Adam (PyTorch's dialect).

Run it:  adamconf run --adapter docs/examples/numpy_adapter.py:NumpyAdam --scenario dense-default
Or register it in your package's pyproject.toml:
    [project.entry-points."adamconf.adapters"]
    my-numpy-adam = "my_package.module:NumpyAdam"
"""

import numpy as np


class NumpyAdamRun:
    def __init__(self, config, params, dtype):
        self.c, self.dt = config, np.dtype(dtype)
        self.theta = [np.array(p, dtype=self.dt) for p in params]
        self.m = [np.zeros_like(p) for p in self.theta]
        self.v = [np.zeros_like(p) for p in self.theta]
        self.t = 0

    def step(self, grads):
        c, D = self.c, self.dt.type
        self.t += 1
        bc1, bc2 = 1 - c.beta1 ** self.t, 1 - c.beta2 ** self.t  # in double, like torch
        for i, g in enumerate(grads):
            g = np.asarray(g, dtype=self.dt)
            self.m[i] = D(c.beta1) * self.m[i] + D(1 - c.beta1) * g
            self.v[i] = D(c.beta2) * self.v[i] + D(1 - c.beta2) * g * g
            denom = np.sqrt(self.v[i]) / D(np.sqrt(bc2)) + D(c.eps)
            self.theta[i] = self.theta[i] - D(c.lr / bc1) * self.m[i] / denom

    def params(self):
        return [p.copy() for p in self.theta]

    def state(self):
        return {"step": self.t, "m": self.m, "v": self.v, "vmax": None}


class NumpyAdam:
    name = "example.numpy_adam"
    dialect = "pytorch"                # a preset name, or an adamconf.reference.Dialect
    dtypes = ("float32", "float64")
    devices = ("cpu",)
    features = ("state",)              # no clipping, AMSGrad, sparse...: those cases are skipped
    path_class = "powers=double,theta=once"  # optional: bc in double, theta rounded once (docs/verdicts.md)

    def start(self, config, params, *, dtype, device):
        return NumpyAdamRun(config, params, dtype)
