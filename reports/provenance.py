"""Provenance of a run: which adamconf, goldens, interpreter, machine and packages produced it.

Collected in well under a second: package versions come from
``importlib.metadata`` (no framework is imported), the GPU list from
``nvidia-smi`` when it is on PATH, the git revision from ``git`` when adamconf
runs from a checkout of its own repository.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

__all__ = ["ENV_VARIABLES", "PACKAGES", "collect_provenance", "gpus", "git_state", "package_versions"]

#: Distributions whose versions change results; those installed are recorded.
PACKAGES = (
    "adamconf", "numpy", "mpmath", "gmpy2", "ml_dtypes",
    "torch", "triton",
    "tensorflow", "tensorflow-cpu", "tensorflow-metal", "tf_keras", "keras",
    "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "optax", "flax",
)

#: Environment variables that change which code path (and so which numerics) runs.
ENV_VARIABLES = (
    "KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS", "TF_DETERMINISTIC_OPS", "XLA_FLAGS",
    "JAX_ENABLE_X64", "JAX_PLATFORMS", "JAX_DEFAULT_MATMUL_PRECISION",
    "CUDA_VISIBLE_DEVICES", "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
)

_NVIDIA_SMI_TIMEOUT_S = 10
_GIT_TIMEOUT_S = 5


def collect_provenance(*, command: Sequence[str] | None = None,
                       golden_manifest_sha256: str | None = None,
                       git: "tuple[str | None, bool | None] | None" = None) -> dict[str, Any]:
    """The ``provenance`` object of a results file (docs/results-schema.md).

    ``command`` defaults to ``sys.argv``; ``golden_manifest_sha256`` is the hex
    SHA-256 of the golden manifest the run compared against (``None`` when the
    run used no goldens), which the golden store computes when it verifies.
    """
    from adamconf import __version__

    # git: the (revision, dirty) the run started from, read at its start (a long run's checkout may move on)
    revision, dirty = git if git is not None else git_state()
    return {
        "adamconf_version": __version__,
        "git_revision": revision,
        "git_dirty": dirty,
        "golden_manifest_sha256": golden_manifest_sha256,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}".strip(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus(),
        "packages": package_versions(),
        "env": {name: os.environ[name] for name in ENV_VARIABLES if name in os.environ},
        "command": [str(arg) for arg in (sys.argv if command is None else command)],
        "hostname": socket.gethostname(),
    }


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` for the installed ones among ``names`` and the
    distributions that provide ``adamconf.adapters`` entry points (third-party adapters)."""
    wanted = list(names)
    for entry in metadata.entry_points(group="adamconf.adapters"):
        if entry.dist is not None and entry.dist.name not in wanted:
            wanted.append(entry.dist.name)
    versions = {}
    for name in wanted:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs as ``[{"name", "driver", "memory_mb"}]``; empty without a working ``nvidia-smi``."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return []
    try:
        completed = subprocess.run(
            [executable, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if completed.returncode != 0:
        return []  # e.g. the driver is not loaded: no usable GPU either way
    return [_parse_gpu_line(line) for line in completed.stdout.splitlines() if line.strip()]


def _parse_gpu_line(line: str) -> dict[str, Any]:
    # "NVIDIA H100 80GB HBM3, 550.54.15, 81559" (nounits: MiB without the suffix);
    # the name itself never holds a comma, so the last two fields are split off.
    name, _, rest = line.strip().rpartition(", ")
    name, _, driver = name.rpartition(", ")
    memory = rest.split()[0] if rest.split() else ""
    return {"name": name or line.strip(), "driver": driver or None,
            "memory_mb": int(memory) if memory.isdigit() else None}


def git_state() -> tuple[str | None, bool | None]:
    """(HEAD revision, whether tracked files differ from it) of adamconf's own checkout, else (None, None).

    Only a checkout whose top level holds adamconf's pyproject.toml counts, so an
    installed copy inside some other repository (a venv in a project) records no
    revision rather than that project's.
    """
    import adamconf

    git = shutil.which("git")
    # the package's own checkout (editable install, or run from the source tree); else the
    # working directory when it is the adamconf checkout this copy was built from (tox runs
    # the installed wheel from the repository root)
    candidates = [Path(adamconf.__file__).resolve().parent.parent, Path.cwd()]
    root = next((c for c in candidates if (c / ".git").exists() and _is_this_adamconf(c / "pyproject.toml")), None)
    if git is None or root is None:
        return None, None
    revision = _git(git, root, "rev-parse", "HEAD")
    if revision is None:  # a repository without commits yet
        return None, None
    status = _git(git, root, "status", "--porcelain", "--untracked-files=no")
    return revision, (None if status is None else bool(status))


def _is_this_adamconf(pyproject: Path) -> bool:
    """pyproject.toml of adamconf at the version installed here."""
    import adamconf

    try:
        text = pyproject.read_text()
    except OSError:
        return False
    return 'name = "adamconf"' in text and f'version = "{adamconf.__version__}"' in text


def _git(git: str, root: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run([git, "-C", str(root), *args], capture_output=True, text=True,
                                   timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def _cpu_name() -> str | None:
    """The CPU model: /proc/cpuinfo on Linux, sysctl on macOS, platform.processor() elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        try:
            for line in cpuinfo.read_text(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
        except OSError:
            pass
    if sys.platform == "darwin":
        try:
            completed = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                       text=True, timeout=2, check=False)
            if completed.returncode == 0 and completed.stdout.strip():
                return completed.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return platform.processor() or None
