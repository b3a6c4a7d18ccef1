"""The ``adamconf`` command: the one definition of its command line (list, golden, run, report, fingerprint).

Every subcommand's options are declared here, and only here; each subcommand is
carried out by a library function taking the parsed arguments (``run_command``,
``report_command``, ``fingerprint_command``). ``run`` declares only what is its
own (``-n/--workers``, ``--html``) and passes everything else to pytest unchanged: the
adamconf plugin's options (``--adapter``, ``--scenario``, ``--dtype``,
``--device``, ``--expectations``, ``--results``: declared once, in
adamconf/plugin.py, and listed by ``adamconf run --help``) and any pytest option.

Exit codes: 0 success, 1 a check failed, 2 a usage error (argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

__all__ = ["build_parser", "main", "parse_args", "plugin_options_help"]


def _cmd_list(args) -> int:
    if args.what == "scenarios":
        from adamconf.golden.scenarios import CATALOGUE

        rows = [s for s in CATALOGUE if not args.family or s.family in args.family]
        if args.json:
            print(json.dumps([s.to_dict() for s in rows], indent=1))
            return 0
        width = max(len(s.name) for s in rows)
        for s in rows:
            feats = ",".join(sorted(s.features)) or "-"
            print(f"{s.name:{width}s}  {s.family:9s}  {s.steps:5d} steps  {','.join(s.dtypes):33s}  "
                  f"features={feats:24s}  {s.description}")
        print(f"{len(rows)} scenarios in {len({s.family for s in rows})} families")
        return 0
    from adamconf.adapters.contract import describe
    from adamconf.adapters.registry import builtin_adapters

    facts = [describe(a) for a in builtin_adapters().values()]
    if args.json:
        print(json.dumps(facts, indent=1))
        return 0
    width = max((len(f["name"]) for f in facts), default=10)
    for f in facts:
        status = "available" if f["available"] else f"unavailable: {f['unavailable_reason']}"
        if f["available"] and f["devices_unavailable"]:
            status += "; " + "; ".join(f"{dev}: {why}" for dev, why in f["devices_unavailable"].items())
        print(f"{f['name']:{width}s}  dialect={f['dialect']:14s}  dtypes={','.join(f['dtypes']):33s}  "
              f"devices={','.join(f['devices']):9s}  {status}")
    print(f"{len(facts)} built-in adapters, {sum(f['available'] for f in facts)} available here")
    return 0


def _cmd_golden(args) -> int:
    from pathlib import Path

    from adamconf.golden import build as gb
    from adamconf.golden.store import DATA_DIR

    data_dir = Path(args.data_dir) if args.data_dir else DATA_DIR
    if args.action == "build":
        figures = gb.build(args.scenario or None, data_dir=data_dir, workers=args.workers,
                           log=(lambda *a: None) if args.quiet else print)
        print(f"built {figures['goldens']} goldens: {figures['element_steps']} element-steps in "
              f"{figures['wall_s']:.2f} s with {figures['workers']} processes "
              f"({figures['per_core']:.0f} element-steps/s per core, {figures['all_cores']:.0f} with all)")
        return 0
    problems = gb.verify(data_dir, sample=args.sample, patterns=args.scenario or None, workers=args.workers,
                         log=(lambda *a: None) if args.quiet else print)
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    if problems:
        print(f"golden verify: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("golden verify: every file matches its manifest and rebuilds bit for bit")
    return 0


def _cmd_run(args) -> int:
    from adamconf.suites.command import run_command

    return run_command(args)


def _cmd_report(args) -> int:
    from adamconf.reports.render import report_command

    return report_command(args)


def _cmd_fingerprint(args) -> int:
    from adamconf.suites.fingerprint import fingerprint_command

    return fingerprint_command(args)


# -- the command line -----------------------------------------------------------------------------
class _OptionGroup:
    """``parser.getgroup(...)``'s group, as pytest_addoption uses it, over an argparse argument group."""

    def __init__(self, group: Any) -> None:
        self._group = group

    def addoption(self, *names: str, **attrs: Any) -> None:
        self._group.add_argument(*names, **attrs)


class _PluginOptions:
    """Enough of ``pytest.Parser`` for ``adamconf.plugin.pytest_addoption`` to declare its options on argparse."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._parser = parser

    def getgroup(self, name: str, description: str = "") -> _OptionGroup:
        return _OptionGroup(self._parser.add_argument_group(description or name))


def plugin_options_help() -> str:
    """The adamconf plugin's options as ``pytest --help`` lists them (from the plugin's own declarations)."""
    from adamconf import plugin

    parser = argparse.ArgumentParser(prog="adamconf run", add_help=False)
    plugin.pytest_addoption(_PluginOptions(parser))
    return parser.format_help().split("\n\n", 1)[1].rstrip()  # the groups, without the usage line


class _RunHelp(argparse.Action):
    """``adamconf run --help``: run's own options, then the plugin's (imported only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.print_help()
        print("\n" + plugin_options_help())
        print("\n" + _RUN_EPILOG)
        parser.exit()


_RUN_EPILOG = """\
Every other argument goes to pytest unchanged (pytest --help lists them; those after
-- too): -k EXPRESSION selects cases by id substrings, -x stops at the first failing case,
-q / -v make the output shorter or longer. Defaults that adamconf run adds unless given:
--results adamconf-results.json (--results '' for none) and --timeout 600 (seconds per
case, pytest-timeout; 0 for none).

Exit status: 0 every case passed, was skipped as unsupported here, or failed as an
expectations file says; 1 otherwise (a case failed, raised, crashed, timed out or passed
although listed as expected to fail, or an expectations entry matches no case); 2 a usage
error (a bad option, an unknown adapter, a missing expectations file, no case selected)."""


def build_parser() -> argparse.ArgumentParser:
    from adamconf.adapters.contract import DEVICES, DTYPES

    p = argparse.ArgumentParser(prog="adamconf", description="Adam conformance: is this really Adam, and which Adam?")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list scenarios or adapters")
    ls.add_argument("what", choices=["scenarios", "adapters"])
    ls.add_argument("--family", action="append", help="only this scenario family (repeatable)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")

    g = sub.add_parser("golden", help="build or verify the golden store")
    g.add_argument("action", choices=["build", "verify"])
    g.add_argument("--scenario", action="append", help="glob pattern or family (repeatable); default: all")
    g.add_argument("--sample", type=int, help="verify: rebuild only this many goldens, drawn at random")
    g.add_argument("--workers", type=int, help="processes (default: all cores)")
    g.add_argument("--data-dir", help="golden directory (default: the installed package's)")
    g.add_argument("--quiet", action="store_true")

    run = sub.add_parser(
        "run", help="run the conformance suites (pytest); see `adamconf run --help`", add_help=False,
        allow_abbrev=False, usage="adamconf run [-n N] [--html REPORT.html] [adamconf plugin options] [pytest options] [-- pytest args]",
        description="Run the Adam conformance suites (pytest --pyargs adamconf.suites) against adapters. "
                    "The adamconf plugin's options and pytest's are accepted as pytest takes them.")
    run.add_argument("-h", "--help", action=_RunHelp, help="show this help (with the plugin's options) and exit")
    run.add_argument("-n", "--workers", default=None, metavar="N",
                     help="pytest-xdist worker processes, a number or 'auto' (default: auto when more than one "
                          "adapter runs, else one per core up to 4; 0 for none: the cases run in this process); a "
                          "crashed worker is recorded and replaced")
    run.add_argument("--html", default=None, metavar="REPORT.html",
                     help="also write the HTML report of the run (`adamconf report`) from its results file "
                          "when the run ends")

    rep = sub.add_parser("report", help="merge results files into an HTML report",
                         description="Merge results files of one or more runs (e.g. a CPU and a GPU runner) "
                                     "into one self-contained HTML report.")
    rep.add_argument("results", nargs="+", metavar="RESULTS.json",
                     help="results files written by `adamconf run`, and fingerprints files written by "
                          "`adamconf fingerprint --results` (their detected dialects join the dialect view)")
    rep.add_argument("-o", "--output", default="report.html", metavar="REPORT.html",
                     help="where to write the report (default: %(default)s)")
    rep.add_argument("--title", default="adamconf conformance report", help="the page title")
    rep.add_argument("--baseline", action="append", metavar="OLD.json",
                     help="results file of an earlier run to compare with (repeatable): regressed, fixed, new and "
                          "gone cases are listed at the top and marked in the matrix")

    fp = sub.add_parser(
        "fingerprint", help="identify the dialect of an implementation",
        description="Identify which Adam dialect an implementation follows, axis by axis, ignoring the one it "
                    "declares. Exit status: 0 every testable axis identified, 1 some axis matched none of the "
                    "known values (or was ambiguous, or the adapter raised, or nothing was testable), 2 usage error "
                    "(unknown spec, a dtype or device the adapter lacks, an adapter that cannot run here, a "
                    "golden store that does not load).")
    fp.add_argument("spec", help="adapter spec: a built-in name (`adamconf list adapters`), an entry point, "
                                 "package.module:Name or path/to/file.py:Name")
    fp.add_argument("more_specs", nargs="*", metavar="SPEC", help="more adapters, fingerprinted in turn")
    fp.add_argument("--json", action="store_true", help="print the machine-readable result")
    fp.add_argument("--dtype", choices=DTYPES,
                    help="run in this dtype (default: float64 when the adapter supports it, else float32)")
    fp.add_argument("--device", choices=DEVICES, default="cpu", help="default: cpu")
    fp.add_argument("--results", default=None, metavar="FP.json",
                    help="also write the fingerprints file (docs/fingerprint.md) that `adamconf report RUN.json "
                         "FP.json` shows beside the claimed dialects")
    fp.add_argument("--label", default=None, help="a name for this machine in the report (default: the hostname)")
    p._subcommands = sub.choices  # type: ignore[attr-defined]  # name -> parser, for their usage errors
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """A whole ``adamconf`` command line, parsed (SystemExit: 2 for a usage error, 0 after --help).

    For ``run``, ``args.pytest_args`` holds every argument that is not run's own, in order
    (those after ``--`` last): the plugin's options and pytest's, for pytest to parse.
    """
    argv = list(argv)
    after: list[str] = []
    if argv[:1] == ["run"] and "--" in argv:
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        args.pytest_args = rest + after
    elif rest:
        parser._subcommands[args.command].error(f"unrecognized arguments: {' '.join(rest)}")
    return args


_COMMANDS = {"list": _cmd_list, "golden": _cmd_golden, "run": _cmd_run, "report": _cmd_report,
             "fingerprint": _cmd_fingerprint}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `adamconf list scenarios | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1


def _main(argv: Sequence[str] | None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command in ("run", "report", "fingerprint"):
        return _COMMANDS[args.command](args)  # they report their own errors
    from adamconf.golden.store import GoldenError

    try:
        return _COMMANDS[args.command](args)
    except (ValueError, KeyError, GoldenError) as exc:
        print(f"adamconf: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
