"""The verdict's resolution: the smallest constant update error adamconf catches, scenario by scenario.

    python benchmarks/resolution.py [--scenario PAT ...] [--dtype float32 ...] [--quick]
                                    [--jobs N] [--full-ladder]

The implementation under test is a correct numpy Adam (benchmarks/_scaled_adam.py)
whose every applied update is multiplied by 1 + delta. For each scenario (at its
own hyperparameters) and dtype it prints:

- base used: the unmodified (delta = 0) run's verdict and budget used; a correct
  implementation must pass, so anything else there is a finding about the judge;
- resolution: the smallest |delta| of a fixed ladder such that it and every larger
  ladder value make the verdict "failed" for both signs (">max" when even the
  largest passes; a "*" marks the bottom of the ladder, where the true resolution
  may be finer);
- the budget multiple (``budget_used``) of the runs at delta = +-1e-5 (float64:
  +-1e-12), and which check set it ("by");
- what ``torch.testing.assert_close`` (default rtol/atol for the dtype) detects
  on the same runs: the same ladder rule applied to assert_close(theta_T, theta*_T),
  T = min(100, steps) (the last recorded step <= 100 of the golden), theta*
  the golden's parameters rounded to the dtype. Without torch,
  numpy.testing.assert_allclose with torch's default tolerances is used instead.

The dialect is "pytorch" where the scenario has its golden, else "keras", "optax"
or "kingma". "hyper" is "dyadic" when beta1, beta2 and lr are the DYADIC ones of
golden/scenarios.py or exactly representable in the dtype (so always in float64),
else "default".

``--quick``: float32 only (unless --dtype says otherwise) and one scenario per
family. ``--full-ladder``: evaluate every ladder value instead of stopping at the
first one that passes, and flag non-monotone detection.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    from _scaled_adam import NP, ScaledAdam

    from adamconf.golden.scenarios import CATALOGUE, DYADIC, FAMILIES, Scenario, get, select
    from adamconf.golden.store import load_golden, read_manifest
    from adamconf.reference.dialect import PRESETS
    from adamconf.reference.dtypes import fmt
    from adamconf.suites.runner import execute, run_case
except ImportError as _exc:  # a checkout in the middle of a change: say so, no traceback wall
    if __name__ in ("__main__", "__mp_main__"):
        sys.exit(f"resolution.py: adamconf cannot be imported here ({type(_exc).__name__}: {_exc})")
    raise

LADDERS = {
    "float32": (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 5e-6, 3e-6, 1e-6),
    "float16": (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4),
    "bfloat16": (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4),
    "float64": (1e-9, 1e-10, 1e-11, 1e-12, 3e-13, 1e-13),
}
KILL = {"float32": 1e-5, "float16": 1e-5, "bfloat16": 1e-5, "float64": 1e-12}
DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")
DIALECT_PREFERENCE = ("pytorch", "keras", "optax", "kingma")
# torch.testing.assert_close's defaults (torch/testing/_comparison.py), for the numpy fallback
TORCH_TOLERANCES = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5),
                    "float64": (1e-7, 1e-7)}
ASSERT_CLOSE_STEPS = 100
# one scenario per family for --quick (the first of the family is taken when one is missing)
QUICK = {"dense": "dense-dyadic", "edge": "edge-huge", "sparse": "sparse-dyadic", "clipping": "clip-global-fires",
         "amsgrad": "amsgrad-dyadic", "decay": "decay-weight-decoupled", "roundtrip": "roundtrip-checkpoint",
         "dtypes": "dtype-half", "long": "long-dyadic-3000"}
JUDGED = ("passed", "failed")


def have_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


# -- what a row is -----------------------------------------------------------------------------
@dataclass
class Row:
    scenario: str
    family: str
    dtype: str
    hyper: str = ""
    dialect: str = ""
    status: str = "ok"  # ok | error | skipped
    message: str = ""
    base_verdict: str = ""
    base_used: float | None = None
    resolution: str = ""
    kill_plus: float | None = None
    kill_minus: float | None = None
    kill_by: str = ""
    kill_plus_nostate: float | None = None
    kill_verdicts: str = ""
    ac_resolution: str = ""
    ac_step: int | None = None
    ac_base_raises: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def hyper_label(s: Scenario, dtype: str) -> str:
    c = s.config
    lrs = {float(c.base_lr(k)) for k in range(s.steps + 2)}
    if c.beta1 == DYADIC["beta1"] and c.beta2 == DYADIC["beta2"] and lrs == {DYADIC["lr"]}:
        return "dyadic"
    F = fmt(dtype)
    if F.holds(np.array([c.beta1, c.beta2, *sorted(lrs)], dtype=np.float64)):
        return "dyadic"
    return "default"


def pick_dialect(s: Scenario, manifest: dict) -> str:
    """The first preset (pytorch, keras, optax, kingma) whose projection the scenario has a golden for."""
    have = {d.key(s.relevant_axes) for d in s.golden_dialects()}
    stored = set(manifest.get("scenarios", {}).get(s.name, {}).get("goldens", {}) or ())
    for name in DIALECT_PREFERENCE:
        key = s.dialect_key(PRESETS[name])
        if key in have and (not stored or key in stored):
            return name
    raise LookupError(f"{s.name}: no golden for any of the presets {DIALECT_PREFERENCE} "
                      f"(goldens: {sorted(have)})")


def ladder_resolution(ladder, detected, full: bool):
    """(resolution text, notes): the smallest ladder value such that it and all larger are detected.

    ``detected(delta) -> bool`` for a signed delta. Scans from the largest |delta| down and
    stops at the first miss unless ``full``.
    """
    res, notes, missed_at = None, [], None
    for mag in ladder:
        hit = all([detected(+mag), detected(-mag)]) if full else (detected(+mag) and detected(-mag))
        if hit and missed_at is None:
            res = mag
        elif not hit and missed_at is None:
            missed_at = mag
            if not full:
                break
        elif hit and missed_at is not None:
            notes.append(f"detected again at {mag:g} below a miss at {missed_at:g}")
    if res is None:
        return ">max", notes
    return f"{res:.0e}" + ("*" if res == ladder[-1] else ""), notes


# -- one scenario x dtype ------------------------------------------------------------------------
def bench_case(args: tuple) -> Row:
    name, dtype, full, use_torch = args
    t0 = time.perf_counter()
    s = get(name)
    row = Row(name, s.family, dtype)
    try:
        _bench(row, s, dtype, full, use_torch)
    except Exception as exc:  # the row says what went wrong; the benchmark goes on
        row.status = "error"
        row.message = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc)[-3:-1])
    row.seconds = time.perf_counter() - t0
    return row


class CaseError(RuntimeError):
    pass


def _bench(row: Row, s: Scenario, dtype: str, full: bool, use_torch: bool) -> None:
    row.hyper = hyper_label(s, dtype)
    manifest = read_manifest()
    dialect = pick_dialect(s, manifest)
    row.dialect = dialect
    if dtype not in NP:
        row.status, row.message = "skipped", f"{dtype} needs ml_dtypes (pip install ml_dtypes)"
        return
    outcomes: dict[float, object] = {}

    def judge(delta: float):
        if delta not in outcomes:
            with np.errstate(all="ignore"):
                o = run_case(ScaledAdam(dialect, delta), s, dtype, manifest=manifest)
            outcomes[delta] = o
            if o.verdict not in JUDGED:
                raise CaseError(f"delta={delta:+g}: verdict {o.verdict}: {o.message.strip()[:300]}")
        return outcomes[delta]

    with np.errstate(all="ignore"):
        base = run_case(ScaledAdam(dialect, 0.0), s, dtype, manifest=manifest)
    outcomes[0.0] = base
    row.base_verdict, row.base_used = base.verdict, base.budget_used
    if base.verdict == "skipped":
        row.status, row.message = "skipped", base.message
        return
    if base.verdict not in JUDGED:
        raise CaseError(f"delta=0: verdict {base.verdict}: {base.message.strip()[:300]}")
    if base.verdict == "failed":
        row.notes.append(f"the correct run (delta=0) FAILED: {base.message.strip().splitlines()[0][:200]}")

    ladder = LADDERS[dtype]
    row.resolution, notes = ladder_resolution(ladder, lambda d: judge(d).verdict == "failed", full)
    row.notes += [f"verdict: {n}" for n in notes]
    if row.resolution == ">max":
        top = ladder[0]
        row.notes.append("even |delta| = {:g} is not caught: ".format(top) + ", ".join(
            f"{sign}{top:g} {judge(sign_v * top).verdict} ({_num(judge(sign_v * top).budget_used)})"
            for sign, sign_v in (("+", 1), ("-", -1))))
    kill = KILL[dtype]
    plus, minus = judge(+kill), judge(-kill)
    row.kill_plus, row.kill_minus = plus.budget_used, minus.budget_used
    row.kill_verdicts = f"{plus.verdict[0]}{minus.verdict[0]}"
    checks = getattr(plus.assessment, "checks", None) or {}
    used = {k: v for k, v in checks.items() if v is not None}
    if used:
        row.kill_by = max(used, key=used.get)
        rest = [v for k, v in used.items() if k != "state"]
        row.kill_plus_nostate = max(rest) if rest else None

    # assert_close on theta after T = min(100, steps) steps, the same implementations
    golden = load_golden(s, PRESETS[dialect], manifest=manifest)
    T = min(ASSERT_CLOSE_STEPS, s.steps)
    steps = [int(t) for t in golden.steps if int(t) <= T]
    T = max(steps)
    row.ac_step = T
    r = golden.row(T)
    expected = [np.asarray(th[r], dtype=np.float64) for th in golden.record.theta]
    # the inputs up to step T only (assert_close needs no more)
    short = dataclasses.replace(golden, grads=golden.grads[:T])
    compare = _torch_compare if use_torch else _numpy_compare

    def raises(delta: float) -> bool:
        with np.errstate(all="ignore"):
            theta = execute(ScaledAdam(dialect, delta), short, dtype)
        return compare([th[T] for th in theta], expected, dtype)

    row.ac_base_raises = raises(0.0)
    row.ac_resolution, notes = ladder_resolution(ladder, raises, full)
    row.notes += [f"assert_close: {n}" for n in notes]
    if row.ac_base_raises:
        row.notes.append("assert_close raises on the correct run (delta=0)")


_TORCH_DTYPES = None


def _torch_compare(actual, expected, dtype: str) -> bool:
    """True if torch.testing.assert_close (default rtol/atol for dtype) raises."""
    import torch

    global _TORCH_DTYPES
    if _TORCH_DTYPES is None:
        torch.set_num_threads(1)  # tiny tensors; the workers already share the cores
        _TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                         "float64": torch.float64}
    td = _TORCH_DTYPES[dtype]
    a = [torch.from_numpy(np.ascontiguousarray(x)).to(td) for x in actual]  # exact: the run's values
    e = [torch.from_numpy(np.ascontiguousarray(x)).to(td) for x in expected]  # the exact values, rounded
    try:
        torch.testing.assert_close(a, e)
    except AssertionError:
        return True
    return False


def _numpy_compare(actual, expected, dtype: str) -> bool:
    rtol, atol = TORCH_TOLERANCES[dtype]
    F = fmt(dtype)
    try:
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, F.round(e), rtol=rtol, atol=atol)
    except AssertionError:
        return True
    return False


# -- the table ------------------------------------------------------------------------------------
def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.2e}"


COLUMNS = (("family", 9), ("scenario", 26), ("dtype", 8), ("hyper", 7), ("dialect", 7), ("base used", 13),
           ("resolution", 10), ("+kill", 8), ("-kill", 8), ("by", 10), ("+kill-st", 8), ("assert_close", 17), ("T", 4),
           ("secs", 6))


def render(rows: list[Row], use_torch: bool, elapsed: float, jobs: int) -> str:
    out = []
    head = "  ".join(f"{n:<{w}}" for n, w in COLUMNS).rstrip()
    out.append(head)
    out.append("-" * len(head))
    notes = []
    last_family = None
    for r in rows:
        if last_family is not None and r.family != last_family:
            out.append("")
        last_family = r.family
        if r.status != "ok":
            cells = [r.family, r.scenario, r.dtype, r.hyper or "-", r.dialect or "-",
                     f"{r.status.upper()}: {r.message.strip().splitlines()[0] if r.message else ''}"]
            out.append("  ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, COLUMNS[:5])) + "  " + cells[5][:150])
            if r.status == "error" and r.message:
                notes.append(f"{r.scenario} {r.dtype}: {r.message.strip()}")
            continue
        base = f"{r.base_verdict[:4]} {_num(r.base_used)}"
        ac = r.ac_resolution + (" (raises@0)" if r.ac_base_raises else "")
        cells = [r.family, r.scenario, r.dtype, r.hyper, r.dialect, base, r.resolution, _num(r.kill_plus),
                 _num(r.kill_minus), r.kill_by, _num(r.kill_plus_nostate), ac, str(r.ac_step), f"{r.seconds:.1f}"]
        out.append("  ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, COLUMNS)).rstrip())
        notes += [f"{r.scenario} {r.dtype}: {n}" for n in r.notes]
    out.append("")
    out.append("resolution: smallest ladder |delta| at which it and every larger one fail for both signs "
               "(* = ladder bottom); +kill/-kill: budget_used at delta = +-1e-5 (float64: +-1e-12), "
               "by: the check that set +kill; +kill-st: the largest budget_used at +kill of the checks other "
               "than state (m, v), which a constant update factor does not move")
    out.append("assert_close: the same rule for " + (
        "torch.testing.assert_close(theta_T, golden theta_T rounded to the dtype), default rtol/atol"
        if use_torch else "numpy.testing.assert_allclose(theta_T, golden theta_T rounded to the dtype) with "
                          "torch's default tolerances (torch not installed, or --no-torch)")
               + f"; T = min({ASSERT_CLOSE_STEPS}, steps)")
    if notes:
        out.append("")
        out.append("notes:")
        out += [f"  {n}" for n in notes]
    out.append("")
    out.append(f"total wall time {elapsed:.1f} s ({len(rows)} rows, {jobs} process{'es' if jobs > 1 else ''})")
    return "\n".join(out)


def _cost(s: Scenario) -> float:
    return s.steps * max(1, sum(math.prod(shape) for shape in s.shapes))


def plan(patterns, dtypes, quick: bool) -> list[tuple[Scenario, str]]:
    scenarios = select(patterns) if patterns else list(CATALOGUE)
    if quick:
        chosen = []
        for fam in FAMILIES:
            members = [s for s in scenarios if s.family == fam and any(d in s.dtypes for d in dtypes)]
            if not members:
                continue
            pick = next((s for s in members if s.name == QUICK.get(fam)), members[0])
            chosen.append(pick)
        scenarios = chosen
    return [(s, d) for s in scenarios for d in DTYPE_ORDER if d in dtypes and d in s.dtypes]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="extend", nargs="+", default=[], metavar="PAT",
                    help="scenario name glob or family (repeatable); default: the whole catalogue")
    ap.add_argument("--dtype", action="extend", nargs="+", default=[], choices=DTYPE_ORDER,
                    help="dtypes (repeatable); default: every dtype each scenario defines (--quick: float32)")
    ap.add_argument("--quick", action="store_true", help="float32 only and one scenario per family")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--no-torch", action="store_true",
                    help="compare with numpy.testing.assert_allclose at torch's default tolerances even if "
                         "torch is installed")
    ap.add_argument("--full-ladder", action="store_true",
                    help="evaluate every ladder value (no early stop) and flag non-monotone detection")
    args = ap.parse_args(argv)
    dtypes = tuple(args.dtype) or (("float32",) if args.quick else DTYPE_ORDER)
    cases = plan(args.scenario, dtypes, args.quick)
    if not cases:
        print("no scenario matches", file=sys.stderr)
        return 2
    use_torch = have_torch() and not args.no_torch
    t0 = time.perf_counter()
    tasks = [(s.name, d, args.full_ladder, use_torch) for s, d in sorted(cases, key=lambda c: -_cost(c[0]))]
    rows: list[Row] = []
    jobs = max(1, min(args.jobs, len(tasks)))
    if jobs == 1:
        results = map(bench_case, tasks)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(jobs)
        results = pool.imap_unordered(bench_case, tasks)
    try:
        for i, row in enumerate(results, 1):
            rows.append(row)
            print(f"[{i}/{len(tasks)}] {row.scenario} {row.dtype}: {row.status} {row.resolution} "
                  f"({row.seconds:.1f} s)", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    order = {s.name: i for i, s in enumerate(CATALOGUE)}
    rows.sort(key=lambda r: (FAMILIES.index(r.family) if r.family in FAMILIES else len(FAMILIES),
                             order.get(r.scenario, 0), DTYPE_ORDER.index(r.dtype)))
    print(render(rows, use_torch, time.perf_counter() - t0, jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
