"""The judge's on-disk cache (reference/cache.py): the same Assessments as without it, and safe when damaged.

A cached entry must change nothing a verdict depends on: the judge with the cache off, with an entry
just written and with an entry read back in a fresh process state give identical Assessments (every
check value, the verdict, the path class, the reference). A damaged entry is recomputed, a change of
the reference's code misses, ``adamconf run --no-cache`` reads and writes nothing, and two processes
writing one entry at once leave a whole one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from adamconf.adapters.driver import drive, support
from adamconf.golden import scenarios as catalogue
from adamconf.golden.store import load_golden
from adamconf.reference import cache
from adamconf.reference import judge as J
from adamconf.reference.dialect import resolve_dialect

from conftest import ADAMCONF

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "numpy_adapter.py"

# small scenarios that reach every kind of entry: state, AMSGrad's vmax, the mean-error check, a
# float32 schedule refitted per run, non-finite values, weight decay, half precision
SAMPLE = ["dense-first-steps", "dense-dyadic-hat", "amsgrad-increasing-v", "decay-exponential", "edge-nan",
          "decay-weight-decoupled", "dtype-half"]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    where = tmp_path / "judge-cache"
    monkeypatch.setenv(cache.CACHE_DIR_VARIABLE, str(where))
    monkeypatch.delenv(cache.DISABLE_VARIABLE, raising=False)
    monkeypatch.setattr(J, "_CACHE", {})
    cache.set_enabled(None)
    return where


def _example():
    from adamconf.adapters.registry import load_adapter

    return load_adapter(f"{EXAMPLE}:NumpyAdam")


def _buggy():
    """The example with a 1e-3 relative error in a constant lr, features it lacks, no declared path class (so every
    class group is tried)."""
    mod = sys.modules[type(_example()).__module__]

    class BuggyRun(mod.NumpyAdamRun):
        def __init__(self, config, params, dtype):
            super().__init__(dataclasses.replace(config, lr=config.lr * (1 + 1e-3))
                             if isinstance(config.lr, float) else config, params, dtype)

    class Buggy(mod.NumpyAdam):
        name = "test.buggy_numpy_adam"
        path_class = None
        dtypes = ("float16", "bfloat16", "float32", "float64")
        features = ("state", "amsgrad", "schedule", "nonfinite", "decoupled_weight_decay")

        def start(self, config, params, *, dtype, device):
            return BuggyRun(config, params, dtype)

    return Buggy()


def _torch():
    from adamconf.adapters.contract import availability
    from adamconf.adapters.registry import builtin_adapters

    a = builtin_adapters().get("torch.adam")
    if a is None or availability(a, "cpu") is not None:
        pytest.skip("torch.adam is not available here")
    return a


def _runs(adapter):
    """(golden, dialect, theta, states, dtype, declared, bias_check) of every sampled case the adapter runs."""
    out = []
    for s in catalogue.select(SAMPLE):
        for dtype in s.dtypes:
            if support(adapter, s, dtype, "cpu"):
                continue
            dialect = resolve_dialect(adapter.dialect)
            golden = load_golden(s, dialect)
            want_state = "state" in adapter.features and len(golden.state_steps) > 0
            with np.errstate(all="ignore"):
                try:
                    d = drive(adapter, s, golden.params0, golden.grads, dtype, "cpu",
                              state_steps=golden.state_steps if want_state else ())
                except Exception:  # an adapter that refuses the case: nothing to judge
                    continue
            out.append((golden, dialect, d.theta, d.states or None, dtype, getattr(adapter, "path_class", None),
                        s.bias_check))
    assert out
    return out


def _judge(case, **kw):
    golden, dialect, theta, states, dtype, declared, bias_check = case
    return J.judge_against(golden, dialect, theta, dtype, states=states, declared=declared, bias_check=bias_check,
                           **kw)


def _same(a, b, where="") -> None:
    """Equal, NaN equal to NaN, floats bit for bit."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b and type(a) is type(b), f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("which", ["torch.adam", "buggy-numpy"])
def test_cached_and_uncached_judge_give_identical_assessments(cache_dir, which):
    adapter = _torch() if which == "torch.adam" else _buggy()
    cases = _runs(adapter)
    plain = [_judge(c, cache=False) for c in cases]
    stores, misses = cache.stats["stores"], cache.stats["misses"]
    written = [_judge(c) for c in cases]             # computed, and stored
    assert cache.stats["stores"] - stores == cache.stats["misses"] - misses > 0  # every kind of entry encodes
    J._CACHE.clear()
    hits = cache.stats["hits"]
    read = [_judge(c) for c in cases]                # every entry read back from disk
    assert cache.stats["hits"] > hits
    for a, b, c in zip(plain, written, read):
        _same(a, b)
        _same(a, c)
    if which == "torch.adam":
        assert all(a.passed for a in plain), [a.message() for a in plain if not a.passed]
    else:
        assert not all(a.passed for a in plain)


def test_a_damaged_entry_is_recomputed_not_used(cache_dir):
    case = _runs(_example())[0]
    want = _judge(case, cache=False)
    _judge(case)
    entries = sorted(cache_dir.glob("*.npz"))
    assert entries
    for i, path in enumerate(entries):  # one truncated, the others with a flipped byte in their data
        data = bytearray(path.read_bytes())
        if i == 0:
            data = data[: len(data) // 2]
        else:
            data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))
    J._CACHE.clear()
    corrupt = cache.stats["corrupt"]
    _same(want, _judge(case))
    assert cache.stats["corrupt"] - corrupt == len(entries)
    J._CACHE.clear()  # rewritten whole: read back
    hits = cache.stats["hits"]
    _same(want, _judge(case))
    assert cache.stats["hits"] - hits == len(entries)


def test_garbage_and_foreign_entries_are_misses(cache_dir):
    digest, key = "0" * 64, ("s", "k", 3, "budget")
    cache_dir.mkdir(parents=True)
    name, _ = cache._entry(digest, key)
    (cache_dir / f"{name}.npz").write_bytes(b"not a zip file")
    assert cache.load(digest, key) is None
    assert not (cache_dir / f"{name}.npz").exists()
    ref = J.Reference("v", "double", [np.arange(3.0)], [np.zeros(3)], {}, False)
    assert cache.store(digest, key, [ref])
    other = ("s", "k", 3, "variants")  # the right bytes under the wrong name: the header's key differs
    os.replace(cache_dir / f"{name}.npz", cache_dir / f"{cache._entry(digest, other)[0]}.npz")
    assert cache.load(digest, other) is None


def test_a_change_of_the_reference_code_misses(cache_dir, tmp_path, monkeypatch):
    src = Path(cache.__file__).resolve().parent
    copy = tmp_path / "reference"
    copy.mkdir()
    for p in src.glob("*.py"):
        shutil.copy(p, copy / p.name)
    assert cache.source_hash(copy) == cache.code_hash()
    (copy / "budget.py").write_text((copy / "budget.py").read_text() + "\n# a change\n")
    changed = cache.source_hash(copy)
    assert changed != cache.code_hash()

    case = _runs(_example())[0]
    _judge(case)
    J._CACHE.clear()
    monkeypatch.setattr(cache, "code_hash", lambda: changed)
    hits, misses = cache.stats["hits"], cache.stats["misses"]
    _judge(case)
    assert cache.stats["hits"] == hits and cache.stats["misses"] > misses


def test_the_cache_is_off_when_told(cache_dir, monkeypatch):
    assert cache.cache_dir() == cache_dir
    monkeypatch.setenv(cache.DISABLE_VARIABLE, "1")
    assert cache.cache_dir() is None
    monkeypatch.delenv(cache.DISABLE_VARIABLE)
    cache.set_enabled(False)
    try:
        assert cache.cache_dir() is None
        _judge(_runs(_example())[0])
        assert not cache_dir.exists()
    finally:
        cache.set_enabled(None)


def test_the_cache_is_off_unless_a_directory_is_named(monkeypatch, tmp_path):
    """Off by default: computing a case's budgets and variants costs what reading them back does (reference/cache.py)."""
    monkeypatch.delenv(cache.CACHE_DIR_VARIABLE, raising=False)
    monkeypatch.delenv(cache.DISABLE_VARIABLE, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache.set_enabled(None)
    assert cache.cache_dir() is None
    _judge(_runs(_example())[0])
    assert not any(tmp_path.rglob("*.npz"))


def test_run_no_cache_neither_reads_nor_writes(tmp_path):
    where = tmp_path / "c"
    env = {**os.environ, cache.CACHE_DIR_VARIABLE: str(where)}
    env.pop(cache.DISABLE_VARIABLE, None)
    base = [*ADAMCONF, "run", "--adapter", f"{EXAMPLE}:NumpyAdam", "--scenario", "dense-first-steps", "-n", "0",
            "--results", "", "-q", "-p", "no:cacheprovider"]
    r = subprocess.run([*base, "--no-cache"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not where.exists() or not any(where.iterdir())
    r = subprocess.run(base, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(where.glob("*.npz"))


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from adamconf.reference import cache
    from adamconf.reference.judge import Reference
    rng = np.random.default_rng(0)
    refs = [Reference(f"v{i}", "double", [rng.standard_normal((200, 1000))], [np.zeros((200, 1000))],
                      {"m": ([rng.standard_normal((4, 1000))], [np.zeros((4, 1000))])}, False) for i in range(4)]
    key = ("same", "entry", 1)
    for _ in range(int(sys.argv[1])):
        assert cache.store("d" * 64, key, refs)
        got = cache.load("d" * 64, key)
        assert got is not None and len(got) == 4
        assert all(np.array_equal(a.theta[0], b.theta[0]) for a, b in zip(got, refs))
    print("corrupt", cache.stats["corrupt"])
""")


def test_two_processes_writing_one_entry_leave_a_whole_one(cache_dir):
    env = {**os.environ, cache.CACHE_DIR_VARIABLE: str(cache_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, "15"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() == "corrupt 0"
    assert [p.name for p in cache_dir.iterdir()] == [f"{cache._entry('d' * 64, ('same', 'entry', 1))[0]}.npz"]


def test_the_directory_is_trimmed_to_its_bound(cache_dir, monkeypatch):
    monkeypatch.setenv(cache.MAX_MB_VARIABLE, "1")
    ref = J.Reference("v", "double", [np.ones((300, 100))], [np.zeros((300, 100))], {}, False)  # 240 kB
    for i in range(8):
        assert cache.store("e" * 64, ("k", i), [ref])
    total = sum(p.stat().st_size for p in cache_dir.glob("*.npz"))
    assert 0 < total <= 2 ** 20
    assert cache.load("e" * 64, ("k", 7)) is not None  # the newest is kept
