"""Third-party Adam implementations, each under its library's name: the ecosystem adapters.

Every one is a torch optimizer run by the generic ``_eco_torch.EcoAdapter`` (gradients into
``p.grad``, torch's clipping utilities, ``optimizer.step()``, LambdaLR for schedules); the
library is imported inside the adapter, so this module imports without any of them. What each
declares was read in the installed package's source (versions as in ``pyproject.toml``'s
``ecosystem`` extra), not taken from its README:

DeepSpeed 0.19.8, ``deepspeed.ops.adam.DeepSpeedCPUAdam`` (csrc/includes/cpu_adam.h, the
AVX/scalar ``Step_1``): float32 arithmetic and float32 m, v for float32/float16/bfloat16
parameters (float64 raises "param type Double and state type Float is not supported"); beta^t
kept as a running float32 product (``_betta1_t *= _betta1``; ``std::pow`` when the step jumps,
e.g. after a restore): ``powers=product``; update ``p += -lr/bc1 * m / (sqrt(v) * (1/sqrt(bc2)) + eps)``:
the standard epsilon form; ``adamw_mode=True`` multiplies p by (1 - lr w) before the update,
``adamw_mode=False`` adds w p to the gradient; no AMSGrad ("does not support the AMSGrad variant").
The C++ extension is built by DeepSpeed's JIT (ninja, g++) on first use (about 2.5 minutes,
then cached in ~/.cache/torch_extensions).

bitsandbytes 0.50.2, ``bitsandbytes.optim.Adam/AdamW/Adam8bit`` on the CPU backend
(backends/cpu/ops.py ``_optimizer_update_32bit_cpu``, ``_optimizer_update_8bit_blockwise_cpu``):
arithmetic and m, v in float32 whatever the parameter dtype (a float64 parameter is rounded to
float32 and back each step, so float64 is not declared); ``-lr*sqrt(bc2)/bc1 * m / (sqrt(v) +
eps*sqrt(bc2))`` (the standard form, rearranged), bc in binary64 from a Python int step;
weight decay ``p *= 1 - lr*w`` before the update for every 2-state optimizer, Adam included; the
documented ``amsgrad`` argument is accepted and dropped (``Adam.__init__`` does not pass it on).
Adam8bit: blockwise (256) dynamic 8-bit quantization of m and v; ``min_8bit_size=1`` here so
that the catalogue's small tensors are quantized (the library default, 4096 elements, would
leave every catalogue tensor in 32 bits).

torch-optimi 0.3.3, ``optimi.Adam/AdamW`` (optimi/adam.py): "debiased betas",
beta_hat = (beta^t - beta)/(beta^t - 1) in binary64, m and v hold m/bc1 and v/bc2 themselves
(so ``state`` is not declared: they are not the reference's m and v), update ``p -= lr * m_hat /
(sqrt(v_hat) + eps)``; Adam: ``weight_decay`` is L2 (``decouple_wd=False``), AdamW: decoupled,
``p *= 1 - lr*w``; ``kahan_sum`` (default: on for float16/bfloat16 parameters): the update is
accumulated in a compensation buffer of the parameter's dtype. ``optimi.adam``/``optimi.adamw``
run with ``kahan_sum=False`` (plain rounding), ``optimi.adamw.kahan`` with ``kahan_sum=True``.

torchao 0.18.0, ``torchao.optim.AdamW8bit/AdamW4bit/AdamWFp8/_AdamW`` (torchao/optim/adam.py
``single_param_adam`` under ``torch.compile``): arithmetic in float32 (``p.float()``), lr a float32
tensor, the step a float32 tensor and beta^t = ``beta ** step`` in float32 (``powers=pow``),
m, v updated by ``lerp``; decoupled ``p - lr*w*p``; AMSGrad with the raw maximum. Quantized state
only for tensors of at least 4096 elements whose size is a multiple of the block size
(hard-coded in ``_AdamBase._new_buffer``): every catalogue tensor is smaller, so the 8-bit, 4-bit
and fp8 optimizers run their float32 state here. ``bf16_stochastic_round=True`` rounds the
float32 result to bfloat16 stochastically (``_fp32_to_bf16_sr``). The lr must stay a tensor
("lr was changed to a non-Tensor object"), which LambdaLR cannot do: no schedules.

heavyball 3.2.1, ``heavyball.AdamW`` (chainable.update_by_adam -> utils._fused_compilable_adam_,
compiled): debiased betas (beta_debias = 1 - (1 - beta)/(1 - beta^t)), m and v as in optimi,
the denominator ``max(sqrt(v_hat), eps)`` (utils.eps_sqrt: clamp, not sqrt + eps), decoupled
``p * (1 - lr*w) - lr*u``; bfloat16 parameters stochastically rounded (copy_stochastic_); m and v
stored in ``storage_dtype`` (default float32, also for float64 parameters: float64 is not declared).

Stochastic rounding (torchao's bf16 path, heavyball's bfloat16 copies) draws from torch's global
generator: those runs seed it (``torch.manual_seed(0)`` at start), as a reproducible training
script does, so that two runs of a case agree; a restored run draws other numbers, so they declare
no checkpoint.

pytorch-optimizer 4.1.0: ``pytorch_optimizer.Adam`` and ``AdamW`` are ``torch.optim.Adam`` and
``torch.optim.AdamW`` re-exported (their ``__module__`` is ``torch.optim.adam``); its own
classes named after Adam (AdamP, AdamS, StableAdamW, ...) are variants with other update rules,
not Adam, and are not run here.

MindSpore 2.10.0, ``mindspore.experimental.optim.Adam/AdamW`` (its torch-style optimizers; the run is
``_eco_mindspore``, PyNative on the CPU): both documented with the standard epsilon form and AMSGrad.
``Adam`` calls the ``ops.Adam`` (ApplyAdam) kernel, float16/float32 only; ``AdamW`` is written in
MindSpore ops (bias corrections by ``ops.Pow`` of a float32 beta and an int32 step), and accepts float64.
"""

from __future__ import annotations

from typing import Any

from adamconf.reference.config import AdamConfig

from ._eco_mindspore import MindSporeAdapter
from ._eco_torch import EcoAdapter, EcoSpec, adam_kwargs
from .contract import Unsupported

__all__ = ["ADAPTERS"]

_CLIPPING = ("clipvalue", "clipnorm", "global_clipnorm")
# the harness clips with torch.nn.utils.clip_grad_*_ before every library's step
TORCH_CLIP = "pytorch"


def _torch_state(optimizer: Any, p: Any, group: dict[str, Any]) -> Any:
    """step, exp_avg, exp_avg_sq, max_exp_avg_sq: torch's names (DeepSpeed, torchao)."""
    st = optimizer.state.get(p, {})
    if not st:
        return None
    return st["step"], _plain(st["exp_avg"]), _plain(st["exp_avg_sq"]), _plain(st.get("max_exp_avg_sq"))


def _plain(t: Any) -> Any:
    """A quantized state tensor (torchao's subclasses) as its dequantized float32 values."""
    if t is not None and hasattr(t, "dequantize") and type(t).__name__.startswith("OptimState"):
        return t.dequantize()
    return t


def _bnb_state(optimizer: Any, p: Any, group: dict[str, Any]) -> Any:
    st = optimizer.state.get(p, {})
    if not st:
        return None
    return st["step"], st["state1"], st["state2"], None


# -- DeepSpeed -----------------------------------------------------------------------------------

def _ds_make(adamw: bool):
    def make(torch: Any, params: list[Any], kw: dict[str, Any]) -> Any:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(params, adamw_mode=adamw, bias_correction=True, **kw)

    return make


def _ds_probe() -> str | None:
    """Build (or load) the cpu_adam extension and take one step: the build is the usual failure."""
    import torch
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    p = torch.nn.Parameter(torch.ones(4))
    opt = DeepSpeedCPUAdam([p], lr=0.5)
    p.grad = torch.ones(4)
    opt.step()
    if not bool((p.detach() < 1).all()):
        return f"one DeepSpeedCPUAdam step left {p.detach().tolist()}"
    return None


# an sdist whose setup.py imports torch: an isolated build would install a torch of its own
_DS_PIP = "--no-build-isolation 'deepspeed==0.19.8' (with torch installed first)"


def _ds(name: str, adamw: bool) -> EcoAdapter:
    decay = "decoupled_weight_decay" if adamw else "weight_decay"
    return EcoAdapter(
        name,
        EcoSpec("deepspeed", _DS_PIP, f"deepspeed.ops.adam.DeepSpeedCPUAdam(adamw_mode={adamw})",
                _ds_make(adamw), lambda c: adam_kwargs(c, amsgrad=False), _torch_state, probe=_ds_probe),
        dialect=TORCH_CLIP, path_class="powers=product,theta=once",
        features=(decay, *_CLIPPING, "schedule", "state", "checkpoint", "nonfinite"),
        dtypes=("float16", "bfloat16", "float32"),
        description=f"DeepSpeedCPUAdam(adamw_mode={adamw}): the AVX C++ kernel, float32 m/v, beta^t a float32 product",
    )


# -- bitsandbytes ---------------------------------------------------------------------------------

def _bnb_make(cls: str, **fixed: Any):
    def make(torch: Any, params: list[Any], kw: dict[str, Any]) -> Any:
        import bitsandbytes as bnb

        return getattr(bnb.optim, cls)(params, **kw, **fixed)

    return make


def _bnb(name: str, cls: str, *, decay: str, amsgrad: bool, state: bool, **fixed: Any) -> EcoAdapter:
    return EcoAdapter(
        name,
        EcoSpec("bitsandbytes", "'bitsandbytes==0.50.2'", f"bitsandbytes.optim.{cls}", _bnb_make(cls, **fixed),
                lambda c: adam_kwargs(c, amsgrad=amsgrad), _bnb_state),
        dialect=TORCH_CLIP, path_class="powers=double,theta=once",
        features=(decay, *_CLIPPING, "schedule", "checkpoint", "nonfinite", *(("amsgrad",) if amsgrad else ()),
                  *(("state",) if state else ())),
        dtypes=("float16", "bfloat16", "float32"),
        description=f"bitsandbytes.optim.{cls} on the CPU backend"
                    + (" (min_8bit_size=1: every tensor 8-bit)" if fixed else ""),
    )


# -- torch-optimi -------------------------------------------------------------------------------

def _optimi_make(cls: str, kahan: bool):
    def make(torch: Any, params: list[Any], kw: dict[str, Any]) -> Any:
        import optimi

        return getattr(optimi, cls)(params, kahan_sum=kahan, **kw)

    return make


def _optimi(name: str, cls: str, *, kahan: bool) -> EcoAdapter:
    decay = "decoupled_weight_decay" if cls == "AdamW" else "weight_decay"
    return EcoAdapter(
        name,
        EcoSpec("optimi", "'torch-optimi==0.3.3'", f"optimi.{cls}(kahan_sum={kahan})", _optimi_make(cls, kahan),
                lambda c: adam_kwargs(c)),
        dialect=TORCH_CLIP, path_class=f"powers=double,theta={'kahan' if kahan else 'once'}",
        features=(decay, *_CLIPPING, "schedule", "checkpoint", "nonfinite"),
        dtypes=("float16", "bfloat16") if kahan else ("float16", "bfloat16", "float32", "float64"),
        description=f"optimi.{cls}: debiased betas" + (", Kahan-compensated parameter" if kahan else ""),
    )


# -- torchao --------------------------------------------------------------------------------------

def _ao_make(cls: str, **fixed: Any):
    def make(torch: Any, params: list[Any], kw: dict[str, Any]) -> Any:
        import torchao.optim

        return getattr(torchao.optim, cls)(params, **kw, **fixed)

    return make


def _ao_kwargs(config: AdamConfig) -> dict[str, Any]:
    if config.schedule is not None:
        raise Unsupported("torchao.optim keeps lr as a tensor and raises if a scheduler writes a float")
    return adam_kwargs(config, amsgrad=True)


def _ao(name: str, cls: str, *, dtypes: tuple[str, ...], theta: str, **fixed: Any) -> EcoAdapter:
    # stochastic rounding draws from torch's global generator, which state_dict() does not hold: a
    # restored run rounds with other random numbers, so no bitwise checkpoint is declared for it
    checkpoint = () if theta == "stochastic" else ("checkpoint",)
    return EcoAdapter(
        name,
        EcoSpec("torchao", "'torchao==0.18.0'", f"torchao.optim.{cls}", _ao_make(cls, **fixed), _ao_kwargs,
                _torch_state, seeded=theta == "stochastic"),
        dialect=TORCH_CLIP, path_class=f"powers=pow,theta={theta}",
        features=("decoupled_weight_decay", "amsgrad", *_CLIPPING, "state", *checkpoint, "nonfinite"),
        dtypes=dtypes,
        description=f"torchao.optim.{cls}" + "".join(f" {k}={v}" for k, v in fixed.items())
                    + ": float32 arithmetic under torch.compile, beta^t in float32",
    )


# -- heavyball ------------------------------------------------------------------------------------

def _hb_make(torch: Any, params: list[Any], kw: dict[str, Any]) -> Any:
    import heavyball

    # no warmup, no gradient or update clipping, no PaLM beta2 schedule: plain AdamW
    return heavyball.AdamW(params, warmup_steps=0, gradient_clipping=None, update_clipping=None, palm=False,
                           caution=False, mars=False, **kw)


# -- pytorch-optimizer ---------------------------------------------------------------------------

def _po_make(cls: str):
    def make(torch: Any, params: list[Any], kw: dict[str, Any]) -> Any:
        import pytorch_optimizer

        return getattr(pytorch_optimizer, cls)(params, **kw)

    return make


def _po(name: str, cls: str) -> EcoAdapter:
    decay = "decoupled_weight_decay" if cls == "AdamW" else "weight_decay"
    return EcoAdapter(
        name,
        EcoSpec("pytorch_optimizer", "'pytorch-optimizer==4.1.0'", f"pytorch_optimizer.{cls}", _po_make(cls),
                lambda c: adam_kwargs(c, amsgrad=True), _torch_state),
        dialect=TORCH_CLIP, path_class="powers=double,theta=once",
        features=(decay, "amsgrad", *_CLIPPING, "schedule", "state", "checkpoint", "nonfinite"),
        description=f"pytorch_optimizer.{cls}: torch.optim.{cls} re-exported",
    )


ADAPTERS: list[EcoAdapter] = [
    _ds("deepspeed.cpu_adam", adamw=False),
    _ds("deepspeed.cpu_adamw", adamw=True),
    # bitsandbytes documents weight_decay of Adam without saying decoupled and amsgrad as "the AMSGrad
    # variant": declared as documented (L2 for Adam, AMSGrad), so that the suite shows what it does
    _bnb("bitsandbytes.adam", "Adam", decay="weight_decay", amsgrad=True, state=True),
    _bnb("bitsandbytes.adamw", "AdamW", decay="decoupled_weight_decay", amsgrad=True, state=True),
    _bnb("bitsandbytes.adam8bit", "Adam8bit", decay="weight_decay", amsgrad=False, state=False, min_8bit_size=1),
    _optimi("optimi.adam", "Adam", kahan=False),
    _optimi("optimi.adamw", "AdamW", kahan=False),
    _optimi("optimi.adamw.kahan", "AdamW", kahan=True),
    _ao("torchao.adamw8bit", "AdamW8bit", dtypes=("bfloat16", "float32"), theta="once"),
    _ao("torchao.adamw4bit", "AdamW4bit", dtypes=("bfloat16", "float32"), theta="once"),
    _ao("torchao.adamwfp8", "AdamWFp8", dtypes=("bfloat16", "float32"), theta="once"),
    _ao("torchao.adamw.bf16_sr", "_AdamW", dtypes=("bfloat16",), theta="stochastic", bf16_stochastic_round=True),
    EcoAdapter(
        "heavyball.adamw",
        EcoSpec("heavyball", "'heavyball==3.2.1'", "heavyball.AdamW", _hb_make, lambda c: adam_kwargs(c),
                seeded=True),
        dialect=TORCH_CLIP, path_class=None,
        features=("decoupled_weight_decay", *_CLIPPING, "schedule", "nonfinite"),
        # storage_dtype="float32" (the default) holds m and v in float32 for float64 parameters too
        dtypes=("bfloat16", "float32"),
        description="heavyball.AdamW: compiled, debiased betas, denominator max(sqrt(v_hat), eps)",
    ),
    _po("pytorch_optimizer.adam", "Adam"),
    _po("pytorch_optimizer.adamw", "AdamW"),
    # MindSpore documents both with the standard epsilon form and AMSGrad; no clipping or schedule wrapped
    MindSporeAdapter("mindspore.adam", "Adam", dialect="kingma", path_class="powers=pow,theta=once",
                     features=("weight_decay", "amsgrad", "state", "nonfinite"), dtypes=("float16", "float32"),
                     description="mindspore.experimental.optim.Adam (ops.Adam kernel), PyNative, CPU"),
    MindSporeAdapter("mindspore.adamw", "AdamW", dialect="kingma", path_class="powers=pow,theta=once",
                     features=("decoupled_weight_decay", "amsgrad", "state", "nonfinite"),
                     dtypes=("float32", "float64"),
                     description="mindspore.experimental.optim.AdamW, PyNative, CPU"),
]
