"""Plain TensorFlow: the layer the Keras adapters stand on, and TF's own Adam kernels as adapters.

The first half is shared by every TensorFlow-backed adapter: the lazy import
(TensorFlow costs seconds to import, so nothing here imports it at module
level), devices, gradients as tensors and parameters back to numpy (checkpoint
bytes and exact readback are adapters/_common.py's, shared with every framework). The second half, ``RawApplyAdam``, puts the fused kernels
``tf.raw_ops.ResourceApplyAdam`` / ``ResourceApplyAdamWithAmsgrad`` under test
with no optimizer class around them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from adamconf.reference.config import AdamConfig
from adamconf.reference.grads import GradEntry, SparseGrad, check_entries

from ._common import device_steps, exact_numpy, loop_steps, pack_arrays, params_arrays, read_params, unpack_arrays
from .contract import DEVICES, DTYPES, BaseAdapter, Unsupported

__all__ = [
    "RawApplyAdam",
    "TFRun",
    "as_tf_grad",
    "device_name",
    "floatx_scope",
    "import_tensorflow",
    "start_checks",
    "tensorflow_missing",
    "tf_loop",
    "to_numpy",
]

_INSTALL_HINT = "pip install 'adamconf[tensorflow]'"


# -- TensorFlow, imported once and lazily --------------------------------------

def tensorflow_missing(device: str | None = None) -> str | None:
    """Why TensorFlow cannot be used here (None if it can), without importing it.

    For "cuda" only the NVIDIA driver is looked for (importing TensorFlow to ask it costs
    seconds); ``start`` still raises Unsupported if TensorFlow then sees no GPU.
    """
    if importlib.util.find_spec("tensorflow") is None:
        return f"tensorflow is not installed: {_INSTALL_HINT}"
    if device == "cuda" and not (os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi")):
        return ("no NVIDIA driver here (no /proc/driver/nvidia/version, no nvidia-smi): TensorFlow cannot use "
                "CUDA; run the CUDA cases on a machine with an NVIDIA GPU")
    return None


_configured = False


def import_tensorflow() -> Any:
    """Import TensorFlow, quiet and configured once for reproducible numerics.

    TF_CPP_MIN_LOG_LEVEL=2 (unless the user set it) drops the C++ INFO and
    WARNING lines only; errors are still printed and Python exceptions are
    untouched. On a GPU: memory growth on (several runs share one process and
    one card), and TensorFloat-32 off: Adam's elementwise kernels do not use
    TF32, and the switch makes that a guarantee for anything TF might route to
    tensor cores (10-bit mantissas) rather than an assumption.
    """
    global _configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if not _configured:
        tf.config.experimental.enable_tensor_float_32_execution(False)
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                # The GPU was initialised before us (by the user's code): its
                # memory policy can no longer change, and need not.
                pass
        _configured = True
    return tf


def device_name(tf: Any, device: str) -> str:
    """The TF device string for "cpu" / "cuda"; Unsupported (with the reason) if absent."""
    if device == "cpu":
        return "/CPU:0"
    if device == "cuda":
        if not tf.config.list_physical_devices("GPU"):
            if not tf.test.is_built_with_cuda():
                raise Unsupported(
                    f"device 'cuda': this TensorFlow {tf.__version__} build has no CUDA support "
                    "(tensorflow-cpu?); install 'tensorflow[and-cuda]' on a machine with an NVIDIA GPU")
            raise Unsupported(
                "device 'cuda': TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') is empty); "
                "check the NVIDIA driver and CUDA_VISIBLE_DEVICES")
        return "/GPU:0"
    raise ValueError(f"unknown device {device!r}; known devices: {list(DEVICES)}")


def start_checks(adapter: Any, dtype: str, device: str) -> tuple[Any, str]:
    """Validate dtype and device for ``adapter`` and return (tf, TF device string)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known dtypes: {list(DTYPES)}")
    if dtype not in adapter.dtypes:
        raise Unsupported(f"{adapter.name} does not support dtype {dtype!r} "
                          f"(it supports {list(adapter.dtypes)})")
    missing = adapter.available()
    if missing:
        raise Unsupported(missing)
    tf = import_tensorflow()
    return tf, device_name(tf, device)


@contextlib.contextmanager
def floatx_scope(get: Callable[[], str], set_: Callable[[str], None], dtype: str) -> Iterator[None]:
    """Keras's global float type set as a model of ``dtype`` has it, restored afterwards.

    Keras 3 and tf_keras's new optimizer hold the learning rate in a variable
    of dtype ``floatx()`` (keras/src/optimizers/base_optimizer.py ``__init__``,
    tf_keras/src/optimizers/optimizer.py ``_build_learning_rate``). A float64
    model is built under floatx "float64" (there is no float64 mixed-precision
    policy), so float64 runs use it; the narrower dtypes keep the default
    "float32", as a mixed-precision model does. Under the default, a float64
    run would use float32(lr): 4.7e-8 relative for lr = 1e-3. What floatx does
    not reach is exposed as it is: schedules compute in float32 (their Python
    floats go through tf.convert_to_tensor), and so does beta^t (below).
    """
    wanted = "float64" if dtype == "float64" else "float32"
    previous = get()
    set_(wanted)
    try:
        yield
    finally:
        set_(previous)


# -- values in and out ---------------------------------------------------------

def as_tf_grad(tf: Any, g: GradEntry, dtype: str) -> Any:
    """A dense tensor, or a ``tf.IndexedSlices`` with the indices as given (repeats kept)."""
    if isinstance(g, SparseGrad):
        return tf.IndexedSlices(
            values=tf.constant(np.asarray(g.values, dtype=np.float64), dtype=dtype),
            indices=tf.constant(np.asarray(g.indices, dtype=np.int64)),
            dense_shape=tf.constant(np.asarray(g.dense_shape, dtype=np.int64)),
        )
    return tf.constant(np.asarray(g, dtype=np.float64), dtype=dtype)


def to_numpy(x: Any) -> np.ndarray:
    """A tensor or variable as numpy, bfloat16 widened (exactly) to float32."""
    return exact_numpy(x.numpy())


class TFRun:
    """A run over TensorFlow variables: checks and converts gradients, places ops on a device.

    Subclasses implement ``_apply(tf_grads)``. ``floatx``: Keras's (getter,
    setter) pair, when the run's steps must see the floatx its optimizer was
    built under (see ``floatx_scope``).
    """

    def __init__(self, tf: Any, variables: Sequence[Any], *, dtype: str, device: str,
                 floatx: tuple[Callable[[], str], Callable[[str], None]] | None = None) -> None:
        self._tf = tf
        self.variables = list(variables)
        self.dtype = dtype
        self.device = device
        self._floatx = floatx
        self._shapes = [tuple(int(d) for d in v.shape) for v in self.variables]

    def _context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(self._tf.device(self.device))
        if self._floatx is not None:
            stack.enter_context(floatx_scope(*self._floatx, self.dtype))
        return stack

    def _apply(self, grads: list[Any]) -> None:
        raise NotImplementedError

    def step(self, grads: Sequence[GradEntry]) -> None:
        check_entries(grads, self._shapes)
        with self._context():
            self._apply([as_tf_grad(self._tf, g, self.dtype) for g in grads])

    #: loop(stacked) -> trail for ``steps`` (``tf_loop``); None: the run steps one row at a time
    _loop: Callable | None = None

    def steps(self, rows: Sequence[Sequence[GradEntry]]) -> list[np.ndarray]:
        """Many steps (the contract's ``steps``): in one ``tf.function`` loop per chunk of 16^k dense steps
        where the run has one (``_loop``); otherwise step by step, the variables copied on the device after
        each step and read back once at the end."""
        if self._loop is None:
            tf = self._tf

            def snapshot() -> list[Any]:
                with self._context():
                    return [tf.identity(v) for v in self.variables]

            def read(copies: list[Any]) -> np.ndarray:
                with self._context():
                    return to_numpy(tf.stack(copies))

            return device_steps(rows, step=self.step, snapshot=snapshot, read=read)
        return loop_steps(rows, self._shapes, loop=self._loop, step=self.step, params=self.params,
                          to_tensor=lambda a: as_tf_grad(self._tf, a, self.dtype), read=to_numpy,
                          context=self._context)

    def params(self) -> list[np.ndarray]:
        return [to_numpy(v) for v in self.variables]


def tf_loop(tf: Any, *, jit_compile: bool) -> Callable[[Callable, list], Callable]:
    """The loop ``Model.fit`` compiles for ``steps_per_execution`` > 1: n applies in one ``tf.function``.

    ``make(apply, variables)`` returns ``loop(stacked) -> trail``: stacked gradients (one per
    variable, ``(n, *shape)``) in, the variables after each of the n steps out.

    keras/src/backend/tensorflow/trainer.py ``multi_step_on_iterator`` runs the train step in a
    ``for _ in tf.range(n)`` inside one ``tf.function`` (XLA-compiled when jit_compile is on); here
    the step is ``optimizer.apply`` of row i of the stacked gradients, and the parameters after
    every step are written to ``tf.TensorArray``s.
    """
    def make(apply: Callable, variables: list) -> Callable:
        @tf.function(jit_compile=jit_compile, reduce_retracing=True)
        def loop(stacked):
            n = tf.shape(stacked[0])[0]
            arrays = [tf.TensorArray(v.dtype, size=n) for v in variables]
            for i in tf.range(n):
                apply([g[i] for g in stacked])
                arrays = [a.write(i, tf.convert_to_tensor(v)) for a, v in zip(arrays, variables)]
            return [a.stack() for a in arrays]

        return loop

    return make


# -- the raw kernels ------------------------------------------------------------

class RawAdamRun(TFRun):
    """Variables and slots fed to one raw Adam kernel per tensor and step."""

    def __init__(self, tf: Any, variables: list, slots: dict[str, list], config: AdamConfig,
                 amsgrad: bool, *, dtype: str, device: str, step: int = 0) -> None:
        super().__init__(tf, variables, dtype=dtype, device=device)
        self.slots = slots
        self.t = step
        self._config = config
        self._amsgrad = amsgrad

    def _apply(self, grads: list[Any]) -> None:
        tf, c = self._tf, self._config
        if any(isinstance(g, tf.IndexedSlices) for g in grads):
            raise TypeError("tf.raw.apply_adam* take dense gradients only (TensorFlow has no sparse "
                            "ResourceApplyAdam); this adapter does not declare the 'sparse' feature")
        self.t += 1

        def scalar(x: float) -> Any:
            return tf.constant(x, dtype=self.dtype)

        # beta^t: the binary64 power (C pow, within an ulp), rounded once to the
        # variable dtype, so that the kernel's inputs carry no error beyond the
        # one rounding every hyperparameter takes. Keras instead passes
        # tf.pow(beta rounded to the dtype, t) (tf_keras legacy/adam.py
        # _prepare_local); that convention is tested by the tf_keras adapters.
        common = dict(beta1_power=scalar(c.beta1 ** self.t), beta2_power=scalar(c.beta2 ** self.t),
                      lr=scalar(c.lr), beta1=scalar(c.beta1), beta2=scalar(c.beta2), epsilon=scalar(c.eps))
        for k, (var, g) in enumerate(zip(self.variables, grads)):
            if self._amsgrad:
                tf.raw_ops.ResourceApplyAdamWithAmsgrad(
                    var=var.handle, m=self.slots["m"][k].handle, v=self.slots["v"][k].handle,
                    vhat=self.slots["vhat"][k].handle, grad=g, use_locking=True, **common)
            else:
                tf.raw_ops.ResourceApplyAdam(
                    var=var.handle, m=self.slots["m"][k].handle, v=self.slots["v"][k].handle,
                    grad=g, use_locking=True, use_nesterov=False, **common)

    def state(self) -> dict[str, Any]:
        return {"step": self.t,
                "m": [to_numpy(x) for x in self.slots["m"]],
                "v": [to_numpy(x) for x in self.slots["v"]],
                "vmax": [to_numpy(x) for x in self.slots["vhat"]] if self._amsgrad else None}

    def save(self) -> bytes:
        arrays = params_arrays([v.numpy() for v in self.variables])
        for name, slot in self.slots.items():
            arrays.update(params_arrays([x.numpy() for x in slot], prefix=name))
        arrays["step"] = np.int64(self.t)
        return pack_arrays(arrays)


class RawApplyAdam(BaseAdapter):
    """``tf.raw_ops.ResourceApplyAdam`` (or ``...WithAmsgrad``) on resource variables.

    The kernel (tensorflow/core/kernels/training_ops.cc, ``functor::ApplyAdam``
    and ``ApplyAdamWithAmsgrad``; every input in the variable dtype T) computes::

        alpha = lr * sqrt(1 - beta2_power) / (1 - beta1_power)
        m    += (g - m) * (1 - beta1)            # 1 - beta1 computed in T
        v    += (g*g - v) * (1 - beta2)
        vhat  = max(vhat, v)                     # AMSGrad only: the raw v
        var  -= m * alpha / (sqrt(v or vhat) + epsilon)

    i.e. the epsilon-hat form of the "keras" dialect. The adapter keeps the step
    counter t (a Python int) and supplies beta1_power = beta1**t and
    beta2_power = beta2**t computed in binary64 and rounded once to T: the
    kernel then sees the best inputs T can hold, so what is measured is the
    kernel's own arithmetic. lr, beta1, beta2, epsilon are likewise rounded
    once to T. There is no sparse kernel, no clipping, decay or schedule: the
    adapter would have to compute those itself, which would test the adapter.

    bfloat16 with beta2 = 0.999 (or 1 - 2^-10): beta2 rounds to 1.0, so
    1 - beta2 = 0 and v never moves, while beta2^t rounds below 1 from t = 2:
    the update becomes m * alpha / epsilon and blows up (observed: parameters
    of order 1 reach 1e4 in 6 steps). Keras's convention, pow of the rounded
    beta, gives alpha = 0 and freezes the parameters instead. Neither is Adam;
    each is what the arithmetic makes of these inputs.
    """

    dialect = "keras"
    dtypes = DTYPES
    devices = DEVICES
    requires = ("tensorflow",)
    #: beta1_power / beta2_power are passed as binary64 powers rounded once to the dtype (RawAdamRun)
    path_class = "powers=rounded,theta=once"

    def __init__(self, name: str, *, amsgrad: bool) -> None:
        self.name = name
        self.amsgrad = amsgrad
        kernel = "ResourceApplyAdamWithAmsgrad" if amsgrad else "ResourceApplyAdam"
        self.description = f"tf.raw_ops.{kernel} on resource variables; beta^t from binary64, rounded once"
        self.features = frozenset({"state", "checkpoint", "nonfinite"} | ({"amsgrad"} if amsgrad else set()))

    def available(self, device: str | None = None) -> str | None:
        return tensorflow_missing(device)

    def _check(self, config: AdamConfig) -> None:
        other = sorted(config.features() - {"amsgrad"})
        if other:
            raise Unsupported(f"{self.name} runs the bare kernel, which has no {', '.join(other)} "
                              "(tf_keras.legacy.adam drives the same kernel with clipping, lr decay, "
                              "schedules and sparse gradients)")
        if config.amsgrad != self.amsgrad:
            raise Unsupported(f"{self.name} runs {'the AMSGrad' if self.amsgrad else 'the plain'} kernel, "
                              f"but AdamConfig.amsgrad={config.amsgrad}; use "
                              f"{'tf.raw.apply_adam' if self.amsgrad else 'tf.raw.apply_adam_amsgrad'}")

    def _make(self, tf: Any, config: AdamConfig, arrays: dict[str, np.ndarray], *,
              dtype: str, device: str, step: int) -> RawAdamRun:
        names = ("m", "v", "vhat") if self.amsgrad else ("m", "v")
        params = read_params(arrays)
        with tf.device(device):
            variables = [tf.Variable(np.asarray(p), dtype=dtype, name=f"theta{k}")
                         for k, p in enumerate(params)]
            slots = {}
            for name in names:
                if f"{name}0" in arrays:
                    values = read_params(arrays, prefix=name)
                else:
                    values = [np.zeros(np.shape(p)) for p in params]
                slots[name] = [tf.Variable(np.asarray(x), dtype=dtype, name=f"{name}{k}")
                               for k, x in enumerate(values)]
        return RawAdamRun(tf, variables, slots, config, self.amsgrad, dtype=dtype, device=device, step=step)

    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str,
              device: str) -> RawAdamRun:
        self._check(config)
        tf, dev = start_checks(self, dtype, device)
        return self._make(tf, config, params_arrays(params), dtype=dtype, device=dev, step=0)

    def restore(self, config: AdamConfig, blob: bytes, *, dtype: str, device: str) -> RawAdamRun:
        self._check(config)
        tf, dev = start_checks(self, dtype, device)
        arrays, _ = unpack_arrays(blob)
        return self._make(tf, config, arrays, dtype=dtype, device=dev, step=int(arrays["step"]))
