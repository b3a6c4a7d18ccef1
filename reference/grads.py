"""Gradient entries: dense arrays or row-sparse ``SparseGrad``, and their coalescing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

__all__ = ["GradEntry", "SparseGrad", "all_finite", "coalesce", "to_dense"]


@dataclass(frozen=True)
class SparseGrad:
    """A row-sparse gradient: ``dense[indices[j]] += values[j]`` for each j.

    indices: int64, shape (nnz,), may repeat (repeats must be *summed*, as
    ``tf.IndexedSlices`` and ``torch.sparse_coo_tensor(...).coalesce()`` do);
    values: shape (nnz, *dense_shape[1:]); dense_shape: the parameter's shape.
    nnz may be 0 (an empty gradient).
    """

    indices: np.ndarray
    values: np.ndarray
    dense_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        idx = np.asarray(self.indices)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"SparseGrad.indices must be a 1-d integer array, got shape {idx.shape} "
                             f"dtype {idx.dtype}")
        expected = (idx.shape[0], *self.dense_shape[1:])
        if tuple(np.shape(self.values)) != expected:
            raise ValueError(f"SparseGrad.values has shape {np.shape(self.values)}, expected {expected} "
                             f"for {idx.shape[0]} rows of a parameter of shape {self.dense_shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.dense_shape[0]):
            raise ValueError(f"SparseGrad.indices out of range [0, {self.dense_shape[0]}): "
                             f"min {idx.min()}, max {idx.max()}")

    @property
    def nnz(self) -> int:
        return int(np.shape(self.indices)[0])


GradEntry = Union[np.ndarray, SparseGrad]


def coalesce(g: SparseGrad) -> SparseGrad:
    """Sum repeated rows (in float64, exact for the inputs the catalogue generates) and sort."""
    idx = np.asarray(g.indices, dtype=np.int64)
    uniq, inverse = np.unique(idx, return_inverse=True)
    summed = np.zeros((uniq.shape[0], *g.dense_shape[1:]), dtype=np.float64)
    np.add.at(summed, inverse, np.asarray(g.values, dtype=np.float64))
    return SparseGrad(uniq, summed, tuple(g.dense_shape))


def to_dense(g: GradEntry) -> np.ndarray:
    if isinstance(g, SparseGrad):
        c = coalesce(g)
        out = np.zeros(c.dense_shape, dtype=np.float64)
        out[c.indices] = c.values
        return out
    return np.asarray(g, dtype=np.float64)


def check_entries(grads: Sequence[GradEntry], shapes: Sequence[tuple[int, ...]]) -> None:
    """Raise a ValueError naming the tensor if a step's gradients do not match the parameters."""
    if len(grads) != len(shapes):
        raise ValueError(f"got {len(grads)} gradient entries for {len(shapes)} parameters")
    for k, (g, shape) in enumerate(zip(grads, shapes)):
        gshape = tuple(g.dense_shape) if isinstance(g, SparseGrad) else tuple(np.shape(g))
        if gshape != tuple(shape):
            raise ValueError(f"gradient {k} has shape {gshape}, parameter {k} has shape {tuple(shape)}")


def all_finite(entries: Sequence[GradEntry]) -> bool:
    """Whether every value of a step's gradients is finite (sparse: the values given)."""
    return all(bool(np.all(np.isfinite(e.values if isinstance(e, SparseGrad) else np.asarray(e, np.float64))))
               for e in entries)
