"""Fingerprints in files: which dialect each adapter follows, as measured, for the report.

``adamconf fingerprint SPEC... --results FP.json`` writes a *fingerprints file*
(``kind: "adamconf-fingerprints"``, ``schema_version`` 1, schema
``fingerprints.schema.json`` beside this module, docs/fingerprint.md); ``adamconf
run --fingerprint`` puts the same entries into its results file, under
``fingerprints`` (results schema 3). ``adamconf report RUN.json FP.json`` reads
both kinds (``load_report_input``) and shows, per implementation and axis, the
claimed value beside the detected one.

An entry is ``entry_from_result(suites.fingerprint.fingerprint(adapter), ...)``:
the result without the per-candidate lists of its probes (the verdicts keep the
budget used by each value of an axis: the evidence), with the spec, the claimed
dialect and the time it took; an adapter that could not be fingerprinted has an
entry too (``status`` ``unavailable`` or ``error``, and the message).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["KIND", "SCHEMA_VERSION", "entry_from_result", "failed_entry", "fingerprint_adapters",
           "load_fingerprints", "load_report_input", "new_fingerprints", "schema", "validate",
           "validate_entries", "write_fingerprints"]

KIND = "adamconf-fingerprints"
SCHEMA_VERSION = 1


def entry_from_result(result: Mapping[str, Any], *, spec: str | None, claimed: str | None,
                      declared_path_class: str | None, duration_s: float | None) -> dict:
    """The file's entry for a result of ``adamconf.suites.fingerprint.fingerprint``."""
    return {
        "adapter": result["adapter"],
        "spec": spec,
        "status": "done",
        "message": "",
        "claimed": claimed,
        "declared": result["declared"],
        "declared_path_class": declared_path_class,
        "dtype": result["dtype"],
        "device": result["device"],
        "axes": result["axes"],
        "weight_decay": result["weight_decay"],
        "presets": list(result["presets"]),
        "identified": bool(result["identified"]),
        "fallback": result["fallback"],
        "path_class": result.get("path_class"),
        "probes": [{k: p[k] for k in ("scenario", "axes", "status", "message", "duration_s")}
                   for p in result["probes"]],
        "duration_s": None if duration_s is None else round(duration_s, 3),
    }


def failed_entry(name: str, *, spec: str | None, status: str, message: str, claimed: str | None = None,
                 device: str | None = None, duration_s: float | None = None) -> dict:
    """The entry of an adapter that could not be fingerprinted (``status``: ``unavailable`` or ``error``)."""
    return {"adapter": name, "spec": spec, "status": status, "message": message, "claimed": claimed,
            "declared": None, "declared_path_class": None, "dtype": None, "device": device, "axes": {},
            "weight_decay": {}, "presets": [], "identified": False, "fallback": None, "path_class": None,
            "probes": [], "duration_s": None if duration_s is None else round(duration_s, 3)}


def fingerprint_adapters(adapters: Sequence[tuple[str | None, Any]], *, device: str = "cpu",
                         dtype: str | None = None, log=None) -> dict[str, dict]:
    """``{adapter name: entry}`` for each (spec, adapter): the fingerprint, timed, or why there is none.

    An adapter that raises out of the fingerprint (beyond what the probes record) gets an
    ``error`` entry; one that cannot run here (its ``available()``, its devices) ``unavailable``.
    """
    import time

    from adamconf.adapters.contract import availability
    from adamconf.golden.store import GoldenError
    from adamconf.suites.fingerprint import fingerprint

    out: dict[str, dict] = {}
    for spec, adapter in adapters:
        claimed = str(getattr(adapter, "dialect", None)) if getattr(adapter, "dialect", None) else None
        declared_class = getattr(adapter, "path_class", None)
        declared_class = None if declared_class is None else str(declared_class)
        reason = (f"does not run on {device} (it declares {', '.join(adapter.devices)})"
                  if device not in adapter.devices else availability(adapter, device))
        if reason:
            out[adapter.name] = failed_entry(adapter.name, spec=spec, status="unavailable", message=reason,
                                             claimed=claimed, device=device)
            continue
        t0 = time.perf_counter()
        try:
            result = fingerprint(adapter, dtype or "float64", device, fallback=dtype is None)
        except GoldenError:
            raise  # the store is broken: nothing can be fingerprinted; the caller says so
        except Exception as exc:  # noqa: BLE001 - recorded; the other adapters go on
            out[adapter.name] = failed_entry(adapter.name, spec=spec, status="error",
                                             message=f"{type(exc).__name__}: {exc}", claimed=claimed,
                                             device=device, duration_s=time.perf_counter() - t0)
            continue
        out[adapter.name] = entry_from_result(result, spec=spec, claimed=claimed,
                                              declared_path_class=declared_class,
                                              duration_s=time.perf_counter() - t0)
        if log is not None:
            log(f"fingerprint of {adapter.name}: {time.perf_counter() - t0:.1f} s")
    return out


def new_fingerprints(entries: Mapping[str, Mapping[str, Any]], provenance: Mapping[str, Any], *,
                     label: str | None = None, created: datetime | None = None) -> dict:
    """A validated fingerprints document."""
    from adamconf.reports.results import _iso_utc

    doc = {"schema_version": SCHEMA_VERSION, "kind": KIND,
           "created": _iso_utc(created or datetime.now(timezone.utc)), "run_id": uuid.uuid4().hex,
           "label": label, "provenance": dict(provenance), "fingerprints": {k: dict(v) for k, v in entries.items()}}
    validate(doc)
    return doc


@lru_cache(maxsize=1)
def schema() -> dict:
    text = resources.files("adamconf.reports").joinpath("fingerprints.schema.json").read_text("utf-8")
    return json.loads(text)


def _problems(instance: Any, sub_schema: dict, prefix: str) -> list[str]:
    from adamconf.reports.results import _json_path, _short

    try:
        import jsonschema
    except ImportError:  # the structure the report relies on
        if not isinstance(instance, dict):
            return [f"{prefix}: {_short(instance)}: must be an object"]
        return []
    validator = jsonschema.Draft202012Validator(sub_schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{prefix}{_json_path(e.absolute_path)[1:]}: {e.message[:240]}" for e in errors]


def validate_entries(entries: Any, where: str = "$.fingerprints") -> list[str]:
    """Problems of a ``fingerprints`` object (adapter name -> entry), as ``$.fingerprints.NAME.field: ...``."""
    if not isinstance(entries, dict):
        return [f"{where}: must be an object (adapter name -> fingerprint)"]
    entry_schema = {"$ref": "#/$defs/fingerprint", "$defs": schema()["$defs"]}
    problems = []
    for name, entry in entries.items():
        problems += _problems(entry, entry_schema, f"{where}.{name}")
        if isinstance(entry, dict) and entry.get("adapter") not in (None, name):
            problems.append(f"{where}.{name}.adapter: {entry.get('adapter')!r}: must be the key, {name!r}")
    return problems


def validate(doc: Any) -> None:
    """Raise ``ResultsError`` naming the first problems of a fingerprints document."""
    from adamconf.reports.results import ResultsError

    problems = _problems(doc, {**schema(), "properties": {**schema()["properties"], "fingerprints": {"type": "object"}}},
                         "$")
    if not problems:
        problems = validate_entries(doc["fingerprints"])
    if problems:
        shown = "\n  ".join(problems[:8])
        raise ResultsError(f"invalid adamconf fingerprints document ({len(problems)} problem(s)):\n  {shown}")


def write_fingerprints(doc: Mapping[str, Any], path: str | Path) -> Path:
    from adamconf.reports.results import write_text_atomic

    validate(doc)
    return write_text_atomic(path, json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n")


def load_fingerprints(path: str | Path) -> dict:
    """Read and validate a fingerprints file (``ResultsError`` with the reason otherwise)."""
    kind, doc = load_report_input(path)
    if kind != KIND:
        from adamconf.reports.results import ResultsError

        raise ResultsError(f"{path}: a results file, not a fingerprints file (`adamconf fingerprint --results`)")
    return doc


def load_report_input(path: str | Path) -> tuple[str, dict]:
    """(kind, document) of a file given to ``adamconf report``: a results file or a fingerprints file.

    Each is validated (and a results file migrated); a fingerprints file of a newer
    ``schema_version`` than this adamconf knows is refused, saying to upgrade.
    """
    from adamconf.reports.results import KIND as RESULTS, ResultsError, _read_json, check_schema_version, load_results

    doc = _read_json(Path(path))
    if not (isinstance(doc, dict) and doc.get("kind") == KIND):
        return RESULTS, load_results(path, _doc=doc)
    try:
        check_schema_version(doc, SCHEMA_VERSION, "a fingerprints file of")
        validate(doc)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    return KIND, doc
