"""``adamconf fingerprint``: numpy Adams of every preset, a mutant, the command line, the built-in adapters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy_adam import NumpyAdapter, NumpyRun

from adamconf.adapters.contract import availability
from adamconf.adapters.registry import builtin_adapters
from adamconf.cli import main
from adamconf.reference.dialect import AXES, PRESETS
from adamconf.suites.fingerprint import choose_dtype, fingerprint, render

TESTS_DIR = Path(__file__).resolve().parent
NUMPY_PRESETS = ("kingma", "pytorch", "keras", "optax", "pytorch-sparse")


def _verdicts(result: dict) -> dict[str, dict]:
    return {**result["axes"], **result["weight_decay"]}


def _disagreements(result: dict) -> dict[str, str]:
    """Every testable axis (and weight-decay feature) whose identified values miss the declared one."""
    return {name: f"{v['status']}: matches {v['values']}, declared {v['declared']!r}, nearest {v['nearest']!r}"
            for name, v in _verdicts(result).items()
            if v["status"] != "not testable" and (v["status"] != "identified" or v["declared"] not in v["values"])}


@pytest.mark.parametrize("preset", NUMPY_PRESETS)
def test_numpy_adam_of_each_preset_is_identified_on_every_axis(preset):
    result = fingerprint(NumpyAdapter(preset), path_class=False)
    assert result["dtype"] == "float64" and result["fallback"] is None
    assert all(v["status"] != "not testable" for v in _verdicts(result).values()), render(result)
    assert _disagreements(result) == {}, render(result)
    for axis, v in result["axes"].items():
        assert getattr(PRESETS[preset], axis) in v["values"]
    assert {f: v["value"] for f, v in result["weight_decay"].items()} == \
        {"weight_decay": "l2", "decoupled_weight_decay": "decoupled"}
    assert preset in result["presets"]
    assert result["identified"] is True


def test_epsilon_in_the_root_is_none_of_the_known_values():
    result = fingerprint(NumpyAdapter("kingma", "eps_in_root"), fallback=False, path_class=False)
    eps = result["axes"]["epsilon"]
    assert eps["status"] == "none" and eps["value"] is None and eps["values"] == []
    assert eps["nearest"] in AXES["epsilon"]
    assert all(e["budget_used"] is None or e["budget_used"] > 1 for e in eps["budget_used"])
    assert result["identified"] is False
    assert "epsilon" in render(result) and "none of the known values (nearest: " in render(result)


class _Float32Hyperparameters(NumpyRun):
    """A float64 Adam that holds beta1, beta2 and eps in float32 (as Keras does for float64 variables)."""

    def __init__(self, config, dialect, params, dtype, mutant=None):
        super().__init__(config, dialect, params, dtype, mutant)
        D = self.dt
        self.b1, self.b2, self.eps = (D(np.float32(x)) for x in (config.beta1, config.beta2, config.eps))


class _Float32HyperparametersAdapter(NumpyAdapter):
    def start(self, config, params, *, dtype, device):
        return _Float32Hyperparameters(config, self.dialect, params, dtype)


def test_float32_held_hyperparameters_are_identified_in_float64():
    """Holding beta1, beta2 and eps in float32 inside a float64 run is a path class (hyper=float32), not a
    mismatch: the fingerprint identifies the dialect in float64 itself."""
    result = fingerprint(_Float32HyperparametersAdapter("keras"), path_class=False)
    assert result["dtype"] == "float64"
    assert "fallback" not in result or not result["fallback"]
    assert _disagreements(result) == {}, render(result)


class _Float32InsideAdapter(NumpyAdapter):
    """Claims float64 but computes in float32 and widens the result: nothing matches in float64."""

    def start(self, config, params, *, dtype, device):
        run = NumpyRun(config, self.dialect, params, "float32" if dtype == "float64" else dtype)
        if dtype == "float64":
            inner = run.params
            run.params = lambda: [np.asarray(p, dtype=np.float64) for p in inner()]
        return run


def test_falls_back_to_float32_when_nothing_matches_in_float64():
    result = fingerprint(_Float32InsideAdapter("keras"), path_class=False)
    assert result["dtype"] == "float32"
    assert result["fallback"]["from"] == "float64"
    assert {v["status"] for v in result["fallback"]["axes"].values()} == {"none"}
    assert _disagreements(result) == {}, render(result)
    assert "note: in float64 no axis matched" in render(result)


def test_an_axis_whose_feature_is_missing_is_not_testable():
    adapter = NumpyAdapter("pytorch")
    adapter.features = ("state",)
    result = fingerprint(adapter, path_class=False)
    assert result["axes"]["sparse_rows"]["status"] == "not testable"
    assert result["axes"]["sparse_rows"]["message"] == "needs feature sparse (sparse-untouched-rows)"
    assert "not testable: needs feature global_clipnorm" in render(result)
    assert result["axes"]["epsilon"]["value"] == "standard"
    assert result["identified"] is True  # every axis it could test was identified


# -- the command line --------------------------------------------------------------------------------
def test_cli_json_through_a_file_spec(capsys):
    assert main(["fingerprint", f"{TESTS_DIR / 'numpy_adam.py'}:NumpyAdapter", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["adapter"] == "numpy.kingma" and result["dtype"] == "float64"
    assert {a: v["value"] for a, v in result["axes"].items()} == {
        "epsilon": "standard", "bias_correction": True, "amsgrad_max": "raw", "sparse_rows": "dense",
        "clip": "exact", "schedule_step": "t-1", "nonfinite": "propagate"}
    assert result["axes"]["clip"]["values"] == ["exact", "tf"]  # the same exact trajectory
    assert "kingma" in result["presets"]


def test_cli_text_and_exit_1_for_a_mutant(tmp_path, capsys):
    spec_file = tmp_path / "mutant.py"
    spec_file.write_text("from numpy_adam import NumpyAdapter\n\n\nclass EpsInRoot(NumpyAdapter):\n"
                         "    def __init__(self):\n        super().__init__('kingma', 'eps_in_root')\n")
    assert main(["fingerprint", f"{spec_file}:EpsInRoot", "--dtype", "float64"]) == 1
    out = capsys.readouterr().out
    assert "fingerprint of numpy.kingma+eps_in_root in float64" in out
    assert "epsilon" in out and "none of the known values" in out


def test_cli_usage_errors(capsys):
    assert main(["fingerprint", "no.such.adapter"]) == 2
    err = capsys.readouterr().err
    assert "unknown adapter 'no.such.adapter'" in err and "Known adapters" in err
    assert main(["fingerprint", f"{TESTS_DIR / 'numpy_adam.py'}:NumpyAdapter", "--dtype", "bfloat16"]) == 2
    assert "does not support --dtype bfloat16" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["fingerprint"])
    assert exc.value.code == 2


# -- the built-in adapters ---------------------------------------------------------------------------
BUILTINS = builtin_adapters()


#: third-party adapters whose fingerprint differs from the declared dialect on these axes, each a deviation
#: pinned in adapters/expectations/ecosystem.toml (the declaration is what the library documents)
KNOWN_DISAGREEMENTS: dict[str, set[str]] = {
    "bitsandbytes.adam": {"amsgrad_max", "weight_decay"},  # amsgrad accepted and ignored; weight_decay decoupled
    "bitsandbytes.adamw": {"amsgrad_max"},
    "heavyball.adamw": {"epsilon", "clip"},  # max(sqrt(v_hat), eps): no epsilon form of the catalogue fits
    "mindspore.adam": {"epsilon", "amsgrad_max"},  # the epsilon-hat kernel; amsgrad ignored
}
#: lossy by design: no axis is expected to be identified within a rounding budget
LOSSY = {"bitsandbytes.adam8bit": "8-bit block-quantized m and v"}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_fingerprint_identifies_the_declared_dialect_of_a_builtin_adapter(name):
    """In float32 (or the widest dtype the adapter has), where every built-in is meant to be a faithful Adam
    (in float64 several frameworks hold hyperparameters in float32: that is what ``fallback`` is for, tested
    above); the third-party deviations are exactly the known ones."""
    adapter = BUILTINS[name]
    reason = availability(adapter, "cpu")
    if reason:
        pytest.skip(reason)
    if name in LOSSY:
        pytest.skip(f"{name} is lossy by design ({LOSSY[name]}): its deviations are pinned in ecosystem.toml")
    dtype = choose_dtype(adapter, "float32")
    result = fingerprint(adapter, dtype, fallback=False, path_class=False)
    if all(v["status"] == "not testable" for v in _verdicts(result).values()):
        # the separating scenarios are float32/float64 scenarios: a 16-bit-only adapter (optimi's Kahan mode,
        # torchao's bfloat16 stochastic rounding) has none to run
        assert dtype in ("float16", "bfloat16"), render(result)
        pytest.skip(f"{name} runs {sorted(adapter.dtypes)} only, and no dialect-separating scenario is defined in "
                    f"a 16-bit format")
    known = KNOWN_DISAGREEMENTS.get(name, set())
    assert set(_disagreements(result)) <= known, render(result)
    assert result["identified"] is True or known, render(result)
    assert any(v["status"] == "identified" for v in _verdicts(result).values()), render(result)


def test_the_path_class_is_detected_ignoring_the_declaration():
    """numpy_adam.py raises fl(beta) to t with numpy's pow and forms 1 - fl(beta) in the dtype (form A)."""
    adapter = NumpyAdapter("pytorch")
    adapter.path_class = "powers=square"  # wrong on purpose: the fingerprint ignores it and says so
    result = fingerprint(adapter)
    pc = result["path_class"]
    assert pc["detected"] == "powers=pow,theta=once,hyper=dtype", pc
    assert pc["reference"].endswith("v:A,powers:pow")
    assert pc["consistent"] is False
    assert "NOT the declared class" in render(result)
