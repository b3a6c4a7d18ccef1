"""Third-party adapters that misbehave, one fault each, for the fault battery (tests/test_faults.py).

Each is the correct numpy Adam of tests/numpy_adam.py until its float32 run reaches step 2,
where it commits its fault; its float64 runs stay correct, so a run over both dtypes shows
the fault costing one case while the others are judged. Loaded as a user loads an adapter:
``adamconf run --adapter tests/data/faults.py:Segfault``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from numpy_adam import NumpyAdapter  # noqa: E402  (tests/, put on the path above)

FAULT_STEP = 2  # the float32 run commits its fault when asked for this step


class Good(NumpyAdapter):
    """A correct float32/float64 numpy Adam (pytorch dialect)."""

    dtypes = ("float32", "float64")
    name_ = "fault.none"

    def __init__(self):
        super().__init__("pytorch")
        self.name = self.name_

    def start(self, config, params, *, dtype, device):
        run = super().start(config, params, dtype=dtype, device=device)
        if dtype == "float32":
            self.wrap(run)
        return run

    def wrap(self, run):  # the fault, planted in the float32 run
        pass


class _AtStep(Good):
    """Commits ``fault()`` when the run is asked for step FAULT_STEP."""

    def wrap(self, run):
        step = run.step

        def faulty(grads):
            if run.t + 1 == FAULT_STEP:
                self.fault()
            step(grads)

        run.step = faulty


# -- the process dies or hangs ------------------------------------------------------------------
class Segfault(_AtStep):
    name_ = "fault.segfault"

    def fault(self):
        ctypes.string_at(0)  # reads address 0: SIGSEGV


class Abort(_AtStep):
    name_ = "fault.abort"

    def fault(self):
        os.abort()  # SIGABRT, as a failed C assertion does


class Exit(_AtStep):
    name_ = "fault.exit"

    def fault(self):
        os._exit(3)  # no exception, no cleanup, status 3


class Killed(_AtStep):
    """SIGKILL, what the kernel's out-of-memory killer sends (a real OOM would endanger the host)."""

    name_ = "fault.killed"

    def fault(self):
        os.kill(os.getpid(), signal.SIGKILL)


class HangsDeaf(_AtStep):
    """A hang that no signal ends: every catchable signal blocked, then a C call holding the GIL.

    pytest-timeout's SIGALRM stays pending and no Python thread can run, so only a watchdog
    outside the interpreter (faulthandler's C thread) can end it.
    """

    name_ = "fault.hangs_deaf"

    def fault(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
        ctypes.PyDLL(None).sleep(3600)  # PyDLL: the GIL stays held


class Hangs(_AtStep):
    """A hang in Python: pytest-timeout's signal ends it."""

    name_ = "fault.hangs"

    def fault(self):
        time.sleep(3600)


class Raises(_AtStep):
    name_ = "fault.raises"

    def fault(self):
        raise RuntimeError("the kernel ran out of registers")


class Stalls(Good):
    """Correct, but its third run in a process stalls at step 2 after touching ``$ADAMCONF_TEST_MARK``.

    For the interrupt tests: two cases are judged, then the run waits for the signal.
    """

    name_ = "fault.stalls"
    started = 0

    def start(self, config, params, *, dtype, device):
        run = super().start(config, params, dtype=dtype, device=device)
        Stalls.started += 1
        if Stalls.started == 3:
            step = run.step

            def stall(grads):
                if run.t + 1 == FAULT_STEP:
                    Path(os.environ["ADAMCONF_TEST_MARK"]).touch()
                    time.sleep(3600)
                step(grads)

            run.step = stall
        return run


# -- the contract is broken ---------------------------------------------------------------------
class _Params(Good):
    """Its float32 run's params() goes through ``bend(list of arrays)`` from step FAULT_STEP on."""

    def wrap(self, run):
        read = run.params
        run.params = lambda: read() if run.t < FAULT_STEP else self.bend(read())


class Float16(_Params):
    name_ = "fault.float16"

    def bend(self, ps):
        return [p.astype(np.float16) for p in ps]


class Float64(_Params):
    name_ = "fault.float64"

    def bend(self, ps):
        return [p.astype(np.float64) for p in ps]


class Lists(_Params):
    name_ = "fault.lists"

    def bend(self, ps):
        return [p.tolist() for p in ps]


class NoneTensor(_Params):
    name_ = "fault.none_tensor"

    def bend(self, ps):
        return [None] + ps[1:]


class Shape(_Params):
    name_ = "fault.shape"

    def bend(self, ps):
        return [p.reshape(-1, 1) for p in ps]


class Count(_Params):
    name_ = "fault.count"

    def bend(self, ps):
        return ps[:-1]


class NaN(_Params):
    name_ = "fault.nan"

    def bend(self, ps):
        ps[0] = ps[0].copy()
        ps[0].flat[1] = np.nan
        return ps


class MutatesGrads(_AtStep):
    """Scales the gradient arrays it is given in place (as an in-place clip would), then steps."""

    name_ = "fault.mutates_grads"

    def fault(self):
        pass

    def wrap(self, run):
        step = run.step

        def mutating(grads):
            for g in grads:
                if isinstance(g, np.ndarray):
                    g *= 0.5
            step(grads)

        run.step = mutating


class MutatesParams(Good):
    """Keeps the initial-parameter arrays it was given as its own storage and updates them in place."""

    name_ = "fault.mutates_params"

    def start(self, config, params, *, dtype, device):
        run = super().start(config, params, dtype=dtype, device=device)
        if dtype == "float32":
            step = run.step

            def step_in_place(grads):
                step(grads)
                for given, now in zip(params, run.theta):
                    given[...] = now

            run.step = step_in_place
        return run
