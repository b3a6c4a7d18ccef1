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
