"""The command line: one definition (adamconf/cli.py), `adamconf run` passing the plugin's options to pytest."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from adamconf.cli import parse_args, plugin_options_help
from adamconf.suites.command import DEFAULT_RESULTS, MAX_WORKER_RESTARTS, SINGLE_ADAPTER_WORKERS, pytest_args
from conftest import ADAMCONF

PLUGIN_OPTIONS = ("--adapter", "--scenario", "--dtype", "--device", "--expectations", "--results")


def test_run_help_lists_its_own_options_and_the_plugins():
    result = subprocess.run([*ADAMCONF, "run", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^\s+(--[a-z-]+|-n N, --workers)", result.stdout, flags=re.M))
    assert {"-n N, --workers", *PLUGIN_OPTIONS} <= listed, result.stdout
    assert "Every other argument goes to pytest unchanged" in result.stdout


def test_the_plugins_options_are_its_own_declarations():
    """`adamconf run --help` shows what adamconf/plugin.py declares, not a copy."""
    text = plugin_options_help()
    assert all(f"{name} " in text for name in PLUGIN_OPTIONS)
    assert "TOML file of known deviations" in text


def test_run_passes_everything_but_its_own_options_to_pytest_in_order():
    args = parse_args(["run", "--adapter", "third.py:Good", "-k", "dense", "--scenario=dense-default", "-n", "3",
                       "-x", "--", "--tb=short", "-n"])
    assert args.workers == "3"
    assert args.pytest_args == ["--adapter", "third.py:Good", "-k", "dense", "--scenario=dense-default", "-x",
                                "--tb=short", "-n"]
    line = pytest_args(args)
    assert line[-len(args.pytest_args):] == args.pytest_args
    assert f"--results={DEFAULT_RESULTS}" in line and "--timeout=600" in line
    assert line[line.index("-n") + 1] == "3"


@pytest.mark.parametrize("argv, workers", [
    # one adapter: workers (a crash costs one case), one per core up to SINGLE_ADAPTER_WORKERS
    (["run", "--adapter", "a"], str(min(SINGLE_ADAPTER_WORKERS, os.cpu_count() or 1))),
    (["run", "--adapter=a", "--adapter", "b"], "auto"),  # several: xdist decides
    (["run"], "auto"),                                   # every built-in
    (["run", "--adapter", "a", "-n", "0"], None),        # -n 0: in this process (for a debugger)
])
def test_run_chooses_workers_by_the_number_of_adapters(argv, workers):
    line = pytest_args(parse_args(argv))
    assert (line[line.index("-n") + 1] if "-n" in line else None) == workers


def test_run_keeps_the_results_and_timeout_it_is_given():
    line = pytest_args(parse_args(["run", "--results", "", "--timeout=5"]))
    assert not any(a.startswith("--results=") for a in line) and "--timeout=600" not in line
    assert line[-3:] == ["--results", "", "--timeout=5"]


def test_other_subcommands_refuse_unknown_options():
    with pytest.raises(SystemExit) as exc:
        parse_args(["list", "scenarios", "--adapter", "x"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        parse_args(["fingerprint", "torch.adam", "--dtype", "float8"])
    assert exc.value.code == 2
    args = parse_args(["fingerprint", "torch.adam", "--dtype", "float32", "--json"])
    assert (args.spec, args.dtype, args.device, args.json) == ("torch.adam", "float32", "cpu", True)


def test_run_uses_the_scheduler_that_replaces_crashed_workers_unless_told_otherwise():
    # xdist's scope schedulers (loadscope, loadgroup) lose cases when two workers crash close together
    line = pytest_args(parse_args(["run", "-n", "2"]))
    assert line[line.index("--dist") + 1] == "load"
    assert "--dist" not in pytest_args(parse_args(["run", "--adapter", "a", "-n", "0"]))
    line = pytest_args(parse_args(["run", "-n", "2", "--dist=loadgroup"]))
    assert "--dist" not in line and line[-1] == "--dist=loadgroup"


def test_run_replaces_every_crashed_worker_unless_told_otherwise():
    # xdist's own limit (4 per worker) would end the run at the fifth crashing case
    line = pytest_args(parse_args(["run", "--adapter", "a"]))
    assert f"--max-worker-restart={MAX_WORKER_RESTARTS}" in line
    line = pytest_args(parse_args(["run", "-n", "2", "--max-worker-restart", "3"]))
    assert not any(a.startswith("--max-worker-restart=") for a in line)
    assert not any(a.startswith("--max-worker") for a in pytest_args(parse_args(["run", "-n", "0"])))


def test_run_loads_no_conftest_of_the_directory_it_starts_in(tmp_path):
    """pytest would import tests/conftest.py of the working directory (its `test*` folders are searched):
    a repository's own test hooks are no part of a conformance run. This one would fail every case."""
    example = Path(__file__).resolve().parent.parent / "docs" / "examples" / "numpy_adapter.py"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(
        "def pytest_configure(config):\n    raise SystemExit('conftest.py of the working directory loaded')\n")
    result = subprocess.run([*ADAMCONF, "run", "-n", "0", "--adapter", f"{example}:NumpyAdam", "--scenario",
                             "dense-default", "--dtype", "float32", "--results", "", "-q"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--noconftest" in pytest_args(parse_args(["run"]))
