"""The golden store: inputs and exact trajectories on disk, with a hashed manifest.

Layout (documented for non-Python consumers in docs/golden-format.md)::

    data/manifest.json                 schema, generator, scenarios, sha256 of every file
    data/<scenario>/inputs.npz         param/<k>, grad/<k> (dense: (T, *shape)) or
                                       grad/<k>/indices, /values, /offsets (CSR by step)
    data/<scenario>/<dialect>.npz      steps, state_steps, lr, theta/<k>/hi|lo,
                                       m|v|vmax/<k>/hi|lo (at state_steps)

Values are double-double: x = hi + lo with |lo| <= ulp(hi)/2, about 106 bits,
so a float64 implementation is measured in its own ulps. Files are written
byte-reproducibly (uncompressed zip, fixed timestamps, sorted members) and
loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from adamconf.reference.adam import Trajectory
from adamconf.reference.dialect import Dialect
from adamconf.reference.grads import SparseGrad

from .scenarios import Scenario

__all__ = [
    "DATA_DIR",
    "MANIFEST_SCHEMA",
    "Golden",
    "GoldenError",
    "file_stem",
    "load_golden",
    "load_inputs",
    "npz_bytes",
    "read_manifest",
    "sha256_file",
    "write_npz",
]

#: the golden store: the installed package's, or the directory named by $ADAMCONF_GOLDEN_DIR (a store
#: built with ``adamconf golden build --data-dir DIR``; xdist workers inherit the variable)
GOLDEN_DIR_VARIABLE = "ADAMCONF_GOLDEN_DIR"
DATA_DIR = Path(os.environ.get(GOLDEN_DIR_VARIABLE) or Path(__file__).resolve().parent / "data")
MANIFEST_SCHEMA = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class GoldenError(RuntimeError):
    """A golden that is missing, stale or corrupted; the message says how to rebuild it."""


def rebuild_command(scenario: str | None = None) -> str:
    where = f" --data-dir {shlex.quote(str(DATA_DIR))}" if os.environ.get(GOLDEN_DIR_VARIABLE) else ""
    return "adamconf golden build" + (f" --scenario {scenario}" if scenario else "") + where


def file_stem(key: str) -> str:
    """A dialect key as a file name: 'eps=hat,bc=on' -> 'eps-hat__bc-on'."""
    return key.replace("=", "-").replace(",", "__")


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Arrays as byte-reproducible .npz content (stored, fixed dates, sorted members)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> bytes:
    """Write arrays as a byte-reproducible .npz (atomically); returns the bytes written."""
    data = npz_bytes(arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- inputs ------------------------------------------------------------------------------------
def _compact(a: np.ndarray) -> np.ndarray:
    """float32 when that holds every value exactly (halves the store), else float64."""
    a = np.asarray(a, dtype=np.float64)
    f32 = a.astype(np.float32)
    same = np.array_equal(f32.astype(np.float64), a, equal_nan=True)
    return f32 if same else a


def inputs_arrays(params0: Sequence[np.ndarray], grads: Sequence[Sequence]) -> dict[str, np.ndarray]:
    """Inputs as named arrays; values are stored as float32 where that is exact (read them as float64)."""
    arrays: dict[str, np.ndarray] = {}
    for k, p in enumerate(params0):
        arrays[f"param/{k}"] = _compact(p)
        entries = [row[k] for row in grads]
        if entries and isinstance(entries[0], SparseGrad):
            arrays[f"grad/{k}/indices"] = np.concatenate([np.asarray(e.indices, np.int64) for e in entries])
            arrays[f"grad/{k}/values"] = _compact(np.concatenate(
                [np.asarray(e.values, np.float64).reshape(e.nnz, *p.shape[1:]) for e in entries]))
            arrays[f"grad/{k}/offsets"] = np.cumsum([0] + [e.nnz for e in entries]).astype(np.int64)
        else:
            arrays[f"grad/{k}"] = _compact(np.stack([np.asarray(e, np.float64) for e in entries]) if entries
                                           else np.zeros((0, *p.shape)))
    return arrays


def arrays_to_inputs(arrays: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], list[list]]:
    n = sum(1 for name in arrays if name.startswith("param/"))
    params0 = [np.asarray(arrays[f"param/{k}"], dtype=np.float64) for k in range(n)]
    columns = []
    for k, p in enumerate(params0):
        if f"grad/{k}/offsets" in arrays:
            idx, vals, off = (arrays[f"grad/{k}/{x}"] for x in ("indices", "values", "offsets"))
            vals = np.asarray(vals, dtype=np.float64)
            columns.append([SparseGrad(idx[a:b], vals[a:b], tuple(p.shape)) for a, b in zip(off[:-1], off[1:])])
        else:
            columns.append(list(np.asarray(arrays[f"grad/{k}"], dtype=np.float64)))
    steps = len(columns[0]) if columns else 0
    return params0, [[col[t] for col in columns] for t in range(steps)]


# -- trajectories ------------------------------------------------------------------------------
def trajectory_arrays(tr: Trajectory, state_steps: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """A trajectory as the store's named arrays, with the moments of ``state_steps`` (default: those it has)."""
    if state_steps is not None:
        tr = tr.with_state_at(state_steps)
    arrays = {"steps": tr.steps, "state_steps": np.asarray(tr.recorded_state_steps(), dtype=np.int64), "lr": tr.lr}
    moments = tr.moments()
    for k in range(len(tr.theta)):
        arrays[f"theta/{k}/hi"], arrays[f"theta/{k}/lo"] = tr.theta[k], tr.theta_lo[k]
        for key, (hi, lo) in moments.items():
            arrays[f"{key}/{k}/hi"], arrays[f"{key}/{k}/lo"] = hi[k], lo[k]
    return arrays


def arrays_trajectory(a: Mapping[str, np.ndarray], n: int) -> Trajectory:
    """The inverse of ``trajectory_arrays`` for ``n`` tensors."""
    def pair(key: str, needed: bool) -> tuple[list | None, list | None]:
        if n and f"{key}/{n - 1}/hi" not in a:
            if needed:
                raise KeyError(f"{key}/{n - 1}/hi")
            return None, None
        return [a[f"{key}/{k}/hi"] for k in range(n)], [a[f"{key}/{k}/lo"] for k in range(n)]

    (m, m_lo), (v, v_lo), (vmax, vmax_lo) = pair("m", True), pair("v", True), pair("vmax", False)
    return Trajectory(np.asarray(a["steps"]), [a[f"theta/{k}/hi"] for k in range(n)],
                      [a[f"theta/{k}/lo"] for k in range(n)], m, m_lo, v, v_lo, vmax, vmax_lo, np.asarray(a["lr"]),
                      np.asarray(a["state_steps"]))


@dataclass
class Golden:
    """A scenario's inputs and their exact trajectory in one dialect (``record``: theta at ``record.steps``,
    the moments at ``record.state_steps``): the one record type of a trajectory, with its inputs."""

    scenario: Scenario
    dialect_key: str
    params0: list[np.ndarray]
    grads: list[list]
    record: Trajectory

    @classmethod
    def from_arrays(cls, scenario: Scenario, dialect_key: str, params0: list[np.ndarray], grads: list[list],
                    a: Mapping[str, np.ndarray]) -> "Golden":
        """A golden from its inputs and its trajectory's arrays (``trajectory_arrays``, as stored)."""
        return cls(scenario, dialect_key, params0, grads, arrays_trajectory(a, len(params0)))

    @classmethod
    def from_trajectory(cls, scenario: Scenario, dialect_key: str, params0: list[np.ndarray], grads: list[list],
                        tr: Trajectory, state_steps: Sequence[int] = ()) -> "Golden":
        """A golden made now: the inputs and their exact trajectory ``tr`` (``reference.adam.trajectory``), with
        the moments of ``state_steps``; the same record ``load_golden`` reads from the store."""
        return cls(scenario, dialect_key, params0, grads, tr.with_state_at(state_steps))

    # where the golden is recorded: what a driver asks of it
    @property
    def steps(self) -> np.ndarray:
        return self.record.steps

    @property
    def state_steps(self) -> np.ndarray:
        return self.record.recorded_state_steps()

    def row(self, t: int) -> int:
        try:
            return self.record.index(t)
        except KeyError:
            raise KeyError(f"step {t} is not recorded in golden {self.scenario.name}/{self.dialect_key}") from None


_MANIFESTS: dict[Path, tuple[tuple[int, int], dict]] = {}  # path -> ((mtime_ns, size), parsed): one parse per version


def read_manifest(data_dir: Path = DATA_DIR) -> dict:
    """The store's manifest, checked; parsed once per process and version of the file (every case asks)."""
    path = data_dir / "manifest.json"
    if not path.is_file():
        raise GoldenError(f"no golden manifest at {path}; build the goldens with: {rebuild_command()}")
    st = path.stat()
    known = _MANIFESTS.get(path)
    if known is not None and known[0] == (st.st_mtime_ns, st.st_size):
        return known[1]
    manifest = _parse_manifest(path)
    _MANIFESTS[path] = ((st.st_mtime_ns, st.st_size), manifest)
    return manifest


def _parse_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GoldenError(f"golden manifest {path} is not valid JSON ({exc}): it was changed or corrupted; "
                          f"rebuild with: {rebuild_command()}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) \
            or not isinstance(manifest.get("scenarios"), dict):
        raise GoldenError(f"golden manifest {path} lacks its 'files' and 'scenarios' tables: it was changed or "
                          f"corrupted; rebuild with: {rebuild_command()}")
    if manifest.get("schema_version") != MANIFEST_SCHEMA:
        raise GoldenError(f"golden manifest {path} has schema_version {manifest.get('schema_version')!r}, "
                          f"this adamconf reads {MANIFEST_SCHEMA}; rebuild with: {rebuild_command()}")
    return manifest


#: the arrays of the store files this process has read, under (path, the manifest's sha256 of them): a worker
#: reads a golden once for every adapter and dtype that shares it (the cases go scenario by scenario)
_LOADED: dict[tuple[str, str], dict[str, np.ndarray]] = {}
_LOADED_LIMIT = 256  # files; the built-in store is 9 MB in all


def _checked_load(data_dir: Path, manifest: dict, scenario: str, relpath: str, *,
                  parse: bool = True) -> dict[str, np.ndarray]:
    """The arrays of one store file, after checking its sha256 against the manifest and that it is plain data.

    parse=False: only check (and return nothing). The arrays are read-only and kept for the process (``_LOADED``,
    keyed by the manifest's digest: what was checked once is what the manifest names); every case gets the same.
    """
    entry = manifest["files"].get(relpath)
    path = data_dir / relpath
    key = (str(path), entry)
    if parse and entry is not None and key in _LOADED:
        return _LOADED[key]
    if entry is None or not path.is_file():
        raise GoldenError(f"golden file {relpath} is missing for scenario {scenario!r}; "
                          f"rebuild with: {rebuild_command(scenario)}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry:
        raise GoldenError(f"golden file {path} does not match its manifest (sha256 {digest[:12]}..., expected "
                          f"{entry[:12]}...): it was changed or corrupted. Rebuild with: {rebuild_command(scenario)}")
    if not parse:
        return {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:  # object arrays need pickle: refused
        raise GoldenError(f"golden file {path} is not a plain npz of numeric arrays ({exc}); rebuild with: "
                          f"{rebuild_command(scenario)}") from None
    for a in arrays.values():  # shared by every case: whatever tried to write into them would raise
        a.setflags(write=False)
    if len(_LOADED) >= _LOADED_LIMIT:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = arrays
    return arrays


def check_store(scenarios: Sequence[Scenario], data_dir: Path = DATA_DIR) -> list[str]:
    """Every problem of the store for these scenarios, before any runs: one line each, with the fix.

    The manifest must parse; each scenario's definition in it must be the catalogue's; each of its
    files (inputs and every golden) must be present with the manifest's sha256. Hashes only (the
    arrays are loaded, without pickle, by the case that needs them); a run calls it once, so that a
    tampered store is one message, not one per case.
    """
    try:
        manifest = read_manifest(data_dir)
    except GoldenError as exc:
        return [str(exc)]
    problems = []
    for s in scenarios:
        entry = manifest["scenarios"].get(s.name)
        if not isinstance(entry, dict) or not isinstance(entry.get("goldens"), dict):
            problems.append(f"scenario {s.name!r} is not in the golden manifest {data_dir / 'manifest.json'}; "
                            f"build it with: {rebuild_command(s.name)}")
            continue
        if entry.get("definition") != json.loads(json.dumps(s.to_dict())):
            problems.append(f"scenario {s.name!r}: its definition in {data_dir / 'manifest.json'} differs from the "
                            f"catalogue's (the goldens are of another scenario); rebuild with: "
                            f"{rebuild_command(s.name)}")
            continue
        for rel in [f"{s.name}/inputs.npz", *(f"{s.name}/{file_stem(k)}.npz" for k in entry["goldens"])]:
            try:
                _checked_load(data_dir, manifest, s.name, rel, parse=False)
            except GoldenError as exc:
                problems.append(str(exc))
    return problems


def load_inputs(scenario: Scenario, data_dir: Path = DATA_DIR, manifest: dict | None = None):
    manifest = manifest or read_manifest(data_dir)
    return arrays_to_inputs(_checked_load(data_dir, manifest, scenario.name, f"{scenario.name}/inputs.npz"))


def load_golden(scenario: Scenario, dialect: Dialect, data_dir: Path = DATA_DIR,
                manifest: dict | None = None) -> Golden:
    """The golden of ``scenario`` in ``dialect`` (projected onto the scenario's axes)."""
    manifest = manifest or read_manifest(data_dir)
    key = scenario.dialect_key(dialect)
    rel = f"{scenario.name}/{file_stem(key)}.npz"
    if rel not in manifest["files"]:
        known = [k for k in manifest["scenarios"].get(scenario.name, {}).get("goldens", {})]
        raise GoldenError(f"no golden of scenario {scenario.name!r} in dialect {key!r} (have: {known}); "
                          f"if the catalogue changed, rebuild with: {rebuild_command(scenario.name)}")
    params0, grads = load_inputs(scenario, data_dir, manifest)
    return Golden.from_arrays(scenario, key, params0, grads, _checked_load(data_dir, manifest, scenario.name, rel))
