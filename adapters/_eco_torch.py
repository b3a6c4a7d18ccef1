"""A generic adapter for a third-party ``torch.optim.Optimizer`` subclass: class + keyword arguments.

The third-party libraries of ``ecosystem_adapters`` (DeepSpeed, bitsandbytes, torch-optimi,
torchao, heavyball, pytorch-optimizer) are all torch optimizers, so one run serves them all:
``TorchRun`` (``_torch_run``) does gradients in, torch's clipping utilities, ``optimizer.step()``,
a ``LambdaLR`` scheduler for schedules, readback and the ``state_dict`` checkpoint
(``torch.load(weights_only=True)``); ``EcoRun`` only builds the optimizer from an ``EcoSpec``
instead of ``torch.optim``, and reads the state through the spec's own reader (every library
names m and v differently, and some hold them debiased or quantized).

Each library is imported inside ``available()``/``start()``, never at module import, so that
``adamconf.adapters.ecosystem_adapters`` imports where none of them is installed.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Sequence

import numpy as np

from adamconf.reference.config import AdamConfig, Schedule

from ._torch_env import import_torch, prepare_device, to_numpy, torch_missing_reason
from ._torch_run import TorchRun
from .contract import DTYPES, BaseAdapter, Unsupported, refuse_undeclared

__all__ = ["EcoAdapter", "EcoRun", "EcoSpec", "library_reason"]

_CLIP_KEYS = ("clipvalue", "clipnorm", "global_clipnorm")


@dataclass(frozen=True)
class _Path:
    """What ``TorchRun.step`` reads of a path: a display name (never "SparseAdam"), never compiled."""

    optimizer: str
    compiled: bool = False
    amp: bool = False  # never under a GradScaler


@dataclass(frozen=True)
class EcoRecipe:
    """The optimizer to build: the spec, its keyword arguments, the schedule and the clipping."""

    path: _Path
    spec: "EcoSpec"
    hyper: dict[str, Any]
    schedule: Schedule | None = None
    clip: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(_CLIP_KEYS))


@dataclass(frozen=True)
class EcoSpec:
    """One third-party optimizer class and how an ``AdamConfig`` becomes its keyword arguments.

    ``make(torch, params, kwargs)`` builds the optimizer; ``kwargs(config)`` maps the config
    (lr, betas, eps, weight decay, amsgrad) to the class's own argument names (``Unsupported`` for
    what it cannot express); ``read_state(optimizer, param, group)`` returns (step, m, v, vmax) as
    tensors or numbers in the reference's convention, or None before the first step.
    """

    module: str  # the import name of the library, for availability
    pip: str  # the arguments of the pip install that provides it
    qualname: str  # e.g. "bitsandbytes.optim.Adam", for messages
    make: Callable[[Any, list[Any], dict[str, Any]], Any]
    kwargs: Callable[[AdamConfig], dict[str, Any]]
    read_state: Callable[[Any, Any, dict[str, Any]], Any] | None = None
    probe: Callable[[], str | None] | None = None  # a real run of the library here (builds, CPU support)
    #: the library draws from torch's global generator (stochastic rounding): each run seeds it, as a
    #: reproducible training script does, so that two runs of one case agree (the determinism cases)
    seeded: bool = False


@functools.cache
def library_reason(module: str, pip: str) -> str | None:
    """None if ``module`` imports, else the exception and the pip command (cached per process)."""
    reason = torch_missing_reason()
    if reason is not None:
        return reason
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a library that fails while importing: the real reason
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return f"{module} is not usable here ({type(exc).__name__}: {first}): pip install {pip}"
    return None


@functools.cache
def _probe_reason(probe: Callable[[], str | None]) -> str | None:
    try:
        return probe()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:400]
        return f"{type(exc).__name__}: {first}"


class EcoRun(TorchRun):
    """A ``TorchRun`` whose optimizer is the spec's class (see the module docstring)."""

    def _build(self, params: list[Any]) -> tuple[Any, Any]:
        torch, recipe = self._torch, self.recipe
        if recipe.spec.seeded:
            torch.manual_seed(0)
        optimizer = recipe.spec.make(torch, params, dict(recipe.hyper))
        scheduler = None
        if recipe.schedule is not None:
            schedule = recipe.schedule
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: schedule(k))
        return optimizer, scheduler

    def state(self) -> dict[str, Any]:
        reader = self.recipe.spec.read_state
        if reader is None:
            raise NotImplementedError(f"{self.recipe.spec.qualname}: no state reader")
        amsgrad = bool(self.recipe.hyper.get("amsgrad", False))
        group = self.optimizer.param_groups[0]
        steps, m, v, vmax = [], [], [], []
        for p in self._params:
            got = reader(self.optimizer, p, group)
            if got is None:  # before the first step: no state yet
                zeros = to_numpy(self._torch.zeros_like(p))
                got = (0, zeros, zeros.copy(), zeros.copy())
            step, mk, vk, vmk = got
            steps.append(int(step.item()) if hasattr(step, "item") else int(step))
            m.append(_as_numpy(mk))
            v.append(_as_numpy(vk))
            if amsgrad:
                if vmk is None:
                    held = sorted(map(str, self.optimizer.state.get(p, {})))
                    raise RuntimeError(f"{self.recipe.spec.qualname} keeps no AMSGrad maximum although amsgrad=True "
                                       f"was passed: its optimizer.state holds only {held}")
                vmax.append(_as_numpy(vmk))
        if len(set(steps)) > 1:
            raise RuntimeError(f"{self.recipe.spec.qualname}: per-parameter step counters disagree: {steps}")
        return {"step": steps[0] if steps else 0, "m": m, "v": v, "vmax": vmax if amsgrad else None}

    def config(self) -> str:
        raise NotImplementedError("the ecosystem adapters declare no config round trip")


def _as_numpy(x: Any) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else to_numpy(x)


class EcoAdapter(BaseAdapter):
    """One third-party torch optimizer (``EcoSpec``) under the adamconf contract."""

    def __init__(self, name: str, spec: EcoSpec, *, dialect: Any, path_class: str | None, features: Collection[str],
                 description: str, dtypes: Collection[str] = DTYPES, devices: Collection[str] = ("cpu",)) -> None:
        self.name = name
        self.spec = spec
        self.requires = ("torch", spec.module.split(".")[0])
        self.dialect = dialect
        self.path_class = path_class
        self.features = frozenset(features)
        self.description = description
        self.dtypes = tuple(dtypes)
        self.devices = tuple(devices)

    @property
    def library(self) -> str:
        """The import name of the library under test."""
        return self.spec.module

    def available(self, device: str | None = None) -> str | None:
        reason = library_reason(self.spec.module, self.spec.pip)
        if reason is not None:
            return reason
        if device is not None and device not in self.devices:
            return f"{self.name} runs on {list(self.devices)}, not on {device!r}"
        if self.spec.probe is not None:
            why = _probe_reason(self.spec.probe)
            if why is not None:
                return f"{self.spec.qualname} does not run here: {why}"
        return None

    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str, device: str) -> EcoRun:
        self._check(config, dtype, device)
        return EcoRun.start(self._recipe(config), params, dtype=dtype, device=device)

    def restore(self, config: AdamConfig, blob: bytes, *, dtype: str, device: str) -> EcoRun:
        self._check(config, dtype, device)
        return EcoRun.restore(self._recipe(config), blob, dtype=dtype, device=device)

    def _recipe(self, config: AdamConfig) -> EcoRecipe:
        if config.eps_root:
            raise Unsupported(f"{self.spec.qualname} has no eps_root (got eps_root={config.eps_root!r})")
        if config.decay:
            raise Unsupported(f"{self.spec.qualname} has no legacy Keras inverse-time `decay`")
        kwargs = self.spec.kwargs(config)
        if config.schedule is not None:
            kwargs["lr"] = 1.0  # LambdaLR multiplies its base lr by schedule(k): exact with 1.0
        return EcoRecipe(_Path(self.spec.qualname), self.spec, kwargs, config.schedule,
                         {k: getattr(config, k) for k in _CLIP_KEYS})

    def _check(self, config: AdamConfig, dtype: str, device: str) -> None:
        refuse_undeclared(self, config, dtype, device)
        prepare_device(import_torch(), device)


def adam_kwargs(config: AdamConfig, *, names: dict[str, str] | None = None, betas: bool = True,
                amsgrad: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The usual ``lr, betas, eps, weight_decay[, amsgrad]`` keywords (renamed by ``names``)."""
    names = names or {}
    out: dict[str, Any] = {"lr": float(config.lr) if config.schedule is None else 1.0, "eps": float(config.eps),
                           "weight_decay": float(config.weight_decay)}
    if betas:
        out["betas"] = (float(config.beta1), float(config.beta2))
    else:
        out["beta1"], out["beta2"] = float(config.beta1), float(config.beta2)
    if amsgrad:
        out["amsgrad"] = bool(config.amsgrad)
    out.update(extra or {})
    return {names.get(k, k): v for k, v in out.items()}
