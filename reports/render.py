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
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from adamconf.reports.plots import budget_plot_svg, format_budget
from adamconf.reports.fingerprints import load_report_input
from adamconf.reports.results import KIND as RESULTS_KIND
from adamconf.reports.results import VERDICTS, ResultsError, load_results, merge, unwritable, write_text_atomic

__all__ = ["build_context", "compare", "deciding_checks", "render_html", "render_string", "report_command",
           "report_main"]

#: Verdicts whose cases the report details, with a plot where the case has a series.
DETAILED = ("failed", "error", "crashed", "timeout", "xpassed")
#: At most this many plots of detailed cases (each is ~20 kB), plus the closest passes.
MAX_DETAIL_PLOTS = 40
CLOSEST_PASSES = 3
#: Longer messages (tracebacks) are cut in the middle; the results file keeps them whole.
MAX_MESSAGE_CHARS = 6000
#: Rows listed per kind of change (regressed, fixed, new, gone); the count says how many there are.
MAX_CHANGE_ROWS = 300
DTYPE_SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
_DTYPE_ORDER = {d: i for i, d in enumerate(DTYPE_SHORT)}
#: Upper edges of the budget-used bands that colour passed cells (b0 ... b4). Budget used is the
#: margin measure (README "Budget used"): ordinary rounding reads 10-40 %, so the two green bands
#: hold it; from 50 % a pass has less room than rounding explains, from 80 % it is a near miss.
_BANDS = (0.1, 0.5, 0.8, 0.95)
BAND_LEGEND = ((0, "pass < 10%"), (1, "< 50%: ordinary rounding"), (2, "50-80%: little room"),
               (3, "80-95%: near miss"), (4, "95-100%: at the edge"))
#: Verdicts that count as good / bad when a run is compared with its baseline.
GOOD = ("passed", "xfailed")
BAD = ("failed", "error", "crashed", "timeout", "xpassed")
#: Worst first: the verdict that stands for a case measured by several runs of one side.
_SEVERITY = ("crashed", "timeout", "error", "failed", "xpassed", "xfailed", "passed", "skipped")
CHANGE_KINDS = ("regressed", "fixed", "new", "gone")


def render_html(docs: Sequence[Mapping[str, Any]], out_path: str | Path, *,
                title: str = "adamconf conformance report",
                baseline: Sequence[Mapping[str, Any]] | None = None,
                fingerprints: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write the report of the runs ``docs`` (validated results documents) to ``out_path``.

    ``baseline``: results documents of an earlier run (or runs) that the page
    compares these with (regressed, fixed, new and gone cases). ``fingerprints``:
    fingerprints documents (``adamconf fingerprint --results``) whose detected
    dialects join those the runs took (``run --fingerprint``). The page is a
    function of its inputs: the same documents give the same bytes.
    """
    return write_text_atomic(out_path, render_string(docs, title=title, baseline=baseline,
                                                     fingerprints=fingerprints))


def render_string(docs: Sequence[Mapping[str, Any]], *, title: str = "adamconf conformance report",
                  baseline: Sequence[Mapping[str, Any]] | None = None,
                  fingerprints: Sequence[Mapping[str, Any]] = ()) -> str:
    """The page of ``render_html`` as a string."""
    from adamconf.reports.results import _no_gc

    with _no_gc():  # the page is 100,000s of small strings, the documents millions of numbers
        # the documents are validated (load_results, new_results): merge checks their structure only
        context = build_context(merge(docs, validated=True), title=title,
                                baseline=merge(baseline, validated=True) if baseline else None,
                                fingerprints=fingerprints)
        return _environment().get_template("report.html.j2").render(**context)


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


def build_context(view: Mapping[str, Any], *, title: str,
                  baseline: Mapping[str, Any] | None = None,
                  fingerprints: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Everything the template shows, from a merged view (``results.merge``), an optional baseline view
    and fingerprints documents."""
    from markupsafe import Markup

    from adamconf.reports.implementations import dialect_view, fingerprint_sources, implementation_sections

    cases = sorted(({**c} for c in view["cases"]), key=_case_order)  # copies: anchors are added below
    for index, case in enumerate(cases):
        case["anchor"] = f"case-{index}"  # ids from a counter: no user text in attributes that matter
        case["deciding"] = deciding_checks(case)
    comparison = compare(view, baseline) if baseline is not None else None
    if comparison is not None:
        for case in cases:
            case["change"] = comparison["status"].get(case["id"])
    # regressions first: with a baseline they are what a reader looks for
    detailed = sorted((c for c in cases if c["verdict"] in DETAILED), key=lambda c: c.get("change") != "regressed")
    plotted = [c for c in detailed if c["series"]][:MAX_DETAIL_PLOTS]
    closest = sorted((c for c in cases if c["verdict"] == "passed" and c["series"] and c["budget_used"] is not None),
                     key=lambda c: -c["budget_used"])[:CLOSEST_PASSES]
    plots = {id(c): Markup(_plot(c)) for c in plotted + closest}
    detailed_anchors = {c["anchor"] for c in detailed}
    sources = fingerprint_sources(view["runs"], fingerprints)
    dialects = dialect_view(view["runs"], cases, sources)
    return {
        "title": title,
        # derived from the inputs (the page is deterministic): the newest run's creation time
        "generated": max(run["created"] for run in view["runs"]),
        "comparison": comparison,
        "manifests": _manifest_problem(view["runs"]),
        "dialects": dialects,
        "implementations": implementation_sections(dialects["rows"], dialects["columns"], view["runs"], cases,
                                                   sources, detailed_anchors, band=_band, verdicts=VERDICTS,
                                                   is_web_link=_is_web_link, fingerprint_docs=fingerprints),
        "verdicts": VERDICTS,
        "summary": view["summary"],
        "total": sum(view["summary"].values()),
        "runs": view["runs"],
        "run_lines": [(run["key"], _run_line(run, sorted({c["device"] for c in cases if c["run"] == run["key"]})))
                      for run in view["runs"]],
        "incomplete": [(run["key"], run["incomplete"]) for run in view["runs"] if run.get("incomplete")],
        "provenance_rows": _provenance_rows(view["runs"]),
        "adapters": _adapter_rows(view["runs"], cases),
        # runs against different goldens are kept apart: every cell names its run
        "matrix": _matrix(cases, detailed_anchors, catalogue=view["cases"],
                          tag_runs=bool(_manifest_problem(view["runs"]))),
        "bands": BAND_LEGEND,
        "detailed": [_detail(c, plots.get(id(c))) for c in detailed],
        "plots_left_out": sum(1 for c in detailed if c["series"]) - len(plotted),
        "closest": [_detail(c, plots[id(c)]) for c in closest],
        "skipped": _skip_groups(cases),
        "expectations": [_detail(c, None) for c in cases if c["expectation"]],
    }


def _case_order(case: Mapping[str, Any]) -> tuple:
    return (case["adapter"], case["family"], case["scenario"], _DTYPE_ORDER.get(case["dtype"], 9),
            case["device"], case["run"])


def _run_line(run: Mapping[str, Any], devices: Sequence[str] = ()) -> str:
    """One line per run for the page header: which machine, the devices its cases ran on, the framework
    versions, which adamconf and goldens."""
    p = run["provenance"]
    gpus = ", ".join(g["name"] for g in p["gpus"])
    hardware = f"{p['cpu'] or 'cpu'} × {p['cpu_count'] or '?'}" + (f" + {gpus}" if gpus else "")
    revision = f" ({p['git_revision'][:12]})" if p["git_revision"] else ""
    frameworks = ", ".join(f"{n} {p['packages'][n]}" for n in _FRAMEWORKS if n in p["packages"])
    manifest = (p["golden_manifest_sha256"] or "none")[:16]
    return (f"{p['hostname']}, {hardware}; devices {', '.join(devices) or 'none'}; "
            f"{frameworks + '; ' if frameworks else ''}golden manifest {manifest}; "
            f"{p['implementation']} {p['python']} on {p['os']}; "
            f"adamconf {p['adamconf_version']}{revision}; {run['created']}; {sum(run['summary'].values())} cases")


#: The framework versions a run's header line names.
_FRAMEWORKS = ("torch", "tensorflow", "tensorflow-cpu", "tf_keras", "keras", "jax", "jaxlib", "optax", "numpy")


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


_CHANGE_MARK = {"regressed": "▼", "fixed": "▲", "new": "+"}


def _matrix(cases: Sequence[Mapping[str, Any]], detailed_anchors: set[str], *,
            catalogue: Sequence[Mapping[str, Any]], tag_runs: bool = False) -> dict:
    """An overview (rows adapters, columns families) and one table per family (columns its scenarios).

    Each family is a ``<details>`` element, open where a case of it failed (or
    regressed against the baseline), so the page never holds one 40-column table. ``tag_runs``:
    every cell names its run (runs compared against different golden manifests are kept apart).
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
    by_family: dict[tuple[str, str], list[Mapping]] = defaultdict(list)
    for case in cases:
        label = f"{DTYPE_SHORT.get(case['dtype'], case['dtype'])} {case['device']}"
        if tag_runs or runs_per_case[(case["adapter"], case["scenario"], case["dtype"], case["device"])] > 1:
            label += f" @{case['run']}"
        change = case.get("change")
        first_line = case["message"].strip().splitlines()[0][:300] if case["message"].strip() else ""
        cells[(case["adapter"], case["scenario"])].append({
            "label": label,
            "verdict": case["verdict"],
            "budget": case["budget_used"],
            "band": _band(case["budget_used"]),
            # the margin bar's width (computed here: jinja's min filter took a quarter second at 10,000 cases)
            "bar": f"{min(case['budget_used'] * 100, 100):.1f}"
                   if case["verdict"] == "passed" and case["budget_used"] is not None else None,
            "change": change,
            "mark": _CHANGE_MARK.get(change, ""),
            "tooltip": f"{case['id']} [{case['run']}]: {case['verdict']}"
                       + (f" ({change} since the baseline)" if change else "")
                       + (f" — {first_line}" if first_line else ""),
            "href": f"#{case['anchor']}" if case["anchor"] in detailed_anchors else None,
        })
        by_family[(case["adapter"], case["family"])].append(case)
    adapters = sorted({c["adapter"] for c in cases})
    out = []
    for index, (family, scenarios) in enumerate(families.items()):
        anchor = f"family-{index}"
        summaries = [_family_cell(by_family.get((a, family), []), anchor) for a in adapters]
        total = _family_cell([c for a in adapters for c in by_family.get((a, family), [])], anchor)
        out.append({"name": family, "anchor": anchor, "columns": scenarios, "summary": total,
                    "cells": summaries,
                    "open": bool(total["bad"] or total["changes"].get("regressed")),
                    "rows": _collapse([(a, [cells.get((a, s), []) for s in scenarios]) for a in adapters
                                       if by_family.get((a, family))], _entries_shown)})
    overview = _collapse([(a, [family["cells"][i] for family in out]) for i, a in enumerate(adapters)],
                         _summaries_shown)
    return {"adapters": adapters, "families": out, "overview": overview}


def _entries_shown(cells: Sequence[Sequence[Mapping[str, Any]]]) -> tuple:
    """What a row of a family table shows, cell by cell (labels, verdicts, budgets as printed, changes)."""
    return tuple(tuple((e["label"], e["verdict"], format_budget(e["budget"]), e["band"], e["change"]) for e in entries)
                 for entries in cells)


def _summaries_shown(cells: Sequence[Mapping[str, Any]]) -> tuple:
    return tuple((c["n"], tuple(c["counts"]), format_budget(c["worst_pass"]), c["band"], tuple(c["changes"].items()))
                 for c in cells)


def _collapse(rows: Sequence[tuple[str, Any]], shown) -> list[dict]:
    """Rows that show the same in every cell become one row naming every adapter of them (``names``).

    The first adapter's cells stand for the group (their links lead to its cases); the
    order is that of each group's first adapter.
    """
    groups: dict[tuple, dict] = {}
    for name, cells in rows:
        signature = shown(cells)
        if signature in groups:
            groups[signature]["names"].append(name)
        else:
            groups[signature] = {"names": [name], "cells": cells}
    return list(groups.values())


def _family_cell(cases: Sequence[Mapping[str, Any]], anchor: str) -> dict:
    """One adapter's cases of one family, summed up: counts per verdict, worst pass, changes."""
    counts = Counter(c["verdict"] for c in cases)
    passes = [c["budget_used"] for c in cases if c["verdict"] == "passed" and c["budget_used"] is not None]
    worst = max(passes) if passes else None
    changes = Counter(c.get("change") for c in cases if c.get("change"))
    return {"n": len(cases), "counts": [(v, counts[v]) for v in VERDICTS if counts.get(v)],
            "bad": sum(counts.get(v, 0) for v in BAD), "worst_pass": worst, "band": _band(worst),
            "changes": {k: changes[k] for k in CHANGE_KINDS if changes.get(k)}, "href": f"#{anchor}"}


# --- why a case failed ---------------------------------------------------------

#: What each check of reference/judge.py measures, for the failure cards.
CHECK_TEXT = {
    "update": "the applied update of each step, element by element",
    "trajectory": "the parameters themselves (the sum of the update budgets)",
    "state": "the optimizer state (m, v, vmax)",
    "bias": "the mean relative update error (a common factor on the updates) against its 6-sigma threshold",
}
_WINDOW = re.compile(r"mean relative update error outside its budget:.*? from step (\d+)")


def deciding_checks(case: Mapping[str, Any]) -> list[str]:
    """The checks over their budget (largest first): what decided a failed verdict; [] when none is."""
    over = [(value, name) for name, value in case["checks"].items() if value is not None and value > 1]
    return [name for _, name in sorted(over, key=lambda x: (-x[0], _CHECK_ORDER.get(x[1], 9), x[1]))]


#: Ties between deciding checks go to the one with a per-step series (update, bias), then the others.
_CHECK_ORDER = {"update": 0, "bias": 1, "trajectory": 2, "state": 3}


def _bias_window(case: Mapping[str, Any]) -> tuple[int, float] | None:
    """(first step of the window, budget used) of a failed mean-error check, from its message."""
    value = case["checks"].get("bias")
    match = _WINDOW.search(case["message"])
    if value is None or value <= 1 or not match:
        return None
    return int(match.group(1)), value


def _plot(case: Mapping[str, Any]) -> str:
    return budget_plot_svg(case["series"], case["first_failing_step"], deciding=case["deciding"],
                           window=_bias_window(case) if "bias" in case["deciding"] else None,
                           salt=case["anchor"])


def _decision(case: Mapping[str, Any]) -> dict | None:
    """What the card says about the deciding check: which, by how much, and whether the plot shows it."""
    if case["verdict"] not in ("failed", "xfailed") and not case["deciding"]:
        return None
    series = case["series"] or {}
    names = case["deciding"]
    plotted = [n for n in names if n in series]
    missing = [n for n in names if n not in series]
    return {
        "checks": [(n, case["checks"][n], CHECK_TEXT.get(n, "")) for n in names],
        "plotted": plotted,
        "unplotted": missing,
        "window": _bias_window(case),
    }


# --- what changed since the baseline ------------------------------------------


def _by_id(cases: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Case id -> its case; where several runs measured one id, the worst of them stands for it."""
    out: dict[str, Mapping[str, Any]] = {}
    for case in cases:
        held = out.get(case["id"])
        if held is None or _SEVERITY.index(case["verdict"]) < _SEVERITY.index(held["verdict"]):
            out[case["id"]] = case
    return out


def compare(view: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict:
    """Regressed (passed or xfailed before, failing now), fixed (the reverse), new and gone case ids."""
    now, before = _by_id(view["cases"]), _by_id(baseline["cases"])
    status: dict[str, str] = {}
    rows: dict[str, list] = {k: [] for k in CHANGE_KINDS}
    other = 0
    for cid in sorted(now):
        n = now[cid]
        b = before.get(cid)
        if b is None:
            kind = "new"
        elif b["verdict"] in GOOD and n["verdict"] in BAD:
            kind = "regressed"
        elif b["verdict"] in BAD and n["verdict"] in GOOD:
            kind = "fixed"
        else:
            other += b["verdict"] != n["verdict"]
            continue
        status[cid] = kind
        rows[kind].append({"id": cid, "before": b, "now": n})
    for cid in sorted(set(before) - set(now)):
        rows["gone"].append({"id": cid, "before": before[cid], "now": None})
    manifests_now = {r["provenance"]["golden_manifest_sha256"] for r in view["runs"]}
    manifests_before = {r["provenance"]["golden_manifest_sha256"] for r in baseline["runs"]}
    return {
        "status": status,
        "sections": [(k, rows[k][:MAX_CHANGE_ROWS], len(rows[k])) for k in CHANGE_KINDS],
        "counts": {k: len(rows[k]) for k in CHANGE_KINDS},
        "other": other,
        "runs": [(r["key"], r["created"], (r["provenance"]["golden_manifest_sha256"] or "none")[:16])
                 for r in baseline["runs"]],
        "manifest_differs": manifests_now != manifests_before,
        "manifests_now": sorted((m or "none")[:16] for m in manifests_now),
        "manifests_before": sorted((m or "none")[:16] for m in manifests_before),
    }


def _manifest_problem(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """(manifest, run keys) per golden manifest when the merged runs compared against more than one."""
    groups: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        groups[(run["provenance"]["golden_manifest_sha256"] or "none")[:16]].append(run["key"])
    return sorted(groups.items()) if len(groups) > 1 else []


# --- which Adam is it -------------------------------------------------------------


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
        "decision": _decision(case),
        "change": case.get("change"),
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
    fingerprints = []
    for path in args.results:
        try:
            kind, doc = load_report_input(path)
        except ResultsError as exc:
            problems.append(str(exc))
            continue
        (docs if kind == RESULTS_KIND else fingerprints).append(doc)
    if not docs and not problems:
        problems.append("no results file among the inputs (only fingerprints files): give the results of "
                        "`adamconf run` too; the fingerprints join its dialect view")
    baseline = []
    for path in getattr(args, "baseline", None) or []:
        try:
            baseline.append(load_results(path))
        except ResultsError as exc:
            problems.append(f"--baseline: {exc}")
    if problems:
        for problem in problems:
            print(f"adamconf report: error: {problem}", file=sys.stderr)
        print("adamconf report: no report written", file=sys.stderr)
        return 2
    try:
        written = render_html(docs, args.output, title=args.title, baseline=baseline or None,
                              fingerprints=fingerprints)
    except ResultsError as exc:
        print(f"adamconf report: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"adamconf report: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    cases = sum(sum(d["summary"].values()) for d in docs)
    against = f", compared with {len(baseline)} baseline run(s)" if baseline else ""
    taken = sum(len(d["fingerprints"]) for d in fingerprints)
    fp = f", {taken} fingerprint(s) from {len(fingerprints)} file(s)" if fingerprints else ""
    print(f"adamconf report: wrote {written} ({cases} cases from {len(docs)} run(s){against}{fp})")
    return 0
