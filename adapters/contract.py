"""The adapter contract: what a third party implements to put an Adam under test.

An adapter is any object with the attributes and the ``start`` method of
``Adapter`` (subclassing ``BaseAdapter`` is optional). The harness:

1. checks ``available(device)`` (``None`` means usable; a string says why not and
   how to fix it, e.g. ``"torch is not installed: pip install 'adamconf[torch]'"``;
   ``device`` is optional: an ``available()`` without it is accepted), in the process
   that runs the case (the controller of an ``adamconf run`` asks no adapter: a
   built-in's ``requires``, the modules it imports, says whether it is installed);
2. calls ``start(config, params, dtype=..., device=...)`` with an ``AdamConfig``
   and the initial parameters as float64 numpy arrays whose values are exactly
   representable in ``dtype``; the adapter converts them to its own tensors;
3. calls ``run.step(grads)`` once per step with one entry per parameter: a
   float64 numpy array (exact in ``dtype``) or a ``SparseGrad`` (row-sparse,
   indices may repeat and must be summed), which it must not write into (they are the
   harness's copies, checked against the golden's rows; copy one before changing it in
   place, as an in-place clip would), then ``run.params()``, which returns
   the parameters as numpy arrays holding exactly the implementation's values
   (float16/float32/float64 as themselves; bfloat16 widened to float32, exact).

Optional capabilities, announced in ``features``:

- ``"state"``: ``run.state()`` returns ``{"step": int, "m": [...], "v": [...],
  "vmax": [...] or None}`` in the implementation's own convention (see
  ``Dialect.amsgrad_max`` for what vmax holds);
- ``"checkpoint"``: ``run.save() -> bytes`` (params and optimizer state) and
  ``adapter.restore(config, blob, dtype=, device=) -> Run`` that continues
  bitwise where the saved run was; loading the bytes must not run arbitrary
  pickle (``torch.load(weights_only=True)`` or ``np.load(allow_pickle=False)`` are fine);
- ``"config"``: ``run.config() -> str`` (the framework's own serialised optimizer
  config, as JSON text) and ``adapter.rebuild(config_text, params, dtype=,
  device=) -> Run`` which builds a fresh optimizer from that text alone.

Many steps in one call (optional, for speed): ``run.steps(rows) -> list[np.ndarray]`` applies
``len(rows)`` steps (each row as ``run.step`` takes it) and returns, per parameter, the
parameters after each of them stacked along a new leading axis, ``(len(rows), *shape)``, as
``run.params()`` would have returned them one by one. Implementations that compile a loop
(``jax.lax.scan``, a ``tf.function`` loop, which is what Keras's ``steps_per_execution``
runs) use it to leave the framework once per segment instead of once per step. The
harness calls it between the steps where it needs ``state()`` or a round trip, and checks
what it returns as it checks ``params()``; ``run.step`` must still work, for the rest. It
may raise ``NotImplementedError`` for rows it cannot batch (sparse entries), before it
takes any of their steps, and the harness then steps those rows one by one (the bridge's
child does so itself, without a round trip per step).

Feature vocabulary (``FEATURES``) names what a scenario needs; a case whose
scenario needs a feature the adapter lacks is skipped with that reason.

Arithmetic path class (optional): ``path_class = "powers=double,theta=once"`` says how the
implementation forms beta^t, rounds theta and holds its hyperparameters (``adamconf.reference.paths``,
docs/verdicts.md); axes left out are open. Without it the run is judged against every class
that applies to its dtype and the verdict names the one that fits: a declaration only narrows.

API profiles (optional): an adapter whose optimizer exposes a known public
surface sets ``api_profile`` to one of ``API_PROFILES`` and provides
``api_object()``, the thing that surface is checked on (for "keras-v2" the
optimizer class, e.g. ``tf_keras.optimizers.legacy.Adam``); the profile's suite
(suites/test_api_*.py) then exercises its arguments, defaults and methods.
"""

from __future__ import annotations

import inspect
from typing import Any, Collection, Protocol, Sequence, runtime_checkable

import numpy as np

from adamconf.reference.config import AdamConfig
from adamconf.reference.dialect import Dialect
from adamconf.reference.grads import GradEntry, SparseGrad

__all__ = [
    "API_PROFILES",
    "DEVICES",
    "DTYPES",
    "FEATURES",
    "Adapter",
    "BaseAdapter",
    "CheckpointAdapter",
    "ConfigAdapter",
    "Run",
    "SparseGrad",
    "Unsupported",
    "availability",
    "describe",
    "installed",
    "refuse_undeclared",
]

DTYPES = ("float16", "bfloat16", "float32", "float64")
API_PROFILES = ("keras-v2", "keras-3", "torch.optim", "optax")
DEVICES = ("cpu", "cuda")

FEATURES: dict[str, str] = {
    "amsgrad": "AdamConfig.amsgrad=True",
    "weight_decay": "coupled L2 weight decay (weight_decay_mode='l2'): g += w*theta",
    "decoupled_weight_decay": "decoupled weight decay (weight_decay_mode='decoupled', AdamW)",
    "lr_decay": "the legacy Keras inverse-time `decay`: lr / (1 + decay*k)",
    "schedule": "a learning-rate schedule (AdamConfig.lr is a Schedule)",
    "eps_root": "epsilon inside the square root (optax eps_root)",
    "clipnorm": "per-tensor gradient norm clipping",
    "global_clipnorm": "global gradient norm clipping",
    "clipvalue": "gradient clipping by value",
    "sparse": "row-sparse gradients (SparseGrad)",
    "state": "run.state() exposes m, v, vmax and the step counter",
    "checkpoint": "run.save() and adapter.restore() continue a run bitwise",
    "config": "run.config() and adapter.rebuild() round-trip the optimizer config",
    "nonfinite": "runs with non-finite gradients without raising",
}


class Unsupported(Exception):
    """Raised by ``start`` for a combination the implementation cannot run; the case is skipped."""


@runtime_checkable
class Run(Protocol):
    def step(self, grads: Sequence[GradEntry]) -> None:
        """Apply one optimizer step with these gradients (one entry per parameter)."""

    def params(self) -> list[np.ndarray]:
        """The current parameters, exactly as the implementation holds them."""


@runtime_checkable
class Adapter(Protocol):
    name: str
    dialect: "str | Dialect"
    dtypes: Collection[str]
    devices: Collection[str]
    features: Collection[str]

    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str, device: str) -> Run:
        """Create the parameters and the optimizer; return a Run at step 0."""


class CheckpointAdapter(Adapter, Protocol):
    def restore(self, config: AdamConfig, blob: bytes, *, dtype: str, device: str) -> Run:
        """A fresh Run (new optimizer, new tensors) continuing from ``Run.save()``'s bytes."""


class ConfigAdapter(Adapter, Protocol):
    def rebuild(self, config_text: str, params: Sequence[np.ndarray], *, dtype: str, device: str) -> Run:
        """A fresh Run whose optimizer is built from ``Run.config()``'s text alone."""


class BaseAdapter:
    """Convenience base: defaults for the optional parts of the contract."""

    name: str = ""
    dialect: "str | Dialect" = "kingma"
    dtypes: Collection[str] = ("float32", "float64")
    devices: Collection[str] = ("cpu",)
    features: Collection[str] = ()
    #: a one-line description for ``adamconf list adapters``
    description: str = ""
    #: the modules the adapter imports (``installed``: whether it can be a default adapter here, without
    #: importing them); empty: ``available`` alone decides
    requires: tuple[str, ...] = ()

    def available(self, device: str | None = None) -> str | None:
        return None

    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str, device: str) -> Run:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<adapter {self.name} dialect={self.dialect!r}>"


def availability(adapter: Any, device: str | None = None) -> str | None:
    """Why ``adapter`` cannot run on ``device`` (None: it can), whichever signature its ``available`` has.

    The one availability check of the harness. A broken ``available()`` makes the adapter unavailable,
    with the exception as the reason; it never breaks a run or a collection.
    """
    fn = getattr(adapter, "available", None)
    if fn is None:
        return None
    try:
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        if device is not None and len(params) >= 1:
            return fn(device)
        return fn()
    except Exception as exc:
        return f"available() raised {type(exc).__name__}: {exc}"


def installed(adapter: Any) -> str | None:
    """Why ``adapter`` cannot run here for want of a module (None: what it ``requires`` is installed).

    ``importlib.util.find_spec`` only, nothing is imported: the controller of a run chooses its default
    adapters with this (importing torch, TensorFlow and JAX there, and starting the bridged adapters'
    children, cost the run 10-20 s before its first case), and the full ``availability`` is then
    checked per case, where an adapter whose library is installed but does not work is skipped with the
    reason. An adapter that declares no ``requires`` is asked ``availability``.
    """
    import importlib.util

    requires = tuple(getattr(adapter, "requires", ()) or ())
    if not requires:
        return availability(adapter)
    missing = []
    for module in requires:
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(module)
        except (ImportError, ValueError):  # a parent package that does not import, a module without a spec
            missing.append(module)
    return f"{adapter.name} needs {', '.join(missing)}, not installed here" if missing else None


def refuse_undeclared(adapter: Any, config: AdamConfig | None, dtype: str, device: str) -> None:
    """Raise ``Unsupported`` (the case is skipped, with this reason) for a dtype or device the adapter does not
    declare, an unavailable library, or a config needing a feature it lacks; for adapters' ``start``."""
    if dtype not in adapter.dtypes:
        raise Unsupported(f"{adapter.name} does not run {dtype}; it declares {list(adapter.dtypes)}")
    if device not in adapter.devices:
        raise Unsupported(f"{adapter.name} does not run on {device!r}; it declares {list(adapter.devices)}")
    reason = availability(adapter, device)
    if reason is not None:
        raise Unsupported(reason)
    if config is not None:
        missing = sorted(config.features() - set(adapter.features))
        if missing:
            raise Unsupported(f"{adapter.name} does not support {missing} (it declares {sorted(adapter.features)})")


def describe(adapter: Any) -> dict[str, Any]:
    """The declared facts of an adapter, as plain data (for listings and results)."""
    dialect = adapter.dialect
    reason = availability(adapter)
    per_device = {dev: availability(adapter, dev) for dev in adapter.devices}
    return {
        "name": adapter.name,
        "dialect": dialect if isinstance(dialect, str) else dialect.key(),
        "dtypes": list(adapter.dtypes),
        "devices": list(adapter.devices),
        "features": sorted(adapter.features),
        "available": reason is None,
        "unavailable_reason": reason,
        "devices_unavailable": {dev: why for dev, why in per_device.items() if why},
        "description": getattr(adapter, "description", ""),
        "path_class": _path_class_text(getattr(adapter, "path_class", None)),
    }


def _path_class_text(declared: Any) -> str | None:
    """An adapter's declared arithmetic path class as text (None: undeclared, judged against every class)."""
    return None if declared is None else str(declared)
