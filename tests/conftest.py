"""Shared test helpers."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# The installed console script, not `python -m adamconf`: run from the repository root,
# `-m` would import the source folder adamconf/ (the core alone) instead of the installed
# package that maps reference/, golden/, ... into it.
_SCRIPT = Path(sys.executable).parent / "adamconf"
ADAMCONF = [str(_SCRIPT)] if _SCRIPT.exists() else [shutil.which("adamconf") or "adamconf"]


# The judge's on-disk cache (reference/cache.py) goes to a directory of this test session, so that the tests
# neither read entries an earlier run wrote nor fill the user's ~/.cache; xdist workers inherit it from the
# controller, which configures first. A cache given explicitly (ADAMCONF_CACHE_DIR) is used as given.
_OWN_CACHE: list[str] = []


def pytest_configure(config):
    import os
    import tempfile

    if "ADAMCONF_CACHE_DIR" not in os.environ:
        _OWN_CACHE.append(tempfile.mkdtemp(prefix="adamconf-test-cache-"))
        os.environ["ADAMCONF_CACHE_DIR"] = _OWN_CACHE[0]


def pytest_unconfigure(config):
    import os

    for path in _OWN_CACHE:
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get("ADAMCONF_CACHE_DIR") == path:
            del os.environ["ADAMCONF_CACHE_DIR"]
