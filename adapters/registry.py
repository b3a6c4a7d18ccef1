"""Finding adapters by spec: built-in names, entry points, ``module:Name``, ``file.py:Name``.

Built-in adapter modules are listed in ``BUILTIN_MODULES``; each must import
without its framework installed (the framework is imported inside the adapter)
and define ``ADAPTERS``, a list of adapter instances.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["ENTRY_POINT_GROUP", "UnknownAdapter", "builtin_adapters", "known_names", "load_adapter", "spec_of"]

ENTRY_POINT_GROUP = "adamconf.adapters"
BUILTIN_MODULES = (
    "adamconf.adapters.numpy_adapters",
    "adamconf.adapters.torch_adapters",
    "adamconf.adapters.keras_adapters",
    "adamconf.adapters.optax_adapters",
    "adamconf.adapters.ecosystem_adapters",
    "adamconf.adapters.bridged",
)


#: (adapter, spec) of every adapter ``load_adapter`` resolved from a spec other than a built-in name
_LOADED: list[tuple[Any, str]] = []


class UnknownAdapter(LookupError):
    """An adapter spec that names nothing; the message lists what is known."""


def builtin_adapters() -> dict[str, Any]:
    """Every built-in adapter by name (modules that are not written yet are skipped)."""
    found: dict[str, Any] = {}
    for modname in BUILTIN_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue
            raise
        for adapter in getattr(mod, "ADAPTERS", ()):
            if adapter.name in found:
                raise RuntimeError(f"two built-in adapters are named {adapter.name!r} ({modname})")
            found[adapter.name] = adapter
    return found


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def known_names() -> list[str]:
    return sorted(set(builtin_adapters()) | set(_entry_points()))


def _instantiate(obj: Any, spec: str) -> Any:
    adapter = obj() if isinstance(obj, type) else obj
    missing = [a for a in ("name", "dialect", "dtypes", "devices", "features", "start") if not hasattr(adapter, a)]
    if missing:
        raise TypeError(f"adapter spec {spec!r} resolved to {obj!r}, which lacks {missing}; "
                        "see adamconf.adapters.Adapter for the contract")
    return adapter


def _load_file(path: Path, attr: str, spec: str) -> Any:
    if not path.is_file():
        raise UnknownAdapter(f"adapter spec {spec!r}: file {str(path)!r} does not exist")
    modname = f"adamconf_user_adapter_{abs(hash(str(path.resolve())))}"
    if modname not in sys.modules:
        module_spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[modname] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # the user's file: say what broke in it, not the harness's traceback
            del sys.modules[modname]
            where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
            raise UnknownAdapter(f"adapter spec {spec!r}: importing {str(path)!r} raised "
                                 f"{type(exc).__name__}{where}: {exc}") from None
    module = sys.modules[modname]
    if not hasattr(module, attr):
        raise UnknownAdapter(f"adapter spec {spec!r}: {str(path)!r} defines no {attr!r}"
                             + _closest(attr, [n for n in vars(module) if not n.startswith("_")]))
    return getattr(module, attr)


def _closest(name: str, known: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest of ``known`` (difflib's ratio), or nothing."""
    import difflib

    near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def spec_of(name: str) -> str:
    """The spec by which the adapter named ``name`` was last loaded in this process, else ``name``.

    What a rerun command must repeat: ``path/to/file.py:Name`` for an adapter from a file,
    the name itself for a built-in (``spec_of("torch.adam") == "torch.adam"``).
    """
    for adapter, spec in reversed(_LOADED):
        if getattr(adapter, "name", None) == name:
            return spec
    return name


def load_adapter(spec: str) -> Any:
    """Resolve a spec to an adapter instance.

    Order: built-in name, entry point in group ``adamconf.adapters``,
    ``exec:COMMAND LINE`` (any program speaking the bridge protocol, docs/bridge-protocol.md),
    ``bridge:SPEC`` (SPEC run in a child interpreter), ``path/to/file.py:Name``,
    ``package.module:Name``. The spec is remembered for ``spec_of``.
    """
    builtins = builtin_adapters()
    if spec in builtins:
        return builtins[spec]
    adapter = _load(spec)
    if not any(a is adapter for a, _ in _LOADED):
        _LOADED.append((adapter, spec))  # its name is read only when asked (a bridge starts a child for it)
    return adapter


def _load(spec: str) -> Any:
    eps = _entry_points()
    if spec in eps:
        return _instantiate(eps[spec].load(), spec)
    if spec.startswith("exec:"):
        from .bridge import BridgedAdapter

        return BridgedAdapter(spec)
    if spec.startswith("bridge:"):
        from .bridge import BridgedAdapter

        return BridgedAdapter(spec[len("bridge:"):])
    if ":" in spec:
        target, _, attr = spec.rpartition(":")
        if target.endswith(".py") or "/" in target or "\\" in target:
            return _instantiate(_load_file(Path(target), attr, spec), spec)
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise UnknownAdapter(f"adapter spec {spec!r}: cannot import module {target!r} ({exc})") from None
        except Exception as exc:
            raise UnknownAdapter(f"adapter spec {spec!r}: importing module {target!r} raised "
                                 f"{type(exc).__name__}: {exc}") from None
        if not hasattr(module, attr):
            raise UnknownAdapter(f"adapter spec {spec!r}: module {target!r} has no attribute {attr!r}"
                                 + _closest(attr, [n for n in vars(module) if not n.startswith("_")]))
        return _instantiate(getattr(module, attr), spec)
    raise UnknownAdapter(
        f"unknown adapter {spec!r}{_closest(spec, known_names()) or '.'} Known adapters: "
        f"{', '.join(known_names()) or '(none)'}. "
        "Or give 'package.module:Name', 'path/to/file.py:Name', or an entry point "
        f"in the group {ENTRY_POINT_GROUP!r}; `adamconf list adapters` shows availability."
    )
