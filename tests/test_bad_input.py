"""Bad input to the tool: each is one clear line on stderr, exit status 2, and nothing half-written.

One row per kind of bad input, run as a user types it (the installed `adamconf` in a subprocess,
in a fresh directory). A row names the command, what it sets up first, the words its one error line
must hold, and the files that must not exist afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from adamconf.golden.store import DATA_DIR
from conftest import ADAMCONF

FAULTS = Path(__file__).resolve().parent / "data" / "faults.py"
GOOD = f"{FAULTS}:Good"
RUN = ["run", "--scenario", "dense-first-steps"]


def _results(cwd: Path) -> None:
    """A real results file of one short run (the report rows read it)."""
    done = subprocess.run([*ADAMCONF, *RUN, "--adapter", GOOD, "--dtype", "float64", "--results", "good.json"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda cwd: (cwd / name).write_text(text)


def _edit_results(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def setup(cwd: Path) -> None:
        _results(cwd)
        doc = json.loads((cwd / "good.json").read_text())
        changed = change(doc)
        (cwd / "bad.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))
    return setup


def _store(tamper: Callable[[Path], None]) -> Callable[[Path], None]:
    """A copy of the golden store (in ./store, named by $ADAMCONF_GOLDEN_DIR), tampered with."""
    def setup(cwd: Path) -> None:
        shutil.copytree(DATA_DIR, cwd / "store")
        tamper(cwd / "store")
    return setup


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _edit_manifest(store: Path) -> None:
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["files"]["dense-first-steps/inputs.npz"] = "0" * 64
    (store / "manifest.json").write_text(json.dumps(manifest))


@dataclass
class Bad:
    id: str
    argv: list[str]
    says: list[str]  # the words of the one error line
    setup: Callable[[Path], None] | None = None
    absent: list[str] = field(default_factory=lambda: ["adamconf-results.json", "out.json", "report.html"])
    env: dict[str, str] = field(default_factory=dict)


STORE_ENV = {"ADAMCONF_GOLDEN_DIR": "store"}

TABLE = [
    Bad("unknown built-in adapter", [*RUN, "--adapter", "torch.adamm"],
        ["unknown adapter 'torch.adamm'; did you mean 'torch.adam'? Known adapters:", "torch.adamw.fused"]),
    Bad("unknown class in an adapter file", [*RUN, "--adapter", f"{FAULTS}:Goood"],
        ["defines no 'Goood'; did you mean 'Good'?"]),
    Bad("adapter file that does not import", [*RUN, "--adapter", "broken.py:Adam"],
        ["adapter spec 'broken.py:Adam': importing 'broken.py' raised SyntaxError (line 2)"],
        setup=_write("broken.py", "class Adam:\n    def start(self\n")),
    Bad("missing adapter file", [*RUN, "--adapter", "nowhere.py:Adam"], ["file 'nowhere.py' does not exist"]),
    Bad("unknown scenario", ["run", "--adapter", GOOD, "--scenario", "dense-defualt"],
        ["--scenario 'dense-defualt' matches no scenario and no family; did you mean 'dense-default'?"]),
    Bad("unknown dtype", [*RUN, "--adapter", GOOD, "--dtype", "float8"], ["--dtype 'float8' is not a dtype"]),
    Bad("a selection with no case", [*RUN, "--adapter", GOOD, "--dtype", "float16"],
        ["no case matches this selection"]),
    Bad("bad worker count", [*RUN, "--adapter", GOOD, "-n", "many"], ["-n/--workers 'many' must be a number"]),
    Bad("expectations file with a syntax error", [*RUN, "--adapter", GOOD, "--expectations", "e.toml"],
        ["e.toml", "is not valid TOML"], setup=_write("e.toml", "[[expect]\n")),
    Bad("missing expectations file", [*RUN, "--adapter", GOOD, "--expectations", "none.toml"], ["none.toml"]),
    Bad("stale expectations entry", [*RUN, "--adapter", GOOD, "--expectations", "e.toml"],
        ["stale expectations: e.toml, entry 1: id 'fault.none::dense-frist-steps::*::*' matches no case"],
        setup=_write("e.toml", '[[expect]]\nid = "fault.none::dense-frist-steps::*::*"\nreason = "r"\n')),
    Bad("unwritable results path", [*RUN, "--adapter", GOOD, "--results", "afile/out.json"],
        ["--results afile/out.json: afile is not a directory"], setup=_write("afile", "")),
    Bad("results path that is a directory", [*RUN, "--adapter", GOOD, "--results", "adir"],
        ["--results adir: is a directory"], setup=lambda cwd: (cwd / "adir").mkdir()),
    Bad("tampered golden", [*RUN, "--adapter", GOOD, "--results", "out.json"],
        ["golden file", "store/dense-first-steps/inputs.npz does not match its manifest",
         "Rebuild with: adamconf golden build --scenario dense-first-steps --data-dir"],
        setup=_store(lambda store: _flip_a_byte(store / "dense-first-steps" / "inputs.npz")), env=STORE_ENV),
    Bad("tampered manifest (a hash edited)", [*RUN, "--adapter", GOOD, "--results", "out.json"],
        ["dense-first-steps/inputs.npz does not match its manifest", "expected 000000000000"],
        setup=_store(_edit_manifest), env=STORE_ENV),
    Bad("tampered manifest (not JSON)", [*RUN, "--adapter", GOOD, "--results", "out.json"],
        ["manifest.json is not valid JSON", "rebuild with: adamconf golden build"],
        setup=_store(lambda store: (store / "manifest.json").write_text("{not json")), env=STORE_ENV),
    Bad("golden missing", [*RUN, "--adapter", GOOD, "--results", "out.json"],
        ["golden file dense-first-steps/inputs.npz is missing for scenario 'dense-first-steps'"],
        setup=_store(lambda store: (store / "dense-first-steps" / "inputs.npz").unlink()), env=STORE_ENV),
    Bad("report of a file that is not JSON", ["report", "bad.json"], ["bad.json: not valid JSON"],
        setup=_write("bad.json", "{")),
    Bad("report of a foreign JSON file", ["report", "bad.json"],
        ["not an adamconf results file (kind='pytest-json-report'"],
        setup=_write("bad.json", json.dumps({"kind": "pytest-json-report", "tests": []}))),
    Bad("report of a newer schema version", ["report", "bad.json"],
        ["written with schema_version 99, newer than this adamconf reads", "upgrade adamconf"],
        setup=_edit_results(lambda d: {**d, "schema_version": 99})),
    Bad("report of a results file with NaN", ["report", "bad.json"], ["NaN is not a JSON number"],
        setup=_edit_results(lambda d: json.dumps(d).replace('"duration_s": ', '"duration_s": NaN, "x_": ', 1))),
    Bad("report of an inconsistent results file", ["report", "bad.json"], ["$.summary.passed"],
        setup=_edit_results(lambda d: {**d, "summary": {**d["summary"], "passed": 7}})),
    Bad("report written over its own input", ["report", "good.json", "-o", "good.json"],
        ["-o good.json is the results file good.json given as input"], setup=_results),
    Bad("report to an unwritable path", ["report", "good.json", "-o", "afile/report.html"],
        ["cannot write the report to afile/report.html: afile is not a directory"],
        setup=lambda cwd: (_results(cwd), (cwd / "afile").write_text(""))),
    Bad("report of a missing file", ["report", "none.json"], ["none.json: no such results file"]),
]


@pytest.mark.parametrize("bad", TABLE, ids=[b.id for b in TABLE])
def test_bad_input_is_one_line_and_exit_status_2(bad, tmp_path):
    if bad.setup is not None:
        bad.setup(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    env = {**os.environ, **{k: str(tmp_path / v) for k, v in bad.env.items()}}
    done = subprocess.run([*ADAMCONF, *bad.argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    line = next((ln for ln in lines if all(w in ln for w in bad.says)), None)
    assert line is not None, done.stderr
    assert "Traceback" not in done.stderr and "INTERNALERROR" not in done.stderr + done.stdout
    assert len([ln for ln in lines if "error" in ln.lower()]) <= 2, done.stderr  # the line (and "no report written")
    for name in bad.absent:
        assert not (tmp_path / name).exists() or name in before, f"{name} was written"
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert {k: v for k, v in after.items() if k in before} == before  # nothing given was changed
    assert not [n for n in after if n.startswith(".") and n.endswith(".tmp")]  # no half-written file
