"""``adamconf fingerprint``: which dialect does an implementation follow, axis by axis?

The adapter's declared dialect is ignored. Each dialect-separating scenario
(``Scenario.separates``) is run ONCE through the adapter; that one run is then
assessed against the exact trajectory of every *candidate* dialect: every valid
combination of values of the scenario's relevant axes (so that, say, the clip
axis of a Keras-like run is judged with the epsilon-hat form it also uses). The
stored golden is used where one exists; otherwise the trajectory is computed on
the fly (``trajectory(..., dps=30)``: ~1e-30 relative, far below any budget).

For an axis and a value v, the budget used is, over the scenarios separating the
axis, the worst of (the smallest budget used by a candidate with value v): v
matches when a candidate with value v fits every such run within budget (budget
used <= 1, and the same non-finite pattern). An axis is

- identified: the matching values all give the same exact trajectory on these
  scenarios (one value; or, e.g., clip "exact" and "tf", which differ by
  rounding only: ``reference/dialect.py``);
- none: no value matches ("none of the known values"; the nearest is reported);
- ambiguous: values with different exact trajectories both match;
- not testable: the adapter lacks a feature, dtype or device the scenarios need;
- error: the adapter raised.

Weight decay is a request of the run (``AdamConfig.weight_decay_mode``), not a
dialect axis: for each weight-decay feature the adapter has (``weight_decay``,
asked for coupled L2; ``decoupled_weight_decay``, asked for AdamW), the
decay-weight-l2 / decay-weight-decoupled inputs (the same inputs) are run once
and judged against both meanings: g += w*theta (coupled L2) or
theta -= lr*w*theta (decoupled, Loshchilov & Hutter 2019).

The runs are made in float64 when the adapter supports it (its budget resolves
the smallest differences), else float32. When nothing at all is identified in
float64, the fingerprint is taken again in float32 and says so (``fallback``):
several frameworks hold hyperparameters or bias corrections in float32 even for
float64 tensors (Keras, tf_keras, torch.compile: see their adapters), which no
float64 budget admits, while their dialect shows plainly in float32.

Every probe costs one run of a few dozen steps; the candidates' budgets and
on-the-fly references cost well under a second per adapter.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adamconf.adapters.contract import availability
from adamconf.adapters.driver import classify, drive, support
from adamconf.golden.scenarios import CATALOGUE, Scenario, get
from adamconf.golden.store import DATA_DIR, Golden, GoldenError, file_stem, load_golden, load_inputs, read_manifest
from adamconf.reference.adam import trajectory
from adamconf.reference.judge import judge_against
from adamconf.reference.paths import parse_path_class
from adamconf.reference.dialect import AXES, PRESETS, Dialect, resolve_dialect

__all__ = ["WEIGHT_DECAY_PROBES", "choose_dtype", "fingerprint", "fingerprint_command", "render"]

#: digits of the on-the-fly reference for candidates without a stored golden
REFERENCE_DPS = 30
#: two exact trajectories closer than this (relative) are the same to every dtype's budget
SAME_TRAJECTORY_RTOL = 1e-20
#: weight-decay feature -> (the scenario that asks for it, the meaning it asks for)
WEIGHT_DECAY_PROBES = {
    "weight_decay": ("decay-weight-l2", "l2"),
    "decoupled_weight_decay": ("decay-weight-decoupled", "decoupled"),
}
MEANING = {"l2": "coupled L2", "decoupled": "decoupled"}
WD_AXIS = "weight_decay_mode"  # the pseudo-axis of the weight-decay probes


# -- references --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def _computed_reference(name: str, key: str, data_dir: str) -> Golden:
    """The exact trajectory of catalogue scenario ``name`` in dialect ``key``, computed now."""
    scenario = get(name)
    params0, grads = load_inputs(scenario, Path(data_dir))
    tr = trajectory(scenario.config, Dialect.from_key(key), params0, grads, dps=REFERENCE_DPS,
                    record=scenario.recorded_steps())
    return Golden.from_trajectory(scenario, key, params0, grads, tr)


def _reference(scenario: Scenario, dialect: Dialect, data_dir: Path, manifest: dict) -> tuple[Golden, str]:
    """(golden, "golden") when the store has one for this dialect, else (computed trajectory, "computed")."""
    key = scenario.dialect_key(dialect)
    if f"{scenario.name}/{file_stem(key)}.npz" in manifest["files"]:
        return load_golden(scenario, dialect, data_dir, manifest), "golden"
    return _computed_reference(scenario.name, key, str(data_dir)), "computed"


def _same_trajectory(a: Golden, b: Golden) -> bool:
    """Whether two exact trajectories agree far below any dtype's budget."""
    for ahi, alo, bhi, blo in zip(a.record.theta, a.record.theta_lo, b.record.theta, b.record.theta_lo):
        with np.errstate(invalid="ignore"):
            diff = np.abs((ahi - bhi) + (alo - blo))
        scale = np.maximum(np.abs(ahi), np.abs(bhi))
        finite = np.isfinite(ahi) & np.isfinite(bhi)
        if np.any((np.isfinite(ahi) != np.isfinite(bhi)) | (finite & (diff > SAME_TRAJECTORY_RTOL * scale))):
            return False
    return True


def _candidates(scenario: Scenario) -> list[Dialect]:
    """Every valid dialect over the scenario's relevant axes (the other axes at their defaults)."""
    found: dict[str, Dialect] = {}
    axes = scenario.relevant_axes
    for values in itertools.product(*(AXES[a] for a in axes)):
        try:
            d = scenario.project(Dialect(**dict(zip(axes, values))))
        except ValueError:  # e.g. epsilon "hat" with amsgrad_max "corrected": no defined update
            continue
        if d.sparse_rows == "lazy" and scenario.config.weight_decay:
            continue  # the reference defines no lazy rows with weight decay (SparseAdam has none)
        found.setdefault(d.key(axes), d)
    return list(found.values())


# -- one run, many candidates ------------------------------------------------------------------
@dataclass
class _Candidate:
    values: dict[str, Any]     # axis -> value (and WD_AXIS for the weight-decay probes)
    key: str
    reference: Golden
    source: str                # "golden" | "computed"
    budget_used: float = math.inf
    matched: bool = False


@dataclass
class _Probe:
    """One scenario run through the adapter and assessed against every candidate."""

    scenario: str
    axes: tuple[str, ...]      # the axes this probe decides
    status: str = "skipped"    # ran | skipped | error
    message: str = ""
    duration_s: float = 0.0
    candidates: list[_Candidate] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "axes": list(self.axes), "status": self.status, "message": self.message,
                "duration_s": round(self.duration_s, 3),
                "candidates": [{"dialect": c.key, "values": c.values, "budget_used": _finite(c.budget_used),
                                "matched": c.matched, "reference": c.source} for c in self.candidates]}


def _unsupported_reason(adapter, scenario: Scenario, dtype: str, device: str) -> str | None:
    reason = support(adapter, scenario, dtype, device)
    missing = sorted(scenario.features - set(adapter.features))
    if reason and missing:
        return f"needs feature {', '.join(missing)} ({scenario.name})"
    return reason


def _probe(adapter, scenario: Scenario, axes: tuple[str, ...], references: list[tuple[dict, Scenario, Dialect]],
           dtype: str, device: str, data_dir: Path, manifest: dict) -> _Probe:
    """Run ``scenario`` once; assess the run against each (values, reference scenario, dialect)."""
    probe = _Probe(scenario.name, axes)
    reason = _unsupported_reason(adapter, scenario, dtype, device)
    if reason:
        probe.message = reason
        return probe
    t0 = time.perf_counter()
    inputs, _ = _reference(scenario, _candidates(scenario)[0], data_dir, manifest)
    try:
        theta_run = drive(adapter, scenario, inputs.params0, inputs.grads, dtype, device).theta
    except Exception as exc:  # the adapter raised (or broke the contract): recorded, the other probes go on
        verdict, message = classify(exc)
        if verdict == "skipped":  # Unsupported: the adapter cannot run this probe
            probe.message = f"{adapter.name}: {message}"
        else:
            probe.status, probe.message = "error", message
        probe.duration_s = time.perf_counter() - t0
        return probe
    probe.status = "ran"
    for values, ref_scenario, dialect in references:
        golden, source = _reference(ref_scenario, dialect, data_dir, manifest)
        # every path class the adapter may follow; the trajectory decides (no mean-error check)
        a = judge_against(golden, dialect, theta_run, dtype, declared=getattr(adapter, "path_class", None))
        used = a.budget_used if a.budget_used is not None else math.inf
        if not a.passed and used <= 1:
            used = math.inf  # failed on the non-finite pattern or the step count, not on a budget
        key = ",".join(f"{k}={_fmt_raw(v)}" for k, v in values.items())
        probe.candidates.append(_Candidate(values, key, golden, source, used, used <= 1))
    probe.duration_s = time.perf_counter() - t0
    return probe


# -- verdicts ------------------------------------------------------------------------------------
def _verdict(axis: str, probes: list[_Probe], declared: Any = None) -> dict:
    """Combine the probes that decide ``axis`` into one verdict (see the module docstring)."""
    out = {"status": "not testable", "value": None, "values": [], "budget_used": [], "nearest": None,
           "declared": declared, "scenarios": [p.scenario for p in probes], "message": ""}
    errors = [p for p in probes if p.status == "error"]
    ran = [p for p in probes if p.status == "ran"]
    if not probes:
        out["message"] = "no scenario separates this axis"
        return out
    if errors:
        out["status"] = "error"
        out["message"] = "; ".join(f"{p.scenario}: {p.message.splitlines()[0]}" for p in errors)
        return out
    if not ran:
        out["message"] = "; ".join(dict.fromkeys(p.message for p in probes))  # once each, in order
        return out
    values = [v for v in _axis_values(axis) if all(any(c.values[axis] == v for c in p.candidates) for p in ran)]
    best: dict[Any, list[_Candidate]] = {}
    used: dict[Any, float] = {}
    for v in values:
        best[v] = [min((c for c in p.candidates if c.values[axis] == v), key=lambda c: c.budget_used) for p in ran]
        used[v] = max(c.budget_used for c in best[v])
    out["budget_used"] = [{"value": v, "budget_used": _finite(used[v])} for v in values]
    matches = [v for v in values if used[v] <= 1]
    skipped = dict.fromkeys(p.message for p in probes if p.status == "skipped")
    out["message"] = "; ".join(f"not run: {m}" for m in skipped)
    if not matches:
        out["status"] = "none"
        out["nearest"] = min(values, key=lambda v: used[v])
        return out
    same = all(_same_trajectory(best[matches[0]][i].reference, best[v][i].reference)
               for v in matches[1:] for i in range(len(ran)))
    out["status"] = "identified" if same else "ambiguous"
    out["values"] = matches
    out["value"] = matches[0] if same else None
    return out


def _axis_values(axis: str) -> tuple:
    return tuple(MEANING) if axis == WD_AXIS else AXES[axis]


# -- the whole fingerprint ---------------------------------------------------------------------------
def choose_dtype(adapter, preferred: str = "float64") -> str:
    """``preferred`` when the adapter supports it, else the widest it supports: float64, float32, then float16
    (11 significant bits) before bfloat16 (8), so that an adapter of 16-bit formats only (a Kahan or a
    stochastic-rounding optimizer) is still fingerprinted, at those formats' budgets."""
    if preferred in adapter.dtypes:
        return preferred
    return next((d for d in ("float64", "float32", "float16", "bfloat16") if d in adapter.dtypes), preferred)


def _declared(adapter) -> Dialect | None:
    try:
        return resolve_dialect(adapter.dialect)
    except (ValueError, TypeError):
        return None


def fingerprint(adapter, dtype: str = "float64", device: str = "cpu", *, fallback: bool = True,
                data_dir: Path = DATA_DIR, path_class: bool = True) -> dict:
    """Identify the dialect ``adapter`` follows, ignoring the one it declares.

    dtype: preferred; the adapter's widest of float64/float32 is used when it lacks it.
    fallback: when no axis at all is identified in a dtype other than float32 and some
    matched none of the known values, run again in float32 (if supported) and say so
    under ``fallback``: some frameworks hold hyperparameters in float32 even for float64
    tensors, which no float64 budget admits, while their dialect shows in float32.

    Returns a JSON-ready dict: ``axes`` (axis -> verdict), ``weight_decay``
    (feature -> verdict on the meaning applied), ``probes`` (every run and candidate),
    ``presets`` (the presets consistent with every identified axis), ``identified``
    (every testable axis and weight-decay feature identified, and at least one testable),
    ``fallback`` (None, or the first dtype's outcome and why it was left), ``path_class``
    (the arithmetic path class detected by float32 probes at the default betas; path_class=False
    leaves those runs out, None).
    """
    manifest = read_manifest(data_dir)
    dtype = choose_dtype(adapter, dtype)
    result = _fingerprint_in(adapter, dtype, device, data_dir, manifest)
    result["path_class"] = _path_class(adapter, device, data_dir, manifest) if path_class else None
    result["fallback"] = None
    verdicts = list(result["axes"].values()) + list(result["weight_decay"].values())
    nothing = not any(v["status"] == "identified" for v in verdicts)
    if fallback and nothing and dtype != "float32" and "float32" in adapter.dtypes \
            and any(v["status"] == "none" for v in verdicts):
        first = result
        result = {**_fingerprint_in(adapter, "float32", device, data_dir, manifest),
                  "path_class": result["path_class"]}
        result["fallback"] = {
            "from": dtype,
            "reason": f"in {dtype} no axis matched any known value within the {dtype} budget (every run is off "
                      "by far more than its rounding allows: the implementation may hold hyperparameters or "
                      "intermediates in a narrower dtype); the axes below come from float32 runs",
            "axes": {a: {k: v[k] for k in ("status", "nearest", "budget_used")} for a, v in first["axes"].items()},
        }
    return result


def _fingerprint_in(adapter, dtype: str, device: str, data_dir: Path, manifest: dict) -> dict:
    declared = _declared(adapter)
    probes: list[_Probe] = []
    for s in CATALOGUE:
        if s.separates:
            refs = [({a: getattr(d, a) for a in s.relevant_axes}, s, d) for d in _candidates(s)]
            probes.append(_probe(adapter, s, tuple(a for a, _ in s.separates), refs, dtype, device,
                                 data_dir, manifest))
    axes = {axis: _verdict(axis, [p for p in probes if axis in p.axes],
                           None if declared is None else getattr(declared, axis)) for axis in AXES}
    weight_decay = {}
    for feature, (name, asked) in WEIGHT_DECAY_PROBES.items():
        probe = _probe(adapter, get(name), (WD_AXIS,), _weight_decay_references(name), dtype, device,
                       data_dir, manifest)
        probes.append(probe)
        weight_decay[feature] = {"asked": asked, **_verdict(WD_AXIS, [probe], asked)}
    verdicts = list(axes.values()) + list(weight_decay.values())
    testable = [v for v in verdicts if v["status"] != "not testable"]
    identified = bool(testable) and all(v["status"] == "identified" for v in testable)
    known = {a: v["values"] for a, v in axes.items() if v["status"] == "identified"}
    presets = [name for name, p in PRESETS.items() if known and all(getattr(p, a) in vs for a, vs in known.items())]
    return {
        "adapter": adapter.name,
        "declared": None if declared is None else declared.to_dict(),
        "dtype": dtype,
        "device": device,
        "axes": axes,
        "weight_decay": weight_decay,
        "presets": presets,
        "identified": identified,
        "probes": [p.to_dict() for p in probes],
    }


#: the runs that tell arithmetic path classes apart: beta^t and the forms of 1 - beta matter at the default
#: betas, early (dense-default) and over 2000 steps with v- and eps-dominated updates (long-default-mixed)
PATH_PROBES = ("dense-default", "long-default-mixed")


def _path_class(adapter, device: str, data_dir: Path, manifest: dict) -> dict:
    """Which arithmetic path class the adapter follows (reference.paths), ignoring the one it declares.

    The probes run in float32 (where how scalars are rounded shows; the adapter's own widest dtype
    otherwise) in the adapter's declared dialect, and are judged against every class; the class
    named by the longest probe that passes is the detected one.
    """
    declared = getattr(adapter, "path_class", None)
    out = {"declared": None if declared is None else str(declared), "detected": None, "reference": None,
           "dtype": None, "probes": [], "consistent": None}
    dialect = _declared(adapter)
    if dialect is None:
        out["message"] = "the adapter declares no known dialect to run the probes in"
        return out
    dtype = "float32" if "float32" in adapter.dtypes else choose_dtype(adapter, "float64")
    out["dtype"] = dtype
    for name in PATH_PROBES:
        s = get(name)
        reason = _unsupported_reason(adapter, s, dtype, device)
        if reason:
            out["probes"].append({"scenario": name, "status": "skipped", "message": reason})
            continue
        golden = load_golden(s, dialect, data_dir, manifest)
        try:
            driven = drive(adapter, s, golden.params0, golden.grads, dtype, device)
        except Exception as exc:  # recorded, the other probe goes on
            out["probes"].append({"scenario": name, "status": "error", "message": classify(exc)[1]})
            continue
        a = judge_against(golden, dialect, driven.theta, dtype, bias_check=s.bias_check)
        out["probes"].append({"scenario": name, "status": "passed" if a.passed else "failed",
                              "path_class": a.path_class, "reference": a.reference,
                              "budget_used": _finite(a.budget_used if a.budget_used is not None else math.inf)})
        if a.passed:
            out["detected"], out["reference"] = a.path_class, a.reference
    if out["detected"] is not None and declared is not None:
        allowed = parse_path_class(declared)
        detected = dict(part.split("=") for part in out["detected"].split(","))
        out["consistent"] = all(detected[axis] in allowed[axis] for axis in allowed)
    return out


def _weight_decay_references(name: str) -> list[tuple[dict, Scenario, Dialect]]:
    """Candidates for a weight-decay probe: each meaning's scenario (same inputs) in every dialect."""
    s = get(name)
    refs = []
    for other_name, meaning in WEIGHT_DECAY_PROBES.values():
        other = get(other_name)
        if (other.inputs, other.shapes, other.steps) != (s.inputs, s.shapes, s.steps):
            raise RuntimeError(f"scenarios {name} and {other_name} must share their inputs to tell the "
                               "weight-decay meanings apart; fix golden/scenarios.py")
        refs += [({WD_AXIS: meaning, **{a: getattr(d, a) for a in other.relevant_axes}}, other, d)
                 for d in _candidates(other)]
    return refs


# -- text ------------------------------------------------------------------------------------------
def _fmt_raw(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def _fmt(value: Any) -> str:
    """An axis value for people: on/off, "coupled L2"."""
    return MEANING.get(value, _fmt_raw(value))


def _num(x: float | None) -> str:
    """0.31, 12, 4.1e3; "inf" for a non-finite run."""
    if x is None or not math.isfinite(x):
        return "inf"
    if x == 0 or 1e-2 <= abs(x) < 1e3:
        return f"{x:.2g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _describe(v: dict) -> str:
    """One verdict as text: ``hat (budget used 0.31; standard: 4.1e3)``."""
    if v["status"] in ("not testable", "error"):
        return f"{v['status']}: {v['message']}"
    used = {_fmt(e["value"]): e["budget_used"] for e in v["budget_used"]}
    if v["status"] == "none":
        near = _fmt(v["nearest"])
        others = "; ".join(f"{k}: {_num(x)}" for k, x in used.items() if k != near)
        head = f"none of the known values (nearest: {near}, budget used {_num(used[near])}"
        return head + (f"; {others})" if others else ")")
    names = [_fmt(x) for x in v["values"]]
    others = "; ".join(f"{k}: {_num(x)}" for k, x in used.items() if k not in names)
    mine = ", ".join(_num(used[n]) for n in names)
    if v["status"] == "ambiguous":
        head = f"ambiguous: {' and '.join(names)} all match (budget used {mine}"
    elif len(names) > 1:
        head = f"{' or '.join(names)}, the same exact trajectory here (budget used {mine}"
    else:
        head = f"{names[0]} (budget used {mine}"
    text = head + (f"; {others})" if others else ")")
    if v["declared"] is not None and v["declared"] not in v["values"]:
        text += f"  [declared: {_fmt(v['declared'])}]"
    return text


def render(result: dict) -> str:
    """The human-readable fingerprint."""
    declared = result["declared"]
    lines = [f"fingerprint of {result['adapter']} in {result['dtype']} on {result['device']} "
             f"(its declared dialect is ignored; shown only where it differs)"]
    if result.get("fallback"):
        lines.append(f"  note: {result['fallback']['reason']}")
    width = max(len(a) for a in list(result["axes"]) + list(result["weight_decay"]))
    for axis, v in result["axes"].items():
        lines.append(f"  {axis:{width}s}  {_describe(v)}")
    for feature, v in result["weight_decay"].items():
        text = _describe(v)
        if v["status"] in ("identified", "ambiguous", "none"):
            text = f"asked for {MEANING[v['asked']]}, applies " + text
        lines.append(f"  {feature:{width}s}  {text}")
    ran = [p for p in result["probes"] if p["status"] == "ran"]
    computed = sum(c["reference"] == "computed" for p in ran for c in p["candidates"])
    pc = result.get("path_class")
    if pc is None:
        pass
    elif pc.get("detected"):
        note = "" if pc.get("consistent") in (None, True) else "  (NOT the declared class)"
        lines.append(f"  {'path class':{width}s}  {pc['detected']} ({pc['reference']}), in {pc['dtype']}; "
                     f"declared {pc['declared'] or 'nothing'}{note}")
    else:
        lines.append(f"  {'path class':{width}s}  not identified: " + "; ".join(
            f"{p['scenario']} {p['status']}" for p in pc.get("probes", [])) + (pc.get("message") or ""))
    lines.append(f"presets consistent with every identified axis: {', '.join(result['presets']) or 'none'}")
    lines.append(f"{len(ran)} scenario runs, each assessed against every candidate dialect "
                 f"({computed} candidate trajectories computed at {REFERENCE_DPS} digits, the rest from goldens)")
    if declared is None:
        lines.append("(the adapter declares no known dialect)")
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------------
def fingerprint_command(args: argparse.Namespace) -> int:
    """``adamconf fingerprint SPEC... [--json] [--dtype D] [--device D] [--results FP.json]`` (declared in
    adamconf/cli.py): 0, 1 or 2.

    Each spec is fingerprinted in turn and printed (``--json``: one JSON object per spec, a list
    for several). ``--results FP.json`` also writes the fingerprints file that ``adamconf report
    RUN.json FP.json`` reads (``adamconf.reports.fingerprints``). Exit status: 2 for a usage error of
    any spec (nothing runs), else 1 when some adapter is not identified, else 0.
    """
    from adamconf.adapters.registry import UnknownAdapter, load_adapter

    specs = [args.spec, *(getattr(args, "more_specs", None) or [])]
    results_path = getattr(args, "results", None)
    if results_path:
        from adamconf.reports.results import unwritable

        why = unwritable(results_path)
        if why:
            print(f"adamconf fingerprint: --results {results_path}: {why}", file=sys.stderr)
            return 2
    adapters = []
    for spec in specs:
        try:
            adapter = load_adapter(spec)
        except (UnknownAdapter, TypeError) as exc:
            print(f"adamconf fingerprint: {exc}", file=sys.stderr)
            return 2
        if args.dtype is not None and args.dtype not in adapter.dtypes:
            print(f"adamconf fingerprint: {adapter.name} does not support --dtype {args.dtype} (it declares "
                  f"{', '.join(adapter.dtypes)}); pick one of those or leave --dtype out", file=sys.stderr)
            return 2
        if args.device not in adapter.devices:
            print(f"adamconf fingerprint: {adapter.name} does not run on --device {args.device} (it declares "
                  f"{', '.join(adapter.devices)})", file=sys.stderr)
            return 2
        reason = availability(adapter, args.device)
        if reason:
            print(f"adamconf fingerprint: {adapter.name} cannot run here: {reason}", file=sys.stderr)
            return 2
        adapters.append((spec, adapter))
    results, entries = [], {}
    for spec, adapter in adapters:
        t0 = time.perf_counter()
        try:
            result = fingerprint(adapter, args.dtype or "float64", args.device, fallback=args.dtype is None)
        except GoldenError as exc:
            print(f"adamconf fingerprint: {exc}", file=sys.stderr)
            return 2
        results.append(result)
        if results_path:
            from adamconf.reports.fingerprints import entry_from_result

            declared_class = getattr(adapter, "path_class", None)
            entries[adapter.name] = entry_from_result(
                result, spec=spec, claimed=str(adapter.dialect), duration_s=time.perf_counter() - t0,
                declared_path_class=None if declared_class is None else str(declared_class))
        if not args.json:
            print(render(result) + ("\n" if len(adapters) > 1 else ""))
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=1, allow_nan=False))
    if results_path:
        from adamconf.reports.fingerprints import new_fingerprints, write_fingerprints
        from adamconf.reports.provenance import collect_provenance

        written = write_fingerprints(new_fingerprints(entries, collect_provenance(), label=args.label), results_path)
        print(f"adamconf fingerprint: wrote {written} ({len(entries)} adapter(s))", file=sys.stderr)
    return 0 if all(r["identified"] for r in results) else 1
