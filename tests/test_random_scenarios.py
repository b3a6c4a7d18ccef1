"""Random scenarios (tests/random_scenarios.py): a derandomized sample of random Adam runs, each with its
golden computed by the reference on the fly and judged through the harness's own path.

- every member of the correct population (tests/population.py), in every dialect, passes every example;
- every built-in CPU adapter available here passes a smaller sample (the examples it supports);
- every mutant of tests/mutants.py fails every example of its family (``MUTANT_EXAMPLES``), while the
  correct base of the same dialect passes them;
- the false failures the random examples found (tests/data/random_scenarios/*.json: a correct member
  failing an example, each a missing term of the budget, fixed in reference/) pass.

The long run is ``python benchmarks/random_scenarios.py`` (``tox -e random``): thousands of examples per
adapter, the failures written as reproducible scenario files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from adamconf.adapters.contract import availability
from adamconf.adapters.registry import builtin_adapters
from mutants import CATALOGUE as MUTANTS
from mutants import Base
from population import MEMBERS, member
from adamconf.reference.config import ExponentialDecay
from random_scenarios import (DIALECTS, RANDOM_EXCLUDED, adapter_examples, check, example_from_json, examples,
                              load_example, mutant_examples)

#: examples per population member, per built-in adapter, per mutant
N_POPULATION = 50
N_ADAPTER = 6
N_MUTANT = 4
#: adapters whose every example costs seconds (a compilation, a child interpreter): fewer examples
N_SLOW_ADAPTER = 2
SLOW = ("torch.adam.compiled", "keras.jax.adam", "keras.torch.adam")


def _settings(n: int):
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def _failure(adapter, ex, out) -> str:
    return f"{adapter.name} {out.verdict} on {ex!r}\n{out.message}"


@pytest.mark.parametrize("cls", MEMBERS, ids=[m.key for m in MEMBERS])
def test_correct_population_passes_random_examples(cls):
    @_settings(N_POPULATION)
    @given(ex=examples(dtypes=cls.dtypes))
    def run(ex):
        adapter = cls(DIALECTS[ex.dialect], label=ex.dialect)
        out = check(adapter, ex)
        assert out.verdict in ("passed", "skipped"), _failure(adapter, ex, out)

    run()


def test_correct_base_passes_random_examples():
    """tests/mutants.py's correct base (the mutants' control) is one more correct implementation."""
    @_settings(N_POPULATION)
    @given(ex=examples(dtypes=Base.dtypes, dialects=("pytorch", "keras", "optax", "pytorch-sparse")))
    def run(ex):
        adapter = Base(ex.dialect)
        out = check(adapter, ex)
        assert out.verdict in ("passed", "skipped"), _failure(adapter, ex, out)

    run()


def _available() -> list:
    found = []
    for name, adapter in builtin_adapters().items():
        if "cpu" in adapter.devices and availability(adapter, "cpu") is None:
            found.append(pytest.param(name, id=name))
    return found


AVAILABLE = _available()


@pytest.mark.skipif(not AVAILABLE, reason="no framework installed: no built-in adapter is available")
@pytest.mark.parametrize("name", AVAILABLE or ["none"])
def test_builtin_adapter_passes_random_examples(name):
    if name in RANDOM_EXCLUDED:
        pytest.skip(f"{name} is not run on random examples: {RANDOM_EXCLUDED[name]}")
    adapter = builtin_adapters()[name]
    # the dtypes and features it declares, its known deviations left out (random_scenarios.ADAPTER_EXAMPLES)
    strategy = adapter_examples(adapter, name)
    ran = []

    @_settings(N_SLOW_ADAPTER if name in SLOW else N_ADAPTER)
    @given(ex=strategy)
    def run(ex):
        with np.errstate(all="ignore"):
            out = check(adapter, ex)
        assert out.verdict in ("passed", "skipped"), _failure(adapter, ex, out)
        ran.append(out.verdict)

    run()
    assert ran.count("passed") >= len(ran) // 2, ran  # most examples ran


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_fails_the_random_examples_of_its_family(mutant):
    twice = mutant.kind == "determinism"

    @_settings(N_MUTANT)
    @given(ex=mutant_examples(mutant))
    def run(ex):
        control = check(mutant.base(), ex, twice=twice)
        assert control.verdict == "passed", _failure(mutant.base(), ex, control)
        out = check(mutant.adapter(), ex, twice=twice)
        # killed: failed (a check over its budget, the non-finite pattern, a round trip, two runs that differ),
        # or an error (bc_late's division by zero makes NaN parameters, which the driver refuses as a contract
        # breach before any judging)
        assert out.verdict in ("failed", "error"), f"{mutant.name} survived: {_failure(mutant.adapter(), ex, out)}"

    run()


@given(ex=examples())
@_settings(30)
def test_examples_round_trip_through_json(ex):
    """A failing example is written as JSON (save_failure) and read back as the same scenario."""
    again = example_from_json(json.dumps(ex.to_dict()))
    assert again == ex
    assert again.scenario.dtypes == (ex.dtype,)


@given(data=st.data())
@_settings(20)
def test_strategies_cover_what_they_claim(data):
    """Each pinned part of the strategy is honoured (what the mutant examples rely on)."""
    ex = data.draw(examples(dtypes=("float32",), amsgrad=True, profile="decreasing", clip="global_clipnorm",
                            wd="decoupled", generator="sparse", repeats=2, schedule=st.just(ExponentialDecay(1e-3, 4, 0.5))))
    c = ex.scenario.config
    assert c.amsgrad and c.global_clipnorm and c.weight_decay_mode == "decoupled" and c.schedule is not None
    assert ex.scenario.sparse and ex.scenario.inputs.opt("repeats") == 2 and ex.dtype == "float32"


# -- the false failures the random examples found (fixed in reference/budget.py and reference/judge.py) ----

REGRESSIONS = sorted((Path(__file__).parent / "data" / "random_scenarios").glob("*.json"))


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_false_failures_found_by_random_examples_stay_fixed(path):
    """Each file is a correct population member that failed a random example before its fix (``why``)."""
    ex, rec = load_example(path)
    key, label = rec["adapter"].removeprefix("pop.").split("@")
    out = check(member(key, label), ex)
    assert out.verdict == "passed", f"{path.name}: {rec['why']}\n{out.message}"


# -- the long command on a third-party adapter ------------------------------------------------------------

_BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "random_scenarios.py"
_EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "numpy_adapter.py"

_MISSCALED = '''
import sys
sys.path.insert(0, {examples!r})
from numpy_adapter import NumpyAdam, NumpyAdamRun


class Run(NumpyAdamRun):
    def step(self, grads):
        before = [p.copy() for p in self.theta]
        super().step(grads)
        self.theta = [b + (p - b) * self.dt.type(1 + 1e-3) for b, p in zip(before, self.theta)]


class Misscaled(NumpyAdam):
    name = "example.misscaled"

    def start(self, config, params, *, dtype, device):
        return Run(config, params, dtype)
'''


def _long_command(tmp_path, *args):
    import subprocess
    import sys

    summary = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(_BENCH), "--n", "3", "--no-population", "--out",
                           str(tmp_path / "failures"), "--summary", str(summary), *args],
                          capture_output=True, text=True, timeout=300)
    rows = json.loads(summary.read_text()) if summary.exists() else []
    return proc, rows


def test_the_long_command_takes_a_third_party_adapter_spec(tmp_path):
    """--adapter path.py:Class runs that adapter alone (no built-ins): a correct one passes, a 1e-3 bug fails
    and its failures are written as scenario files that load back."""
    proc, rows = _long_command(tmp_path, "--adapter", f"{_EXAMPLE}:NumpyAdam")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(r["adapter"], r["examples"], r["failed"]) for r in rows] == [(f"{_EXAMPLE}:NumpyAdam", 3, 0)], rows

    bug = tmp_path / "misscaled.py"
    bug.write_text(_MISSCALED.format(examples=str(_EXAMPLE.parent)))
    proc, rows = _long_command(tmp_path, "--adapter", f"{bug}:Misscaled")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(rows) == 1 and rows[0]["examples"] == 3 and rows[0]["failed"] >= 1, rows
    example, record = load_example(rows[0]["failure_files"][0])
    assert record["adapter"] == "example.misscaled" and record["verdict"] == "failed", record


def test_the_long_command_names_a_wrong_spec(tmp_path):
    proc, rows = _long_command(tmp_path, "--adapter", str(tmp_path / "missing.py") + ":Nope")
    assert proc.returncode == 2 and "missing.py" in proc.stderr and "does not exist" in proc.stderr, proc.stderr
    assert rows == []
