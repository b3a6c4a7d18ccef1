"""The record of one case: the one type that the suites, the plugin's crash path and the results file share.

A case is adapter x scenario x dtype x device, with the id
``adapter::scenario::dtype::device`` (``case_id``). Its record, ``CaseRecord``,
holds what the run found (verdict, message, budget used per check, first
failing step, error-vs-step series) and the *spec* of the adapter, what the user
gave ``--adapter`` (``path/to/file.py:Class``, ``bridge:...``, a built-in
name): the rerun command repeats the spec, the id names the adapter.

``CaseRecord.to_dict()`` is a case of the results schema (``results.schema.json``
beside this module, docs/results-schema.md) exactly: every required field in the
documented order, ``budget_used`` the largest check unless given, non-finite
numbers as ``null``, a series of at most ``MAX_SERIES_POINTS`` steps, the
``extra`` fields as ``x_<name>``. ``CaseRecord.from_dict`` reads one back (from
an xdist worker, or a caller of ``results.new_results``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["CASE_FIELDS", "MAX_SERIES_POINTS", "CaseRecord", "case_id", "downsample_series", "finite_or_none",
           "rerun_command"]

#: The fields of a case in the results schema, in the documented order.
CASE_FIELDS = ("id", "adapter", "scenario", "family", "dtype", "device", "dialect", "verdict", "budget_used",
               "checks", "first_failing_step", "message", "expectation", "rerun", "duration_s", "series",
               "path_class", "reference", "raw_checks")
#: The most points a case's ``series`` keeps (see ``downsample_series``).
MAX_SERIES_POINTS = 200


def case_id(adapter: str, scenario: str, dtype: str, device: str) -> str:
    """The id of a case: ``adapter::scenario::dtype::device`` (e.g. ``torch.adam::dense-default::float32::cpu``)."""
    return f"{adapter}::{scenario}::{dtype}::{device}"


def rerun_command(spec: str, scenario: str, dtype: str, device: str) -> str:
    """The shell command that reruns exactly one case (``spec``: the ``--adapter`` spec; quoted for a POSIX shell)."""
    q = shlex.quote
    return f"adamconf run --adapter {q(spec)} --scenario {q(scenario)} --dtype {q(dtype)} --device {q(device)}"


@dataclass
class CaseRecord:
    """One case of a run, as the results file reports it (``to_dict``)."""

    adapter: str               # the adapter's name, as in the case id
    scenario: str              # the scenario as in the case id (``determinism/<name>`` for that suite)
    family: str
    dtype: str
    device: str
    verdict: str               # one of results.VERDICTS
    spec: str | None = None    # the --adapter spec that the rerun command repeats; None: the name (a built-in)
    dialect: str | None = None
    message: str = ""
    duration_s: float | None = None
    budget_used: float | None = None  # None: the largest check
    checks: dict[str, float | None] = field(default_factory=dict)
    first_failing_step: int | None = None
    series: dict[str, list] | None = None
    expectation: dict | None = None   # {"reason", "link"} of the expectations entry that lists the case
    path_class: str | None = None     # the arithmetic path class the verdict names (docs/verdicts.md)
    reference: str | None = None      # the way of holding the hyperparameters it was judged against
    raw_checks: dict[str, float | None] = field(default_factory=dict)  # plain error / bound per check
    extra: dict[str, Any] = field(default_factory=dict)  # written as x_<name> fields
    #: the rerun command of a record read back (``from_dict``): kept as written
    recorded_rerun: str | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return case_id(self.adapter, self.scenario, self.dtype, self.device)

    @property
    def rerun(self) -> str:
        """The command that reruns this case alone, with the adapter as the user named it."""
        if self.recorded_rerun is not None:
            return self.recorded_rerun
        return rerun_command(self.spec or self.adapter, self.scenario, self.dtype, self.device)

    @classmethod
    def from_outcome(cls, outcome: Any, **fields: Any) -> "CaseRecord":
        """The record of a runner outcome (``suites.runner.CaseOutcome``); ``fields`` override what it holds.

        Without a ``spec``, the spec under which an adapter of that name was loaded in
        this process (``adapters.registry.spec_of``), else the name.
        """
        a = outcome.assessment
        values: dict[str, Any] = dict(
            adapter=outcome.adapter, scenario=outcome.scenario, family=outcome.family, dtype=outcome.dtype,
            device=outcome.device, verdict=outcome.verdict, dialect=outcome.dialect or None,
            message=outcome.message, duration_s=outcome.duration_s,
            checks=dict(a.checks) if a is not None else {},
            path_class=a.path_class if a is not None else None,
            reference=a.reference if a is not None else None,
            raw_checks=dict(a.raw) if a is not None else {},
            first_failing_step=a.first_failing_step if a is not None else None,
            series=dict(a.series) if a is not None and a.series else None,
            extra=dict(outcome.extra))
        values.update(fields)
        if values.get("spec") is None:
            from adamconf.adapters.registry import spec_of

            values["spec"] = spec_of(values["adapter"])
        return cls(**values)

    @classmethod
    def from_dict(cls, case: Mapping[str, Any]) -> "CaseRecord":
        """A record from a case dict (``to_dict``'s, or a caller's with only some fields); ValueError if it is not one.

        ``id`` is derived from the names and not read; a ``rerun`` is kept as written,
        and without one the command is built from ``spec`` (or the name).
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "recorded_rerun"}
        unknown = sorted(k for k in case if k not in names and k not in ("id", "rerun") and not k.startswith("x_"))
        if unknown:
            raise ValueError(f"case {case.get('id', '?')!r}: unknown field(s) {unknown}; a case has "
                             f"{list(CASE_FIELDS)} and x_ fields")
        missing = [k for k in ("adapter", "scenario", "family", "dtype", "device", "verdict") if k not in case]
        if missing:
            raise ValueError(f"case {case.get('id', '?')!r}: missing field(s) {missing}")
        values = {k: case[k] for k in names if k in case}
        for key in ("checks", "raw_checks"):
            values[key] = dict(values.get(key) or {})
        values["message"] = "" if values.get("message") is None else values["message"]
        return cls(**values, extra={k[2:]: v for k, v in case.items() if k.startswith("x_")},
                   recorded_rerun=case.get("rerun"))

    def to_dict(self) -> dict[str, Any]:
        """The case as the results schema has it (see the module docstring)."""
        checks = {name: finite_or_none(value) for name, value in self.checks.items()}
        budget = self.budget_used
        if budget is None:
            measured = [v for v in checks.values() if isinstance(v, float)]
            budget = max(measured) if measured else None
        step = self.first_failing_step
        if isinstance(step, numbers.Integral):  # numpy ints are not JSON ints
            step = int(step)
        out = {
            "id": self.id, "adapter": self.adapter, "scenario": self.scenario, "family": self.family,
            "dtype": self.dtype, "device": self.device, "dialect": self.dialect, "verdict": self.verdict,
            "budget_used": finite_or_none(budget), "checks": checks, "first_failing_step": step,
            "message": str(self.message), "expectation": None if self.expectation is None else dict(self.expectation),
            "rerun": self.rerun, "duration_s": finite_or_none(self.duration_s),
            "series": None if self.series is None else downsample_series(self.series, keep_step=step),
            "path_class": self.path_class, "reference": self.reference,
            "raw_checks": {name: finite_or_none(value) for name, value in self.raw_checks.items()},
        }
        assert tuple(out) == CASE_FIELDS
        out.update({k if k.startswith("x_") else f"x_{k}": v for k, v in self.extra.items()})
        return out


def finite_or_none(value: Any) -> Any:
    """``None`` for NaN and infinities (JSON cannot hold them), floats for numbers, else unchanged."""
    if isinstance(value, bool) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value  # left for results.validate() to reject with the path and the value
    return number if math.isfinite(number) else None


#: significant digits a series value keeps: plenty for a plot; the checks keep every digit
SERIES_DIGITS = 4


def _plotted(value):
    """A series value rounded to ``SERIES_DIGITS`` significant digits (a 10,000-case results file is
    a third the size, and reads in a third of the time)."""
    if type(value) is float and value != 0.0:
        return float(f"{value:.{SERIES_DIGITS}g}")
    return value


def downsample_series(series: Mapping[str, Sequence], max_points: int = MAX_SERIES_POINTS,
                      keep_step: int | None = None) -> dict[str, list]:
    """``series`` with at most ``max_points`` steps, keeping every peak of the error.

    The first and last steps are kept; the steps between them are cut into
    ``max_points - 2`` equal buckets and each bucket keeps its worst step (the
    largest budget fraction over all the series), so the plotted envelope of the
    budget used is the true one. ``keep_step`` (the first failing step) is kept
    in place of its bucket's worst. Values are floats rounded to ``SERIES_DIGITS``
    significant digits (``None`` where not finite); steps are ints. ValueError if a series has not one value per step.
    """
    steps = [int(s) for s in series["step"]]
    columns = {k: [_plotted(finite_or_none(v)) for v in vs] for k, vs in series.items() if k != "step"}
    for name, values in columns.items():
        if len(values) != len(steps):
            raise ValueError(f"series[{name!r}] has {len(values)} values for {len(steps)} steps; "
                             "every series needs one value per step")
    n = len(steps)
    if n <= max_points:
        return {"step": steps, **columns}

    def worst(i: int) -> float:
        return max((c[i] for c in columns.values() if c[i] is not None), default=-1.0)

    buckets = max_points - 2
    kept = [0]
    for b in range(buckets):
        lo = 1 + (n - 2) * b // buckets
        hi = 1 + (n - 2) * (b + 1) // buckets
        if lo >= hi:
            continue
        keep_index = next((i for i in range(lo, hi) if steps[i] == keep_step), None)
        kept.append(keep_index if keep_index is not None else max(range(lo, hi), key=worst))
    kept.append(n - 1)
    return {"step": [steps[i] for i in kept], **{k: [c[i] for i in kept] for k, c in columns.items()}}
