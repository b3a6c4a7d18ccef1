"""Expectations files: known deviations of an implementation, listed with their reasons.

An expectations file is TOML (the idea of array-api-tests' xfails files)::

    [[expect]]
    id = "keras.adam::sparse-repeated-indices::*::*"   # fnmatch pattern on the case id, or a list of them
    reason = "Keras 3 squares repeated sparse rows separately: v gets sum(g_i^2), not (sum g_i)^2"
    link = "https://github.com/keras-team/keras/issues/..."          # optional
    verdict = "failed"                                               # optional: failed (default) | error
    evidence = "v[0] = 0.017578125, exact 0.03515625 (g = (3, 4) twice, beta2 = 1 - 2^-7)"  # optional
    check = "state"          # optional (failed only): the check that must fail (update, trajectory, state, bias)
    budget = [1e5, 1e8]      # optional (failed only): the range its budget used must fall in; a number
                             # N means its order of magnitude, N / sqrt(10) .. N * sqrt(10)

A case id is ``adapter::scenario::dtype::device``; the pattern has the same
four fields, each an ``fnmatch`` glob. A listed case whose verdict is the
expected one is *xfailed*; one that passes is *xpassed*, which fails the run
(the deviation is gone: delete the entry so that a regression is caught);
one with another verdict keeps it (a listed failure that now raises is an
error, not an expected failure). An entry that pins its deviation (``check``,
``budget``) is xfailed only while the failure stays pinned: a listed case that
fails another check, or at a budget multiple outside the range, has *changed*
and fails the run like an unexpected pass. An entry that matches no case the
run's adapters could have is *stale*: a usage error before any case runs
(docs/expectations.md).

The built-in adapters' files ship in ``adamconf/adapters/expectations/``.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover
        tomllib = None

__all__ = [
    "EXPECTED_VERDICTS",
    "Expectation",
    "ExpectationsError",
    "Expectations",
    "builtin_files",
    "load_expectations",
]

#: The verdicts an entry may expect (what the case does instead of passing).
EXPECTED_VERDICTS = ("failed", "error")
_KEYS = {"id", "reason", "link", "verdict", "evidence", "check", "budget"}
#: the checks of an assessment (adamconf.reference.judge) an entry may pin
CHECKS = ("update", "trajectory", "state", "bias")


class ExpectationsError(ValueError):
    """An expectations file that cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class Expectation:
    """One entry: the case-id pattern, why it deviates, and where that is documented."""

    patterns: tuple[str, ...]
    reason: str
    source: str  # "path/file.toml, entry 3": where to edit it
    link: str | None = None
    verdict: str = "failed"
    evidence: str | None = None
    builtin: bool = False
    check: str | None = None  # the check that must fail
    budget: tuple[float, float] | None = None  # the range its budget used must be in

    def matches(self, case_id: str) -> bool:
        return any(fnmatch.fnmatchcase(case_id, p) for p in self.patterns)

    def changed(self, checks: dict[str, float | None], budget_used: float | None) -> str | None:
        """How a listed failure no longer matches the deviation the entry pins (None: it matches)."""
        problems = []
        if self.check is not None and not (checks.get(self.check) or 0.0) > 1.0:
            failing = [k for k, v in checks.items() if v is not None and v > 1.0]
            problems.append(f"it pins the {self.check} check, which now passes "
                            f"(failing: {', '.join(failing) or 'none'})")
        if self.budget is not None:
            lo, hi = self.budget
            if budget_used is None or not lo <= budget_used <= hi:
                now = "no budget figure" if budget_used is None else f"{budget_used:.3g} times its budget"
                problems.append(f"it pins {lo:.3g} to {hi:.3g} times the budget, now {now}")
        return "; ".join(problems) or None

    def record(self) -> dict:
        """The ``expectation`` field of a results case."""
        return {"reason": self.reason, "link": self.link}


@dataclass
class Expectations:
    """The entries in force for one run, in the order given (the first match wins)."""

    entries: list[Expectation] = field(default_factory=list)

    def find(self, case_id: str, *, builtin_adapter: bool) -> Expectation | None:
        """The first entry matching the case; the built-in files apply to built-in adapters only."""
        return next((e for e in self.entries if (builtin_adapter or not e.builtin) and e.matches(case_id)), None)

    def stale(self, adapters: Iterable[str], possible_ids: Iterable[str]) -> list[str]:
        """Problems with entries: those that match none of ``possible_ids``.

        ``possible_ids`` are every case the run's adapters could have (all
        scenarios, dtypes and devices), not only those selected, so that
        ``--scenario`` or ``-k`` never make an entry stale. A built-in entry
        whose adapter is not in the run is out of scope, not stale; a user's
        entry that names no adapter of the run is reported (a typo in the name).
        """
        adapters = list(adapters)
        ids = list(possible_ids)
        problems = []
        for e in self.entries:
            for pattern in e.patterns:
                in_run = any(fnmatch.fnmatchcase(a, pattern.split("::")[0]) for a in adapters)
                if e.builtin and not in_run:
                    continue
                if not in_run:
                    problems.append(f"{e.source}: id {pattern!r} names no adapter of this run "
                                    f"({', '.join(adapters)}); fix the adapter name or remove the pattern")
                elif not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
                    problems.append(f"{e.source}: id {pattern!r} matches no case of this run's adapters "
                                    "(a misspelt scenario, dtype or device?); `adamconf list scenarios` lists "
                                    "the scenarios; fix the pattern or remove it")
        return problems


def builtin_files() -> list[Path]:
    """The expectations files shipped for the built-in adapters."""
    folder = resources.files("adamconf.adapters").joinpath("expectations")
    if not folder.is_dir():
        return []
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml"))


def load_expectations(paths: Sequence[str | Path], *, builtin: Sequence[str | Path] = ()) -> Expectations:
    """Parse the built-in files, then the user's, checking every entry; raises ``ExpectationsError``."""
    entries: list[Expectation] = []
    for path in builtin:
        entries += _load_file(Path(path), builtin=True)
    for path in paths:
        entries += _load_file(Path(path), builtin=False)
    return Expectations(entries)


def _load_file(path: Path, *, builtin: bool) -> list[Expectation]:
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise ExpectationsError(f"reading {path} needs a TOML parser: pip install tomli (Python < 3.11)")
    if not path.is_file():
        raise ExpectationsError(f"expectations file {str(path)!r} does not exist; check the path given to "
                                "--expectations")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExpectationsError(f"expectations file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"expect"})
    if unknown:
        raise ExpectationsError(f"expectations file {path}: unknown top-level key(s) {unknown}; entries are "
                                "[[expect]] tables with id, reason, link, verdict, evidence")
    raw = doc.get("expect", [])
    if not isinstance(raw, list):
        raise ExpectationsError(f"expectations file {path}: 'expect' must be an array of tables ([[expect]])")
    return [_entry(path, i, item, builtin) for i, item in enumerate(raw, start=1)]


def _entry(path: Path, index: int, item: object, builtin: bool) -> Expectation:
    where = f"{path}, entry {index}"
    if not isinstance(item, dict):
        raise ExpectationsError(f"{where}: must be a table ([[expect]]), got {item!r}")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ExpectationsError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    raw = item.get("id")
    patterns = tuple(raw) if isinstance(raw, list) and raw else (raw,)
    for pattern in patterns:
        if not isinstance(pattern, str) or len(pattern.split("::")) != 4 or not all(pattern.split("::")):
            raise ExpectationsError(f"{where}: id = {pattern!r} must be a pattern "
                                    "'adapter::scenario::dtype::device' (fnmatch globs, e.g. "
                                    "'keras.adam::sparse-*::*::cpu'), or a list of them")
    pattern = ", ".join(patterns)
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ExpectationsError(f"{where} ({pattern}): a non-empty reason is required: "
                                "say what the implementation does instead")
    link = item.get("link")
    if link is not None and not isinstance(link, str):
        raise ExpectationsError(f"{where} ({pattern}): link = {link!r} must be a string (a URL)")
    verdict = item.get("verdict", "failed")
    if verdict not in EXPECTED_VERDICTS:
        raise ExpectationsError(f"{where} ({pattern}): verdict = {verdict!r} must be one of "
                                f"{list(EXPECTED_VERDICTS)}")
    evidence = item.get("evidence")
    if evidence is not None and not isinstance(evidence, str):
        raise ExpectationsError(f"{where} ({pattern}): evidence must be a string")
    check, budget = item.get("check"), _budget_range(where, pattern, item.get("budget"))
    if check is not None and check not in CHECKS:
        raise ExpectationsError(f"{where} ({pattern}): check = {check!r} must be one of {list(CHECKS)}")
    if (check is not None or budget is not None) and verdict != "failed":
        raise ExpectationsError(f"{where} ({pattern}): check and budget pin a failure; verdict = {verdict!r} "
                                "has no budget (remove them, or expect verdict = 'failed')")
    return Expectation(patterns, reason.strip(), where, link or None, verdict, evidence, builtin, check, budget)


def _budget_range(where: str, pattern: str, raw: object) -> tuple[float, float] | None:
    """``budget = N`` (its order of magnitude: N / sqrt(10) .. N * sqrt(10)) or ``budget = [lo, hi]``."""
    if raw is None:
        return None

    def number(x: object) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < float("inf")

    if number(raw):
        return (raw / 10 ** 0.5, raw * 10 ** 0.5)
    if isinstance(raw, list) and len(raw) == 2 and all(number(x) for x in raw) and raw[0] < raw[1]:
        return (float(raw[0]), float(raw[1]))
    raise ExpectationsError(f"{where} ({pattern}): budget = {raw!r} must be a positive number (its order of "
                            "magnitude) or a range [low, high] with 0 < low < high, in multiples of the budget")
