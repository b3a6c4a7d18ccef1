"""Keras 3 ``Adam`` / ``AdamW`` on the TensorFlow backend, eager or XLA-compiled, as adapters.

What Keras 3.15 does (keras/src/optimizers/adam.py ``update_step``, all in the
variable dtype; beta_1, beta_2, epsilon are Python floats)::

    t      = iterations + 1                       # int64 counter, cast to the dtype
    alpha  = lr * sqrt(1 - cast(beta_2)^t) / (1 - cast(beta_1)^t)
    m     += (g - m) * (1 - beta_1)               # 1 - beta_1 computed in binary64
    v     += (g*g - v) * (1 - beta_2)
    vhat   = max(vhat, v)                         # amsgrad: the raw v
    theta -= m * alpha / (sqrt(v or vhat) + epsilon)

i.e. the "keras" dialect (epsilon-hat). ``cast`` is tf.cast of a Python float,
which makes a float32 constant first: beta^t uses float32(beta) even in a
float64 run (first update off by -6.7e-6 relative for beta2 = 0.999). lr is a
variable of dtype floatx (see ``_tf_raw.floatx_scope``); schedules compute in
float32. Before the update, in
keras/src/optimizers/base_optimizer.py ``_backend_apply_gradients``: at most
one of clipnorm / global_clipnorm / clipvalue (two raise ValueError), then the
decoupled weight decay ``theta -= theta * wd * lr`` (keras/src/backend/
tensorflow/optimizer.py ``_apply_weight_decay``), ``Adam(weight_decay=...)``
and ``AdamW`` alike. Schedules get ``iterations`` (t - 1).

Sparse gradients: the TensorFlow backend has no sparse branch; a
``tf.IndexedSlices`` flows through ``g - m`` (densified, repeated rows summed
there) but ``ops.square(g)`` squares the slices row by row *before* they are
summed, so v receives sum(g_i^2) instead of (sum g_i)^2 for a repeated index.
The adapters pass the slices as given: that is what the framework does.

``jit_compile``: the Keras 3 optimizer takes no such argument (``Adam(
jit_compile=True)`` raises "Argument(s) not recognized"). XLA enters through
the trainer: ``Model.compile(jit_compile="auto")`` resolves to True for most
models and wraps the whole train step, ``optimizer.apply`` included, in
``tf.function(jit_compile=True, reduce_retracing=True)``
(keras/src/backend/tensorflow/trainer.py ``_make_function``). The ``.jit``
adapter applies the optimizer through exactly that wrapper: it is the path
``model.fit`` takes by default on a machine with a GPU ("auto" resolves to
False on CPU-only machines, trainer.py ``_resolve_auto_jit_compile``). In
float32 on the CPU its results are not bitwise those of the eager path.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys
from typing import Any, Callable, Sequence

import numpy as np

from adamconf.reference.config import AdamConfig, Schedule

from ._common import config_json, pack_arrays, params_arrays, read_params, unpack_arrays
from ._tf_raw import TFRun, floatx_scope, start_checks, tensorflow_missing, to_numpy
from .contract import DEVICES, DTYPES, BaseAdapter, Unsupported

__all__ = ["Keras3Adam", "keras_schedule"]


# -- Keras 3, on the TensorFlow backend only -----------------------------------

def _configured_backend() -> tuple[str, str]:
    """The backend Keras 3 runs (or will run) in this process, and where that was decided."""
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "backend"):
        return sys.modules["keras"].backend.backend(), "the keras already imported in this process"
    if "KERAS_BACKEND" in os.environ:
        return os.environ["KERAS_BACKEND"], f"KERAS_BACKEND={os.environ['KERAS_BACKEND']!r}"
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(home, "keras.json")
    try:
        with open(path) as f:
            backend = json.load(f).get("backend")
        if backend:
            return backend, f"{path}"
    except (OSError, ValueError):
        pass  # no readable config file: Keras falls back to its default, as we do
    return "tensorflow", "the Keras default"


def keras3_missing() -> str | None:
    """Why the keras.* adapters cannot run in this process (None if they can); imports nothing."""
    missing = tensorflow_missing()
    if missing:
        return missing
    if importlib.util.find_spec("keras") is None:
        return "keras 3 is not installed: pip install 'adamconf[tensorflow]'"
    version = importlib.metadata.version("keras")
    if int(version.split(".")[0]) < 3:
        return f"keras {version} is installed; the keras.* adapters need Keras 3 (pip install 'keras>=3')"
    backend, source = _configured_backend()
    if backend != "tensorflow":
        return (f"Keras 3 in this process runs the {backend!r} backend ({source}); the in-process keras.* "
                "adapters need the TensorFlow backend: unset KERAS_BACKEND or set it to 'tensorflow' before "
                "keras is imported, or use the bridged adapters (adamconf.adapters.bridged), which run "
                "Keras 3 on JAX or torch in a subprocess")
    return None


def import_keras3() -> Any:
    import keras

    if keras.backend.backend() != "tensorflow":  # a keras.json or a late KERAS_BACKEND change
        raise Unsupported(keras3_missing() or f"Keras runs the {keras.backend.backend()!r} backend")
    return keras


# -- AdamConfig -> constructor arguments ------------------------------------------

def keras_schedule(schedules: Any, schedule: Schedule) -> Any:
    """The Keras schedule object for an AdamConfig schedule.

    ``schedules`` is ``keras.optimizers.schedules`` or
    ``tf_keras.optimizers.schedules``: both generations share these classes and
    their conventions (PiecewiseConstantDecay: values[0] while step <= boundaries[0];
    ExponentialDecay: initial * rate^(step / decay_steps), floored if staircase).
    """
    if schedule.kind == "piecewise_constant":
        return schedules.PiecewiseConstantDecay(list(schedule.boundaries),
                                                [float(v) for v in schedule.values])
    return schedules.ExponentialDecay(float(schedule.initial), int(schedule.decay_steps),
                                      float(schedule.decay_rate), staircase=bool(schedule.staircase))


def clip_kwargs(config: AdamConfig) -> dict[str, float]:
    return {name: getattr(config, name) for name in ("clipnorm", "global_clipnorm", "clipvalue")
            if getattr(config, name) is not None}


def common_kwargs(schedules: Any, config: AdamConfig, clips: dict[str, float]) -> dict[str, Any]:
    """The constructor arguments every Keras generation's Adam shares (schedules: that generation's module)."""
    lr = float(config.lr) if config.schedule is None else keras_schedule(schedules, config.lr)
    return dict(learning_rate=lr, beta_1=config.beta1, beta_2=config.beta2, epsilon=config.eps,
                amsgrad=config.amsgrad, **clips)


def optimizer_kwargs(keras: Any, config: AdamConfig, *, adamw: bool, name: str) -> dict[str, Any]:
    """Constructor arguments for keras.optimizers.Adam/AdamW, or Unsupported with the reason."""
    if config.eps_root:
        raise Unsupported(f"{name}: Keras 3 Adam has no eps_root (epsilon inside the square root)")
    if config.decay:
        raise Unsupported(f"{name}: Keras 3 ignores the legacy `decay` argument (it only warns "
                          "'Argument `decay` is no longer supported and will be ignored.'); "
                          "tf_keras.legacy.adam implements it")
    if config.weight_decay and config.weight_decay_mode == "l2":
        raise Unsupported(f"{name}: Keras 3 weight decay is decoupled (theta -= theta*wd*lr); it has no "
                          "coupled L2 form")
    clips = clip_kwargs(config)
    if len(clips) > 1:
        raise Unsupported(f"{name}: Keras 3 accepts only one of clipnorm, global_clipnorm, clipvalue "
                          f"(it raises ValueError for two); this config sets {sorted(clips)}")
    kwargs = common_kwargs(keras.optimizers.schedules, config, clips)
    if adamw or config.weight_decay:
        # AdamW defaults to weight_decay=0.004: pass the config's value, 0.0 included.
        kwargs["weight_decay"] = float(config.weight_decay)
    return kwargs


# -- the run -------------------------------------------------------------------

class Keras3Run(TFRun):
    """Parameters as ``keras.Variable``; each step is one ``optimizer.apply``."""

    def __init__(self, keras: Any, tf: Any, optimizer: Any, variables: list, *, jit: bool,
                 dtype: str, device: str) -> None:
        super().__init__(tf, variables, dtype=dtype, device=device,
                         floatx=(keras.config.floatx, keras.config.set_floatx))
        self.optimizer = optimizer

        def apply(grads: list) -> None:
            optimizer.apply(grads, self.variables)

        # The wrapper Keras's TF trainer puts around a train step when jit_compile is on.
        self._apply_fn = tf.function(apply, jit_compile=True, reduce_retracing=True) if jit else apply

    def _apply(self, grads: list) -> None:
        self._apply_fn(grads)

    def state(self) -> dict[str, Any]:
        # Keras 3 has no public per-variable slot accessor: these are the lists
        # Adam.build fills, in the order of _get_variable_index (keras 3.15).
        opt = self.optimizer
        index = [opt._get_variable_index(v) for v in self.variables]
        return {"step": int(opt.iterations.numpy()),
                "m": [to_numpy(opt._momentums[i]) for i in index],
                "v": [to_numpy(opt._velocities[i]) for i in index],
                "vmax": [to_numpy(opt._velocity_hats[i]) for i in index] if opt.amsgrad else None}

    def save(self) -> bytes:
        """Parameters and the optimizer's own store (``save_own_variables``, what model.save writes)."""
        store: dict[str, np.ndarray] = {}
        self.optimizer.save_own_variables(store)
        arrays = params_arrays([v.numpy() for v in self.variables])
        arrays.update({f"opt{key}": np.asarray(value) for key, value in store.items()})
        return pack_arrays(arrays)

    def config(self) -> str:
        return config_json(self.optimizer.get_config())


class Keras3Adam(BaseAdapter):
    """keras.optimizers.Adam or AdamW (Keras 3, TensorFlow backend), eager or under XLA."""

    dialect = "keras"
    dtypes = DTYPES
    devices = DEVICES
    features = frozenset({"amsgrad", "decoupled_weight_decay", "schedule", "clipnorm", "global_clipnorm",
                          "clipvalue", "sparse", "state", "checkpoint", "config", "nonfinite"})

    def __init__(self, name: str, *, adamw: bool = False, jit: bool = False) -> None:
        self.name = name
        self.adamw = adamw
        self.jit = jit
        how = "in tf.function(jit_compile=True), as Model.fit runs it" if jit else "eager"
        cls = "AdamW" if adamw else "Adam"
        self.description = f"keras.optimizers.{cls} (Keras 3, TensorFlow backend), {how}"
        # the class's surface is checked once, on the eager Adam (suites/test_api_keras3.py)
        self.api_profile = "keras-3" if not (adamw or jit) else None

    def available(self, device: str | None = None) -> str | None:
        return keras3_missing() or tensorflow_missing(device)

    def _class(self, keras: Any) -> type:
        return keras.optimizers.AdamW if self.adamw else keras.optimizers.Adam

    def api_object(self) -> type:
        """The optimizer class whose public surface the ``api_profile`` suite checks."""
        return self._class(import_keras3())

    def _run(self, make_optimizer: Callable[[Any], Any], params: Sequence[np.ndarray], *, dtype: str,
             device: str, store: dict[str, np.ndarray] | None = None) -> Keras3Run:
        tf, dev = start_checks(self, dtype, device)
        keras = import_keras3()
        with tf.device(dev), floatx_scope(keras.config.floatx, keras.config.set_floatx, dtype):
            optimizer = make_optimizer(keras)
            variables = [keras.Variable(np.asarray(p), dtype=dtype, name=f"theta{k}")
                         for k, p in enumerate(params)]
            optimizer.build(variables)
            if store is not None:
                if len(store) != len(optimizer.variables):
                    raise ValueError(f"{self.name}: the checkpoint holds {len(store)} optimizer variables, "
                                     f"this optimizer has {len(optimizer.variables)}: was it saved with "
                                     "another config (amsgrad, schedule) or another adapter?")
                optimizer.load_own_variables(store)
        return Keras3Run(keras, tf, optimizer, variables, jit=self.jit, dtype=dtype, device=dev)

    def _from_config(self, config: AdamConfig) -> Callable[[Any], Any]:
        def make(keras: Any) -> Any:
            return self._class(keras)(**optimizer_kwargs(keras, config, adamw=self.adamw, name=self.name))

        return make

    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str,
              device: str) -> Keras3Run:
        return self._run(self._from_config(config), params, dtype=dtype, device=device)

    def restore(self, config: AdamConfig, blob: bytes, *, dtype: str, device: str) -> Keras3Run:
        arrays, _ = unpack_arrays(blob)
        store = {key[len("opt"):]: value for key, value in arrays.items() if key.startswith("opt")}
        return self._run(self._from_config(config), read_params(arrays), dtype=dtype, device=device,
                         store=store)

    def rebuild(self, config_text: str, params: Sequence[np.ndarray], *, dtype: str,
                device: str) -> Keras3Run:
        def make(keras: Any) -> Any:
            return self._class(keras).from_config(json.loads(config_text))

        return self._run(make, params, dtype=dtype, device=device)
