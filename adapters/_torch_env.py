"""PyTorch environment for the torch adapters: lazy import, dtypes, devices, tensor conversion.

torch is imported inside functions only, so that ``adamconf.adapters.torch_adapters``
imports (and lists its adapters as unavailable) where torch is not installed.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from adamconf.reference.grads import SparseGrad

from ._common import widen_bfloat16_bits

__all__ = [
    "device_reason",
    "import_torch",
    "inductor_reason",
    "prepare_device",
    "sparse_to_torch",
    "to_numpy",
    "to_tensor",
    "torch_dtype",
    "torch_missing_reason",
]

_DTYPES = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32", "float64": "float64"}


def torch_missing_reason() -> str | None:
    """None if torch imports, else why not and what to do."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return f"torch is not installed ({exc}): pip install 'adamconf[torch]'"
    return None


def import_torch() -> Any:
    import torch

    return torch


def torch_dtype(torch: Any, dtype: str) -> Any:
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; adamconf dtypes are {sorted(_DTYPES)}")
    return getattr(torch, _DTYPES[dtype])


def device_reason(device: str) -> str | None:
    """None if torch can run on ``device`` here, else the reason (e.g. "no CUDA device")."""
    reason = torch_missing_reason()
    if reason is not None:
        return reason
    torch = import_torch()
    if device == "cpu":
        return None
    if device == "cuda":
        if torch.cuda.is_available():
            return None
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        return (f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, {build}); "
                "run the CUDA cases on a machine with an NVIDIA GPU and a CUDA build of torch")
    return f"unknown device {device!r}; adamconf devices are 'cpu' and 'cuda'"


@functools.cache
def inductor_reason() -> str | None:
    """None if ``torch.compile`` (inductor, CPU) compiles and runs a trivial function here.

    A C++ compiler on PATH is not enough (headers, OpenMP, a writable cache dir
    all take part), so this really compiles once per process (a few seconds).
    """
    reason = torch_missing_reason()
    if reason is not None:
        return reason
    torch = import_torch()
    try:
        probe = torch.compile(lambda x: x * 2.0 + 1.0, backend="inductor", fullgraph=True)
        out = probe(torch.ones(3, dtype=torch.float64))
        if out.tolist() != [3.0, 3.0, 3.0]:
            return f"torch.compile (inductor) returned {out.tolist()} for 2*1+1; the compiler is broken here"
    except Exception as exc:  # any failure means: not usable here, and why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return (f"torch.compile (inductor, CPU) does not work here: {type(exc).__name__}: {first[:300]}; "
                "inductor needs a working C++ compiler (g++ or clang) and the Python headers")
    return None


def prepare_device(torch: Any, device: str) -> None:
    """Settings that make runs reproducible; global, and harmless for an optimizer step.

    ``use_deterministic_algorithms(warn_only=True)`` picks deterministic kernels
    (e.g. for sparse coalescing on CUDA) without making other ops raise. On CUDA,
    TF32 is turned off so that float32 means IEEE float32 (the Adam step has no
    matmul, but a caller's own code in the same process might).
    """
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device == "cuda":
        matmul = torch.backends.cuda.matmul
        if hasattr(matmul, "fp32_precision"):  # torch >= 2.9: the new precision API
            matmul.fp32_precision = "ieee"
            torch.backends.cudnn.fp32_precision = "ieee"
        else:
            matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False


def to_tensor(torch: Any, array: Any, dtype: str, device: str) -> Any:
    """A float64 numpy array (exact in ``dtype``) as a torch tensor of that dtype on ``device``."""
    host = torch.from_numpy(np.array(array, dtype=np.float64, copy=True))
    return host.to(dtype=torch_dtype(torch, dtype)).to(device)


def to_numpy(tensor: Any) -> np.ndarray:
    """The tensor's exact values: float16/32/64 as themselves, bfloat16 widened to float32."""
    torch = import_torch()
    host = tensor.detach().to("cpu")
    if host.dtype == torch.bfloat16:  # numpy has no bfloat16: its bits, widened as every adapter does
        return widen_bfloat16_bits(host.view(torch.int16).numpy())
    return host.numpy().copy()


def sparse_to_torch(torch: Any, entry: Any, shape: tuple[int, ...], dtype: str, device: str) -> Any:
    """A gradient entry as a ``torch.sparse_coo_tensor`` with sparse dimension 1.

    A ``SparseGrad`` keeps its repeated indices: summing them is torch's job
    (``SparseAdam`` calls ``grad.coalesce()``). A dense array becomes a sparse
    tensor in which every row is present (so every row is updated, as the
    reference treats dense entries); a 0-d parameter gets a 0-d sparse tensor.
    """
    tdtype = torch_dtype(torch, dtype)
    if isinstance(entry, SparseGrad):
        indices = np.asarray(entry.indices, dtype=np.int64)[None, :]
        values = np.asarray(entry.values, dtype=np.float64)
    else:
        values = np.asarray(entry, dtype=np.float64)
        if values.ndim == 0:
            indices, values = np.zeros((0, 1), dtype=np.int64), values[None]
        else:
            indices = np.arange(values.shape[0], dtype=np.int64)[None, :]
    t_indices = torch.from_numpy(np.ascontiguousarray(indices)).to(device)
    t_values = torch.from_numpy(np.array(values, dtype=np.float64, copy=True)).to(dtype=tdtype).to(device)
    return torch.sparse_coo_tensor(t_indices, t_values, tuple(shape), dtype=tdtype, device=device,
                                   check_invariants=True)
