"""Running one case (adapter x scenario x dtype x device) and judging it.

``run_case`` feeds the golden's inputs to the adapter step by step, reads the
parameters after every step (and the state where the golden has it), runs the
round trips the scenario asks for, then computes the error budget and assesses
the run. It returns a ``CaseOutcome``; it never raises for a misbehaving adapter
(the exception becomes verdict "error" with its traceback summary).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adamconf.adapters.driver import AdapterContractError, RoundTripMismatch, classify, drive, support
from adamconf.golden.scenarios import Scenario
from adamconf.golden.store import DATA_DIR, Golden, load_golden
from adamconf.reference.judge import Assessment, judge_against
from adamconf.reference.dialect import resolve_dialect
from adamconf.reports.record import CaseRecord
from adamconf.reports.results import case_id, rerun_command  # the one place ids and reruns are formatted

__all__ = ["AdapterContractError", "CaseOutcome", "RoundTripMismatch", "case_id", "execute", "rerun_command", "run_case", "support"]


@dataclass
class CaseOutcome:
    id: str
    adapter: str
    scenario: str
    family: str
    dtype: str
    device: str
    dialect: str
    verdict: str  # passed | failed | skipped | error | crashed | timeout
    message: str = ""
    assessment: Assessment | None = None
    duration_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def budget_used(self) -> float | None:
        return None if self.assessment is None else self.assessment.budget_used

    @property
    def first_failing_step(self) -> int | None:
        return None if self.assessment is None else self.assessment.first_failing_step

    @property
    def rerun(self) -> str:
        """The rerun command of the record: with the spec the adapter was loaded by, not its name."""
        return CaseRecord.from_outcome(self).rerun


def execute(adapter, golden: Golden, dtype: str, device: str = "cpu") -> list[np.ndarray]:
    """Run ``adapter`` through the golden's inputs; theta after every step 0..T, per tensor (float64).

    The parameters are checked against the contract as in ``run_case``; exceptions
    from the adapter propagate (``Unsupported`` included).
    """
    return drive(adapter, golden.scenario, golden.params0, golden.grads, dtype, device).theta


def run_case(adapter: Any, scenario: Scenario, dtype: str, device: str = "cpu", *,
             data_dir: Path = DATA_DIR, manifest: dict | None = None) -> CaseOutcome:
    dialect = resolve_dialect(adapter.dialect)
    outcome = CaseOutcome(case_id(adapter.name, scenario.name, dtype, device), adapter.name, scenario.name,
                          scenario.family, dtype, device, scenario.dialect_key(dialect), "skipped")
    t0 = time.perf_counter()
    reason = support(adapter, scenario, dtype, device)
    if reason:
        outcome.message = reason
        return outcome
    golden = load_golden(scenario, dialect, data_dir, manifest)
    want_state = "state" in adapter.features and len(golden.state_steps) > 0
    try:
        driven = drive(adapter, scenario, golden.params0, golden.grads, dtype, device,
                       state_steps=golden.state_steps if want_state else ())
    except Exception as exc:  # the adapter raised: recorded, the run goes on
        outcome.verdict, message = classify(exc)
        outcome.message = f"{adapter.name}: {message}" if outcome.verdict == "skipped" else message
        outcome.duration_s = time.perf_counter() - t0
        return outcome
    theta_run, states = driven.theta, driven.states
    a = judge_against(golden, dialect, theta_run, dtype, states=states or None,
                      declared=getattr(adapter, "path_class", None), bias_check=scenario.bias_check)
    outcome.assessment = a
    outcome.verdict = "passed" if a.passed else "failed"
    outcome.message = a.message()
    outcome.duration_s = time.perf_counter() - t0
    return outcome
