"""The subprocess bridge: encoding, bitwise transparency, crash/hang containment, other languages."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from adamconf.adapters.bridge import (
    BridgedAdapter,
    BridgeError,
    ChildCrashed,
    ChildTimeout,
    ProtocolError,
    RemoteError,
    decode_array,
    decode_grad,
    encode_array,
    encode_grad,
)
from adamconf.adapters.contract import Unsupported, describe
from adamconf.reference import AdamConfig, SparseGrad, trajectory

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "data" / "bridge" / "misbehaving.py"
STANDALONE = REPO / "docs" / "examples" / "standalone_adam.py"
TRIGGER = 13.0  # tests/data/bridge/misbehaving.py misbehaves on this gradient value
SHAPES = [(3, 4), (5,), ()]


def _inputs(steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s) for s in SHAPES], [[rng.normal(size=s) for s in SHAPES] for _ in range(steps)]


def _bitwise_equal(a, b) -> bool:
    return len(a) == len(b) and all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
                                    for x, y in zip(a, b))


def _fixture(cls: str, **kwargs) -> BridgedAdapter:
    return BridgedAdapter(f"{FIXTURES}:{cls}", **kwargs)


@pytest.fixture
def closing():
    """Adapters created through this list have their child processes ended after the test."""
    adapters: list[BridgedAdapter] = []
    yield adapters
    for adapter in adapters:
        adapter.close()


# -- encoding ------------------------------------------------------------------------------
@pytest.mark.parametrize("array", [
    np.array([1.5, -0.0, np.inf, np.nan, 5e-324]),
    np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2],  # not contiguous
    np.array(2.5, dtype=np.float16),  # a scalar
    np.zeros((0, 3)),  # empty
    np.array([1, -2, 2**40], dtype=">i8"),  # big-endian input travels as little-endian
    np.array([3, 4], dtype=np.int32),
])
def test_arrays_round_trip_exactly(array):
    decoded = decode_array(encode_array(array))
    assert decoded.shape == array.shape and decoded.dtype == array.dtype.newbyteorder("=")
    assert decoded.tobytes() == np.ascontiguousarray(array, dtype=decoded.dtype).tobytes()


def test_bfloat16_travels_as_its_bits_and_is_widened_to_float32():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = np.array([1.0, -3.140625, 2.0**-133], dtype=ml_dtypes.bfloat16)
    wire = encode_array(a)
    assert wire["dtype"] == "bfloat16"
    assert decode_array(wire).tobytes() == a.astype(np.float32).tobytes()


def test_sparse_gradients_keep_their_repeated_indices():
    g = SparseGrad(np.array([2, 0, 2]), np.arange(6.0).reshape(3, 2), (4, 2))
    back = decode_grad(encode_grad(g))
    assert isinstance(back, SparseGrad) and back.dense_shape == (4, 2)
    assert back.indices.tolist() == [2, 0, 2] and back.values.tobytes() == g.values.tobytes()


def test_a_malformed_array_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="needs 24 bytes"):
        decode_array({"dtype": "float64", "shape": [3], "data": "AAAA"})


# -- transparency ----------------------------------------------------------------------------
def test_a_bridged_run_is_bitwise_the_in_process_run(closing):
    pytest.importorskip("optax")
    from adamconf.adapters.optax_adapters import ADAPTERS

    local = {a.name: a for a in ADAPTERS}["optax.amsgrad"]
    bridged = BridgedAdapter("optax.amsgrad", timeout_s=60)
    closing.append(bridged)
    assert describe(bridged) == describe(local)

    config = AdamConfig(lr=0.01, amsgrad=True, global_clipnorm=1.0, clipvalue=0.8)
    params, grads = _inputs(6)
    here = local.start(config, params, dtype="float32", device="cpu")
    there = bridged.start(config, params, dtype="float32", device="cpu")
    for g in grads[:3]:
        here.step(g)
        there.step(g)
    assert _bitwise_equal(here.params(), there.params())
    assert there.config() == here.config()
    blob = there.save()
    # The child's checkpoint continues bitwise in this process, and the other way round.
    resumed_here = local.restore(config, blob, dtype="float32", device="cpu")
    resumed_there = bridged.restore(config, here.save(), dtype="float32", device="cpu")
    for g in grads[3:]:
        for run in (here, there, resumed_here, resumed_there):
            run.step(g)
    final = here.params()
    for run in (there, resumed_here, resumed_there):
        assert _bitwise_equal(final, run.params())
    s_here, s_there = here.state(), there.state()
    assert s_here["step"] == s_there["step"] == 6
    for key in ("m", "v", "vmax"):
        assert _bitwise_equal(s_here[key], s_there[key])
    rebuilt = bridged.rebuild(here.config(), params, dtype="float32", device="cpu")
    for g in grads:
        rebuilt.step(g)
    assert _bitwise_equal(final, rebuilt.params())


def test_unsupported_in_the_child_is_unsupported_here(closing):
    pytest.importorskip("optax")
    from adamconf.adapters.optax_adapters import ADAPTERS

    local = {a.name: a for a in ADAPTERS}["optax.adam"]
    bridged = BridgedAdapter("optax.adam", timeout_s=60)
    closing.append(bridged)
    assert bridged.available("cpu") is None
    assert bridged.available("cuda") == local.available("cuda")  # the child's per-device answer
    params, _ = _inputs(1)
    with pytest.raises(Unsupported, match="per-tensor"):
        bridged.start(AdamConfig(clipnorm=1.0), params, dtype="float32", device="cpu")
    with pytest.raises(Unsupported, match="GPU"):
        bridged.start(AdamConfig(), params, dtype="float32", device="cuda")


def test_the_child_keeps_its_own_frameworks_while_this_process_uses_tensorflow(closing):
    """The parent has TensorFlow loaded; the child runs JAX without it, bitwise as in-process."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("optax")
    import tensorflow  # noqa: F401  (the harness process uses TF)

    from adamconf.adapters.optax_adapters import ADAPTERS

    bridged = BridgedAdapter("optax.adam", timeout_s=60)
    closing.append(bridged)
    params, grads = _inputs(3)
    local = {a.name: a for a in ADAPTERS}["optax.adam"].start(AdamConfig(), params, dtype="float64",
                                                                device="cpu")
    run = bridged.start(AdamConfig(), params, dtype="float64", device="cpu")
    for g in grads:
        local.step(g)
        run.step(g)
    assert _bitwise_equal(local.params(), run.params())
    modules = bridged.runtime()["modules"]
    assert "jax" in modules and "tensorflow" not in modules
    assert "tensorflow" in sys.modules


BATCHLESS = """
import sys
sys.path.insert(0, {examples!r})
from numpy_adapter import NumpyAdam, NumpyAdamRun


class Refusing(NumpyAdamRun):
    def steps(self, rows):
        raise NotImplementedError("this run steps one row at a time")


class Batchless(NumpyAdam):
    name = "batchless"

    def start(self, config, params, *, dtype, device):
        return (Refusing if self.refuse else NumpyAdamRun)(config, params, dtype)
"""


@pytest.mark.parametrize("refuse", [False, True], ids=["no-steps", "steps-refused"])
def test_the_child_steps_what_its_run_cannot_batch(refuse, tmp_path, closing):
    """A run without ``steps``, or whose ``steps`` raises NotImplementedError, is stepped row by row in the
    child (one request for all rows): the same parameters, bitwise, as a step request per row."""
    (tmp_path / "batchless.py").write_text(BATCHLESS.format(examples=str(REPO / "docs" / "examples"))
                                           + f"\nBatchless.refuse = {refuse}\n")
    bridged = BridgedAdapter(f"{tmp_path / 'batchless.py'}:Batchless", timeout_s=60)
    closing.append(bridged)
    params, grads = _inputs(5)
    config = AdamConfig(lr=0.01)
    one_by_one = bridged.start(config, params, dtype="float32", device="cpu")
    trail = []
    for g in grads:
        one_by_one.step(g)
        trail.append(one_by_one.params())
    batched = bridged.start(config, params, dtype="float32", device="cpu").steps(grads)
    assert [a.shape for a in batched] == [(5, *shape) for shape in SHAPES]
    for k in range(len(SHAPES)):
        assert np.array_equal(batched[k], np.stack([after[k] for after in trail]))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras3_on_another_backend_through_the_bridge(backend, closing):
    """keras.<backend>.adam: Keras 3 with KERAS_BACKEND=<backend> in a child, while this process
    has TensorFlow."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    pytest.importorskip(backend)
    import tensorflow  # noqa: F401

    from adamconf.adapters.bridged import ADAPTERS

    adapter = {a.name: a for a in ADAPTERS}[f"keras.{backend}.adam"]
    adapter.start_timeout_s = max(adapter.start_timeout_s, 120)
    closing.append(adapter)
    reason = adapter.available()
    if reason is not None:
        pytest.skip(f"{adapter.name} is unavailable: {reason}")
    assert adapter.dialect == "keras"
    config = AdamConfig(lr=0.01, eps=1e-7)
    params, grads = _inputs(4)
    run = adapter.start(config, params, dtype="float32", device="cpu")
    for g in grads:
        run.step(g)
    got = run.params()
    runtime = adapter.runtime()
    assert runtime.get("KERAS_BACKEND") == backend and backend in runtime["modules"]
    assert "tensorflow" not in runtime["modules"]
    ref = trajectory(config, "keras", params, grads)
    for k in range(len(SHAPES)):
        assert got[k].dtype == np.float32
        # float32 arithmetic against the exact trajectory: a gross check only (the budget is the suites')
        np.testing.assert_allclose(got[k], ref.theta[k][-1], rtol=0, atol=1e-5)


# -- containment -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls,expected", [("Exits", "exited with code 3"), ("Segfaults", "SIGSEGV")])
def test_a_child_that_dies_is_reported_and_the_next_case_runs(cls, expected, closing):
    adapter = _fixture(cls, timeout_s=30)
    closing.append(adapter)
    params, grads = _inputs(2)
    run = adapter.start(AdamConfig(), params, dtype="float64", device="cpu")
    run.step(grads[0])
    bad = [g.copy() for g in grads[1]]
    bad[0].flat[0] = TRIGGER
    with pytest.raises(ChildCrashed, match=expected) as info:
        run.step(bad)
    assert info.value.returncode == (3 if cls == "Exits" else -11)
    assert cls.lower() in info.value.stderr_tail  # the child's last words
    with pytest.raises(BridgeError, match="has ended"):
        run.params()
    # The next case gets a fresh child.
    fresh = adapter.start(AdamConfig(), params, dtype="float64", device="cpu")
    for g in grads:
        fresh.step(g)
    ref = trajectory(AdamConfig(), "kingma", params, grads)
    for k in range(len(SHAPES)):
        np.testing.assert_allclose(fresh.params()[k], ref.theta[k][-1], rtol=1e-12)


def test_a_child_that_hangs_is_killed_after_the_timeout_and_the_next_case_runs(closing):
    adapter = _fixture("Hangs", timeout_s=2)
    closing.append(adapter)
    params, grads = _inputs(1)
    run = adapter.start(AdamConfig(), params, dtype="float64", device="cpu")
    hung_child = adapter._child
    bad = [g.copy() for g in grads[0]]
    bad[0].flat[0] = TRIGGER
    began = time.monotonic()
    with pytest.raises(ChildTimeout, match="no answer to 'step' within 2 s"):
        run.step(bad)
    assert time.monotonic() - began < 15
    assert not hung_child.alive
    fresh = adapter.start(AdamConfig(), params, dtype="float64", device="cpu")
    fresh.step(grads[0])
    assert adapter._child is not hung_child and len(fresh.params()) == len(SHAPES)


def test_an_adapter_that_raises_leaves_the_child_usable(closing):
    adapter = _fixture("Raises", timeout_s=30)
    closing.append(adapter)
    params, grads = _inputs(1)
    run = adapter.start(AdamConfig(), params, dtype="float64", device="cpu")
    child = adapter._child
    bad = [g.copy() for g in grads[0]]
    bad[0].flat[0] = TRIGGER
    with pytest.raises(RemoteError, match="ValueError: fixture.raises") as info:
        run.step(bad)
    assert info.value.error_type == "ValueError" and "misbehave" in info.value.remote_traceback
    run.step(grads[0])
    assert adapter._child is child


def test_stray_output_on_stdout_does_not_corrupt_the_protocol(closing):
    adapter = _fixture("Noisy", timeout_s=30)
    closing.append(adapter)
    params, grads = _inputs(2)
    run = adapter.start(AdamConfig(), params, dtype="float64", device="cpu")
    for g in grads:
        run.step(g)
    assert len(run.params()) == len(SHAPES)
    # the child's stderr is read by a thread of its own: give it time to drain what was written
    deadline = time.monotonic() + 10
    while "noisy: write(1, ...)" not in adapter._child.stderr_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "noisy: write(1, ...)" in adapter._child.stderr_tail()


def test_children_that_cannot_serve_say_why(closing):
    missing = BridgedAdapter("no.such.adapter", timeout_s=30)
    not_a_program = BridgedAdapter("exec:/nonexistent/program --flag", timeout_s=5)
    chatty = BridgedAdapter(f"exec:{sys.executable} -c \"print('hello there')\"", timeout_s=10)
    closing.extend([missing, not_a_program, chatty])
    assert "unknown adapter 'no.such.adapter'" in missing.available()
    assert "cannot start the child" in not_a_program.available()
    assert "invalid reply to 'hello'" in chatty.available()
    with pytest.raises(ProtocolError, match="nothing but protocol replies"):
        chatty.start(AdamConfig(), [np.zeros(2)], dtype="float64", device="cpu")


def test_an_oversized_reply_is_refused_and_the_child_killed(closing, monkeypatch):
    """A child's reply line is read up to bridge.MAX_REPLY_BYTES: more is a ProtocolError, not unbounded memory."""
    from adamconf.adapters import bridge

    monkeypatch.setattr(bridge, "MAX_REPLY_BYTES", 1 << 20)
    script = "import sys; sys.stdin.readline(); sys.stdout.write('x' * (3 << 20) + '\\n'); sys.stdout.flush(); " \
             "sys.stdin.readline()"
    huge = BridgedAdapter(f"exec:{sys.executable} -c \"{script}\"", timeout_s=20)
    closing.append(huge)
    assert "the reply to 'hello' is longer than 1048576 bytes, the most a reply may be; killed the child" \
        in huge.available()


# -- another implementation, through exec: ----------------------------------------------------------
def test_the_standalone_example_is_checked_through_exec(closing, capsys):
    adapter = BridgedAdapter(f"exec:{sys.executable} {STANDALONE}", timeout_s=30)
    closing.append(adapter)
    assert adapter.available() is None
    assert adapter.name == "example.standalone_adam" and adapter.dialect == "kingma"
    assert set(adapter.features) == {"sparse", "state", "checkpoint", "config"}

    config = AdamConfig(lr=0.01)
    params, grads = _inputs(5)
    grads[2][0] = SparseGrad(np.array([2, 0, 2]), np.ones((3, 4)), (3, 4))  # repeated rows are summed
    run = adapter.start(config, params, dtype="float64", device="cpu")
    for g in grads[:2]:
        run.step(g)
    resumed = adapter.restore(config, run.save(), dtype="float64", device="cpu")
    rebuilt = adapter.rebuild(run.config(), params, dtype="float64", device="cpu")
    for g in grads[:2]:
        rebuilt.step(g)
    for g in grads[2:]:
        for r in (run, resumed, rebuilt):
            r.step(g)
    got = run.params()
    assert _bitwise_equal(got, resumed.params()) and _bitwise_equal(got, rebuilt.params())
    assert run.state()["step"] == 5 and run.state()["vmax"] is None

    ref = trajectory(config, "kingma", params, grads)
    worst = max(float(np.max(np.abs(got[k] - ref.theta[k][-1]) / np.abs(ref.theta[k][-1] - params[k])))
                for k in range(len(SHAPES)))
    with capsys.disabled():
        print(f"\n  standalone example, float64, 5 steps: max error / total update {worst:.1e}")
    assert worst < 1e-10
    with pytest.raises(Unsupported, match="amsgrad"):
        adapter.start(AdamConfig(amsgrad=True), params, dtype="float64", device="cpu")
