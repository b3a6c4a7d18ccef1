"""The scenario catalogue: named, pure-data Adam runs and the dialects each one exercises.

A scenario is an ``AdamConfig``, parameter shapes, an ``Inputs`` recipe
(seeded, exact in every dtype it lists), a number of steps and the steps to
record. Its *relevant axes* are the dialect axes that can change its exact
trajectory; its goldens are computed for every distinct projection of the
presets onto those axes, plus the alternatives it is built to separate
(``separates``), whose difference the tests show exceeds ten float32 budgets.

Dyadic hyperparameters (beta1 = 1 - 2^-3, beta2 = 1 - 2^-7, lr = 2^-10) are
exact in every binary format, so float32 implementations carry no
representation error of 1 - beta (docs/semantics.md, "Where the scalars are
rounded"); the scenarios with ``bias_check`` use them to resolve a 1e-5
relative error in the updates.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable

from adamconf.reference.config import AdamConfig, ExponentialDecay, PiecewiseConstant
from adamconf.reference.dialect import AXES, PRESETS, Dialect

from .inputs import Inputs

__all__ = ["CATALOGUE", "FAMILIES", "Scenario", "closed_loop", "get", "select"]

FAMILIES = ("dense", "edge", "sparse", "clipping", "amsgrad", "decay", "roundtrip", "dtypes", "long")
ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")
WIDE_DTYPES = ("float32", "float64")

# Dyadic hyperparameters: exact in bfloat16, float16, float32 and float64.
DYADIC = dict(lr=2.0 ** -10, beta1=1 - 2.0 ** -3, beta2=1 - 2.0 ** -7, eps=2.0 ** -30)


@dataclass(frozen=True)
class Scenario:
    name: str
    family: str
    description: str
    config: AdamConfig
    shapes: tuple[tuple[int, ...], ...]
    steps: int
    inputs: Inputs
    dtypes: tuple[str, ...] = WIDE_DTYPES
    #: dialect axes (name -> values) this scenario is built to tell apart
    separates: tuple[tuple[str, tuple], ...] = ()
    #: record every step up to ``record_first``, then pairs (t, t+1) every ``record_every``
    record_first: int | None = None
    record_every: int = 1
    #: also record m, v, vmax only every ``state_every`` recorded steps (storage)
    state_every: int = 1
    #: statistical check of the mean update error (random data, dyadic hyperparameters)
    bias_check: bool = False
    #: round trip: checkpoint or rebuild at this step
    roundtrip_at: int | None = None
    extra_features: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)

    # -- derived --------------------------------------------------------------------
    @property
    def sparse(self) -> bool:
        return self.inputs.generator == "sparse"

    @property
    def nonfinite(self) -> bool:
        return self.inputs.generator == "nonfinite"

    @property
    def features(self) -> frozenset[str]:
        f = set(self.config.features()) | set(self.extra_features)
        if self.sparse:
            f.add("sparse")
        if self.nonfinite:
            f.add("nonfinite")
        return frozenset(f)

    @property
    def relevant_axes(self) -> tuple[str, ...]:
        c = self.config
        axes = ["epsilon", "bias_correction"]
        if c.amsgrad:
            axes.append("amsgrad_max")
        if self.sparse:
            axes.append("sparse_rows")
        if c.clipnorm is not None or c.global_clipnorm is not None:
            axes.append("clip")
        if c.schedule is not None or c.decay:
            axes.append("schedule_step")
        if self.nonfinite:
            axes.append("nonfinite")
        return tuple(a for a in AXES if a in axes)

    def project(self, dialect: Dialect) -> Dialect:
        """The dialect with every axis this scenario cannot see set to its default."""
        default = Dialect()
        kept = {a: getattr(dialect, a) for a in self.relevant_axes}
        return default.replace(**{a: kept.get(a, getattr(default, a)) for a in AXES})

    def dialect_key(self, dialect: Dialect) -> str:
        return self.project(dialect).key(self.relevant_axes)

    def golden_dialects(self) -> list[Dialect]:
        """The distinct projections of the presets, and the separated alternatives."""
        found: dict[str, Dialect] = {}
        for preset in PRESETS.values():
            if preset.sparse_rows == "lazy" and (not self.sparse or self.config.weight_decay or self.config.amsgrad):
                continue
            p = self.project(preset)
            found.setdefault(p.key(self.relevant_axes), p)
        for axis, _ in self.separates:
            for p in self.separated(axis):
                found.setdefault(p.key(self.relevant_axes), p)
        return [found[k] for k in sorted(found)]

    def separated(self, axis: str) -> list[Dialect]:
        """The dialects this scenario tells apart on ``axis``: Kingma & Ba's with that axis varied."""
        values = dict(self.separates)[axis]
        return [self.project(Dialect().replace(**{axis: v})) for v in values]

    def recorded_steps(self) -> list[int]:
        if self.record_first is None:
            return list(range(self.steps + 1))
        steps = set(range(self.record_first + 1))
        for t in range(self.record_every, self.steps + 1, self.record_every):
            steps.update({t - 1, t})  # pairs: an update check needs theta_{t-1} and theta_t
        steps.add(self.steps)
        steps.add(self.steps - 1)
        return sorted(steps)

    def state_steps(self) -> list[int]:
        rec = self.recorded_steps()
        return [t for i, t in enumerate(rec) if i % self.state_every == 0 or t == rec[-1]]

    def to_dict(self) -> dict:
        return {
            "name": self.name, "family": self.family, "description": self.description,
            "config": self.config.to_dict(), "shapes": [list(s) for s in self.shapes],
            "steps": self.steps, "inputs": self.inputs.to_dict(), "dtypes": list(self.dtypes),
            "separates": {a: list(v) for a, v in self.separates}, "relevant_axes": list(self.relevant_axes),
            "features": sorted(self.features), "bias_check": self.bias_check,
            "roundtrip_at": self.roundtrip_at,
        }


def _s(name, family, description, config=None, shapes=((4, 5), (7,), ()), steps=20, seed=0,
       generator="normal", dtypes=WIDE_DTYPES, **kw) -> Scenario:
    options = tuple(sorted(kw.pop("options", {}).items()))
    return Scenario(name=name, family=family, description=description, config=config or AdamConfig(),
                    shapes=tuple(tuple(s) for s in shapes), steps=steps,
                    inputs=Inputs(generator, seed, options), dtypes=dtypes, **kw)


SHARP_SHAPES = ((8, 8), (48,), (16,))  # 128 elements: enough for the mean-error statistic

CATALOGUE: tuple[Scenario, ...] = (
    # -- dense ----------------------------------------------------------------------------
    _s("dense-default", "dense", "PyTorch/optax defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8), three tensors",
       steps=25, seed=1, bias_check=True),
    _s("dense-keras-defaults", "dense", "the seed document's defaults: lr 1e-3, betas 0.9/0.999, eps 1e-7",
       AdamConfig(eps=1e-7), steps=25, seed=2),
    _s("dense-dyadic", "dense",
       "dyadic hyperparameters, 128 elements, 128 steps: resolves a 1e-5 relative error in the updates",
       AdamConfig(**DYADIC), shapes=SHARP_SHAPES, steps=128, seed=3, bias_check=True, state_every=16,
       dtypes=("float32", "float64")),
    _s("dense-dyadic-hat", "dense", "dyadic hyperparameters with eps large enough for its form to matter",
       AdamConfig(**{**DYADIC, "eps": 2.0 ** -6}), shapes=SHARP_SHAPES, steps=64, seed=4,
       separates=(("epsilon", ("standard", "hat")),), state_every=16),
    _s("dense-first-steps", "dense", "the first five steps, where bias correction is largest",
       AdamConfig(lr=1e-2), steps=5, seed=5, separates=(("bias_correction", (True, False)),)),
    _s("dense-large-lr", "dense", "lr 0.1 and small parameters: updates dominate theta",
       AdamConfig(lr=0.1), steps=20, seed=6),
    _s("dense-mixed-shapes", "dense", "a scalar, an empty tensor, a vector and a 3-d tensor",
       shapes=((), (0,), (5,), (2, 3, 2)), steps=12, seed=7),
    _s("dense-eps-root", "dense", "optax's eps_root inside the square root",
       AdamConfig(eps_root=1e-4), steps=15, seed=8, options={"grad_scale": 2.0 ** -6}),
    # -- edge gradients --------------------------------------------------------------------
    _s("edge-eps-dominant", "edge", "gradients of ~1e-9, the size of eps: separates standard and hat epsilon",
       AdamConfig(eps=1e-8), steps=15, seed=11, options={"grad_scale": 2.0 ** -30},
       separates=(("epsilon", ("standard", "hat")),)),
    _s("edge-huge", "edge", "gradients of ~1e10 (v ~ 1e20)", steps=15, seed=12,
       options={"grad_scale": 2.0 ** 33}),
    _s("edge-zero-grads", "edge", "all-zero gradients for the first third, then normal; one tensor always zero",
       steps=18, seed=13, options={"profile": "zero_then_normal", "zero_tensor": 1}),
    _s("edge-sign-flip", "edge", "gradients alternating in sign: m cancels while v grows",
       steps=20, seed=14, options={"profile": "sign_flip"}),
    _s("edge-subnormal", "edge", "float32-subnormal gradients (~1e-40): v underflows in float32; the exact "
       "updates (~1e-35) are far below half an ulp of theta in every dtype, so a correct run does not move and "
       "this scenario cannot tell a do-nothing optimizer from Adam: it checks underflow, not the update",
       AdamConfig(eps=1e-8), steps=10, seed=15, options={"grad_scale": 2.0 ** -133}),
    _s("edge-nan", "edge", "one NaN gradient entry at step 3: what propagates", steps=6, seed=16,
       generator="nonfinite", options={"at": 3, "value": "nan"}, separates=(("nonfinite", ("propagate", "skip")),)),
    _s("edge-inf", "edge", "one +inf gradient entry at step 3: what propagates", steps=6, seed=17,
       generator="nonfinite", options={"at": 3, "value": "inf"}, separates=(("nonfinite", ("propagate", "skip")),)),
    # -- sparse ----------------------------------------------------------------------------
    _s("sparse-untouched-rows", "sparse",
       "embedding rows touched early and then never again: dense rows decay, lazy rows freeze",
       shapes=((10, 4), (6,)), steps=24, seed=21, generator="sparse",
       options={"rows_early": 3, "never": 2, "nnz": 4, "repeats": 0},
       separates=(("sparse_rows", ("dense", "lazy")),)),
    _s("sparse-repeated-indices", "sparse", "repeated row indices whose gradients must be summed",
       shapes=((8, 3), (5,)), steps=16, seed=22, generator="sparse",
       options={"rows_early": 0, "never": 1, "nnz": 3, "repeats": 3}),
    _s("sparse-empty", "sparse", "an empty sparse gradient every third step",
       shapes=((6, 4),), steps=15, seed=23, generator="sparse",
       options={"rows_early": 0, "never": 1, "nnz": 3, "repeats": 1, "empty_every": 3}),
    _s("sparse-dyadic", "sparse", "sparse rows under dyadic hyperparameters",
       AdamConfig(**DYADIC), shapes=((12, 4), (8,)), steps=30, seed=24, generator="sparse",
       options={"rows_early": 2, "never": 2, "nnz": 5, "repeats": 2}),
    # -- clipping ----------------------------------------------------------------------------
    _s("clip-norm-fires", "clipping", "per-tensor clipnorm below every gradient norm",
       AdamConfig(clipnorm=0.5), steps=15, seed=31),
    _s("clip-norm-idle", "clipping", "per-tensor clipnorm above every gradient norm: must not change g",
       AdamConfig(clipnorm=100.0), steps=15, seed=32),
    _s("clip-global-fires", "clipping",
       "global norm ~1e-3 clipped to 1e-4, varying by step: the 1e-6 of torch's formula shows",
       AdamConfig(global_clipnorm=1e-4), steps=20, seed=33,
       options={"grad_scale": 2.0 ** -13, "profile": "norm_sweep"},
       separates=(("clip", ("exact", "torch")),)),
    _s("clip-global-idle", "clipping", "global clipnorm far above the gradient norm",
       AdamConfig(global_clipnorm=1e3), steps=15, seed=34),
    _s("clip-global-sweep", "clipping", "global norm crossing the threshold both ways from step to step",
       AdamConfig(global_clipnorm=2.0), steps=21, seed=35, options={"profile": "norm_sweep"}),
    _s("clip-value-fires", "clipping", "clip by value at 0.5", AdamConfig(clipvalue=0.5), steps=15, seed=36),
    _s("clip-norm-dyadic", "clipping",
       "per-tensor clipnorm 2^-2 firing on thirty-two 4-element tensors, dyadic hyperparameters: the norm of 4 "
       "squares errs by at most 5.5 u, so the mean-error check resolves a 1e-5 relative error",
       AdamConfig(clipnorm=0.25, **DYADIC), shapes=((4,),) * 32, steps=96, seed=37, bias_check=True,
       state_every=16),
    # -- amsgrad ----------------------------------------------------------------------------
    _s("amsgrad-decreasing-v", "amsgrad",
       "large early gradients then small ones: v decreases, the maximum holds; raw and corrected differ",
       AdamConfig(amsgrad=True), steps=30, seed=41, options={"profile": "decreasing"},
       separates=(("amsgrad_max", ("raw", "corrected")),)),
    _s("amsgrad-increasing-v", "amsgrad", "growing gradients: the maximum tracks v",
       AdamConfig(amsgrad=True), steps=20, seed=42, options={"profile": "increasing"}),
    _s("amsgrad-dyadic", "amsgrad", "AMSGrad under dyadic hyperparameters with decreasing v",
       AdamConfig(amsgrad=True, **DYADIC), steps=40, seed=43, options={"profile": "decreasing"}),
    # -- decay -------------------------------------------------------------------------------
    _s("decay-legacy-inverse-time", "decay", "the seed's legacy `decay`: lr / (1 + decay*iterations)",
       AdamConfig(decay=0.05, eps=1e-7), steps=20, seed=51, separates=(("schedule_step", ("t-1", "t")),)),
    _s("decay-piecewise", "decay", "piecewise-constant schedule changing at indices 4 and 9",
       AdamConfig(lr=PiecewiseConstant((4, 9), (1e-2, 1e-3, 1e-4))), steps=14, seed=52,
       separates=(("schedule_step", ("t-1", "t")),)),
    _s("decay-exponential", "decay", "exponential decay, rate 0.5 every 4 steps, not staircase",
       AdamConfig(lr=ExponentialDecay(1e-2, 4, 0.5)), steps=14, seed=53),
    _s("decay-weight-l2", "decay", "coupled L2 weight decay 0.1 (torch Adam(weight_decay))",
       AdamConfig(lr=1e-2, weight_decay=0.1, weight_decay_mode="l2"), steps=20, seed=54,
       options={"theta_scale": 1.0}),
    _s("decay-weight-decoupled", "decay", "decoupled weight decay 0.1 (AdamW), same inputs as decay-weight-l2",
       AdamConfig(lr=1e-2, weight_decay=0.1, weight_decay_mode="decoupled"), steps=20, seed=54,
       options={"theta_scale": 1.0}),
    _s("decay-dyadic", "decay", "decoupled weight decay 2^-4 under dyadic hyperparameters, 128 elements: resolves "
       "a 1e-5 relative error", AdamConfig(weight_decay=2.0 ** -4, weight_decay_mode="decoupled", **DYADIC),
       shapes=SHARP_SHAPES, steps=64, seed=55, bias_check=True, state_every=16),
    # -- round trip --------------------------------------------------------------------------
    _s("roundtrip-checkpoint", "roundtrip", "checkpoint at step 8, restore into a fresh optimizer, continue",
       AdamConfig(amsgrad=True), steps=16, seed=61, roundtrip_at=8, extra_features=("checkpoint",)),
    _s("roundtrip-config", "roundtrip", "config -> JSON -> rebuilt optimizer at step 6",
       AdamConfig(lr=2e-3, beta1=0.8, beta2=0.99, eps=1e-6), steps=12, seed=62, roundtrip_at=6,
       extra_features=("config",)),
    # -- dtypes ------------------------------------------------------------------------------
    _s("dtype-half", "dtypes", "float16 and bfloat16 friendly: beta2 = 1 - 2^-6, lr 2^-7, theta ~ 1",
       AdamConfig(lr=2.0 ** -7, beta1=1 - 2.0 ** -3, beta2=1 - 2.0 ** -6, eps=2.0 ** -10), steps=20, seed=71,
       dtypes=ALL_DTYPES, options={"theta_scale": 1.0}),
    _s("dtype-float64-fine", "dtypes", "tiny lr (2^-20) so float64 errors are measured in their own ulps",
       AdamConfig(lr=2.0 ** -20, beta1=1 - 2.0 ** -3, beta2=1 - 2.0 ** -7, eps=2.0 ** -30), steps=20,
       seed=72, dtypes=("float64",), options={"theta_scale": 2.0 ** -12}),
    # -- long runs ---------------------------------------------------------------------------
    _s("long-default-2000", "long",
       "2000 steps at the defaults, 64 elements; recorded: the first 10 steps and every 50th pair. "
       "Resolves a 1e-5 relative update error at the default hyperparameters once bc2 is well conditioned",
       steps=2000, seed=81, shapes=((8, 8),), record_first=10, record_every=50, state_every=8, bias_check=True),
    _s("long-default-mixed", "long",
       "2000 steps at the defaults, 64 elements with gradients ~1 and 64 with gradients ~1e-9 (eps-dominated). "
       "How an implementation holds 1 - beta2 (float32(0.999) makes it 1.3e-5 off) scales v-dominated updates "
       "only; a common factor scales both groups, so the mean-error check resolves it without the state",
       steps=2000, seed=83, shapes=((8, 8), (64,)), record_first=10, record_every=50, state_every=8,
       bias_check=True, options={"tensor_scales": (1.0, 2.0 ** -30)}),
    _s("long-dyadic-3000", "long", "3000 steps, dyadic hyperparameters; past the bias-correction transient",
       AdamConfig(**DYADIC), steps=3000, seed=82, shapes=((4, 4), (8,)), record_first=10, record_every=150),
    # -- added for the public-bug reproductions (tests/public_bugs.py, docs/public-bugs.md) ---------
    _s("dense-zero-size-last", "dense",
       "zero-size parameters first and last in the list, around two non-empty ones: an empty tensor at the "
       "end of a group must not stop the update of the others (TransformerEngine 3207, pytorch 100701)",
       shapes=((0,), (4, 5), (7,), (0,)), steps=12, seed=91),
    _s("long-float16-3000", "long",
       "3000 steps, hyperparameters exact in float16 (beta2 = 1 - 2^-10, horizon 1024 steps), 16 elements; "
       "recorded: the first 10 steps and every 50th pair. Past step 2048, where a float16 step counter stops "
       "(2048 + 1 rounds to 2048), bc2 is still 0.87-0.95: a frozen bc2 makes the updates 3-5 % too small",
       AdamConfig(lr=2.0 ** -7, beta1=1 - 2.0 ** -3, beta2=1 - 2.0 ** -10, eps=2.0 ** -14), steps=3000,
       seed=92, shapes=((16,),), record_first=10, record_every=50, state_every=8,
       dtypes=("float16", "float32", "float64"), options={"theta_scale": 1.0}),
    _s("long-bfloat16-3000", "long",
       "3000 steps, hyperparameters exact in bfloat16 (beta2 = 1 - 2^-8), 16 elements; recorded: the first "
       "10 steps and every 50th pair. A bfloat16 step counter stops at 256, where bc2 = 1 - e^-1 = 0.63: "
       "every later update is ~20 % too small",
       AdamConfig(lr=2.0 ** -7, beta1=1 - 2.0 ** -3, beta2=1 - 2.0 ** -8, eps=2.0 ** -14), steps=3000,
       seed=93, shapes=((16,),), record_first=10, record_every=50, state_every=8,
       dtypes=("bfloat16", "float32", "float64"), options={"theta_scale": 1.0}),
    _s("decay-zero-lr", "decay",
       "lr = 0 for the first steps (a warmup that starts at 0: schedule index <= 4), then 1e-2; one tensor's "
       "gradient always zero, so v = 0 there: an update formed as 0 / 0 writes NaN (pytorch PR 186444)",
       AdamConfig(lr=PiecewiseConstant((4,), (0.0, 1e-2))), steps=12, seed=94, options={"zero_tensor": 1}),
    _s("sparse-empty-edges", "sparse",
       "empty sparse gradients at the first step, at steps 1-2, 7-9 (consecutive) and at the last step, no "
       "repeated index (pytorch 82486: SparseAdam failed on an empty sparse gradient)",
       shapes=((6, 4), (3,)), steps=14, seed=95, generator="sparse",
       options={"rows_early": 0, "never": 1, "nnz": 3, "repeats": 0, "empty_at": (1, 2, 7, 8, 9, 14)}),
)

_BY_NAME = {s.name: s for s in CATALOGUE}
assert len(_BY_NAME) == len(CATALOGUE), "duplicate scenario names"


def closed_loop(name: str, config: AdamConfig, shapes: Iterable[tuple[int, ...]], steps: int) -> Scenario:
    """The scenario of inputs that one run made (gradients a framework computed from its own parameters).

    No generator makes them again, so its golden is computed when it is judged
    (``golden.store.Golden.from_trajectory``) and never stored.
    """
    return Scenario(name=name, family="closed-loop", description="inputs of one run, fed back open-loop",
                    config=config, shapes=tuple(tuple(int(n) for n in s) for s in shapes), steps=steps,
                    inputs=Inputs("closed-loop", 0))


def get(name: str) -> Scenario:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; `adamconf list scenarios` lists the "
                       f"{len(CATALOGUE)} known ones") from None


def select(patterns: Iterable[str] | None = None) -> list[Scenario]:
    """Scenarios whose name or family matches any glob pattern (all if none given)."""
    patterns = list(patterns or [])
    if not patterns:
        return list(CATALOGUE)
    return [s for s in CATALOGUE if any(fnmatch.fnmatchcase(s.name, p) or s.family == p for p in patterns)]
