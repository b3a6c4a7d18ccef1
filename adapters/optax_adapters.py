"""JAX/optax adapters: ``optax.adam``, ``optax.adamw`` and ``optax.amsgrad``, jitted.

Each adapter expresses an ``AdamConfig`` with optax's own public functions,
composed the way an optax user would write it, and records that composition as a
JSON *recipe* (``run.config()``), from which ``adapter.rebuild`` builds the very
same transform again::

    optax.chain(optax.clip(clipvalue),                   # clipvalue
                optax.clip_by_global_norm(global_clipnorm),
                optax.add_decayed_weights(w),            # coupled L2: g += w*theta
                optax.adam(lr, b1, b2, eps, eps_root))   # or adamw(..., weight_decay=w), amsgrad(...)

The order value -> global norm -> L2 -> Adam is the reference's (reference/adam.py).
What optax does (optax 0.2.8, re-read from the installed source):

- ``scale_by_adam`` (optax/_src/transform.py): m = b1*m + (1-b1)*g,
  v = b2*v + (1-b2)*g^2, count += 1 (int32, saturating),
  u = (m/bc1) / (sqrt(v/bc2 + eps_root) + eps) with bc = 1 - b**count computed by
  ``tree_bias_correction`` (optax/tree_utils/_tree_math.py) from a Python float b
  and an int32 count, i.e. in float32 unless x64 is enabled (see ``_precision``);
  then ``scale_by_learning_rate``: u *= -lr(count before the increment).
- ``scale_by_amsgrad`` (same file): nu_max = max(nu_max, v/bc2), the
  *bias-corrected* v (dialect axis amsgrad_max="corrected"), u = m_hat /
  (sqrt(nu_max + eps_root) + eps). ``optax.adam`` has no ``amsgrad`` argument in
  0.2.8, so AMSGrad is only ``optax.amsgrad``.
- ``adamw`` (optax/_src/alias.py): chain(scale_by_adam, add_decayed_weights(w),
  scale_by_learning_rate): u = -lr*(adam + w*theta), the decoupled decay.
- ``clip`` is ``clip(g, -c, c)``; ``clip_by_global_norm``
  (optax/transforms/_clipping.py) passes g through unchanged when n < c, else
  g/n*c, with no epsilon (dialect clip="exact").
- optax has no per-tensor *norm* clip: ``clip_by_block_rms`` bounds the RMS
  (norm/sqrt(size)) and ``adaptive_grad_clip`` is relative to the parameter norm;
  so ``clipnorm`` is not declared. Nor is the legacy Keras ``decay`` (optax has no
  inverse-time decay schedule).
- Schedules: a ``PiecewiseConstant`` becomes ``join_schedules`` of
  ``constant_schedule``s (optax/schedules/_join.py), which returns each value
  exactly; ``piecewise_constant_schedule`` would instead multiply ratios of
  values and round. ``ExponentialDecay`` is ``exponential_decay``.
- Sparse gradients: JAX has no sparse gradient type (``jax.grad`` of a gather is
  a dense array with zero rows), so ``sparse`` is not declared and a
  ``SparseGrad`` is refused: densifying it here would test this adapter's
  densification, not an optax code path.

Compiled once per configuration: the jitted update of a recipe (and its ``jax.lax.scan``
over many steps, ``run.steps``, the loop a JAX training loop compiles) is kept per recipe
(``_compiled``), so that every run of the same configuration and shapes reuses it instead of
tracing and compiling its own. Inside the scan the update is the same traced function; XLA
may fuse the loop body differently from the single step, and both are runs of optax.

float64 needs ``jax_enable_x64``, a process-wide flag that also changes float32
runs (with it on, bc = 1 - b**count is computed in float64 for float32
parameters). Every call of a run therefore executes inside the scoped
``jax.enable_x64(dtype == "float64")`` context (``_precision``): float64 runs get
x64, all other dtypes run as with JAX's default, whatever ran before in the same
process, and the global flag is left as it was.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from adamconf.adapters._common import (bfloat16_type, exact_numpy, pack_arrays, params_arrays, read_params,
                                      steps_in_chunks, unpack_arrays)
from adamconf.adapters.contract import DTYPES, BaseAdapter, Unsupported
from adamconf.reference.config import AdamConfig, ExponentialDecay, PiecewiseConstant
from adamconf.reference.grads import SparseGrad, check_entries

__all__ = ["ADAPTERS", "OptaxAdapter", "OptaxRun", "build_transform", "recipe_for"]

RECIPE_FORMAT = "adamconf.optax-recipe/1"
CHECKPOINT_FORMAT = "adamconf.optax-checkpoint/2"  # npz bytes of adapters/_common.pack_arrays

_COMMON_FEATURES = ("state", "checkpoint", "config", "schedule", "eps_root",
                    "clipvalue", "global_clipnorm", "nonfinite")


# -- importing jax --------------------------------------------------------------------
def _jax():
    """Import jax and optax (lazily: this module must import without them)."""
    if "jax" not in sys.modules:
        # Read when JAX's GPU backend starts: unset, JAX reserves 75 % of the GPU's
        # memory up front and starves torch/TF cases in the same process.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    import optax

    return jax, optax


def _precision(dtype: str):
    """The scoped x64 state for a run of this dtype (see the module docstring)."""
    jax, _ = _jax()
    return jax.enable_x64(dtype == "float64")


def _numpy_dtype(dtype: str):
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {DTYPES}")
    return bfloat16_type() if dtype == "bfloat16" else np.dtype(dtype)  # ml_dtypes: installed with jax


def _jax_device(device: str):
    jax, _ = _jax()
    if device == "cpu":
        return jax.devices("cpu")[0]
    if device == "cuda":
        try:
            return jax.devices("gpu")[0]
        except RuntimeError as exc:
            raise Unsupported(
                f"device 'cuda': jax {jax.__version__} sees no GPU ({exc}). Install a CUDA build "
                "of jax (pip install -U 'jax[cuda12]') on a machine with an NVIDIA GPU."
            ) from None
    raise ValueError(f"device {device!r} is not one of ('cpu', 'cuda')")


def cuda_reason() -> str | None:
    """Why jax cannot run on an NVIDIA GPU here (None: it can)."""
    plugins = ("jax_plugins", "jax_cuda12_plugin", "jax_cuda13_plugin")
    if all(importlib.util.find_spec(m) is None for m in plugins):
        # Answered without importing jax: its CUDA support comes only from these plugins.
        return "jax has no CUDA plugin installed: pip install -U 'jax[cuda12]' on a machine with an NVIDIA GPU"
    try:
        _jax_device("cuda")
    except Unsupported as exc:
        return str(exc)
    return None


# -- the recipe: AdamConfig -> JSON description of optax calls -> transform ----------------
def _schedule_recipe(lr) -> Any:
    if isinstance(lr, PiecewiseConstant):
        # Keras convention: values[j+1] once k > boundaries[j]; join_schedules switches
        # when step >= boundary, hence boundary + 1.
        return {"fn": "join_schedules",
                "schedules": [{"fn": "constant_schedule", "value": float(v)} for v in lr.values],
                "boundaries": [int(b) + 1 for b in lr.boundaries]}
    if isinstance(lr, ExponentialDecay):
        return {"fn": "exponential_decay", "init_value": float(lr.initial),
                "transition_steps": int(lr.decay_steps), "decay_rate": float(lr.decay_rate),
                "staircase": bool(lr.staircase)}
    return float(lr)


def recipe_for(fn: str, config: AdamConfig) -> dict:
    """The optax calls that express ``config`` with ``optax.<fn>``; Unsupported if none does."""
    if config.clipnorm is not None:
        raise Unsupported(
            f"clipnorm={config.clipnorm}: optax has no per-tensor norm clip (clip_by_block_rms "
            "bounds the RMS, adaptive_grad_clip is relative to the parameter norm)")
    if config.decay:
        raise Unsupported(f"decay={config.decay}: optax has no legacy inverse-time lr decay")
    if config.amsgrad and fn != "amsgrad":
        raise Unsupported(f"amsgrad=True: optax.{fn} has no amsgrad argument (optax 0.2.8); "
                          "AMSGrad is optax.amsgrad, the optax.amsgrad adapter")
    if not config.amsgrad and fn == "amsgrad":
        raise Unsupported("amsgrad=False: optax.amsgrad always keeps the maximum; "
                          "plain Adam is the optax.adam adapter")
    wd, mode = config.weight_decay, config.weight_decay_mode
    if wd and mode == "decoupled" and fn != "adamw":
        raise Unsupported(f"decoupled weight decay (weight_decay={wd}) is optax.adamw; "
                          f"optax.{fn} has none")
    if wd and mode == "l2" and fn == "adamw":
        raise Unsupported(f"coupled L2 weight decay (weight_decay={wd}) is optax.adam with "
                          "add_decayed_weights; optax.adamw's decay is decoupled")

    chain: list[dict] = []
    if config.clipvalue is not None:
        chain.append({"fn": "clip", "max_delta": float(config.clipvalue)})
    if config.global_clipnorm is not None:
        chain.append({"fn": "clip_by_global_norm", "max_norm": float(config.global_clipnorm)})
    if wd and mode == "l2":
        chain.append({"fn": "add_decayed_weights", "weight_decay": float(wd)})
    adam = {"fn": fn, "learning_rate": _schedule_recipe(config.lr), "b1": float(config.beta1),
            "b2": float(config.beta2), "eps": float(config.eps), "eps_root": float(config.eps_root)}
    if fn == "adamw":
        adam["weight_decay"] = float(wd)
    chain.append(adam)
    return {"format": RECIPE_FORMAT, "chain": chain}


# The optax functions a recipe may call, with the exact argument names each takes:
# rebuild() runs only these (a recipe is data, never code).
_LINKS = {
    "clip": {"max_delta"},
    "clip_by_global_norm": {"max_norm"},
    "add_decayed_weights": {"weight_decay"},
    "adam": {"learning_rate", "b1", "b2", "eps", "eps_root"},
    "adamw": {"learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"},
    "amsgrad": {"learning_rate", "b1", "b2", "eps", "eps_root"},
}
_SCHEDULES = {
    "constant_schedule": {"value"},
    "exponential_decay": {"init_value", "transition_steps", "decay_rate", "staircase"},
    "join_schedules": {"schedules", "boundaries"},
}


def _call(table: dict, item: dict, where: str) -> tuple[str, dict]:
    if not isinstance(item, dict) or item.get("fn") not in table:
        raise ValueError(f"{where}: {item!r} is not one of the optax calls {sorted(table)}")
    kwargs = {k: v for k, v in item.items() if k != "fn"}
    if set(kwargs) != table[item["fn"]]:
        raise ValueError(f"{where}: optax.{item['fn']} takes exactly {sorted(table[item['fn']])}, "
                         f"the recipe gives {sorted(kwargs)}")
    return item["fn"], kwargs


def _build_schedule(item: Any):
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return float(item)
    _, optax = _jax()
    fn, kwargs = _call(_SCHEDULES, item, "learning_rate")
    if fn == "join_schedules":
        kwargs["schedules"] = [_build_schedule(s) for s in kwargs["schedules"]]
    return getattr(optax, fn)(**kwargs)


def build_transform(recipe: dict):
    """The optax GradientTransformation a recipe describes (whitelisted calls only)."""
    _, optax = _jax()
    if not isinstance(recipe, dict) or recipe.get("format") != RECIPE_FORMAT:
        raise ValueError(f"not an optax recipe of format {RECIPE_FORMAT!r}: "
                         f"{str(recipe)[:200]} (produce one with run.config())")
    links = []
    for position, item in enumerate(recipe.get("chain", ())):
        fn, kwargs = _call(_LINKS, item, f"recipe chain[{position}]")
        if "learning_rate" in kwargs:
            kwargs["learning_rate"] = _build_schedule(kwargs["learning_rate"])
        links.append(getattr(optax, fn)(**kwargs))
    if not links or recipe["chain"][-1]["fn"] not in ("adam", "adamw", "amsgrad"):
        raise ValueError("an optax recipe's chain must end with adam, adamw or amsgrad")
    return links[0] if len(links) == 1 else optax.chain(*links)


# -- the run ----------------------------------------------------------------------------
def _moments_state(state):
    """The ScaleByAdamState / ScaleByAmsgradState inside a (possibly chained) optax state."""
    if hasattr(state, "mu") and hasattr(state, "nu") and hasattr(state, "count"):
        return state
    if isinstance(state, tuple):
        for item in state:
            found = _moments_state(item)
            if found is not None:
                return found
    return None


_COMPILED: dict[str, tuple[Any, Any, Any]] = {}  # recipe (JSON) -> (transform, jitted step, jitted scan)
_COMPILED_LIMIT = 64


def _compiled(recipe: dict) -> tuple[Any, Any, Any]:
    """The transform of a recipe, its jitted update and the jitted scan of many updates, made once per recipe.

    jax.jit caches compilations per function object and argument shapes/dtypes (x64 included),
    so one function object per recipe lets every run of that configuration reuse them.
    """
    key = json.dumps(recipe, sort_keys=True)
    if key not in _COMPILED:
        jax, optax = _jax()
        tx = build_transform(recipe)

        def update(params, state, grads):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        def many(params, state, grads_seq):
            def body(carry, grads):
                new_params, new_state = update(*carry, grads)
                return (new_params, new_state), new_params

            (params, state), trail = jax.lax.scan(body, (params, state), grads_seq)
            return params, state, trail

        if len(_COMPILED) >= _COMPILED_LIMIT:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = (tx, jax.jit(update), jax.jit(many))
    return _COMPILED[key]


class OptaxRun:
    """One optax run: parameters, optimizer state, and the jitted update step (shared per recipe)."""

    def __init__(self, recipe: dict, params: Sequence[np.ndarray], dtype: str, device: str,
                 state_leaves: Sequence[np.ndarray] | None = None) -> None:
        self.recipe = recipe
        self.dtype = dtype
        self._np_dtype = _numpy_dtype(dtype)
        self._device = _jax_device(device)
        self._shapes = [tuple(np.shape(p)) for p in params]
        tx, self._update, self._many = _compiled(recipe)
        with _precision(dtype):
            self._params = [self._put(p) for p in params]
            self._state = tx.init(self._params)
            if state_leaves is not None:
                self._state = self._unflatten(state_leaves)

    def _put(self, a: np.ndarray):
        jax, _ = _jax()
        return jax.device_put(np.asarray(a, dtype=np.float64).astype(self._np_dtype), self._device)

    def _unflatten(self, leaves: Sequence[np.ndarray]):
        jax, _ = _jax()
        fresh, treedef = jax.tree.flatten(self._state)
        if len(fresh) != len(leaves):
            raise ValueError(f"checkpoint holds {len(leaves)} optimizer-state arrays, this optimizer "
                             f"has {len(fresh)}: it was saved from another configuration")
        restored = []
        for k, (want, got) in enumerate(zip(fresh, leaves)):
            if tuple(want.shape) != tuple(got.shape) or np.dtype(want.dtype) != got.dtype:
                raise ValueError(f"checkpoint state array {k} is {got.dtype}{list(got.shape)}, "
                                 f"this optimizer expects {want.dtype}{list(want.shape)}")
            restored.append(jax.device_put(got, self._device))
        return jax.tree.unflatten(treedef, restored)

    def step(self, grads) -> None:
        check_entries(grads, self._shapes)
        for k, g in enumerate(grads):
            if isinstance(g, SparseGrad):
                raise TypeError(f"gradient {k} is a SparseGrad: JAX has no sparse gradient type and "
                                "this adapter does not declare the 'sparse' feature")
        with _precision(self.dtype):
            self._params, self._state = self._update(self._params, self._state,
                                                     [self._put(g) for g in grads])

    def steps(self, rows) -> list[np.ndarray]:
        """Many steps in ``jax.lax.scan``s of 16^k steps: the parameters after each, stacked (the contract's
        ``steps``; a scan compiles once per length and recipe)."""
        for row in rows:
            check_entries(row, self._shapes)
            if any(isinstance(g, SparseGrad) for g in row):
                raise NotImplementedError("sparse entries are refused one step at a time")
        def single(row):
            self.step(row)
            return self.params()

        def chunk(part):
            with _precision(self.dtype):
                stacked = [self._put(np.stack([np.asarray(row[k], dtype=np.float64) for row in part]))
                           for k in range(len(self._shapes))]
                self._params, self._state, trail = self._many(self._params, self._state, stacked)
                return [exact_numpy(p) for p in trail]

        return steps_in_chunks(rows, single, chunk)

    def params(self) -> list[np.ndarray]:
        with _precision(self.dtype):
            return [exact_numpy(p) for p in self._params]

    def state(self) -> dict:
        with _precision(self.dtype):
            s = _moments_state(self._state)
            return {"step": int(s.count),
                    "m": [exact_numpy(x) for x in s.mu],
                    "v": [exact_numpy(x) for x in s.nu],
                    "vmax": [exact_numpy(x) for x in s.nu_max] if hasattr(s, "nu_max") else None}

    def config(self) -> str:
        return json.dumps(self.recipe, sort_keys=True)

    def save(self) -> bytes:
        """Parameters and every optimizer-state leaf, bit for bit, as npz (no pickle)."""
        jax, _ = _jax()
        with _precision(self.dtype):
            arrays = {**params_arrays([np.array(p) for p in self._params], prefix="param"),
                      **params_arrays([np.array(x) for x in jax.tree.leaves(self._state)], prefix="state")}
        return pack_arrays(arrays, meta={"format": CHECKPOINT_FORMAT, "recipe": self.recipe, "dtype": self.dtype})


def _load_checkpoint(blob: bytes) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    arrays, manifest = unpack_arrays(blob)
    if manifest.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not an optax checkpoint of format {CHECKPOINT_FORMAT!r} "
                         f"(got {manifest.get('format')!r}); save one with run.save()")
    return manifest, read_params(arrays, prefix="param"), read_params(arrays, prefix="state")


# -- the adapters -----------------------------------------------------------------------
class OptaxAdapter(BaseAdapter):
    """``optax.<fn>`` (adam, adamw or amsgrad) with optax's clipping and schedules."""

    dialect = "optax"
    dtypes = DTYPES
    devices = ("cpu", "cuda")
    requires = ("jax", "optax")

    def __init__(self, fn: str, extra_features: Sequence[str], description: str) -> None:
        self.fn = fn
        self.name = f"optax.{fn}"
        self.features = frozenset(_COMMON_FEATURES) | frozenset(extra_features)
        self.description = description
        # optax.adam's surface (suites/test_api_optax.py); adamw and amsgrad are other factories
        self.api_profile = "optax" if fn == "adam" else None

    def api_object(self):
        """The optax factory (``optax.adam``) whose public surface the ``api_profile`` suite checks."""
        import optax

        return getattr(optax, self.fn)

    def available(self, device: str | None = None) -> str | None:
        """None if usable (on ``device``, or on the CPU when none is named); else why not."""
        missing = [m for m in ("jax", "optax") if importlib.util.find_spec(m) is None]
        if missing:
            return f"{' and '.join(missing)} not installed: pip install 'adamconf[jax]'"
        if device is None or device == "cpu":
            return None
        if device not in self.devices:
            return f"{self.name} runs on {list(self.devices)}, not on {device!r}"
        return cuda_reason()

    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str,
              device: str) -> OptaxRun:
        return OptaxRun(recipe_for(self.fn, config), params, dtype, device)

    def restore(self, config: AdamConfig, blob: bytes, *, dtype: str, device: str) -> OptaxRun:
        manifest, params, state = _load_checkpoint(blob)
        recipe = recipe_for(self.fn, config)
        if manifest["recipe"] != recipe:
            raise ValueError(f"the checkpoint was saved with the optax recipe {manifest['recipe']}, "
                             f"the config asks for {recipe}")
        if manifest["dtype"] != dtype:
            raise ValueError(f"the checkpoint holds a {manifest['dtype']} run, restore asked for {dtype}")
        return OptaxRun(recipe, params, dtype, device, state_leaves=state)

    def rebuild(self, config_text: str, params: Sequence[np.ndarray], *, dtype: str,
                device: str) -> OptaxRun:
        return OptaxRun(json.loads(config_text), params, dtype, device)


ADAPTERS = [
    OptaxAdapter("adam", ("weight_decay",),
                 "optax.adam (jit); coupled L2 via add_decayed_weights"),
    OptaxAdapter("adamw", ("decoupled_weight_decay",),
                 "optax.adamw (jit): decoupled weight decay"),
    OptaxAdapter("amsgrad", ("amsgrad", "weight_decay"),
                 "optax.amsgrad (jit): max of the bias-corrected v; runs amsgrad=True only"),
]
