"""API profile "optax": the ``optax.adam`` factory and the GradientTransformation it returns.

Read in optax 0.2.8's optax/_src/alias.py (``adam`` = ``chain(scale_by_adam(...),
scale_by_learning_rate(lr))``), optax/_src/transform.py (``scale_by_adam``,
``ScaleByAdamState``), optax/_src/numerics.py (``safe_increment``),
optax/_src/update.py (``apply_updates``) and optax/schedules/_inject.py
(``inject_hyperparams``), and observed with jax on the CPU, float32. Pure
functions: every check compares two computations bitwise, except the
closed-loop one, which uses the error budget against the exact reference.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

from adamconf.reference.config import AdamConfig
from adamconf.suites.api_profiles import assert_follows_reference, parametrize_profile

PROFILE = "optax"
pytest_generate_tests = parametrize_profile(PROFILE)

LR, B1, B2 = 2.0 ** -6, 0.875, 1 - 2.0 ** -10  # 1 - beta and lr exact in float32
DEFAULTS = {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0, "mu_dtype": None, "nesterov": False}


@pytest.fixture
def adam(adamconf_api):
    return adamconf_api.api()


@pytest.fixture
def optax(adamconf_api):
    return importlib.import_module("optax")


@pytest.fixture
def jnp(adamconf_api):
    return importlib.import_module("jax.numpy")


def _params(jnp):
    return {"a": jnp.array([1.0, 2.0], jnp.float32), "b": jnp.array([[3.0]], jnp.float32)}


def _grads(jnp, scale=1.0):
    return {"a": jnp.array([0.5, -1.5], jnp.float32) * scale, "b": jnp.array([[3.0]], jnp.float32) * scale}


def _bits(tree) -> list[bytes]:
    return [np.asarray(tree[k]).tobytes() for k in sorted(tree)]


def _run(tx, params, grads_list):
    """Updates and state after feeding each gradient tree in turn (params are not moved)."""
    state = tx.init(params)
    updates = None
    for grads in grads_list:
        updates, state = tx.update(grads, state, params)
    return updates, state


# -- the factory and the transformation ---------------------------------------------------------------
def test_signature_and_defaults(adamconf_api, adam):
    sig = inspect.signature(adam).parameters
    got = {k: sig[k].default if k in sig else "(missing)" for k in DEFAULTS}
    assert got == DEFAULTS, f"{adamconf_api.name}: defaults: expected {DEFAULTS}, got {got}"
    assert sig["learning_rate"].default is inspect.Parameter.empty, \
        f"{adamconf_api.name}: learning_rate has a default ({sig['learning_rate'].default}); optax requires it"
    assert sig["nesterov"].kind is inspect.Parameter.KEYWORD_ONLY, f"{adamconf_api.name}: nesterov is positional"
    with pytest.raises(TypeError):
        adam()


def test_returns_a_gradient_transformation(adamconf_api, adam, optax, jnp):
    tx = adam(LR)
    assert isinstance(tx, optax.GradientTransformation) and callable(tx.init) and callable(tx.update), \
        f"{adamconf_api.name}: adam(lr) returned {type(tx).__name__}, not a GradientTransformation with init/update"
    init, update = tx  # a NamedTuple: (init, update)
    params = _params(jnp)
    with_params, _ = update(_grads(jnp), init(params), params)
    without, _ = update(_grads(jnp), init(params))  # adam does not read params: they are optional
    assert _bits(with_params) == _bits(without), f"{adamconf_api.name}: update with and without params differ"


def test_state_structure(adamconf_api, adam, optax, jnp):
    params = _params(jnp)
    state = adam(LR).init(params)
    assert isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], optax.ScaleByAdamState) \
        and isinstance(state[1], optax.EmptyState), \
        f"{adamconf_api.name}: adam(lr).init(params): expected (ScaleByAdamState, EmptyState), got {state!r}"
    adam_state = state[0]
    assert adam_state._fields == ("count", "mu", "nu"), f"{adamconf_api.name}: fields {adam_state._fields}"
    assert adam_state.count.dtype == jnp.int32 and adam_state.count.shape == () and int(adam_state.count) == 0, \
        f"{adamconf_api.name}: count: expected an int32 scalar 0, got {adam_state.count!r}"
    for name in ("mu", "nu"):
        tree = getattr(adam_state, name)
        ok = set(tree) == set(params) and all(
            tree[k].shape == params[k].shape and tree[k].dtype == params[k].dtype and not tree[k].any()
            for k in params)
        assert ok, f"{adamconf_api.name}: {name} should be zeros shaped like the params: {tree}"


def test_count_increments_and_saturates(adamconf_api, adam, optax, jnp):
    params = _params(jnp)
    tx = adam(LR)
    _, state = _run(tx, params, [_grads(jnp)] * 3)
    assert int(state[0].count) == 3, f"{adamconf_api.name}: count after 3 updates: {int(state[0].count)}"
    top = jnp.iinfo(jnp.int32).max
    state = (state[0]._replace(count=jnp.asarray(top, jnp.int32)), state[1])
    _, state = tx.update(_grads(jnp), state, params)
    # numerics.safe_increment: the int32 counter stays at its maximum instead of wrapping
    assert int(state[0].count) == top, f"{adamconf_api.name}: count at int32 max {top} became " \
                                       f"{int(state[0].count)} (expected to saturate)"


def test_apply_updates(adamconf_api, adam, optax, jnp):
    params = _params(jnp)
    updates, _ = _run(adam(LR), params, [_grads(jnp)])
    new = optax.apply_updates(params, updates)
    want = {k: params[k] + updates[k] for k in params}
    assert set(new) == set(params) and _bits(new) == _bits(want), \
        f"{adamconf_api.name}: apply_updates(params, updates) {new} is not params + updates {want}"
    # the first Adam update moves each element by about lr against the gradient's sign
    moved = np.sign(np.asarray(new["a"]) - np.asarray(params["a"]))
    assert moved.tolist() == [-1.0, 1.0], f"{adamconf_api.name}: the first update moved a by {moved}"
    low = {k: v.astype(jnp.bfloat16) for k, v in params.items()}
    assert all(v.dtype == jnp.bfloat16 for v in optax.apply_updates(low, updates).values()), \
        f"{adamconf_api.name}: apply_updates did not keep the parameters' dtype (bfloat16)"


def test_inject_hyperparams_exposes_the_learning_rate(adamconf_api, adam, optax, jnp):
    params = _params(jnp)
    tx = optax.inject_hyperparams(adam)(learning_rate=0.5, b1=B1, b2=B2)
    state = tx.init(params)
    assert "learning_rate" in state.hyperparams and float(state.hyperparams["learning_rate"]) == 0.5, \
        f"{adamconf_api.name}: inject_hyperparams(adam) hyperparams: {state.hyperparams}"
    state.hyperparams["learning_rate"] = jnp.asarray(LR)
    injected, _ = tx.update(_grads(jnp), state, params)
    plain, _ = _run(adam(LR, b1=B1, b2=B2), params, [_grads(jnp)])
    assert _bits(injected) == _bits(plain), f"{adamconf_api.name}: after setting the injected learning_rate to " \
                                            f"{LR} the update {injected} differs from adam({LR})'s {plain}"


def test_inject_hyperparams_holds_the_betas_in_float32(adamconf_api, adam, optax, jnp):
    # The injected hyperparameters are float32 arrays, so 1 - b2 is formed in float32 and
    # agrees with the bias correction 1 - b2^t; adam(lr) with Python floats forms 1 - b2 in
    # double (then float32): at b2 = 0.999 the two differ by 1.3e-5 in 1 - b2, i.e. about
    # 6e-6 relative in the first update. A silent change of either is caught here.
    params = _params(jnp)
    tx = optax.inject_hyperparams(adam)(learning_rate=LR)
    state = tx.init(params)
    dtypes = {k: str(v.dtype) for k, v in state.hyperparams.items()}
    assert set(dtypes.values()) == {"float32"}, f"{adamconf_api.name}: injected hyperparameter dtypes {dtypes}"
    injected, _ = tx.update(_grads(jnp), state, params)
    plain, _ = _run(adam(LR), params, [_grads(jnp)])
    assert _bits(injected) != _bits(plain), \
        f"{adamconf_api.name}: inject_hyperparams(adam) now matches adam bitwise at b2 = 0.999 ({injected}): " \
        "1 - b2 is no longer formed differently; update this test and docs/semantics.md"


def test_schedule_gets_count_before_the_increment(adamconf_api, adam, optax, jnp):
    schedule = optax.exponential_decay(0.01, transition_steps=1, decay_rate=0.5)
    params = _params(jnp)
    tx = adam(schedule)
    state = tx.init(params)
    assert isinstance(state[1], optax.ScaleByScheduleState), \
        f"{adamconf_api.name}: with a schedule the second state should be ScaleByScheduleState: {state[1]!r}"
    grads = [_grads(jnp, 1.0 + k) for k in range(3)]
    for k in range(3):
        scheduled, _ = _run(tx, params, grads[:k + 1])
        constant, _ = _run(adam(float(schedule(k))), params, grads[:k + 1])
        assert _bits(scheduled) == _bits(constant), \
            f"{adamconf_api.name}: update {k + 1} with a schedule differs from a constant lr = schedule({k})"


def test_nesterov_exists_and_differs(adamconf_api, adam, optax, jnp):
    params = _params(jnp)
    grads = [_grads(jnp, 1.0 + k) for k in range(2)]
    plain, _ = _run(adam(LR), params, grads)
    nesterov, _ = _run(adam(LR, nesterov=True), params, grads)
    assert _bits(plain) != _bits(nesterov), f"{adamconf_api.name}: nesterov=True gave the plain Adam update"
    assert all(np.array_equal(np.sign(plain[k]), np.sign(nesterov[k])) for k in plain), \
        f"{adamconf_api.name}: nesterov=True changed the direction: {nesterov} vs {plain}"
    nadam, _ = _run(optax.nadam(LR), params, grads)
    assert _bits(nadam) == _bits(nesterov), f"{adamconf_api.name}: optax.nadam is not adam(nesterov=True)"


def test_mu_dtype_is_honoured(adamconf_api, adam, optax, jnp):
    params = _params(jnp)
    tx = adam(LR, mu_dtype=jnp.bfloat16)
    _, state = _run(tx, params, [_grads(jnp)] * 2)
    mu_types = {str(v.dtype) for v in state[0].mu.values()}
    nu_types = {str(v.dtype) for v in state[0].nu.values()}
    # mu_dtype applies to the first moment only; nu keeps the parameters' dtype
    assert mu_types == {"bfloat16"} and nu_types == {"float32"}, \
        f"{adamconf_api.name}: mu_dtype=bfloat16: mu dtypes {mu_types}, nu dtypes {nu_types}"


def test_update_follows_the_reference(adamconf_api, adam, optax, jnp):
    """Closed loop: 5 steps of jax.grad + update + apply_updates on 0.5*||x||^2, replayed open loop."""
    jax = importlib.import_module("jax")
    lr, steps = 0.01, 5
    x = jnp.array([1.0, -2.0, 0.5, 0.25], jnp.float32)
    tx = adam(lr)
    state = tx.init(x)
    theta, grads = [np.asarray(x)], []
    for _ in range(steps):
        g = jax.grad(lambda p: 0.5 * jnp.sum(p * p))(x)
        grads.append([np.asarray(g, np.float64)])
        updates, state = tx.update(g, state, x)
        x = optax.apply_updates(x, updates)
        theta.append(np.asarray(x))
    config = AdamConfig(lr=lr, beta1=DEFAULTS["b1"], beta2=DEFAULTS["b2"], eps=DEFAULTS["eps"])
    assert_follows_reference(adamconf_api, config, [np.stack(theta)], grads, "float32",
                             path="update + apply_updates")
