"""What each expectations entry's deviation measures in a run: the check and budget range to pin.

    python benchmarks/pin_expectations.py adamconf-results.json [more.json ...] [--expectations FILE ...]

For every entry (the built-in files, then any given), the xfailed or failed cases it matches in the
results: which checks fail in all of them, and the range of their budget used. Suggests
``check = ...`` and ``budget = [low, high]`` with at least a factor 10 of room on each side (a deviation is
a property of the implementation and the scenario, so it is stable to far better than that; the room
is for other platforms' roundings, which move a failure's multiple by a few percent at most).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from adamconf.reports.results import load_results
from adamconf.suites.expectations import CHECKS, builtin_files, load_expectations


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--expectations", action="append", default=[], type=Path)
    args = p.parse_args(argv)
    cases = [c for path in args.results for c in load_results(path)["cases"]]
    entries = load_expectations(args.expectations, builtin=builtin_files()).entries
    for e in entries:
        hit = [c for c in cases if c["verdict"] in ("xfailed", "failed") and e.matches(c["id"])]
        print(f"{e.source}: {', '.join(e.patterns)} (verdict {e.verdict})")
        if not hit:
            print("  no xfailed or failed case in these results")
            continue
        failing = [{k for k, v in c["checks"].items() if v is not None and v > 1} for c in hit]
        common = [k for k in CHECKS if all(k in f for f in failing)]
        used = [c["budget_used"] for c in hit if c["budget_used"] is not None]
        print(f"  {len(hit)} case(s); checks failing in all: {', '.join(common) or 'none'}")
        if used:
            lo, hi = min(used), max(used)
            print(f"  budget used {lo:.3g} .. {hi:.3g}")
            if e.verdict == "failed":
                pin = [10 ** math.floor(math.log10(lo) - 1), 10 ** math.ceil(math.log10(hi) + 1)]
                print(f"  suggested: check = \"{common[0]}\"" if common else "  suggested: (no common check)")
                print(f"             budget = [{pin[0]:.0e}, {pin[1]:.0e}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
