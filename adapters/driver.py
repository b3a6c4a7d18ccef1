"""Driving an adapter through a scenario's inputs: the contract checks, the round trips, faults as verdicts.

``drive`` feeds a run the golden's inputs step by step (or, where the run offers the
contract's optional ``steps``, a segment at a time between the steps where it must look
at the run), reads the parameters after every step (checked against the contract:
count, shape, a floating dtype, values that are numbers of the case's dtype), reads the
state at the golden's state steps,
and runs the checkpoint or config round trip the scenario asks for (bitwise). It is
the only place that steps an adapter; ``classify`` maps whatever a run raised to a
verdict. ``support`` is the only place that decides whether a case can run.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from adamconf.reference.dtypes import fmt

from .contract import Unsupported, availability

__all__ = ["AdapterContractError", "Driven", "RoundTripMismatch", "availability", "classify", "drive",
           "read_params", "support"]


class AdapterContractError(RuntimeError):
    """The adapter broke the contract (wrong count, shape or dtype)."""


class RoundTripMismatch(AssertionError):
    """A checkpoint or config round trip that did not continue bitwise."""


def support(adapter: Any, scenario: Any, dtype: str, device: str) -> str | None:
    """Why this case cannot run (None if it can)."""
    if dtype not in scenario.dtypes:
        return f"scenario {scenario.name} is not defined in {dtype} (its dtypes: {', '.join(scenario.dtypes)})"
    if dtype not in adapter.dtypes:
        return f"{adapter.name} does not support {dtype} (it declares {', '.join(adapter.dtypes)})"
    if device not in adapter.devices:
        return f"{adapter.name} does not run on {device} (it declares {', '.join(adapter.devices)})"
    missing = sorted(scenario.features - set(adapter.features))
    if missing:
        return f"{adapter.name} lacks feature(s) {', '.join(missing)} that {scenario.name} needs"
    return availability(adapter, device)


def read_params(run: Any, shapes: Sequence[tuple], dtype: str, step: int) -> list[np.ndarray]:
    """run.params() checked against the contract: count, shapes, exactness in dtype; float64 copies."""
    return _checked(run.params(), shapes, dtype, f"after step {step}", "params()")


def _checked(got: Sequence[Any], shapes: Sequence[tuple], dtype: str, when: str, what: str) -> list[np.ndarray]:
    """Arrays an adapter returned, checked against the contract (count, shapes, exactness in dtype), as float64."""
    if len(got) != len(shapes):
        raise AdapterContractError(f"{what} returned {len(got)} arrays {when}, expected {len(shapes)}")
    F = fmt(dtype)
    out = []
    for k, (a, shape) in enumerate(zip(got, shapes)):
        a = np.asarray(a)
        if tuple(a.shape) != tuple(shape):
            raise AdapterContractError(f"{what}[{k}] has shape {a.shape} {when}, expected {tuple(shape)}")
        if not np.issubdtype(a.dtype, np.floating):
            raise AdapterContractError(f"{what}[{k}] has dtype {a.dtype}, expected a floating dtype")
        a64 = np.array(a, dtype=np.float64, copy=True)
        if not F.holds(a64):
            raise AdapterContractError(f"{what}[{k}] {when} holds values that are not {dtype} "
                                       f"numbers (dtype {a.dtype}): the adapter does not run in {dtype}")
        out.append(a64)
    return out


def _many(run: Any, rows: Sequence[Any], shapes: Sequence[tuple], dtype: str, first: int) -> list[list[np.ndarray]] | None:
    """``run.steps(rows)`` checked like ``params()``: the parameters after each row; None if it cannot batch them."""
    try:
        got = run.steps(list(rows))
    except NotImplementedError:
        return None
    when = f"after steps {first}..{first + len(rows) - 1}"
    stacked = _checked(got, [(len(rows), *shape) for shape in shapes], dtype, when, "steps()")
    return [[a[i] for a in stacked] for i in range(len(rows))]


def _bitwise_equal(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    return all(x.shape == y.shape and np.array_equal(x.view(np.uint64), y.view(np.uint64)) for x, y in zip(a, b))


@dataclass
class Driven:
    """What a run produced: theta after every step 0..T (per tensor, float64) and the state read."""

    theta: list[np.ndarray]
    states: dict[int, dict] = field(default_factory=dict)


def drive(adapter: Any, scenario: Any, params0: Sequence[np.ndarray], grads: Sequence[Sequence], dtype: str,
          device: str = "cpu", *, state_steps: Sequence[int] = ()) -> Driven:
    """Run ``adapter`` over the inputs; exceptions from the adapter propagate (``Unsupported`` included).

    state_steps: the steps after which ``run.state()`` is read (the adapter must declare "state").
    """
    s = scenario
    shapes = [np.shape(p) for p in params0]
    run = adapter.start(s.config, [np.array(p, copy=True) for p in params0], dtype=dtype, device=device)
    thetas = [read_params(run, shapes, dtype, 0)]
    states: dict[int, dict] = {}
    want = set(int(t) for t in state_steps)
    twin = None  # a restored or rebuilt run that must follow bitwise
    twin_kind = None
    if s.roundtrip_at is not None and "config" in s.features:
        twin = adapter.rebuild(run.config(), [np.array(p, copy=True) for p in params0], dtype=dtype, device=device)
        twin_kind = "config"
    # the steps after which the harness must look at the run between two steps (state, a round trip)
    stops = sorted(want | ({int(s.roundtrip_at)} if s.roundtrip_at is not None else set()) | {len(grads)})
    batched: dict[int, list[np.ndarray]] = {}  # step -> params, from run.steps() over a segment
    batching = hasattr(run, "steps")
    for t, row in enumerate(grads, start=1):
        end = next(x for x in stops if x >= t)
        if batching and twin is None and t not in batched and end > t:
            rows = _many(run, grads[t - 1:end], shapes, dtype, t)
            if rows is None:  # the run cannot batch these inputs: one by one from here on
                batching = False
            else:
                batched.update(zip(range(t, end + 1), rows))
        if t in batched:
            thetas.append(batched.pop(t))
        else:
            run.step(row)
            thetas.append(read_params(run, shapes, dtype, t))
        if twin is not None:
            twin.step(row)
            other = read_params(twin, shapes, dtype, t)
            if not _bitwise_equal(thetas[-1], other):
                k = next(i for i, (x, y) in enumerate(zip(thetas[-1], other)) if not np.array_equal(x, y))
                diff = np.flatnonzero(thetas[-1][k].ravel() != other[k].ravel())
                raise RoundTripMismatch(
                    f"{twin_kind} round trip: the {'rebuilt' if twin_kind == 'config' else 'restored'} optimizer "
                    f"differs from the uninterrupted one at step {t}, tensor {k}, element {int(diff[0])}: "
                    f"{thetas[-1][k].ravel()[diff[0]]!r} vs {other[k].ravel()[diff[0]]!r} ({diff.size} elements)")
        if s.roundtrip_at == t and "checkpoint" in s.features:
            twin = adapter.restore(s.config, run.save(), dtype=dtype, device=device)
            twin_kind = "checkpoint"
            restored = read_params(twin, shapes, dtype, t)
            if not _bitwise_equal(thetas[-1], restored):
                raise RoundTripMismatch(f"checkpoint round trip: restored parameters differ from the saved ones "
                                        f"at step {t}")
        if t in want:
            st = run.state()
            states[t] = {key: None if st.get(key) is None else [np.asarray(x, np.float64) for x in st[key]]
                         for key in ("m", "v", "vmax")}
            if int(st.get("step", t)) != t:
                raise AdapterContractError(f"state()['step'] is {st.get('step')!r} after {t} steps")
    return Driven([np.stack([th[k] for th in thetas]) for k in range(len(shapes))], states)


def classify(exc: BaseException) -> tuple[str, str]:
    """(verdict, message) for an exception a run raised: skipped, failed, crashed, timeout or error."""
    from .bridge import ChildCrashed, ChildTimeout

    if isinstance(exc, Unsupported):
        return "skipped", str(exc)
    if isinstance(exc, RoundTripMismatch):
        return "failed", str(exc)
    verdict = "crashed" if isinstance(exc, ChildCrashed) else "timeout" if isinstance(exc, ChildTimeout) else "error"
    tb = traceback.format_exception(exc)
    return verdict, f"{type(exc).__name__}: {exc}\n" + "".join(tb[-4:-1])
