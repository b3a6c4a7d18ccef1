"""Random scenarios: hypothesis strategies for Adam runs, their goldens computed on the fly, and a check.

What it is for: the catalogue (golden/scenarios.py) is 39 hand-made scenarios; the budget claims to
hold for *every* run. Here an example is a ``golden.scenarios.Scenario`` like the catalogue's (an
``AdamConfig``, shapes, steps and an ``Inputs`` recipe of golden/inputs.py: a seed and options, so an
example is reproducible from its JSON alone), defined in one dtype, whose golden is computed by the
mpmath reference when it is needed (``golden_for``: what golden/build.py computes and golden/store.py
turns into a ``Golden``, in memory, the store untouched). ``check`` runs an adapter on it through the
harness's own path (``adamconf.adapters.driver.drive`` and ``adamconf.reference.judge.judge_against``,
as ``suites/runner.py`` ``run_case`` does) and returns the verdict.

Strategies (``examples``):

- shapes: one to three tensors of at most ~40 elements in all, scalars and empty tensors included;
- steps: 1 to 40;
- gradients: ``grad_scale`` a power of two over many binades (float64 2^-60..2^60, float32 and
  bfloat16 2^-100..2^40, so that v underflows in some, float16 2^-9..2^5: every input value exact and
  v in range), per-tensor scales up to 2^+-30 apart, the profiles of golden/inputs.py (flat,
  decreasing, increasing, norm sweep, sign flip, zero then normal), a tensor of zeros; sparse row
  gradients with repeated rows and empty steps; a non-finite entry now and then;
- hyperparameters: lr, betas (0 included), eps and eps_root over wide ranges in float32/float64, values
  that are numbers of the dtype's range in float16/bfloat16 (fl(beta) < 1, eps not rounded to zero);
  AMSGrad; coupled L2 and decoupled weight decay; the legacy inverse-time decay; piecewise-constant and
  exponential schedules (staircase or not); clipvalue, clipnorm and global_clipnorm with thresholds
  placed around the gradients' norms (a factor 2^-4..2^4 of the median norm);
- the mean-error check (``bias_check``) on some;
- dialects: the five presets and the separated alternatives of tests/population.py (bias correction
  off, schedule index t), lazy sparse rows only where they are defined.

``mutant_examples(mutant)`` narrows the strategy to the examples that expose one mutant of
tests/mutants.py (AMSGrad with decreasing v for the AMSGrad mutants, repeated rows for the sparse
ones...; ``MUTANT_EXAMPLES``); ``adapter_examples(adapter)`` to what a built-in adapter declares (dtypes,
features, dialect), without its known deviations of adapters/expectations (``ADAPTER_EXAMPLES``).
Overflow is out of scope: the inputs keep every correct run finite. ``save_failure`` writes a failing
example as JSON, ``load_example`` reads it back.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from adamconf.adapters.driver import classify, drive, support
from adamconf.golden.build import DPS
from adamconf.golden.inputs import Inputs, generate, representable
from adamconf.golden.scenarios import Scenario
from adamconf.golden.store import Golden
from adamconf.reference.adam import trajectory
from adamconf.reference.config import AdamConfig, ExponentialDecay, PiecewiseConstant
from adamconf.reference.dialect import Dialect, resolve_dialect
from adamconf.reference.grads import SparseGrad, to_dense
from adamconf.reference.judge import Assessment, judge_against

__all__ = ["DIALECTS", "Example", "Outcome", "check", "examples", "golden_for", "load_example", "mutant_examples",
           "save_failure"]

DTYPES = ("float16", "bfloat16", "float32", "float64")
#: the dialects an example is drawn in (label -> dialect): the presets and the separated alternatives
DIALECTS: dict[str, "str | Dialect"] = {
    "kingma": "kingma", "pytorch": "pytorch", "keras": "keras", "optax": "optax",
    "pytorch-sparse": "pytorch-sparse",
    "bc-off": Dialect(bias_correction=False),
    "sched-t": Dialect(schedule_step="t"),
}
#: grad_scale exponents per dtype: every input exact, v = g^2 in range (float16: |g| < 256)
GRAD_EXP = {"float64": (-60, 60), "float32": (-100, 40), "bfloat16": (-100, 40), "float16": (-9, 5)}
THETA_EXP = {"float64": (-12, 4), "float32": (-12, 4), "bfloat16": (-10, 2), "float16": (-7, 2)}


# -- an example, as data ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Example:
    """A random scenario in one dtype and dialect (label of ``DIALECTS``)."""

    scenario: Scenario
    dtype: str
    dialect: str = "kingma"

    def to_dict(self) -> dict:
        s = self.scenario
        d = {f.name: getattr(s, f.name) for f in fields(Scenario)}
        d["config"] = s.config.to_dict()
        d["shapes"] = [list(x) for x in s.shapes]
        d["inputs"] = s.inputs.to_dict()
        d["dtypes"] = list(s.dtypes)
        d["separates"] = {a: list(v) for a, v in s.separates}
        d["extra_features"], d["tags"] = list(s.extra_features), list(s.tags)
        return {"scenario": d, "dtype": self.dtype, "dialect": self.dialect}

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example: reproducible JSON
        return f"example_from_json({json.dumps(self.to_dict(), sort_keys=True)!r})"


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def example_from_dict(d: dict) -> Example:
    s = dict(d["scenario"])
    s["config"] = AdamConfig.from_dict(s["config"])
    s["shapes"] = tuple(tuple(x) for x in s["shapes"])
    inp = s["inputs"]
    s["inputs"] = Inputs(inp["generator"], inp["seed"], tuple(sorted((k, _tuples(v)) for k, v in inp["options"].items())))
    s["dtypes"] = tuple(s["dtypes"])
    s["separates"] = tuple((a, tuple(v)) for a, v in s.get("separates", {}).items())
    s["extra_features"], s["tags"] = tuple(s.get("extra_features", ())), tuple(s.get("tags", ()))
    return Example(Scenario(**s), d["dtype"], d.get("dialect", "kingma"))


def example_from_json(text: str) -> Example:
    return example_from_dict(json.loads(text))


def load_example(path) -> tuple[Example, dict]:
    """A saved failure (``save_failure``): the example and the rest of the file (adapter, verdict...)."""
    with open(path) as f:
        d = json.load(f)
    return example_from_dict(d["example"]), d


# -- strategies -----------------------------------------------------------------------------------------

_SHAPES = st.sampled_from([(), (0,), (1,), (3,), (5,), (7,), (2, 3), (3, 4), (4, 5), (2, 3, 2), (1, 1), (6, 1),
                           (0, 3), (8,), (12,)])


_NONEMPTY = st.sampled_from([(3,), (5,), (7,), (2, 3), (3, 4), (2, 3, 2), (8,), (4, 2)])


@st.composite
def shapes_st(draw, sparse: bool = False, min_elements: int = 0, min_tensors: int = 0, min_rows: int = 1):
    """1-3 tensors of at most 44 elements in all; min_tensors: that many non-empty ones first."""
    n = draw(st.integers(max(1, min_tensors), 3))
    shapes = [draw(_NONEMPTY) if i < min_tensors else draw(_SHAPES) for i in range(n)]
    if sparse:  # tensor 0 is the embedding: rows x width
        shapes[0] = (draw(st.integers(min_rows, 10)), draw(st.integers(1, 4)))
    total = sum(math.prod(s) for s in shapes)
    assume(total <= 44)
    if total < min_elements:
        shapes.append((min_elements - total,))
    return tuple(shapes)


def _lr_values(dtype):
    if dtype in ("float16", "bfloat16"):
        return [2.0 ** -7, 2.0 ** -10, 1e-3, 1e-2, 2.0 ** -5]
    return [1e-4, 1e-3, 3e-3, 1e-2, 0.1, 2.0 ** -10, 2.0 ** -20, 0.5]


def _lr_st(dtype):
    if dtype in ("float16", "bfloat16"):
        return st.sampled_from(_lr_values(dtype))
    return st.one_of(st.sampled_from(_lr_values(dtype)), st.floats(1e-6, 0.3))


def _beta_st(which: int, dtype: str):
    if dtype == "float16":
        return st.sampled_from([0.0, 0.5, 0.9, 1 - 2.0 ** -3, 0.95] if which == 1 else
                               [0.9, 0.99, 0.999, 1 - 2.0 ** -6, 1 - 2.0 ** -7, 0.95])
    if dtype == "bfloat16":  # bfloat16(0.999) = 1: the second moment would never move
        return st.sampled_from([0.0, 0.5, 0.9, 1 - 2.0 ** -3, 0.95] if which == 1 else
                               [0.9, 0.99, 1 - 2.0 ** -4, 1 - 2.0 ** -6, 1 - 2.0 ** -7, 0.95])
    if which == 1:
        return st.one_of(st.sampled_from([0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1 - 2.0 ** -3]), st.floats(0.0, 0.999))
    return st.one_of(st.sampled_from([0.9, 0.99, 0.999, 0.9999, 1 - 2.0 ** -7, 0.5]), st.floats(0.5, 0.99999))


def _eps_st(dtype):
    if dtype == "float16":
        return st.sampled_from([2.0 ** -10, 1e-3, 1e-4, 2.0 ** -14, 0.1])
    if dtype == "bfloat16":
        return st.sampled_from([2.0 ** -10, 1e-3, 1e-6, 1e-8, 0.1])
    return st.one_of(st.sampled_from([1e-8, 1e-7, 1e-6, 1e-3, 2.0 ** -30, 1e-16, 0.1]),
                     st.floats(1e-12, 1e-2))


@st.composite
def schedule_st(draw, steps: int, dtype: str):
    kind = draw(st.sampled_from(["piecewise", "exponential"]))
    if kind == "piecewise":
        n = draw(st.integers(1, 3))
        bounds = tuple(sorted(draw(st.lists(st.integers(0, max(1, steps)), min_size=n, max_size=n))))
        values = tuple(draw(st.lists(st.sampled_from(_lr_values(dtype)), min_size=n + 1, max_size=n + 1)))
        return PiecewiseConstant(bounds, values)
    return ExponentialDecay(draw(st.sampled_from(_lr_values(dtype))), draw(st.integers(1, 10)),
                            draw(st.sampled_from([0.5, 0.9, 0.96, 0.1, 0.99])), draw(st.booleans()))


def _norms(params0, grads, shapes, per_tensor: bool) -> float:
    """The median over steps of the gradient norm (per tensor: of each tensor's), for placing a threshold."""
    out = []
    for row in grads:
        sq = []
        for g, shape in zip(row, shapes):
            a = _dense(g)
            sq.append(float(np.sum(a[np.isfinite(a)] ** 2)))
        out.extend(math.sqrt(x) for x in sq if x > 0) if per_tensor else out.append(math.sqrt(sum(sq)))
    out = [x for x in out if x > 0 and math.isfinite(x)]
    return float(np.median(out)) if out else 1.0


def _dense(g) -> np.ndarray:
    return np.asarray(to_dense(g), np.float64)


@st.composite
def examples(draw, dtypes=DTYPES, dialects=tuple(DIALECTS), *, generator=None, amsgrad=None, profile=None,
             clip=None, decay=None, bias_check=None, wd=None, schedule=None, eps_root=None, nonfinite=False,
             min_elements: int = 0, steps=(1, 40), repeats=None, hyper=None, sparse_opts=None, roundtrip=None,
             grad_exp=None, theta_exp=None, clip_factors=(-4, -1, -0.25, 0, 0.25, 1, 4), min_tensors: int = 0,
             spread: bool = True, wd_values=(1e-2, 0.1, 2.0 ** -4, 0.5, 1e-4), min_rows: int = 1,
             features=None, combine_norms: bool = True, one_clip: bool = False):
    """An ``Example``; the keyword arguments pin a part of it (for the mutant strategies).

    grad_exp, theta_exp: ranges of the exponents of grad_scale and theta_scale; clip_factors: the
    exponents of 2 the clip thresholds are the median norm times; min_tensors: non-empty tensors;
    spread: per-tensor gradient scales allowed; hyper: AdamConfig fields fixed (values or strategies);
    features: an adapter's features, to draw only the examples it can run (None: any);
    combine_norms: clip="all" sets clipnorm and global_clipnorm together (Keras refuses both);
    one_clip: at most one of clipvalue, clipnorm, global_clipnorm.
    """
    if features is not None:
        f = set(features)
        if "sparse" not in f:
            dialects = [x for x in dialects if resolve_dialect(DIALECTS[x]).sparse_rows != "lazy"] or ["kingma"]
            generator = generator or "normal"
        amsgrad = False if "amsgrad" not in f else amsgrad
        decay = 0.0 if "lr_decay" not in f else decay
        schedule = False if "schedule" not in f else schedule
        eps_root = 0.0 if "eps_root" not in f else eps_root
        modes = [m for m, feat in (("l2", "weight_decay"), ("decoupled", "decoupled_weight_decay")) if feat in f]
        if wd is None and len(modes) < 2:
            wd = st.sampled_from([False] * 3 + modes)
        kinds = [k for k in ("clipvalue", "clipnorm", "global_clipnorm") if k in f]
        if clip is None and len(kinds) < 3:
            clip = st.sampled_from([False] * 4 + kinds)
    dtype = draw(st.sampled_from(list(dtypes)))
    label = draw(st.sampled_from(list(dialects)))
    d = resolve_dialect(DIALECTS[label])
    lazy = d.sparse_rows == "lazy"
    if generator is None:
        generator = "sparse" if lazy else draw(st.sampled_from(["normal"] * 5 + ["sparse"] * 2 +
                                                               (["nonfinite"] if nonfinite else [])))
    sparse = generator == "sparse"
    T = draw(st.integers(*steps))
    shapes = draw(shapes_st(sparse=sparse, min_elements=min_elements,
                            min_tensors=max(min_tensors, 1 if generator == "nonfinite" else 0), min_rows=min_rows))
    g_lo, g_hi = grad_exp or GRAD_EXP[dtype]
    options: dict[str, Any] = {
        "grad_scale": 2.0 ** draw(st.integers(g_lo, g_hi) if grad_exp else
                                  st.one_of(st.just(0), st.integers(g_lo, g_hi))),
        "theta_scale": 2.0 ** draw(st.integers(*(theta_exp or THETA_EXP[dtype]))),
        "profile": draw(profile if isinstance(profile, st.SearchStrategy) else st.just(profile))
        if profile is not None else
        draw(st.sampled_from(["flat", "flat", "decreasing", "increasing", "norm_sweep", "sign_flip",
                              "zero_then_normal"])),
    }
    if spread and dtype in ("float32", "float64", "bfloat16") and len(shapes) > 1 and draw(st.booleans()):
        options["tensor_scales"] = tuple(2.0 ** draw(st.integers(-30, 10)) for _ in shapes)
    if spread and not sparse and len(shapes) > 1 and draw(st.integers(0, 5)) == 0:
        options["zero_tensor"] = draw(st.integers(0, len(shapes) - 1))
    if sparse:
        rows = shapes[0][0]
        options.update(nnz=draw(st.integers(0, rows)), never=draw(st.integers(0, rows - 1)),
                       rows_early=draw(st.integers(0, rows)),
                       repeats=draw(st.integers(0, 3) if repeats is None else
                                    repeats if isinstance(repeats, st.SearchStrategy) else st.just(repeats)),
                       empty_every=draw(st.sampled_from([0, 0, 2, 3, 5])))
        options.update(sparse_opts or {})
    if generator == "nonfinite":
        options.update(at=draw(st.integers(1, T)), value=draw(st.sampled_from(["nan", "inf", "-inf"])))
    inputs = Inputs(generator, draw(st.integers(0, 2 ** 32 - 1)), tuple(sorted(options.items())))
    params0, grads = generate(inputs, shapes, T)
    values = list(params0) + [g.values if isinstance(g, SparseGrad) else g for row in grads for g in row]
    assume(all(representable(a, dtype) for a in values))
    if dtype == "float16":  # coalesced repeated rows stay below 256 too
        assume(all(np.all(np.abs(_dense(g)[np.isfinite(_dense(g))]) < 128) for row in grads for g in row))

    cfg: dict[str, Any] = {k: draw(v) if isinstance(v, st.SearchStrategy) else v for k, v in (hyper or {}).items()}
    cfg.setdefault("beta1", draw(_beta_st(1, dtype)))
    cfg.setdefault("beta2", draw(_beta_st(2, dtype)))
    cfg.setdefault("eps", draw(_eps_st(dtype)))
    if isinstance(eps_root, st.SearchStrategy):
        eps_root = draw(eps_root)
    if eps_root is None:
        eps_root = draw(st.sampled_from([0.0] * 6 + ([1e-8, 1e-4, 2.0 ** -20] if dtype in ("float32", "float64")
                                                     else [2.0 ** -10])))
    cfg["eps_root"] = eps_root
    cfg["amsgrad"] = draw(st.booleans()) if amsgrad is None else amsgrad
    if lazy:
        cfg["amsgrad"] = False  # no lazy golden with AMSGrad or weight decay (SparseAdam has neither)
    if d.epsilon == "hat" and d.amsgrad_max == "corrected":
        cfg["amsgrad"] = False
    if isinstance(wd, st.SearchStrategy):
        wd = draw(wd)
    if wd is None:
        wd = None if lazy else draw(st.sampled_from([None, None, None, "l2", "decoupled"]))
    if lazy:
        wd = None
    if wd:
        cfg.update(weight_decay=draw(st.sampled_from(list(wd_values))), weight_decay_mode=wd)
    if decay is None:
        decay = draw(st.sampled_from([0.0] * 4 + [0.01, 0.05, 0.5]))
    cfg["decay"] = draw(decay) if isinstance(decay, st.SearchStrategy) else decay
    if schedule is None:
        schedule = draw(st.integers(0, 3)) == 0
    if isinstance(schedule, st.SearchStrategy):  # a schedule pinned by the caller replaces any lr
        cfg["lr"] = draw(schedule)
    elif "lr" not in cfg:
        cfg["lr"] = draw(schedule if isinstance(schedule, st.SearchStrategy) else schedule_st(T, dtype)) \
            if schedule else draw(_lr_st(dtype))
    if clip is None:
        clip = draw(st.sampled_from([None] * 4 + ["clipvalue", "clipnorm", "global_clipnorm", "all"]))
    elif isinstance(clip, st.SearchStrategy):
        clip = draw(clip)
    if one_clip and clip == "all":
        clip = draw(st.sampled_from(["clipvalue", "clipnorm", "global_clipnorm"]))
    if clip:
        if dtype == "float16" and clip != "clipvalue":
            # a norm computed in float16, as optax.clip_by_global_norm and Keras' clipnorm do in a
            # float16 run, overflows where the sum of squares passes 65504: inf, and a clip factor of 0.
            # That is float16's range, not a rounding the budget models: keep every step's sum of
            # squares over all tensors (so each tensor's too) below half of it, a margin for the
            # rounding of the partial sums (each within (1 + u)^N of the exact, N <= 132 terms).
            assume(all(sum(float(np.sum(_dense(g)[np.isfinite(_dense(g))] ** 2)) for g in row) < 32752.0
                       for row in grads))
        factor = lambda: 2.0 ** draw(st.sampled_from(list(clip_factors)))  # noqa: E731
        if clip in ("clipvalue", "all"):
            finite = [np.abs(_dense(g)) for row in grads for g in row]
            finite = np.concatenate([a[np.isfinite(a)].ravel() for a in finite] + [np.zeros(1)])
            med = float(np.median(finite[finite > 0])) if np.any(finite > 0) else 1.0
            cfg["clipvalue"] = med * factor()
        if clip in ("clipnorm", "all"):
            cfg["clipnorm"] = _norms(params0, grads, shapes, True) * factor()
            if dtype == "float16":
                # tf.clip_by_norm (Keras 3's and tf_keras's clipnorm) forms g * c before dividing by max(n, c):
                # in float16 the product overflows where |g| c passes 65504, even where the clip does not
                # fire (docs/findings/keras-float16-clipnorm-overflow.md). Range again, not rounding: keep
                # every |g| c below half of it.
                assume(all(float(np.max(np.abs(_dense(g)[np.isfinite(_dense(g))]), initial=0.0)) * cfg["clipnorm"]
                           < 32752.0 for row in grads for g in row))
        if clip == "global_clipnorm" or (clip == "all" and combine_norms):
            cfg["global_clipnorm"] = _norms(params0, grads, shapes, False) * factor()
    config = AdamConfig(**cfg)
    if bias_check is None:
        bias_check = draw(st.integers(0, 3)) == 0
    extra, rt = (), None
    if roundtrip:
        rt, extra = max(1, T // 2), (roundtrip,)
    s = Scenario(name="random", family="random", description="a random scenario (tests/random_scenarios.py)",
                 config=config, shapes=shapes, steps=T, inputs=inputs, dtypes=(dtype,), bias_check=bias_check,
                 roundtrip_at=rt, extra_features=extra)
    digest = hashlib.sha256(json.dumps(Example(s, dtype, label).to_dict(), sort_keys=True).encode()).hexdigest()
    s = Scenario(**{**{f.name: getattr(s, f.name) for f in fields(Scenario)}, "name": f"random-{digest[:12]}"})
    return Example(s, dtype, label)


# -- the golden, on the fly -----------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _golden_cached(text: str, dialect_key: str) -> Golden:
    ex = example_from_json(text)
    return _golden(ex.scenario, Dialect.from_key(dialect_key))


def _golden(s: Scenario, dialect: Dialect) -> Golden:
    """golden/build.py's golden_bytes and golden/store.py's load_golden, without the store."""
    params0, grads = generate(s.inputs, s.shapes, s.steps)
    p = s.project(dialect)
    with np.errstate(all="ignore"):
        tr = trajectory(s.config, p, params0, grads, dps=DPS, record=s.recorded_steps(),
                        record_state=s.state_steps())
    return Golden.from_trajectory(s, s.dialect_key(dialect), params0, grads, tr, s.state_steps())


def golden_for(example: "Example | Scenario", dialect: "str | Dialect") -> Golden:
    """The golden of an in-memory scenario in ``dialect`` (projected onto its axes), computed by the reference."""
    s = example.scenario if isinstance(example, Example) else example
    d = resolve_dialect(dialect)
    text = json.dumps(Example(s, s.dtypes[0]).to_dict(), sort_keys=True)
    return _golden_cached(text, s.project(d).key())


# -- the check --------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    verdict: str  # passed | failed | skipped | error | crashed | timeout
    message: str = ""
    assessment: Assessment | None = None
    seconds: float = 0.0
    golden_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def budget_used(self) -> float | None:
        return None if self.assessment is None else self.assessment.budget_used


def check(adapter: Any, example: Example, device: str = "cpu", *, twice: bool = False) -> Outcome:
    """Run ``adapter`` on the example as ``suites.runner.run_case`` runs a catalogue case; the verdict.

    twice: also run it a second time and compare bit for bit (the determinism suite's ``run_twice``).
    """
    s, dtype = example.scenario, example.dtype
    reason = support(adapter, s, dtype, device)
    if reason:
        return Outcome("skipped", reason)
    dialect = resolve_dialect(adapter.dialect)
    t0 = time.perf_counter()
    golden = golden_for(s, dialect)
    t1 = time.perf_counter()
    want_state = "state" in adapter.features and len(golden.state_steps) > 0
    try:
        with np.errstate(all="ignore"):
            driven = drive(adapter, s, golden.params0, golden.grads, dtype, device,
                           state_steps=golden.state_steps if want_state else ())
            second = drive(adapter, s, golden.params0, golden.grads, dtype, device).theta if twice else None
    except Exception as exc:  # the adapter raised: a verdict, as in run_case
        verdict, message = classify(exc)
        return Outcome(verdict, f"{adapter.name}: {message}" if verdict == "skipped" else message,
                       seconds=time.perf_counter() - t1, golden_seconds=t1 - t0)
    if second is not None:
        for k, (x, y) in enumerate(zip(driven.theta, second)):
            if not np.array_equal(x.view(np.uint64), y.view(np.uint64)):
                return Outcome("failed", f"two runs of the same case differ (tensor {k})",
                               seconds=time.perf_counter() - t1, golden_seconds=t1 - t0)
    a = judge_against(golden, dialect, driven.theta, dtype, states=driven.states or None,
                      declared=getattr(adapter, "path_class", None), bias_check=s.bias_check, cache=False)
    return Outcome("passed" if a.passed else "failed", a.message(), a, time.perf_counter() - t1, t1 - t0)


def save_failure(directory, adapter_name: str, example: Example, outcome: Outcome, **extra) -> str:
    """Write a failing example as a reproducible scenario file; returns its path."""
    import os

    os.makedirs(directory, exist_ok=True)
    rec = {"adapter": adapter_name, "example": example.to_dict(), "verdict": outcome.verdict,
           "message": outcome.message, "budget_used": outcome.budget_used,
           "checks": None if outcome.assessment is None else {k: (None if v is None else float(v))
                                                               for k, v in outcome.assessment.checks.items()},
           "reproduce": "from random_scenarios import load_example, check; ex, rec = load_example(PATH); "
                        "check(ADAPTER, ex)", **extra}
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in adapter_name)
    path = os.path.join(directory, f"{safe}--{example.scenario.name}--{example.dtype}.json")
    with open(path, "w") as f:
        json.dump(rec, f, indent=1, sort_keys=True, default=float)
    return path


# -- the mutants' strategies --------------------------------------------------------------------------------

#: what every mutant example shares: dense gradients of size ~1 on parameters of ~2^-6, v-dominated
#: updates (eps 1e-8), lr 1e-3..1e-2, default-like betas, 5-30 steps, no clipping, decay or schedule
EXPOSE: dict[str, Any] = dict(
    generator="normal", clip=False, decay=0.0, wd=False, schedule=False, eps_root=0.0, amsgrad=False,
    bias_check=False, steps=(5, 30), min_tensors=1, min_elements=8, spread=False, grad_exp=(-3, 3),
    theta_exp=(-8, -5), profile=st.sampled_from(["flat", "decreasing", "increasing", "norm_sweep", "sign_flip"]),
    hyper=dict(lr=st.sampled_from([1e-3, 3e-3, 1e-2]), beta1=st.sampled_from([0.8, 0.9, 0.95]),
               beta2=st.sampled_from([0.99, 0.995, 0.999]), eps=1e-8))


def _hyper(**kw) -> dict:
    return {**EXPOSE["hyper"], **kw}


_SMALL_EPS_GRADS = dict(grad_exp=(-14, -10), hyper=_hyper(eps=st.sampled_from([1e-3, 3e-4, 1e-4])))
_CLIP = dict(profile="norm_sweep", min_tensors=2, clip_factors=(-4, -2, -1))
#: mutant name -> how its examples differ from EXPOSE (the family of the catalogue that kills it)
MUTANT_EXAMPLES: dict[str, dict] = {
    "bc_late": {}, "bc_early": {}, "bc_missing_m": {}, "bc_missing_v": {}, "bc2_float16": {},
    "eps_in_root": dict(grad_exp=(-20, -12)),                          # sqrt(v) ~ sqrt(eps) and below
    "eps_form_swapped": _SMALL_EPS_GRADS, "eps_hat_unscaled": _SMALL_EPS_GRADS,   # g ~ eps, sqrt(bc2) < 1
    "eps_fixed_1e-8": _SMALL_EPS_GRADS, "eps_fixed_1e-7": _SMALL_EPS_GRADS,
    "eps_root_ignored": dict(grad_exp=(-8, -5), eps_root=st.sampled_from([1e-4, 1e-3])),
    "betas_swapped": {}, "abs_g": dict(grad_exp=(-3, -1)), "v_float16": {},
    # AMSGrad with decreasing v (the maximum holds), long enough for raw and corrected maxima to differ
    "amsgrad_ignored": dict(amsgrad=True, profile="decreasing", steps=(12, 40)),
    "amsgrad_corrected_max": dict(amsgrad=True, profile="decreasing", steps=(12, 40)),
    "amsgrad_raw_max": dict(amsgrad=True, profile="decreasing", steps=(12, 40)),
    # sparse rows: repeated indices on every step, or rows left untouched after the first third
    "sparse_overwrite": dict(generator="sparse", repeats=st.integers(1, 3), min_rows=3,
                             sparse_opts=dict(never=0, rows_early=0, empty_every=0, nnz=2)),
    "sparse_sum_of_squares": dict(generator="sparse", repeats=st.integers(1, 3), min_rows=3,
                                  sparse_opts=dict(never=0, rows_early=0, empty_every=0, nnz=2)),
    "sparse_lazy_claims_dense": dict(generator="sparse", repeats=0, min_rows=4, steps=(9, 30),
                                     sparse_opts=dict(never=1, rows_early=2, empty_every=0, nnz=2)),
    "sparse_dense_claims_lazy": dict(generator="sparse", repeats=0, min_rows=4, steps=(9, 30),
                                     sparse_opts=dict(never=1, rows_early=2, empty_every=0, nnz=2)),
    # clipping that fires, by a factor that varies from step to step (norm sweep), on two tensors or more
    "clipnorm_global": dict(clip="clipnorm", **_CLIP),
    "global_clipnorm_per_tensor": dict(clip="global_clipnorm", **_CLIP),
    "clip_after_moments": dict(clip=st.sampled_from(["clipnorm", "clipvalue"]), **_CLIP),
    "clip_torch_eps_missing": dict(clip="global_clipnorm", **{**_CLIP, "clip_factors": (-4, -2, -1)},
                                   grad_exp=(-14, -11)),               # norms ~1e-3: the 1e-6 shows
    # decay
    "lr_decay_off_by_one": dict(decay=st.sampled_from([0.05, 0.2, 0.5])),
    "schedule_off_by_one": dict(schedule=st.builds(ExponentialDecay, st.sampled_from([1e-3, 1e-2]),
                                                   st.integers(1, 6), st.sampled_from([0.5, 0.1]))),
    "coupled_claims_decoupled": dict(wd="decoupled", theta_exp=(-1, 0), wd_values=(0.1, 0.5)),
    "decoupled_claims_coupled": dict(wd="l2", theta_exp=(-1, 0), wd_values=(0.1, 0.5)),
    "decay_not_lr_scaled": dict(wd="decoupled", theta_exp=(-1, 0), wd_values=(0.1, 0.5)),
    "decay_after_update": dict(wd="decoupled", theta_exp=(-1, 0), wd_values=(0.1, 0.5),
                               hyper=_hyper(lr=st.sampled_from([1e-2, 3e-2, 0.1]))),
    # constant factors: updates far above theta's ulp
    "scale_+1e-4": {}, "scale_-1e-4": {},
    "scale_+1e-5": dict(theta_exp=(-10, -8), hyper=_hyper(lr=st.sampled_from([3e-3, 1e-2]))),
    "scale_-1e-5": dict(theta_exp=(-10, -8), hyper=_hyper(lr=st.sampled_from([3e-3, 1e-2]))),
    "scale_+1e-12": {}, "scale_-1e-12": {},
    # non-finite gradients, determinism, round trips, nothing
    "nonfinite_zeroed": dict(generator="nonfinite", nonfinite=True),
    "nondeterministic": dict(min_elements=24, steps=(10, 30)),
    "checkpoint_drops_v": dict(roundtrip="checkpoint", steps=(6, 30)),
    "config_loses_beta2": dict(roundtrip="config", hyper=_hyper(beta2=st.sampled_from([0.9, 0.95, 0.99]))),
    "do_nothing": {},
}


def mutant_examples(mutant) -> st.SearchStrategy:
    """Examples that expose ``mutant`` (a ``mutants.Mutant``): in its dtype and dialect, of its family."""
    kw = {**EXPOSE, **MUTANT_EXAMPLES[mutant.name]}
    label = mutant.dialect if mutant.dialect in DIALECTS else "kingma"
    return examples(dtypes=(mutant.dtype,), dialects=(label,), **kw)


# -- the built-in adapters' strategies ----------------------------------------------------------------------

#: built-in adapter -> how its examples are narrowed: what it requires, and its known deviations
#: (adapters/expectations/*.toml), which the random examples are not meant to rediscover
ADAPTER_EXAMPLES: dict[str, dict] = {
    # the AMSGrad kernels and optax.amsgrad refuse amsgrad=False (plain Adam is another adapter)
    "optax.amsgrad": dict(amsgrad=True),
    "tf.raw.apply_adam_amsgrad": dict(amsgrad=True),
    # Keras 3 squares repeated sparse rows separately (tensorflow.toml); it accepts one clip argument only
    "keras.adam": dict(repeats=0, one_clip=True),
    "keras.adam.jit": dict(repeats=0, one_clip=True),
    "keras.adamw": dict(repeats=0, one_clip=True),
    # tf_keras's new optimizer applies only the first clip set (adapters/_tf_keras.py); tf_keras takes clip
    # norms over an IndexedSlices's values before its repeated rows are summed (adapters/_tf_keras.py)
    "tf_keras.adam": dict(one_clip=True, repeats=0),
    # OptimizerV2 refuses clipnorm with global_clipnorm ('Cannot accept both'): 10 % of its examples skipped
    "tf_keras.legacy.adam": dict(repeats=0, combine_norms=False),
    "keras.jax.adam": dict(one_clip=True),
    # Keras 3 on torch clips float64 gradients with a float32 norm (keras_backends.toml)
    "keras.torch.adam": dict(one_clip=True, drop_features=("clipnorm", "global_clipnorm")),
    # torch.compile'd Adam is wrong in float64 on the CPU (torch.toml)
    "torch.adam.compiled": dict(dtypes=("float16", "bfloat16", "float32")),
    # third-party (adapters/expectations/ecosystem.toml): bitsandbytes' Adam applies weight_decay decoupled, and
    # both drop amsgrad
    "bitsandbytes.adam": dict(drop_features=("weight_decay", "amsgrad")),
    "bitsandbytes.adamw": dict(drop_features=("amsgrad",)),
}

#: built-in adapters whose known deviations no narrowing of the examples leaves out: not run on random
#: examples, with the reason (their deviations are pinned in adapters/expectations/ecosystem.toml)
RANDOM_EXCLUDED: dict[str, str] = {
    "bitsandbytes.adam8bit": "8-bit block-quantized m and v: lossy by design, every float32 example deviates",
    "heavyball.adamw": "divides by max(sqrt(v_hat), eps), not sqrt(v_hat) + eps: every eps-dominated example "
                       "deviates",
    "mindspore.adam": "runs the epsilon-hat kernel although it documents the standard form, and ignores amsgrad",
    "mindspore.adamw": "float64 at float32 accuracy, and no zero-size parameters (the examples draw both)",
}


def adapter_examples(adapter, name: str | None = None) -> st.SearchStrategy:
    """Examples a built-in (or any) adapter can run: its dtypes, features and dialect, minus its known deviations."""
    kw = dict(ADAPTER_EXAMPLES.get(name or adapter.name, {}))
    drop = set(kw.pop("drop_features", ()))
    dtypes = tuple(d for d in kw.pop("dtypes", DTYPES) if d in adapter.dtypes)
    d = adapter.dialect
    label = d if isinstance(d, str) and d in DIALECTS else "kingma"
    return examples(dtypes=dtypes, dialects=(label,), features=[f for f in adapter.features if f not in drop], **kw)
