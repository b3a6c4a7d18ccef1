"""What to build for a torch run: optimizer class, code path, hyperparameters, schedule, clipping.

A ``Recipe`` is made from an ``AdamConfig`` (``recipe_from_config``) or from the
JSON that ``config_json`` writes (``recipe_from_json``), and ``build`` turns it
into a ``torch.optim`` optimizer and, for a schedule, an LR scheduler.

Schedules (torch/optim/lr_scheduler.py): torch has no schedule inside the
optimizer; a scheduler rewrites ``param_group["lr"]`` after each
``optimizer.step()``. Its own classes compute the lr multiplicatively
(``ExponentialLR``: lr_k = lr_{k-1} * gamma, rounded at every step), which is not
the schedule adamconf defines. We use ``LambdaLR`` with a base lr of exactly 1.0
and ``lr_lambda(k) = schedule(k)``: LambdaLR sets ``lr = base_lr * lr_lambda(last_epoch)``
= 1.0 * schedule(k), which is exact, so step t sees the very double schedule(t - 1)
(LambdaLR's construction sets last_epoch 0; each ``scheduler.step()`` after
``optimizer.step()`` adds one): the ``schedule_step="t-1"`` convention, reached
through torch's own scheduler machinery rather than by writing the lr ourselves.
With ``torch.compile`` the lr is a float64 0-d tensor (torch's documented way to
change the lr without recompiling; float64 so that it is not rounded to float32).
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any

from adamconf.reference.config import AdamConfig, Schedule

from .contract import Unsupported

__all__ = ["CONFIG_FORMAT", "Recipe", "TorchPath", "build", "config_json", "recipe_from_config",
           "recipe_from_json"]

CONFIG_FORMAT = "adamconf.torch-optimizer-config/1"
_CLIP_KEYS = ("clipvalue", "clipnorm", "global_clipnorm")
_SCHEDULER = "torch.optim.lr_scheduler.LambdaLR"


@dataclass(frozen=True)
class TorchPath:
    """A ``torch.optim`` class and the code path selected by its constructor flags."""

    optimizer: str  # "Adam", "AdamW" or "SparseAdam"
    foreach: bool | None = None
    fused: bool | None = None
    capturable: bool = False
    compiled: bool = False  # the step runs under torch.compile (inductor)
    amp: bool = False  # stepped through torch.amp.GradScaler: a step with a non-finite gradient is skipped

    def flags(self) -> dict[str, Any]:
        """The constructor keywords that select the path (none for SparseAdam)."""
        if self.optimizer == "SparseAdam":
            return {}
        return {"foreach": self.foreach, "fused": self.fused, "capturable": self.capturable}

    @property
    def decoupled(self) -> bool:
        return self.optimizer == "AdamW"


@dataclass(frozen=True)
class Recipe:
    path: TorchPath
    hyper: dict[str, Any]  # constructor keywords except params and the path flags
    schedule: Schedule | None = None
    clip: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(_CLIP_KEYS))
    lr_as_tensor: bool = False


def recipe_from_config(path: TorchPath, config: AdamConfig) -> Recipe:
    """The recipe for ``config`` on ``path``; ``Unsupported`` for what the path cannot express."""
    name = f"torch.optim.{path.optimizer}"
    if config.eps_root:
        raise Unsupported(f"{name} has no eps_root (epsilon inside the square root, optax's); "
                          f"got eps_root={config.eps_root!r}")
    if config.decay:
        raise Unsupported(f"{name} has no legacy Keras inverse-time `decay` (got decay={config.decay!r}); "
                          "torch expresses lr decay with an LR scheduler")
    clip = {k: getattr(config, k) for k in _CLIP_KEYS}
    lr = 1.0 if config.schedule is not None else float(config.lr)
    hyper: dict[str, Any] = {"lr": lr, "betas": (float(config.beta1), float(config.beta2)), "eps": float(config.eps)}
    if path.optimizer == "SparseAdam":
        problems = []
        if config.amsgrad:
            problems.append("amsgrad")
        if config.weight_decay:
            problems.append(f"weight_decay={config.weight_decay!r}")
        if any(v is not None for v in clip.values()):
            problems.append("gradient clipping (torch.nn.utils.clip_grad_* cannot take sparse gradients: "
                            "aten::linalg_vector_norm has no SparseCPU kernel)")
        if not config.eps > 0:
            problems.append(f"eps={config.eps!r} (SparseAdam requires eps > 0)")
        if problems:
            raise Unsupported(f"{name} does not support " + ", ".join(problems))
    else:
        mode = "decoupled" if path.decoupled else "l2"
        if config.weight_decay and config.weight_decay_mode != mode:
            other = "torch.adamw" if mode == "l2" else "torch.adam"
            raise Unsupported(f"{name}(weight_decay=...) is {'decoupled' if path.decoupled else 'coupled L2'} "
                              f"weight decay, the config asks for weight_decay_mode="
                              f"{config.weight_decay_mode!r}; use the {other} adapters")
        hyper["weight_decay"] = float(config.weight_decay)
        hyper["amsgrad"] = bool(config.amsgrad)
    return Recipe(path, hyper, config.schedule, clip,
                  lr_as_tensor=path.compiled and config.schedule is not None)


def build(torch: Any, recipe: Recipe, params: list[Any]) -> tuple[Any, Any]:
    """A fresh optimizer over ``params`` and its LambdaLR scheduler (None without a schedule)."""
    cls = getattr(torch.optim, recipe.path.optimizer)
    kwargs = dict(recipe.hyper, **recipe.path.flags())
    if recipe.lr_as_tensor:
        kwargs["lr"] = torch.tensor(kwargs["lr"], dtype=torch.float64)
    optimizer = cls(params, **kwargs)
    scheduler = None
    if recipe.schedule is not None:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(recipe.schedule))
    return optimizer, scheduler


def _lr_lambda(schedule: Schedule):
    # A plain function, not the Schedule object: LambdaLR.state_dict() then stores
    # None for it instead of the object's __dict__ (which torch.load could not
    # restore into a frozen dataclass anyway).
    def lr_at(k: int) -> float:
        return schedule(k)

    return lr_at


# -- JSON round trip ----------------------------------------------------------------

def _encode(value: Any) -> Any:
    if hasattr(value, "dtype") and hasattr(value, "item"):  # a 0-d tensor hyperparameter
        return {"tensor": float(value.item()), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def config_json(recipe: Recipe, optimizer: Any) -> str:
    """The optimizer's own ``param_groups[0]`` (minus the tensors) with the schedule and clipping.

    torch has no ``get_config``; the param group is where torch keeps every
    hyperparameter (and LambdaLR adds ``initial_lr``, the base lr, there).
    """
    group = {k: _encode(v) for k, v in optimizer.param_groups[0].items() if k != "params"}
    scheduler = None
    if recipe.schedule is not None:
        scheduler = {"class": _SCHEDULER, "lr_lambda": AdamConfig(lr=recipe.schedule).to_dict()["lr"]}
    doc = {
        "format": CONFIG_FORMAT,
        "optimizer": f"torch.optim.{recipe.path.optimizer}",
        "param_group": group,
        "lr_scheduler": scheduler,
        "clip": dict(recipe.clip),
        "compiled": recipe.path.compiled,
    }
    return json.dumps(doc, sort_keys=True, allow_nan=False)


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"tensor", "dtype"}:
        return float(value["tensor"])
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def recipe_from_json(path: TorchPath, text: str) -> Recipe:
    """The recipe that ``config_json`` described; ``ValueError`` naming what does not fit ``path``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"torch optimizer config is not JSON ({exc}); pass the text of run.config()") from None
    if not isinstance(doc, dict) or doc.get("format") != CONFIG_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"torch optimizer config has format {got!r}, expected {CONFIG_FORMAT!r}")
    expected = f"torch.optim.{path.optimizer}"
    if doc.get("optimizer") != expected:
        raise ValueError(f"this config is for {doc.get('optimizer')!r}, this adapter builds {expected!r}")
    if bool(doc.get("compiled")) != path.compiled:
        raise ValueError(f"config compiled={doc.get('compiled')!r} but this adapter's path has "
                         f"compiled={path.compiled}; rebuild with the adapter that wrote it")
    raw = dict(doc["param_group"])
    scheduler = doc.get("lr_scheduler")
    lr_as_tensor = isinstance(raw.get("lr"), dict)
    if scheduler is not None:
        if scheduler.get("class") != _SCHEDULER:
            raise ValueError(f"unsupported lr_scheduler {scheduler.get('class')!r}; expected {_SCHEDULER!r}")
        raw["lr"] = raw.pop("initial_lr")  # LambdaLR's base lr; "lr" holds the current value
    raw.pop("initial_lr", None)
    group = {k: _decode(v) for k, v in raw.items()}
    if path.compiled:
        # Dynamo switches a CUDA group to capturable=True on the first compiled
        # step (torch/_dynamo/variables/optimizer.py, _set_capturable): not a choice.
        group.pop("capturable", None)
    for flag, want in path.flags().items():
        if flag not in group and path.compiled:
            continue
        if group.get(flag) != want:
            raise ValueError(f"config has {flag}={group.get(flag)!r} but this adapter's path has {flag}={want!r}; "
                             "rebuild with the adapter that wrote it")
        group.pop(flag, None)
    accepted = set(inspect.signature(_optimizer_init(path.optimizer)).parameters) - {"self", "params"}
    if path.optimizer == "AdamW" and group.pop("decoupled_weight_decay", True) is not True:
        raise ValueError("an AdamW config must have decoupled_weight_decay=True")
    unknown = sorted(set(group) - accepted)
    if unknown:
        raise ValueError(f"param_group keys {unknown} are not arguments of {expected}; accepted: {sorted(accepted)}")
    for k, v in group.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"param_group[{k!r}]={v!r} is not finite")
    schedule = None
    if scheduler is not None:
        schedule = AdamConfig.from_dict({"lr": scheduler["lr_lambda"]}).schedule
    clip = {k: doc.get("clip", {}).get(k) for k in _CLIP_KEYS}
    return Recipe(path, group, schedule, clip, lr_as_tensor=lr_as_tensor)


def _optimizer_init(name: str):
    import torch

    return getattr(torch.optim, name).__init__
