"""The built-in PyTorch adapters: ``torch.optim.Adam``, ``AdamW`` and ``SparseAdam`` on each code path.

Update rule of ``Adam``/``AdamW`` (torch/optim/adam.py, every path), step t from 1,
w = weight_decay, g = p.grad after clipping:

    Adam:   g <- g + w*theta                      (coupled L2)
    AdamW:  theta <- theta * (1 - lr*w)           (decoupled, before the update)
    m <- lerp(m, g, 1 - beta1)                    (= beta1*m + (1-beta1)*g)
    v <- beta2*v + (1 - beta2)*g^2
    vmax <- max(vmax, v)                          (amsgrad: the raw v)
    theta <- theta - lr/bc1 * m / (sqrt(v or vmax)/sqrt(bc2) + eps),  bc_i = 1 - beta_i^t

i.e. the standard epsilon form: dialect preset ``pytorch`` (clip ``torch``:
``clip_grad_norm_`` multiplies by ``min(c/(n + 1e-6), 1)``).

``SparseAdam`` (torch/optim/_functional.py ``sparse_adam``): the gradient is
coalesced (repeated rows summed); only the rows present update m, v and theta;
``theta -= lr*sqrt(bc2)/bc1 * m / (sqrt(v) + eps)``, the epsilon-hat form; the
step counter is per parameter and counts empty gradients too: dialect preset
``pytorch-sparse``.

Where the paths round differently (same dialect, different error budgets):
- single-tensor (``foreach=False``) and ``foreach=True`` compute bc1, bc2 in
  double from the step counter's value (``_get_value(step)``); the CPU fused
  kernel likewise ("need to use double here to align with non-fused adam",
  aten/src/ATen/native/cpu/FusedAdamKernel.cpp), but evaluates the element-wise
  update in its own order (one expression, not torch's lerp/addcmul/addcdiv);
- ``capturable=True`` (CUDA only: torch 2.13 asserts "params and state_steps must
  be on supported devices: ['cuda', 'xpu', 'hpu', ...]" for CPU tensors) keeps
  the step as a float32 tensor and computes ``beta ** step`` from it in float32,
  for every parameter dtype; the CUDA fused kernel computes bc1, bc2 from the
  float32 step in the parameter's opmath type (fused_adam_utils.cuh ``adam_math``;
  not observed here: no GPU);
- under ``torch.compile``, ``_get_value(step)`` returns the float32 step tensor
  itself, so bc1 and bc2 are computed in float32 even for float64 parameters
  (measured: relative update error 6.5e-6 at step 1 with beta2 = 0.999 in float64:
  float32(0.999) enters 1 - beta2^t); on CUDA, dynamo also turns the group
  into ``capturable=True`` on the first compiled step
  (torch/_dynamo/variables/optimizer.py, ``_set_capturable``).

Observed in torch 2.13 (CPU): under ``torch.compile`` (AOTAutograd, with the
inductor and the aot_eager backends alike) an in-place update of a 0-d float64
tensor is dropped: ``x.mul_(2.0)`` on ``torch.full((), 0.5, dtype=torch.float64)``
leaves 0.5. So ``torch.adam.compiled`` leaves a scalar float64 parameter, its
m and v unchanged (the step counter still advances); float32/float16 0-d
tensors and the ``foreach=True`` path are not affected. The adapter does not
work around it: that is for the suite to report.
"""

from __future__ import annotations

from typing import Any, Collection, Sequence

import numpy as np

from adamconf.reference.config import AdamConfig

from ._torch_env import device_reason, import_torch, inductor_reason, prepare_device, torch_missing_reason
from ._torch_recipe import TorchPath, recipe_from_config, recipe_from_json
from ._torch_run import TorchRun
from .contract import DTYPES, BaseAdapter, refuse_undeclared

__all__ = ["ADAPTERS", "TorchAdapter"]

_CLIPPING = ("clipvalue", "clipnorm", "global_clipnorm")
_RUN_FEATURES = ("schedule", "state", "checkpoint", "config", "nonfinite")


class TorchAdapter(BaseAdapter):
    """One ``torch.optim`` optimizer on one code path (``TorchPath``)."""

    requires = ("torch",)

    def __init__(self, name: str, path: TorchPath, *, dialect: str, devices: Collection[str],
                 features: Collection[str], description: str, dtypes: Collection[str] = DTYPES,
                 api_profile: str | None = None) -> None:
        self.name = name
        self.api_profile = api_profile
        self.path = path
        self.dialect = dialect
        self.dtypes = tuple(dtypes)
        self.devices = tuple(devices)
        self.features = frozenset(features)
        self.description = description

    @property
    def path_class(self) -> str | None:
        """The arithmetic path (docs/verdicts.md): torch's single-tensor, foreach and CPU fused paths form the
        bias corrections from a Python step in binary64 (torch/optim/adam.py); capturable and CUDA fused
        ones raise beta to a float32 step tensor on the device. torch.compile: not declared (judged
        against every class)."""
        if self.path.compiled:
            return None
        if self.path.capturable:
            return "powers=pow,theta=once"
        if self.path.fused:
            return "powers=double|pow,theta=once"
        return "powers=double,theta=once"

    def api_object(self) -> type:
        """The ``torch.optim`` class whose public surface the ``api_profile`` suite checks."""
        return getattr(import_torch().optim, self.path.optimizer)

    # -- availability ------------------------------------------------------------------
    def available(self, device: str | None = None) -> str | None:
        """None if usable (on ``device``, or on at least one declared device); else why not."""
        reason = torch_missing_reason()
        if reason is not None:
            return reason
        if device is not None and device not in self.devices:
            return f"{self.name} runs on {list(self.devices)}, not on {device!r}"
        reasons = {d: self._device_reason(d) for d in ([device] if device else self.devices)}
        if all(r is not None for r in reasons.values()):
            return "; ".join(f"{d}: {r}" if len(reasons) > 1 else r for d, r in reasons.items())
        return None

    def _device_reason(self, device: str) -> str | None:
        reason = device_reason(device)
        if reason is None and self.path.compiled and device == "cpu":
            reason = inductor_reason()
        return reason

    # -- the Adapter protocol ------------------------------------------------------------
    def start(self, config: AdamConfig, params: Sequence[np.ndarray], *, dtype: str, device: str) -> TorchRun:
        self._check(config, dtype, device)
        return TorchRun.start(recipe_from_config(self.path, config), params, dtype=dtype, device=device)

    def restore(self, config: AdamConfig, blob: bytes, *, dtype: str, device: str) -> TorchRun:
        self._check(config, dtype, device)
        return TorchRun.restore(recipe_from_config(self.path, config), blob, dtype=dtype, device=device)

    def rebuild(self, config_text: str, params: Sequence[np.ndarray], *, dtype: str, device: str) -> TorchRun:
        self._check(None, dtype, device)
        return TorchRun.start(recipe_from_json(self.path, config_text), params, dtype=dtype, device=device)

    def _check(self, config: AdamConfig | None, dtype: str, device: str) -> None:
        refuse_undeclared(self, config, dtype, device)
        prepare_device(import_torch(), device)


def _dense(name: str, optimizer: str, description: str, *, devices=("cpu", "cuda"), api_profile: str | None = None,
           **flags: Any) -> TorchAdapter:
    decay = "decoupled_weight_decay" if optimizer == "AdamW" else "weight_decay"
    return TorchAdapter(
        name, TorchPath(optimizer, **flags), dialect="pytorch", devices=devices,
        features=("amsgrad", decay, *_CLIPPING, *_RUN_FEATURES), description=description, api_profile=api_profile,
    )


def _family(prefix: str, optimizer: str) -> list[TorchAdapter]:
    cls = f"torch.optim.{optimizer}"
    return [
        # torch.optim.Adam's surface is checked once, on its first adapter (suites/test_api_torch_optim.py)
        _dense(prefix, optimizer, f"{cls}(foreach=False): the single-tensor for-loop", foreach=False,
               api_profile="torch.optim" if optimizer == "Adam" else None),
        _dense(f"{prefix}.foreach", optimizer, f"{cls}(foreach=True): the multi-tensor _foreach_* path",
               foreach=True),
        _dense(f"{prefix}.fused", optimizer, f"{cls}(fused=True): the fused kernel (CPU and CUDA)", fused=True),
        # capturable=True with foreach=True, torch's default path on CUDA; capturable
        # CPU tensors are rejected by torch 2.13 (see the module docstring).
        _dense(f"{prefix}.capturable", optimizer,
               f"{cls}(capturable=True, foreach=True): CUDA-graph-safe, step and bias corrections on device",
               devices=("cuda",), foreach=True, capturable=True),
    ]


ADAPTERS: list[TorchAdapter] = [
    *_family("torch.adam", "Adam"),
    *_family("torch.adamw", "AdamW"),
    TorchAdapter(
        "torch.sparse_adam", TorchPath("SparseAdam"), dialect="pytorch-sparse", devices=("cpu", "cuda"),
        features=("sparse", *_RUN_FEATURES),
        description="torch.optim.SparseAdam: lazy rows, epsilon-hat form; gradients as torch.sparse_coo_tensor",
    ),
    # GradScaler's loop: torch's dialect, with a step on a non-finite gradient skipped (nonfinite = skip)
    *(TorchAdapter(
        name, TorchPath("Adam", amp=True, **flags), dialect="pytorch-amp",
        devices=("cpu", "cuda"), dtypes=("bfloat16", "float32", "float64"),
        features=("amsgrad", "weight_decay", *_CLIPPING, "state", "nonfinite"), description=description)
      for name, flags, description in (
          ("torch.adam.amp", {"foreach": False},
           "torch.optim.Adam(foreach=False) stepped through torch.amp.GradScaler (scale 1): a step with an inf or "
           "NaN gradient is skipped; no float16 (GradScaler refuses to unscale float16 gradients)"),
          ("torch.adam.fused.amp", {"fused": True},
           "torch.optim.Adam(fused=True) through torch.amp.GradScaler after an explicit unscale_: the kernel "
           "takes found_inf with grad_scale None (the path of pytorch PR 95847)"))),
    _dense("torch.adam.compiled", "Adam",
           "torch.optim.Adam() with its step under torch.compile (inductor); bias corrections in float32",
           compiled=True),
]
