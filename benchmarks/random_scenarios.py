"""Random scenarios, many of them: N examples per adapter, failures written as reproducible scenario files.

    python benchmarks/random_scenarios.py [--n 2000] [--n-population 2000] [--adapter PAT|SPEC ...]
                                          [--no-population] [--no-builtin] [--out DIR] [--seed S]
                                          [--jobs J] [--summary FILE]

For each adapter (every member of tests/population.py in every dialect it is drawn in, then every
built-in adapter available on the CPU here, or those matching --adapter; an --adapter that is a spec,
``path/to/file.py:Class``, ``package.module:Class`` or an entry-point name, puts a third-party adapter
under test instead of the built-ins: ``--adapter my_adam.py:MyAdam --no-population``) it draws N examples of
tests/random_scenarios.py's strategy (the dtypes and features the adapter declares, without its known
deviations of adapters/expectations: ``ADAPTER_EXAMPLES``; derandomized,
so a run is repeatable; --seed S draws another sample), computes each example's golden with the
mpmath reference and judges the adapter through the harness's own path (``check``: ``drive`` and
``judge_against``). Every example that does not pass is written to DIR (default
results/random-failures) as a JSON scenario file: the example (config, shapes, steps, the input
recipe: generator, seed and options), the adapter, the verdict and the message;
``random_scenarios.load_example`` reads it back. The summary gives, per adapter, the examples run
(skipped ones apart), the failures and the time per example (the golden, computed once per example
and dialect, apart). ``--jobs J`` runs the adapters in J worker processes (spawned, each importing the
frameworks it meets once; an adapter's examples stay in one process, so its sample is the same as
with one job), the slowest first. Progress on stderr: tqdm if installed and one job, else a line
per adapter every half minute. The summary file is rewritten as each adapter finishes, so an
interrupted run keeps what it completed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from random_scenarios import (DIALECTS, RANDOM_EXCLUDED, adapter_examples, check, examples,  # noqa: E402
                              save_failure)

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - a plain counter instead
    tqdm = None


class _Progress:
    def __init__(self, total: int, label: str, lines: bool = False) -> None:
        self.total, self.label, self.n, self.failed, self.lines = total, label, 0, 0, lines
        self.bar = tqdm(total=total, desc=label, file=sys.stderr, leave=False) if tqdm and not lines else None
        self._last = time.monotonic() if lines else 0.0

    def update(self, failed: bool) -> None:
        self.n += 1
        self.failed += failed
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed)
        elif self.lines:  # several processes share stderr: whole lines, seldom
            if time.monotonic() - self._last > 30:
                self._last = time.monotonic()
                sys.stderr.write(f"{self.label}: {self.n}/{self.total} examples, {self.failed} failed\n")
                sys.stderr.flush()
        elif time.monotonic() - self._last > 0.5 or self.n == self.total:
            self._last = time.monotonic()
            sys.stderr.write(f"\r{self.label}: {self.n}/{self.total} examples, {self.failed} failed ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.lines:
            sys.stderr.write("\n")


def _population():
    from population import MEMBERS

    # one entry per member; the dialect is drawn with each example
    return [(f"pop.{cls.key}", cls, None) for cls in MEMBERS]


def _builtin(patterns):
    from adamconf.adapters.contract import availability
    from adamconf.adapters.registry import builtin_adapters

    out = []
    for name, adapter in builtin_adapters().items():
        if patterns and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        if "cpu" not in adapter.devices or availability(adapter, "cpu") is not None:
            print(f"  {name}: not available on the CPU here ({availability(adapter, 'cpu')}), not run")
            continue
        if name in RANDOM_EXCLUDED:
            print(f"  {name}: not run on random examples ({RANDOM_EXCLUDED[name]})")
            continue
        out.append((name, None, adapter))
    return out


def _split_adapter_args(values):
    """--adapter values as (globs over built-in names, third-party specs): a spec has a ':' or is an entry point."""
    from adamconf.adapters.registry import builtin_adapters, known_names

    builtins, known = set(builtin_adapters()), set(known_names())
    globs, specs = [], []
    for v in values:
        third_party = v not in builtins and (":" in v or v in known)
        (specs if third_party else globs).append(v)
    return globs, specs


def _third_party(specs):
    """(label, None, adapter) per spec; the label is the spec, so that a worker process can load it again."""
    from adamconf.adapters.contract import availability
    from adamconf.adapters.registry import load_adapter

    out = []
    for spec in specs:
        adapter = load_adapter(spec)  # a wrong spec raises here, with the registry's message
        why = availability(adapter, "cpu") if "cpu" in adapter.devices else "it declares no 'cpu' device"
        if why is not None:
            print(f"  {spec}: not available on the CPU here ({why}), not run")
            continue
        out.append((spec, None, adapter))
    return out


def run_one(label, cls, adapter, n, out_dir, rng_seed, lines=False):
    """N examples for one adapter; returns its summary row."""
    if adapter is not None:  # its dtypes, features and dialect, its known deviations left out
        strategy = adapter_examples(adapter, label)
    else:
        strategy = examples(dtypes=cls.dtypes, features=cls.features)
    counts, seconds, golden_s, files = Counter(), [], [], []
    progress = _Progress(n, label, lines)

    @settings(max_examples=n, derandomize=rng_seed is None, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(ex=strategy)
    def body(ex):
        a = adapter if adapter is not None else cls(DIALECTS[ex.dialect], label=ex.dialect)
        with np.errstate(all="ignore"):
            out = check(a, ex)
        counts[out.verdict] += 1
        if out.verdict != "skipped":
            seconds.append(out.seconds)
            golden_s.append(out.golden_seconds)
        bad = out.verdict not in ("passed", "skipped")
        if bad:
            files.append(save_failure(out_dir, a.name, ex, out))
        progress.update(bad)

    if rng_seed is not None:
        body = seed(rng_seed)(body)
    t0 = time.perf_counter()
    try:
        body()
    finally:
        progress.close()
    ran = sum(v for k, v in counts.items() if k != "skipped")
    return {"adapter": label, "examples": ran, "skipped": counts["skipped"],
            "failed": ran - counts["passed"], "verdicts": dict(counts), "wall_s": time.perf_counter() - t0,
            "s_per_example": float(np.mean(seconds)) if seconds else None,
            "golden_s_per_example": float(np.mean(golden_s)) if golden_s else None, "failure_files": files}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="examples per built-in adapter (default 2000)")
    ap.add_argument("--n-population", type=int, default=None, help="examples per population member (default --n)")
    ap.add_argument("--adapter", action="append", default=[],
                    help="built-in adapters to run (glob), or a third-party adapter spec (path/to/file.py:Class, "
                         "package.module:Class, an entry-point name); repeatable. Specs alone: no built-ins")
    ap.add_argument("--no-population", action="store_true", help="skip the population of correct numpy Adams")
    ap.add_argument("--no-builtin", action="store_true", help="skip the built-in adapters")
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "random-failures"),
                    help="directory for the failing examples (default results/random-failures)")
    ap.add_argument("--summary", default=None, help="also write the summary as JSON to this file")
    ap.add_argument("--seed", type=int, default=None, help="draw another sample (default: derandomized)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes, one adapter at a time each (default 1)")
    args = ap.parse_args(argv)
    n_pop = args.n if args.n_population is None else args.n_population
    jobs = [] if args.no_population else [(j, n_pop) for j in _population()]
    globs, specs = _split_adapter_args(args.adapter)
    if not (args.no_builtin or (specs and not globs)):
        jobs += [(j, args.n) for j in _builtin(globs)]
    try:
        jobs += [(j, args.n) for j in _third_party(specs)]
    except (LookupError, ImportError, TypeError) as exc:  # the registry's UnknownAdapter is a LookupError
        ap.error(f"--adapter: {exc}")
    rows = []
    t0 = time.perf_counter()

    def done(row):
        rows.append(row)
        per, gold = row["s_per_example"], row["golden_s_per_example"]
        per = "-" if per is None else f"{per * 1e3:8.1f} ms"
        gold = "-" if gold is None else f"{gold * 1e3:.1f} ms"
        print(f"{row['adapter']:28s} {row['examples']:6d} run {row['skipped']:5d} skipped {row['failed']:4d} failed  "
              f"{per}/example (+ golden {gold})  {row['wall_s']:7.1f} s", flush=True)
        if args.summary:  # rewritten each time: an interrupted run keeps its finished adapters
            os.makedirs(os.path.dirname(os.path.abspath(args.summary)), exist_ok=True)
            with open(args.summary, "w") as f:
                json.dump(rows, f, indent=1)

    if args.jobs <= 1:
        for (label, cls, adapter), n in jobs:
            done(run_one(label, cls, adapter, n, args.out, args.seed))
    else:
        import concurrent.futures as cf
        import multiprocessing

        # longest first (LPT), so that the workers finish together
        jobs.sort(key=lambda j: -_COST_HINT.get(j[0][0], 0.05) * j[1])
        ctx = multiprocessing.get_context("spawn")  # no fork after a framework's threads started
        with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_run_job, label, n, args.out, args.seed) for (label, _, _), n in jobs]
            for fut in cf.as_completed(futures):
                done(fut.result())
    total_fail = sum(r["failed"] for r in rows)
    print(f"\n{len(rows)} adapters, {sum(r['examples'] for r in rows)} examples run, {total_fail} failed, "
          f"{time.perf_counter() - t0:.0f} s" + (f"; failing examples in {args.out}" if total_fail else ""))
    return 1 if total_fail else 0


#: seconds per example (harness and golden together) measured on a 2-core machine by a 50-per-adapter
#: run; it only orders the work under --jobs (0.05 s where not listed)
_COST_HINT = {"torch.adam.compiled": 2.08, "keras.jax.adam": 0.85, "keras.adam.jit": 0.79, "optax.amsgrad": 0.48,
              "optax.adamw": 0.46, "keras.adam": 0.47, "tf_keras.adam": 0.43, "optax.adam": 0.36,
              "keras.adamw": 0.31, "tf_keras.legacy.adam": 0.29, "keras.torch.adam": 0.25,
              "torch.sparse_adam": 0.24, "torch.adamw.fused": 0.13, "torch.adam.fused": 0.10,
              "torch.adam.fused.amp": 0.13}


def _run_job(label, n, out_dir, rng_seed):
    """One adapter's examples in a worker process: the adapter is looked up here, by its label."""
    if label.startswith("pop."):
        from population import MEMBERS

        cls, adapter = next(c for c in MEMBERS if f"pop.{c.key}" == label), None
    else:
        from adamconf.adapters.registry import load_adapter

        cls, adapter = None, load_adapter(label)  # a built-in name or a third-party spec
    return run_one(label, cls, adapter, n, out_dir, rng_seed, lines=True)


if __name__ == "__main__":
    sys.exit(main())
