"""A run of a ``torch.optim`` Adam: gradients in, clipping, the optimizer step, state out.

Per step (the order of a torch training loop):
1. each gradient is put into ``p.grad`` (dense tensor; for SparseAdam a
   ``torch.sparse_coo_tensor`` with its repeated indices, coalesced by torch);
2. clipping with torch's own utilities (torch/nn/utils/clip_grad.py), in the
   order value -> norm -> global: ``clip_grad_value_`` (clamp to [-c, c]),
   ``clip_grad_norm_`` on each tensor alone (clipnorm; torch has no per-tensor
   clip, this is the closest thing), ``clip_grad_norm_`` over all tensors
   (global_clipnorm). ``clip_grad_norm_`` multiplies every gradient by
   ``min(c / (n + 1e-6), 1)``, n computed in the gradient's dtype;
3. ``optimizer.step()`` (under ``torch.compile`` for the compiled path);
4. ``scheduler.step()`` (LambdaLR, see ``_torch_recipe``).

Through ``torch.amp.GradScaler`` (``TorchPath.amp``), the mixed-precision loop torch documents
(torch/amp/grad_scaler.py): the gradient comes from ``scaler.scale(loss).backward()`` of
``loss = sum((p * g).sum())`` (so ``p.grad = g * scale``), then ``scaler.unscale_(optimizer)``,
the clipping, ``scaler.step(optimizer)`` and ``scaler.update()``. The scale starts at 1 and is a
power of two (halved after a skipped step, never grown: ``growth_interval`` 2^30), so scaling and
unscaling are exact; what the loop adds is the skip: a step with an inf or NaN gradient entry is
not applied and not counted (``found_inf``; the fused kernel takes it as an argument, which is
the path of pytorch PR 95847).
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from adamconf.reference.grads import GradEntry, SparseGrad, check_entries

from ._common import device_steps
from ._torch_env import import_torch, sparse_to_torch, to_numpy, to_tensor, torch_dtype
from ._torch_recipe import Recipe, build, config_json
from .contract import Unsupported

__all__ = ["CHECKPOINT_FORMAT", "TorchRun", "load_checkpoint"]

CHECKPOINT_FORMAT = "adamconf.torch-checkpoint/1"


class TorchRun:
    """Parameters, optimizer and scheduler of one run (see the module docstring for a step)."""

    def __init__(self, recipe: Recipe, params: list[Any], *, dtype: str, device: str) -> None:
        self._torch = import_torch()
        self.recipe = recipe
        self.dtype = dtype
        self.device = device
        self._params = params
        self._shapes = [tuple(p.shape) for p in params]
        self.optimizer, self.scheduler = self._build(params)
        self._step_fn = _compiled_step(self._torch, self.optimizer) if recipe.path.compiled else self.optimizer.step
        self._scaler = (self._torch.amp.GradScaler(device, init_scale=1.0, growth_interval=2 ** 30)
                        if recipe.path.amp else None)

    def _build(self, params: list[Any]) -> tuple[Any, Any]:
        """The optimizer over ``params`` and its scheduler (None): the one thing a subclass for another
        torch optimizer (adapters/_eco_torch.py) replaces."""
        return build(self._torch, self.recipe, params)

    # -- construction --------------------------------------------------------------
    @classmethod
    def start(cls, recipe: Recipe, arrays: Sequence[np.ndarray], *, dtype: str, device: str) -> "TorchRun":
        torch = import_torch()
        params = [to_tensor(torch, a, dtype, device).requires_grad_(True) for a in arrays]
        return cls(recipe, params, dtype=dtype, device=device)

    @classmethod
    def restore(cls, recipe: Recipe, blob: bytes, *, dtype: str, device: str) -> "TorchRun":
        """A fresh optimizer over fresh tensors, loaded with ``save()``'s state dicts."""
        torch = import_torch()
        saved = load_checkpoint(torch, blob, dtype=dtype, device=device)
        params = [t.to(device).requires_grad_(True) for t in saved["params"]]
        run = cls(recipe, params, dtype=dtype, device=device)
        # Optimizer before scheduler, both after the scheduler exists: the order
        # torch documents (the scheduler's constructor rewrites the lr first).
        run.optimizer.load_state_dict(saved["optimizer"])
        if (saved["lr_scheduler"] is None) != (run.scheduler is None):
            raise ValueError("the checkpoint and the config disagree on having an lr schedule; restore with "
                             "the AdamConfig the checkpointed run was started with")
        if run.scheduler is not None:
            run.scheduler.load_state_dict(saved["lr_scheduler"])
        return run

    # -- the Run protocol ------------------------------------------------------------
    def step(self, grads: Sequence[GradEntry]) -> None:
        check_entries(grads, self._shapes)
        if self._scaler is not None:
            return self._amp_step(grads)
        sparse = self.recipe.path.optimizer == "SparseAdam"
        for p, g, shape in zip(self._params, grads, self._shapes):
            if sparse:
                p.grad = sparse_to_torch(self._torch, g, shape, self.dtype, self.device)
            elif isinstance(g, SparseGrad):
                raise Unsupported(f"torch.optim.{self.recipe.path.optimizer} does not support sparse gradients "
                                  "(it raises 'Adam does not support sparse gradients, please consider "
                                  "SparseAdam instead'); use the torch.sparse_adam adapter")
            else:
                p.grad = to_tensor(self._torch, g, self.dtype, self.device)
        self._clip()
        self._step_fn()
        if self.scheduler is not None:
            self.scheduler.step()

    def steps(self, rows: Sequence[Sequence[GradEntry]]) -> list[np.ndarray]:
        """Many steps (the contract's ``steps``): each as ``step``, the parameters after it copied on the
        device and read back once at the end (one transfer instead of one per step)."""
        torch = self._torch
        return device_steps(rows, step=self.step, snapshot=lambda: [p.detach().clone() for p in self._params],
                            read=lambda copies: to_numpy(torch.stack(copies)))

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p) for p in self._params]

    # -- optional capabilities ----------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """step, m (exp_avg), v (exp_avg_sq), vmax (max_exp_avg_sq, the raw v's maximum)."""
        amsgrad = bool(self.recipe.hyper.get("amsgrad", False))
        steps, m, v, vmax = [], [], [], []
        for p in self._params:
            st = self.optimizer.state.get(p, {})
            if not st:  # before the first step torch has no state yet
                zeros = to_numpy(self._torch.zeros_like(p))
                steps.append(0)
                m.append(zeros)
                v.append(zeros.copy())
                vmax.append(zeros.copy())
                continue
            step = st["step"]
            steps.append(int(step.item()) if hasattr(step, "item") else int(step))
            m.append(to_numpy(st["exp_avg"]))
            v.append(to_numpy(st["exp_avg_sq"]))
            if amsgrad:
                vmax.append(to_numpy(st["max_exp_avg_sq"]))
        if len(set(steps)) > 1:
            raise RuntimeError(f"torch's per-parameter step counters disagree: {steps}")
        return {"step": steps[0] if steps else 0, "m": m, "v": v, "vmax": vmax if amsgrad else None}

    def save(self) -> bytes:
        """Parameters and ``state_dict()``s, written by ``torch.save`` (plain tensors and numbers)."""
        blob = {
            "format": CHECKPOINT_FORMAT,
            "dtype": self.dtype,
            "params": [p.detach().to("cpu").clone() for p in self._params],
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
        }
        buf = io.BytesIO()
        self._torch.save(blob, buf)
        return buf.getvalue()

    def config(self) -> str:
        return config_json(self.recipe, self.optimizer)

    # -- internals -------------------------------------------------------------------------
    def _amp_step(self, grads: Sequence[GradEntry]) -> None:
        """One iteration of torch's documented GradScaler loop (the module docstring)."""
        torch, scaler = self._torch, self._scaler
        if any(isinstance(g, SparseGrad) for g in grads):
            raise Unsupported("the GradScaler adapters take dense gradients only")
        for p in self._params:
            p.grad = None
        loss = sum((p * to_tensor(torch, g, self.dtype, self.device)).sum() for p, g in zip(self._params, grads))
        scaler.scale(loss).backward()
        scaler.unscale_(self.optimizer)
        self._clip()
        scaler.step(self.optimizer)
        scaler.update()

    def _clip(self) -> None:
        clip, utils = self.recipe.clip, self._torch.nn.utils
        if clip.get("clipvalue") is not None:
            utils.clip_grad_value_(self._params, clip["clipvalue"])
        if clip.get("clipnorm") is not None:
            for p in self._params:
                utils.clip_grad_norm_(p, clip["clipnorm"])
        if clip.get("global_clipnorm") is not None:
            utils.clip_grad_norm_(self._params, clip["global_clipnorm"])


def load_checkpoint(torch: Any, blob: bytes, *, dtype: str, device: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of ``TorchRun.save()``'s bytes, checked."""
    saved = torch.load(io.BytesIO(blob), weights_only=True, map_location=device)
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        got = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise ValueError(f"not a torch adapter checkpoint: format {got!r}, expected {CHECKPOINT_FORMAT!r}")
    if saved["dtype"] != dtype:
        raise ValueError(f"the checkpoint holds {saved['dtype']} tensors, restore was asked for {dtype}; "
                         f"restore with dtype={saved['dtype']!r}")
    want = torch_dtype(torch, dtype)
    for k, t in enumerate(saved["params"]):
        if t.dtype != want:
            raise ValueError(f"checkpoint parameter {k} has dtype {t.dtype}, expected {want}")
    return saved


def _compiled_step(torch: Any, optimizer: Any):
    """``optimizer.step`` under ``torch.compile`` (inductor), as torch's tutorial
    "Compiling the optimizer with torch.compile" does it.

    Dynamo caches compiled frames per code object, and torch's own frames
    (``Optimizer.step``'s wrapper, ``Adam.step``) are shared by every optimizer:
    after 8 optimizers (``recompile_limit``) it silently runs the step *eagerly*
    (observed with torch 2.13: the 9th run matched eager Adam bitwise). So each
    run starts from a clean cache (``torch.compiler.reset()``; other runs then
    recompile on their next step) and every call forbids that silent fallback.
    """
    torch.compiler.reset()

    @torch.compile(fullgraph=False)
    def compiled_step() -> None:
        optimizer.step()

    def step() -> None:
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            compiled_step()

    return step
