"""Every built-in CPU adapter through the real framework, judged against its declared dialect's golden.

One dense scenario per dtype, and one scenario of each family whose feature the
adapter declares (sparse, clipping, AMSGrad, decay). A case listed in the
shipped expectations files must fail as listed; every other case must pass.
"""

from __future__ import annotations

import pytest

from adamconf.adapters.contract import availability
from adamconf.adapters.registry import builtin_adapters
from adamconf.golden import scenarios as catalogue
from adamconf.suites.expectations import builtin_files, load_expectations
from adamconf.suites.runner import case_id, run_case

EXPECTATIONS = load_expectations([], builtin=builtin_files())

# A representative scenario per (feature it needs): the whole matrix is `adamconf run`'s job.
BY_FEATURE = {
    None: ["dense-default", "dense-dyadic"],
    "sparse": ["sparse-repeated-indices", "sparse-untouched-rows"],
    "clipnorm": ["clip-norm-fires"],
    "global_clipnorm": ["clip-global-fires"],
    "clipvalue": ["clip-value-fires"],
    "amsgrad": ["amsgrad-decreasing-v"],
    "lr_decay": ["decay-legacy-inverse-time"],
    "schedule": ["decay-piecewise"],
    "weight_decay": ["decay-weight-l2"],
    "decoupled_weight_decay": ["decay-weight-decoupled"],
}


def _cases():
    for name, adapter in sorted(builtin_adapters().items()):
        if "cpu" not in adapter.devices:
            continue
        for feature, scenarios in BY_FEATURE.items():
            if feature is not None and feature not in adapter.features:
                continue
            for scenario in scenarios:
                for dtype in ("float32", "float64"):
                    yield pytest.param(name, scenario, dtype, id=case_id(name, scenario, dtype, "cpu"))


@pytest.mark.parametrize("adapter_name,scenario,dtype", list(_cases()))
def test_builtin_adapter_matches_its_dialect(adapter_name, scenario, dtype):
    assert_conforms(builtin_adapters()[adapter_name], scenario, dtype)


def assert_conforms(adapter, scenario: str, dtype: str) -> None:
    """The case passes within its budget, or fails exactly as its expectation (adapters/expectations) says."""
    reason = availability(adapter, "cpu")
    if reason:
        pytest.skip(reason)
    out = run_case(adapter, catalogue.get(scenario), dtype, "cpu")
    if out.verdict == "skipped":
        pytest.skip(out.message)
    expected = EXPECTATIONS.find(out.id, builtin_adapter=True)
    if expected is not None:
        assert out.verdict == expected.verdict, (
            f"{out.id} is listed as a known deviation ({expected.reason[:120]}...) but {out.verdict}: "
            f"{out.message[:400]}")
    else:
        assert out.verdict == "passed", f"{out.id}: {out.message}\nrerun: {out.rerun}"
        assert out.budget_used <= 1
