"""The contract's optional many-step call (``run.steps``): the driver uses it, checks it, and falls back.

A run that offers ``steps`` must produce, step for step, what ``step`` then ``params`` would
have; the driver calls it only between the steps where it must look at the run (state, a
round trip), checks its arrays as it checks ``params()``, and steps one by one where the run
cannot batch. The framework runs that implement it (a ``jax.lax.scan``, a ``tf.function``
loop) are checked here against their own single steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from adamconf.adapters.bridge import BridgedAdapter
from adamconf.adapters.driver import AdapterContractError, drive
from adamconf.golden.scenarios import get
from adamconf.reference import AdamConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs" / "examples"))
from numpy_adapter import NumpyAdam  # noqa: E402  (the documented third-party example)


def _bitwise(a, b) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in zip(a, b))


class _Batching(NumpyAdam):
    """The numpy example with a ``steps`` that records how it was called; ``bad`` breaks its contract."""

    def __init__(self, bad: str = "", refuse: bool = False) -> None:
        super().__init__()
        self.name = "test.batching"
        self.calls: list[int] = []
        self.refusals = 0
        self.bad = bad
        self.refuse = refuse

    def start(self, config, params, *, dtype, device):
        run = super().start(config, params, dtype=dtype, device=device)
        outer = self

        class Run(type(run)):
            def steps(self, rows):
                if outer.refuse:
                    outer.refusals += 1
                    raise NotImplementedError("these rows one by one")
                outer.calls.append(len(rows))
                trail = []
                for row in rows:
                    self.step(row)
                    trail.append(self.params())
                out = [np.stack([t[k] for t in trail]) for k in range(len(trail[0]))]
                if outer.bad == "shape":
                    out[0] = out[0][:-1]
                if outer.bad == "dtype":
                    out[0] = out[0].astype(np.float64) + 1e-9  # not float32 numbers any more
                if outer.bad == "writes":  # an in-place clip of one gradient of the segment's fifth row
                    rows[4][1] *= 0.5
                return out

        run.__class__ = Run
        return run


def _golden_inputs(name: str):
    from adamconf.golden.store import load_golden
    from adamconf.reference.dialect import resolve_dialect

    s = get(name)
    g = load_golden(s, resolve_dialect("pytorch"))
    return s, g


def test_steps_is_used_between_the_state_steps_and_gives_what_single_steps_give():
    s, g = _golden_inputs("long-default-2000")
    batching = _Batching()
    batched = drive(batching, s, g.params0, g.grads, "float32", state_steps=g.state_steps)
    single = drive(NumpyAdam(), s, g.params0, g.grads, "float32", state_steps=g.state_steps)
    assert _bitwise(batched.theta, single.theta)
    assert sorted(batched.states) == sorted(single.states)
    for t in batched.states:
        for key in ("m", "v"):
            assert _bitwise(batched.states[t][key], single.states[t][key])
    stops = sorted({int(t) for t in g.state_steps if t > 0} | {s.steps})
    # one call per segment between two steps where the state is read (segments of one step go through step)
    expected = [b - a for a, b in zip([0] + stops[:-1], stops) if b - a > 1]
    assert batching.calls == expected and sum(batching.calls) > 1900


@pytest.mark.parametrize("bad, match", [("shape", r"steps\(\)\[0\] has shape"), ("dtype", r"has dtype float64 .* a float32 run")])
def test_what_steps_returns_is_checked_like_params(bad, match):
    s, g = _golden_inputs("long-default-2000")
    with pytest.raises(AdapterContractError, match=match):
        drive(_Batching(bad=bad), s, g.params0, g.grads, "float32")


@pytest.mark.parametrize("batch", [True, False])
def test_a_run_that_writes_into_its_gradients_is_named_with_the_step(batch):
    """The gradients are handed over as views of one harness-owned copy per tensor, checked once per segment:
    a write into any row is still found, and named by its step and tensor."""
    s, g = _golden_inputs("dense-dyadic")
    adapter = _Batching(bad="writes")
    if not batch:  # the same write from step(), at step 5
        adapter = NumpyAdam()
        start = adapter.start

        def start_writing(config, params, *, dtype, device):
            run = start(config, params, dtype=dtype, device=device)
            step, count = run.step, [0]

            def writing(grads):
                count[0] += 1
                step(grads)
                if count[0] == 5:
                    grads[1] *= 0.5

            run.step = writing
            return run

        adapter.start = start_writing
    with pytest.raises(AdapterContractError, match=r"the gradients of step 5, grads\[1\] was changed by the run: "
                                                   r"element 0 was .*, now .*"):
        drive(adapter, s, g.params0, g.grads, "float32", state_steps=g.state_steps)
    # what the run wrote into was the harness's copy: the golden's rows are as stored
    _, fresh = _golden_inputs("dense-dyadic")
    assert all(_bitwise(a, b) for a, b in zip(g.grads, fresh.grads))


def test_rows_a_run_cannot_batch_are_stepped_one_by_one():
    s, g = _golden_inputs("long-default-2000")
    batching = _Batching(refuse=True)
    got = drive(batching, s, g.params0, g.grads, "float32", state_steps=g.state_steps)
    want = drive(NumpyAdam(), s, g.params0, g.grads, "float32", state_steps=g.state_steps)
    # asked once; after a refusal the run is stepped one row at a time to the end
    assert batching.refusals == 1 and batching.calls == [] and _bitwise(got.theta, want.theta)


def test_the_bridge_batches_steps_for_a_child_whose_run_has_none():
    params = [np.linspace(-1, 1, 12).reshape(3, 4), np.array(0.5)]
    rng = np.random.default_rng(3)
    rows = [[rng.normal(size=(3, 4)), rng.normal(size=())] for _ in range(37)]
    config = AdamConfig(lr=0.01)
    spec = f"{REPO / 'docs' / 'examples' / 'numpy_adapter.py'}:NumpyAdam"
    bridged = BridgedAdapter(spec, timeout_s=60)
    try:
        there = bridged.start(config, params, dtype="float32", device="cpu")
        trail = there.steps(rows)
    finally:
        bridged.close()
    here = NumpyAdam().start(config, params, dtype="float32", device="cpu")
    for t, row in enumerate(rows):
        here.step(row)
        assert _bitwise([x[t] for x in trail], here.params())


def _framework_runs():
    out = []
    try:
        import optax  # noqa: F401

        from adamconf.adapters.optax_adapters import ADAPTERS as OPTAX

        out += [a for a in OPTAX if a.name == "optax.amsgrad"]
    except ImportError:
        pass
    try:
        import tensorflow  # noqa: F401

        from adamconf.adapters.keras_adapters import ADAPTERS as TF

        out += [a for a in TF if a.name in ("keras.adam", "keras.adam.jit", "tf_keras.legacy.adam", "tf_keras.adam",
                                            "tf.raw.apply_adam_amsgrad")]
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("adapter", _framework_runs() or [pytest.param(None, marks=pytest.mark.skip(
    reason="neither optax nor TensorFlow is installed"))], ids=lambda a: getattr(a, "name", "none"))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_framework_loop_follows_its_single_steps(adapter, dtype):
    """The compiled loop (16^k steps a call, single steps between) against the same run stepped one by one.

    Bitwise where the loop body is the graph of the single step (tf.function without XLA). An XLA
    loop (jax.lax.scan, jit_compile) may fuse the body differently from the single-step program: two
    correct runs whose roundings differ, so after t steps they may be t ulps apart (both are judged
    by the suites); a loop that skipped, repeated or reordered a row would be ~1e5 ulps off here.
    """
    params = [np.linspace(-1, 1, 12).reshape(3, 4), np.array([0.25, -2.0])]
    rng = np.random.default_rng(7)
    rows = [[np.asarray(rng.normal(size=(3, 4)), np.float32).astype(np.float64),
             np.asarray(rng.normal(size=(2,)), np.float32).astype(np.float64)] for _ in range(21)]
    config = AdamConfig(lr=0.01, amsgrad=True)
    batched = adapter.start(config, params, dtype=dtype, device="cpu")
    trail = batched.steps(rows)
    assert [x.shape for x in trail] == [(21, 3, 4), (21, 2)]
    single = adapter.start(config, params, dtype=dtype, device="cpu")
    exact = not (adapter.name.startswith("optax") or adapter.name.endswith(".jit"))
    for t, row in enumerate(rows):
        single.step(row)
        for k, p in enumerate(single.params()):
            got = trail[k][t]
            if exact:
                assert got.tobytes() == np.asarray(p).tobytes(), (adapter.name, t, k)
            else:
                ulp = np.spacing(np.abs(np.asarray(p)))
                assert np.all(np.abs(got - p) <= (t + 1) * ulp), (adapter.name, t, k)
