"""What the built-in adapters share whatever their framework: exact readback and checkpoint bytes.

Readback: the contract wants the parameters (and the state) as numpy arrays
holding exactly the implementation's values; bfloat16, which numpy lacks, is
widened to float32, exactly (a bfloat16 is the upper half of a float32).
Every adapter reads bfloat16 through ``widen_bfloat16_bits``: TensorFlow, JAX
and Keras hand out ``ml_dtypes.bfloat16`` arrays (``exact_numpy``), torch its
tensors' bits, the bridge the 16 bits it carried on the wire.

Checkpoints: ``pack_arrays`` / ``unpack_arrays`` write and read named arrays
bit for bit as npz bytes (``np.load(allow_pickle=False)``: no pickle is ever
loaded), bfloat16 arrays as their 16 bits, with a JSON header of the dtypes and
of what the adapter wants to keep beside them (``meta``).

Many steps at once (the contract's optional ``run.steps``): ``steps_in_chunks`` cuts a segment
into chunks of 16^k steps for a compiled loop, so that a loop traced or compiled per length
serves every segment with three or four lengths; single steps go through the run's ``step``.

Nothing here imports a framework; ``ml_dtypes`` (installed with TensorFlow and
JAX) is imported only to rebuild bfloat16 arrays.
"""

from __future__ import annotations

import io
import json
from typing import Any, Mapping, Sequence

import numpy as np

from adamconf.reference.grads import SparseGrad, check_entries

__all__ = [
    "bfloat16_bits",
    "bfloat16_type",
    "config_json",
    "exact_numpy",
    "pack_arrays",
    "params_arrays",
    "read_params",
    "device_steps",
    "loop_steps",
    "steps_in_chunks",
    "unpack_arrays",
    "widen_bfloat16_bits",
]

_HEADER = "__header__"


# -- readback ----------------------------------------------------------------------------------------
def bfloat16_type() -> Any:
    """numpy's scalar type for bfloat16 (``ml_dtypes.bfloat16``)."""
    import ml_dtypes  # a dependency of TensorFlow and JAX: present wherever bfloat16 arrays exist

    return ml_dtypes.bfloat16


def bfloat16_bits(a: np.ndarray) -> np.ndarray:
    """The 16-bit patterns (uint16) of an ``ml_dtypes.bfloat16`` array."""
    return np.asarray(a).view(np.uint16)


def widen_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (uint16 or int16, any byte order): exact, NaN payloads kept."""
    return (np.asarray(bits).astype(np.uint16).astype(np.uint32) << 16).view(np.float32)


def exact_numpy(x: Any) -> np.ndarray:
    """A copy of an array-like as numpy, holding exactly its values (bfloat16 widened to float32)."""
    a = np.array(x, copy=True)
    return widen_bfloat16_bits(bfloat16_bits(a)) if a.dtype.name == "bfloat16" else a


# -- checkpoint bytes -------------------------------------------------------------------------------
def pack_arrays(arrays: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> bytes:
    """npz bytes of named arrays, bit for bit; ``meta`` (JSON-able) travels with them."""
    out, dtypes = {}, {}
    for key, a in arrays.items():
        a = np.asarray(a)
        dtypes[key] = a.dtype.name
        out[key] = bfloat16_bits(a) if a.dtype.name == "bfloat16" else a  # npz has no bfloat16 without pickle
    header = json.dumps({"dtypes": dtypes, "meta": dict(meta or {})}).encode()
    buf = io.BytesIO()
    np.savez(buf, **{_HEADER: np.frombuffer(header, dtype=np.uint8)}, **out)
    return buf.getvalue()


def unpack_arrays(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The inverse of ``pack_arrays``: (arrays by name, meta). ValueError for bytes it did not write."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        if _HEADER not in z.files:
            raise ValueError(f"checkpoint bytes lack {_HEADER!r}: they were not written by Run.save() of a "
                             "built-in adapter")
        header = json.loads(z[_HEADER].tobytes().decode())
        arrays = {}
        for key, kind in header["dtypes"].items():
            a = z[key]
            arrays[key] = a.view(bfloat16_type()) if kind == "bfloat16" else a
    return arrays, header["meta"]


def params_arrays(params: Sequence[Any], prefix: str = "param") -> dict[str, np.ndarray]:
    """``{prefix0: params[0], prefix1: ...}``: a list of arrays as named arrays for ``pack_arrays``."""
    return {f"{prefix}{k}": np.asarray(p) for k, p in enumerate(params)}


def read_params(arrays: Mapping[str, np.ndarray], prefix: str = "param") -> list[np.ndarray]:
    """The inverse of ``params_arrays``."""
    n = sum(1 for key in arrays if key.startswith(prefix) and key[len(prefix):].isdigit())
    return [arrays[f"{prefix}{k}"] for k in range(n)]


def config_json(config: Mapping[str, Any]) -> str:
    """A framework's ``get_config()`` as JSON text (numpy scalars as Python numbers)."""

    def plain(x: Any) -> Any:
        if isinstance(x, np.generic):
            return x.item()  # float32 -> float widens exactly
        raise TypeError(f"optimizer config holds {type(x).__name__} {x!r}, which JSON cannot represent")

    return json.dumps(config, sort_keys=True, default=plain)


CHUNKS = (4096, 256, 16)  # the loop lengths a compiled many-step loop is traced for


def steps_in_chunks(rows: Sequence[Any], single: Any, chunk: Any) -> list[np.ndarray]:
    """The parameters after each row, per tensor stacked ``(len(rows), *shape)``.

    ``chunk(rows)`` runs a chunk of ``CHUNKS`` length in the framework's loop and returns its
    trail (per tensor, one row per step); ``single(row)`` runs one step and returns the parameters.
    """
    out: list[list[np.ndarray]] = []
    start = 0
    for size in CHUNKS + (1,):
        while len(rows) - start >= size:
            trail = [p[None] for p in single(rows[start])] if size == 1 else chunk(rows[start:start + size])
            if not out:
                out = [[] for _ in trail]
            for k, p in enumerate(trail):
                out[k].append(np.asarray(p))
            start += size
    return [np.concatenate(parts) for parts in out]


def loop_steps(rows: Sequence[Sequence[Any]], shapes: Sequence[tuple], *, loop: Any, step: Any, params: Any,
               to_tensor: Any, read: Any, context: Any) -> list[np.ndarray]:
    """``run.steps`` of a run whose framework compiles a dense loop: ``loop(stacked) -> trail``.

    Chunks of ``CHUNKS`` go through the loop (the gradients stacked per parameter by ``to_tensor``
    inside ``context()``, the trail read back by ``read``), single steps through ``step`` and
    ``params``. Without a loop, or for sparse rows, NotImplementedError: the harness steps them.
    """
    if loop is None or any(isinstance(g, SparseGrad) for row in rows for g in row):
        raise NotImplementedError("this run steps one row at a time")

    def single(row):
        step(row)
        return params()

    def chunk(part):
        for row in part:
            check_entries(row, shapes)
        with context():
            stacked = [to_tensor(np.stack([np.asarray(row[k], dtype=np.float64) for row in part]))
                       for k in range(len(shapes))]
            return [read(x) for x in loop(stacked)]

    return steps_in_chunks(rows, single, chunk)


def device_steps(rows: Sequence[Any], *, step: Any, snapshot: Any, read: Any) -> list[np.ndarray]:
    """``run.steps`` of a run that steps one row at a time but can keep copies on its device.

    After each ``step(row)``, ``snapshot()`` copies the parameters where they live (no transfer);
    ``read(copies)`` stacks one parameter's copies and brings them back once, at the end.
    """
    trail: list[list[Any]] = []
    for row in rows:
        step(row)
        copies = snapshot()
        if not trail:
            trail = [[] for _ in copies]
        for k, c in enumerate(copies):
            trail[k].append(c)
    return [read(ts) for ts in trail]
