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

from adamconf.reference.grads import SparseGrad, all_finite

from .contract import Unsupported, availability

__all__ = ["CONTRACT_BROKEN", "AdapterContractError", "Driven", "RoundTripMismatch", "availability", "classify", "drive",
           "read_params", "support"]


#: how ``classify`` begins the message of a broken contract
CONTRACT_BROKEN = "the adapter broke the contract: "


class AdapterContractError(RuntimeError):
    """The adapter broke the contract: the message names the rule, the tensor and the values."""


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


def read_params(run: Any, shapes: Sequence[tuple], dtype: str, step: int, *, finite: bool = False) -> list[np.ndarray]:
    """run.params() checked against the contract (``_checked``); float64 copies."""
    return _checked(run.params(), shapes, dtype, f"after step {step}", "params()", finite=finite)


def _dtypes_of(dtype: str) -> tuple[str, ...]:
    """The numpy dtypes a run of ``dtype`` returns its parameters in (bfloat16: widened to float32, or itself)."""
    return ("float32", "bfloat16") if dtype == "bfloat16" else (dtype,)


#: numpy dtype -> its name: ``dtype.name`` is computed in Python on every access (about 8 us), once per
#: parameter per step here
_NAMES: dict = {}


def _checked(got: Any, shapes: Sequence[tuple], dtype: str, when: str, what: str, *,
             finite: bool = False) -> list[np.ndarray]:
    """Arrays an adapter returned, checked against the contract, as float64 copies.

    The rules, each named in the error: a sequence of one numpy array per parameter; each of the
    parameter's shape; of the run's dtype (``_dtypes_of``); holding numbers of that dtype; and,
    where ``finite`` (the scenario's inputs are finite, so is its reference), no NaN or infinity.
    """
    if isinstance(got, np.ndarray) or not isinstance(got, (list, tuple)):
        raise AdapterContractError(f"{what} returned a {type(got).__name__} {when}; the contract: a list with one "
                                   f"numpy array per parameter ({len(shapes)})")
    if len(got) != len(shapes):
        raise AdapterContractError(f"{what} returned {len(got)} arrays {when}, expected {len(shapes)} "
                                   f"(one per parameter, in the order start() was given them)")
    F = fmt(dtype)
    allowed = _dtypes_of(dtype)
    out = []
    for k, (a, shape) in enumerate(zip(got, shapes)):
        if not isinstance(a, (np.ndarray, np.generic)):
            raise AdapterContractError(
                f"{what}[{k}] is {'None' if a is None else 'a ' + type(a).__name__} {when}, not a numpy array: "
                f"return np.asarray(...) of the implementation's tensor ({dtype}, shape {tuple(shape)})")
        if tuple(a.shape) != tuple(shape):
            raise AdapterContractError(f"{what}[{k}] has shape {a.shape} {when}, expected {tuple(shape)}")
        name = _NAMES.get(a.dtype) or _NAMES.setdefault(a.dtype, a.dtype.name)
        if name not in allowed:
            raise AdapterContractError(
                f"{what}[{k}] has dtype {a.dtype} {when}, but this is a {dtype} run: return the parameters as "
                f"the implementation holds them ({' or '.join(allowed)}), not converted")
        a64 = np.array(a, dtype=np.float64, copy=True)
        if finite and not np.isfinite(a64).all():  # the method: np.all's dispatch costs more than the test
            bad = int(np.flatnonzero(~np.isfinite(a64.ravel()))[0])
            raise AdapterContractError(
                f"{what}[{k}] {when} holds {float(a64.ravel()[bad])!r} at element {bad} (index "
                f"{tuple(int(i) for i in np.unravel_index(bad, a64.shape))}), {int(np.sum(~np.isfinite(a64)))} "
                f"non-finite element(s) in all, although the scenario's inputs and its reference are finite: "
                f"the implementation produced a NaN or an infinity (0/0, inf - inf, an overflow)")
        # an array of the run's own dtype holds its numbers by construction; a widened one (bfloat16 in
        # float32) must be checked
        if name != dtype and not F.holds(a64):
            raise AdapterContractError(f"{what}[{k}] {when} holds values that are not {dtype} "
                                       f"numbers (dtype {a.dtype}): the adapter does not run in {dtype}")
        out.append(a64)
    return out


def _state_checked(st: Any, shapes: Sequence[tuple], t: int, applied: int | None = None) -> dict:
    """run.state() checked against the contract: a dict whose m and v (and vmax, or None) hold one array per parameter.

    The step counter is t, or ``applied``, the steps whose gradients were all finite (an implementation that
    skips a non-finite step, ``Dialect.nonfinite = "skip"``, does not count it).
    """
    if not isinstance(st, dict):
        raise AdapterContractError(f"state() returned a {type(st).__name__} after step {t}; the contract: a dict "
                                   f"with 'step', 'm', 'v' and 'vmax' (docs: adamconf.adapters.contract)")
    ok = {t} if applied is None else {t, applied}
    if "step" in st and (not isinstance(st["step"], (int, np.integer)) or int(st["step"]) not in ok):
        skipped = f" ({t - applied} of them with a non-finite gradient)" if applied not in (None, t) else ""
        raise AdapterContractError(f"state()['step'] is {st['step']!r} after {t} steps{skipped}")
    out = {}
    for key in ("m", "v", "vmax"):
        arrays = st.get(key)
        if arrays is None:
            if key != "vmax":
                raise AdapterContractError(f"state()[{key!r}] is missing after step {t}")
            out[key] = None
            continue
        if not isinstance(arrays, (list, tuple)) or len(arrays) != len(shapes):
            raise AdapterContractError(f"state()[{key!r}] after step {t} is not a list of {len(shapes)} arrays, "
                                       f"one per parameter")
        for k, (a, shape) in enumerate(zip(arrays, shapes)):
            if not isinstance(a, (np.ndarray, np.generic)) or tuple(a.shape) != tuple(shape):
                got = f"shape {a.shape}" if isinstance(a, (np.ndarray, np.generic)) else f"a {type(a).__name__}"
                raise AdapterContractError(f"state()[{key!r}][{k}] after step {t} is {got}, expected a numpy "
                                           f"array of shape {tuple(shape)}")
        out[key] = [np.asarray(x, np.float64) for x in arrays]
    return out


def _fresh(row: Sequence[Any]) -> list[Any]:
    """A copy of a row of gradients for the run: what it does to it cannot reach the golden or a twin."""
    return [SparseGrad(np.array(g.indices, copy=True), np.array(g.values, copy=True), g.dense_shape)
            if isinstance(g, SparseGrad) else np.array(g, copy=True) for g in row]


def _num(a: np.ndarray, at: int) -> str:
    return repr(a.ravel()[at].item()) if a.size > at else "absent"


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    # equal bytes first (a tenth of array_equal's cost on the small arrays of a step, and this runs for
    # every gradient of every step); else equal values, NaN equal to NaN (a payload or the sign of a
    # zero may change where a framework reads the buffer back; values may not)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a.tobytes() == b.tobytes() or bool(np.array_equal(a, b, equal_nan=True))


def _check_unchanged(given: Sequence[Any], original: Sequence[Any], what: str) -> None:
    """The run must not write into the arrays it was given (gradients, initial parameters)."""
    for k, (g, o) in enumerate(zip(given, original)):
        pairs = ([("indices", g.indices, o.indices), ("values", g.values, o.values)] if isinstance(o, SparseGrad)
                 else [("", g, np.asarray(o))])
        for part, x, y in pairs:
            if not _same(np.asarray(x), np.asarray(y)):
                x, y = np.asarray(x), np.asarray(y)
                diff = (np.flatnonzero(~((x.ravel() == y.ravel()) | (np.isnan(x.ravel()) & np.isnan(y.ravel()))))
                        if x.shape == y.shape else np.array([0]))
                at = int(diff[0]) if diff.size else 0
                raise AdapterContractError(
                    f"{what}[{k}]{'.' + part if part else ''} was changed by the run: element {at} was "
                    f"{_num(y, at)}, now {_num(x, at)} ({diff.size} element(s)); the arrays the harness "
                    f"passes are its own: copy them before changing them")


class _Given:
    """The gradients handed to a run: harness-owned copies, so that what the run does to them cannot reach
    the golden or a twin, checked afterwards against the golden's rows (the run must not write into them).

    Dense inputs are copied once per case into one (T, *shape) block per tensor; the run gets views of
    its rows and a segment is checked with one comparison per tensor (a copy and a comparison per gradient
    per step cost about as much as the numpy example's own step). A row with a sparse gradient is copied
    and checked alone (``_fresh``, ``_check_unchanged``).
    """

    def __init__(self, grads: Sequence[Sequence[Any]]) -> None:
        self.grads = grads
        dense = all(not isinstance(g, SparseGrad) for row in grads for g in row)
        n = len(grads[0]) if grads else 0
        self.golden = ([np.stack([np.asarray(row[k]) for row in grads]) for k in range(n)]
                       if dense and grads else None)
        self.blocks = None if self.golden is None else [g.copy() for g in self.golden]
        self._fresh: dict[int, list[Any]] = {}

    def row(self, t: int) -> list[Any]:
        """What step t (1-based) is given."""
        if self.blocks is None:
            return self._fresh.setdefault(t, _fresh(self.grads[t - 1]))
        return [b[t - 1, ...] for b in self.blocks]

    def check(self, first: int, last: int) -> None:
        """Steps first..last did not write into what they were given (the first step and tensor that did, named)."""
        if self.blocks is not None:
            same = all(_same(b[first - 1:last], g[first - 1:last]) for b, g in zip(self.blocks, self.golden))
            if same:
                return
        for t in range(first, last + 1):
            given = self.row(t) if self.blocks is not None else self._fresh.pop(t, None)
            if given is not None:
                _check_unchanged(given, self.grads[t - 1], f"the gradients of step {t}, grads")


def _many(run: Any, given: _Given, first: int, last: int, shapes: Sequence[tuple], dtype: str, *,
          finite: bool = False) -> list[np.ndarray] | None:
    """``run.steps(rows)`` over steps first..last, checked like ``params()``: the parameters after each step,
    (rows, *shape) per tensor; None if it cannot batch them."""
    try:
        got = run.steps([given.row(t) for t in range(first, last + 1)])
    except NotImplementedError:
        given.check(first, last)  # refused before any step (the contract), so nothing may have been written
        return None
    given.check(first, last)
    return _checked(got, [(last - first + 1, *shape) for shape in shapes], dtype, f"after steps {first}..{last}",
                    "steps()", finite=finite)


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
    # no NaN or infinity may appear where the inputs have none (the reference then has none either)
    finite = "nonfinite" not in s.features
    given0 = [np.array(p, copy=True) for p in params0]
    run = adapter.start(s.config, given0, dtype=dtype, device=device)
    first = read_params(run, shapes, dtype, 0, finite=finite)
    states: dict[int, dict] = {}
    want = set(int(t) for t in state_steps)
    twin = None  # a restored or rebuilt run that must follow bitwise
    twin_kind = None
    if s.roundtrip_at is not None and "config" in s.features:
        twin_given0 = [np.array(p, copy=True) for p in params0]
        twin = adapter.rebuild(run.config(), twin_given0, dtype=dtype, device=device)
        twin_kind = "config"
    applied = 0 if not finite else None  # the steps a skipping implementation counts; None: every step, t

    def after(t: int, latest: list[np.ndarray]) -> None:
        """What the harness does after step t: the twin's step, the checkpoint, the state read."""
        nonlocal twin, twin_kind, applied
        row = grads[t - 1]
        if twin is not None:
            twin.step(_fresh(row))
            other = read_params(twin, shapes, dtype, t, finite=finite)
            if not _bitwise_equal(latest, other):
                k = next(i for i, (x, y) in enumerate(zip(latest, other)) if not np.array_equal(x, y))
                diff = np.flatnonzero(latest[k].ravel() != other[k].ravel())
                raise RoundTripMismatch(
                    f"{twin_kind} round trip: the {'rebuilt' if twin_kind == 'config' else 'restored'} optimizer "
                    f"differs from the uninterrupted one at step {t}, tensor {k}, element {int(diff[0])}: "
                    f"{latest[k].ravel()[diff[0]]!r} vs {other[k].ravel()[diff[0]]!r} ({diff.size} elements)")
        if s.roundtrip_at == t and "checkpoint" in s.features:
            twin = adapter.restore(s.config, run.save(), dtype=dtype, device=device)
            twin_kind = "checkpoint"
            restored = read_params(twin, shapes, dtype, t, finite=finite)
            if not _bitwise_equal(latest, restored):
                raise RoundTripMismatch(f"checkpoint round trip: restored parameters differ from the saved ones "
                                        f"at step {t}")
        if applied is not None:
            applied += all_finite(row)
        if t in want:
            states[t] = _state_checked(run.state(), shapes, t, t if applied is None else applied)

    # the steps after which the harness must look at the run between two steps (state, a round trip)
    stops = sorted(want | ({int(s.roundtrip_at)} if s.roundtrip_at is not None else set()) | {len(grads)})
    # the parameters after every step, per tensor, in blocks of rows: a segment from run.steps() is one
    # block, a step alone a block of one row
    blocks: list[list[np.ndarray]] = [[th[None] for th in first]]
    batching = hasattr(run, "steps")
    given = _Given(grads)
    t = t0 = 1  # t0: the first step whose gradients are not checked yet
    while t <= len(grads):
        end = next(x for x in stops if x >= t)
        if batching and twin is None and end > t:
            block = _many(run, given, t, end, shapes, dtype, finite=finite)
            if block is None:  # the run cannot batch these inputs: one by one from here on
                batching = False
            else:
                blocks.append(block)
                for u in range(t, end + 1):
                    after(u, [b[u - t, ...] for b in block])
                t = t0 = end + 1
                continue
        run.step(given.row(t))
        if t == end:  # what steps t0..end were given, checked at once where the harness looks at the run
            given.check(t0, end)
            t0 = end + 1
        latest = read_params(run, shapes, dtype, t, finite=finite)
        blocks.append([th[None] for th in latest])
        after(t, latest)
        t += 1
    _check_unchanged(given0, params0, "the initial parameters given to start(), params")
    if twin_kind == "config":
        _check_unchanged(twin_given0, params0, "the initial parameters given to rebuild(), params")
    return Driven([np.concatenate([b[k] for b in blocks]) for k in range(len(shapes))], states)


def classify(exc: BaseException) -> tuple[str, str]:
    """(verdict, message) for an exception a run raised: skipped, failed, crashed, timeout or error."""
    from .bridge import ChildCrashed, ChildTimeout

    if isinstance(exc, Unsupported):
        return "skipped", str(exc)
    if isinstance(exc, RoundTripMismatch):
        return "failed", str(exc)
    if isinstance(exc, AdapterContractError):  # the rule, tensor and values are the diagnosis; no traceback
        return "error", f"{CONTRACT_BROKEN}{exc}"
    verdict = "crashed" if isinstance(exc, ChildCrashed) else "timeout" if isinstance(exc, ChildTimeout) else "error"
    tb = traceback.format_exception(exc)
    return verdict, f"{type(exc).__name__}: {exc}\n" + "".join(tb[-4:-1])
