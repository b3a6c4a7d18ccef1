"""``adamconf run``: the conformance suites through pytest, with the adamconf plugin's options.

A thin wrapper: it runs ``pytest --pyargs adamconf.suites`` with the arguments it
was given (the command line is declared in adamconf/cli.py: run's own
``-n/--workers`` and ``--html``; everything else, the plugin's options included, goes to pytest
as it is), adds xdist workers, a pytest-timeout per case and the results file
unless they were given, and maps pytest's exit status to adamconf's:

- 0: every case passed, was skipped as unsupported here, or failed as an
  expectations file says it does;
- 1: any case failed, raised, crashed, timed out or passed although listed as
  expected to fail (xpassed), or an expectations entry matches no case;
- 2: a usage error (a bad option, an unknown adapter, a missing expectations
  file, a selection with no case in it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

__all__ = ["DEFAULT_RESULTS", "DEFAULT_TIMEOUT_S", "MAX_WORKER_RESTARTS", "SINGLE_ADAPTER_WORKERS", "pytest_args", "run_command"]

DEFAULT_RESULTS = "adamconf-results.json"
DEFAULT_TIMEOUT_S = 600.0
#: crashed workers xdist replaces before it gives up the run: more than any catalogue has cases
MAX_WORKER_RESTARTS = 100_000
#: the most worker processes one adapter's run starts by default (each imports its framework)
SINGLE_ADAPTER_WORKERS = 4


def _values(args: Sequence[str], option: str) -> list[str]:
    """The values a long option is given in pytest's syntax (``--option VALUE`` or ``--option=VALUE``).

    Exact names only: pytest's parser takes no abbreviations.
    """
    out = []
    for k, arg in enumerate(args):
        if arg == option and k + 1 < len(args):
            out.append(args[k + 1])
        elif arg.startswith(option + "="):
            out.append(arg[len(option) + 1:])
    return out


def pytest_args(args: argparse.Namespace) -> list[str]:
    """The pytest command line for parsed ``adamconf run`` arguments (``adamconf.cli.parse_args``)."""
    given = list(args.pytest_args)
    # no cache: the suites may live in a read-only site-packages. No conftest.py: pytest would load the
    # one of the directory it starts in and of its test* folders (a repository's own tests/conftest.py,
    # whose hooks and fixtures are no part of a conformance run; adamconf's own redirects the judge's
    # on-disk cache into a throwaway folder, which made every run from a checkout recompute it).
    out = ["--pyargs", "adamconf.suites", "-p", "no:cacheprovider", "--noconftest", "-rfE"]
    if not _values(given, "--assert"):
        # pytest rewrites the asserts of every module of the plugin's distribution (all of adamconf, some
        # 130 modules) in every process, and caches the result only where bytecode may be written
        # (not under PYTHONDONTWRITEBYTECODE): about 3 s a worker. Every assert of the suites states
        # its own message, so plain asserts lose nothing.
        out.append("--assert=plain")
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        # entry points are off: name the plugins (xdist workers see the same command line)
        out += ["-p", "adamconf.plugin", "-p", "xdist", "-p", "timeout"]
    if not _values(given, "--results"):
        out.append(f"--results={DEFAULT_RESULTS}")
    if not _values(given, "--timeout"):
        out.append(f"--timeout={DEFAULT_TIMEOUT_S:g}")
    workers = args.workers
    if workers is None:
        # worker processes even for one adapter: a crash in one then costs its case, not the run
        # (adamconf.suites.isolation); -n 0 runs the cases in this process, for a debugger. One adapter's
        # cases are split over up to SINGLE_ADAPTER_WORKERS of them (each imports the framework once: on two
        # cores, adamconf run --adapter torch.adam took 20 s with two workers against 30 s with one)
        workers = ("auto" if len(_values(given, "--adapter")) != 1
                   else str(min(SINGLE_ADAPTER_WORKERS, os.cpu_count() or 1)))
    if str(workers) not in ("0", ""):
        out += ["-n", str(workers)]
        if not _values(given, "--dist"):
            # xdist's load scheduler: the one that replaces crashed workers reliably. Its scope schedulers
            # (--dist loadgroup, which would keep each (scenario, dtype) group on one worker) lose or
            # rerun work when two workers die close together (xdist 3.8); the catalogue's order
            # keeps most of a group's cases in one chunk of one worker anyway.
            out += ["--dist", "load"]
        if not _values(given, "--max-worker-restart") and not _values(given, "--maxworkerrestart"):
            # xdist stops replacing crashed workers after 4 per worker; every crashing case must cost only itself
            out.append(f"--max-worker-restart={MAX_WORKER_RESTARTS}")
    return out + given


def run_command(args: argparse.Namespace) -> int:
    """``adamconf run ARGS``: run pytest and return adamconf's exit status (0, 1 or 2)."""
    import pytest

    if args.workers is not None and not (args.workers == "auto" or args.workers.isdigit()):
        print(f"adamconf run: error: -n/--workers {args.workers!r} must be a number or 'auto'", file=sys.stderr)
        return 2
    html = getattr(args, "html", None)
    if html is not None:
        problem = _html_problem(args, html)
        if problem:
            print(f"adamconf run: error: --html {html}: {problem}", file=sys.stderr)
            return 2
    status = pytest.main(pytest_args(args))
    if html is not None and status not in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED):
        if not _write_html(_results_path(args), html) and status == pytest.ExitCode.OK:
            return 2
    if status == pytest.ExitCode.USAGE_ERROR:
        return 2
    if status == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("adamconf run: no case matches this selection (--scenario, --dtype, -k); "
              "`adamconf list scenarios` shows each scenario's dtypes", file=sys.stderr)
        return 2
    if status == pytest.ExitCode.INTERRUPTED:
        from adamconf.plugin import interrupted_by

        return 143 if interrupted_by() == "SIGTERM" else 130  # 128 + the signal, as a shell reports it
    return 0 if status == pytest.ExitCode.OK else 1


def _results_path(args: argparse.Namespace) -> str:
    """The results file the run writes (the last --results given, else the default)."""
    given = _values(list(args.pytest_args), "--results")
    return given[-1] if given else DEFAULT_RESULTS


def _html_problem(args: argparse.Namespace, html: str) -> str | None:
    """Why --html cannot be honoured, before anything runs (None: it can)."""
    from adamconf.reports.results import unwritable

    results = _results_path(args)
    if not results:
        return "the report is made from the results file; give --results PATH (not --results '')"
    if os.path.abspath(results) == os.path.abspath(html):
        return f"is the results file {results}; write the report elsewhere"
    why = unwritable(html)
    return f"cannot write there: {why}" if why else None


def _write_html(results: str, html: str) -> bool:
    """Render the report of the results file the run wrote (``adamconf report``); False if it could not."""
    from adamconf.reports.render import render_html
    from adamconf.reports.results import ResultsError, load_results

    try:
        written = render_html([load_results(results)], html)
    except (ResultsError, OSError) as exc:
        print(f"adamconf run: error: --html {html}: no report written: {exc}", file=sys.stderr)
        return False
    print(f"adamconf run: report written to {written}")
    return True
