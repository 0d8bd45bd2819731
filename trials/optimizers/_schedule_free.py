"""What every schedule-free optimizer shares: the averaging weights, the in-place y/z update,
and the ``train()``/``eval()`` mode switch (docs/equations.md §1.2–1.4).

Three sequences per parameter (Defazio et al. 2024, "The Road Less Scheduled", arXiv 2405.15682):
``z`` the base iterate, ``x`` the weighted average of the z's (the evaluation point), ``y`` the
interpolation where gradients are taken. Memory-efficient form: the state holds only ``z``
(plus the base method's buffers); the parameter holds ``y`` in train mode and ``x`` in eval mode;
``x`` is never stored. With ``y = (1 - beta) z + beta x`` and a base direction ``u`` the textbook
step ``z' = z - lr u``, ``x' = (1 - c) x + c z'``, ``y' = (1 - beta) z' + beta x'`` becomes
(docs/equations.md §1.3, derived there)::

    y' = lerp(y, z, c) + lr (beta (1 - c) - 1) u
    z' = z - lr u

Subclasses supply the interpolation ``beta`` of a group and the direction ``u`` (AdamW: the
bias-corrected normalised gradient; SGD: the gradient; both plus ``weight_decay * y``).

Mode discipline (docs/equations.md §1.4): the constructor leaves the optimizer in **eval** mode;
call ``train()`` before the first ``step()``. ``step()`` in eval mode raises. The mode flag is
stored in every param group, so ``state_dict()`` records it: a checkpoint is consistent when the
model weights were saved in the same mode as the optimizer (lrsweep's lineage loop saves in train
mode, weights = ``y``, because an ``eval()``/``train()`` round trip is not bit-exact; see
:mod:`trials.checkpoint`). ``p.grad`` is left untouched (the reference package overwrites it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from trials.optimizers._arguments import check_int, check_number, is_real

__all__ = ["ScheduleFreeModes", "ScheduleFreeOptimizer"]


class ScheduleFreeModes(torch.optim.Optimizer):
    """``train()``/``eval()`` for any optimizer whose parameters hold ``y = (1 - beta) z + beta x``
    in train mode and ``x`` in eval mode, with ``z`` in ``state[p]["z"]`` (not registered).

    Subclasses give the interpolation ``beta`` of a group (``_interpolation``); :mod:`trials.eval_point`
    and other readers of ``x`` should call the public :meth:`interpolation`.
    """

    schedule_free: ClassVar[bool] = True
    needs_loss: ClassVar[bool] = False  # True: the training loop passes the loss (step_func)

    def _interpolation(self, group: dict[str, Any]) -> float:
        """beta: y = (1 - beta) z + beta x."""
        raise NotImplementedError

    def interpolation(self, group: dict[str, Any]) -> float:
        """The ``beta`` that relates the parameters to ``x`` and ``z`` in ``group`` right now:
        ``x = (y - (1 - beta) z) / beta``."""
        return self._interpolation(group)

    def _require_train_mode(self) -> None:
        for i, group in enumerate(self.param_groups):
            if not group["train_mode"]:
                raise RuntimeError(
                    f"{type(self).__name__}.step() called in eval mode (param group {i}): the "
                    "parameters hold the evaluation point x, not the training point y. Call "
                    "optimizer.train() before training steps and optimizer.eval() before evaluating."
                )

    @torch.no_grad()
    def eval(self) -> None:
        """Put the evaluation point ``x`` into the parameters (no-op if already in eval mode)."""
        for group in self.param_groups:
            if not group["train_mode"]:
                continue
            beta = self._interpolation(group)
            for p in group["params"]:
                z = self.state[p].get("z")
                if z is not None:
                    # x = (y - (1 - beta) z) / beta = lerp(y, z, 1 - 1/beta)
                    p.lerp_(z.to(p.device), 1.0 - 1.0 / beta)
            group["train_mode"] = False

    @torch.no_grad()
    def train(self, mode: bool = True) -> None:
        """Put the gradient point ``y`` into the parameters (``train(False)`` is ``eval()``)."""
        if not mode:
            self.eval()
            return
        for group in self.param_groups:
            if group["train_mode"]:
                continue
            beta = self._interpolation(group)
            for p in group["params"]:
                z = self.state[p].get("z")
                if z is not None:
                    # y = (1 - beta) z + beta x = lerp(x, z, 1 - beta)
                    p.lerp_(z.to(p.device), 1.0 - beta)
            group["train_mode"] = True


class ScheduleFreeOptimizer(ScheduleFreeModes):
    """Base class; not registered. Subclasses implement ``_interpolation`` and the directions."""

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        check_number("learning rate", defaults["lr"], 0)
        check_number("weight_decay value", defaults["weight_decay"], 0)
        check_int("warmup_steps", defaults["warmup_steps"])
        check_number("r", defaults["r"], 0)
        check_number("weight_lr_power", defaults["weight_lr_power"], 0)
        # Mutable scalars live in the param group so state_dict() round-trips them
        # (docs/equations.md §1.2). lr_max starts below any valid lr (lr >= 0), so the first step
        # sets it.
        defaults.update(k=0, train_mode=False, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0)
        super().__init__(params, defaults)

    # ------------------------------------------------------------------ subclass hooks
    def _init_state(self, p: Tensor, state: dict[str, Any]) -> None:
        """Create the per-parameter state (``z`` at least) the first time ``p`` has a gradient."""
        # z_0 = x_0 = y_0: all three sequences start at the initial weights.
        state["z"] = torch.clone(p, memory_format=torch.preserve_format).detach()

    def _directions(
        self,
        group: dict[str, Any],
        ys: list[Tensor],
        grads: list[Tensor],
        states: list[dict],
        k: int,
    ) -> list[Tensor] | tuple[Tensor, ...]:
        """The base method's step direction ``u`` for each parameter (foreach path)."""
        raise NotImplementedError

    def _direction(
        self, group: dict[str, Any], y: Tensor, grad: Tensor, state: dict, k: int
    ) -> Tensor:
        """The base method's step direction ``u`` for one parameter (per-tensor path)."""
        raise NotImplementedError

    def _averaging_weight(self, group: dict[str, Any], k: int, lr_k: float) -> float:
        """c_{k+1}: the weight of z_{k+1} in x_{k+1}; advances ``lr_max`` and ``weight_sum``."""
        # lr_max = max(lr_max, lr_k): a decaying external schedule does not down-weight
        # (docs/equations.md §1.2)
        lr_max = group["lr_max"] = max(group["lr_max"], lr_k)
        # w_k = (k + 1)^r · lr_max^p
        weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
        # S_k = S_{k-1} + w_k
        weight_sum = group["weight_sum"] = group["weight_sum"] + weight
        # c = w_k / S_k  (0 while every weight so far is 0, e.g. lr = 0 with p > 0)
        return weight / weight_sum if weight_sum > 0 else 0.0

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter that has a gradient. Needs train mode (see module doc)."""
        self._require_train_mode()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            k = group["k"]
            warmup = group["warmup_steps"]
            # lr_k = lr · min(1, (k + 1)/W): linear warmup that never hits 0 (W = 0: none)
            lr_k = group["lr"] * ((k + 1) / warmup if k < warmup else 1.0)
            group["scheduled_lr"] = lr_k  # for logging
            c = self._averaging_weight(group, k, lr_k)
            beta = self._interpolation(group)

            ys = [p for p in group["params"] if p.grad is not None]
            for p in ys:
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                if "z" not in self.state[p]:
                    self._init_state(p, self.state[p])
            if ys:
                grads = [p.grad for p in ys]
                states = [self.state[p] for p in ys]
                zs = [s["z"] for s in states]
                if _use_foreach(group["foreach"], ys):
                    us = self._directions(group, ys, grads, states, k)
                    # y ← (1 - c) y + c z
                    torch._foreach_lerp_(ys, zs, c)
                    # y ← y + lr_k (beta (1 - c) - 1) u     (= y' of the textbook step, module doc)
                    torch._foreach_add_(ys, us, alpha=lr_k * (beta * (1.0 - c) - 1.0))
                    # z ← z - lr_k u
                    torch._foreach_sub_(zs, us, alpha=lr_k)
                else:
                    for y, g, state, z in zip(ys, grads, states, zs, strict=True):
                        u = self._direction(group, y, g, state, k)
                        # y ← (1 - c) y + c z
                        y.lerp_(z, c)
                        # y ← y + lr_k (beta (1 - c) - 1) u
                        y.add_(u, alpha=lr_k * (beta * (1.0 - c) - 1.0))
                        # z ← z - lr_k u
                        z.sub_(u, alpha=lr_k)
            group["k"] = k + 1
        return loss


def _use_foreach(foreach: bool | None, params: list[Tensor]) -> bool:
    """``foreach=None``: the foreach path on CUDA, the per-tensor loop elsewhere (torch's own
    default policy). On CPU the ``_foreach_*`` ops are loops that make one pass over all the
    tensors per op, and the per-tensor loop, which keeps each tensor in cache across its update,
    is faster: 1.6 ms vs 3.5 ms per step for 0.83M parameters on this machine's CPU."""
    if foreach is None:
        return all(p.is_cuda for p in params)
    return foreach


_is_real = is_real  # kept for importers of the old private name
