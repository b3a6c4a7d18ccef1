"""Keras 3 ``Adam`` / ``AdamW`` on the TensorFlow backend, in ``tf.function`` or XLA-compiled, as adapters.

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

The path: ``Model.fit`` never applies the optimizer eagerly. Its train step runs in
``tf.function`` (trainer.py ``make_train_function``), XLA-compiled when ``jit_compile``
resolves to True and a plain TensorFlow graph otherwise (the CPU default), and with
``steps_per_execution`` > 1 that function loops over the steps itself
(``multi_step_on_iterator``: ``for _ in tf.range(n)``). The in-process adapters take the same
two paths: ``keras.adam`` and ``keras.adamw`` apply in ``tf.function`` without XLA,
``keras.adam.jit`` with it; a single step is one call, and ``run.steps`` (the contract's
many-step call) is that loop (``_tf_raw.tf_loop``). The eager ``optimizer.apply`` of a
hand-written training loop is what the bridged adapters run (adamconf.adapters.bridged).

``Keras3Run`` is the run of every Keras 3 adapter, on every backend: the
TensorFlow ones here and the JAX and torch ones of adamconf.adapters.bridged
(``Keras3AdapterBase`` is what their adapters share), so that state, checkpoint,
config and restore are written once.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from typing import Any, Callable, ContextManager, Sequence

import numpy as np

from adamconf.reference.config import AdamConfig, Schedule
from adamconf.reference.grads import GradEntry, SparseGrad, check_entries

from ._common import config_json, exact_numpy, loop_steps, pack_arrays, params_arrays, read_params, unpack_arrays
from ._tf_raw import as_tf_grad, floatx_scope, start_checks, tensorflow_missing, tf_loop
from .contract import DEVICES, DTYPES, BaseAdapter, Unsupported

__all__ = ["Keras3Adam", "Keras3AdapterBase", "Keras3Run", "keras_schedule"]


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


# -- the run, on every backend -------------------------------------------------------------

class Keras3Run:
    """Parameters as ``keras.Variable``; each step is one ``optimizer.apply``: the run of every Keras 3 backend.

    Only backend-neutral Keras calls (``keras.Variable``, ``optimizer.apply``, ``keras.ops``,
    ``save_own_variables``); what a backend adds comes in as arguments: ``scope``, the
    context every call runs in besides Keras's floatx (``floatx_scope``): the device, and for
    JAX the x64 switch; ``to_tensor``, a gradient entry as the backend's tensor (default:
    ``keras.ops.convert_to_tensor`` of a dense entry); ``sparse``, whether ``SparseGrad``
    entries are passed on (TensorFlow's ``tf.IndexedSlices``) or refused; ``jit``, a wrapper
    for the apply step (TensorFlow: the ``tf.function(jit_compile=True)`` of ``Model.fit``).
    """

    def __init__(self, keras: Any, make_optimizer: Callable[[Any], Any], params: Sequence[np.ndarray], *,
                 dtype: str, device: str, scope: Callable[[], ContextManager], name: str,
                 to_tensor: Callable[[Any], Any] | None = None, sparse: bool = False,
                 jit: Callable[[Callable], Callable] | None = None, store: dict[str, np.ndarray] | None = None,
                 loop: Callable[[Callable, list], Callable] | None = None) -> None:
        self._keras = keras
        self.dtype = dtype
        self.device = device
        self.name = name
        self._scope = scope
        self._sparse = sparse
        self._to_tensor = to_tensor or (lambda g: keras.ops.convert_to_tensor(np.asarray(g, dtype=np.float64),
                                                                             dtype=dtype))
        self._shapes = [tuple(np.shape(p)) for p in params]
        with self._context():
            self.optimizer = make_optimizer(keras)
            self.variables = [keras.Variable(np.asarray(p, dtype=np.float64), dtype=dtype, name=f"theta{k}")
                              for k, p in enumerate(params)]
            self.optimizer.build(self.variables)
            if store is not None:
                if len(store) != len(self.optimizer.variables):
                    raise ValueError(f"{name}: the checkpoint holds {len(store)} optimizer variables, "
                                     f"this optimizer has {len(self.optimizer.variables)}: was it saved with "
                                     "another config (amsgrad, schedule) or another adapter?")
                self.optimizer.load_own_variables(store)

        def apply(grads: list) -> None:
            self.optimizer.apply(grads, self.variables)

        self._apply = jit(apply) if jit is not None else apply
        # many steps in one compiled call (run.steps); None: one step at a time only
        self._loop = loop(apply, self.variables) if loop is not None else None

    def _context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(self._scope())
        stack.enter_context(floatx_scope(self._keras.config.floatx, self._keras.config.set_floatx, self.dtype))
        return stack

    def _numpy(self, x: Any) -> np.ndarray:
        return exact_numpy(self._keras.ops.convert_to_numpy(x))

    def step(self, grads: Sequence[GradEntry]) -> None:
        check_entries(grads, self._shapes)
        for k, g in enumerate(grads):
            if isinstance(g, SparseGrad) and not self._sparse:
                raise TypeError(f"gradient {k} is a SparseGrad: Keras on {self._keras.backend.backend()} has "
                                f"no sparse gradient type and {self.name} does not declare 'sparse'")
        with self._context():
            self._apply([self._to_tensor(g) for g in grads])

    def steps(self, rows: Sequence[Sequence[GradEntry]]) -> list[np.ndarray]:
        """Many dense steps in the backend's compiled loop (the contract's ``steps``), 16^k steps a call."""
        return loop_steps(rows, self._shapes, loop=self._loop, step=self.step, params=self.params,
                          to_tensor=self._to_tensor, read=self._numpy, context=self._context)

    def params(self) -> list[np.ndarray]:
        with self._context():
            return [self._numpy(v.value) for v in self.variables]

    def state(self) -> dict[str, Any]:
        # Keras 3 has no public per-variable slot accessor: these are the lists
        # Adam.build fills, in the order of _get_variable_index (keras 3.15).
        opt = self.optimizer
        with self._context():
            index = [opt._get_variable_index(v) for v in self.variables]
            return {"step": int(self._numpy(opt.iterations.value)),
                    "m": [self._numpy(opt._momentums[i].value) for i in index],
                    "v": [self._numpy(opt._velocities[i].value) for i in index],
                    "vmax": [self._numpy(opt._velocity_hats[i].value) for i in index] if opt.amsgrad else None}

    def save(self) -> bytes:
        """Parameters and the optimizer's own store (``save_own_variables``, what model.save writes)."""
        convert = self._keras.ops.convert_to_numpy
        with self._context():
            store: dict[str, Any] = {}
            self.optimizer.save_own_variables(store)
            arrays = params_arrays([np.asarray(convert(v.value)) for v in self.variables])
            arrays.update({f"opt{key}": np.asarray(convert(value)) for key, value in store.items()})
        return pack_arrays(arrays)

    def config(self) -> str:
        return config_json(self.optimizer.get_config())


# -- the adapters ---------------------------------------------------------------------------

class Keras3AdapterBase(BaseAdapter):
    """What every Keras 3 adapter shares: the optimizer from an AdamConfig, a checkpoint or a config text.

    A subclass says how a run starts on its backend (``_run``); the run is always ``Keras3Run``.
    """

    dialect = "keras"
    dtypes = DTYPES
    adamw = False
    #: ops.power(ops.cast(beta, dtype), t) in the dtype (keras/src/optimizers/adam.py update_step); on
    #: TensorFlow the cast of a Python float passes through float32 in float64 runs (hyper left open)
    path_class = "powers=pow,theta=once"

    def _class(self, keras: Any) -> type:
        return keras.optimizers.AdamW if self.adamw else keras.optimizers.Adam

    def _run(self, make_optimizer: Callable[[Any], Any], params: Sequence[np.ndarray], *, dtype: str,
             device: str, store: dict[str, np.ndarray] | None = None) -> Keras3Run:
        raise NotImplementedError

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


class Keras3Adam(Keras3AdapterBase):
    """keras.optimizers.Adam or AdamW (Keras 3, TensorFlow backend), in tf.function, with or without XLA."""

    devices = DEVICES
    requires = ("keras", "tensorflow")
    features = frozenset({"amsgrad", "decoupled_weight_decay", "schedule", "clipnorm", "global_clipnorm",
                          "clipvalue", "sparse", "state", "checkpoint", "config", "nonfinite"})

    def __init__(self, name: str, *, adamw: bool = False, jit: bool = False) -> None:
        self.name = name
        self.adamw = adamw
        self.jit = jit
        how = ("in tf.function(jit_compile=True), as Model.fit runs it with XLA" if jit else
               "in tf.function, as Model.fit runs it on a CPU (jit_compile resolves to False there)")
        cls = "AdamW" if adamw else "Adam"
        self.description = f"keras.optimizers.{cls} (Keras 3, TensorFlow backend), {how}"
        # the class's surface is checked once, on Adam (suites/test_api_keras3.py)
        self.api_profile = "keras-3" if not (adamw or jit) else None

    def available(self, device: str | None = None) -> str | None:
        return keras3_missing() or tensorflow_missing(device)

    def api_object(self) -> type:
        """The optimizer class whose public surface the ``api_profile`` suite checks."""
        return self._class(import_keras3())

    def _run(self, make_optimizer: Callable[[Any], Any], params: Sequence[np.ndarray], *, dtype: str,
             device: str, store: dict[str, np.ndarray] | None = None) -> Keras3Run:
        tf, dev = start_checks(self, dtype, device)
        keras = import_keras3()
        # the wrapper Keras's TF trainer puts around a train step when jit_compile is on
        jit = lambda f: tf.function(f, jit_compile=self.jit, reduce_retracing=True)  # noqa: E731
        return Keras3Run(keras, make_optimizer, params, dtype=dtype, device=dev, scope=lambda: tf.device(dev),
                         name=self.name, to_tensor=lambda g: as_tf_grad(tf, g, dtype), sparse=True, jit=jit,
                         store=store, loop=tf_loop(tf, jit_compile=self.jit))
