"""Public Adam bugs, reproduced: each as a one-deviation numpy Adam (a mutant of tests/mutants.py's
``Base``) or as a small adapter around the real framework API, with the thread it comes from.

What it is for: the mutant catalogue (tests/mutants.py) shows that the suites catch bug *classes*;
this file shows that they catch bugs that *shipped*. Each ``PublicBug`` names the repository and the
issue or pull request (and the related threads), says in one line what shipped, builds the
implementation that reproduces it (``make()``), and lists the scenarios that must catch it and how
(``kind``, as in tests/mutants.py: "budget", "nonfinite" or "error"). tests/test_public_bugs.py runs
each one through the suites' own code path (``adamconf.suites.runner.run_case``) and asserts it is
caught; benchmarks/public_bug_table.py writes docs/public-bugs.md.

Reproductions that need a framework import it lazily (``requires``) so this module imports with numpy
alone. A bug the suites cannot catch today is listed with ``caught=False`` and the reason
(``not_caught``): what the reference would need to catch it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import struct
from dataclasses import dataclass, field
from typing import Callable

import ml_dtypes
import numpy as np

from adamconf.adapters.contract import BaseAdapter, Unsupported
from adamconf.reference.grads import SparseGrad
from mutants import Base, BaseRun, _CoupledClaimsDecoupled, _DecayAfterUpdate, _DecayNotLrScaled, _EpsFixed7, run

__all__ = ["BUGS", "PublicBug", "caught_by", "get", "missing_requirement", "run"]


# -- numpy reproductions: one override of the correct Base each ----------------------------------------

class _EmptyTailSkipsAll(BaseRun):
    """TransformerEngine 3207 / pytorch 100701: multi_tensor_apply's launch bookkeeping ran in the per-chunk
    loop; a zero-size tensor has no chunks, so when it is the last of the list the pending launch for the
    tensors before it never happens. The step returns, the step count advances (Python side), and no
    parameter, m or v changes."""

    def update(self, i, sel, g, e, s):
        if self.shapes and int(np.prod(self.shapes[-1])) == 0:
            return  # the kernel for this list was never launched
        super().update(i, sel, g, e, s)


class _BiasCorrectionFloat32(BaseRun):
    """pytorch PR 88173: the bias corrections formed from the float32 ``step`` tensor (1 - beta ** step in
    float32) while the fused kernel forms them in double: in a float64 run bc1 and bc2 carry float32
    errors (a float32 pow is a legitimate path in a float32 run, not in a float64 one)."""

    def bias_corrections(self, t):
        if not self.d.bias_correction:
            return 1.0, 1.0
        b1, b2 = (np.float32(b) for b in self.betas())
        step = np.float32(self.bc_step(t))
        return float(np.float32(1) - b1 ** step), float(np.float32(1) - b2 ** step)


def _counter_run(dtype, exported: bool = True) -> type:
    """pytorch/ao PR 4915, DeepSpeed PR 8496: the step counter is a tensor of a 16-bit dtype
    (``torch.tensor(0.0)`` under a bfloat16 default dtype; ZenFlow's counters), so ``step += 1`` stops at
    256 (bfloat16) or 2048 (float16): t + 1 rounds back to t. bc1 and bc2 freeze there.

    ``exported``: the state's ``step`` is that frozen counter (as state_dict()["step"] is in both); without
    it the state reports the true count, as an implementation that keeps a separate counter would, and only
    the numbers can show the frozen bias corrections."""

    class _CounterRun(BaseRun):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.step_lp = np.zeros((), dtype)

        def step(self, grads):
            self.step_lp = (self.step_lp + np.ones((), dtype)).astype(dtype)
            super().step(grads)

        def bc_step(self, t):
            return int(float(self.step_lp))

        def state(self):
            out = super().state()
            if exported:
                out["step"] = int(float(self.step_lp))
            return out

    _CounterRun.__name__ = f"_Counter{np.dtype(dtype).name.capitalize()}" + ("" if exported else "Hidden")
    return _CounterRun


def bf16_truncate(x: float) -> float:
    """tt-metal's fill_cb_with_value: the float32 bits shifted right by 16 (a truncation, not a rounding)."""
    (bits,) = struct.unpack("<I", struct.pack("<f", float(x)))
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFF0000))[0]


class _BetasBf16Truncated(BaseRun):
    """tenstorrent/tt-metal 55935: moreh_adam received beta1 and beta2 as bfloat16 bit-truncations and formed
    1 - beta and the bias corrections from them in the kernel: beta2 = 0.999 ran as 0.99609375, beta1 = 0.9
    as 0.8984375."""

    def betas(self):
        return bf16_truncate(self.c.beta1), bf16_truncate(self.c.beta2)


class SparseAdamEmptyGradError(RuntimeError):
    pass


class _SparseAdamRaisesOnEmpty(BaseRun):
    """pytorch 82486: SparseAdam built its result as sparse_coo_tensor(indices, values, ...) from the gradient's
    values reshaped with the dense row size; an empty gradient (values of shape (0, 0) from a padding-only
    batch) made it raise instead of leaving every row as it is."""

    def gradient(self, e, shape):
        if isinstance(e, SparseGrad) and np.asarray(e.indices).size == 0:
            raise SparseAdamEmptyGradError(
                f"values has incorrect size, expected [0, {', '.join(map(str, shape[1:]))}], got [0, 0]")
        return super().gradient(e, shape)


def _mutant(key: str, run_class: type, dialect: str = "pytorch", description: str = "") -> Callable[[], Base]:
    def make():
        adapter = Base(dialect)
        adapter.run_class = run_class
        adapter.key = key
        adapter.description = description
        adapter.name = f"bug.{key}@{dialect}"
        return adapter

    return make


# -- reproductions around the real framework API -------------------------------------------------------

class _Delegate:
    """A built-in adapter under another name, claiming another dialect, or fed a changed config: the real
    framework runs, and only what the adapter says about it (or what it passes on) changes."""

    def __init__(self, inner: str, name: str, dialect=None, config_map=None, description: str = "",
                 extra_features=()) -> None:
        from adamconf.adapters.registry import load_adapter

        self._inner = load_adapter(inner)
        self.name = name
        self.dialect = dialect if dialect is not None else self._inner.dialect
        self.features = tuple(self._inner.features) + tuple(extra_features)
        self.description = description
        self._map = config_map

    def __getattr__(self, key):  # everything else is the built-in's
        inner = self.__dict__.get("_inner")
        if inner is None:
            raise AttributeError(key)
        return getattr(inner, key)

    def start(self, config, params, *, dtype, device):
        config = self._map(config) if self._map else config
        return self._inner.start(config, params, dtype=dtype, device=device)


def _delegate(inner, name, **kw) -> Callable[[], _Delegate]:
    return lambda: _Delegate(inner, name, **kw)


def _clipnorm_as_global(config):
    """Standalone Keras 2 (keras/optimizers.py): ``clipnorm`` clipped by the norm of *all* gradients."""
    if config.clipnorm is None:
        return config
    return dataclasses.replace(config, clipnorm=None, global_clipnorm=config.clipnorm)


def _l2_as_decoupled(config):
    """DeepSpeed's CPU fused_adam binding built its Adam_Optimizer once, in AdamW mode, whatever mode the
    call asked for."""
    if config.weight_decay and config.weight_decay_mode == "l2":
        return dataclasses.replace(config, weight_decay_mode="decoupled")
    return config


class _CapturableRun:
    """torch 2.13's single-tensor ``capturable=True`` branch of torch/optim/adam.py (_single_tensor_adam), line
    for line, in real torch tensor ops. ``capturable=True`` asserts a CUDA/XLA/HPU device outside
    torch.compile, so on a CPU the branch is run here as written; tests/test_public_bugs.py also runs the
    real ``torch.optim.Adam(capturable=True)`` where CUDA is present.

    buggy (torch <= 2.13): denom = sqrt(v) / (sqrt(bc2) * -step_size) + eps / -step_size; param.addcdiv_(m,
    denom). With lr = 0, step_size = -0.0, and where v = 0 that is 0 / -0.0 = NaN.
    fixed (PR 186444, the float32 non-differentiable path): eps is added before the step size is folded in,
    denom = (sqrt(v) / sqrt(bc2) + eps) / -step_size.
    """

    def __init__(self, config, params, dtype, buggy):
        import torch

        self.torch, self.c, self.buggy = torch, config, buggy
        self.T = {"float32": torch.float32, "float64": torch.float64}[dtype]
        self.p = [torch.tensor(np.asarray(p, np.float64), dtype=self.T) for p in params]
        self.m = [torch.zeros_like(p) for p in self.p]
        self.v = [torch.zeros_like(p) for p in self.p]
        self.step_t = [torch.tensor(0.0, dtype=torch.float32) for _ in self.p]  # _get_scalar_dtype()
        self.k = 0  # LambdaLR's last_epoch: step t runs at schedule index t - 1

    def step(self, grads):
        torch, c = self.torch, self.c
        lr = c.base_lr(self.k)
        self.k += 1
        beta1, beta2, eps = c.beta1, c.beta2, c.eps
        with torch.no_grad():
            for i, g in enumerate(grads):
                grad = torch.tensor(np.asarray(g, np.float64), dtype=self.T)
                param, exp_avg, exp_avg_sq, step_t = self.p[i], self.m[i], self.v[i], self.step_t[i]
                step_t += 1
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = step_t
                bias_correction1 = 1 - beta1 ** step
                bias_correction2 = 1 - beta2 ** step
                step_size = lr / bias_correction1
                step_size_neg = step_size.neg()
                bias_correction2_sqrt = bias_correction2.sqrt()
                if self.buggy:
                    denom = (exp_avg_sq.sqrt() / (bias_correction2_sqrt * step_size_neg)).add_(eps / step_size_neg)
                else:
                    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps).div_(step_size_neg)
                param.addcdiv_(exp_avg, denom)

    def params(self):
        return [p.numpy().copy() for p in self.p]

    def state(self):
        return {"step": int(self.step_t[0].item()) if self.step_t else 0, "m": [x.numpy().copy() for x in self.m],
                "v": [x.numpy().copy() for x in self.v], "vmax": None}


class CapturableTranscript(BaseAdapter):
    dialect = "pytorch"
    dtypes = ("float32",)  # the step tensor is float32: a float64 run would add pytorch PR 88173's defect
    devices = ("cpu",)
    features = ("state", "schedule", "nonfinite")

    def __init__(self, buggy: bool = True) -> None:
        self.buggy = buggy
        self.name = "bug.torch_capturable_transcript" + ("" if buggy else "_fixed")

    def available(self, device=None):
        return None if importlib.util.find_spec("torch") else "torch is not installed"

    def start(self, config, params, *, dtype, device):
        if config.weight_decay or config.amsgrad or config.clipnorm or config.global_clipnorm or config.clipvalue \
                or config.decay or config.eps_root:
            raise Unsupported("the transcript covers plain Adam with an lr schedule only")
        return _CapturableRun(config, params, dtype, self.buggy)


class _FusedAmpRun:
    """torch.optim.Adam(fused=True) stepped the way GradScaler steps it after an explicit ``unscale_``: the
    gradients are already unscaled, so ``grad_scale`` is None and only ``found_inf`` is set (1.0 when any
    gradient entry is not finite). With found_inf honoured the step is skipped; pytorch PR 95847 fixed the
    fused kernels, which ignored found_inf whenever grad_scale was None and applied the step."""

    def __init__(self, config, params, dtype, pass_found_inf):
        import torch

        self.torch, self.pass_found_inf = torch, pass_found_inf
        T = {"float32": torch.float32, "float64": torch.float64}[dtype]
        self.T = T
        self.p = [torch.nn.Parameter(torch.tensor(np.asarray(p, np.float64), dtype=T)) for p in params]
        self.opt = torch.optim.Adam(self.p, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps,
                                    fused=True)

    def step(self, grads):
        torch = self.torch
        finite = True
        for p, g in zip(self.p, grads):
            p.grad = torch.tensor(np.asarray(g, np.float64), dtype=self.T)
            finite = finite and bool(torch.isfinite(p.grad).all())
        if self.pass_found_inf:
            self.opt.grad_scale = None
            self.opt.found_inf = torch.tensor(0.0 if finite else 1.0)
        self.opt.step()

    def params(self):
        return [p.detach().numpy().copy() for p in self.p]


class FusedAmp(BaseAdapter):
    #: torch's dialect with GradScaler's skipping of non-finite steps: what the loop claims to do
    dialect = "pytorch-amp"
    dtypes = ("float32",)
    devices = ("cpu",)
    features = ("nonfinite",)

    def __init__(self, pass_found_inf: bool) -> None:
        self.pass_found_inf = pass_found_inf
        self.name = "bug.torch_fused_found_inf" + ("" if pass_found_inf else "_ignored")

    def available(self, device=None):
        return None if importlib.util.find_spec("torch") else "torch is not installed"

    def start(self, config, params, *, dtype, device):
        if config.schedule is not None or config.weight_decay or config.amsgrad or config.decay:
            raise Unsupported("plain Adam only")
        return _FusedAmpRun(config, params, dtype, self.pass_found_inf)


# -- the catalogue -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PublicBug:
    """One public bug: where it was reported and fixed, what shipped, how it is reproduced here, and the
    scenarios (``kills``) that must catch it, in ``dtype``, as ``kind`` (tests/mutants.py's KINDS)."""

    name: str
    repo: str
    ref: str  # "issue 3207", "PR 95847"
    also: tuple[str, ...]  # related threads, "owner/name#N"
    shipped: str  # one line on what shipped
    how: str  # how it is reproduced here
    make: Callable
    dtype: str
    kills: tuple[str, ...]
    kind: str = "budget"
    requires: str | None = None  # a module the reproduction needs
    caught: bool = True
    not_caught: str = ""  # why the suites cannot catch it today
    controls: tuple[str, ...] = field(default_factory=tuple)  # scenarios it must *pass* (the bug is specific)

    @property
    def verdict(self) -> str:
        return "error" if self.kind == "error" else "failed"

    @property
    def citation(self) -> str:
        return f"{self.repo} {self.ref}" + (f" (also {', '.join(self.also)})" if self.also else "")

    @property
    def url(self) -> str:
        kind, number = self.ref.split()
        return f"https://github.com/{self.repo}/{'issues' if kind == 'issue' else 'pull'}/{number}"


def missing_requirement(bug: PublicBug) -> str | None:
    if bug.requires and importlib.util.find_spec(bug.requires) is None:
        return f"{bug.requires} is not installed"
    return None


def _b(name, repo, ref, shipped, how, make, kills, dtype="float32", also=(), **kw) -> PublicBug:
    return PublicBug(name, repo, ref, tuple(also), shipped, how, make, dtype, tuple(kills), **kw)


BUGS: tuple[PublicBug, ...] = (
    _b("torch_fused_found_inf", "pytorch/pytorch", "PR 95847",
       "fused Adam/AdamW passed found_inf to the kernel only when grad_scale was set: after an explicit "
       "GradScaler.unscale_ (grad_scale None) a step with inf/NaN gradients was applied instead of skipped",
       "real torch.optim.Adam(fused=True) on the CPU stepped as GradScaler does after unscale_ "
       "(grad_scale None, found_inf set), claiming torch's dialect with GradScaler's nonfinite=skip; the bug is "
       "the same loop without found_inf: it applies the non-finite step (theta moves, then turns NaN)",
       lambda: FusedAmp(pass_found_inf=False), ["edge-nan", "edge-inf"], also=("pytorch/pytorch#95781",
                                                                                 "pytorch/pytorch#96106"),
       requires="torch", controls=("dense-default",)),
    _b("te_zero_size_tail", "NVIDIA/TransformerEngine", "issue 3207",
       "FusedAdam (and torch's CUDA foreach/fused multi_tensor_apply) silently skipped the update of every "
       "tensor of a group whose last parameter had zero elements",
       "numpy mutant: when the last parameter is empty no tensor is updated (theta, m, v unchanged), the "
       "step count advances", _mutant("te_zero_size_tail", _EmptyTailSkipsAll), ["dense-zero-size-last"],
       also=("pytorch/pytorch#100701", "pytorch/pytorch#100811", "NVIDIA/TransformerEngine#3212"),
       controls=("dense-mixed-shapes",)),
    _b("torch_bc_float32", "pytorch/pytorch", "PR 88173",
       "the foreach/capturable Adam formed the bias corrections from the float32 step tensor, so they did "
       "not match the fused kernel's, formed in double: in float64 runs bc1 and bc2 carry float32 errors",
       "numpy mutant, float64: bc = 1 - fl32(beta) ** fl32(t) in float32",
       _mutant("torch_bc_float32", _BiasCorrectionFloat32), ["dense-default", "dense-dyadic"], dtype="float64"),
    _b("torch_capturable_zero_lr", "pytorch/pytorch", "PR 186444",
       "capturable single-tensor Adam folded -lr/bc1 into the denominator: at lr = 0, where v = 0, it formed "
       "0 / -0.0 and wrote NaN into the parameters (an lr warmup from 0)",
       "torch 2.13's capturable branch transcribed line for line in real torch ops (capturable=True needs "
       "CUDA); real Adam(capturable=True) where CUDA is present", lambda: CapturableTranscript(buggy=True),
       ["decay-zero-lr"], also=("pytorch/pytorch#126514",), kind="error", requires="torch",
       controls=("dense-default", "decay-piecewise")),
    _b("torch_compiled_zero_lr", "pytorch/pytorch", "PR 186444",
       "found here: torch 2.13's torch.compile'd Adam on the CPU writes NaN at lr = 0 where v = 0, the same 0 / 0 "
       "(eager Adam is correct); listed in adapters/expectations/torch.toml",
       "real torch.optim.Adam with its step under torch.compile (the built-in torch.adam.compiled adapter)",
       _delegate("torch.adam.compiled", "bug.torch_compiled_zero_lr"), ["decay-zero-lr"], kind="error",
       requires="torch"),
    _b("torchao_bf16_step", "pytorch/ao", "PR 4915",
       "_AdamBase created its step counter with torch.tensor(0.0): under a bfloat16 default dtype it stops at "
       "256, bc2 freezes at 1 - 0.999^256 = 0.226 and every later update is ~2.1x too small",
       "numpy mutant, float32 parameters: the step counter a bfloat16 scalar, bc1 and bc2 from it",
       _mutant("torchao_bf16_step", _counter_run(ml_dtypes.bfloat16)),
       ["long-default-2000", "long-bfloat16-3000"], also=("deepspeedai/DeepSpeed#8496",), kind="error",
       controls=("dense-default",)),
    _b("torchao_bf16_step_hidden", "pytorch/ao", "PR 4915",
       "the same frozen bfloat16 counter, judged by the numbers alone", "numpy mutant as above, its state "
       "reporting the true step count (an implementation that keeps the frozen counter internal)",
       _mutant("torchao_bf16_step_hidden", _counter_run(ml_dtypes.bfloat16, exported=False)),
       ["long-default-2000", "long-bfloat16-3000"], controls=("dense-default",)),
    _b("deepspeed_fp16_step", "deepspeedai/DeepSpeed", "PR 8496",
       "ZenFlow's selective Adam kept its step counters in the 16-bit dtype: they stop at 2048 (float16) / 256 "
       "(bfloat16), freezing the bias corrections",
       "numpy mutant, float32 parameters: the step counter a float16 scalar (stops at 2048)",
       _mutant("deepspeed_fp16_step", _counter_run(np.float16)), ["long-float16-3000"], kind="error",
       controls=("long-default-2000",)),
    _b("deepspeed_fp16_step_hidden", "deepspeedai/DeepSpeed", "PR 8496",
       "the same frozen float16 counter, judged by the numbers alone", "numpy mutant as above, its state "
       "reporting the true step count", _mutant("deepspeed_fp16_step_hidden", _counter_run(np.float16, False)),
       ["long-float16-3000"], controls=("long-default-2000", "long-dyadic-3000")),
    _b("deepspeed_fp16_step_fp16_params", "deepspeedai/DeepSpeed", "PR 8496",
       "the same frozen float16 counter with float16 parameters and moments, judged by the numbers alone",
       "numpy mutant as above in a float16 run, its state reporting the true step count",
       _mutant("deepspeed_fp16_step_fp16_params", _counter_run(np.float16, False)), ["long-float16-3000"],
       dtype="float16", caught=False,
       not_caught="past step 2048 the frozen bc2 costs 3-5 % of each update, but in float16 at beta2 = 1 - 2^-10 "
       "each step adds (1 - beta2) g^2, about one ulp of v, so v legitimately carries a large accumulated rounding "
       "error and the bound on a float16 update is wider than that: measured, the mutant passes long-float16-3000 "
       "at the correct Adam's 0.08 of its budget (a float16 scenario needs 1 - beta2 <= 2^-9 for beta2^2048 to "
       "matter, where the same holds). The float32-parameter run (float32 weights with a 16-bit counter, the "
       "case of both PRs) is caught, and a frozen step count in the state is caught in any dtype by the "
       "contract check"),
    _b("ttmetal_bf16_betas", "tenstorrent/tt-metal", "issue 55935",
       "moreh_adam/moreh_adamw received beta1, beta2 truncated to bfloat16: beta2 = 0.999 ran as 0.99609 "
       "(a 256-step horizon), 0.9999 was indistinguishable from 0.999",
       "numpy mutant: betas bit-truncated to bfloat16 (1 - beta and the bias corrections from them)",
       _mutant("ttmetal_bf16_betas", _BetasBf16Truncated), ["dense-default", "dense-first-steps"],
       controls=("dtype-half",)),
    _b("keras_adamw_l2", "keras-team/keras", "issue 19051",
       "Keras 3 AdamW, rewritten to inherit from Adam, became Adam with L2 regularization instead of "
       "decoupled weight decay", "numpy mutant (mutants.py's coupled_claims_decoupled): L2 applied where "
       "decoupled decay is asked for", _mutant("keras_adamw_l2", _CoupledClaimsDecoupled, "keras"),
       ["decay-weight-decoupled", "decay-dyadic"]),
    _b("optimisers_jl_decay_lr", "FluxML/Optimisers.jl", "issue 182",
       "AdamW = OptimiserChain(Adam, WeightDecay): the decay lambda * x was added to the Adam step, not "
       "multiplied by the learning rate", "numpy mutant (mutants.py's decay_not_lr_scaled): theta (1 - w) "
       "instead of theta (1 - lr w)", _mutant("optimisers_jl_decay_lr", _DecayNotLrScaled),
       ["decay-weight-decoupled", "decay-dyadic"]),
    _b("bnb_decay_after_update", "bitsandbytes-foundation/bitsandbytes", "issue 2010",
       "the CUDA 2-state kernels applied decoupled decay after the update, p = (p + step u)(1 - lr wd), "
       "while the default and Triton backends applied it before: the backends disagreed",
       "numpy mutant (mutants.py's decay_after_update)", _mutant("bnb_decay_after_update", _DecayAfterUpdate),
       ["decay-weight-decoupled", "decay-dyadic"], also=("bitsandbytes-foundation/bitsandbytes#2040",)),
    _b("deepspeed_cpu_adamw_mode", "deepspeedai/DeepSpeed", "PR 8307",
       "the CPU fused_adam binding ignored adam_w_mode: FusedAdam(adam_w_mode=False) applied decoupled (AdamW) "
       "decay instead of L2", "real torch.optim.AdamW run for an Adam(weight_decay) (L2) request "
       "(the built-in torch.adamw adapter fed the config with the decay mode switched)",
       _delegate("torch.adamw", "bug.deepspeed_cpu_adamw_mode", config_map=_l2_as_decoupled,
                 extra_features=("weight_decay",)),
       ["decay-weight-l2"], requires="torch", controls=("decay-weight-decoupled",)),
    _b("optax_amsgrad_corrected_max", "google-deepmind/optax", "issue 1389",
       "optax.amsgrad keeps the maximum of the bias-corrected v; PyTorch and TensorFlow keep the maximum of "
       "the raw v, so models ported between them train differently",
       "real optax.amsgrad (the built-in optax.amsgrad adapter) claiming PyTorch's raw maximum",
       _delegate("optax.amsgrad", "bug.optax_amsgrad@pytorch", dialect="pytorch"), ["amsgrad-decreasing-v"],
       also=("google-deepmind/optax#1423",), requires="optax"),
    _b("tf_keras_clipnorm_global", "tensorflow/tensorflow", "issue 29108",
       "clipnorm clipped each gradient by its own norm in tf.keras but by the global norm of all gradients in "
       "standalone Keras: the same argument, two semantics", "real Keras 3 Adam given the clipnorm as "
       "global_clipnorm (standalone Keras 2's semantics) while claiming per-tensor clipnorm",
       _delegate("keras.adam", "bug.keras_clipnorm_global", config_map=_clipnorm_as_global),
       ["clip-norm-fires"], also=("tensorflow/tensorflow#29114", "tensorflow/tensorflow#36001"),
       requires="keras", controls=("clip-norm-idle",)),
    _b("tf_keras_eps_hat", "keras-team/tf-keras", "issue 315",
       "Keras' Adam adds epsilon-hat to sqrt(v) after folding the bias corrections into lr (the paper's "
       "section 2 form), not the epsilon of Algorithm 1 that PyTorch uses; with Keras' 1e-7 default the two "
       "differ wherever sqrt(v_hat) is near eps", "real Keras 3 Adam (the built-in keras.adam adapter) "
       "claiming PyTorch's epsilon form", _delegate("keras.adam", "bug.keras_adam@pytorch", dialect="pytorch"),
       ["edge-eps-dominant"], also=("keras-team/keras#17391",), requires="keras", controls=("dense-default",)),
    _b("tf_keras_eps_default", "keras-team/tf-keras", "issue 315",
       "the Keras default epsilon is 1e-7 where PyTorch's and optax's is 1e-8: a port that keeps the default "
       "runs with ten times the epsilon", "numpy mutant (mutants.py's eps_fixed_1e-7): 1e-7 used whatever "
       "eps is asked for", _mutant("tf_keras_eps_default", _EpsFixed7), ["edge-eps-dominant", "dense-dyadic-hat"],
       controls=("dense-keras-defaults",)),
    _b("torch_sparse_adam_empty", "pytorch/pytorch", "issue 82486",
       "SparseAdam raised 'values has incorrect size' on an empty sparse gradient (a batch that only hits the "
       "padding row) instead of leaving every row unchanged", "numpy mutant, lazy rows: raises on an empty "
       "sparse gradient", _mutant("torch_sparse_adam_empty", _SparseAdamRaisesOnEmpty, "pytorch-sparse"),
       ["sparse-empty-edges", "sparse-empty"], also=("pytorch/pytorch#86459",), kind="error",
       controls=("sparse-untouched-rows", "sparse-repeated-indices")),
)

_BY_NAME = {b.name: b for b in BUGS}
assert len(_BY_NAME) == len(BUGS), "duplicate public-bug names"


def get(name: str) -> PublicBug:
    return _BY_NAME[name]


def caught_by(outcome) -> str:
    """The check that caught a failing case: the numeric check (update, trajectory, state, bias) furthest over
    its budget, the non-finite pattern, or the adapter's exception."""
    from mutants import failure_kind

    kind = failure_kind(outcome)
    if kind == "error":
        text = outcome.message or ""
        return "non-finite parameters (contract)" if "non-finite element" in text else "adapter raised"
    if kind == "nonfinite":
        return "non-finite pattern"
    checks = {} if outcome.assessment is None else dict(outcome.assessment.checks)
    over = {k: float(v) for k, v in checks.items() if v is not None and not float(v) <= 1}
    if not over:
        return "?"
    return max(over, key=lambda k: over[k] if np.isfinite(over[k]) else np.inf)
