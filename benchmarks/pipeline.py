"""Where a conformance run spends its time, measured in one process and one run.

    python benchmarks/pipeline.py [--adapter NAME ...] [--dtype float32 ...] [--scenario PAT ...] [--no-cache]

Prints, in one run:

0. the main job as the README runs it: ``adamconf run`` (pytest, its xdist workers on every core, the
   results file and the HTML report) in a subprocess, its wall time and verdict counts;
1. the main job in process (every built-in CPU adapter available here, or the ones named, over the
   catalogue) with its breakdown by stage of ``suites.runner.run_case``: framework imports, load
   (goldens from the store), drive (the adapter stepping, ``adapters.driver.drive``), judge split
   into model and budget (computed once per scenario, dialect, dtype and class group, then cached in
   memory and in the judge's on-disk cache, ``reference/cache.py``), reading and writing that cache,
   and comparisons, and record (the case records, the results JSON and the HTML report);
2. per framework, the same scenarios stepped through the adapter's own run in two bare loops against
   the same work through adamconf (``run_case``: drive and judge), imports excluded: the scenario's own
   loop ("stops": segments that end where the scenario reads the state, the state read there, each
   step's parameters: what any conformance loop must do; the harness overhead ratio) and the freest one
   (one ``run.steps`` over every step where the adapter has it, parameters read at the end);
3. the time of one third-party adapter (docs/examples/numpy_adapter.py) over the whole catalogue;
4. golden-build throughput beside the naive mpmath loop (``benchmarks/golden_throughput.py``).

The machines are shared and noisy: compare the ratios within one run, not the seconds across runs.
The pytest wrapper (``adamconf run``) adds collection, xdist and its own reporting on top of (1).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _timer():
    totals: dict[str, float] = collections.defaultdict(float)

    class _T:
        def __init__(self, key):
            self.key = key

        def __enter__(self):
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            totals[self.key] += time.perf_counter() - self.t0

    return totals, _T


def _instrument(totals, T):
    """Wrap the stage owners so that run_case's time splits by stage (the code itself is unchanged)."""
    from adamconf.reference import judge as J
    from adamconf.suites import runner

    originals = {"load": runner.load_golden, "drive": runner.drive, "judge": runner.judge_against,
                 "cached": J._cached}

    def wrap(key, fn):
        def inner(*a, **k):
            with T(key):
                return fn(*a, **k)
        return inner

    def cached(key, make, *rest):
        def timed_make():
            with T("judge: model and budget (once per scenario, dialect, dtype)"):
                return make()
        with T("judge: model and budget, with the cache"):
            return originals["cached"](key, timed_make, *rest)

    runner.load_golden = wrap("load", originals["load"])
    runner.drive = wrap("drive (the adapter)", originals["drive"])
    runner.judge_against = wrap("judge (all)", originals["judge"])
    J._cached = cached
    return originals


def run_command(args) -> None:
    """0. ``adamconf run`` in a subprocess, as the README's main command runs it."""
    import json
    import subprocess

    exe = Path(sys.executable).parent / "adamconf"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(exe), "run", "--results", f"{tmp}/run.json", "--html", f"{tmp}/run.html", "-q"]
        for flag, values in (("--adapter", args.adapter), ("--scenario", args.scenario), ("--dtype", args.dtype)):
            for v in values or ():
                cmd += [flag, v]
        if args.no_cache:
            cmd.append("--no-cache")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        counts = collections.Counter()
        try:
            counts.update(c["verdict"] for c in json.load(open(f"{tmp}/run.json"))["cases"])
        except (OSError, ValueError, KeyError):
            pass
    print(f"0. adamconf run (the main job as the README runs it): {wall:.1f} s wall, exit status {proc.returncode}, "
          + (", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no results file"))
    print("   adamconf " + " ".join("RESULTS" if a.endswith("run.json") else "REPORT" if a.endswith("run.html") else a
                                      for a in cmd[1:]))


def main_job(adapters, scenarios, dtypes, out_dir: Path) -> None:
    from adamconf.reports.record import CaseRecord
    from adamconf.reports.results import new_results, write_results
    from adamconf.reports.provenance import collect_provenance
    from adamconf.suites.runner import run_case

    totals, T = _timer()
    _instrument(totals, T)
    records = []
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        for name, adapter in adapters:
            for s in scenarios:
                for dtype in dtypes:
                    out = run_case(adapter, s, dtype)
                    with T("record"):
                        records.append(CaseRecord.from_outcome(out, spec=name).to_dict())
    with T("record"):
        doc = new_results(records, collect_provenance())
        path = write_results(doc, out_dir / "pipeline.json")
        from adamconf.reports.render import render_html

        render_html([doc], out_dir / "pipeline.html")
    wall = time.perf_counter() - t0
    model = totals["judge: model and budget (once per scenario, dialect, dtype)"]
    with_cache = totals["judge: model and budget, with the cache"]
    print(f"\n1. main job in process: {len(records)} cases, {wall:.1f} s wall (results: {path})")
    rows = [("load (goldens)", totals["load"]), ("drive (the adapter)", totals["drive (the adapter)"]),
            ("judge: model and budget (computed)", model),
            ("judge: on-disk cache (hash, read, write)", with_cache - model),
            ("judge: comparisons", totals["judge (all)"] - with_cache),
            ("record (records, results, report)", totals["record"])]
    rest = wall - sum(v for _, v in rows)
    for label, v in rows + [("other (support checks, skips)", rest)]:
        print(f"   {label:40s} {v:8.2f} s  {100 * v / wall:5.1f} %")
    print(f"   {cache_state()}")


def cache_state() -> str:
    """Where the judge's on-disk cache is, what it holds and what this process did with it."""
    from adamconf.reference import cache

    where = cache.cache_dir()
    if where is None:
        return "judge cache: off (--no-cache / ADAMCONF_NO_CACHE)"
    files = list(where.glob("*.npz")) if where.is_dir() else []
    st = cache.stats
    return (f"judge cache: {where}, {len(files)} entries, {sum(f.stat().st_size for f in files) / 2 ** 20:.0f} MB; "
            f"this process: {st['hits']} hits ({st['load_s']:.2f} s reading), {st['misses']} misses, "
            f"{st['stores']} stored, {st['corrupt']} damaged")


def _bare_loop(run, grads) -> None:
    """The fastest loop the adapter offers, with nothing of adamconf: its many-step ``steps`` (a compiled
    loop) where it has one and can batch these inputs, else ``step`` after ``step``; params read at the end."""
    if hasattr(run, "steps"):
        try:
            run.steps(list(grads))
            return
        except NotImplementedError:
            pass
    for row in grads:
        run.step(row)
    run.params()


def _bare_stops(run, grads, stops, state_steps) -> None:
    """The scenario's own work, with nothing of adamconf: the steps in segments that end where the scenario
    reads the optimizer's state (the golden's state steps), ``state()`` read there, every step's parameters
    (``steps``' trail, or ``params()`` after each ``step``). What a hand-written conformance loop over the
    same scenario must do; what adamconf adds to it is its contract checks, copies and the judge."""
    t = 0
    batching = hasattr(run, "steps")
    for end in stops:
        if batching and end > t + 1:
            try:
                run.steps(list(grads[t:end]))
                t = end
            except NotImplementedError:
                batching = False
        for row in grads[t:end]:
            run.step(row)
            run.params()
        t = end
        if end in state_steps:
            run.state()


def overhead(adapters, scenarios, dtype: str) -> None:
    from adamconf.adapters.driver import support
    from adamconf.golden.store import load_golden
    from adamconf.reference.dialect import resolve_dialect
    from adamconf.suites import runner

    print(f"\n2. harness overhead per framework ({dtype}; imports excluded, compiled functions and the judge's "
          f"caches warm)")
    print("   bare, free: the adapter's fastest loop over all the steps, parameters read at the end;")
    print("   bare, stops: the scenario's own work, the loop broken where the state is read, the state read there;")
    print("   adamconf: run_case (drive: the same stepping with the contract checks; judge: the comparisons)")
    print(f"   {'adapter':24s} {'cases':>5s} {'bare free':>9s} {'bare stops':>10s} {'adamconf':>9s} {'drive':>7s} "
          f"{'judge':>7s} {'x stops':>7s} {'x free':>7s}")
    for name, adapter in adapters:
        free = stops_t = full = drive_t = 0.0
        n = 0
        for s in scenarios:
            if support(adapter, s, dtype, "cpu") is not None:
                continue
            golden = load_golden(s, resolve_dialect(adapter.dialect))
            want = "state" in adapter.features and len(golden.state_steps) > 0
            state_steps = {int(t) for t in golden.state_steps} if want else set()
            stops = sorted(state_steps
                           | ({int(s.roundtrip_at)} if s.roundtrip_at is not None else set()) | {len(golden.grads)})

            def start():
                return adapter.start(s.config, [p.copy() for p in golden.params0], dtype=dtype, device="cpu")

            with np.errstate(all="ignore"):
                runner.run_case(adapter, s, dtype)  # warm: compiled functions and the judge's caches
                _bare_loop(start(), golden.grads)  # warm: the loop lengths each bare loop compiles
                _bare_stops(start(), golden.grads, stops, state_steps)
                t0 = time.perf_counter()
                _bare_loop(start(), golden.grads)
                free += time.perf_counter() - t0
                t0 = time.perf_counter()
                run = start()
                _bare_stops(run, golden.grads, stops, state_steps)
                stops_t += time.perf_counter() - t0
                drive = runner.drive
                spent = [0.0]

                def timed(*a, **k):
                    t1 = time.perf_counter()
                    try:
                        return drive(*a, **k)
                    finally:
                        spent[0] += time.perf_counter() - t1

                runner.drive = timed
                try:
                    t0 = time.perf_counter()
                    runner.run_case(adapter, s, dtype)
                    full += time.perf_counter() - t0
                finally:
                    runner.drive = drive
                drive_t += spent[0]
            n += 1
        if n:
            print(f"   {name:24s} {n:5d} {free:9.2f} {stops_t:10.2f} {full:9.2f} {drive_t:7.2f} {full - drive_t:7.2f} "
                  f"{full / stops_t:7.2f} {full / free:7.2f}")


def third_party(scenarios) -> None:
    from adamconf.adapters.registry import load_adapter
    from adamconf.suites.runner import run_case

    adapter = load_adapter(str(HERE.parent / "docs" / "examples" / "numpy_adapter.py") + ":NumpyAdam")
    with np.errstate(all="ignore"):
        t0 = time.perf_counter()
        n = sum(1 for s in scenarios for d in ("float32", "float64") if run_case(adapter, s, d).verdict != "skipped")
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in scenarios:
            for d in ("float32", "float64"):
                run_case(adapter, s, d)
        warm = time.perf_counter() - t0
    print(f"\n3. third-party numpy adapter over the catalogue: {n} cases, {cold:.2f} s first time in this "
          f"process (models and budgets computed, or read from the on-disk cache), {warm:.2f} s again (in memory)")
    print(f"   {cache_state()}")


def golden_throughput() -> None:
    spec = importlib.util.spec_from_file_location("golden_throughput", HERE / "golden_throughput.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    print("\n4. golden-build throughput")
    sys.argv = [sys.argv[0], "--scenario", "dense-dyadic"]
    mod.main()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", action="append", help="built-in adapter names (default: every available one)")
    p.add_argument("--scenario", action="append", help="scenario names or families (default: all)")
    p.add_argument("--dtype", action="append", help="dtypes (default: all four)")
    p.add_argument("--skip", action="append", default=[],
                   choices=["run", "main", "overhead", "third-party", "golden"])
    p.add_argument("--no-cache", action="store_true", help="without the judge's on-disk cache (as a first run)")
    args = p.parse_args(argv)
    if args.no_cache:
        from adamconf.reference import cache

        cache.set_enabled(False)
    if "run" not in args.skip:
        run_command(args)
    t0 = time.perf_counter()
    from adamconf.adapters.contract import availability
    from adamconf.adapters.registry import builtin_adapters
    from adamconf.golden import scenarios as catalogue

    found = builtin_adapters()
    names = args.adapter or [n for n, a in found.items() if "cpu" in a.devices and availability(a, "cpu") is None]
    adapters = [(n, found[n]) for n in names]
    scenarios = catalogue.select(args.scenario)
    dtypes = args.dtype or ["float16", "bfloat16", "float32", "float64"]
    for _, a in adapters:  # import each framework once, up front: imports are reported apart
        try:
            a.start  # noqa: B018
            import importlib
            for mod in ("torch", "tensorflow", "jax", "optax", "keras", "tf_keras"):
                if importlib.util.find_spec(mod) is not None:
                    importlib.import_module(mod)
        except Exception:  # an import failure shows in the cases
            pass
    print(f"imports and set-up: {time.perf_counter() - t0:.1f} s ({len(adapters)} adapters, {len(scenarios)} "
          f"scenarios)")
    with tempfile.TemporaryDirectory() as tmp:
        if "third-party" not in args.skip:
            third_party(scenarios)
        if "main" not in args.skip:
            main_job(adapters, scenarios, dtypes, Path(tmp))
        if "overhead" not in args.skip:
            reps = {}
            for n, a in adapters:
                fw = n.split(".")[0]
                reps.setdefault(fw, (n, a))
            overhead(list(reps.values()), scenarios, "float32")
    if "golden" not in args.skip:
        golden_throughput()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
