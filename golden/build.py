"""Building and verifying the golden store (``adamconf golden build|verify``).

A build computes, for every selected scenario, its inputs and its exact
trajectory in each of its golden dialects (one process per trajectory, across
all cores), writes the files byte-reproducibly and records their sha256 in the
manifest. ``verify`` checks every hash and then rebuilds all goldens, or a
sample, and compares them with the files bit for bit.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import hashlib
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Sequence

import mpmath
import numpy as np

from adamconf.reference.adam import trajectory
from adamconf.reference.dialect import Dialect

from . import scenarios as catalogue
from .inputs import generate, representable
from .store import (DATA_DIR, MANIFEST_SCHEMA, file_stem, inputs_arrays, npz_bytes, read_manifest,
                    rebuild_command, trajectory_arrays, write_npz)
from .scenarios import Scenario

__all__ = ["DPS", "build", "golden_bytes", "verify"]

#: working precision of the goldens: 50 digits (166 bits) against 106 stored
DPS = 50


def _check_inputs(s: Scenario, params0, grads) -> None:
    for dtype in s.dtypes:
        arrays = list(params0) + [g.values if hasattr(g, "values") else g for row in grads for g in row]
        if not all(representable(a, dtype) for a in arrays):
            raise ValueError(f"scenario {s.name}: its inputs are not exact in {dtype}; fix its Inputs in "
                             "golden/scenarios.py (scale by powers of two, keep values in range)")


def golden_bytes(s: Scenario, dialect: Dialect) -> dict[str, np.ndarray]:
    """The arrays of one golden file (computed from the scenario definition alone)."""
    params0, grads = generate(s.inputs, s.shapes, s.steps)
    tr = trajectory(s.config, dialect, params0, grads, dps=DPS, record=s.recorded_steps(),
                    record_state=s.state_steps())
    return trajectory_arrays(tr, s.state_steps())


def _job(args: tuple[str, str]) -> tuple[str, str, dict[str, np.ndarray], float, int]:
    name, key = args
    s = catalogue.get(name)
    t0 = time.perf_counter()
    arrays = golden_bytes(s, Dialect.from_key(key))
    n_elements = sum(int(np.prod(shape, dtype=np.int64)) for shape in s.shapes)
    return name, key, arrays, time.perf_counter() - t0, n_elements * s.steps


def _jobs(selected: Sequence[Scenario]) -> list[tuple[str, str]]:
    return [(s.name, d.key()) for s in selected for d in s.golden_dialects()]


def _generator_info() -> dict:
    return {"mpmath": mpmath.__version__, "mpmath_backend": mpmath.libmp.BACKEND, "dps": DPS,
            "numpy": np.__version__, "python": platform.python_version()}


def build(patterns: Sequence[str] | None = None, data_dir: Path = DATA_DIR, workers: int | None = None,
          log=print) -> dict:
    """Build the selected scenarios' goldens and update the manifest; returns throughput figures."""
    selected = catalogue.select(patterns)
    if not selected:
        raise ValueError(f"no scenario matches {list(patterns or [])}; `adamconf list scenarios` lists them")
    try:
        manifest = copy.deepcopy(read_manifest(data_dir))  # changed below: not the process's shared copy
    except Exception:
        manifest = {"schema_version": MANIFEST_SCHEMA, "files": {}, "scenarios": {}}
    if patterns is None or not list(patterns):  # a full build drops scenarios no longer in the catalogue
        manifest = {"schema_version": MANIFEST_SCHEMA, "files": {}, "scenarios": {}}
    for s in selected:
        params0, grads = generate(s.inputs, s.shapes, s.steps)
        _check_inputs(s, params0, grads)
        rel = f"{s.name}/inputs.npz"
        data = write_npz(data_dir / rel, inputs_arrays(params0, grads))
        manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith(s.name + "/")}
        manifest["files"][rel] = hashlib.sha256(data).hexdigest()
        manifest["scenarios"][s.name] = {"definition": s.to_dict(), "inputs": rel, "goldens": {}}
        for stale in (data_dir / s.name).glob("*.npz"):
            if stale.name != "inputs.npz" and stale.stem not in {file_stem(d.key(s.relevant_axes))
                                                                 for d in s.golden_dialects()}:
                stale.unlink()
    jobs = _jobs(selected)
    workers = workers or os.cpu_count() or 1
    t0 = time.perf_counter()
    element_steps, busy = 0, 0.0
    ex = cf.ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    results = ex.map(_job, jobs) if ex else map(_job, jobs)
    try:
        for name, key, arrays, seconds, n in results:
            s = catalogue.get(name)
            short = Dialect.from_key(key).key(s.relevant_axes)
            rel = f"{name}/{file_stem(short)}.npz"
            data = write_npz(data_dir / rel, arrays)
            manifest["files"][rel] = hashlib.sha256(data).hexdigest()
            manifest["scenarios"][name]["goldens"][short] = {"dialect": Dialect.from_key(key).to_dict(),
                                                            "file": rel}
            element_steps += n
            busy += seconds
            log(f"  {rel:60s} {n:8d} element-steps {seconds:6.2f} s")
    finally:
        if ex:
            ex.shutdown()
    wall = time.perf_counter() - t0
    manifest["generator"] = _generator_info()
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest["scenarios"] = dict(sorted(manifest["scenarios"].items()))
    (data_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return {"goldens": len(jobs), "element_steps": element_steps, "wall_s": wall, "cpu_s": busy,
            "workers": workers, "per_core": element_steps / busy if busy else 0.0,
            "all_cores": element_steps / wall if wall else 0.0}


def verify(data_dir: Path = DATA_DIR, sample: int | None = None, patterns: Sequence[str] | None = None,
           seed: int = 0, workers: int | None = None, log=print) -> list[str]:
    """Problems found (empty: all good). Checks hashes, then rebuilds and compares bit for bit."""
    problems: list[str] = []
    manifest = read_manifest(data_dir)
    for rel, digest in manifest["files"].items():
        path = data_dir / rel
        scenario = rel.split("/")[0]
        if not path.is_file():
            problems.append(f"{path}: missing; rebuild with: {rebuild_command(scenario)}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{path}: sha256 does not match the manifest (changed or corrupted); "
                            f"rebuild with: {rebuild_command(scenario)}")
    names = {s.name for s in catalogue.select(patterns)}
    missing = sorted(names - set(manifest["scenarios"]))
    problems += [f"scenario {n}: in the catalogue but not in the golden store; rebuild with: "
                 f"{rebuild_command(n)}" for n in missing]
    for name, entry in manifest["scenarios"].items():
        if name in names and entry["definition"] != json.loads(json.dumps(catalogue.get(name).to_dict())):
            problems.append(f"scenario {name}: its definition changed since the goldens were built; "
                            f"rebuild with: {rebuild_command(name)}")
    jobs = [j for j in _jobs(catalogue.select(patterns)) if j[0] in manifest["scenarios"]]
    if sample is not None and sample < len(jobs):
        jobs = random.Random(seed).sample(jobs, sample)
    workers = workers or os.cpu_count() or 1
    ex = cf.ProcessPoolExecutor(max_workers=workers) if workers > 1 and len(jobs) > 1 else None
    try:
        for name, key, arrays, _, _ in (ex.map(_job, jobs) if ex else map(_job, jobs)):
            s = catalogue.get(name)
            rel = f"{name}/{file_stem(Dialect.from_key(key).key(s.relevant_axes))}.npz"
            path = data_dir / rel
            fresh = npz_bytes(arrays)
            if not path.is_file() or path.read_bytes() != fresh:
                problems.append(f"{path}: a rebuild differs from the stored file; rebuild with: "
                                f"{rebuild_command(name)}")
            else:
                log(f"  {rel}: rebuilt bit for bit")
        for s in catalogue.select(patterns):
            if s.name not in manifest["scenarios"]:
                continue
            params0, grads = generate(s.inputs, s.shapes, s.steps)
            path = data_dir / f"{s.name}/inputs.npz"
            if path.is_file() and path.read_bytes() != npz_bytes(inputs_arrays(params0, grads)):
                problems.append(f"{path}: regenerated inputs differ from the stored file; rebuild with: "
                                f"{rebuild_command(s.name)}")
    finally:
        if ex:
            ex.shutdown()
    return problems


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `adamconf golden build` or `adamconf golden verify`")
