"""Built-in adapters that run in a child process: Keras 3 on the JAX and PyTorch backends.

Keras 3 chooses its backend once per process, from ``KERAS_BACKEND`` when keras
is first imported (keras/src/backend/config.py), and the in-process ``keras.*``
adapters (adamconf.adapters.keras_adapters) need the TensorFlow backend. So each
other backend gets a child process with its own environment, through the
subprocess bridge (adamconf.adapters.bridge): ``keras.jax.adam`` and
``keras.torch.adam`` run ``Keras3AnyBackend`` below in a child with
``KERAS_BACKEND=jax`` or ``torch``.

``Keras3AnyBackend`` is ``keras.optimizers.Adam`` through backend-neutral Keras
calls only (``keras.Variable``, ``optimizer.apply``, ``keras.ops``), eager: the
run is adamconf.adapters._keras3's ``Keras3Run``, the one run class of every
Keras 3 backend, and the adapter maps an AdamConfig, a checkpoint or a config
text exactly as the TensorFlow-backend adapter does (``Keras3AdapterBase``,
shared so the backends cannot drift apart); what Keras does with it is
in adapters/_keras3.py's docstring (dialect "keras": epsilon-hat, raw AMSGrad
maximum, TF clip formula, decoupled weight decay). Where these backends differ:

- JAX has no float64 unless ``jax_enable_x64`` is on, and Keras 3 does not turn it
  on: ``keras.Variable(dtype="float64")`` silently becomes float32 (observed with
  Keras 3.15.1 / jax 0.10.2, with only a UserWarning from ``jnp.asarray``). As in
  the optax adapters, each call of a JAX run executes inside
  ``jax.enable_x64(dtype == "float64")``.
- Neither backend has a sparse gradient type (no IndexedSlices): ``sparse`` is not
  declared and a SparseGrad is refused.
- Keras on torch puts new tensors on the GPU when there is one: every call runs
  inside ``keras.device(...)`` for the requested device.
- Keras 3.15.1 on torch: ``keras.ops.maximum`` / ``minimum`` of a float64 tensor and
  a Python float return float32 (``dtypes.result_type("float64", float)`` is
  "float32", keras/src/backend/torch/numpy.py), so clipnorm and global_clipnorm
  scale float64 gradients by a float32 factor (observed: relative update errors
  6.8e-8 and 1.5e-7 against 2.5e-13 on the JAX backend).

Not covered: ``model.fit`` on JAX jit-compiles the whole train step
(``optimizer.stateless_apply`` under ``jax.jit``); these runs are eager.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np

from adamconf.adapters._keras3 import Keras3AdapterBase, Keras3Run
from adamconf.adapters.bridge import BridgedAdapter
from adamconf.adapters.contract import Unsupported

__all__ = ["ADAPTERS", "Keras3AnyBackend", "keras_backend_adapter"]

IN_CHILD_SPEC = "adamconf.adapters.bridged:Keras3AnyBackend"


# -- the adapter the child runs ----------------------------------------------------------
def _cuda_reason(backend: str) -> str | None:
    """Why Keras on ``backend`` cannot use an NVIDIA GPU here (None: it can)."""
    if backend == "jax":
        from adamconf.adapters.optax_adapters import cuda_reason

        return cuda_reason()
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return (f"device 'cuda': torch {torch.__version__} reports no CUDA device "
                    "(torch.cuda.is_available() is False)")
        return None
    return f"device 'cuda' on the Keras backend {backend!r} is not handled here"


def _device_scope(keras: Any, device: str):
    backend = keras.backend.backend()
    if device == "cpu":
        return keras.device("cpu:0")
    if device != "cuda":
        raise ValueError(f"device {device!r} is not one of ('cpu', 'cuda')")
    reason = _cuda_reason(backend)
    if reason:
        raise Unsupported(reason)
    return keras.device("gpu:0" if backend == "jax" else "cuda:0")


class Keras3AnyBackend(Keras3AdapterBase):
    """keras.optimizers.Adam on whatever backend this process's Keras 3 runs (JAX or torch)."""

    devices = ("cpu", "cuda")
    features = frozenset({"amsgrad", "decoupled_weight_decay", "schedule", "clipnorm", "global_clipnorm",
                          "clipvalue", "state", "checkpoint", "config", "nonfinite"})

    @property
    def name(self) -> str:
        import os

        return f"keras.{os.environ.get('KERAS_BACKEND', 'default')}.adam"

    @property
    def description(self) -> str:
        return f"keras.optimizers.Adam (Keras 3, {self.name.split('.')[1]} backend), eager"

    def available(self, device: str | None = None) -> str | None:
        import importlib.util
        import os

        backend = os.environ.get("KERAS_BACKEND")
        if backend not in ("jax", "torch"):
            return (f"Keras3AnyBackend runs in a child with KERAS_BACKEND=jax or torch (here "
                    f"{backend!r}); use keras.jax.adam / keras.torch.adam, or keras.adam for TensorFlow")
        missing = [m for m in ("keras", backend) if importlib.util.find_spec(m) is None]
        if missing:
            return f"{' and '.join(missing)} not installed: pip install keras {backend}"
        if device == "cuda":
            return _cuda_reason(backend)
        if device not in (None, "cpu"):
            return f"{self.name} runs on {list(self.devices)}, not on {device!r}"
        return None

    def _keras(self) -> Any:
        reason = self.available()
        if reason:
            raise Unsupported(reason)
        import keras

        return keras

    def _run(self, make_optimizer, params: Sequence[np.ndarray], *, dtype: str, device: str,
             store: dict | None = None) -> Keras3Run:
        keras = self._keras()

        def scope() -> contextlib.ExitStack:
            stack = contextlib.ExitStack()
            if keras.backend.backend() == "jax":
                import jax

                stack.enter_context(jax.enable_x64(dtype == "float64"))
            stack.enter_context(_device_scope(keras, device))
            return stack

        return Keras3Run(keras, make_optimizer, params, dtype=dtype, device=device, scope=scope, name=self.name,
                         store=store)


# -- the built-in bridged adapters -----------------------------------------------------------
def keras_backend_adapter(backend: str) -> BridgedAdapter:
    """``keras.<backend>.adam``: Keras 3 Adam in a child with ``KERAS_BACKEND=<backend>``."""
    return BridgedAdapter(
        IN_CHILD_SPEC,
        name=f"keras.{backend}.adam",
        dialect="keras",
        description=f"keras.optimizers.Adam, Keras 3 on the {backend} backend (KERAS_BACKEND={backend}), "
                    "eager, in a child process",
        env={
            "KERAS_BACKEND": backend,
            # JAX would otherwise reserve 75 % of a GPU's memory at start-up.
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        },
        requires=("keras", backend),
    )


ADAPTERS = [keras_backend_adapter("jax"), keras_backend_adapter("torch")]
