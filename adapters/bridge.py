"""The subprocess bridge: run an adapter in a child process that speaks a JSON-lines protocol.

Why: an adapter in its own interpreter gets its own environment (``KERAS_BACKEND``,
``XLA_FLAGS``, a different venv), and a crash or a hang of the implementation
costs one case, not the run; and because the protocol is plain JSON (arrays as
base64 little-endian bytes, never pickle), the child may be any program in any
language. The protocol, message by message, is in docs/bridge-protocol.md.

This module holds the protocol's encoding (shared with the Python child,
``adamconf.adapters.bridge_server``) and the parent side: ``BridgedAdapter``
satisfies the adapter contract (adamconf.adapters.contract) by forwarding every
call to a child. One child serves consecutive runs; a child that dies or does not
answer in time is killed, the call raises ``ChildCrashed`` or ``ChildTimeout``,
and the next ``start`` gets a fresh child.

Specs: ``BridgedAdapter("torch.adam")`` runs ``python -m
adamconf.adapters.bridge_server torch.adam`` (any spec ``load_adapter`` knows);
``BridgedAdapter("exec:path/to/program --flag")`` runs that command line as is.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import weakref
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from adamconf.adapters._common import bfloat16_bits, widen_bfloat16_bits
from adamconf.adapters.contract import Unsupported
from adamconf.reference.config import AdamConfig
from adamconf.reference.dialect import Dialect
from adamconf.reference.grads import SparseGrad

__all__ = [
    "PROTOCOL_VERSION",
    "BridgeError",
    "BridgedAdapter",
    "BridgedRun",
    "ChildCrashed",
    "ChildTimeout",
    "ProtocolError",
    "RemoteError",
    "decode_array",
    "decode_grad",
    "encode_array",
    "encode_grad",
]

PROTOCOL_VERSION = 1
EXEC_PREFIX = "exec:"
_STDERR_TAIL_CHARS = 4000
#: the longest reply line read from a child (a steps reply of the longest scenario is ~10 MB): a child
#: writing more is killed with a ProtocolError instead of growing the harness's memory without bound
MAX_REPLY_BYTES = 512 * 2**20
_STDERR_LINE_BYTES = 8192
_OVERSIZED = object()  # the stdout reader's mark: a reply longer than MAX_REPLY_BYTES

# Array dtypes on the wire. bfloat16 travels as its 16 bits and is widened to
# float32 on decoding (exact), which is how the contract returns bfloat16 values.
_WIRE_DTYPES = {"float16": "<f2", "float32": "<f4", "float64": "<f8", "int32": "<i4", "int64": "<i8",
                "bfloat16": "<u2"}


# -- errors ---------------------------------------------------------------------------
class BridgeError(RuntimeError):
    """Something went wrong between the parent and an adapter's child process."""


class ChildCrashed(BridgeError):
    """The child process ended (exit code or signal) while a request was pending."""

    def __init__(self, message: str, returncode: int | None, stderr_tail: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ChildTimeout(BridgeError, TimeoutError):
    """The child did not answer within the timeout; it has been killed."""

    def __init__(self, message: str, stderr_tail: str) -> None:
        super().__init__(message)
        self.stderr_tail = stderr_tail


class ProtocolError(BridgeError):
    """The child answered something that is not a valid protocol reply; it has been killed."""


class RemoteError(BridgeError):
    """The adapter in the child raised; the child is still usable."""

    def __init__(self, error_type: str, message: str, remote_traceback: str = "") -> None:
        text = f"{error_type}: {message}"
        if remote_traceback:
            text += "\n--- traceback in the child ---\n" + remote_traceback.rstrip()
        super().__init__(text)
        self.error_type = error_type
        self.remote_message = message
        self.remote_traceback = remote_traceback


# -- encoding --------------------------------------------------------------------------
def encode_array(a: Any) -> dict:
    """``{"dtype", "shape", "data"}``: data is base64 of the little-endian C-order bytes."""
    a = np.asarray(a)
    name = a.dtype.name
    if name not in _WIRE_DTYPES:
        raise TypeError(f"cannot send an array of dtype {name}; the protocol carries {sorted(_WIRE_DTYPES)}")
    raw = bfloat16_bits(a) if name == "bfloat16" else a
    data = np.ascontiguousarray(raw, dtype=np.dtype(_WIRE_DTYPES[name])).tobytes()
    return {"dtype": name, "shape": list(a.shape), "data": base64.b64encode(data).decode("ascii")}


def decode_array(obj: Mapping) -> np.ndarray:
    """The numpy array of an encoded array (native byte order; bfloat16 widened to float32)."""
    try:
        name, shape, data = obj["dtype"], [int(n) for n in obj["shape"]], obj["data"]
    except (KeyError, TypeError, ValueError):
        raise ProtocolError(f"not an encoded array (needs dtype, shape, data): {str(obj)[:200]}") from None
    if name not in _WIRE_DTYPES:
        raise ProtocolError(f"array dtype {name!r} is not one of {sorted(_WIRE_DTYPES)}")
    raw = base64.b64decode(data, validate=True)
    wire = np.dtype(_WIRE_DTYPES[name])
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != count * wire.itemsize:
        raise ProtocolError(f"array of dtype {name} and shape {shape} needs {count * wire.itemsize} "
                            f"bytes, the data holds {len(raw)}")
    a = np.frombuffer(raw, dtype=wire).reshape(shape)
    if name == "bfloat16":
        return widen_bfloat16_bits(a)
    return a.astype(wire.newbyteorder("="))


def encode_grad(g: Any) -> dict:
    """A dense gradient is an array; a SparseGrad is ``{"indices", "values", "dense_shape"}``."""
    if isinstance(g, SparseGrad):
        return {"indices": encode_array(np.asarray(g.indices, dtype=np.int64)),
                "values": encode_array(np.asarray(g.values, dtype=np.float64)),
                "dense_shape": [int(n) for n in g.dense_shape]}
    return encode_array(np.asarray(g, dtype=np.float64))


def decode_grad(obj: Mapping) -> Any:
    if isinstance(obj, Mapping) and "indices" in obj:
        return SparseGrad(decode_array(obj["indices"]).astype(np.int64), decode_array(obj["values"]),
                          tuple(int(n) for n in obj["dense_shape"]))
    return decode_array(obj)


def encode_dialect(dialect: "str | Dialect") -> "str | dict":
    return dialect if isinstance(dialect, str) else dialect.to_dict()


def decode_dialect(obj: "str | Mapping") -> "str | Dialect":
    return obj if isinstance(obj, str) else Dialect(**obj)


def _stderr_excerpt(tail: str) -> str:
    return ("\n--- last lines of the child's stderr ---\n" + tail.rstrip()) if tail.strip() else \
        " (the child wrote nothing to stderr)"


# -- one child process ---------------------------------------------------------------------
class _Child:
    """A child process, its stdout lines as a queue, and the tail of its stderr."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], label: str) -> None:
        self.label = label
        try:
            # A session of its own: killing the process group also ends anything it spawned.
            self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=dict(env), start_new_session=True)
        except OSError as exc:
            raise BridgeError(f"{label}: cannot start the child {list(argv)}: {exc}") from None
        self._lines: queue.Queue = queue.Queue()
        self._stderr: collections.deque = collections.deque(maxlen=200)
        self._next_id = 0
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._readers:
            t.start()
        self._finalizer = weakref.finalize(self, _kill_process, self.proc)

    # Each reader closes its own pipe at end-of-file: no other thread touches it.
    def _read_stdout(self) -> None:
        limit = MAX_REPLY_BYTES  # read once: a test may lower it for one child
        with self.proc.stdout:
            while line := self.proc.stdout.readline(limit + 1):
                if len(line) > limit:
                    self._lines.put(_OVERSIZED)  # stop reading: the request kills the child
                    return
                self._lines.put(line)
        self._lines.put(None)  # EOF: the child closed stdout or died

    def _read_stderr(self) -> None:
        with self.proc.stderr:  # bounded: the last lines, each cut to _STDERR_LINE_BYTES
            while line := self.proc.stderr.readline(_STDERR_LINE_BYTES):
                self._stderr.append(line.decode("utf-8", "replace"))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self) -> str:
        return "".join(self._stderr)[-_STDERR_TAIL_CHARS:]

    def request(self, message: dict, timeout_s: float) -> dict:
        """Send one request and wait for its reply; raise the matching BridgeError on failure."""
        self._next_id += 1
        message = {"id": self._next_id, **message}
        op = message["op"]
        line = json.dumps(message, allow_nan=False).encode() + b"\n"
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            # the child has gone; what it wrote before it went (a stray line) says more than the crash
            try:
                reply_line = self._lines.get(timeout=1.0)
            except queue.Empty:
                reply_line = None
            if reply_line is None:
                raise self._crashed(op) from None
        else:
            reply_line = self._receive(op, timeout_s)
        return self._parse(op, message, reply_line)

    def _receive(self, op: str, timeout_s: float):
        """The next line the child wrote (None at its end), or ChildTimeout."""
        try:
            reply_line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            self.kill()
            raise ChildTimeout(
                f"{self.label}: no answer to {op!r} within {timeout_s:g} s; killed the child "
                f"(pid {self.proc.pid}).{_stderr_excerpt(self.stderr_tail())}",
                self.stderr_tail()) from None
        return reply_line

    def _parse(self, op: str, message: dict, reply_line) -> dict:
        """The reply to ``message``, checked; the matching BridgeError for anything else."""
        if reply_line is None:
            raise self._crashed(op)
        if reply_line is _OVERSIZED:
            self.kill()
            raise ProtocolError(f"{self.label}: the reply to {op!r} is longer than {MAX_REPLY_BYTES} bytes, the "
                                f"most a reply may be; killed the child. A child must write one JSON reply per "
                                f"line.{_stderr_excerpt(self.stderr_tail())}")
        try:
            reply = json.loads(reply_line)
            if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
                raise ValueError("a reply must be a JSON object with a boolean 'ok'")
            if reply.get("id", message["id"]) != message["id"]:
                raise ValueError(f"reply id {reply.get('id')!r} does not match request id {message['id']}")
        except ValueError as exc:
            self.kill()
            raise ProtocolError(f"{self.label}: invalid reply to {op!r} ({exc}); killed the child. "
                                f"The reply began: {reply_line[:300]!r}. A child must write nothing "
                                "but protocol replies to stdout.") from None
        if not reply["ok"]:
            error_type = str(reply.get("error", "Error"))
            text = str(reply.get("message", ""))
            if error_type == "Unsupported":
                raise Unsupported(text)
            raise RemoteError(error_type, text, str(reply.get("traceback", "")))
        return reply

    def _crashed(self, op: str) -> ChildCrashed:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # stdout closed but the process lingers
            self.kill()
            code = self.proc.returncode
        for t in self._readers:
            t.join(timeout=2)  # let the stderr reader drain what the child wrote last
        if code is not None and code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        tail = self.stderr_tail()
        return ChildCrashed(f"{self.label}: the child process (pid {self.proc.pid}) {how} while "
                            f"handling {op!r}.{_stderr_excerpt(tail)}", code, tail)

    def kill(self) -> None:
        _kill_process(self.proc)

    def close(self, timeout_s: float = 10.0) -> None:
        """Ask the child to exit; kill it if it does not."""
        if self.alive:
            try:
                self.request({"op": "close"}, timeout_s)
                self.proc.wait(timeout=timeout_s)
            except (BridgeError, Unsupported, subprocess.TimeoutExpired):
                pass
        self.kill()


def _kill_process(proc: subprocess.Popen) -> None:
    """Kill the child's process group and reap it.

    Only stdin is closed here: the reader threads see end-of-file on stdout and
    stderr once the process is gone, and closing those under them would race.
    """
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()
    try:
        proc.stdin.close()
    except OSError:
        pass


# -- the adapter --------------------------------------------------------------------------
class BridgedRun:
    """A run living in a child process; every method is one request."""

    def __init__(self, adapter: "BridgedAdapter", child: _Child, run_id: Any) -> None:
        self._adapter = adapter
        self._child = child
        self._run_id = run_id

    def _request(self, op: str, **fields) -> dict:
        if not self._child.alive:
            raise BridgeError(f"{self._child.label}: this run's child process has ended "
                              "(it crashed, timed out or was closed); start a new run")
        return self._adapter._request(self._child, {"op": op, "run": self._run_id, **fields})

    def step(self, grads: Sequence[Any]) -> None:
        self._request("step", grads=[encode_grad(g) for g in grads])

    def steps(self, rows: Sequence[Sequence[Any]]) -> list[np.ndarray]:
        """Many steps in one request (the optional ``steps`` message); NotImplementedError where the child
        cannot batch them or does not know the message, so that the harness steps one by one."""
        try:
            reply = self._request("steps", rows=[[encode_grad(g) for g in row] for row in rows])
        except RemoteError as exc:
            if exc.error_type in ("NotImplementedError", "ProtocolError"):
                raise NotImplementedError(str(exc)) from None
            raise
        return [decode_array(a) for a in reply["params"]]

    def params(self) -> list[np.ndarray]:
        return [decode_array(a) for a in self._request("params")["params"]]

    def state(self) -> dict:
        s = self._request("state")["state"]
        vmax = s.get("vmax")
        return {"step": int(s["step"]), "m": [decode_array(a) for a in s["m"]],
                "v": [decode_array(a) for a in s["v"]],
                "vmax": None if vmax is None else [decode_array(a) for a in vmax]}

    def save(self) -> bytes:
        return base64.b64decode(self._request("save")["blob"], validate=True)

    def config(self) -> str:
        return str(self._request("config")["config_text"])


class BridgedAdapter:
    """An adapter whose implementation runs in a child process (see the module docstring).

    spec: an adapter spec for the Python child, or ``"exec:<command line>"``.
    env: variables set (or, with value None, removed) in the child's environment on
    top of this process's. timeout_s: the longest wait for any reply;
    start_timeout_s: for the first (``hello``), which includes importing frameworks.
    name, dialect, description: declared here instead of taken from the child's hello
    (so a listing need not start the child for them); requires: modules that must
    be importable for the child to have a chance (checked without importing them).
    """

    def __init__(self, spec: str, *, env: Mapping[str, str | None] | None = None,
                 timeout_s: float = 120.0, start_timeout_s: float = 180.0,
                 name: str | None = None, dialect: "str | Dialect | None" = None,
                 description: str | None = None, requires: Sequence[str] = (),
                 python: str | None = None) -> None:
        self.spec = spec
        self.env = dict(env or {})
        self.timeout_s = timeout_s
        self.start_timeout_s = max(start_timeout_s, timeout_s)
        self.requires = tuple(requires)
        self.python = python or sys.executable
        self._declared = {k: v for k, v in (("name", name), ("dialect", dialect),
                                             ("description", description)) if v is not None}
        self._facts: dict | None = None
        self._hello_failure: str | None = None
        self._child: _Child | None = None

    # -- the child ------------------------------------------------------------------------
    def command(self) -> list[str]:
        """The child's command line."""
        if self.spec.startswith(EXEC_PREFIX):
            argv = shlex.split(self.spec[len(EXEC_PREFIX):])
            if not argv:
                raise ValueError(f"adapter spec {self.spec!r}: 'exec:' needs a command line")
            return argv
        return [self.python, "-m", "adamconf.adapters.bridge_server", self.spec]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        return env

    def _label(self) -> str:
        return f"bridged adapter {self._declared.get('name', self.spec)!r}"

    def _live_child(self) -> _Child:
        """The current child, or a fresh one after its hello."""
        if self._child is not None and self._child.alive:
            return self._child
        try:
            child = _Child(self.command(), self._environment(), self._label())
        except BridgeError as exc:
            self._hello_failure = str(exc)
            raise
        self._child = child
        try:
            reply = self._request(child, {"op": "hello", "protocol": PROTOCOL_VERSION},
                                  timeout_s=self.start_timeout_s)
            if int(reply.get("protocol", -1)) != PROTOCOL_VERSION:
                raise ProtocolError(f"{self._label()}: the child speaks protocol "
                                    f"{reply.get('protocol')!r}, this harness {PROTOCOL_VERSION}")
            self._facts = dict(reply["adapter"])
            self._facts["runtime"] = reply.get("runtime", {})
            self._hello_failure = None
        except (BridgeError, Unsupported, KeyError, TypeError) as exc:
            child.kill()
            self._child = None
            if isinstance(exc, (KeyError, TypeError)):
                exc = ProtocolError(f"{self._label()}: malformed hello reply ({exc!r})")
            self._hello_failure = str(exc)
            raise exc
        return child

    def _request(self, child: _Child, message: dict, timeout_s: float | None = None) -> dict:
        try:
            return child.request(message, self.timeout_s if timeout_s is None else timeout_s)
        except (ChildCrashed, ChildTimeout, ProtocolError):
            if self._child is child:
                self._child = None  # the next start() gets a fresh child
            raise

    def _fact(self, key: str, default: Any) -> Any:
        if key in self._declared:
            return self._declared[key]
        if self._facts is None and self._hello_failure is None:
            try:
                self._live_child()
            except (BridgeError, Unsupported):
                pass  # available() says why
        return (self._facts or {}).get(key, default)

    def close(self) -> None:
        """End the child process (a later start() starts a new one)."""
        if self._child is not None:
            self._child.close()
            self._child = None

    # -- declared facts (from the child's hello unless declared here) ---------------------------
    @property
    def name(self) -> str:
        return self._fact("name", self.spec)

    @property
    def dialect(self) -> "str | Dialect":
        return decode_dialect(self._fact("dialect", "kingma"))

    @property
    def dtypes(self) -> Collection[str]:
        return tuple(self._fact("dtypes", ()))

    @property
    def devices(self) -> Collection[str]:
        return tuple(self._fact("devices", ()))

    @property
    def features(self) -> Collection[str]:
        return frozenset(self._fact("features", ()))

    @property
    def description(self) -> str:
        return self._fact("description", f"{self.spec} in a child process")

    def runtime(self) -> dict:
        """What the current child says about itself now (the ``info`` op: language, pid, the
        versions of the frameworks it has loaded...), or what it said in its hello."""
        child = self._live_child()
        try:
            return dict(self._request(child, {"op": "info"}).get("runtime", {}))
        except (Unsupported, RemoteError):  # info is optional for other implementations
            return dict((self._facts or {}).get("runtime", {}))

    def available(self, device: str | None = None) -> str | None:
        """None if usable (on ``device`` if named), as the child's hello says; else why not."""
        import importlib.util

        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            return (f"{self.name} needs {', '.join(missing)} (not installed here; the child runs "
                    f"{self.python})")
        self._fact("available", True)
        if self._facts is None:
            return f"{self.name}: the child could not start the adapter: {self._hello_failure}"
        if not self._facts.get("available", True):
            return str(self._facts.get("unavailable_reason") or f"{self.name} is unavailable")
        if device is not None:
            if device not in self.devices:
                return f"{self.name} runs on {list(self.devices)}, not on {device!r}"
            return (self._facts.get("devices_unavailable") or {}).get(device)
        return None

    # -- the contract ---------------------------------------------------------------------
    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str,
              device: str) -> BridgedRun:
        child = self._live_child()
        reply = self._request(child, {"op": "start", "config": config.to_dict(), "dtype": dtype,
                                      "device": device, "params": [encode_array(np.asarray(p, np.float64))
                                                                   for p in params]})
        return BridgedRun(self, child, reply["run"])

    def restore(self, config: AdamConfig, blob: bytes, *, dtype: str, device: str) -> BridgedRun:
        child = self._live_child()
        reply = self._request(child, {"op": "restore", "config": config.to_dict(), "dtype": dtype,
                                      "device": device, "blob": base64.b64encode(blob).decode("ascii")})
        return BridgedRun(self, child, reply["run"])

    def rebuild(self, config_text: str, params: Sequence[np.ndarray], *, dtype: str,
                device: str) -> BridgedRun:
        child = self._live_child()
        reply = self._request(child, {"op": "rebuild", "config_text": config_text, "dtype": dtype,
                                      "device": device, "params": [encode_array(np.asarray(p, np.float64))
                                                                   for p in params]})
        return BridgedRun(self, child, reply["run"])

    def __repr__(self) -> str:
        return f"<bridged adapter {self._declared.get('name', self.spec)!r} via {self.command()}>"
