"""The fault battery: an adapter per fault, run through `adamconf run` as a user runs it.

Each adapter of tests/data/faults.py is correct until its float32 run reaches step 2, where it
commits its fault; its float64 run stays correct. A run over dense-first-steps in both dtypes must
therefore record the fault as the float32 case's verdict, with a message naming it, still judge the
float64 case, write the results file and the report (`--html`, as the main job does) and exit 1:

- with one adapter and no -n (adamconf run's default: one worker process);
- with every fault in one run, several adapters under -n 2 and under the default (-n auto);
- the contract faults also with -n 0 (in-process: they raise, nothing dies).

Interrupts (SIGTERM to the run, Ctrl-C's SIGINT to its process group) must write the cases judged
so far, marked incomplete, and exit non-zero.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from adamconf.reports.results import load_results
from conftest import ADAMCONF

FAULTS = Path(__file__).resolve().parent / "data" / "faults.py"
SCENARIO = "dense-first-steps"
TIMEOUT_S = 3  # pytest-timeout's limit per case in these runs; the watchdog adds grace_s(3) = 5 s

# adapter class -> (verdict of its float32 case, words its message must contain)
CRASHES = {
    "Segfault": ("crashed", ["killed by SIGSEGV (signal 11)", "faults.py", "in fault"]),
    "Abort": ("crashed", ["killed by SIGABRT (signal 6)", "in fault"]),
    "Exit": ("crashed", ["it exited with status 3"]),
    "Killed": ("crashed", ["killed by SIGKILL (signal 9): an out-of-memory kill"]),
    "HangsDeaf": ("timeout", ["did not answer pytest-timeout's signal", "the watchdog ended its process",
                              "faults.py", "in fault"]),
    "Hangs": ("timeout", ["Timeout (>3.0s) from pytest-timeout"]),
    "Raises": ("error", ["the adapter raised", "RuntimeError: the kernel ran out of registers"]),
}
CONTRACT = {
    "Float16": ["broke the contract", "params()[0] has dtype float16 after step 2, but this is a float32 run"],
    "Float64": ["broke the contract", "params()[0] has dtype float64 after step 2, but this is a float32 run"],
    "Lists": ["broke the contract", "params()[0] is a list after step 2, not a numpy array"],
    "NoneTensor": ["broke the contract", "params()[0] is None after step 2, not a numpy array"],
    "Shape": ["broke the contract", "params()[0] has shape (20, 1) after step 2, expected (4, 5)"],
    "Count": ["broke the contract", "params() returned 2 arrays after step 2, expected 3"],
    "NaN": ["broke the contract", "params()[0] after step 2 holds nan at element 1 (index (0, 1))",
            "the scenario's inputs and its reference are finite"],
    "MutatesGrads": ["broke the contract", "the gradients of step 1, grads[0] was changed by the run: "
                     "element 0 was 0.75390625, now 0.376953125"],
    "MutatesParams": ["broke the contract", "the initial parameters given to start(), params[0] was changed"],
}
FAULTS_TABLE = {**CRASHES, **{name: ("error", words) for name, words in CONTRACT.items()}}


def _name(cls: str) -> str:
    """The adapter name tests/data/faults.py gives the class."""
    return {"Segfault": "segfault", "Abort": "abort", "Exit": "exit", "Killed": "killed", "HangsDeaf": "hangs_deaf",
            "Hangs": "hangs", "Raises": "raises", "Float16": "float16", "Float64": "float64", "Lists": "lists",
            "NoneTensor": "none_tensor", "Shape": "shape", "Count": "count", "NaN": "nan",
            "MutatesGrads": "mutates_grads", "MutatesParams": "mutates_params", "Good": "none"}[cls]


def adamconf(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*ADAMCONF, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_faults(cwd: Path, classes: list[str], *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    specs = [a for cls in classes for a in ("--adapter", f"{FAULTS}:{cls}")]
    result = adamconf(cwd, "run", *specs, "--scenario", SCENARIO, "--timeout", str(TIMEOUT_S),
                      "--results", "results.json", "--html", "report.html", *extra)
    assert (cwd / "results.json").is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    return result, load_results(cwd / "results.json")


def assert_fault_recorded(doc: dict, cls: str) -> None:
    __tracebackhide__ = True
    verdict, words = FAULTS_TABLE[cls]
    cases = {c["id"]: c for c in doc["cases"]}
    faulty = cases[f"fault.{_name(cls)}::{SCENARIO}::float32::cpu"]
    assert faulty["verdict"] == verdict, faulty["message"]
    for w in words:
        assert w in faulty["message"], (w, faulty["message"])
    assert faulty["rerun"].startswith(f"adamconf run --adapter {FAULTS}:{cls} --scenario {SCENARIO}")
    assert cases[f"fault.{_name(cls)}::{SCENARIO}::float64::cpu"]["verdict"] == "passed"


def assert_report_written(cwd: Path, doc: dict) -> None:
    """The main job's report (`adamconf run --html`) is written however the cases ended."""
    __tracebackhide__ = True
    page = (cwd / "report.html").read_text()
    for case in doc["cases"]:
        assert case["adapter"] in page
    for verdict, count in doc["summary"].items():
        if count:
            assert f"<b>{count}</b> {verdict}" in page


@pytest.mark.parametrize("cls", list(FAULTS_TABLE))
def test_one_faulty_adapter_costs_one_case(cls, tmp_path):
    result, doc = run_faults(tmp_path, [cls])
    assert result.returncode == 1, result.stdout[-2000:]
    assert_fault_recorded(doc, cls)
    assert doc["incomplete"] is None and sum(doc["summary"].values()) == 2
    assert_report_written(tmp_path, doc)


@pytest.mark.parametrize("workers", [["-n", "2"], []], ids=["n2", "default"])
def test_every_fault_in_one_run_of_several_adapters(workers, tmp_path):
    classes = ["Good", *FAULTS_TABLE]
    result, doc = run_faults(tmp_path, classes, *workers)
    assert result.returncode == 1
    for cls in FAULTS_TABLE:
        assert_fault_recorded(doc, cls)
    assert {c["verdict"] for c in doc["cases"] if c["adapter"] == "fault.none"} == {"passed"}
    assert sum(doc["summary"].values()) == 2 * len(classes)
    assert_report_written(tmp_path, doc)


def test_contract_faults_in_this_process(tmp_path):
    """-n 0 runs the cases in the pytest process: the contract faults raise there, nothing dies."""
    result, doc = run_faults(tmp_path, list(CONTRACT), "-n", "0")
    assert result.returncode == 1
    for cls in CONTRACT:
        assert_fault_recorded(doc, cls)


def test_a_mutating_adapter_does_not_corrupt_the_next_case(tmp_path):
    """The gradients and initial parameters a run changes are copies: the next case, and the golden, are intact."""
    result, doc = run_faults(tmp_path, ["MutatesGrads", "MutatesParams", "Good"], "-n", "0")
    good = {c["dtype"]: c["verdict"] for c in doc["cases"] if c["adapter"] == "fault.none"}
    assert good == {"float32": "passed", "float64": "passed"}


# -- interrupts --------------------------------------------------------------------------------------
def _sigint_as_from_a_terminal() -> None:
    """In the child, before exec: SIGINT's default action, which Python turns into KeyboardInterrupt.

    A command that a non-interactive shell starts in the background (``cmd &``, as CI runners and
    ``nohup`` do) inherits SIGINT ignored, and a process that ignores it at start keeps ignoring it
    (POSIX; CPython installs its handler only over the default): the run would never see the Ctrl-C
    this test sends. The run under test is put back in the state a terminal gives it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_stalling_run(cwd: Path) -> tuple[subprocess.Popen, Path]:
    mark = cwd / "stalled"
    env = {**os.environ, "ADAMCONF_TEST_MARK": str(mark)}
    proc = subprocess.Popen([*ADAMCONF, "run", "--adapter", f"{FAULTS}:Stalls", "--scenario", SCENARIO,
                             "--scenario", "dense-default", "--results", "results.json",
                             "-n", "1"],  # one worker: its third case is the one that stalls
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=_sigint_as_from_a_terminal)
    deadline = time.monotonic() + 120
    while not mark.exists():  # two cases judged, the third stalls
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.1)
    return proc, mark


@pytest.mark.parametrize("how, status, said", [
    ("SIGTERM to the run", 143, "interrupted by SIGTERM after 2 case(s) were judged"),
    ("SIGINT to its process group", 130, "interrupted by SIGINT (Ctrl-C) after 2 case(s) were judged"),
])
def test_an_interrupt_writes_the_cases_judged_so_far(how, status, said, tmp_path):
    proc, _ = _start_stalling_run(tmp_path)
    if how.startswith("SIGTERM"):
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == status, out[-3000:]
    doc = load_results(tmp_path / "results.json")
    assert doc["incomplete"] == said
    assert [c["verdict"] for c in doc["cases"]] == ["passed", "passed"]
    assert f"INCOMPLETE: {said}" in out
    assert not list(tmp_path.glob(".results.json.*"))  # written atomically: no temporary file left
    # no worker is left behind
    time.sleep(0.5)
    leftover = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == [], leftover
    report = adamconf(tmp_path, "report", "results.json", "-o", "report.html")
    assert report.returncode == 0 and "is incomplete" in (tmp_path / "report.html").read_text()
