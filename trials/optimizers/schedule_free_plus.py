"""ScheduleFree+ (seed 002; Defazio 2026, arXiv 2605.19095): learning-rate-free Schedule-Free AdamC.

Reference: ``AdamCScheduleFreePlusPaper`` in facebookresearch/schedule_free at git HEAD
(``schedulefree/adamc_schedulefree_plus_paper.py``, not in the PyPI 1.4.1 wheel); same keyword
arguments and defaults. docs/equations.md §3.1. Per step k (0-indexed)::

    beta_k = 1 − exp((1 − π) ln(1 − sf_beta1) + π ln(1 − sf_beta1_max)),  π = min(k / T_a, 1)
             (beta_k = sf_beta1 when sf_beta1_anneal_steps T_a = 0)
    I      = beta_k Σ_params <g, z − x>                      (params with state only)
    e      = polyak_beta ê_{k−1} + (1 − polyak_beta) sqrt(pi/2) Σ_params ||g||_1
    ê_k    = e / (1 − polyak_beta^(k+1))
    alpha  = max(0, f(y) + I) / ê_k                          Polyak step, assumes f* = 0
    gamma  = max(lr · s_k, eps) · alpha       s_k = min(1, (k + 1)/W): ``warmup_steps``
    lr_max = max(lr_max, gamma);   c = 1 if k < c_warmup else w_k / Σ w,  w_k = (k+1)^r lr_max^p
    z ← z − gamma² lambda y                                  AdamC decay at y, scaled by gamma²
    m ← b1 m + (1 − b1) g;   v ← b2 v + (1 − b2) g²          Adam's moments ("inner momentum")
    z ← z − gamma (m / (1 − b1^(k+1))) ⊘ (sqrt(v / (1 − b2^(k+1))) + eps)
    x ← (1 − c) x + c z;     y ← beta_k x + (1 − beta_k) z

Two reference details are kept on purpose so that runs match it step for step:
``ê_{k−1}`` — the EMA's *bias-corrected* value is what the reference stores and feeds back into
the recursion (with ``polyak_beta > 0`` this damps the early steps beyond a textbook EMA); and
the global quantities (beta_k, ``polyak_beta``) come from param group 0.

Extensions (defaults keep the reference's behaviour): ``warmup_steps`` multiplies ``lr`` by
``s_k`` — exactly what the reference expects an external schedule on ``group['lr']`` to do;
``step(closure)`` evaluates the closure and calls :meth:`step_func` with its value; if every
gradient is zero (``ê_k = 0``) the step size is 0 instead of a ``ZeroDivisionError``.

Memory-efficient form: the state holds ``z``, ``exp_avg``, ``exp_avg_sq`` and the parameter holds
``y``; ``x = (y − (1 − beta) z) / beta`` with the beta that formed ``y``, kept in each group as
``sf_beta1_current`` (:meth:`interpolation`), so ``<g, z − x> = <g, z − y> / beta``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from trials.optimizers._arguments import check_int, check_number, is_real
from trials.optimizers._schedule_free import ScheduleFreeModes

__all__ = ["ScheduleFreePlus", "annealed_sf_beta1"]


def annealed_sf_beta1(k: int, sf_beta1: float, sf_beta1_max: float, anneal_steps: int) -> float:
    """beta_k: ``1 - beta`` interpolated in log space from ``sf_beta1`` to ``sf_beta1_max``."""
    if anneal_steps <= 0:
        return sf_beta1
    progress = min(k / anneal_steps, 1.0)
    return 1 - math.exp(
        math.log(1 - sf_beta1) * (1 - progress) + math.log(1 - sf_beta1_max) * progress
    )


class ScheduleFreePlus(ScheduleFreeModes):
    """ScheduleFree+; ``train()`` before stepping, ``step_func(loss)`` each step, ``eval()`` to
    evaluate. ``needs_loss = True`` tells the training loop to pass the loss.

    Args:
        params: parameters or param-group dicts.
        lr: multiplier of the Polyak step (default 1.0).
        betas: Adam's ``(beta1, beta2)`` inside the z-step (the "inner momentum").
        sf_beta1: the Schedule-Free interpolation ``y = beta x + (1 - beta) z``, in (0, 1).
        eps: Adam's eps, the floor of ``lr`` and the initial ``lr_max`` (> 0).
        weight_decay: AdamC decay of z at y, scaled by ``gamma²`` (values ~20–50, not 0.1).
        r: polynomial weighting ``(k + 1)^r`` of the average (try 2 for long runs).
        polyak_beta: EMA coefficient of the gradient L1 norm, in [0, 1).
        c_warmup: steps during which ``c = 1`` (x tracks z); 1–2x the LR warmup is advised.
        sf_beta1_anneal_steps: steps of the log-space anneal of beta (0: none).
        sf_beta1_max: where the anneal ends, in (0, 1).
        weight_lr_power: ``p`` of ``lr_max^p`` in the averaging weights.
        warmup_steps: linear warmup of ``lr`` (lrsweep extension; 0 = the reference).
    """

    needs_loss: ClassVar[bool] = True

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.95),
        sf_beta1: float = 0.9,
        eps: float = 1e-8,
        weight_decay: float = 0,
        r: float = 0,
        polyak_beta: float = 0,
        c_warmup: int = 0,
        sf_beta1_anneal_steps: int = 0,
        sf_beta1_max: float = 0.965,
        weight_lr_power: float = 2,
        *,
        warmup_steps: int = 0,
    ) -> None:
        check_number("learning rate", lr, 0)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"Invalid betas: {betas!r} (must be a pair (beta1, beta2))")
        check_number("beta1", betas[0], 0, 1, high_open=True)
        check_number("beta2", betas[1], 0, 1, high_open=True)
        check_number("sf_beta1", sf_beta1, 0, 1, low_open=True, high_open=True)
        check_number("epsilon value", eps, 0, low_open=True)
        check_number("weight_decay value", weight_decay, 0)
        check_number("r", r, 0)
        check_number("polyak_beta", polyak_beta, 0, 1, high_open=True)
        check_int("c_warmup", c_warmup)
        check_int("sf_beta1_anneal_steps", sf_beta1_anneal_steps)
        check_number("sf_beta1_max", sf_beta1_max, 0, 1, low_open=True, high_open=True)
        check_number("weight_lr_power", weight_lr_power, 0)
        check_int("warmup_steps", warmup_steps)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            sf_beta1=sf_beta1,
            eps=eps,
            weight_decay=weight_decay,
            r=r,
            polyak_beta=polyak_beta,
            c_warmup=c_warmup,
            sf_beta1_anneal_steps=sf_beta1_anneal_steps,
            sf_beta1_max=sf_beta1_max,
            weight_lr_power=weight_lr_power,
            warmup_steps=warmup_steps,
            # mutable scalars, in the group so state_dict() round-trips them
            k=0,
            train_mode=False,
            weight_sum=0.0,
            lr_max=eps,
            scheduled_lr=0.0,
            grad_l1_ema=0.0,
            ip_term=0.0,
            function_value_ema=0.0,
            sf_beta1_current=sf_beta1,
        )
        super().__init__(params, defaults)

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["sf_beta1_current"]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate ``closure`` (forward + backward at y) and step with its loss."""
        if closure is None:
            raise RuntimeError(
                "ScheduleFreePlus.step() needs the loss at y for its Polyak step: call "
                "step(closure) or step_func(loss)"
            )
        with torch.enable_grad():
            loss = closure()
        self.step_func(loss)
        return loss

    @torch.no_grad()
    def step_func(self, function_value: Any) -> Any:
        """One step given ``function_value``, the loss at the current parameters ``y``."""
        self._require_train_mode()
        try:
            f = float(function_value)
        except (TypeError, ValueError):
            f = None
        if f is None or not is_real(f):
            raise ValueError(
                f"ScheduleFreePlus.step_func needs the loss at y as a finite number, "
                f"got {function_value!r}"
            )
        first = self.param_groups[0]
        k = first["k"]
        beta = annealed_sf_beta1(
            k, first["sf_beta1"], first["sf_beta1_max"], first["sf_beta1_anneal_steps"]
        )
        l1_terms, ip_terms = [], []
        for group in self.param_groups:
            beta_y = group["sf_beta1_current"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                # ||g||_1
                l1_terms.append(torch.linalg.vector_norm(p.grad, ord=1))
                z = self.state[p].get("z")
                if z is not None:
                    # beta_k <g, z − x> = beta_k <g, z − y> / beta_y
                    ip_terms.append(beta * (p.grad * (z - p).div_(beta_y)).sum())
        grad_l1 = torch.stack(l1_terms).sum().item() if l1_terms else 0.0
        ip_term = torch.stack(ip_terms).sum().item() if ip_terms else 0.0
        polyak_beta = first["polyak_beta"]
        # e = polyak_beta ê_{k−1} + (1 − polyak_beta) sqrt(pi/2) ||g||_1   (reference recursion)
        ema = polyak_beta * first["grad_l1_ema"] + (1 - polyak_beta) * grad_l1 * math.sqrt(
            math.pi / 2
        )
        # ê_k = e / (1 − polyak_beta^(k+1))
        ema_corrected = ema / (1 - polyak_beta ** (k + 1))
        # alpha = max(0, f + I) / ê_k
        alpha = max(0.0, f + ip_term) / ema_corrected if ema_corrected > 0 else 0.0
        for group in self.param_groups:
            self._update_group(group, alpha, beta)
            group["grad_l1_ema"] = ema_corrected
            group["ip_term"] = ip_term
            group["function_value_ema"] = f + ip_term
        return function_value

    def _update_group(self, group: dict[str, Any], alpha: float, beta: float) -> None:
        k, warmup, eps = group["k"], group["warmup_steps"], group["eps"]
        beta1, beta2 = group["betas"]
        # gamma = max(lr s_k, eps) alpha
        lr = max(group["lr"] * ((k + 1) / warmup if k < warmup else 1.0), eps)
        gamma = group["scheduled_lr"] = lr * alpha
        lr_max = group["lr_max"] = max(gamma, group["lr_max"])
        if k < group["c_warmup"]:
            c = 1.0  # x tracks z; the weights do not accumulate yet
        else:
            # w_k = (k+1)^r lr_max^p;  c = w_k / Σ w
            weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
            group["weight_sum"] = group["weight_sum"] + weight
            c = weight / group["weight_sum"]
        beta_y = group["sf_beta1_current"]
        decay = group["weight_decay"]
        for y in group["params"]:
            if y.grad is None:
                continue
            g, state = y.grad, self.state[y]
            if "z" not in state:
                state["z"] = torch.clone(y, memory_format=torch.preserve_format).detach()
                state["exp_avg"] = torch.zeros_like(y, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(y, memory_format=torch.preserve_format)
            z, m, v = state["z"], state["exp_avg"], state["exp_avg_sq"]
            # m ← b1 m + (1 − b1) g;   m̂ = m / (1 − b1^(k+1))
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            # v ← b2 v + (1 − b2) g²;  d = sqrt(v / (1 − b2^(k+1))) + eps
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = v.div(1 - beta2 ** (k + 1)).sqrt_().add_(eps)
            # u = m̂ ⊘ d + gamma lambda y:  the z-step gamma u is the Adam step plus the AdamC decay
            u = m.div(1 - beta1 ** (k + 1)).div_(denom)
            if decay != 0:
                u.add_(y, alpha=gamma * decay)
            if beta == beta_y:
                # y ← (1 − c) y + c z;  y ← y + gamma (beta (1 − c) − 1) u   (_schedule_free doc)
                y.lerp_(z, c)
                y.add_(u, alpha=gamma * (beta * (1 - c) - 1))
                # z ← z − gamma u
                z.sub_(u, alpha=gamma)
            else:  # beta changed (anneal): go through x explicitly
                # x = lerp(y, z, 1 − 1/beta_y)
                y.lerp_(z, 1 - 1 / beta_y)
                # z ← z − gamma u
                z.sub_(u, alpha=gamma)
                # x ← (1 − c) x + c z;  y = lerp(x, z, 1 − beta)
                y.lerp_(z, c).lerp_(z, 1 - beta)
        group["sf_beta1_current"] = beta
        group["k"] = k + 1
