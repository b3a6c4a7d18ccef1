"""The built-in PyTorch adapters against the mpmath reference, and their exact round trips.

Real torch on the CPU, small problems: float64 runs must follow the exact
trajectory to about 1e-14 of each update; checkpoint and config round trips
must continue bitwise; CUDA paths must say why they cannot run here.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from adamconf.adapters.contract import DTYPES, FEATURES, Unsupported  # noqa: E402
from adamconf.adapters.registry import builtin_adapters  # noqa: E402
from adamconf.adapters.torch_adapters import ADAPTERS  # noqa: E402
from adamconf.reference.adam import trajectory  # noqa: E402
from adamconf.reference.config import AdamConfig, ExponentialDecay, PiecewiseConstant  # noqa: E402
from adamconf.reference.grads import SparseGrad  # noqa: E402

BY_NAME = {a.name: a for a in ADAPTERS}
DENSE_EAGER = [a.name for a in ADAPTERS
               if a.path.optimizer != "SparseAdam" and not a.path.compiled and a.available("cpu") is None]
SHAPES = [(7,), (3, 4), ()]
STEPS = 6

# Measured on torch 2.13 CPU (x86-64): at most 7.4e-15 of the step's largest update
# for the eager paths. The bound leaves room for another CPU's vector width.
FLOAT64_UPDATE_TOL = 5e-14

CONFIGS = {
    "defaults": AdamConfig(),
    "amsgrad": AdamConfig(lr=3e-3, beta1=0.8, beta2=0.99, amsgrad=True),
    "l2": AdamConfig(lr=2e-3, weight_decay=0.5),
    "decoupled": AdamConfig(lr=2e-3, weight_decay=0.5, weight_decay_mode="decoupled"),
    "exp-schedule": AdamConfig(lr=ExponentialDecay(1e-2, 3, 0.5)),
    "piecewise": AdamConfig(lr=PiecewiseConstant((1, 3), (1e-2, 3e-3, 1e-3))),
    "clip-fired": AdamConfig(clipvalue=1.5, clipnorm=2.0, global_clipnorm=2.5),
    "clip-idle": AdamConfig(clipvalue=100.0, clipnorm=100.0, global_clipnorm=100.0),
}


def _problem(seed: int = 0, shapes=SHAPES, steps: int = STEPS):
    """Small |theta| (1e-3) so that theta's own rounding does not hide the update's error."""
    rng = np.random.default_rng(seed)
    params0 = [1e-3 * rng.standard_normal(s) for s in shapes]
    scales = [1.0, 3.0, 0.2, 1e-3, 1.0, 5.0, 0.5, 2.0]  # some steps shrink v, so amsgrad's max matters
    grads = [[scales[t % len(scales)] * rng.standard_normal(s) for s in shapes] for t in range(steps)]
    return params0, grads


def _run(adapter, config, params0, grads, *, dtype="float64"):
    run = adapter.start(config, params0, dtype=dtype, device="cpu")
    history = [run.params()]
    for g in grads:
        run.step(g)
        history.append(run.params())
    return run, [np.stack([h[k] for h in history]).astype(np.float64) for k in range(len(params0))]


def _worst_update_error(theta, ref) -> float:
    """max over steps and tensors of |du - du_ref| / max|du_ref| (the step's largest update)."""
    worst = 0.0
    for k, th in enumerate(theta):
        if th[0].size == 0:
            continue
        du = np.diff(th, axis=0).reshape(len(th) - 1, -1)
        dref = (np.diff(ref.theta[k], axis=0) + np.diff(ref.theta_lo[k], axis=0)).reshape(len(th) - 1, -1)
        scale = np.abs(dref).max(axis=1, keepdims=True)
        diff = np.abs(du - dref)
        # a step with no exact update (an empty sparse gradient) must not move at all
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff > 0, np.inf, 0.0))
        worst = max(worst, float(rel.max()))
    return worst


def _relative(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return 0.0 if a.size == 0 else float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _applicable(adapter, config) -> bool:
    return not (config.features() - set(adapter.features))


# -- declarations ------------------------------------------------------------------------------

def test_declarations():
    expected = {f"torch.{o}{p}" for o in ("adam", "adamw") for p in ("", ".foreach", ".fused", ".capturable")}
    assert set(BY_NAME) == expected | {"torch.sparse_adam", "torch.adam.compiled", "torch.adam.amp",
                                       "torch.adam.fused.amp"}
    registry = builtin_adapters()
    for a in ADAPTERS:
        assert registry[a.name] is a
        assert set(a.dtypes) <= set(DTYPES) and set(a.devices) <= {"cpu", "cuda"}
        assert set(a.features) <= set(FEATURES), set(a.features) - set(FEATURES)
        assert "lr_decay" not in a.features and "eps_root" not in a.features
        assert a.dialect == {"torch.sparse_adam": "pytorch-sparse", "torch.adam.amp": "pytorch-amp",
                             "torch.adam.fused.amp": "pytorch-amp"}.get(a.name, "pytorch")
    assert BY_NAME["torch.adam.capturable"].devices == ("cuda",)  # torch 2.13 asserts on CPU tensors
    assert "weight_decay" in BY_NAME["torch.adam"].features
    assert "decoupled_weight_decay" not in BY_NAME["torch.adam"].features
    assert "decoupled_weight_decay" in BY_NAME["torch.adamw"].features
    assert "weight_decay" not in BY_NAME["torch.adamw"].features
    assert {"sparse", "state", "checkpoint", "config"} <= set(BY_NAME["torch.sparse_adam"].features)
    assert "amsgrad" not in BY_NAME["torch.sparse_adam"].features


# -- numerics against the reference ----------------------------------------------------------------

DENSE_CASES = [(n, c) for n in DENSE_EAGER for c in CONFIGS if _applicable(BY_NAME[n], CONFIGS[c])]


@pytest.mark.parametrize("name,config_name", DENSE_CASES)
def test_float64_matches_reference(name, config_name):
    adapter, config = BY_NAME[name], CONFIGS[config_name]
    params0, grads = _problem()
    run, theta = _run(adapter, config, params0, grads)
    ref = trajectory(config, adapter.dialect, params0, grads)
    assert _worst_update_error(theta, ref) < FLOAT64_UPDATE_TOL
    state = run.state()
    assert state["step"] == STEPS
    for k in range(len(SHAPES)):
        assert _relative(state["m"][k], ref.m[k][-1]) < FLOAT64_UPDATE_TOL
        assert _relative(state["v"][k], ref.v[k][-1]) < FLOAT64_UPDATE_TOL
        if config.amsgrad:
            assert _relative(state["vmax"][k], ref.vmax[k][-1]) < FLOAT64_UPDATE_TOL
    assert (state["vmax"] is None) == (not config.amsgrad)


def test_clipping_separates_torch_from_exact_dialect():
    """The fired clip case really exercises the +1e-6: the exact-clip golden is far off."""
    adapter, config = BY_NAME["torch.adam"], CONFIGS["clip-fired"]
    params0, grads = _problem()
    _, theta = _run(adapter, config, params0, grads)
    exact = trajectory(config, "kingma", params0, grads)
    assert _worst_update_error(theta, exact) > 100 * FLOAT64_UPDATE_TOL


def _sparse_problem():
    rng = np.random.default_rng(3)
    shapes = [(6, 3), (5,)]
    params0 = [1e-3 * rng.standard_normal(s) for s in shapes]
    steps = [
        # repeated index 1 (summed by torch), rows 0, 3, 5 untouched
        [SparseGrad(np.array([1, 4, 1, 2]), rng.standard_normal((4, 3)), (6, 3)), rng.standard_normal(5)],
        # an empty gradient: no row moves, but the step counter still advances
        [SparseGrad(np.array([], dtype=np.int64), np.zeros((0, 3)), (6, 3)),
         SparseGrad(np.array([0, 0, 0]), rng.standard_normal(3), (5,))],
        [SparseGrad(np.array([2, 2, 4]), 1e-3 * rng.standard_normal((3, 3)), (6, 3)),
         SparseGrad(np.array([3, 1]), rng.standard_normal(2), (5,))],
        [SparseGrad(np.array([4, 1]), rng.standard_normal((2, 3)), (6, 3)), rng.standard_normal(5)],
    ]
    return params0, steps


@pytest.mark.parametrize("config_name", ["defaults", "exp-schedule"])
def test_sparse_adam_matches_reference(config_name):
    adapter, config = BY_NAME["torch.sparse_adam"], CONFIGS[config_name]
    params0, grads = _sparse_problem()
    run, theta = _run(adapter, config, params0, grads)
    ref = trajectory(config, "pytorch-sparse", params0, grads)
    assert _worst_update_error(theta, ref) < FLOAT64_UPDATE_TOL
    untouched = [0, 3, 5]
    assert np.array_equal(theta[0][-1][untouched], params0[0][untouched])  # lazy rows: bitwise unchanged
    state = run.state()
    assert state["step"] == len(grads) and state["vmax"] is None
    assert not state["m"][0][untouched].any() and not state["v"][0][untouched].any()
    for k in range(2):
        assert _relative(state["m"][k], ref.m[k][-1]) < FLOAT64_UPDATE_TOL
        assert _relative(state["v"][k], ref.v[k][-1]) < FLOAT64_UPDATE_TOL


def test_compiled_step_matches_reference_within_float32_bias_corrections():
    """torch.compile'd Adam computes bc1, bc2 from the float32 step tensor: ~1e-5 off in float64.

    Measured: 6.6e-6 at step 1 (float32(0.999) in 1 - beta2), 1.0e-5 at most. The
    0-d parameter is left out: torch 2.13 drops in-place updates of 0-d float64
    CPU tensors under AOTAutograd (see the adapter module's report), so the
    compiled run leaves a scalar float64 parameter and its m, v untouched.
    """
    adapter = BY_NAME["torch.adam.compiled"]
    reason = adapter.available("cpu")
    if reason is not None:
        pytest.skip(reason)
    config = AdamConfig(lr=ExponentialDecay(1e-2, 3, 0.5), amsgrad=True)
    params0, grads = _problem(shapes=[(7,), (3, 4)], steps=4)
    run, theta = _run(adapter, config, params0, grads[:2])
    blob = run.save()
    for g in grads[2:]:
        run.step(g)
        theta = [np.concatenate([th, p[None]]) for th, p in zip(theta, run.params())]
    ref = trajectory(config, adapter.dialect, params0, grads)
    err = _worst_update_error(theta, ref)
    assert 1e-7 < err < 2e-5, err
    restored = adapter.restore(config, blob, dtype="float64", device="cpu")
    for g in grads[2:]:
        restored.step(g)
    _assert_bitwise(restored.params(), run.params())


# -- exact round trips -------------------------------------------------------------------------------

ROUND_TRIP = AdamConfig(lr=PiecewiseConstant((2,), (1e-2, 2e-3)), amsgrad=True, weight_decay=0.25,
                        clipnorm=2.0, global_clipnorm=3.0, clipvalue=1.5)


def _round_trip_config(adapter) -> AdamConfig:
    if adapter.path.optimizer == "SparseAdam":
        return AdamConfig(lr=PiecewiseConstant((2,), (1e-2, 2e-3)), beta1=0.8)
    return dataclasses.replace(ROUND_TRIP, weight_decay_mode="decoupled" if adapter.path.decoupled else "l2")


def _round_trip_problem(adapter, dtype: str = "float64"):
    """The problem with every value rounded to ``dtype`` (numpy has float16, not bfloat16)."""
    params0, grads = _sparse_problem() if adapter.path.optimizer == "SparseAdam" else _problem(seed=7)

    def exact(x):
        return np.asarray(x).astype(dtype).astype(np.float64)

    def entry(g):
        return SparseGrad(g.indices, exact(g.values), g.dense_shape) if isinstance(g, SparseGrad) else exact(g)

    return [exact(p) for p in params0], [[entry(g) for g in step] for step in grads]


def _assert_bitwise(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


ROUND_TRIP_ADAPTERS = [n for n in DENSE_EAGER if "checkpoint" in BY_NAME[n].features] + ["torch.sparse_adam"]
ROUND_TRIP_DTYPES = ["float64", "float16"]


@pytest.mark.parametrize("dtype", ROUND_TRIP_DTYPES)
@pytest.mark.parametrize("name", ROUND_TRIP_ADAPTERS)
def test_checkpoint_continues_bitwise(name, dtype):
    adapter = BY_NAME[name]
    config = _round_trip_config(adapter)
    params0, grads = _round_trip_problem(adapter, dtype)
    run = adapter.start(config, params0, dtype=dtype, device="cpu")
    half = len(grads) // 2
    for g in grads[:half]:
        run.step(g)
    blob = run.save()
    assert isinstance(blob, bytes)
    restored = adapter.restore(config, blob, dtype=dtype, device="cpu")
    _assert_bitwise(restored.params(), run.params())
    for g in grads[half:]:
        run.step(g)
        restored.step(g)
    _assert_bitwise(restored.params(), run.params())
    a, b = run.state(), restored.state()
    assert a["step"] == b["step"] == len(grads)
    for key in ("m", "v", "vmax"):
        if a[key] is not None:
            _assert_bitwise(b[key], a[key])


@pytest.mark.parametrize("name", ROUND_TRIP_ADAPTERS)
def test_config_rebuild_is_bitwise(name):
    adapter = BY_NAME[name]
    config = _round_trip_config(adapter)
    params0, grads = _round_trip_problem(adapter)
    run = adapter.start(config, params0, dtype="float64", device="cpu")
    text = run.config()
    doc = json.loads(text)
    assert doc["optimizer"] == f"torch.optim.{adapter.path.optimizer}"
    assert doc["param_group"]["betas"] == [config.beta1, config.beta2]
    rebuilt = adapter.rebuild(text, params0, dtype="float64", device="cpu")
    assert json.loads(rebuilt.config()) == doc
    for g in grads:
        run.step(g)
        rebuilt.step(g)
    _assert_bitwise(rebuilt.params(), run.params())


def test_rebuild_refuses_another_paths_config():
    params0, _ = _problem()
    text = BY_NAME["torch.adam"].start(AdamConfig(), params0, dtype="float64", device="cpu").config()
    with pytest.raises(ValueError, match="foreach"):
        BY_NAME["torch.adam.fused"].rebuild(text, params0, dtype="float64", device="cpu")
    with pytest.raises(ValueError, match="torch.optim.Adam"):
        BY_NAME["torch.adamw"].rebuild(text, params0, dtype="float64", device="cpu")


def test_restore_refuses_another_dtype():
    params0, grads = _problem()
    adapter = BY_NAME["torch.adam"]
    run = adapter.start(AdamConfig(), params0, dtype="float64", device="cpu")
    run.step(grads[0])
    with pytest.raises(ValueError, match="float64"):
        adapter.restore(AdamConfig(), run.save(), dtype="float32", device="cpu")


# -- dtypes, refusals, CUDA -------------------------------------------------------------------------

NUMPY_DTYPE = {"float16": np.float16, "bfloat16": np.float32, "float32": np.float32, "float64": np.float64}


@pytest.mark.parametrize("name", DENSE_EAGER + ["torch.sparse_adam"])
def test_every_declared_dtype_runs(name):
    adapter = BY_NAME[name]
    for dtype in adapter.dtypes:
        run = adapter.start(AdamConfig(lr=2.0**-6), [np.array([0.5, -0.25, 1.0])], dtype=dtype, device="cpu")
        run.step([np.array([1.0, -2.0, 0.5])])
        (out,) = run.params()
        assert out.dtype == NUMPY_DTYPE[dtype] and out.shape == (3,)
        assert np.all(out != np.array([0.5, -0.25, 1.0])) and np.all(np.isfinite(out))


REFUSED = [
    ("torch.adam", AdamConfig(weight_decay=0.1, weight_decay_mode="decoupled"), "decoupled_weight_decay"),
    ("torch.adamw", AdamConfig(weight_decay=0.1), "'weight_decay'"),
    ("torch.adam", AdamConfig(eps_root=1e-8), "eps_root"),
    ("torch.adam.fused", AdamConfig(decay=1e-3), "decay"),
    ("torch.sparse_adam", AdamConfig(amsgrad=True), "amsgrad"),
    ("torch.sparse_adam", AdamConfig(clipnorm=1.0), "clipnorm"),
]


@pytest.mark.parametrize("name,config,word", REFUSED)
def test_unsupported_configs_are_refused(name, config, word):
    with pytest.raises(Unsupported, match=word):
        BY_NAME[name].start(config, [np.zeros(3)], dtype="float64", device="cpu")


def test_dense_adam_refuses_sparse_gradients():
    run = BY_NAME["torch.adam"].start(AdamConfig(), [np.zeros((3, 2))], dtype="float64", device="cpu")
    with pytest.raises(Unsupported, match="sparse_adam"):
        run.step([SparseGrad(np.array([1]), np.ones((1, 2)), (3, 2))])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("name", sorted(n for n, a in BY_NAME.items() if "cuda" in a.devices))
def test_cuda_cases_say_why_they_cannot_run(name):
    adapter = BY_NAME[name]
    reason = adapter.available("cuda")
    assert reason is not None and reason.startswith("no CUDA device")
    with pytest.raises(Unsupported, match="no CUDA device"):
        adapter.start(AdamConfig(), [np.zeros(3)], dtype="float32", device="cuda")
    if adapter.devices == ("cuda",):
        assert adapter.available() == reason
    else:
        assert adapter.available("cpu") is None or adapter.path.compiled


# -- GradScaler: a step with a non-finite gradient is skipped (Dialect.nonfinite = "skip") ----------------

@pytest.mark.parametrize("name", ["torch.adam.amp", "torch.adam.fused.amp"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_grad_scaler_skips_a_non_finite_step_and_does_not_count_it(name, value):
    """Through torch.amp.GradScaler the step with one non-finite entry leaves theta, m, v and the step count
    alone, and the run then continues as the reference under nonfinite="skip" (in float64, within the same
    tolerance as the plain paths); the plain optimizer lets it through."""
    from adamconf.reference.dialect import PRESETS

    params0, grads = _problem(seed=5)
    grads[2][0] = grads[2][0].copy()
    grads[2][0].flat[1] = value
    config = CONFIGS["defaults"]
    run = BY_NAME[name].start(config, params0, dtype="float64", device="cpu")
    thetas = [run.params()]
    for t, g in enumerate(grads, start=1):
        before = run.state()
        run.step(g)
        thetas.append(run.params())
        if t == 3:
            after = run.state()
            assert after["step"] == before["step"] == 2
            for k in range(len(params0)):
                assert np.array_equal(thetas[-1][k], thetas[-2][k])
                assert np.array_equal(after["m"][k], before["m"][k]) and np.array_equal(after["v"][k], before["v"][k])
    assert run.state()["step"] == STEPS - 1
    ref = trajectory(config, PRESETS["pytorch-amp"], params0, grads)
    assert _worst_update_error([np.stack([th[k] for th in thetas]) for k in range(len(params0))], ref) \
        < FLOAT64_UPDATE_TOL
    plain = BY_NAME["torch.adam"].start(config, params0, dtype="float64", device="cpu")
    for g in grads[:3]:
        plain.step(g)
    assert np.isnan(plain.params()[0]).any()
