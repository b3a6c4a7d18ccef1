"""A digest of every budget and held variant the judge computes over the catalogue, to show a change bitwise neutral.

    python benchmarks/judge_digest.py [--scenario PAT ...] [--dialect NAME ...] [--jobs J] [--per-scenario]

For each catalogue scenario, each preset dialect that defines it, each of the scenario's dtypes and
each class group the judge forms for an undeclared adapter (``judge._judge``: classes of the same
rounding dtype, hyper and master-weights axis), it computes what ``judge.prepare`` computes: the
budget (with and without the float32 schedule fit where ``lr_fit_applies``) and the held variants,
and hashes every array of them (shape, dtype and bytes) into one sha256. A refactoring of the float64
model, the budget or the variants must leave the digest unchanged; one that changes a bound changes
it (``--per-scenario`` names where). The same script runs against an older installed adamconf (it
uses only ``compute_budget``, ``held_variants``, ``HeldSet``, ``trajectory`` and ``candidates``), so
a digest can be taken before and after a change.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def _feed(h, x) -> None:
    """Hash a value: arrays by shape, dtype and bytes, containers element by element."""
    if x is None:
        h.update(b"None")
    elif isinstance(x, (list, tuple)):
        h.update(f"[{len(x)}".encode())
        for y in x:
            _feed(h, y)
    elif isinstance(x, dict):
        for k in sorted(x):
            h.update(str(k).encode())
            _feed(h, x[k])
    elif isinstance(x, (bool, int, float, str, np.generic)):
        h.update(repr(x).encode())
    else:
        a = np.ascontiguousarray(x)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())


def scenario_digest(name: str, dialects: list[str]) -> tuple[str, str, int, float]:
    """(scenario, sha256 of its budgets and variants, how many were hashed, seconds)."""
    from dataclasses import fields

    from adamconf.golden.scenarios import get
    from adamconf.golden.store import load_inputs
    from adamconf.reference.adam import trajectory
    from adamconf.reference.budget import compute_budget
    from adamconf.reference.dialect import PRESETS
    from adamconf.reference.held import HeldSet, held_variants
    from adamconf.reference.judge import lr_fit_applies
    from adamconf.reference.paths import candidates

    t0 = time.perf_counter()
    s = get(name)
    params0, grads = load_inputs(s)
    T = len(grads)
    steps = np.arange(T + 1)
    h = hashlib.sha256()
    count = 0
    with np.errstate(all="ignore"):
        for dname in dialects:
            d = PRESETS[dname]
            try:
                trajectory(s.config, d, params0[:0], grads[:0], arithmetic="float64")
            except ValueError:  # the dialect does not define this config (lazy rows with decay, ...)
                continue
            for dtype in s.dtypes:
                groups: dict[tuple, list] = {}
                for c in candidates(None, dtype):
                    groups.setdefault((c.round_dtype(dtype), c.hyper, c.theta == "master"), []).append(c)
                for (round_dtype, hyper, _master), group in groups.items():
                    exact = dtype == "float64" and hyper == "dtype"
                    fits = (False, True) if hyper == "float32" and lr_fit_applies(s.config, steps, T) else (False,)
                    for fitted in fits:
                        b = compute_budget(s.config, d, params0, grads, round_dtype, held=not exact,
                                           rep_dtype="float32" if hyper == "float32" else round_dtype,
                                           lr_modelled=hyper == "float32", lr_fitted=fitted)
                        h.update(f"{dname}/{dtype}/{round_dtype}/{hyper}/{fitted}".encode())
                        for f in fields(b):
                            _feed(h, getattr(b, f.name))
                        count += 1
                    if not exact:
                        hs = HeldSet(held_variants(s.config, dtype, group), round_dtype, T)
                        tr = trajectory(s.config, d, params0, grads, arithmetic="float64", held=hs)
                        for f in fields(tr):
                            if f.name == "state_steps" and tr.state_steps is None:
                                continue  # a field older versions lack; None (moments at every step) adds nothing
                            _feed(h, getattr(tr, f.name))
                        count += 1
    return name, h.hexdigest(), count, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", action="append", help="scenario name globs (default: the whole catalogue)")
    p.add_argument("--dialect", action="append", help="preset dialects (default: every preset)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--per-scenario", action="store_true", help="print each scenario's digest")
    args = p.parse_args(argv)
    from adamconf.golden.scenarios import CATALOGUE
    from adamconf.reference.dialect import PRESETS

    names = [s.name for s in CATALOGUE if not args.scenario or any(fnmatch.fnmatchcase(s.name, q)
                                                                    for q in args.scenario)]
    dialects = args.dialect or sorted(PRESETS)
    t0 = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(scenario_digest, names, [dialects] * len(names)))
    else:
        rows = [scenario_digest(n, dialects) for n in names]
    total = hashlib.sha256()
    for name, digest, count, secs in rows:
        total.update(f"{name}:{digest}".encode())
        if args.per_scenario:
            print(f"{name:28s} {digest[:16]} {count:4d} budgets and variant sets {secs:7.2f} s")
    print(f"{len(rows)} scenarios, {sum(r[2] for r in rows)} budgets and variant sets, dialects "
          f"{','.join(dialects)}: {total.hexdigest()} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
