"""The results file of one run: build, validate, load (and migrate), merge, write.

A results document is plain JSON (``kind: "adamconf-results"``), versioned by
``schema_version`` and described field by field in docs/results-schema.md; the
machine-readable schema is ``results.schema.json`` beside this module (JSON
Schema draft 2020-12). What JSON Schema cannot say (case ids unique, summary
equal to the counts, ``budget_used`` the maximum of the checks, series of equal
length) is checked here by ``_check_consistency``, with or without jsonschema.

Several runs (a CPU runner and a GPU runner) are combined by ``merge`` into a
*view* for the report; every case of the view names its run, so the same case
id measured on two machines stays two rows.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import operator
import os
import re
import tempfile
import uuid
import warnings
from collections import Counter
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .record import MAX_SERIES_POINTS, CaseRecord, case_id, downsample_series, rerun_command

__all__ = [
    "KIND",
    "MAX_SERIES_POINTS",
    "SCHEMA_VERSION",
    "VERDICTS",
    "CaseRecord",
    "ResultsError",
    "case_id",
    "downsample_series",
    "load_results",
    "merge",
    "new_results",
    "rerun_command",
    "schema",
    "summarize",
    "unwritable",
    "validate",
    "write_results",
]

SCHEMA_VERSION = 3
KIND = "adamconf-results"
#: Every verdict a case can have, in the order reports list them.
VERDICTS = ("passed", "failed", "xfailed", "xpassed", "skipped", "error", "crashed", "timeout")



def _v1_to_v2(doc: dict) -> dict:
    """Version 2 added ``incomplete``: a version-1 run was never marked, so it ran to its end."""
    return {**doc, "schema_version": 2, "incomplete": None}


def _v2_to_v3(doc: dict) -> dict:
    """Version 3 added ``fingerprints`` (``adamconf run --fingerprint``): a version-2 run took none."""
    return {**doc, "schema_version": 3, "fingerprints": {}}


#: schema_version -> function turning a document of that version into the next one
_MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2, 2: _v2_to_v3}


class ResultsError(ValueError):
    """A results document (or file) that cannot be used; the message says why and what to do."""


# --- building ---------------------------------------------------------------


def new_results(cases: Iterable["CaseRecord | Mapping[str, Any]"], provenance: Mapping[str, Any], *,
                label: str | None = None, adapters: Mapping[str, Mapping] | None = None,
                created: datetime | None = None, incomplete: str | None = None,
                fingerprints: Mapping[str, Mapping] | None = None) -> dict:
    """A complete, validated results document for one run.

    ``cases`` are ``CaseRecord``s (adamconf.reports.record), or dicts with fields of
    docs/results-schema.md, read as records (``CaseRecord.from_dict``). Each is
    written as ``CaseRecord.to_dict()`` writes it: optional fields get their
    defaults (``id`` from the names, ``rerun`` from the spec or the name,
    ``budget_used`` = the largest check), non-finite numbers become ``null`` (JSON
    has no NaN; the message says what happened), and a ``series`` longer than
    ``MAX_SERIES_POINTS`` is downsampled. ``provenance`` comes from
    ``adamconf.reports.provenance.collect_provenance``; ``label`` names the run in
    merged reports (the hostname when omitted); ``adapters`` maps adapter names
    to ``adamconf.adapters.contract.describe(adapter)``; ``incomplete`` says why the run ended
    before its last case (an interrupt), None for a run that ran to its end; ``fingerprints``
    maps adapter names to their fingerprint entries (``adamconf.reports.fingerprints``), taken
    during the run (``adamconf run --fingerprint``).
    """
    normalized = [_normalize_case(c) for c in cases]
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "created": _iso_utc(created or datetime.now(timezone.utc)),
        "run_id": uuid.uuid4().hex,
        "label": label,
        "incomplete": incomplete,
        "provenance": dict(provenance),
        "adapters": {name: dict(info) for name, info in (adapters or {}).items()},
        "fingerprints": {name: dict(entry) for name, entry in (fingerprints or {}).items()},
        "cases": normalized,
        "summary": summarize(normalized),
    }
    validate(doc)
    return doc


def summarize(cases: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Counts of cases by verdict, every verdict present (zeros included)."""
    counts = Counter(c["verdict"] for c in cases)
    return {v: counts.get(v, 0) for v in VERDICTS}


def _normalize_case(case: "CaseRecord | Mapping[str, Any]") -> dict:
    """The results form of a case: ``CaseRecord.to_dict()``, for a record or a dict of some of its fields."""
    if isinstance(case, CaseRecord):
        return case.to_dict()
    try:
        out = CaseRecord.from_dict(case).to_dict()
    except ValueError as exc:
        raise ResultsError(f"invalid case: {exc}") from None
    if "id" in case:
        out["id"] = case["id"]  # as given: validate() names one that does not match the names
    return out


def _iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ResultsError(f"created={moment!r} has no time zone; pass an aware datetime (timezone.utc)")
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- validating -------------------------------------------------------------


@lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON Schema (draft 2020-12) of a results document, from the package data."""
    text = resources.files("adamconf.reports").joinpath("results.schema.json").read_text("utf-8")
    return json.loads(text)


def validate(doc: Any) -> None:
    """Raise ``ResultsError`` naming the path and the value of the first problems in ``doc``.

    Uses jsonschema when it is installed (``pip install 'adamconf[dev]'``); without
    it, checks the structure only (required fields, types, verdicts) and warns
    that it did so. The consistency rules of ``_check_consistency`` run either way.
    """
    try:
        import jsonschema  # optional: only the full check needs it
    except ImportError:
        warnings.warn("jsonschema is not installed: the results document was checked for its structure "
                      "only; pip install jsonschema (or 'adamconf[dev]') for the full schema check",
                      stacklevel=2)
        problems = _structural_problems(doc)
    else:
        # The series (up to 200 numbers per check per case) are checked by hand, as the schema says:
        # through jsonschema they took 20 ms a case, minutes for a run of 10,000 cases.
        stripped, series_problems = _without_series(doc)
        # The cases that a check by hand accepts (every one of a good run) skip jsonschema, which takes
        # a millisecond a case; the hand check accepts nothing the schema refuses (_case_surely_valid),
        # and whatever it does not accept goes through jsonschema, which names the problems.
        stripped, _ = _without_valid_cases(stripped)
        validator = jsonschema.Draft202012Validator(schema())
        errors = sorted(validator.iter_errors(stripped),
                        key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path])
        problems = [_schema_problem(e) for e in errors] + series_problems
    if not problems and isinstance(doc, dict) and doc.get("fingerprints"):
        from adamconf.reports.fingerprints import validate_entries

        problems = validate_entries(doc["fingerprints"])
    if not problems:
        problems = _check_consistency(doc)
    if problems:
        shown = "\n  ".join(problems[:8])
        more = f"\n  ... and {len(problems) - 8} more" if len(problems) > 8 else ""
        raise ResultsError(f"invalid adamconf results document ({len(problems)} problem(s)):\n  {shown}{more}")


_SERIES_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_NUMBER = (int, float)  # exact types: a bool is not a number here


def _without_series(doc: Any) -> tuple[Any, list[str]]:
    """``doc`` with each case's ``series`` object set to null (a shallow copy), and that series' problems.

    The checks are those of the schema's ``series`` (``results.schema.json``): ``step`` required,
    1 to ``MAX_SERIES_POINTS`` integers >= 0; every other key a lowercase name with at most as many
    numbers >= 0 or nulls. A series that is not an object is left in place for the schema to name.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        return doc, []
    problems: list[str] = []
    cases = []
    for i, case in enumerate(doc["cases"]):
        series = case.get("series") if isinstance(case, dict) else None
        if not isinstance(series, dict):
            cases.append(case)
            continue
        cases.append({**case, "series": None})
        where = f"$.cases[{i}].series"
        if "step" not in series:
            problems.append(f"{where}: 'step' is a required property")
        for name, values in series.items():
            if not (isinstance(name, str) and _SERIES_NAME.match(name)):
                problems.append(f"{where}: {name!r} does not match '^[a-z][a-z0-9_]*$'")
                continue
            if not isinstance(values, list):
                problems.append(f"{where}.{name}: {_short(values)}: is not of type 'array'")
                continue
            if len(values) > MAX_SERIES_POINTS or (name == "step" and not values):
                problems.append(f"{where}.{name}: {len(values)} values: a series has 1 to {MAX_SERIES_POINTS}")
            if name == "step":
                if not values or (set(map(type, values)) == _INT and min(values) >= 0):
                    continue
            elif _fractions_ok(values):
                continue  # the common case, fast; the loop below names the first bad value
            for j, v in enumerate(values):
                if name == "step":
                    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
                    kind = "an integer >= 0"
                else:
                    ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0)
                    kind = "a number >= 0 or null"
                if not ok:
                    problems.append(f"{where}.{name}[{j}]: {v!r} is not {kind}")
                    break
    return {**doc, "cases": cases}, problems


_CASE_REQUIRED = ("id", "adapter", "scenario", "family", "dtype", "device", "dialect", "verdict", "budget_used",
                  "checks", "first_failing_step", "message", "expectation", "rerun", "duration_s", "series")
_CASE_OPTIONAL = ("path_class", "reference", "raw_checks")
_CASE_FIELDS = frozenset(_CASE_REQUIRED + _CASE_OPTIONAL)
_SCHEMA_DTYPES = frozenset(("float16", "bfloat16", "float32", "float64"))
_VERDICT_SET = frozenset(VERDICTS)
_DEVICE = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _fraction(v: Any) -> bool:
    return v is None or (type(v) in _NUMBER and v >= 0)


def _checks_ok(checks: Any) -> bool:
    return type(checks) is dict and all(type(k) is str and _SERIES_NAME.match(k) and _fraction(v)
                                        for k, v in checks.items())


def _case_surely_valid(case: Any) -> bool:
    """True only for a case (its series already set aside) that ``results.schema.json``'s ``case`` accepts.

    Stricter than the schema where that is simpler (exact types: ``3.0`` is not taken for an integer
    here, a series must be null); a case it does not accept is checked by jsonschema.
    """
    if type(case) is not dict:
        return False
    for key in case:
        if key not in _CASE_FIELDS and not (type(key) is str and key.startswith("x_")):
            return False
    for key in _CASE_REQUIRED:
        if key not in case:
            return False
    for key in ("id", "adapter", "scenario", "family"):
        value = case[key]
        if type(value) is not str or not value:
            return False
    device, step, expectation = case["device"], case["first_failing_step"], case["expectation"]
    return (case["dtype"] in _SCHEMA_DTYPES and type(device) is str and _DEVICE.match(device) is not None
            and (case["dialect"] is None or type(case["dialect"]) is str)
            and case["verdict"] in _VERDICT_SET and _fraction(case["budget_used"]) and _checks_ok(case["checks"])
            and (step is None or (type(step) is int and step >= 0))
            and type(case["message"]) is str and type(case["rerun"]) is str
            and (expectation is None or (type(expectation) is dict and set(expectation) == {"reason", "link"}
                                         and type(expectation["reason"]) is str and expectation["reason"] != ""
                                         and (expectation["link"] is None or type(expectation["link"]) is str)))
            and _fraction(case["duration_s"]) and case["series"] is None
            and all(case.get(k) is None or type(case[k]) is str for k in ("path_class", "reference"))
            and ("raw_checks" not in case or _checks_ok(case["raw_checks"])))


def _without_valid_cases(doc: Any) -> tuple[Any, int]:
    """``doc`` without its cases when ``_case_surely_valid`` accepts every one; (doc, how many were left out).

    When some case is not accepted, the document goes to jsonschema whole, so that the paths of
    its problems name the right indexes (an invalid document of 10,000 cases takes seconds).
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        return doc, 0
    if all(_case_surely_valid(c) for c in doc["cases"]):
        return {**doc, "cases": []}, len(doc["cases"])
    return doc, 0


_INT = {int}
_FRACTION_TYPES = {int, float}
_FRACTION_OR_NONE_TYPES = {int, float, type(None)}


def _fractions_ok(values: list) -> bool:
    """Every value a number >= 0 (not a bool, not NaN) or None: in C loops (min, sum), not per value in Python."""
    types = set(map(type, values))
    if not types <= _FRACTION_OR_NONE_TYPES:
        return False
    if not types <= _FRACTION_TYPES:
        values = [v for v in values if v is not None]
    if not values:
        return True
    total = sum(values)
    return min(values) >= 0 and total == total  # NaN makes the sum NaN


def _schema_problem(error) -> str:
    """``$.cases[3].verdict: 'pass' is not one of [...]``: the path, the value, what is wrong."""
    path = _json_path(error.absolute_path)
    if repr(error.instance) in error.message:  # most jsonschema messages start with the value
        return f"{path}: {_clip(error.message, 240)}"
    return f"{path} = {_short(error.instance)}: {_clip(error.message, 200)}"


def _json_path(parts: Iterable) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


def _short(value: Any) -> str:
    return _clip(json.dumps(value, default=repr), 80)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _structural_problems(doc: Any) -> list[str]:
    """The fallback without jsonschema: the fields everything else relies on."""
    if not isinstance(doc, dict):
        return [f"$: {_short(doc)}: a results document is a JSON object"]
    problems = [f"$.{k}: missing" for k in ("schema_version", "kind", "created", "run_id",
                                             "provenance", "cases", "summary") if k not in doc]
    if problems:
        return problems
    if not isinstance(doc["cases"], list):
        return [f"$.cases: {_short(doc['cases'])}: must be a list"]
    for i, case in enumerate(doc["cases"]):
        if not isinstance(case, dict):
            problems.append(f"$.cases[{i}]: {_short(case)}: must be an object")
            continue
        for key in ("id", "adapter", "scenario", "family", "dtype", "device", "verdict", "rerun", "message"):
            if not isinstance(case.get(key), str):
                problems.append(f"$.cases[{i}].{key}: {_short(case.get(key))}: must be a string")
        if case.get("verdict") not in VERDICTS:
            problems.append(f"$.cases[{i}].verdict: {_short(case.get('verdict'))}: must be one of {list(VERDICTS)}")
        budget = case.get("budget_used")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))):
            problems.append(f"$.cases[{i}].budget_used: {_short(budget)}: must be a number or null")
    return problems


def _check_consistency(doc: dict) -> list[str]:
    """Rules across fields that JSON Schema cannot express."""
    problems = []
    seen: dict[str, int] = {}
    for i, case in enumerate(doc["cases"]):
        where = f"$.cases[{i}]"
        expected_id = case_id(case["adapter"], case["scenario"], case["dtype"], case["device"])
        if case["id"] != expected_id:
            problems.append(f"{where}.id: {_short(case['id'])}: must be {expected_id!r} "
                            "(adapter::scenario::dtype::device)")
        if case["id"] in seen:
            problems.append(f"{where}.id: {_short(case['id'])}: repeats $.cases[{seen[case['id']]}]; "
                            "a run has each case once")
        seen.setdefault(case["id"], i)
        measured = [v for v in (case.get("checks") or {}).values() if v is not None]
        budget = case.get("budget_used")
        if measured and (budget is None or not math.isclose(budget, max(measured), rel_tol=1e-9)):
            problems.append(f"{where}.budget_used: {_short(budget)}: must be the largest check, {max(measured)!r}")
        if case["verdict"] == "passed" and budget is not None and budget > 1:
            problems.append(f"{where}.budget_used: {_short(budget)}: a passed case is within its budget (<= 1)")
        series = case.get("series")
        if series:
            steps = series["step"]
            if not all(map(operator.lt, steps, steps[1:])):
                problems.append(f"{where}.series.step: steps must increase")
            for name, values in series.items():
                if len(values) != len(steps):
                    problems.append(f"{where}.series.{name}: {len(values)} values for {len(steps)} steps")
    counts = summarize(doc["cases"])
    problems += [f"$.summary.{verdict}: {doc['summary'][verdict]}: must be {count}, the number of {verdict} cases"
                 for verdict, count in counts.items() if doc["summary"][verdict] != count]
    return problems


# --- loading ----------------------------------------------------------------


def load_results(path: str | os.PathLike, *, _doc: Any = None) -> dict:
    """Read, migrate to the current ``schema_version`` and validate one results file.

    Refuses (``ResultsError``) a file that is not JSON, is not an adamconf results
    file, or was written by a newer adamconf (an unknown future schema_version).
    ``_doc``: the file's JSON, already read (``fingerprints.load_report_input``).
    """
    path = Path(path)
    doc = _read_json(path) if _doc is None else _doc
    try:
        doc = _migrate(doc)
        validate(doc)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    return doc


def _read_json(path: Path) -> Any:
    """The JSON of a results (or fingerprints) file, NaN and Infinity refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file; `adamconf run` writes one (see --results)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read it as UTF-8 text: {exc}") from None
    try:
        with _no_gc():  # millions of numbers: the collector would walk them again and again
            doc = json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc}); is it an adamconf results file?") from None
    return doc


@contextlib.contextmanager
def _no_gc():
    """The cyclic garbage collector paused: building millions of acyclic objects (a parsed results
    file, a page of 10,000 cases) triggers collections that walk all of them, a fifth of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number (results files hold finite numbers or null)")


def check_schema_version(doc: dict, newest: int, what: str = "written with") -> int:
    """The document's ``schema_version``: an integer >= 1 and at most ``newest``, else a ResultsError that
    says to upgrade (results files, fingerprints files)."""
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ResultsError(f"schema_version={version!r} is not a valid version (an integer >= 1)")
    if version > newest:
        raise ResultsError(f"{what} schema_version {version}, newer than this adamconf reads "
                           f"({newest}); upgrade adamconf (pip install -U adamconf) to read it")
    return version


def _migrate(doc: Any) -> dict:
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        raise ResultsError(f"not an adamconf results file (kind={kind!r}, expected {KIND!r}); "
                           "pass the JSON that `adamconf run` writes")
    version = check_schema_version(doc, SCHEMA_VERSION)
    while version < SCHEMA_VERSION:
        if version not in _MIGRATIONS:
            raise ResultsError(f"schema_version {version} cannot be migrated to {SCHEMA_VERSION}; "
                               "rerun `adamconf run` to write a current file")
        doc = _MIGRATIONS[version](doc)
        version = doc["schema_version"]
    return doc


# --- merging ----------------------------------------------------------------


def merge(docs: Sequence[Mapping[str, Any]], *, validated: bool = False) -> dict:
    """One view of several runs (e.g. a CPU runner and a GPU runner) for the report.

    Returns ``{"runs": [...], "cases": [...], "summary": {...}}``: each run is
    ``{"key", "label", "run_id", "incomplete", "created", "provenance", "adapters", "fingerprints", "summary"}``
    with a ``key`` unique in the view (its label, else its hostname; the
    creation time, then a number, are added where two runs would share one);
    each case is a copy of the run's case with ``"run": key``, so ``(run, id)``
    identifies a case of the view. The same run given twice is refused.
    ``validated=True``: the documents were validated already (``load_results``,
    ``new_results``); only their structure is checked again (the full check of a
    run of 10,000 cases takes seconds).
    """
    if not docs:
        raise ResultsError("nothing to merge: pass at least one results document")
    runs, cases, seen_ids = [], [], {}
    keys = _run_keys(docs)
    for index, (doc, key) in enumerate(zip(docs, keys)):
        if validated:
            problems = _structural_problems(doc)
            if problems:
                raise ResultsError(f"invalid adamconf results document: {problems[0]}")
        else:
            validate(doc)
        if doc["run_id"] in seen_ids:
            raise ResultsError(f"runs {seen_ids[doc['run_id']] + 1} and {index + 1} are the same run "
                               f"(run_id {doc['run_id']}); pass each results file once")
        seen_ids[doc["run_id"]] = index
        runs.append({"key": key, "label": doc.get("label"), "run_id": doc["run_id"], "incomplete": doc.get("incomplete"),
                     "created": doc["created"], "provenance": doc["provenance"],
                     "adapters": doc.get("adapters", {}), "fingerprints": doc.get("fingerprints") or {},
                     "summary": doc["summary"]})
        cases.extend({**case, "run": key} for case in doc["cases"])
    return {"runs": runs, "cases": cases, "summary": summarize(cases)}


def _run_keys(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    base = [d.get("label") or d.get("provenance", {}).get("hostname") or "run" for d in docs]
    counts = Counter(base)
    # runs of one machine are told apart by what they ran (their adapters), then by when
    keys = [b if counts[b] == 1 else f"{b}: {_adapters_named(d)}" for b, d in zip(base, docs)]
    counts = Counter(keys)
    keys = [k if counts[k] == 1 else f"{k} ({d.get('created', '?')})" for k, d in zip(keys, docs)]
    counts = Counter(keys)
    numbered: Counter = Counter()
    out = []
    for key in keys:
        if counts[key] > 1:
            numbered[key] += 1
            key = f"{key} #{numbered[key]}"
        out.append(key)
    return out


def _adapters_named(doc: Mapping[str, Any]) -> str:
    """The adapters of a run's cases, for its key: the first two and how many more."""
    names = list(dict.fromkeys(c.get("adapter", "?") for c in doc.get("cases", [])))
    if not names:
        return "no case"
    return ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")


# --- writing ----------------------------------------------------------------


def write_results(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Validate ``doc`` and write it to ``path`` atomically (a reader never sees half a file)."""
    validate(doc)
    return write_text_atomic(path, dumps(doc))


_SERIES_MARK = re.compile(r'"\\u0000series (\d+)"')


def dumps(doc: Mapping[str, Any]) -> str:
    """The text of a results file: indented, except each case's ``series``, which is one line per check
    (200 numbers a line rather than 200 lines: a 10,000-case file is half the size and reads faster)."""
    series: list[str] = []

    def mark(case):
        if not case.get("series"):
            return case
        series.append("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v, allow_nan=False, separators=(',', ':'))}"
                                      for k, v in case["series"].items()) + "}")
        return {**case, "series": f"\0series {len(series) - 1}"}

    body = {**doc, "cases": [mark(c) for c in doc.get("cases", [])]}
    text = json.dumps(body, indent=1, allow_nan=False, ensure_ascii=False)
    return _SERIES_MARK.sub(lambda m: series[int(m.group(1))], text) + "\n"


def unwritable(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be written by ``write_text_atomic`` (None: it can), without writing anything."""
    path = Path(path)
    if path.is_dir():
        return "is a directory"
    parent = path.parent
    while not parent.exists():  # write_text_atomic makes the missing folders
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the directory {parent} is not writable"
    return None


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600); a report is for sharing
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
