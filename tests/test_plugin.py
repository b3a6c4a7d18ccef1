"""The pytest plugin and `adamconf run`: options, verdicts, expectations files, results, xdist, exit codes.

Each test writes a small third-party adapter file (numpy Adams from tests/numpy_adam.py, some
with a planted bug) and runs the suites against it with pytester, on one or two short
scenarios so that the whole module stays fast.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from adamconf.reports.results import load_results

pytest_plugins = ["pytester"]

TESTS_DIR = Path(__file__).resolve().parent
SUITES = ("--pyargs", "adamconf.suites", "-p", "no:cacheprovider")

ADAPTERS = f'''
import os
import sys
import time

sys.path.insert(0, {str(TESTS_DIR)!r})
from numpy_adam import NumpyAdapter, NumpyRun


class Good(NumpyAdapter):
    """A correct float32/float64 numpy Adam in the pytorch dialect."""

    def __init__(self):
        super().__init__("pytorch")
        self.name = "third.good"


class Late(NumpyAdapter):
    """Bias correction one step late: 1 - beta^(t+1)."""

    def __init__(self):
        super().__init__("pytorch", "bc_off_by_one")
        self.name = "third.late"


class _Breaking(Good):
    def start(self, config, params, *, dtype, device):
        run = super().start(config, params, dtype=dtype, device=device)
        step = run.step

        def broken(grads):
            if run.t == 2:
                self.breaks()
            step(grads)

        run.step = broken
        return run


class Raises(_Breaking):
    def __init__(self):
        super().__init__()
        self.name = "third.raises"

    def breaks(self):
        raise RuntimeError("the kernel ran out of registers")


class Crashes(_Breaking):
    def __init__(self):
        super().__init__()
        self.name = "third.crashes"

    def breaks(self):
        os._exit(70)  # as a segfault would: no exception, no report


class Hangs(_Breaking):
    def __init__(self):
        super().__init__()
        self.name = "third.hangs"

    def breaks(self):
        time.sleep(60)


class Flaky(Good):
    """Every second run perturbs one element at step 3: not deterministic."""

    runs = 0

    def __init__(self):
        super().__init__()
        self.name = "third.flaky"

    def start(self, config, params, *, dtype, device):
        Flaky.runs += 1
        run = super().start(config, params, dtype=dtype, device=device)
        if Flaky.runs % 2 == 0:
            step = run.step

            def nudged(grads):
                step(grads)
                if run.t == 3:
                    run.theta[0].flat[1] = run.theta[0].flat[1] + run.theta[0].flat[1] * 2.0 ** -20

            run.step = nudged
        return run


class Reshaped(Good):
    """Correct arithmetic, but params() returns every tensor as a column: a contract violation."""

    def __init__(self):
        super().__init__()
        self.name = "third.reshaped"

    def start(self, config, params, *, dtype, device):
        run = super().start(config, params, dtype=dtype, device=device)
        read = run.params
        run.params = lambda: [p.reshape(-1, 1) for p in read()]
        return run


class Missing(Good):
    def __init__(self):
        super().__init__()
        self.name = "third.missing"

    def available(self):
        return "fancylib is not installed: pip install fancylib"
'''


@pytest.fixture
def adapters(pytester: pytest.Pytester) -> Path:
    """The adapter file, in pytester's temporary directory (the working directory of every run)."""
    return pytester.makepyfile(third=ADAPTERS)


def run_suites(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*SUITES, *args)


def assert_cases(result: pytest.RunResult, **counts: int) -> None:
    """The plugin's summary line (`adamconf: 2 passed, 1 xfailed ...`) shows exactly these counts.

    The plugin's own counts, not pytest's: other suites of adamconf.suites (the API profiles)
    add their own tests and skips to pytest's."""
    __tracebackhide__ = True
    line = next((ln for ln in reversed(result.stdout.lines) if re.match(r"-+ adamconf: ", ln)), None)
    assert line is not None, result.stdout.str()
    found = {verdict: int(n) for n, verdict in re.findall(r"(\d+) (passed|failed|xfailed|xpassed|skipped|error|"
                                                          r"crashed|timeout)\b", line.split("adamconf: ")[1])}
    assert found == counts, line


def adamconf_run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """`adamconf run ...` in a subprocess, as a user types it."""
    return pytester.run(sys.executable, "-m", "adamconf", "run", *args, timeout=300)


def expectations(pytester: pytest.Pytester, text: str) -> Path:
    path = pytester.path / "expect.toml"
    path.write_text(textwrap.dedent(text))
    return path


# -- options and collection -------------------------------------------------------------------------
def test_help_lists_the_options(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*adamconf*", "*--adapter=SPEC*", "*--scenario=PATTERN*", "*--dtype=DTYPE*",
                                 "*--device=DEVICE*", "*--expectations=FILE*", "*--results=PATH*"])


def test_cases_are_adapter_scenario_dtype_device(pytester, adapters):
    result = run_suites(pytester, "--adapter", "third.py:Good", "--adapter", "third.py:Late",
                        "--scenario", "dense-default", "--scenario", "sparse-empt?", "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "*test_dense.py::test_dense[[]third.good::dense-default::float32::cpu[]]",
        "*test_dense.py::test_dense[[]third.late::dense-default::float32::cpu[]]",
        "*test_dense.py::test_dense[[]third.good::dense-default::float64::cpu[]]",
        "*test_sparse.py::test_sparse[[]third.good::sparse-empty::float32::cpu[]]",
    ])
    assert result.stdout.str().count("::cpu]") == 8


def test_dtype_device_and_family_markers_select(pytester, adapters):
    result = run_suites(pytester, "--adapter", "third.py:Good", "--scenario", "dense", "--scenario", "sparse",
                        "--dtype", "float32", "--device", "cpu", "--device", "cuda", "-m", "sparse",
                        "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if "::test_" in line]
    assert ids and all("test_sparse" in i and "::float32::" in i for i in ids)
    from adamconf.golden.scenarios import CATALOGUE

    sparse = sum(s.family == "sparse" and "float32" in s.dtypes for s in CATALOGUE)
    assert sum("::cuda]" in i for i in ids) == sum("::cpu]" in i for i in ids) == sparse


def test_unknown_adapter_is_a_usage_error_listing_the_known_ones(pytester):
    result = run_suites(pytester, "--adapter", "no.such.adam")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown adapter 'no.such.adam'*Known adapters:*torch.adam*"])


def test_unknown_scenario_and_dtype_are_usage_errors(pytester, adapters):
    result = run_suites(pytester, "--adapter", "third.py:Good", "--scenario", "dense-defualt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--scenario 'dense-defualt' matches no scenario*"])
    result = run_suites(pytester, "--adapter", "third.py:Good", "--dtype", "float8")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_an_unavailable_adapter_collects_and_skips_with_its_reason(pytester, adapters):
    result = run_suites(pytester, "--adapter", "third.py:Missing", "--scenario", "dense-default", "-rs")
    assert_cases(result, skipped=2)
    assert "fancylib is not installed: pip install fancylib" in result.stdout.str()


# -- verdicts -----------------------------------------------------------------------------------------
def test_a_bug_fails_naming_the_first_step_the_element_and_the_rerun_command(pytester, adapters):
    result = adamconf_run(pytester, "--adapter", "third.py:Late", "--scenario", "dense-default", "--dtype",
                          "float32")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "third.late::dense-default::float32::cpu FAILED against the golden in dialect 'eps=standard,bc=on'*",
        "first failing step: 1",
        "scenario dense-default (dense)*; dtype float32, device cpu",
        "*worst update: step *, tensor *, element (*): applied update expected *, got *; error * = * ulp of the parameter, "
        "allowed * (*% of budget)",
        "rerun: adamconf run --adapter third.py:Late --scenario dense-default --dtype float32 --device cpu",
        "*adamconf: 1 failed; results written to adamconf-results.json*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_a_correct_adapter_passes_with_exit_0(pytester, adapters):
    result = adamconf_run(pytester, "--adapter", "third.py:Good", "--scenario", "dense-default",
                          "--results", "out.json")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*adamconf: 2 passed; results written to out.json*"])
    doc = load_results(pytester.path / "out.json")  # validated against the schema
    assert [c["id"] for c in doc["cases"]] == ["third.good::dense-default::float32::cpu",
                                              "third.good::dense-default::float64::cpu"]
    assert all(0 <= c["budget_used"] <= 1 and c["rerun"].startswith("adamconf run --adapter third.py:Good")
               for c in doc["cases"])


def test_adamconf_run_exit_2_on_usage_errors(pytester, adapters):
    result = adamconf_run(pytester, "--adapter", "no.such.adam")
    assert result.ret == 2
    result.stderr.fnmatch_lines(["*unknown adapter 'no.such.adam'*Known adapters:*"])
    assert adamconf_run(pytester, "--adapter", "third.py:Good", "--expectations", "missing.toml").ret == 2
    assert adamconf_run(pytester, "--adapter", "third.py:Good", "--scenario", "dense-default",
                        "--dtype", "float16").ret == 2  # dense-default is not defined in float16
    assert adamconf_run(pytester, "--workers", "many").ret == 2


def test_an_adapter_that_raises_is_an_error_case(pytester, adapters):
    result = run_suites(pytester, "--adapter", "third.py:Raises", "--scenario", "dense-default",
                        "--dtype", "float64", "--results", "r.json")
    assert_cases(result, error=1)
    result.stdout.fnmatch_lines(["*third.raises::dense-default::float64::cpu: the adapter raised (verdict error)*",
                                 "*RuntimeError: the kernel ran out of registers*"])
    (case,) = load_results(pytester.path / "r.json")["cases"]
    assert case["verdict"] == "error" and "out of registers" in case["message"]


def test_a_hang_is_a_timeout(pytester, adapters):
    result = run_suites(pytester, "--adapter", "third.py:Hangs", "--scenario", "dense-default",
                        "--dtype", "float32", "--timeout", "2", "--results", "r.json")
    assert_cases(result, timeout=1)
    (case,) = load_results(pytester.path / "r.json")["cases"]
    assert case["verdict"] == "timeout" and "Timeout" in case["message"]


def test_a_failing_file_adapter_is_rerun_by_its_spec_not_its_name(pytester, adapters):
    """The rerun command repeats what was given to --adapter (file.py:Class), in the failure message,
    in the results JSON and in the runner's outcome; the case id names the adapter."""
    rerun = "adamconf run --adapter third.py:Late --scenario dense-default --dtype float32 --device cpu"
    result = run_suites(pytester, "--adapter", "third.py:Late", "--scenario", "dense-default", "--dtype", "float32",
                        "--results", "r.json")
    assert_cases(result, failed=1)
    result.stdout.fnmatch_lines([f"rerun: {rerun}"])
    (case,) = load_results(pytester.path / "r.json")["cases"]
    assert case["id"] == "third.late::dense-default::float32::cpu"
    assert case["rerun"] == rerun and case["message"].endswith(f"rerun: {rerun}")

    from adamconf.adapters.registry import load_adapter
    from adamconf.golden.scenarios import get
    from adamconf.suites.runner import run_case

    outcome = run_case(load_adapter("third.py:Late"), get("dense-default"), "float32")
    assert outcome.verdict == "failed" and outcome.rerun == rerun


def test_determinism_checks_the_contract(pytester, adapters):
    result = run_suites(pytester, "--adapter", "third.py:Reshaped", "--scenario", "determinism/dense-default",
                        "--dtype", "float32")
    assert_cases(result, error=1)
    result.stdout.fnmatch_lines(["*third.reshaped::determinism/dense-default::float32::cpu: the adapter broke the "
                                 "contract*", "*params()[[]0[]] has shape*"])


def test_determinism_catches_a_run_that_differs_from_the_last(pytester, adapters):
    result = run_suites(pytester, "--adapter", "third.py:Flaky", "--adapter", "third.py:Good",
                        "--scenario", "determinism/dense-default", "--dtype", "float32")
    assert_cases(result, passed=1, failed=1)
    result.stdout.fnmatch_lines(["*third.flaky::determinism/dense-default::float32::cpu FAILED*",
                                 "*two runs of the same case differ at step 3, tensor 0, element (0, 1)*"])


# -- expectations files -------------------------------------------------------------------------------
def test_a_listed_deviation_is_xfailed_and_the_run_passes(pytester, adapters):
    path = expectations(pytester, """
        [[expect]]
        id = "third.late::dense-*::*::cpu"
        reason = "bias correction one step late"
        link = "https://example.org/issue/1"
        """)
    result = run_suites(pytester, "--adapter", "third.py:Late", "--scenario", "dense-default",
                        "--expectations", str(path), "--results", "r.json")
    assert result.ret == 0
    assert_cases(result, xfailed=2)
    doc = load_results(pytester.path / "r.json")
    assert {c["verdict"] for c in doc["cases"]} == {"xfailed"}
    assert doc["cases"][0]["expectation"] == {"reason": "bias correction one step late",
                                              "link": "https://example.org/issue/1"}


def test_a_pinned_deviation_is_xfailed_only_while_it_stays_pinned(pytester, adapters):
    """Bias correction one step late fails update, trajectory and state at ~4.5e3 x the budget in float32
    (and the mean-error check where the scenario has one: dense-default, not dense-first-steps)."""
    pins = {"inside": ("dense-default", 'check = "update"\nbudget = [1e2, 1e5]', "xfailed"),
            "order of magnitude": ("dense-default", "budget = 4e3", "xfailed"),
            "grown": ("dense-default", 'check = "update"\nbudget = [1, 10]', "failed"),
            "other check": ("dense-first-steps", 'check = "bias"', "failed")}
    for name, (scenario, pin, verdict) in pins.items():
        path = expectations(pytester, f"""
            [[expect]]
            id = "third.late::{scenario}::float32::cpu"
            reason = "bias correction one step late"
            {pin}
            """.replace("\n", "\n            "))
        result = run_suites(pytester, "--adapter", "third.py:Late", "--scenario", scenario, "--dtype",
                            "float32", "--expectations", str(path), "--results", "r.json")
        case = load_results(pytester.path / "r.json")["cases"][0]
        assert case["verdict"] == verdict, (name, case["message"][:600])
        assert result.ret == (0 if verdict == "xfailed" else 1)
        if verdict == "failed":
            assert "fails as" in case["message"] and "but its deviation changed: it pins" in case["message"]


@pytest.mark.parametrize("pin, message", [
    ('check = "speed"', "check = 'speed' must be one of"),
    ("budget = [10, 1]", "must be a positive number (its order of magnitude) or a range"),
    ('verdict = "error"\nbudget = 10', "check and budget pin a failure"),
])
def test_malformed_pins_are_usage_errors(pytester, adapters, pin, message):
    path = pytester.path / "bad.toml"
    path.write_text(f'[[expect]]\nid = "third.late::dense-default::*::*"\nreason = "r"\n{pin}\n')
    result = run_suites(pytester, "--adapter", "third.py:Late", "--expectations", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_a_listed_case_that_passes_is_xpassed_and_fails_the_run(pytester, adapters):
    path = expectations(pytester, """
        [[expect]]
        id = "third.good::dense-default::float32::*"
        reason = "thought to be wrong"
        """)
    result = run_suites(pytester, "--adapter", "third.py:Good", "--scenario", "dense-default",
                        "--expectations", str(path), "--results", "r.json")
    assert result.ret == 1
    assert_cases(result, passed=1, xpassed=1)
    result.stdout.fnmatch_lines(["*third.good::dense-default::float32::cpu passed, but *expect.toml, entry 1 "
                                 "lists it as expected to fail (thought to be wrong)*remove the entry*"])
    verdicts = {c["id"]: c["verdict"] for c in load_results(pytester.path / "r.json")["cases"]}
    assert verdicts == {"third.good::dense-default::float32::cpu": "xpassed",
                        "third.good::dense-default::float64::cpu": "passed"}


def test_an_entry_matching_no_case_is_a_usage_error_before_any_case_runs(pytester, adapters):
    path = expectations(pytester, """
        [[expect]]
        id = "third.good::dense-defualt::*::*"
        reason = "a typo"

        [[expect]]
        id = "third.goood::dense-default::*::*"
        reason = "another"
        """)
    result = run_suites(pytester, "--adapter", "third.py:Good", "--scenario", "dense-default",
                        "--expectations", str(path), "--results", "r.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = next(ln for ln in result.stderr.lines if "stale expectations" in ln)
    assert "expect.toml, entry 1: id 'third.good::dense-defualt::*::*' matches no case" in line
    assert "expect.toml, entry 2: id 'third.goood::dense-default::*::*' names no adapter" in line
    assert "passed" not in result.stdout.str() and not (pytester.path / "r.json").exists()


def test_an_entry_for_an_unselected_scenario_is_not_stale(pytester, adapters):
    path = expectations(pytester, """
        [[expect]]
        id = "third.good::sparse-repeated-indices::*::*"
        reason = "not run today"
        """)
    result = run_suites(pytester, "--adapter", "third.py:Good", "--scenario", "dense-default",
                        "--expectations", str(path))
    assert result.ret == 0


@pytest.mark.parametrize("text, message", [
    ('[[expect]]\nid = "a::b"\nreason = "r"\n', "must be a pattern 'adapter::scenario::dtype::device'"),
    ('[[expect]]\nid = "a::b::c::d"\n', "a non-empty reason is required"),
    ('[[expect]]\nid = "a::b::c::d"\nreason = "r"\nverdict = "slow"\n', "verdict = 'slow' must be one of"),
    ('[[expect]]\nid = "a::b::c::d"\nreason = "r"\nwhy = 1\n', "unknown key(s) ['why']"),
    ("[[expect]\n", "is not valid TOML"),
])
def test_malformed_expectations_are_usage_errors(pytester, adapters, text, message):
    path = pytester.path / "bad.toml"
    path.write_text(text)
    result = run_suites(pytester, "--adapter", "third.py:Good", "--expectations", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_the_builtin_expectations_files_parse():
    from adamconf.suites.expectations import builtin_files, load_expectations

    files = builtin_files()
    assert files, "adapters/expectations/*.toml should ship with the package"
    entries = load_expectations([], builtin=files).entries
    assert entries and all(e.builtin and e.reason and e.evidence for e in entries)


# -- xdist --------------------------------------------------------------------------------------------
def test_xdist_workers_send_their_records_and_a_crash_is_recorded(pytester, adapters):
    result = pytester.runpytest_subprocess(*SUITES, "-n", "2", "--adapter", "third.py:Good", "--adapter",
                                           "third.py:Late", "--adapter", "third.py:Crashes", "--scenario",
                                           "dense-default", "--dtype", "float32", "--results", "r.json",
                                           timeout=300)
    assert result.ret == 1
    doc = load_results(pytester.path / "r.json")
    verdicts = {c["id"]: c["verdict"] for c in doc["cases"]}
    assert verdicts == {"third.good::dense-default::float32::cpu": "passed",
                        "third.late::dense-default::float32::cpu": "failed",
                        "third.crashes::dense-default::float32::cpu": "crashed"}
    crashed = next(c for c in doc["cases"] if c["verdict"] == "crashed")
    assert "died: it exited with status 70" in crashed["message"] and crashed["family"] == "dense"
    assert crashed["rerun"].startswith("adamconf run --adapter third.py:Crashes --scenario dense-default")
    assert doc["summary"]["crashed"] == 1


def test_adamconf_run_with_two_workers_writes_results(pytester, adapters):
    result = adamconf_run(pytester, "-n", "2", "--adapter", "third.py:Good", "--adapter", "third.py:Late",
                          "--scenario", "dense-default", "--results", "both.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*adamconf: 2 passed, 2 failed; results written to both.json*"])
    doc = load_results(pytester.path / "both.json")
    assert [(c["adapter"], c["dtype"]) for c in doc["cases"]] == [  # catalogue, then adapter, then dtype order
        ("third.good", "float32"), ("third.good", "float64"), ("third.late", "float32"), ("third.late", "float64")]
    assert json.dumps(doc["summary"]) == json.dumps({**dict.fromkeys(doc["summary"], 0), "passed": 2, "failed": 2})


def test_the_workers_describe_their_adapters_and_the_controller_asks_none(pytester, adapters):
    """The controller of an xdist run never asks an adapter whether it is available: that imports its framework
    (torch, TensorFlow, JAX) or starts its child process, seconds before the first case and again at the end.
    The workers that ran the cases describe the adapters for the results file."""
    pytester.makepyfile(asked='''
        import os
        import sys

        sys.path.insert(0, os.getcwd())
        from third import Good


        class Asked(Good):
            def __init__(self):
                super().__init__()
                self.name = "third.asked"

            def available(self, device=None):
                with open(os.path.join(os.path.dirname(__file__), "asked.log"), "a") as log:
                    log.write(os.environ.get("PYTEST_XDIST_WORKER", "controller") + "\\n")
                return None
    ''')
    result = pytester.runpytest_subprocess(*SUITES, "-n", "1", "--adapter", "asked.py:Asked", "--scenario",
                                           "dense-default", "--results", "r.json", timeout=300)
    assert result.ret == 0, result.stdout.str()
    asked = (pytester.path / "asked.log").read_text().split()
    assert asked and set(asked) == {"gw0"}, asked
    facts = load_results(pytester.path / "r.json")["adapters"]["third.asked"]
    assert facts["available"] is True and facts["name"] == "third.asked"


def test_default_adapters_are_chosen_without_importing_a_framework():
    """`adamconf run` with no --adapter: the built-ins whose libraries are installed (importlib's find_spec),
    chosen in the controller without importing them; each case then checks the full availability."""
    import subprocess

    code = ("import sys; from adamconf.plugin import _available_builtins; names = _available_builtins(['cpu']); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'keras', 'optax') if m in sys.modules)); "
            "print(' '.join(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    imported, names = out.stdout.splitlines()
    assert imported == "[]", f"choosing the default adapters imported {imported}"
    from importlib.util import find_spec

    expected = {"torch.adam": "torch", "optax.adam": "optax", "keras.adam": "keras", "tf.raw.apply_adam": "tensorflow"}
    for name, module in expected.items():
        assert (name in names.split()) == (find_spec(module) is not None), (name, names)
    assert "torch.adam.capturable" not in names.split()  # it declares cuda only: not a cpu run's default


def test_each_xdist_worker_gets_its_share_of_the_cores(pytester, monkeypatch):
    """Under xdist each worker's framework thread pools get cores // workers threads (adamconf.suites.threads):
    two workers' OpenMP pools on two cores made a 3,000-step SparseAdam case 6x slower. A value the user
    exported is kept."""
    from adamconf.suites.threads import THREAD_VARIABLES, usable_cores

    pytester.makepyfile(test_env='''
        import json
        import os

        def test_threads():
            with open(os.environ["PYTEST_XDIST_WORKER"] + ".json", "w") as out:
                json.dump({name: os.environ.get(name) for name in %r}, out)
    ''' % (THREAD_VARIABLES,))
    share = str(max(1, usable_cores() // 2))
    for name in THREAD_VARIABLES:  # this test may itself run in a worker that has set them
        monkeypatch.delenv(name, raising=False)

    def seen() -> dict:
        result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", timeout=120)
        assert result.ret == 0, result.stdout.str()
        (found,) = pytester.path.glob("gw*.json")
        env = json.loads(found.read_text())
        found.unlink()
        return env

    assert seen() == {name: share for name in THREAD_VARIABLES}
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert seen() == {name: "7" if name == "OMP_NUM_THREADS" else share for name in THREAD_VARIABLES}


def test_share_cores_sets_only_what_is_unset():
    from adamconf.suites.threads import share_cores, usable_cores

    env = {"TF_NUM_INTEROP_THREADS": "3"}
    threads = share_cores(2, env)
    assert threads == max(1, usable_cores() // 2)
    assert env["OMP_NUM_THREADS"] == str(threads) and env["TF_NUM_INTEROP_THREADS"] == "3"
    assert share_cores(10 ** 6, {}) == 1  # never zero threads
