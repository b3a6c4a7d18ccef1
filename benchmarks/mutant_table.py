"""The kill table: every mutant of tests/mutants.py over every scenario family it can run.

    python benchmarks/mutant_table.py [--mutant PAT ...] [--out docs/mutants.md] [--stdout]

For each mutant (and the correct base of each dialect the catalogue uses, as the control) it runs,
in its dtype, every catalogue scenario whose features the base declares (all of them) through
``adamconf.suites.runner.run_case``, and the determinism suite's scenarios through its
``run_twice``; then writes a table mutant x family to docs/mutants.md. One process, no parallelism.

A cell says, over the family's scenarios that ran (k of n failed):
"killed at N x budget (k/n)" with N the largest ``budget_used`` of its failing cases;
"killed: non-finite (k/n)", "killed: round trip (k/n)", "killed: bitwise (k/n)" for failures that are
not a budget excess (the non-finite pattern, a round trip that did not continue bitwise, two runs that
differ); "error: <short>" if the adapter raised in every failing case; "survived (n)" if every case
passed; "-" if none ran (the dtype is not the scenario's, the case was skipped, or the scenario has no
golden in the mutant's dialect: pytorch-sparse has goldens in the sparse family only). For a control
row a cell reads "passed (n)".
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import os
import sys
import time
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from adamconf.adapters.driver import support  # noqa: E402
from adamconf.golden.scenarios import CATALOGUE as SCENARIOS, FAMILIES  # noqa: E402
from adamconf.suites.cases import DETERMINISM, DETERMINISM_SCENARIOS  # noqa: E402
from mutants import CATALOGUE, Base, failure_kind, has_golden, run  # noqa: E402

COLUMNS = (*FAMILIES, DETERMINISM)
COMMAND = ".venv/bin/python benchmarks/mutant_table.py"


def labels(adapter, dtype):
    """(family, label) of every case this adapter can run in ``dtype``."""
    for s in SCENARIOS:
        if support(adapter, s, dtype, "cpu") is None and has_golden(adapter, s):
            yield s.family, s.name
    for s in SCENARIOS:
        if s.name in DETERMINISM_SCENARIOS and support(adapter, s, dtype, "cpu") is None:
            yield DETERMINISM, f"{DETERMINISM}/{s.name}"


def measure(adapter, dtype):
    """family -> list of (label, outcome)."""
    out = defaultdict(list)
    for family, label in labels(adapter, dtype):
        out[family].append((label, run(adapter, label, dtype)))
    return out


def _short(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "?"
    return first.split(":")[0][:40]


def _multiple(x: float) -> str:
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}" if x < 1e4 else f"{x:.1e}"


def cell(results, control: bool = False) -> str:
    ran = [(label, o) for label, o in results if o.verdict != "skipped"]
    if not ran:
        return "-"
    n = len(ran)
    if control:
        bad = [label for label, o in ran if o.verdict != "passed"]
        return f"passed ({n})" if not bad else f"FAILED: {', '.join(bad)}"
    kinds = [(o, failure_kind(o)) for _, o in ran]
    failed = [(o, k) for o, k in kinds if k is not None]
    if not failed:
        return f"survived ({n})"
    k = f"{len(failed)}/{n}"
    numeric = [o.budget_used for o, kind in failed if kind == "budget" and o.budget_used is not None]
    if numeric:
        return f"killed at {_multiple(max(numeric))} x budget ({k})"
    names = {"nonfinite": "non-finite", "roundtrip": "round trip", "determinism": "bitwise"}
    for kind, text in names.items():
        if any(x == kind for _, x in failed):
            return f"killed: {text} ({k})"
    return f"error: {_short(failed[0][0].message)} ({k})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutant", action="append", default=[], help="glob over mutant names (default: all)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "mutants.md"))
    ap.add_argument("--stdout", action="store_true", help="print the table instead of writing --out")
    args = ap.parse_args(argv)
    mutants = [m for m in CATALOGUE if not args.mutant or any(fnmatch.fnmatchcase(m.name, p) for p in args.mutant)]
    t0 = time.perf_counter()
    rows, survivors = [], []
    controls = sorted({(m.dialect, m.dtype) for m in mutants})
    for dialect, dtype in controls:
        res = measure(Base(dialect), dtype)
        rows.append(("base (control)", dtype, dialect, [cell(res.get(f, []), control=True) for f in COLUMNS]))
        print(f"control {dialect} {dtype}: {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    for m in mutants:
        res = measure(m.adapter(), m.dtype)
        cells = [cell(res.get(f, [])) for f in COLUMNS]
        if not any(c.startswith(("killed", "error")) for c in cells):
            survivors.append(m.name)
        rows.append((m.name, m.dtype, m.dialect, cells))
        print(f"{m.name}: {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t0
    text = render(mutants, rows, survivors, elapsed)
    if args.stdout:
        print(text)
    else:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"wrote {args.out} in {elapsed:.0f}s", file=sys.stderr)
    return 0


def render(mutants, rows, survivors, elapsed) -> str:
    head = ["mutant", "dtype", "dialect", *COLUMNS]
    lines = [
        "# Mutants: the suites catch bugs",
        "",
        f"Generated by `{COMMAND}` (one process, {elapsed:.0f} s here); do not edit by hand.",
        "",
        "Each mutant in [`tests/mutants.py`](../tests/mutants.py) is an independent numpy Adam, the correct",
        "`Base` (torch-like scalars in binary64, path class powers=double, theta=once, hyper=dtype) with",
        "exactly one planted deviation. It declares every feature of the catalogue, so it runs, in its dtype,",
        "every scenario defined in that dtype that has a golden in its dialect, through the suites' own code",
        "path: `adamconf.suites.runner.run_case`, and for the determinism column the determinism suite's",
        "`run_twice` over `DETERMINISM_SCENARIOS`. The control rows are the correct base in each dialect and",
        "dtype the mutants use: they pass everything.",
        "",
        "A cell summarises the family's cases that ran (k of n failed):",
        "",
        "- `killed at N x budget`: N is the largest `budget_used` among the failing cases, the part of the error",
        "  that the attained roundings do not explain, as a multiple of the error budget (docs/verdicts.md);",
        "- `killed: non-finite` (NaN or inf where the golden has none, or the reverse), `killed: round trip`",
        "  (a restored or rebuilt optimizer that did not continue bitwise), `killed: bitwise` (two runs of the",
        "  same case differ): failures that are not a budget excess;",
        "- `error: ...`: the adapter raised; `survived (n)`: every case passed; `-`: none ran (no scenario of",
        "  the family in that dtype, or no golden in that dialect: pytorch-sparse has goldens only where its",
        "  lazy rows are defined).",
        "",
        "`tests/test_mutants.py` runs each mutant on the scenarios that must kill it (the last table) and",
        "checks that it fails there in the stated way while the control passes.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for name, dtype, dialect, cells in rows:
        lines.append("| " + " | ".join([f"`{name}`", dtype, dialect, *cells]) + " |")
    lines += ["", "## The mutants", "", "| mutant | deviation (bug class) | must be killed by | as |",
              "|---|---|---|---|"]
    for m in mutants:
        description = m.description.replace("|", "\\|")
        lines.append(f"| `{m.name}` | {description} | {', '.join(m.kills)} | {m.kind} |")
    lines += ["", "## Survivors", ""]
    lines.append("None: every mutant is killed in at least one family." if not survivors else
                 "Mutants no family kills: " + ", ".join(f"`{s}`" for s in survivors) + ".")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
