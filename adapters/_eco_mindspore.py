"""MindSpore's torch-style optimizers (``mindspore.experimental.optim.Adam``/``AdamW``) under the contract.

A run holds one ``mindspore.Parameter`` per tensor (PyNative mode, CPU) and calls the optimizer
with the gradients as a tuple of Tensors, MindSpore's training-step convention
(``optimizer(grads)``); the parameters are read back with ``asnumpy()``. No clipping, schedule,
checkpoint or config: those would go through MindSpore's own utilities, which this adapter does
not wrap. MindSpore is imported inside the run only.
"""

from __future__ import annotations

import functools
from typing import Any, Collection, Sequence

import numpy as np

from adamconf.reference.config import AdamConfig
from adamconf.reference.grads import GradEntry, SparseGrad, check_entries

from .contract import BaseAdapter, Unsupported, refuse_undeclared

__all__ = ["MindSporeAdapter"]

_PIP = "mindspore==2.10.0"


@functools.cache
def mindspore_reason() -> str | None:
    try:
        import mindspore as ms

        ms.set_context(mode=ms.PYNATIVE_MODE)
        ms.set_device("CPU")
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return f"mindspore is not usable here ({type(exc).__name__}: {first}): pip install '{_PIP}'"
    return None


class MindSporeRun:
    def __init__(self, cls: str, config: AdamConfig, arrays: Sequence[np.ndarray], dtype: str) -> None:
        import mindspore as ms
        import mindspore.experimental.optim as optim

        self._ms = ms
        self._np = np.dtype(dtype)
        self._ms_dtype = getattr(ms, dtype)
        self._shapes = [tuple(np.shape(a)) for a in arrays]
        self.params_ = [ms.Parameter(ms.Tensor(np.array(a, dtype=self._np)), name=f"p{k}", requires_grad=True)
                        for k, a in enumerate(arrays)]
        self.amsgrad = bool(config.amsgrad)
        self.optimizer = getattr(optim, cls)(self.params_, lr=float(config.lr),
                                             betas=(float(config.beta1), float(config.beta2)), eps=float(config.eps),
                                             weight_decay=float(config.weight_decay), amsgrad=self.amsgrad)

    def step(self, grads: Sequence[GradEntry]) -> None:
        check_entries(grads, self._shapes)
        if any(isinstance(g, SparseGrad) for g in grads):
            raise Unsupported("mindspore.experimental.optim takes dense gradients only")
        self.optimizer(tuple(self._ms.Tensor(np.array(g, dtype=self._np)) for g in grads))

    def params(self) -> list[np.ndarray]:
        return [p.asnumpy().copy() for p in self.params_]

    def state(self) -> dict[str, Any]:
        opt = self.optimizer
        return {"step": int(opt.state_step.asnumpy()),
                "m": [t.asnumpy().copy() for t in opt.exp_avg], "v": [t.asnumpy().copy() for t in opt.exp_avg_sq],
                "vmax": [t.asnumpy().copy() for t in opt.max_exp_avg_sq] if self.amsgrad else None}


class MindSporeAdapter(BaseAdapter):
    library = "mindspore"
    requires = ("mindspore",)

    def __init__(self, name: str, cls: str, *, dialect: Any, path_class: str | None, features: Collection[str],
                 dtypes: Collection[str], description: str) -> None:
        self.name, self.cls, self.dialect, self.path_class = name, cls, dialect, path_class
        self.features, self.dtypes, self.devices = frozenset(features), tuple(dtypes), ("cpu",)
        self.description = description

    def available(self, device: str | None = None) -> str | None:
        reason = mindspore_reason()
        if reason is None and device is not None and device != "cpu":
            return f"{self.name} runs on ['cpu'], not on {device!r}"
        return reason

    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str, device: str) -> MindSporeRun:
        refuse_undeclared(self, config, dtype, device)
        return MindSporeRun(self.cls, config, params, dtype)
