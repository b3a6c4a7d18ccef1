"""Render time and size of the HTML report for a large run: 10,000 synthetic but valid cases.

    python benchmarks/report_render.py [--cases 10000] [--out report-10k.html] [--browser]

The cases are built through ``adamconf.reports.results.new_results`` (so they are valid results
cases): adapters x the scenario catalogue (each scenario in its dtypes) x two devices, until there
are ``--cases``; 2 % fail (a third of them their mean-error check only), 1 % are expected
failures, 4 % are skipped, the rest pass with budget used drawn around ordinary rounding and a few
near misses, every judged case with a 200-point update and bias series, as real runs record.
A second document, the same cases with 1 % of the verdicts flipped, serves as the baseline.
Prints the time to build and validate the documents, to load (read and validate) the results
file, to render the page alone and with the baseline, and the size of the page; ``--browser`` also opens it in headless Chromium (Debian's
``chromium`` through Playwright) and prints the time to its ``load`` event.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def synthetic_cases(n: int, seed: int = 9) -> list[dict]:
    from adamconf.golden.scenarios import CATALOGUE

    rng = random.Random(seed)
    steps = list(range(1, 201))
    out: list[dict] = []
    adapter = 0
    while len(out) < n:
        name = f"vendor{adapter // 6}.adam.variant{adapter % 6}"
        adapter += 1
        for scenario in CATALOGUE:
            for dtype in scenario.dtypes:
                for device in ("cpu", "cuda"):
                    if len(out) >= n:
                        return out
                    out.append(_case(rng, name, scenario, dtype, device, steps))
    return out


def _case(rng: random.Random, adapter: str, scenario, dtype: str, device: str, steps: list[int]) -> dict:
    base = {"adapter": adapter, "scenario": scenario.name, "family": scenario.family, "dtype": dtype,
            "device": device, "dialect": "eps=standard,bc=on", "duration_s": round(rng.uniform(0.01, 2.0), 3)}
    draw = rng.random()
    if draw < 0.04:
        return {**base, "verdict": "skipped", "dialect": None, "message": f"{adapter} does not support {dtype}"}
    if draw < 0.05:
        return {**base, "verdict": "xfailed", "checks": {"update": 12.0}, "first_failing_step": 1,
                "message": "known deviation", "expectation": {"reason": "documented upstream", "link": None}}
    level = rng.lognormvariate(-1.4, 0.5)  # ordinary rounding: 10-40 %
    if draw < 0.07:  # a failure
        bias_only = draw < 0.0567
        update = [min(0.9, level * (1 + 0.002 * s)) if bias_only else level * (1 + 0.3 * s) for s in steps]
        bias = [level * (1 + 0.05 * s) for s in steps]
        checks = {"update": max(update), "trajectory": max(update) / 2, "state": 0.1, "bias": max(bias)}
        return {**base, "verdict": "failed", "checks": checks, "first_failing_step": 20,
                "series": {"step": steps, "update": update, "bias": bias},
                "path_class": "powers=pow,theta=once,hyper=dtype",
                "message": ("mean relative update error outside its budget: v-dominated elements Z = +3e-06 "
                            "against 7.9e-07 from step 66" if bias_only else "update outside its budget from step 20")}
    if draw > 0.995:
        level = rng.uniform(0.8, 0.99)  # a near miss
    level = min(level, 0.99)
    update = [level * rng.uniform(0.3, 1.0) for _ in steps]
    update[rng.randrange(len(steps))] = level
    bias = [level * rng.uniform(0.0, 0.6) for _ in steps]
    return {**base, "verdict": "passed", "checks": {"update": level, "trajectory": level / 3, "bias": max(bias)},
            "series": {"step": steps, "update": update, "bias": bias}, "path_class": "powers=pow,theta=once,hyper=dtype"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--out", help="keep the page here (default: a temporary file)")
    parser.add_argument("--browser", action="store_true", help="also time its load in headless Chromium")
    args = parser.parse_args(argv)

    from adamconf.reports import render
    from adamconf.reports.provenance import collect_provenance
    from adamconf.reports.render import render_html
    from adamconf.reports.results import new_results

    plotting = {"n": 0, "s": 0.0}
    plot = render.budget_plot_svg

    def timed_plot(*a, **k):  # the plots' share of the render time (at most MAX_DETAIL_PLOTS + CLOSEST_PASSES)
        t = time.perf_counter()
        try:
            return plot(*a, **k)
        finally:
            plotting["n"] += 1
            plotting["s"] += time.perf_counter() - t

    render.budget_plot_svg = timed_plot

    t0 = time.perf_counter()
    cases = synthetic_cases(args.cases)
    provenance = collect_provenance(command=["benchmarks/report_render.py"], golden_manifest_sha256="ab" * 32)
    doc = new_results(cases, provenance, label="synthetic")
    rng = random.Random(1)
    flipped = [{**c, "verdict": "failed", "checks": {"update": 3.0}, "first_failing_step": 1, "series": None,
                "expectation": None} if c["verdict"] == "passed" and rng.random() < 0.01 else c for c in cases]
    baseline = new_results(flipped, provenance, label="synthetic-baseline")
    t_build = time.perf_counter() - t0

    workdir = tempfile.mkdtemp(prefix="adamconf-bench-")
    out = args.out or os.path.join(workdir, "report.html")
    from adamconf.reports.results import load_results, write_results

    results = write_results(doc, os.path.join(workdir, "run.json"))
    t0 = time.perf_counter()
    load_results(results)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    render_html([doc], out)
    t_render = time.perf_counter() - t0
    plots = dict(plotting)
    size = os.path.getsize(out)
    t0 = time.perf_counter()
    with_baseline = os.path.join(workdir, "baseline.html")
    render_html([doc], with_baseline, baseline=[baseline])
    t_baseline = time.perf_counter() - t0
    size_baseline = os.path.getsize(with_baseline)

    print(f"cases: {len(doc['cases'])} ({', '.join(f'{n} {v}' for v, n in doc['summary'].items() if n)})")
    print(f"build and validate the two results documents: {t_build:.2f} s")
    print(f"load the results file ({os.path.getsize(results) / 1e6:.1f} MB; read, validate): {t_load:.2f} s")
    print(f"render: {t_render:.2f} s, {size / 1e6:.2f} MB ({out}); of which {plots['n']} plots "
          f"{plots['s']:.2f} s, the rest {t_render - plots['s']:.2f} s")
    print(f"adamconf report RUN.json (load + render): {t_load + t_render:.2f} s")
    print(f"render with a baseline: {t_baseline:.2f} s, {size_baseline / 1e6:.2f} MB")
    if args.browser:
        chromium = shutil.which("chromium")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            chromium = None
        if not chromium:
            print("browser: skipped (needs Debian's chromium and `pip install playwright`)")
        else:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page()
                t0 = time.perf_counter()
                page.goto("file://" + os.path.abspath(out), wait_until="load")
                t_open = time.perf_counter() - t0
                browser.close()
            print(f"browser: load event after {t_open:.2f} s in headless Chromium")
    if not args.out:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
