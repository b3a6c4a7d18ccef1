"""The HTML conformance report: one self-contained page from one or more results files.

``render_html(docs, out_path)`` merges the runs (``results.merge``), shapes a
view of them (``build_context``) and renders ``templates/report.html.j2`` with
autoescaping on: every string from a results file (adapter names, messages,
links) reaches the page escaped, and a link is only made clickable when it is
http(s). The page has no external resource: its CSS is inline and its plots
are inline SVG from ``plots.budget_plot_svg``. ``report_main`` is the
``adamconf report`` command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from adamconf.reports.plots import budget_plot_svg, format_budget
from adamconf.reports.results import VERDICTS, ResultsError, load_results, merge, unwritable, write_text_atomic

__all__ = ["build_context", "render_html", "report_command", "report_main"]

#: Verdicts whose cases the report details, with a plot where the case has a series.
DETAILED = ("failed", "error", "crashed", "timeout", "xpassed")
#: At most this many plots of detailed cases (each is ~20 kB), plus the closest passes.
MAX_DETAIL_PLOTS = 40
CLOSEST_PASSES = 3
#: Longer messages (tracebacks) are cut in the middle; the results file keeps them whole.
MAX_MESSAGE_CHARS = 6000
DTYPE_SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
_DTYPE_ORDER = {d: i for i, d in enumerate(DTYPE_SHORT)}
#: Upper edges of the budget-used bands that colour passed cells (b0 ... b4).
_BANDS = (0.1, 0.25, 0.5, 0.75)


def render_html(docs: Sequence[Mapping[str, Any]], out_path: str | Path, *,
                title: str = "adamconf conformance report") -> Path:
    """Write the report of the runs ``docs`` (validated results documents) to ``out_path``."""
    context = build_context(merge(docs), title=title)
    html = _environment().get_template("report.html.j2").render(**context)
    return write_text_atomic(out_path, html)


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("adamconf.reports", "templates"),
        autoescape=True,  # results files are untrusted text: nothing in them may become markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["budget"] = format_budget
    return env


# --- the view ---------------------------------------------------------------


def build_context(view: Mapping[str, Any], *, title: str) -> dict[str, Any]:
    """Everything the template shows, from a merged view (``results.merge``)."""
    from markupsafe import Markup

    cases = sorted(({**c} for c in view["cases"]), key=_case_order)  # copies: anchors are added below
    for index, case in enumerate(cases):
        case["anchor"] = f"case-{index}"  # ids from a counter: no user text in attributes that matter
    detailed = [c for c in cases if c["verdict"] in DETAILED]
    plotted = [c for c in detailed if c["series"]][:MAX_DETAIL_PLOTS]
    closest = sorted((c for c in cases if c["verdict"] == "passed" and c["series"] and c["budget_used"] is not None),
                     key=lambda c: -c["budget_used"])[:CLOSEST_PASSES]
    plots = {id(c): Markup(budget_plot_svg(c["series"], c["first_failing_step"])) for c in plotted + closest}
    return {
        "title": title,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "verdicts": VERDICTS,
        "summary": view["summary"],
        "total": sum(view["summary"].values()),
        "runs": view["runs"],
        "run_lines": [(run["key"], _run_line(run)) for run in view["runs"]],
        "incomplete": [(run["key"], run["incomplete"]) for run in view["runs"] if run.get("incomplete")],
        "provenance_rows": _provenance_rows(view["runs"]),
        "adapters": _adapter_rows(view["runs"], cases),
        "matrix": _matrix(cases, {c["anchor"] for c in detailed}, catalogue=view["cases"]),
        "detailed": [_detail(c, plots.get(id(c))) for c in detailed],
        "plots_left_out": sum(1 for c in detailed if c["series"]) - len(plotted),
        "closest": [_detail(c, plots[id(c)]) for c in closest],
        "skipped": _skip_groups(cases),
        "expectations": [_detail(c, None) for c in cases if c["expectation"]],
    }


def _case_order(case: Mapping[str, Any]) -> tuple:
    return (case["adapter"], case["family"], case["scenario"], _DTYPE_ORDER.get(case["dtype"], 9),
            case["device"], case["run"])


def _run_line(run: Mapping[str, Any]) -> str:
    """One line per run for the page header: where, what hardware, which adamconf."""
    p = run["provenance"]
    hardware = ", ".join(g["name"] for g in p["gpus"]) or f"{p['cpu'] or 'cpu'} × {p['cpu_count'] or '?'}"
    revision = f" ({p['git_revision'][:12]})" if p["git_revision"] else ""
    return (f"{p['hostname']}, {hardware}; {p['implementation']} {p['python']} on {p['os']}; "
            f"adamconf {p['adamconf_version']}{revision}; {run['created']}; {sum(run['summary'].values())} cases")


def _provenance_rows(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """(field, [value per run]) rows, so that runs side by side read as a comparison."""
    def adamconf(p):
        revision = p["git_revision"]
        text = p["adamconf_version"]
        if revision:
            text += f" (git {revision[:12]}{', modified' if p['git_dirty'] else ''})"
        return text

    def gpus(p):
        return "; ".join(f"{g['name']} ({g['memory_mb'] or '?'} MiB, driver {g['driver'] or '?'})"
                         for g in p["gpus"]) or "none"

    fields = [
        ("created", lambda r: r["created"]),
        ("host", lambda r: r["provenance"]["hostname"]),
        ("adamconf", lambda r: adamconf(r["provenance"])),
        ("golden manifest", lambda r: (r["provenance"]["golden_manifest_sha256"] or "none")[:16]),
        ("python", lambda r: f"{r['provenance']['implementation']} {r['provenance']['python']}"),
        ("platform", lambda r: r["provenance"]["platform"]),
        ("cpu", lambda r: f"{r['provenance']['cpu'] or '?'} × {r['provenance']['cpu_count'] or '?'}"),
        ("gpus", lambda r: gpus(r["provenance"])),
        ("command", lambda r: " ".join(r["provenance"]["command"])),
        ("cases", lambda r: str(sum(r["summary"].values()))),
    ]
    rows = [(name, [get(run) for run in runs]) for name, get in fields]
    for section in ("packages", "env"):
        # adamconf's own version already has its row, with the git revision
        names = sorted({n for run in runs for n in run["provenance"][section]} - {"adamconf"})
        rows += [(n if section == "packages" else f"${n}",
                  [run["provenance"][section].get(n, "–") for run in runs]) for n in names]
    return rows


def _adapter_rows(runs: Sequence[Mapping[str, Any]], cases: Sequence[Mapping[str, Any]]) -> list[dict]:
    by_adapter: dict[str, list] = defaultdict(list)
    for case in cases:
        by_adapter[case["adapter"]].append(case)
    rows = []
    for name in sorted(by_adapter):
        own = by_adapter[name]
        counts = Counter(c["verdict"] for c in own)
        passes = [c["budget_used"] for c in own if c["verdict"] == "passed" and c["budget_used"] is not None]
        dialects = sorted({run["adapters"][name]["dialect"] for run in runs if name in run.get("adapters", {})})
        rows.append({"name": name, "counts": [counts.get(v, 0) for v in VERDICTS], "total": len(own),
                     "claimed_dialect": ", ".join(dialects) or "–",
                     "worst_pass": max(passes) if passes else None,
                     "worst_band": _band(max(passes)) if passes else 0})
    return rows


def _matrix(cases: Sequence[Mapping[str, Any]], detailed_anchors: set[str], *,
            catalogue: Sequence[Mapping[str, Any]]) -> dict:
    """Rows adapters, columns scenarios grouped by family, a cell = its cases.

    Families and scenarios keep the order in which the runs list them
    (``catalogue``: the scenario catalogue's order), not the alphabet's.
    """
    families: dict[str, list[str]] = {}
    for case in catalogue:
        scenarios = families.setdefault(case["family"], [])
        if case["scenario"] not in scenarios:
            scenarios.append(case["scenario"])
    # A run tag is needed only where one (adapter, scenario, dtype, device) was measured by several runs.
    runs_per_case = Counter((c["adapter"], c["scenario"], c["dtype"], c["device"]) for c in cases)
    cells: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for case in cases:
        label = f"{DTYPE_SHORT.get(case['dtype'], case['dtype'])} {case['device']}"
        if runs_per_case[(case["adapter"], case["scenario"], case["dtype"], case["device"])] > 1:
            label += f" @{case['run']}"
        first_line = case["message"].strip().splitlines()[0][:300] if case["message"].strip() else ""
        cells[(case["adapter"], case["scenario"])].append({
            "label": label,
            "verdict": case["verdict"],
            "budget": case["budget_used"],
            "band": _band(case["budget_used"]),
            "tooltip": f"{case['id']} [{case['run']}]: {case['verdict']}"
                       + (f" — {first_line}" if first_line else ""),
            "href": f"#{case['anchor']}" if case["anchor"] in detailed_anchors else None,
        })
    adapters = sorted({c["adapter"] for c in cases})
    columns = [s for scenarios in families.values() for s in scenarios]
    return {
        "families": [(family, len(scenarios)) for family, scenarios in families.items()],
        "columns": columns,
        "rows": [(a, [cells.get((a, s), []) for s in columns]) for a in adapters],
    }


def _band(budget: float | None) -> int:
    """0 ... 4: which fifth of the budget-used scale (10/25/50/75/100 %) a case is in."""
    if budget is None:
        return 0
    return next((i for i, edge in enumerate(_BANDS) if budget < edge), len(_BANDS))


def _detail(case: Mapping[str, Any], plot) -> dict:
    expectation = case["expectation"]
    link = expectation.get("link") if expectation else None
    return {
        **case,
        "message_shown": _cut(case["message"]),
        "checks_shown": [(name, value) for name, value in case["checks"].items()],
        "plot": plot,
        "safe_link": link if link and _is_web_link(link) else None,
    }


def _cut(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    half = MAX_MESSAGE_CHARS // 2
    return (f"{message[:half]}\n\n[... {len(message) - 2 * half} characters left out here; "
            f"the results file has the whole message ...]\n\n{message[-half:]}")


def _is_web_link(url: str) -> bool:
    """Only http(s) links become clickable: ``javascript:`` or ``data:`` ones stay text."""
    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _skip_groups(cases: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Skipped cases grouped by (adapter, reason): one line per reason, not one per case."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for case in cases:
        if case["verdict"] == "skipped":
            groups[(case["adapter"], case["message"].strip() or "(no reason given)")].append(
                f"{case['id']} [{case['run']}]")
    return [{"adapter": a, "reason": r, "count": len(ids), "examples": ids[:3]}
            for (a, r), ids in sorted(groups.items())]


# --- the command ------------------------------------------------------------


def report_main(argv: Sequence[str] | None = None) -> int:
    """``adamconf report RESULTS.json [RESULTS.json ...] -o report.html``; 0 on success, 2 on bad input."""
    from adamconf.cli import parse_args  # the one definition of the command line

    try:
        args = parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    return report_command(args)


def report_command(args: argparse.Namespace) -> int:
    """The report of parsed ``adamconf report`` arguments (``adamconf.cli.parse_args``): 0, or 2 on bad input."""
    docs, problems = [], []
    out = Path(args.output)
    same = [p for p in args.results if Path(p).exists() and out.exists() and os.path.samefile(p, out)]
    if same:
        problems.append(f"-o {args.output} is the results file {same[0]} given as input: the report would "
                        "overwrite it; write the report elsewhere (-o report.html)")
    why = unwritable(out)
    if why:
        problems.append(f"cannot write the report to {args.output}: {why}")
    for path in args.results:
        try:
            docs.append(load_results(path))
        except ResultsError as exc:
            problems.append(str(exc))
    if problems:
        for problem in problems:
            print(f"adamconf report: error: {problem}", file=sys.stderr)
        print("adamconf report: no report written", file=sys.stderr)
        return 2
    try:
        written = render_html(docs, args.output, title=args.title)
    except ResultsError as exc:
        print(f"adamconf report: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"adamconf report: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    cases = sum(sum(d["summary"].values()) for d in docs)
    print(f"adamconf report: wrote {written} ({cases} cases from {len(docs)} run(s))")
    return 0
