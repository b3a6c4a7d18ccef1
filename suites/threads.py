"""Cores shared among xdist workers: each worker's frameworks get cores / workers threads.

Every framework sizes its own thread pools for the whole machine: torch's intra-op pool
(OpenMP) and TensorFlow's intra- and inter-op pools take every core. With one xdist
worker per core, the pools of two workers contend for the same cores, and OpenMP's
threads spin while they wait: on this project's 2-core machine
``adamconf run --adapter torch.sparse_adam --scenario long-float16-3000 -n 2`` spent
36 s in each of its two 3,000-step cases against 5 s with one thread per worker
(SparseAdam's ``coalesce``/``sparse_mask`` enter a parallel region on every step).

The tensors of the catalogue are small (at most a few hundred elements), so a single
thread loses nothing a pool would gain. Elementwise results do not depend on the thread
count; a reduction (a clip norm) may, by its summation order, which the budgets bound
for every order (reference/budget.py).

Only defaults are set: a variable the user exported is kept.
"""

from __future__ import annotations

import os
import sys

__all__ = ["THREAD_VARIABLES", "share_cores", "usable_cores"]

#: the environment each framework reads its pool sizes from, at import or at first use:
#: OpenMP (torch's intra-op pool; numpy's BLAS), MKL, OpenBLAS, and TensorFlow's two pools
#: (tensorflow/core/common_runtime/process_util.cc reads TF_NUM_INTRAOP_THREADS and
#: TF_NUM_INTEROP_THREADS). Child interpreters (the bridge, exec: adapters) inherit them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def share_cores(workers: int, environ: dict | None = None) -> int:
    """Give one of ``workers`` processes its share of the cores; returns the threads it gets.

    threads = max(1, usable cores // workers). Sets each of THREAD_VARIABLES that is not
    already set, and torch's intra-op pool directly where torch is already imported (its
    pool is sized once, at first use).
    """
    env = os.environ if environ is None else environ
    threads = max(1, usable_cores() // max(1, int(workers)))
    for name in THREAD_VARIABLES:
        env.setdefault(name, str(threads))
    torch = sys.modules.get("torch")
    if torch is not None and environ is None:
        try:
            torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
        except (ValueError, RuntimeError):  # a user's value torch does not take: theirs to fix, not a failure here
            pass
    return threads
