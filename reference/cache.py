"""The judge's on-disk cache: the budgets and held variants of a case, shared by every run on this machine.

What the judge compares a run with depends on the scenario's inputs, the dialect, the dtype and the
class group, never on the adapter: the float64 model's error budget (``budget.Budget``) and the
variants of the model that hold the hyperparameters as a class does (``judge.Reference``). Where asked
(below), besides the judge's per-process cache, they are kept here, one file per entry, content-addressed:

    key = sha256(FORMAT, the source of every reference/*.py, numpy's version, Python's, the machine,
                 the golden's content (scenario config, dialect key, inputs, recorded steps),
                 the judge's own key (budget or variants, dtypes, held form, class keys, fitted flag))

so any change of the code that computes them, of the inputs or of numpy misses. An entry is a plain
``.npz`` (read with ``allow_pickle=False``: no code runs on load) with a JSON header naming its full key;
every zip member carries a CRC-32 that ``np.load`` checks, so a truncated or damaged entry is refused,
deleted and recomputed, never used. Writes go to a temporary file beside the entry and are moved into
place with ``os.replace``: two xdist workers storing the same entry write the same bytes, and a reader
sees a whole file or none. After a write the directory is trimmed to its size bound, oldest (by last
use) first. Only what is independent of the run is cached: the per-run refit of float32 schedule
values (``judge._fit_lr32``) is applied to the cached variants afterwards.

Off unless ``$ADAMCONF_CACHE_DIR`` names a directory. Since the float64 model and the budget are computed
for every tensor and step at once (``reference/model.py``), computing a case's entries costs about what
reading them back does, and writing them costs more (measured with torch 2.13 on a 2-core machine, the
README's ``adamconf run --adapter torch.adam -n 0``: 24.0 s without the cache, 24.4 s writing it, 24.8 s
reading it back, 95 MB for the numpy example's entries): the judge's per-process cache, which every adapter
of a run shares, is what is left by default. Off even then: ``adamconf run --no-cache`` or
``ADAMCONF_NO_CACHE=1``. Size bound: ``$ADAMCONF_CACHE_MAX_MB`` (default 2048). Clearing it is deleting
the directory.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CACHE_DIR_VARIABLE", "DISABLE_VARIABLE", "MAX_MB_VARIABLE", "cache_dir", "code_hash",
           "golden_digest", "load", "set_enabled", "stats", "store"]

FORMAT = 1
CACHE_DIR_VARIABLE = "ADAMCONF_CACHE_DIR"
DISABLE_VARIABLE = "ADAMCONF_NO_CACHE"
MAX_MB_VARIABLE = "ADAMCONF_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
_SUFFIX = ".npz"

_enabled: bool | None = None  # set_enabled's override; None: the environment decides
#: what this process did with the cache (benchmarks/pipeline.py prints it)
stats = {"hits": 0, "misses": 0, "stores": 0, "corrupt": 0, "load_s": 0.0}


def set_enabled(flag: bool | None) -> None:
    """Turn the on-disk cache on or off for this process (``adamconf run --no-cache``); None: as the environment says."""
    global _enabled
    _enabled = flag


def cache_dir() -> Path | None:
    """The cache directory (``$ADAMCONF_CACHE_DIR``), or None when the cache is off (the default)."""
    if _enabled is False or (_enabled is None and os.environ.get(DISABLE_VARIABLE, "") not in ("", "0")):
        return None
    given = os.environ.get(CACHE_DIR_VARIABLE)
    return Path(given).expanduser() if given else None


@functools.lru_cache(maxsize=None)
def code_hash() -> str:
    """What makes a cached value stale besides its inputs: the reference's source, numpy, Python, the machine."""
    return source_hash(Path(__file__).resolve().parent)


def source_hash(directory: Path) -> str:
    """The hash of every ``*.py`` in ``directory`` (the reference package), with the versions it runs under."""
    h = hashlib.sha256(f"adamconf-judge-cache/{FORMAT}\0numpy {np.__version__}\0python {sys.version}\0"
                       f"{platform.machine()}\0".encode())
    for path in sorted(Path(directory).glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _hash_array(h, a) -> None:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B") if a.size else b"")


_last_digest: tuple[Any, str | None] = (None, None)  # (golden, its digest): one case asks several times


def golden_digest(golden) -> str | None:
    """A hash of everything of a golden that the budgets and variants depend on; None if it cannot be taken."""
    global _last_digest
    if _last_digest[0] is golden:
        return _last_digest[1]
    from .grads import SparseGrad

    try:
        h = hashlib.sha256()
        s = golden.scenario
        h.update(f"{s.name}\0{s.config!r}\0{golden.dialect_key}\0{len(golden.params0)}\0{len(golden.grads)}\0".encode())
        for p in golden.params0:
            _hash_array(h, np.asarray(p))
        layout = []  # every entry's kind, dtype and shape, hashed once after the data
        for row in golden.grads:
            for g in row:
                if isinstance(g, SparseGrad):
                    layout.append(("sparse", tuple(g.dense_shape)))
                    _hash_array(h, np.asarray(g.indices))
                    _hash_array(h, np.asarray(g.values))
                elif type(g) is np.ndarray and g.flags.c_contiguous:  # a row of the store's (T, *shape) array
                    layout.append((g.dtype.str, g.shape))
                    h.update(g.data if g.size else b"")
                else:
                    _hash_array(h, np.asarray(g))
        h.update(repr(layout).encode())
        _hash_array(h, np.asarray(golden.steps))
        _hash_array(h, np.asarray(golden.state_steps))
        digest = h.hexdigest()
    except Exception:  # an object that is not a golden as the store makes it: not cached on disk
        digest = None
    _last_digest = (golden, digest)
    return digest


def _entry(digest: str, key: tuple) -> tuple[str, str]:
    full = f"{code_hash()}\0{digest}\0{key!r}"
    return hashlib.sha256(full.encode()).hexdigest(), full


# -- encoding: a Budget or a list of References as named arrays plus a JSON header -------------------

def _put(arrays: dict, name: str, a) -> dict:
    a = np.asarray(a)
    if a.dtype.kind == "f" and a.size and not a.any() and not np.signbit(a).any():
        return {"zeros": [a.dtype.str, list(a.shape)]}  # variants' low parts: zeros, not stored
    arrays[name] = a
    return {"array": name}


def _get(arrays, spec):
    if "zeros" in spec:
        dt, shape = spec["zeros"]
        return np.zeros(tuple(shape), dtype=np.dtype(dt))
    return arrays[spec["array"]]


def _put_value(arrays: dict, name: str, v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return {"py": v}
    if isinstance(v, np.ndarray):
        return _put(arrays, name, v)
    if isinstance(v, (list, tuple)):
        return {"list": [_put_value(arrays, f"{name}/{i}", x) for i, x in enumerate(v)]}
    if isinstance(v, dict):
        return {"dict": {k: _put_value(arrays, f"{name}/{k}", x) for k, x in v.items()}}
    raise TypeError(f"cannot cache a {type(v).__name__}")


def _get_value(arrays, spec):
    if "py" in spec:
        return spec["py"]
    if "list" in spec:
        return [_get_value(arrays, x) for x in spec["list"]]
    if "dict" in spec:
        return {k: _get_value(arrays, x) for k, x in spec["dict"].items()}
    return _get(arrays, spec)


def _encode(value) -> tuple[str, dict, dict]:
    from .budget import Budget
    from .judge import Reference

    arrays: dict[str, np.ndarray] = {}
    if isinstance(value, Budget):
        fields = {f.name: _put_value(arrays, f"b/{f.name}", getattr(value, f.name))
                  for f in dataclasses.fields(Budget)}
        return "budget", {"fields": fields}, arrays
    if isinstance(value, list) and all(isinstance(r, Reference) for r in value):
        refs = []
        for i, r in enumerate(value):
            fields = {f.name: _put_value(arrays, f"r/{i}/{f.name}", getattr(r, f.name))
                      for f in dataclasses.fields(Reference)}
            refs.append(fields)
        return "references", {"refs": refs}, arrays
    raise TypeError(f"cannot cache a {type(value).__name__}")


def _decode(kind: str, body: dict, arrays):
    from .budget import Budget
    from .judge import Reference

    if kind == "budget":
        return Budget(**{k: _get_value(arrays, v) for k, v in body["fields"].items()})
    if kind == "references":
        out = []
        for fields in body["refs"]:
            kw = {k: _get_value(arrays, v) for k, v in fields.items()}
            kw["state"] = {k: (list(hi), list(lo)) for k, (hi, lo) in kw["state"].items()}
            out.append(Reference(**kw))
        return out
    raise ValueError(f"unknown entry kind {kind!r}")


# -- the store --------------------------------------------------------------------------------------

def load(digest: str | None, key: tuple):
    """The cached value of the judge's ``key`` for the golden of ``digest``, or None (off, absent or unreadable)."""
    where = cache_dir()
    if where is None or digest is None:
        return None
    import time

    t0 = time.perf_counter()
    name, full = _entry(digest, key)
    path = where / (name + _SUFFIX)
    try:
        f = open(path, "rb")
    except OSError:
        stats["misses"] += 1
        return None
    try:
        with f, np.load(f, allow_pickle=False) as npz:
            arrays = {n: npz[n] for n in npz.files}  # each member's CRC-32 checked as it is read
        header = json.loads(bytes(arrays.pop("header.json")).decode())
        if header.get("format") != FORMAT or header.get("key") != full:
            raise ValueError("another entry's header")
        value = _decode(header["kind"], header["body"], arrays)
    except Exception:  # truncated, damaged or foreign: recomputed (and rewritten) by the caller
        stats["corrupt"] += 1
        stats["misses"] += 1
        try:
            path.unlink()
        except OSError:
            pass
        return None
    try:
        os.utime(path)  # last use, for the trim
    except OSError:
        pass
    stats["hits"] += 1
    stats["load_s"] += time.perf_counter() - t0
    return value


def store(digest: str | None, key: tuple, value) -> bool:
    """Write the entry (atomically); False when the cache is off or the directory cannot be written."""
    where = cache_dir()
    if where is None or digest is None:
        return False
    name, full = _entry(digest, key)
    try:
        kind, body, arrays = _encode(value)
    except TypeError:
        return False
    header = json.dumps({"format": FORMAT, "key": full, "kind": kind, "body": body}).encode()
    arrays["header.json"] = np.frombuffer(header, dtype=np.uint8)
    tmp = None
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=where)
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            for n, a in arrays.items():
                with zf.open(n + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(a), allow_pickle=False)
        os.replace(tmp, where / (name + _SUFFIX))  # whole or not at all, for every reader
        tmp = None
    except OSError:
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    stats["stores"] += 1
    _trim(where)
    return True


def _trim(where: Path) -> None:
    """Delete the least recently used entries while the directory is over its bound (and stale temporaries)."""
    try:
        limit = float(os.environ.get(MAX_MB_VARIABLE) or DEFAULT_MAX_MB) * 2 ** 20
    except ValueError:
        limit = DEFAULT_MAX_MB * 2 ** 20
    import time

    entries, total, now = [], 0, time.time()
    try:
        with os.scandir(where) as it:
            for e in it:
                try:
                    st = e.stat()
                except OSError:
                    continue
                if e.name.endswith(".tmp") and now - st.st_mtime > 3600:  # left by a killed writer
                    _unlink(e.path)
                elif e.name.endswith(_SUFFIX):
                    entries.append((st.st_mtime, st.st_size, e.path))
                    total += st.st_size
    except OSError:
        return
    if total <= limit:
        return
    for _mtime, size, path in sorted(entries):
        if total <= 0.8 * limit:
            break
        _unlink(path)
        total -= size


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
