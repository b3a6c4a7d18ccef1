"""The child side of the subprocess bridge: serve one adapter over JSON lines on stdin/stdout.

Run as ``python -m adamconf.adapters.bridge_server SPEC`` (SPEC: anything
``adamconf.adapters.registry.load_adapter`` resolves). Reads one request per line
from stdin, writes one reply per line, until ``close`` or end of input. The
protocol is in docs/bridge-protocol.md; the parent side is
``adamconf.adapters.bridge.BridgedAdapter``.

Frameworks print (TensorFlow's banners, a stray ``print`` in an adapter, C
libraries writing to file descriptor 1): any of that on the protocol stream would
corrupt it. So the server first moves the protocol to a private duplicate of the
original stdout and points file descriptor 1 at stderr; whatever else is written
to "stdout" ends in the parent's stderr tail, where it helps diagnose a crash.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import platform
import sys
import traceback
from typing import IO, Any, Callable

import numpy as np

from adamconf.adapters.bridge import (
    PROTOCOL_VERSION,
    decode_array,
    decode_grad,
    encode_array,
    encode_dialect,
)
from adamconf.adapters.contract import Unsupported, describe
from adamconf.reference.config import AdamConfig

__all__ = ["Server", "main"]

# Frameworks whose versions the hello reports when they are loaded in the child.
_FRAMEWORKS = ("numpy", "torch", "tensorflow", "tf_keras", "keras", "jax", "jaxlib", "optax")


def _runtime() -> dict:
    info: dict[str, Any] = {"language": f"python {platform.python_version()}",
                            "executable": sys.executable, "pid": os.getpid(),
                            "platform": platform.platform()}
    info["modules"] = {m: str(getattr(sys.modules[m], "__version__", "?"))
                       for m in _FRAMEWORKS if m in sys.modules}
    if "KERAS_BACKEND" in os.environ:
        info["KERAS_BACKEND"] = os.environ["KERAS_BACKEND"]
    return info


class Server:
    """The request handlers for one adapter; runs are kept by id."""

    def __init__(self, spec: str) -> None:
        from adamconf.adapters.registry import load_adapter

        self.spec = spec
        self.closing = False
        self._runs: dict[int, Any] = {}
        self._ids = itertools.count(1)
        self._load_error: Exception | None = None
        try:
            self.adapter = load_adapter(spec)
        except Exception as exc:  # reported by hello, so the parent gets a message, not a crash
            self.adapter = None
            self._load_error = exc
        self._ops: dict[str, Callable[[dict], dict]] = {
            "hello": self.hello, "start": self.start, "step": self.step, "steps": self.steps, "params": self.params,
            "state": self.state, "save": self.save, "restore": self.restore,
            "config": self.config, "rebuild": self.rebuild, "info": self.info, "close": self.close,
        }

    # -- dispatch ----------------------------------------------------------------------
    def handle(self, line: bytes | str) -> dict:
        """One reply for one request line; never raises for a bad request."""
        request: Any = None
        try:
            try:
                request = json.loads(line)
            except ValueError as exc:
                raise _BadRequest(f"a request must be one JSON object per line: {exc}") from None
            if not isinstance(request, dict) or request.get("op") not in self._ops:
                raise _BadRequest(f"unknown op {request.get('op') if isinstance(request, dict) else request!r}; "
                                  f"known: {sorted(self._ops)}")
            op = request["op"]
            if op not in ("hello", "info", "close") and self.adapter is None:
                raise _BadRequest(f"the adapter {self.spec!r} could not be loaded: {self._load_error}")
            reply = {"ok": True, **self._ops[op](request)}
        except Exception as exc:
            reply = {"ok": False, "error": _error_name(exc), "message": str(exc),
                     "traceback": "" if isinstance(exc, (_BadRequest, Unsupported)) else traceback.format_exc()}
        if isinstance(request, dict) and "id" in request:
            reply["id"] = request["id"]
        return reply

    def _run(self, request: dict, method: str | None = None) -> Any:
        try:
            run = self._runs[request["run"]]
        except KeyError:
            raise _BadRequest(f"no run {request.get('run')!r} in this child (runs: {sorted(self._runs)})") from None
        if method is not None:
            _require(run, method)
        return run

    def _new_run(self, run: Any) -> dict:
        run_id = next(self._ids)
        self._runs[run_id] = run
        return {"run": run_id}

    # -- handlers ------------------------------------------------------------------------
    def hello(self, request: dict) -> dict:
        if self.adapter is None:
            raise self._load_error
        facts = describe(self.adapter)
        facts["dialect"] = encode_dialect(self.adapter.dialect)
        return {"protocol": PROTOCOL_VERSION, "adapter": facts, "runtime": _runtime()}

    def info(self, request: dict) -> dict:
        return {"runtime": _runtime()}

    def start(self, request: dict) -> dict:
        params = [decode_array(p) for p in request["params"]]
        run = self.adapter.start(AdamConfig.from_dict(request["config"]), params,
                                 dtype=request["dtype"], device=request["device"])
        return self._new_run(run)

    def step(self, request: dict) -> dict:
        self._run(request).step([decode_grad(g) for g in request["grads"]])
        return {}

    def steps(self, request: dict) -> dict:
        """Many steps in one request: the parameters after each, stacked (the run's own ``steps`` if it has one).

        A run that cannot batch these rows (no ``steps``, or NotImplementedError from it, which the contract
        requires before any step is taken) is stepped here, one row at a time, as the harness would step it:
        the same calls, without a request and a reply per step (Keras 3 on JAX, eager, 2,000 steps:
        6.2 s with a request per step, 4.3 s in one).
        """
        run = self._run(request)
        rows = [[decode_grad(g) for g in row] for row in request["rows"]]
        stacked = None
        if hasattr(run, "steps"):
            try:
                stacked = [np.asarray(a) for a in run.steps(rows)]
            except NotImplementedError:
                pass
        if stacked is None:
            trail = []
            for row in rows:
                run.step(row)
                trail.append([np.asarray(p) for p in run.params()])
            stacked = [np.stack([after[k] for after in trail]) for k in range(len(trail[0]))] if trail else []
        return {"params": [encode_array(a) for a in stacked]}

    def params(self, request: dict) -> dict:
        return {"params": [encode_array(p) for p in self._run(request).params()]}

    def state(self, request: dict) -> dict:
        s = self._run(request, "state").state()
        vmax = s.get("vmax")
        return {"state": {"step": int(s["step"]), "m": [encode_array(a) for a in s["m"]],
                          "v": [encode_array(a) for a in s["v"]],
                          "vmax": None if vmax is None else [encode_array(a) for a in vmax]}}

    def save(self, request: dict) -> dict:
        return {"blob": base64.b64encode(self._run(request, "save").save()).decode("ascii")}

    def restore(self, request: dict) -> dict:
        _require(self.adapter, "restore")
        run = self.adapter.restore(AdamConfig.from_dict(request["config"]),
                                   base64.b64decode(request["blob"], validate=True),
                                   dtype=request["dtype"], device=request["device"])
        return self._new_run(run)

    def config(self, request: dict) -> dict:
        return {"config_text": self._run(request, "config").config()}

    def rebuild(self, request: dict) -> dict:
        _require(self.adapter, "rebuild")
        params = [decode_array(p) for p in request["params"]]
        run = self.adapter.rebuild(request["config_text"], params, dtype=request["dtype"],
                                   device=request["device"])
        return self._new_run(run)

    def close(self, request: dict) -> dict:
        self.closing = True
        return {}


def _require(obj: Any, method: str) -> None:
    """Unsupported (the case is skipped) when the adapter or run lacks an optional method."""
    if not callable(getattr(obj, method, None)):
        raise Unsupported(f"{type(obj).__name__} has no {method}() (see the adapter contract's "
                          "optional features state, checkpoint and config)")


class _BadRequest(Exception):
    """A request the protocol cannot serve (unknown op, unknown run)."""


def _error_name(exc: Exception) -> str:
    if isinstance(exc, Unsupported):
        return "Unsupported"
    if isinstance(exc, _BadRequest):
        return "ProtocolError"
    return type(exc).__name__


def _claim_stdout() -> IO[str]:
    """The protocol stream: a duplicate of the original stdout; fd 1 now goes to stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)


def serve(server: Server, requests: IO[bytes], replies: IO[str]) -> None:
    for line in requests:
        if not line.strip():
            continue
        replies.write(json.dumps(server.handle(line), allow_nan=False) + "\n")
        replies.flush()
        if server.closing:
            break


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m adamconf.adapters.bridge_server SPEC\n"
              "Serves the adapter SPEC (a built-in name, package.module:Name or file.py:Name) over "
              "the JSON-lines protocol of docs/bridge-protocol.md on stdin/stdout.", file=sys.stderr)
        return 2
    replies = _claim_stdout()
    serve(Server(argv[0]), sys.stdin.buffer, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
