"""The adamconf pytest plugin (entry point ``pytest11: adamconf``): options, cases, expectations, results.

``pytest --pyargs adamconf.suites --adapter SPEC`` runs the conformance suites
against an adapter; ``adamconf run`` is a thin wrapper around the same. The
plugin

- adds the options ``--adapter`` (repeatable; default: every available built-in
  adapter), ``--scenario``, ``--dtype``, ``--device`` (default cpu),
  ``--expectations`` and ``--results``;
- parametrizes each suite module's test over adapter x scenario x dtype x
  device with ids ``adapter::scenario::dtype::device`` and a marker per family
  (``-m sparse``); collection never runs an adapter, so a missing framework
  cannot break it: an unsupported case is skipped when it runs, with the reason;
- turns verdicts into pytest outcomes (``adamconf.suites.cases``) and collects
  every case's record, from xdist workers too (``report.user_properties``),
  recording a worker that died as ``crashed`` and a pytest-timeout as ``timeout``;
- at the end, reports expectations that match no case (and fails the run), prints
  the counts by verdict and writes the results file.

Nothing is resolved, run or written unless a suite module (one with ``FAMILY``
and a test taking ``adamconf_case``) is collected, so other test runs only pay
for parsing the options and the built-in expectations files.
"""

from __future__ import annotations

import json
import traceback
from collections import Counter
from typing import Any

import pytest

__all__: list[str] = []  # hooks only; pytest finds them by name

_PLAN = pytest.StashKey["_Session"]()
_BOUND = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("adamconf", "adamconf: Adam conformance suites (pytest --pyargs adamconf.suites)")
    group.addoption("--adapter", action="append", default=[], dest="adamconf_adapters", metavar="SPEC",
                    help="adapter under test (repeatable): a built-in name (torch.adam), an entry point of the "
                         "group adamconf.adapters, package.module:Name or path/to/file.py:Name. "
                         "Default: every built-in adapter available here.")
    group.addoption("--scenario", action="append", default=[], dest="adamconf_scenarios", metavar="PATTERN",
                    help="scenario name glob or family (repeatable; default: all). `adamconf list scenarios`.")
    group.addoption("--dtype", action="append", default=[], dest="adamconf_dtypes", metavar="DTYPE",
                    help="float16, bfloat16, float32 or float64 (repeatable; default: each scenario's dtypes)")
    group.addoption("--device", action="append", default=[], dest="adamconf_devices", metavar="DEVICE",
                    help="cpu or cuda (repeatable; default: cpu)")
    group.addoption("--expectations", action="append", default=[], dest="adamconf_expectations", metavar="FILE",
                    help="TOML file of known deviations (repeatable; docs/expectations.md). The built-in "
                         "adapters' own files always apply to them.")
    group.addoption("--results", default=None, dest="adamconf_results", metavar="PATH",
                    help="write the results JSON here at the end (docs/results-schema.md)")
    group.addoption("--fingerprint", action="store_true", default=False, dest="adamconf_fingerprint",
                    help="also take each adapter's fingerprint (`adamconf fingerprint`: its dialect, axis by "
                         "axis, and its path class) at the end, into the results file for the report's "
                         "dialect view; a few seconds per adapter (docs/fingerprint.md)")
    group.addoption("--no-cache", action="store_true", default=False, dest="adamconf_no_cache",
                    help="neither read nor write the judge's on-disk cache of budgets and held variants "
                         "(used only where $ADAMCONF_CACHE_DIR names a directory; ADAMCONF_NO_CACHE=1 does the "
                         "same); they are then computed once per process")


class _Session:
    """The run's plan (resolved lazily: default adapters call ``available()``) and the records received."""

    def __init__(self, config: pytest.Config) -> None:
        from adamconf.adapters.contract import DEVICES, DTYPES
        from adamconf.suites.expectations import ExpectationsError, builtin_files, load_expectations

        opt = config.option
        self.config = config
        self.specs: list[str] = list(opt.adamconf_adapters)
        self.dtypes = list(dict.fromkeys(opt.adamconf_dtypes))
        bad = [d for d in self.dtypes if d not in DTYPES]
        if bad:
            raise pytest.UsageError(f"--dtype {bad[0]!r} is not a dtype; choose from {', '.join(DTYPES)}")
        self.devices = list(dict.fromkeys(opt.adamconf_devices)) or ["cpu"]
        self.scenario_patterns = list(opt.adamconf_scenarios)
        if self.scenario_patterns:
            _check_scenario_patterns(self.scenario_patterns)
        try:
            self.expectations = load_expectations(opt.adamconf_expectations, builtin=builtin_files())
        except ExpectationsError as exc:
            raise pytest.UsageError(str(exc)) from None
        self._adapters: list[tuple[str, Any, bool]] | None = None
        known = set(DEVICES)
        if self.specs:  # explicit specs are resolved now: a typo is a usage error before anything runs
            known |= {d for _, a, _ in self.adapters() for d in a.devices}
        unknown = [d for d in self.devices if d not in known]
        if unknown:
            raise pytest.UsageError(f"--device {unknown[0]!r} is not a device of any adapter in this run; "
                                    f"known: {', '.join(sorted(known))}")
        if not hasattr(config, "workerinput") and _runs_suites(config):
            self._refuse_bad_input()  # before anything runs: one line and exit status 2, nothing written
        self.records: dict[str, dict] = {}  # case id -> results record, from this process or xdist workers
        self.active = False  # a suite module was collected here, or a case record arrived
        self.results_path = None
        self.incomplete: str | None = None  # why the run ended before its last case
        self.fault_logs = None  # adamconf.suites.isolation.FaultLogs, in an xdist controller
        self.worker_log = None  # adamconf.suites.isolation.WorkerLog, in an xdist worker
        self.ran: set[str] = set()  # the adapters whose cases ran in this process
        # adapter name -> ``contract.describe`` facts, from the processes that ran its cases (they have its
        # framework imported; the controller of an xdist run imports none)
        self.adapter_facts: dict[str, dict] = {}

    def adapters(self) -> list[tuple[str, Any, bool]]:
        """(spec, adapter, is_builtin) for each adapter of the run, in the order named."""
        if self._adapters is None:
            specs = self.specs or _worker_default(self.config) or _available_builtins(self.devices)
            self._adapters = _resolve(specs)
        return self._adapters

    def _refuse_bad_input(self) -> None:
        """What would make the run's results wrong or unwritable, as a usage error before any case runs.

        An output path that cannot be written, expectations entries that match no case any adapter
        of the run could have (stale), a golden store that does not match its manifest.
        """
        from adamconf.golden.store import check_store
        from adamconf.reports.results import unwritable

        results = self.config.option.adamconf_results
        why = unwritable(results) if results else None
        if why:
            raise pytest.UsageError(f"--results {results}: {why}; give a path in a writable directory")
        stale = self.expectations.stale([a.name for _, a, _ in self.adapters()], self.plan().possible_ids())
        if stale:
            more = f" (and {len(stale) - 3} more)" if len(stale) > 3 else ""
            raise pytest.UsageError(f"stale expectations: {' | '.join(stale[:3])}{more}")
        problems = check_store(_selected_scenarios(self.scenario_patterns))
        if problems:
            more = f" ({len(problems) - 1} more problem(s): `adamconf golden verify` lists them)" if len(problems) > 1 else ""
            raise pytest.UsageError(problems[0] + more)

    def plan(self):
        from adamconf.suites.cases import Plan

        return Plan(self.adapters(), self.scenario_patterns, self.dtypes, self.devices, self.expectations)

    # -- hooks of the run (this object is registered as a plugin by pytest_configure) ---------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from adamconf.suites.cases import RECORD_PROPERTY

        for name, value in report.user_properties:
            if name == RECORD_PROPERTY:
                rec = json.loads(value)
                self.records[rec["id"]] = rec
                self.active = True
                return
        if report.when == "???" and report.failed:  # xdist: the worker died while running this item
            rec = _crash_record(report, {a.name: spec for spec, a, _ in self.adapters()}, self.fault_logs,
                                self.config.getoption("timeout", None))
            if rec is not None:
                self.records[rec["id"]] = rec
                self.active = True

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):  # a worker sends its records and its adapters' facts
            self.config.workeroutput["adamconf_adapters"] = json.dumps(self.describe_ran())
            return
        if not self.active:
            return
        if session.exitstatus == pytest.ExitCode.INTERRUPTED:
            self.incomplete = (f"interrupted by {interrupted_by() or 'SIGINT (Ctrl-C)'} after "
                               f"{len(self.records)} case(s) were judged")
        elif session.shouldstop or session.shouldfail:
            self.incomplete = f"stopped early ({session.shouldstop or session.shouldfail}) after {len(self.records)} case(s)"
        if self.config.option.adamconf_results:
            self.results_path = _write_results(self, self.config.option.adamconf_results)

    def describe_ran(self) -> dict[str, dict]:
        """``contract.describe`` of each adapter that ran a case in this process."""
        from adamconf.adapters.contract import describe

        return {a.name: describe(a) for _, a, _ in (self._adapters or ()) if a.name in self.ran}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist: a worker finished; keep the facts of the adapters it ran."""
        facts = getattr(node, "workeroutput", {}).get("adamconf_adapters")
        if facts:
            self.adapter_facts.update(json.loads(facts))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput") or not self.active:
            return
        from adamconf.reports.results import VERDICTS

        tr = terminalreporter
        counts = Counter(r["verdict"] for r in self.records.values())
        text = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts.get(v)) or "no cases"
        tr.write_sep("-", f"adamconf: {text}" + (f"; INCOMPLETE: {self.incomplete}" if self.incomplete else "")
                     + (f"; results written to {self.results_path}" if self.results_path else ""))


def _runs_suites(config: pytest.Config) -> bool:
    """Whether this pytest run collects the conformance suites (``--pyargs adamconf.suites``, or their files)."""
    from pathlib import Path

    import adamconf.suites

    root = Path(adamconf.suites.__file__).resolve().parent
    for arg in config.args:
        head = str(arg).split("::")[0]
        if head == "adamconf.suites" or head.startswith("adamconf.suites."):
            return True
        path = Path(head).resolve()
        if path == root or root in path.parents:
            return True
    return False


def _selected_scenarios(patterns: list[str]) -> list:
    """The catalogue's scenarios that ``--scenario`` patterns select (all without patterns), determinism's included."""
    import fnmatch

    from adamconf.golden.scenarios import CATALOGUE
    from adamconf.suites.cases import DETERMINISM, DETERMINISM_SCENARIOS

    def chosen(s) -> bool:
        return any(fnmatch.fnmatchcase(s.name, p) or p == s.family
                   or (s.name in DETERMINISM_SCENARIOS
                       and (p == DETERMINISM or fnmatch.fnmatchcase(f"{DETERMINISM}/{s.name}", p)))
                   for p in patterns)

    return [s for s in CATALOGUE if not patterns or chosen(s)]


def _check_scenario_patterns(patterns: list[str]) -> None:
    import fnmatch

    from adamconf.golden.scenarios import CATALOGUE, FAMILIES
    from adamconf.suites.cases import DETERMINISM, DETERMINISM_SCENARIOS

    names = [s.name for s in CATALOGUE] + [f"{DETERMINISM}/{n}" for n in DETERMINISM_SCENARIOS]
    for p in patterns:
        if p not in (*FAMILIES, DETERMINISM, "api") and not any(fnmatch.fnmatchcase(n, p) for n in names):
            import difflib

            near = difflib.get_close_matches(p, [*names, *FAMILIES, DETERMINISM, "api"], n=1, cutoff=0.6)
            raise pytest.UsageError(
                f"--scenario {p!r} matches no scenario and no family"
                + (f"; did you mean {near[0]!r}?" if near else "") + f" Families: {', '.join(FAMILIES)}, "
                f"{DETERMINISM}, api (the API-profile suites); `adamconf list scenarios` lists the "
                f"{len(CATALOGUE)} scenarios")


def _worker_default(config: pytest.Config) -> list[str] | None:
    """Under xdist the controller resolves the default adapters once and hands them to each worker."""
    return getattr(config, "workerinput", {}).get("adamconf_adapters")


def _available_builtins(devices: list[str]) -> list[str]:
    """The built-in adapters whose libraries are installed here and that declare a device of the run.

    Nothing is imported (``contract.installed``): each case checks the full availability and is skipped,
    with the reason, where a library is installed but does not work here (no C++ compiler for
    torch.compile, no GPU for a cuda device).
    """
    from adamconf.adapters.contract import installed
    from adamconf.adapters.registry import builtin_adapters

    return [name for name, a in builtin_adapters().items()
            if any(d in a.devices for d in devices) and installed(a) is None]


def _resolve(specs: list[str]) -> list[tuple[str, Any, bool]]:
    from adamconf.adapters.registry import UnknownAdapter, builtin_adapters, load_adapter

    builtins = builtin_adapters()
    out, seen = [], {}
    for spec in dict.fromkeys(specs):
        try:
            adapter = load_adapter(spec)
        except (UnknownAdapter, TypeError) as exc:
            raise pytest.UsageError(str(exc)) from None
        if adapter.name in seen:
            raise pytest.UsageError(f"--adapter {spec!r} and --adapter {seen[adapter.name]!r} are both named "
                                    f"{adapter.name!r}; case ids must be unique: give one of them")
        seen[adapter.name] = spec
        out.append((spec, adapter, builtins.get(spec) is adapter))
    return out


# -- configuration --------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    from adamconf.golden.scenarios import FAMILIES
    from adamconf.suites.cases import DETERMINISM

    for family in FAMILIES:
        config.addinivalue_line("markers", f"{family}: adamconf cases of the {family} scenario family")
    config.addinivalue_line("markers", f"{DETERMINISM}: adamconf cases that run a scenario twice, bitwise")
    config.addinivalue_line("markers", "api: adamconf API-profile checks (suites/test_api_*.py)")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's grouping (one group per scenario and dtype)")
    if config.getoption("adamconf_no_cache", False):  # xdist workers get the option too
        from adamconf.reference import cache

        cache.set_enabled(False)
    session = config.stash[_PLAN] = _Session(config)
    config.pluginmanager.register(session, "adamconf-session")
    if getattr(config, "workerinput", None) is None:  # the revision the run starts from, for its provenance
        from adamconf.reports.provenance import git_state

        session.git = git_state()
    from adamconf.suites import isolation

    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        # before any framework is imported (collection imports the adapters): this worker's share of the cores
        from adamconf.suites.threads import share_cores

        share_cores(workerinput.get("workercount", 1))
        if workerinput.get("adamconf_faults"):
            session.worker_log = isolation.WorkerLog(
                isolation.FaultLogs.at(workerinput["adamconf_faults"]).for_worker(workerinput["workerid"]))
    else:
        if getattr(config.option, "numprocesses", None):
            session.fault_logs = isolation.FaultLogs()
        _catch_sigterm(config)


_SIGNALLED: list[str] = []  # the signal that ended this process's run, if one did


def interrupted_by() -> str | None:
    """The name of the signal that interrupted the run (None: none did, or it was Ctrl-C)."""
    return _SIGNALLED[-1] if _SIGNALLED else None


def _catch_sigterm(config: pytest.Config) -> None:
    """SIGTERM ends the run as Ctrl-C does: the cases judged so far are written (marked incomplete).

    Python's default for SIGTERM is to die at once, without pytest's finishing hooks.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        _SIGNALLED.append(signal.Signals(signum).name)
        raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")

    previous = signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, previous))


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_PLAN, None)
    if session is not None and config.pluginmanager.is_registered(session):
        config.pluginmanager.unregister(session)
    if session is not None and session.worker_log is not None:
        session.worker_log.close()
    if session is not None and session.fault_logs is not None:
        session.fault_logs.remove()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: give every worker the controller's default adapters (resolved once, identical collection)."""
    session = node.config.stash[_PLAN]
    if not session.specs:
        node.workerinput["adamconf_adapters"] = [spec for spec, _, _ in session.adapters()]
    if session.fault_logs is not None:
        node.workerinput["adamconf_faults"] = str(session.fault_logs.path)


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: Any) -> None:
    """xdist: a case that crashed its worker is recorded once (crashed), never run again on the replacement."""
    from adamconf.suites.isolation import forget

    forget(crashitem, sched)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """In an xdist worker, each case runs under the fault log and its watchdog (adamconf.suites.isolation)."""
    log = item.config.stash[_PLAN].worker_log
    if log is None:
        return (yield)
    log.begin(item.nodeid, item.config.getoption("timeout", None))
    try:
        return (yield)
    finally:
        log.end()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "adamconf_case" not in metafunc.fixturenames:
        return
    family = getattr(metafunc.module, "FAMILY", None)
    if family is None:
        raise pytest.UsageError(f"{metafunc.module.__name__} takes adamconf_case but sets no FAMILY")
    session = metafunc.config.stash[_PLAN]
    session.active = True
    cases = session.plan().cases(family)
    # under xdist --dist loadgroup the cases of one scenario and dtype go to one worker, which computes their
    # float64 model, budget and variants once for every adapter (adamconf run uses --dist load: see
    # adamconf/suites/command.py; its chunks follow this order, scenario by scenario)
    params = [pytest.param(c, id=c.id, marks=[getattr(pytest.mark, family),
                                               pytest.mark.xdist_group(f"{c.scenario.name}-{c.dtype}")])
              for c in cases]
    metafunc.parametrize("adamconf_case", params, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the placeholder a family with no selected case leaves (pytest's 'empty parameter set')."""
    from adamconf.suites.cases import Case

    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        empty = "adamconf_case" in getattr(item, "fixturenames", ()) and not isinstance(params.get("adamconf_case"),
                                                                                        Case)
        (drop if empty else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def adamconf_case(request: pytest.FixtureRequest):
    """The case this test runs (an ``adamconf.suites.cases.BoundCase``)."""
    from adamconf.suites.cases import BoundCase

    bound = BoundCase(request.param, request.node)
    request.node.stash[_BOUND] = bound
    request.config.stash[_PLAN].ran.add(request.param.adapter.name)
    return bound


# -- outcomes and records ---------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    bound = item.stash.get(_BOUND, None)
    if bound is None or call.when not in ("setup", "call"):
        return report
    from adamconf.suites.cases import RECORD_PROPERTY, AdapterRaised, CaseFailed, UnexpectedPass, record

    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, (CaseFailed, AdapterRaised, UnexpectedPass)):
        report.longrepr = str(exc)  # the message is the diagnosis; the harness's traceback is noise
    rec = bound.record
    if rec is None and (call.when == "call" or report.failed):
        # the test ended before the case was judged: pytest-timeout, or the harness itself raised
        timed_out = exc is not None and "Timeout" in str(exc) and "pytest-timeout" in str(exc)
        verdict = "timeout" if timed_out else "error"
        text = (f"{bound.case.id}: timed out: {str(exc).strip()}" if timed_out else
                f"{bound.case.id}: the case did not complete: "
                + "".join(traceback.format_exception_only(type(exc), exc)).strip() if exc is not None else "")
        rec = record(bound.case, None, verdict, f"{text}\nrerun: {bound.case.rerun}", duration_s=call.duration)
    if rec is not None and not any(name == RECORD_PROPERTY for name, _ in report.user_properties):
        report.user_properties.append((RECORD_PROPERTY, json.dumps(rec.to_dict())))
    return report


def _crash_record(report: pytest.TestReport, specs: dict[str, str], logs: Any, timeout_s: float | None) -> dict | None:
    """A record for the item a dead worker was running, from its node id ``...[adapter::scenario::dtype::device]``.

    Its verdict and message come from the worker's fault log and exit status (adamconf.suites.isolation).
    """
    from adamconf.golden.scenarios import get
    from adamconf.reports.record import CaseRecord
    from adamconf.suites.cases import DETERMINISM
    from adamconf.suites.isolation import death

    nodeid = report.nodeid
    if "[" not in nodeid or not nodeid.endswith("]"):
        return None
    parts = nodeid[nodeid.index("[") + 1:-1].rsplit("::", 3)
    if len(parts) != 4:
        return None
    adapter, scenario, dtype, device = parts
    try:
        family = DETERMINISM if scenario.startswith(f"{DETERMINISM}/") else get(scenario).family
    except KeyError:
        return None
    node = getattr(report, "node", None)
    worker = getattr(getattr(node, "gateway", None), "id", None)
    log = logs.for_worker(worker) if logs is not None and worker else None
    verdict, message = death(nodeid, node, log, timeout_s)
    rec = CaseRecord(adapter, scenario, family, dtype, device, verdict, spec=specs.get(adapter))
    rec.message = f"{rec.id}: {message}\nrerun: {rec.rerun}"
    return rec.to_dict()


def _write_results(state: _Session, path: str):
    from adamconf.adapters.contract import describe
    from adamconf.golden.store import DATA_DIR, sha256_file
    from adamconf.reports.provenance import collect_provenance
    from adamconf.reports.results import new_results, write_results

    plan = state.plan()
    records = sorted(state.records.values(), key=plan.order)
    manifest = DATA_DIR / "manifest.json"
    provenance = collect_provenance(golden_manifest_sha256=sha256_file(manifest) if manifest.is_file() else None,
                                    git=getattr(state, "git", None))
    # the facts of the adapters as the processes that ran them found them; an adapter no worker reported
    # (-n 0: this process ran it; or its worker died) is described here
    facts = {**state.adapter_facts, **state.describe_ran()}
    adapters = {a.name: facts.get(a.name) or describe(a) for _, a, _ in state.adapters()}
    fingerprints = _fingerprints(state) if state.config.option.adamconf_fingerprint and not state.incomplete else None
    return write_results(new_results(records, provenance, adapters=adapters, incomplete=state.incomplete,
                                     fingerprints=fingerprints), path)


def _fingerprints(state: _Session) -> dict:
    """``--fingerprint``: each adapter's fingerprint entry (adamconf.reports.fingerprints), on the run's first device."""
    import time

    from adamconf.golden.store import GoldenError
    from adamconf.reports.fingerprints import fingerprint_adapters

    t0 = time.perf_counter()
    try:
        entries = fingerprint_adapters([(spec, a) for spec, a, _ in state.adapters()], device=state.devices[0])
    except GoldenError as exc:  # the cases saw the same store; the run's results are still written
        print(f"adamconf: --fingerprint: no fingerprint taken: {exc}")
        return {}
    print(f"\nadamconf: --fingerprint: {len(entries)} adapter(s) fingerprinted in {time.perf_counter() - t0:.1f} s")
    return entries
