"""Crash containment: a case that kills or wedges its process costs that case, never the run.

``adamconf run`` runs its cases in pytest-xdist worker processes (one worker even for a
single adapter); xdist replaces a worker that dies and reports the item it was running.
What xdist cannot say is why the worker died. This module keeps one fault log per worker
so that the controller can:

- worker side (``WorkerLog``): ``faulthandler`` writes the Python traceback of a fatal
  signal (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL) to the log, and a watchdog
  (``faulthandler.dump_traceback_later``: a C thread that needs neither the GIL nor a
  signal, so it also ends C code holding the GIL with every signal blocked) ends a case
  that outlives pytest-timeout's limit by ``grace_s``, writing ``Timeout`` and the
  traceback first; pytest-timeout's own SIGALRM gets the first chance, which keeps the
  worker alive and gives an ordinary timeout verdict;
- controller side (``death``): from the log and the worker's exit status, the verdict
  (``crashed`` or ``timeout``) and a message naming the signal or exit status and where
  the adapter was.

Nothing here runs under ``-n 0``: cases then run in pytest's own process, which a crash ends.
"""

from __future__ import annotations

import faulthandler
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, IO

__all__ = ["FaultLogs", "WorkerLog", "death", "forget", "grace_s"]

#: the header a worker writes before each case, so a log is never read for the wrong case
_CASE = "adamconf case: "
_TIMEOUT_MARK = "Timeout ("  # what dump_traceback_later writes first
_FATAL_MARK = "Fatal Python error: "  # what faulthandler writes for a fatal signal


def grace_s(timeout_s: float) -> float:
    """The watchdog's delay past pytest-timeout's limit: time for its SIGALRM to work first."""
    return max(5.0, 0.1 * timeout_s)


class FaultLogs:
    """The controller's directory of per-worker fault logs (made at configure, removed at unconfigure)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="adamconf-faults-"))

    @classmethod
    def at(cls, path: str | Path) -> "FaultLogs":
        """The controller's directory as a worker sees it (the worker never removes it)."""
        return cls(path)

    def for_worker(self, worker_id: str) -> Path:
        return self.path / f"{worker_id}.log"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class WorkerLog:
    """A worker's fault log: fatal signals are written to it, and a watchdog guards each case."""

    def __init__(self, path: str | Path) -> None:
        self._file: IO[str] = open(path, "w+", encoding="utf-8")  # noqa: SIM115  (open for the worker's life)

    def begin(self, nodeid: str, timeout_s: float | None) -> None:
        """Start a case: the log holds only its header, and the watchdog is armed (no timeout: none)."""
        f = self._file
        f.seek(0)
        f.truncate()
        f.write(f"{_CASE}{nodeid}\n")
        f.flush()  # faulthandler writes to the descriptor, after what is flushed
        # per case: pytest's faulthandler plugin points it at stderr when it configures
        faulthandler.enable(file=f, all_threads=True)
        if timeout_s:
            faulthandler.dump_traceback_later(timeout_s + grace_s(timeout_s), exit=True, file=f)

    def end(self) -> None:
        faulthandler.cancel_dump_traceback_later()

    def close(self) -> None:
        self.end()
        faulthandler.disable()
        self._file.close()


def forget(crashitem: str, sched: Any) -> None:
    """Keep xdist from running a crashed case again on the replacement worker.

    Its scope schedulers (``--dist loadscope/loadgroup``) put a dead worker's whole work unit,
    the crashed item included, back in the queue (xdist 3.8, ``LoadScopeScheduling.remove_node``):
    the case would crash every replacement in turn. Marking it done leaves the rest to run.
    """
    queue = getattr(sched, "workqueue", None)
    if not isinstance(queue, dict):
        return  # --dist load/each: the crashed item is not requeued
    for scope, unit in list(queue.items()):
        if isinstance(unit, dict) and crashitem in unit:
            unit[crashitem] = True
            if all(unit.values()):
                del queue[scope]


def _exit_status(node: Any) -> int | None:
    """The dead worker's exit status (negative: the signal that killed it), when xdist's gateway shows it."""
    popen = getattr(getattr(getattr(node, "gateway", None), "_io", None), "popen", None)
    if popen is None:
        return None
    try:
        return popen.wait(timeout=10)
    except Exception:  # still running (it closed its channel but lingers), or not a process
        return None


def _status_text(status: int | None) -> str:
    if status is None:
        return "its exit status is unknown"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        hint = {"SIGKILL": ": an out-of-memory kill or an outside kill", "SIGSEGV": ": a segmentation fault",
                "SIGABRT": ": an abort (a failed C assertion, std::terminate)", "SIGBUS": ": a bus error"}
        return f"killed by {name} (signal {-status}){hint.get(name, '')}"
    return f"it exited with status {status} (os._exit or exit() in the adapter or a library it calls)"


def _frames(text: str, limit: int = 5) -> str:
    """The innermost frames of the thread that ran the case, from faulthandler's dump (most recent call first).

    A fatal signal names that thread "Current thread"; a watchdog dump (written from faulthandler's
    own C thread) lists every Python thread alike, and the case's is the deepest: pytest's main thread.
    """
    blocks: list[tuple[str, list[str]]] = []
    for ln in text.splitlines():
        if ln.startswith(("Current thread", "Thread 0x")):
            blocks.append((ln, []))
        elif blocks and ln.strip().startswith("File "):
            blocks[-1][1].append(ln.strip())
    if not blocks:
        return ""
    current = [frames for head, frames in blocks if head.startswith("Current thread")]
    frames = current[0] if current else max((frames for _, frames in blocks), key=len)
    return "; ".join(frames[:limit])


def death(nodeid: str, node: Any, log: Path | None, timeout_s: float | None) -> tuple[str, str]:
    """(verdict, message) for the case ``nodeid`` whose worker ``node`` died while running it.

    The message leaves out the case id, which the caller puts first.
    """
    text = ""
    if log is not None and log.is_file():
        text = log.read_text(encoding="utf-8", errors="replace")
        if not text.startswith(f"{_CASE}{nodeid}\n"):
            text = ""  # the log is another case's (the worker died before this one began)
    status = _exit_status(node)
    where = _frames(text)
    where = f"; where it was (most recent call first): {where}" if where else ""
    if _TIMEOUT_MARK in text:
        limit = f"{timeout_s:g} s" if timeout_s else "the time limit"
        return "timeout", (f"timed out: no result {limit} after the case began, and it did not answer pytest-timeout's "
                           f"signal (it blocks or ignores signals, or C code holds the interpreter): the "
                           f"watchdog ended its process after a further {grace_s(timeout_s or 0):g} s{where}")
    fatal = next((ln[len(_FATAL_MARK):].strip() for ln in text.splitlines() if ln.startswith(_FATAL_MARK)), None)
    cause = _status_text(status) if status is not None or not fatal else f"{fatal} (faulthandler)"
    worker = getattr(getattr(node, "gateway", None), "id", None)
    return "crashed", f"crashed: the process running the case (xdist worker {worker}) died: {cause}{where}"
