"""The third-party Adam adapters (adapters/ecosystem_adapters.py): declarations, availability, short real runs.

Passes with or without the libraries installed: a run whose library is absent (or cannot run
here) is skipped with the adapter's own reason, which names the pip command. With a library
installed, a dense scenario and one of each declared family (decay, AMSGrad, state, half
precision) run through the suite's runner and are judged as ``adamconf run`` judges them: a case
listed in adapters/expectations/ecosystem.toml must fail as listed, every other case must pass.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from adamconf.adapters.contract import DTYPES, FEATURES, availability
from adamconf.adapters.ecosystem_adapters import ADAPTERS
from adamconf.adapters.registry import builtin_adapters
from adamconf.reference.dialect import resolve_dialect
from adamconf.reference.paths import parse_path_class
from adamconf.suites.runner import case_id
from test_builtin_conformance import assert_conforms
BY_NAME = {a.name: a for a in ADAPTERS}
LIBRARIES = sorted({a.library for a in ADAPTERS})


def test_declarations():
    registry = builtin_adapters()
    assert {"deepspeed.cpu_adam", "bitsandbytes.adam8bit", "optimi.adamw.kahan", "torchao.adamw.bf16_sr",
            "heavyball.adamw", "pytorch_optimizer.adamw"} <= set(BY_NAME)
    for a in ADAPTERS:
        assert registry[a.name] is a
        assert a.name.split(".")[0] in {"deepspeed", "bitsandbytes", "optimi", "torchao", "heavyball",
                                        "pytorch_optimizer", "mindspore"}
        assert set(a.dtypes) <= set(DTYPES) and a.devices == ("cpu",)
        assert set(a.features) <= set(FEATURES), set(a.features) - set(FEATURES)
        assert not {"sparse", "eps_root", "lr_decay", "config"} & set(a.features)
        resolve_dialect(a.dialect)
        parse_path_class(a.path_class)
        assert not ("weight_decay" in a.features and "decoupled_weight_decay" in a.features)
    assert BY_NAME["optimi.adamw.kahan"].path_class.endswith("theta=kahan")
    assert BY_NAME["torchao.adamw.bf16_sr"].dtypes == ("bfloat16",)
    assert "stochastic" in BY_NAME["torchao.adamw.bf16_sr"].path_class
    assert "float64" not in BY_NAME["bitsandbytes.adam"].dtypes  # its CPU kernel computes in float32


def test_module_imports_without_any_library():
    """A child interpreter in which every library is unimportable: the adapters list, each with a pip command."""
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in LIBRARIES)
    code = (f"import sys; {blocked}\n"
            "from adamconf.adapters.ecosystem_adapters import ADAPTERS\n"
            "from adamconf.adapters.contract import availability\n"
            "for a in ADAPTERS: print(a.name, '|', availability(a, 'cpu'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if "|" in line]
    assert len(lines) == len(ADAPTERS)
    for line in lines:
        name, _, reason = line.partition(" | ")
        assert "pip install" in reason and "==" in reason, line


def _scenarios(adapter):
    names = ["dense-default", "dense-first-steps"]
    if "weight_decay" in adapter.features:
        names.append("decay-weight-l2")
    if "decoupled_weight_decay" in adapter.features:
        names.append("decay-weight-decoupled")
    if "amsgrad" in adapter.features:
        names.append("amsgrad-decreasing-v")
    if "schedule" in adapter.features:
        names.append("decay-piecewise")
    for name in names:
        for dtype in ("float32",) if "float32" in adapter.dtypes else ():
            yield name, dtype
    if "bfloat16" in adapter.dtypes:
        yield "dtype-half", "bfloat16"


CASES = [pytest.param(a.name, s, d, id=case_id(a.name, s, d, "cpu")) for a in ADAPTERS for s, d in _scenarios(a)]


@pytest.mark.parametrize("adapter_name,scenario,dtype", CASES)
def test_library_matches_its_declared_dialect(adapter_name, scenario, dtype):
    assert_conforms(BY_NAME[adapter_name], scenario, dtype)


@pytest.mark.parametrize("name", [a.name for a in ADAPTERS if "checkpoint" in a.features])
def test_checkpoint_restores_bitwise(name):
    """save() at step 3, restore() into a fresh optimizer: steps 4..6 equal the uninterrupted run's, bit for bit."""
    import numpy as np

    from adamconf.reference.config import AdamConfig

    adapter = BY_NAME[name]
    reason = availability(adapter, "cpu")
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(1)
    dtype = "float32" if "float32" in adapter.dtypes else adapter.dtypes[0]
    params0 = [np.round(rng.standard_normal(s) * 64) / 64 for s in [(5,), (2, 3)]]
    grads = [[np.round(rng.standard_normal(p.shape) * 256) / 256 for p in params0] for _ in range(6)]
    config = AdamConfig(lr=1e-2)
    whole = adapter.start(config, params0, dtype=dtype, device="cpu")
    part = adapter.start(config, params0, dtype=dtype, device="cpu")
    for g in grads[:3]:
        whole.step(g)
        part.step(g)
    resumed = adapter.restore(config, part.save(), dtype=dtype, device="cpu")
    for g in grads[3:]:
        whole.step(g)
        resumed.step(g)
    for a, b in zip(whole.params(), resumed.params()):
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), (a, b)
