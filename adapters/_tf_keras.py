"""tf_keras's two Adams as adapters: the legacy OptimizerV2 (the seed document's) and the new optimizer.

``tf_keras.legacy.adam`` = ``tf_keras.optimizers.legacy.Adam``
(tf_keras/src/optimizers/legacy/adam.py, optimizer_v2.py):

- hyperparameters lr, beta_1, beta_2, decay live in **float32** variables
  whatever the parameter dtype (``OptimizerV2.add_weight`` defaults to
  tf.float32) and are cast to it, so a float64 run uses float32(0.9) etc.
  (measured: its updates are off by 6e-8 relative in 5 steps with lr = 1e-2,
  betas 0.9 / 0.999; exact with dyadic hyperparameters);
- ``_decayed_lr``: lr_t = schedule(iterations) / (1 + decay * iterations),
  iterations read before the increment (t - 1);
- ``_prepare_local``: beta_power = tf.pow(beta cast to the dtype, t), then the
  fused kernel ``ResourceApplyAdam[WithAmsgrad]`` for dense gradients (see
  ``_tf_raw.RawApplyAdam`` for its formula);
- clipping in ``_aggregate_gradients`` order clipvalue -> clipnorm ->
  global_clipnorm, all that are set (clipnorm with global_clipnorm raises);
- sparse: repeated indices summed (``_deduplicate_indexed_slices``), then
  m = beta1*m; m[idx] += (1-beta1)*g (all rows decay), likewise v;
- ``epsilon=0`` silently becomes 1e-7 (``epsilon or backend_config.epsilon()``).

``tf_keras.adam`` = ``tf_keras.optimizers.Adam`` (tf_keras/src/optimizers/adam.py,
optimizer.py): Keras 3's arithmetic (``m += (g - m)*(1 - beta_1)``, beta^t by
tf.pow of the beta cast to the dtype, lr in a floatx variable), decoupled weight
decay ``theta -= theta*wd*lr``, repeated sparse indices summed
(``_deduplicate_sparse_grad``) before a dense-equivalent sparse branch. Of
clipnorm, global_clipnorm, clipvalue it applies only the first set, in that
order (``_clip_gradients``), silently ignoring the others; the adapter passes
every one given, so a scenario with two exposes it. It accepts ``lr=`` and
drops the value, logging only "`lr` is deprecated ... please use
`learning_rate`" (``_process_kwargs``); the adapters always pass
``learning_rate``. ``jit_compile`` keeps its default (True, which tf_keras turns
off when no GPU is visible).

Both step inside ``tf.function`` (a graph), as ``Model.fit`` runs a train step, and ``run.steps``
loops over many steps in one ``tf.function`` as ``steps_per_execution`` does (``_tf_raw.tf_loop``).

Clip norms in every tf_keras path are taken over a ``tf.IndexedSlices``'s values
as given, before repeated indices are summed.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any, Callable, Sequence

import numpy as np

from adamconf.reference.config import AdamConfig

from ._common import config_json, pack_arrays, params_arrays, read_params, unpack_arrays
from ._keras3 import clip_kwargs, common_kwargs
from ._tf_raw import TFRun, floatx_scope, start_checks, tensorflow_missing, tf_loop, to_numpy
from .contract import DEVICES, DTYPES, BaseAdapter, Unsupported

__all__ = ["TFKerasAdam"]


def tf_keras_missing() -> str | None:
    missing = tensorflow_missing()
    if missing:
        return missing
    if importlib.util.find_spec("tf_keras") is None:
        return "tf_keras is not installed: pip install 'adamconf[tensorflow]'"
    return None


def import_tf_keras() -> Any:
    import tf_keras

    return tf_keras


def optimizer_kwargs(tf_keras: Any, config: AdamConfig, *, legacy: bool, name: str) -> dict[str, Any]:
    """Constructor arguments for the legacy or the new tf_keras Adam, or Unsupported with the reason."""
    if config.eps_root:
        raise Unsupported(f"{name}: tf_keras Adam has no eps_root (epsilon inside the square root)")
    if config.weight_decay:
        if legacy:
            raise Unsupported(f"{name}: the legacy OptimizerV2 Adam has no weight decay; "
                              "tf_keras.adam has the decoupled one")
        if config.weight_decay_mode == "l2":
            raise Unsupported(f"{name}: tf_keras's weight decay is decoupled (theta -= theta*wd*lr); "
                              "it has no coupled L2 form")
    if config.decay and not legacy:
        raise Unsupported(f"{name}: the new tf_keras optimizer rejects `decay` (ValueError: 'decay is "
                          "deprecated in the new TF-Keras optimizer'); tf_keras.legacy.adam implements it")
    clips = clip_kwargs(config)
    if legacy and "clipnorm" in clips and "global_clipnorm" in clips:
        raise Unsupported(f"{name}: OptimizerV2 raises ValueError for clipnorm with global_clipnorm "
                          "('Cannot accept both')")
    kwargs = common_kwargs(tf_keras.optimizers.schedules, config, clips)
    if legacy:
        kwargs["decay"] = float(config.decay)
    elif config.weight_decay:
        kwargs["weight_decay"] = float(config.weight_decay)
    return kwargs


class TFKerasRun(TFRun):
    """Parameters as ``tf.Variable``; each step is one ``apply_gradients``."""

    def __init__(self, tf_keras: Any, tf: Any, optimizer: Any, variables: list, *, legacy: bool,
                 dtype: str, device: str) -> None:
        super().__init__(tf, variables, dtype=dtype, device=device,
                         floatx=(tf_keras.backend.floatx, tf_keras.backend.set_floatx))
        self.optimizer = optimizer
        self._legacy = legacy

        def apply(grads: list) -> None:
            optimizer.apply_gradients(list(zip(grads, self.variables)))

        # Model.fit's path on the CPU: the step inside tf.function (jit_compile resolves to False there),
        # and for run.steps the steps_per_execution loop around it
        self._apply = tf.function(apply, reduce_retracing=True)
        self._loop = tf_loop(tf, jit_compile=False)(apply, self.variables)

    def _slots(self, name: str) -> list[np.ndarray]:
        opt = self.optimizer
        if self._legacy:
            return [to_numpy(opt.get_slot(v, name)) for v in self.variables]
        # No public per-variable slot accessor: the lists Adam.build fills (tf_keras 2.21).
        slots = getattr(opt, {"m": "_momentums", "v": "_velocities", "vhat": "_velocity_hats"}[name])
        return [to_numpy(slots[opt._index_dict[opt._var_key(v)]]) for v in self.variables]

    def state(self) -> dict[str, Any]:
        amsgrad = self.optimizer.amsgrad
        return {"step": int(self.optimizer.iterations.numpy()), "m": self._slots("m"), "v": self._slots("v"),
                "vmax": self._slots("vhat") if amsgrad else None}

    def _optimizer_weights(self) -> list[np.ndarray]:
        if self._legacy:
            return self.optimizer.get_weights()  # iterations, then the slots
        return [v.numpy() for v in self.optimizer.variables]

    def save(self) -> bytes:
        arrays = params_arrays([v.numpy() for v in self.variables])
        arrays.update(params_arrays(self._optimizer_weights(), prefix="opt"))
        return pack_arrays(arrays)

    def config(self) -> str:
        return config_json(self.optimizer.get_config())


class TFKerasAdam(BaseAdapter):
    """tf_keras.optimizers.legacy.Adam (OptimizerV2) or tf_keras.optimizers.Adam (the new optimizer)."""

    dialect = "keras"
    dtypes = DTYPES
    devices = DEVICES
    requires = ("tf_keras", "tensorflow")
    #: beta^t = tf.pow(beta_t, local_step) in the variable's dtype (legacy _prepare_local, new update_step);
    #: OptimizerV2's hyperparameters are float32 variables in float64 runs (hyper left open)
    path_class = "powers=pow,theta=once"

    def __init__(self, name: str, *, legacy: bool) -> None:
        self.name = name
        self.legacy = legacy
        common = {"amsgrad", "schedule", "clipnorm", "global_clipnorm", "clipvalue", "sparse", "state",
                  "checkpoint", "config", "nonfinite"}
        self.features = frozenset(common | ({"lr_decay"} if legacy else {"decoupled_weight_decay"}))
        # OptimizerV2 is the seed document's API (suites/test_api_keras_v2.py)
        self.api_profile = "keras-v2" if legacy else None
        if legacy:
            self.description = ("tf_keras.optimizers.legacy.Adam (OptimizerV2, the fused ResourceApplyAdam kernel), "
                                "in tf.function")
        else:
            self.description = "tf_keras.optimizers.Adam (the tf_keras 2.11+ optimizer), in tf.function"

    def available(self, device: str | None = None) -> str | None:
        return tf_keras_missing() or tensorflow_missing(device)

    def _class(self, tf_keras: Any) -> type:
        return tf_keras.optimizers.legacy.Adam if self.legacy else tf_keras.optimizers.Adam

    def api_object(self) -> type:
        """The optimizer class whose public surface the ``api_profile`` suite checks."""
        return self._class(import_tf_keras())

    def _from_config(self, config: AdamConfig) -> Callable[[Any], Any]:
        return lambda tk: self._class(tk)(**optimizer_kwargs(tk, config, legacy=self.legacy, name=self.name))

    def _run(self, make_optimizer: Callable[[Any], Any], params: Sequence[np.ndarray], *, dtype: str,
             device: str, weights: list[np.ndarray] | None = None) -> TFKerasRun:
        tf, dev = start_checks(self, dtype, device)
        tf_keras = import_tf_keras()
        backend = tf_keras.backend
        with tf.device(dev), floatx_scope(backend.floatx, backend.set_floatx, dtype):
            optimizer = make_optimizer(tf_keras)
            variables = [tf.Variable(np.asarray(p), dtype=dtype, name=f"theta{k}")
                         for k, p in enumerate(params)]
            # Create the slots now (OptimizerV2 would at the first step) so that
            # save() and state() work at step 0 and restore() has weights to set.
            if self.legacy:
                optimizer._create_all_weights(variables)
            else:
                optimizer.build(variables)
            if weights is not None:
                have = len(optimizer.get_weights()) if self.legacy else len(optimizer.variables)
                if len(weights) != have:
                    raise ValueError(f"{self.name}: the checkpoint holds {len(weights)} optimizer weights, "
                                     f"this optimizer has {have}: was it saved with another config "
                                     "(amsgrad) or another adapter?")
                optimizer.set_weights(weights)
        return TFKerasRun(tf_keras, tf, optimizer, variables, legacy=self.legacy, dtype=dtype, device=dev)

    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str,
              device: str) -> TFKerasRun:
        return self._run(self._from_config(config), params, dtype=dtype, device=device)

    def restore(self, config: AdamConfig, blob: bytes, *, dtype: str, device: str) -> TFKerasRun:
        arrays, _ = unpack_arrays(blob)
        return self._run(self._from_config(config), read_params(arrays), dtype=dtype, device=device,
                         weights=read_params(arrays, prefix="opt"))

    def rebuild(self, config_text: str, params: Sequence[np.ndarray], *, dtype: str,
                device: str) -> TFKerasRun:
        def make(tf_keras: Any) -> Any:
            return self._class(tf_keras).from_config(json.loads(config_text))

        return self._run(make, params, dtype=dtype, device=device)
