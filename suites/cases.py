"""Cases of the suites: which run (the plan), how each is judged in pytest, and its results record.

A case is adapter x scenario x dtype x device, named ``runner.case_id``. The
plan is built from the plugin's options; every suite module asks it for the
cases of its family (``FAMILY``) and runs each through ``assert_conforms``,
which turns the runner's verdict into a pytest outcome:

==========  ====================================================================
verdict     pytest outcome
==========  ====================================================================
passed      passes (``xpassed`` instead, failing, if an expectations file lists it)
failed      fails with the step, tensor, element, values, ulps, budget and rerun
            command (``xfailed`` if listed with verdict "failed")
skipped     skipped with the reason (the adapter lacks a dtype, device or feature)
error       fails: the adapter raised (``xfailed`` if listed with verdict "error")
==========  ====================================================================

``crashed`` and ``timeout`` are decided by the plugin, which sees the worker die
or pytest-timeout fire, or by the runner when a bridged adapter's child dies or
hangs (they fail as ``error`` does). The record of every case, a
``reports.record.CaseRecord``, is built here (``record``) and travels to the
controller in ``report.user_properties``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pytest

from adamconf.adapters.contract import DEVICES, DTYPES
from adamconf.adapters.driver import CONTRACT_BROKEN
from adamconf.golden.scenarios import CATALOGUE, FAMILIES, Scenario
from adamconf.reports.record import CaseRecord, case_id, rerun_command

from .expectations import Expectation, Expectations
from .runner import CaseOutcome, run_case

__all__ = [
    "DETERMINISM",
    "DETERMINISM_SCENARIOS",
    "AdapterRaised",
    "BoundCase",
    "Case",
    "CaseFailed",
    "Plan",
    "UnexpectedPass",
    "assert_conforms",
    "failure_message",
    "record",
]

#: The pseudo-family of the determinism suite: a catalogue scenario run twice.
DETERMINISM = "determinism"
#: Short scenarios, one or two per family, that the determinism suite repeats.
DETERMINISM_SCENARIOS = ("dense-default", "dense-mixed-shapes", "sparse-repeated-indices", "clip-global-fires",
                         "amsgrad-decreasing-v", "decay-piecewise", "dtype-half")
#: The record field carried in ``report.user_properties``.
RECORD_PROPERTY = "adamconf_case"


class CaseFailed(AssertionError):
    """A check over its budget, or an exact check that differed."""


class AdapterRaised(RuntimeError):
    """The adapter raised while the case ran (verdict "error")."""


class UnexpectedPass(AssertionError):
    """A case listed in an expectations file passed: the entry is out of date."""


@dataclass(frozen=True)
class Case:
    """One case to run: the adapter as named on the command line, the scenario, dtype, device."""

    spec: str  # the --adapter spec: what the rerun command must repeat
    adapter: Any
    scenario: Scenario
    dtype: str
    device: str
    family: str  # the suite's family: the scenario's, or DETERMINISM
    expectation: Expectation | None = None

    @property
    def label(self) -> str:
        """The scenario as it appears in the case id (``determinism/<name>`` for the determinism suite)."""
        return f"{DETERMINISM}/{self.scenario.name}" if self.family == DETERMINISM else self.scenario.name

    @property
    def id(self) -> str:
        return case_id(self.adapter.name, self.label, self.dtype, self.device)

    @property
    def rerun(self) -> str:
        return rerun_command(self.spec, self.label, self.dtype, self.device)


@dataclass
class Plan:
    """The adapters, scenario patterns, dtypes, devices and expectations of one run."""

    adapters: list[tuple[str, Any, bool]]  # (spec, adapter, is_builtin)
    scenario_patterns: Sequence[str] = ()
    dtypes: Sequence[str] = ()
    devices: Sequence[str] = ("cpu",)
    expectations: Expectations = field(default_factory=Expectations)

    def scenarios(self, family: str) -> list[Scenario]:
        """The catalogue's scenarios of a suite's family that the patterns select, in catalogue order."""
        if family == DETERMINISM:
            pool = [s for s in CATALOGUE if s.name in DETERMINISM_SCENARIOS]
            names = {s.name: f"{DETERMINISM}/{s.name}" for s in pool}
        else:
            pool = [s for s in CATALOGUE if s.family == family]
            names = {s.name: s.name for s in pool}
        if not self.scenario_patterns:
            return pool
        return [s for s in pool if any(fnmatch.fnmatchcase(names[s.name], p) or p == family
                                       for p in self.scenario_patterns)]

    def cases(self, family: str) -> list[Case]:
        """Every case of a family: scenarios x dtypes x adapters x devices (nothing is skipped here).

        Scenario-major, like the results' order: xdist's load scheduler hands each worker runs of
        consecutive cases, so one worker computes a (scenario, dtype) group's model and budget once for
        most of the group's adapters.
        """
        out = []
        for scenario in self.scenarios(family):
            for dtype in (d for d in DTYPES if d in scenario.dtypes and (not self.dtypes or d in self.dtypes)):
                for spec, adapter, builtin in self.adapters:
                    for device in self.devices:
                        case = Case(spec, adapter, scenario, dtype, device, family)
                        expected = self.expectations.find(case.id, builtin_adapter=builtin)
                        out.append(dataclasses.replace(case, expectation=expected))
        return out

    def possible_ids(self) -> list[str]:
        """Every case id the run's adapters could have, whatever is selected (for stale expectations)."""
        ids = []
        for _, adapter, _ in self.adapters:
            for s in CATALOGUE:
                labels = [s.name] + ([f"{DETERMINISM}/{s.name}"] if s.name in DETERMINISM_SCENARIOS else [])
                for label in labels:
                    ids += [case_id(adapter.name, label, d, dev) for d in s.dtypes
                            for dev in dict.fromkeys([*DEVICES, *adapter.devices])]
        return ids

    def order(self, rec: dict) -> tuple:
        """Sort key of a results record: catalogue order, then adapter, dtype, device."""
        names = [a.name for _, a, _ in self.adapters]
        scenario = rec["scenario"].removeprefix(f"{DETERMINISM}/")
        index = next((i for i, s in enumerate(CATALOGUE) if s.name == scenario), len(CATALOGUE))
        fam = (*FAMILIES, DETERMINISM)
        return (fam.index(rec["family"]) if rec["family"] in fam else len(fam), index,
                names.index(rec["adapter"]) if rec["adapter"] in names else len(names),
                DTYPES.index(rec["dtype"]) if rec["dtype"] in DTYPES else 9, rec["device"])


# -- judging a case in pytest ---------------------------------------------------------------------
@dataclass
class BoundCase:
    """A case and the pytest item running it (the record is stored on the item for the plugin)."""

    case: Case
    node: Any
    record: CaseRecord | None = None


def assert_conforms(bound: BoundCase, run: Callable[[Case], CaseOutcome] | None = None) -> None:
    """Run the case and turn its verdict into a pytest outcome; the record is left on ``bound``."""
    __tracebackhide__ = True
    case = bound.case
    outcome = (run or _run_conformance)(case)
    exp = case.expectation
    verdict = outcome.verdict
    changed = None
    if exp is not None and verdict == exp.verdict == "failed" and outcome.assessment is not None:
        changed = exp.changed(outcome.assessment.checks, outcome.budget_used)
    if exp is not None and verdict == exp.verdict and changed is None:
        verdict = "xfailed"
    elif exp is not None and verdict == "passed":
        verdict = "xpassed"
    text = {
        "failed": lambda: (f"{case.id} fails as {exp.source} expects, but its deviation changed: {changed}. "
                           f"Look at the failure below; if the new deviation is understood, update the entry's "
                           f"check or budget.\n" if changed else "") + failure_message(case, outcome),
        "error": lambda: error_message(case, outcome),
        "crashed": lambda: error_message(case, outcome),
        "timeout": lambda: error_message(case, outcome),
        "xfailed": lambda: f"expected ({exp.source}): {exp.reason}\n" + (
            failure_message(case, outcome) if outcome.verdict == "failed" else error_message(case, outcome)),
        "xpassed": lambda: (f"{case.id} passed, but {exp.source} lists it as expected to "
                            f"{'fail' if exp.verdict == 'failed' else 'raise'} ({exp.reason}). The deviation is "
                            f"gone: remove the entry so that its return is caught.\nrerun: {case.rerun}"),
    }.get(verdict, lambda: outcome.message)()
    bound.record = record(case, outcome, verdict, text)
    if verdict == "skipped":
        pytest.skip(outcome.message)
    if verdict == "xfailed":
        pytest.xfail(f"{exp.reason} ({exp.source})")
    if verdict == "xpassed":
        raise UnexpectedPass(text)
    if verdict == "failed":
        raise CaseFailed(text)
    if verdict in ("error", "crashed", "timeout"):
        raise AdapterRaised(text)


def _run_conformance(case: Case) -> CaseOutcome:
    return run_case(case.adapter, case.scenario, case.dtype, case.device)


def failure_message(case: Case, outcome: CaseOutcome) -> str:
    """What a maintainer needs: the case, the golden, the first failing step, the worst elements, the rerun."""
    used = outcome.budget_used
    head = f"{case.id} FAILED"
    if outcome.assessment is not None:
        head += f" against the golden in dialect {outcome.dialect!r}" + (f": {_used(used)}" if used is not None else "")
        step = outcome.first_failing_step
        head += f"\nfirst failing step: {step}" if step is not None else ""
    lines = [head, f"scenario {case.scenario.name} ({case.scenario.family}): {case.scenario.description}; "
                   f"dtype {case.dtype}, device {case.device}",
             *(f"  {line}" for line in _compact_state_lines(outcome.message.splitlines())),
             f"rerun: {case.rerun}"]
    return "\n".join(lines)


_STATE_LINE = re.compile(r"state (\w+) outside its budget at step (\d+) \(tensor (\d+)\)")


def _compact_state_lines(lines: list[str]) -> list[str]:
    """One line per state variable instead of one per step and tensor (a run can have hundreds)."""
    out: list = []
    seen: dict[str, tuple[set, set]] = {}
    for line in lines:
        hit = _STATE_LINE.fullmatch(line.strip())
        if hit is None:
            out.append(line)
            continue
        key = hit.group(1)
        if key not in seen:
            seen[key] = (set(), set())
            out.append((key,))  # where the summary goes: the first occurrence
        seen[key][0].add(int(hit.group(2)))
        seen[key][1].add(int(hit.group(3)))
    for i, item in enumerate(out):
        if isinstance(item, tuple):
            steps, tensors = (sorted(x) for x in seen[item[0]])
            out[i] = (f"state {item[0]} outside its budget at {len(steps)} recorded step(s) from step {steps[0]} "
                      f"(tensor{'s' if len(tensors) > 1 else ''} {', '.join(map(str, tensors))})")
    return out


def _used(used: float) -> str:
    if used <= 10:
        return f"{100 * used:.1f}% of its error budget used"
    return f"{used:.3g} times its error budget"


def error_message(case: Case, outcome: CaseOutcome) -> str:
    broken = outcome.message.startswith(CONTRACT_BROKEN)
    body = outcome.message[len(CONTRACT_BROKEN):] if broken else outcome.message
    return (f"{case.id}: the adapter {'broke the contract' if broken else 'raised'} (verdict {outcome.verdict}), "
            f"so nothing was judged:\n" + "\n".join(f"  {line}" for line in body.splitlines()) + f"\nrerun: {case.rerun}")


def record(case: Case, outcome: CaseOutcome | None, verdict: str, message: str, *,
           duration_s: float | None = None) -> CaseRecord:
    """The case's record (docs/results-schema.md): what ``outcome`` measured (None: the case did not
    complete), judged ``verdict`` with ``message``; the rerun command repeats the case's spec."""
    fields = dict(spec=case.spec, scenario=case.label, family=case.family, verdict=verdict, message=message,
                  expectation=case.expectation.record() if case.expectation is not None else None)
    if outcome is None:
        return CaseRecord(case.adapter.name, dtype=case.dtype, device=case.device, duration_s=duration_s, **fields)
    return CaseRecord.from_outcome(outcome, **fields,
                                   **({"duration_s": duration_s} if duration_s is not None else {}))
