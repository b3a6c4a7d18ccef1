"""The report's "Which Adam is it?" parts: the dialect view, the pairs a user may port between, and
one section per implementation.

Claimed values come from what an adapter declares (its dialect preset, resolved axis by axis; its
path class); detected ones from fingerprints (``adamconf run --fingerprint`` in a results file, or
a file of ``adamconf fingerprint --results``: ``reports/fingerprints.py``). Every string that comes
from a file reaches the page through jinja's autoescape, or, for the case tables built here in
Python (10,000 rows render in a tenth of the time through jinja's loop), through
``markupsafe.escape``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations
from typing import Any, Iterable, Mapping, Sequence

from markupsafe import Markup, escape

from adamconf.reports.plots import format_budget

__all__ = ["MEANING", "dialect_view", "fingerprint_sources", "framework_of", "implementation_sections",
           "port_pairs"]

#: weight-decay meanings as people read them (suites/fingerprint.py's MEANING)
MEANING = {"l2": "coupled L2", "decoupled": "decoupled"}
#: the axes of a dialect when no fingerprint names them (reference.dialect.AXES, without importing it twice)
_DEFAULT_AXES = ("epsilon", "bias_correction", "amsgrad_max", "sparse_rows", "clip", "schedule_step")
_WD_FEATURES = ("weight_decay", "decoupled_weight_decay")
PATH = "path class"
#: distributions whose versions an implementation's section names, by the first part of its name
_FRAMEWORK_PACKAGES = {
    "torch": ("torch", "triton"),
    "keras": ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch"),
    "tf_keras": ("tf_keras", "tensorflow", "tensorflow-cpu"),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "optax": ("optax", "jax", "jaxlib"),
    "jax": ("jax", "jaxlib"),
    "flax": ("flax", "optax", "jax", "jaxlib"),
}
_ALL_FRAMEWORKS = ("torch", "tensorflow", "tensorflow-cpu", "tf_keras", "keras", "jax", "jaxlib", "optax")
#: at most this many adapter pairs are listed in the porting table (the count says how many there are)
MAX_PAIRS = 300


def framework_of(name: str) -> str:
    """``torch.adam.fused`` -> ``torch``: the framework a user ports from or to."""
    return name.split(".", 1)[0]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "–"
    return MEANING.get(value, str(value))


# --- where the fingerprints come from ---------------------------------------------------------


def fingerprint_sources(runs: Sequence[Mapping[str, Any]],
                        fingerprint_docs: Sequence[Mapping[str, Any]] = ()) -> dict[str, list[tuple[str, dict]]]:
    """Adapter name -> [(where it was taken, entry)]: the runs' own (``run --fingerprint``), then the files'."""
    out: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for run in runs:
        for name, entry in (run.get("fingerprints") or {}).items():
            out[name].append((f"run {run['key']}", entry))
    for doc in fingerprint_docs:
        where = doc.get("label") or doc["provenance"].get("hostname") or "fingerprint"
        for name, entry in doc["fingerprints"].items():
            out[name].append((f"fingerprint file {where} ({doc['created']})", entry))
    return dict(out)


# --- the dialect view --------------------------------------------------------------------------


def _claimed_axes(preset: str | None) -> dict[str, Any] | None:
    """Axis -> value of a claimed preset name (``reference.dialect.PRESETS``); None when unknown."""
    if not preset:
        return None
    try:
        from adamconf.reference.dialect import resolve_dialect

        return resolve_dialect(preset).to_dict()
    except Exception:  # noqa: BLE001 - an unknown name or a dialect of a newer adamconf: nothing claimed
        return None


def _detected_text(verdict: Mapping[str, Any]) -> str:
    status = verdict["status"]
    if status == "identified":
        return " or ".join(_fmt(v) for v in verdict["values"])
    if status == "none":
        return f"none of the known (nearest {_fmt(verdict['nearest'])})"
    if status == "ambiguous":
        return "ambiguous: " + " / ".join(_fmt(v) for v in verdict["values"])
    return status  # not testable, error


def _evidence(verdict: Mapping[str, Any]) -> str:
    """Budget used by each value, the scenarios that decided it, and why it could not be told."""
    parts = []
    if verdict["budget_used"]:
        parts.append("budget used: " + "; ".join(f"{_fmt(e['value'])} {format_budget(e['budget_used'])}"
                                                  if e["budget_used"] is not None else f"{_fmt(e['value'])} unbounded"
                                                  for e in verdict["budget_used"]))
    if verdict["scenarios"]:
        parts.append("from " + ", ".join(verdict["scenarios"]))
    if verdict["message"]:
        parts.append(verdict["message"])
    return " · ".join(parts)


def _columns(sources: Mapping[str, list[tuple[str, dict]]]) -> list[tuple[str, str]]:
    """(kind, name) of each column: the dialect axes the fingerprints name (in their order), weight decay, path."""
    axes: list[str] = []
    for entries in sources.values():
        for _, entry in entries:
            for axis in entry["axes"]:
                if axis not in axes:
                    axes.append(axis)
    if not axes:
        axes = list(_DEFAULT_AXES)
    return [("axis", a) for a in axes] + [("wd", f) for f in _WD_FEATURES] + [("path", PATH)]


def _cell(kind: str, column: str, claimed_axes: Mapping[str, Any] | None, declared_class: str | None,
          entries: Sequence[tuple[str, dict]]) -> dict:
    """One implementation x one column: claimed, detected, whether they differ, the evidence."""
    done = [(where, e) for where, e in entries if e["status"] == "done"]
    claimed = "–"
    if kind == "axis":
        declared = next((e["declared"] for _, e in done if e.get("declared")), None) or claimed_axes
        if declared is not None and column in declared:
            claimed = _fmt(declared[column])
    elif kind == "wd":
        # asked for when the adapter has the feature; a feature it lacks is not claimed
        asked = next((e["weight_decay"][column].get("asked") for _, e in done if column in e["weight_decay"]
                      and e["weight_decay"][column]["status"] != "not testable"), None)
        claimed = _fmt(asked) if asked else "–"
    else:
        claimed = declared_class or next((e["declared_path_class"] for _, e in done if e["declared_path_class"]), "–")
    detected: list[str] = []
    evidence: list[str] = []
    differs = untested = False
    values: set = set()
    for where, entry in done:
        if kind == "path":
            pc = entry.get("path_class") or {}
            text = pc.get("detected") or "not identified"
            if pc.get("consistent") is False:
                differs = True
            untested |= not pc.get("detected")
            probes = "; ".join(f"{p['scenario']} {p['status']}"
                               + (f" {format_budget(p['budget_used'])}" if p.get("budget_used") is not None else "")
                               for p in pc.get("probes", []))
            evidence.append(f"{where}: " + ", ".join(x for x in (f"held as {pc['reference']}" if pc.get("reference")
                                                                 else "", f"in {pc['dtype']}" if pc.get("dtype") else "",
                                                                 probes, pc.get("message", "")) if x))
            if pc.get("detected"):
                values.add(pc["detected"])
        else:
            verdict = (entry["axes"] if kind == "axis" else entry["weight_decay"]).get(column)
            if verdict is None:
                continue
            text = _detected_text(verdict)
            status = verdict["status"]
            untested |= status == "not testable"
            if status in ("none", "ambiguous", "error"):
                differs = True
            elif status == "identified":
                values.update(_fmt(v) for v in verdict["values"])
                if claimed != "–" and claimed not in {_fmt(v) for v in verdict["values"]}:
                    differs = True
            evidence.append(f"{where}: {_evidence(verdict)}")
        if text not in detected:
            detected.append(text)
    if len(detected) > 1:
        differs = True  # two fingerprints of one implementation disagree
    return {"claimed": claimed, "detected": " | ".join(detected) if detected else None, "differs": differs,
            "untested": untested and not differs, "title": "\n".join(evidence), "values": values}


def dialect_view(runs: Sequence[Mapping[str, Any]], cases: Sequence[Mapping[str, Any]],
                 sources: Mapping[str, list[tuple[str, dict]]]) -> dict:
    """Implementations (rows) x dialect axes, weight decay and path class (columns): claimed and detected."""
    by_adapter: dict[str, list] = defaultdict(list)
    for case in cases:
        by_adapter[case["adapter"]].append(case)
    declared_of: dict[str, list[Mapping]] = defaultdict(list)
    for run in runs:
        for name, info in (run.get("adapters") or {}).items():
            declared_of[name].append(info)
    names = sorted(set(by_adapter) | set(sources) | set(declared_of))
    columns = _columns(sources)
    rows = []
    for index, name in enumerate(names):
        entries = sources.get(name, [])
        claimed_names = sorted({str(d.get("dialect")) for d in declared_of[name] if d.get("dialect")}
                               | {e["claimed"] for _, e in entries if e.get("claimed")})
        claimed_axes = _claimed_axes(claimed_names[0]) if len(claimed_names) == 1 else None
        declared_class = next((str(d["path_class"]) for d in declared_of[name] if d.get("path_class")), None)
        passes = Counter(c["path_class"] for c in by_adapter[name] if c["verdict"] == "passed" and c.get("path_class"))
        done = [e for _, e in entries if e["status"] == "done"]
        cells = [_cell(kind, column, claimed_axes, declared_class, entries) for kind, column in columns]
        rows.append({
            "name": name, "anchor": f"impl-{index}", "framework": framework_of(name),
            "claimed": ", ".join(claimed_names) or "–",
            "presets": ", ".join(dict.fromkeys(p for e in done for p in e["presets"])) if done else None,
            "fingerprinted": bool(done),
            "not_fingerprinted": "; ".join(f"{where}: {e['status']}: {e['message']}" for where, e in entries
                                           if e["status"] != "done"),
            "passes_fit": ", ".join(f"{k} ({n})" if len(passes) > 1 else k for k, n in sorted(passes.items())) or "–",
            "cells": cells,
            "differs": sum(c["differs"] for c in cells),
        })
    return {"columns": [(kind, name) for kind, name in columns], "rows": rows,
            "fingerprinted": sum(r["fingerprinted"] for r in rows), "pairs": port_pairs(rows, columns)}


def port_pairs(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> dict:
    """For each pair of implementations of different frameworks, the columns on which they differ.

    A column is compared where both sides have a value: detected (identified) where fingerprinted,
    else claimed; two sides differ when no value is common to them. Pairs are grouped by their
    frameworks (torch ↔ optax), and pairs of one group that differ in the same way share a row.
    """
    def values(row, i):
        cell = row["cells"][i]
        if cell["values"]:
            return frozenset(cell["values"]), "detected"
        if cell["claimed"] != "–" and columns[i][0] != "path":
            return frozenset({cell["claimed"]}), "claimed"
        return None, None

    groups: dict[tuple[str, str], dict[tuple, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    count = 0
    for a, b in combinations(rows, 2):
        if a["framework"] == b["framework"]:
            continue
        if a["framework"] > b["framework"]:
            a, b = b, a
        differences, unknown = [], []
        for i, (_, column) in enumerate(columns):
            va, sa = values(a, i)
            vb, sb = values(b, i)
            if va is None or vb is None:
                unknown.append(column)
            elif not va & vb:
                claimed = " (claimed)" if "claimed" in (sa, sb) else ""
                differences.append((column, " or ".join(sorted(va)), " or ".join(sorted(vb)), claimed))
        groups[(a["framework"], b["framework"])][(tuple(differences), tuple(unknown))].append((a["name"], b["name"]))
        count += 1
    out = []
    shown = 0
    for (fa, fb), by_diff in sorted(groups.items()):
        lines = []
        for (differences, unknown), pairs in sorted(by_diff.items(), key=lambda kv: (-len(kv[0][0]), kv[1])):
            if shown >= MAX_PAIRS:
                break
            shown += 1
            lines.append({"pairs": pairs, "differences": list(differences), "unknown": list(unknown)})
        out.append({"frameworks": (fa, fb), "lines": lines})
    return {"groups": out, "count": count, "shown": shown}


# --- one section per implementation ---------------------------------------------------------------

_DTYPE_SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}


def _band_class(case: Mapping[str, Any], band) -> str:
    verdict = case["verdict"]
    return f"v-{verdict} b{band(case['budget_used'])}" if verdict == "passed" else f"v-{verdict}"


def _case_rows(cases: Sequence[Mapping[str, Any]], detailed: set[str], band) -> Markup:
    """The table body of an implementation's cases, built here (escaped): one short row per case.

    Cells and rows are left unclosed, as HTML allows (``<tr><td>a<td>b``): at 10,000 cases the
    closing tags alone would be 150 kB. The run column is there only when several runs hold
    this implementation's cases.
    """
    several = len({c["run"] for c in cases}) > 1
    out = []
    for c in cases:
        name = escape(c["scenario"])
        if c["anchor"] in detailed:
            name = Markup(f'<a href="#{c["anchor"]}">{name}</a>')
        step = "" if c["first_failing_step"] is None else f" (step {c['first_failing_step']})"
        run = f"<td>{escape(c['run'])}" if several else ""
        out.append(f'<tr><td>{name}<td>{escape(_DTYPE_SHORT.get(c["dtype"], c["dtype"]))} {escape(c["device"])}'
                   f'{run}<td class="{_band_class(c, band)}">{escape(c["verdict"])}'
                   f'<td class="num">{escape(format_budget(c["budget_used"]))}{escape(step)}')
    return Markup("\n".join(out))


def _versions(name: str, runs: Sequence[Mapping[str, Any]], run_keys: set[str],
              entries: Sequence[tuple[str, dict]], fingerprint_docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(run, "torch 2.5.1, numpy 2.1.0; KERAS_BACKEND=jax; devices cpu, cuda") for each run of this implementation."""
    wanted = _FRAMEWORK_PACKAGES.get(framework_of(name), _ALL_FRAMEWORKS) + ("numpy",)
    out = []
    for run in runs:
        if run["key"] not in run_keys:
            continue
        p = run["provenance"]
        packages = [f"{n} {p['packages'][n]}" for n in dict.fromkeys(wanted) if n in p["packages"]]
        third = [f"{n} {v}" for n, v in p["packages"].items() if n not in _ALL_FRAMEWORKS + ("numpy", "adamconf")
                 and n not in ("mpmath", "gmpy2", "ml_dtypes", "triton", "tensorflow-metal", "flax",
                               "jax-cuda12-plugin", "jax-cuda13-plugin")]
        env = [f"{k}={v}" for k, v in p["env"].items() if k in ("KERAS_BACKEND", "JAX_ENABLE_X64", "XLA_FLAGS",
                                                               "NVIDIA_TF32_OVERRIDE", "TF_ENABLE_ONEDNN_OPTS")]
        gpus = ", ".join(g["name"] for g in p["gpus"]) or "no GPU"
        out.append((run["key"], "; ".join(x for x in (", ".join(packages + third), " ".join(env),
                                                       f"{p['hostname']}, {gpus}") if x)))
    for where, entry in entries:
        if where.startswith("fingerprint file"):
            doc = next((d for d in fingerprint_docs if name in d["fingerprints"]
                        and d["fingerprints"][name] is entry), None)
            if doc is not None:
                p = doc["provenance"]
                packages = [f"{n} {p['packages'][n]}" for n in dict.fromkeys(wanted) if n in p.get("packages", {})]
                out.append((where, ", ".join(packages) + f"; {p.get('hostname', '?')}"))
    return out


def implementation_sections(view_rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]],
                            runs: Sequence[Mapping[str, Any]], cases: Sequence[Mapping[str, Any]],
                            sources: Mapping[str, list[tuple[str, dict]]], detailed: set[str], *, band,
                            verdicts: Sequence[str], is_web_link,
                            fingerprint_docs: Sequence[Mapping[str, Any]] = ()) -> list[dict]:
    """One section per implementation: dialect and path class (claimed and detected, with the evidence),
    versions, every case with its verdict and budget used, its expectations with their reasons and evidence."""
    by_adapter: dict[str, list] = defaultdict(list)
    for case in cases:
        by_adapter[case["adapter"]].append(case)
    out = []
    for row in view_rows:
        name = row["name"]
        own = by_adapter.get(name, [])
        counts = Counter(c["verdict"] for c in own)
        entries = sources.get(name, [])
        fingerprints = [{"where": where, "status": e["status"], "message": e["message"], "dtype": e["dtype"],
                         "device": e["device"], "duration_s": e["duration_s"], "identified": e["identified"],
                         "fallback": (e["fallback"] or {}).get("reason")} for where, e in entries]
        axes = [{"name": column, "claimed": cell["claimed"], "detected": cell["detected"], "differs": cell["differs"],
                 "evidence": cell["title"]} for (_, column), cell in zip(columns, row["cells"])]
        expectations = []
        for c in own:
            if not c["expectation"]:
                continue
            link = c["expectation"].get("link")
            first = c["message"].strip().splitlines()[0][:300] if c["message"].strip() else ""
            deciding = [f"{n} {format_budget(v)}" for n, v in c["checks"].items() if v is not None and v > 1]
            evidence = "; ".join(x for x in (
                f"{c['verdict']}, budget used {format_budget(c['budget_used'])}",
                ("over budget: " + ", ".join(deciding)) if deciding else "",
                f"first failing step {c['first_failing_step']}" if c["first_failing_step"] is not None else "",
                first) if x)
            expectations.append({"id": c["id"], "run": c["run"], "verdict": c["verdict"],
                                 "reason": c["expectation"]["reason"], "link": link,
                                 "safe_link": link if link and is_web_link(link) else None,
                                 "evidence": evidence,
                                 "anchor": c["anchor"] if c["anchor"] in detailed else None})
        passes = [c["budget_used"] for c in own if c["verdict"] == "passed" and c["budget_used"] is not None]
        out.append({
            "name": name, "anchor": row["anchor"], "claimed": row["claimed"], "presets": row["presets"],
            "passes_fit": row["passes_fit"], "counts": [(v, counts[v]) for v in verdicts if counts.get(v)],
            "total": len(own), "worst_pass": max(passes) if passes else None,
            "devices": sorted({c["device"] for c in own}),
            "axes": axes, "fingerprints": fingerprints, "differs": row["differs"],
            "versions": _versions(name, runs, {c["run"] for c in own}, entries, fingerprint_docs),
            "cases": _case_rows(own, detailed, band), "expectations": expectations,
            "several_runs": len({c["run"] for c in own}) > 1,
            "open": False,
        })
    return out
