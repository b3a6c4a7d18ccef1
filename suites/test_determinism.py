"""Determinism: the same case run twice gives bitwise-equal parameters after every step.

No tolerance: two runs of one implementation, with the same inputs on the same
device, must agree in every bit (a -0.0 against a +0.0 included). A difference
means a race, an uninitialised buffer or state leaking between optimizers.
The cases are a few short scenarios of several families (``DETERMINISM_SCENARIOS``),
named ``determinism/<scenario>``. Each run is driven by ``adapters.driver.drive``,
so the contract checks of every case apply (count, shape, dtype of the parameters).
"""

from __future__ import annotations

import time

import numpy as np

from adamconf.adapters.driver import classify, drive, support
from adamconf.golden.store import load_inputs
from adamconf.suites.cases import Case, assert_conforms
from adamconf.suites.runner import CaseOutcome

FAMILY = "determinism"


def test_determinism(adamconf_case):
    assert_conforms(adamconf_case, run=run_twice)


def run_twice(case: Case) -> CaseOutcome:
    """Run the scenario's inputs twice through fresh runs and compare the parameters bit for bit."""
    out = CaseOutcome(case.id, case.adapter.name, case.label, case.family, case.dtype, case.device, "", "skipped")
    reason = support(case.adapter, case.scenario, case.dtype, case.device)
    if reason:
        out.message = reason
        return out
    t0 = time.perf_counter()
    params0, grads = load_inputs(case.scenario)
    try:
        first = drive(case.adapter, case.scenario, params0, grads, case.dtype, case.device).theta
        second = drive(case.adapter, case.scenario, params0, grads, case.dtype, case.device).theta
    except Exception as exc:  # the adapter raised: recorded, the run goes on
        out.verdict, message = classify(exc)
        out.message = f"{case.adapter.name}: {message}" if out.verdict == "skipped" else message
        return out
    finally:
        out.duration_s = time.perf_counter() - t0
    out.verdict, out.message = "passed", ""
    for t in range(len(grads) + 1):
        for k, (x, y) in enumerate(zip(first, second)):
            x, y = np.asarray(x[t]), np.asarray(y[t])  # tensor k after step t
            differ = np.flatnonzero(x.view(np.uint64).ravel() != y.view(np.uint64).ravel())
            if differ.size:
                i = np.unravel_index(int(differ[0]), x.shape)
                out.verdict = "failed"
                out.message = (f"two runs of the same case differ at step {t}, tensor {k}, element "
                               f"{tuple(int(j) for j in i)}: {x[i]!r} then {y[i]!r} ({differ.size} of "
                               f"{x.size} elements differ at that step)")
                return out
    return out
