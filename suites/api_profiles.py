"""Shared parts of the API-profile suites: which adapters of a run claim a profile, and the closed-loop check.

An adapter claims a profile by setting ``api_profile`` to one of
``adamconf.adapters.contract.API_PROFILES`` and providing ``api_object()``, the
thing the profile's surface is checked on (for "keras-v2" an optimizer class
such as ``tf_keras.optimizers.legacy.Adam``). Each profile suite
(``suites/test_api_<profile>.py``) sets ``PROFILE`` and

    pytest_generate_tests = parametrize_profile(PROFILE)

which parametrizes every test of the module that takes ``adamconf_api`` with
one ``ApiSubject`` per adapter of the run that claims the profile, with ids
``adapter::profile::behaviour`` (``tf_keras.legacy.adam::keras-v2::weights_order``).
Adapters that do not claim the profile generate nothing; an adapter that claims
it but cannot run here (its framework is missing) is skipped with its reason.
When no adapter of the run can run the profile, the module is skipped as a
whole, with the reasons (one line in the summary, not one per test).

The adapters of the run are those named with ``--adapter`` (resolved as the
plugin does, ``adamconf.adapters.registry.load_adapter``); without any, every
built-in adapter, available or not, so that a missing framework shows as a
skip with the reason instead of silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from adamconf.adapters.contract import API_PROFILES, availability

__all__ = [
    "API_ARG",
    "ApiSubject",
    "assert_follows_reference",
    "claims",
    "parametrize_profile",
    "run_adapters",
]

#: The argument through which a profile test receives its ``ApiSubject``.
API_ARG = "adamconf_api"
_ADAPTERS = pytest.StashKey[list]()


@dataclass(frozen=True)
class ApiSubject:
    """One adapter under one API profile; ``api()`` is the object the surface is checked on."""

    adapter: Any
    profile: str

    @property
    def name(self) -> str:
        return self.adapter.name

    def api(self) -> Any:
        """The adapter's ``api_object()`` (called when the test runs: collection imports no framework)."""
        __tracebackhide__ = True
        if not callable(getattr(self.adapter, "api_object", None)):
            pytest.fail(f"adapter {self.name!r} claims the {self.profile!r} API profile but has no api_object() "
                        "method: add one returning the object that surface is checked on "
                        "(see adamconf.adapters.contract)", pytrace=False)
        return self.adapter.api_object()


def claims(adapter: Any, profile: str) -> bool:
    """Whether ``adapter`` claims ``profile``; a claim outside ``API_PROFILES`` is a usage error."""
    claimed = getattr(adapter, "api_profile", None)
    if claimed is not None and claimed not in API_PROFILES:
        raise pytest.UsageError(f"adapter {adapter.name!r} claims api_profile={claimed!r}, which is not an API "
                                f"profile; choose one of {', '.join(API_PROFILES)} or leave it unset")
    return claimed == profile


def run_adapters(config: pytest.Config) -> list[Any]:
    """The adapters of this run: the ``--adapter`` specs, or every built-in adapter (resolved once per run)."""
    cached = config.stash.get(_ADAPTERS, None)
    if cached is not None:
        return cached
    from adamconf.adapters.registry import UnknownAdapter, builtin_adapters, load_adapter

    try:
        specs = list(config.getoption("adamconf_adapters"))
    except ValueError:  # the adamconf plugin is disabled (-p no:adamconf): no --adapter option
        specs = []
    if specs:
        try:
            adapters = [load_adapter(spec) for spec in dict.fromkeys(specs)]
        except (UnknownAdapter, TypeError) as exc:
            raise pytest.UsageError(str(exc)) from None
    else:
        adapters = list(builtin_adapters().values())
    config.stash[_ADAPTERS] = adapters
    return adapters


def _why_nothing_runs(profile: str, reasons: dict[str, str | None], adapters: list[Any]) -> str:
    if reasons:
        return f"the {profile!r} API profile: " + "; ".join(f"{name}: {why}" for name, why in reasons.items())
    names = ", ".join(a.name for a in adapters) or "none"
    return f"no adapter of this run claims the {profile!r} API profile (adapters: {names})"


def parametrize_profile(profile: str) -> Callable[[pytest.Metafunc], None]:
    """A module-level ``pytest_generate_tests`` for the suite of ``profile``."""
    if profile not in API_PROFILES:
        raise ValueError(f"{profile!r} is not an API profile; choose one of {', '.join(API_PROFILES)}")

    def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
        if API_ARG not in metafunc.fixturenames:
            return
        behaviour = metafunc.function.__name__.removeprefix("test_")
        try:
            patterns = list(metafunc.config.getoption("adamconf_scenarios"))
        except ValueError:  # the adamconf plugin is disabled: no --scenario option
            patterns = []
        if patterns and "api" not in patterns:
            # a run narrowed to scenarios (a rerun command, say) is about numerics
            pytest.skip(f"API-profile suites run without --scenario, or with --scenario api (given: {patterns})")
        claimants = [a for a in run_adapters(metafunc.config) if claims(a, profile)]
        reasons = {a.name: availability(a) for a in claimants}  # never raises
        if not any(reason is None for reason in reasons.values()):
            # Nothing to run: one line for the whole module (a skip raised while collecting
            # skips the module) instead of an "empty parameter set" or a skip per test.
            pytest.skip(_why_nothing_runs(profile, reasons, run_adapters(metafunc.config)))
        params = []
        for adapter in claimants:
            reason = reasons[adapter.name]
            marks = [pytest.mark.api]
            if reason:
                marks.append(pytest.mark.skip(reason=f"{adapter.name} ({profile} API profile): {reason}"))
            params.append(pytest.param(ApiSubject(adapter, profile), marks=marks,
                                       id=f"{adapter.name}::{profile}::{behaviour}"))
        metafunc.parametrize(API_ARG, params)

    return pytest_generate_tests


def assert_follows_reference(subject: ApiSubject, config: Any, theta_run: Sequence[np.ndarray],
                             grads: Sequence[Sequence[np.ndarray]], dtype: str, *, path: str) -> None:
    """A run through the framework's own API stays within the error budget of the exact trajectory.

    theta_run: per tensor, the parameters after each step 0..T, shape (T+1, *shape),
    exactly as the framework holds them; grads: the gradient of each step, as
    the framework computed it (closed loop: from the run's own parameters), fed
    open-loop to the mpmath reference of the adapter's dialect. The tolerance is
    ``reference.judge``'s (every step's update and the
    trajectory), as for any case of the conformance suites.
    """
    __tracebackhide__ = True
    from adamconf.golden.scenarios import closed_loop
    from adamconf.golden.store import Golden
    from adamconf.reference.adam import trajectory
    from adamconf.reference.judge import judge_against

    dialect = subject.adapter.dialect
    theta_run = [np.asarray(th, dtype=np.float64) for th in theta_run]
    params0 = [th[0] for th in theta_run]
    exact = trajectory(config, dialect, params0, grads)
    label = dialect if isinstance(dialect, str) else dialect.key()
    scenario = closed_loop(f"api:{path}", config, [p.shape for p in params0], len(grads))
    golden = Golden.from_trajectory(scenario, label, params0, grads, exact)
    verdict = judge_against(golden, dialect, theta_run, dtype, declared=getattr(subject.adapter, "path_class", None),
                            cache=False)  # closed loop: these gradients are this run's own
    if not verdict.passed:
        pytest.fail(f"{subject.name}: {path} ({len(grads)} steps, {dtype}, {config}) leaves the error budget of "
                    f"the exact {label!r} trajectory:\n{verdict.message()}", pytrace=False)
