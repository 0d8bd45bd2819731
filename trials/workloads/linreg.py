"""Over-parameterised linear regression with a power-law spectrum: the theory testbed.

docs/equations.md §10 (Meterez et al. 2026, arXiv 2602.03702). Features ``x ~ N(0, H)``,
``H = diag(i^-a)``; target ``y = <w*, x> + sigma xi`` with ``lambda_i (w*_i)^2 = i^-b``; the
model is one weight vector ``w`` started at 0. The eval loss is the *exact* excess population
risk ``R(w) = 1/2 (w - w*)^T H (w - w*)`` (no sampling), so curves are noise-free and can be
checked against :func:`~trials.workloads.linreg_recursion.expected_risk_recursion`.

Defaults ``a = 2, b = 4`` put the problem in the ``b = 2a`` regime where the best horizon-free
decay is ``1/sqrt(t)`` (kappa* = 1 - a/b = 1/2). ``noise = 0.5`` is this project's choice
(signal variance ``sum_i i^-b`` is 1.08 at b = 4, so the noise floor ``sigma^2/2 = 0.125`` is
well below the initial excess risk 0.54 and the variance term matters at long horizons).
Stable constant LRs satisfy ``eta <~ 1/Tr(H)`` (``trace_h``; 1.64 at the defaults).

Accounting: ``n_params = dim``, ``tokens_per_step = batch_size`` (one sample = one "token"),
``flops_per_step = 6 * dim * batch_size`` (the ``6 N D`` convention: 2 for the forward dot
product, 4 for the backward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from trials.workloads._base import TRAIN_STREAM, Workload, step_rng
from trials.workloads._validation import check_float, check_int
from trials.workloads.linreg_recursion import power_law_problem

__all__ = ["LinReg", "LinRegConfig", "LinearPredictor"]


@dataclass(frozen=True, kw_only=True)
class LinRegConfig:
    """Parameters of :class:`LinReg` (``workload.<name>`` in a sweep file).

    Attributes:
        dim: number of features d (the model has d parameters).
        capacity: spectrum exponent a > 1, ``lambda_i = i^-a``.
        source: target exponent b > 0, ``lambda_i (w*_i)^2 = i^-b``.
        noise: label-noise standard deviation sigma >= 0.
    """

    dim: int = 1000
    capacity: float = 2.0
    source: float = 4.0
    noise: float = 0.5

    def __post_init__(self) -> None:
        check_int("workload.dim", self.dim, low=1)
        check_float("workload.capacity", self.capacity, low=1.0, low_open=True)
        check_float("workload.source", self.source, low=0.0, low_open=True)
        check_float("workload.noise", self.noise, low=0.0)


class LinearPredictor(torch.nn.Module):
    """``f(x) = <w, x>`` with a single 1-D parameter ``w`` initialised to zero."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w  # (B, d) @ (d,) -> (B,)


class LinReg(Workload):
    """Power-law linear regression (see the module docstring).

    Attributes:
        lam: the spectrum ``lambda_i`` (float64 numpy, length dim).
        w_star: the target ``w*`` (float64 numpy, all positive).
        trace_h: ``Tr H = sum_i lambda_i``; pick ``eta <~ 1 / trace_h``.
        noise_floor: ``sigma^2 / 2``, the irreducible part of the expected train loss.
    """

    name: ClassVar[str] = "linreg"
    config_class: ClassVar[type] = LinRegConfig
    data_parallel: ClassVar[bool] = True

    def __init__(self, config: LinRegConfig, *, seed: int, batch_size: int, device: str = "cpu") -> None:
        super().__init__(config, seed=seed, batch_size=batch_size, device=device)
        self.lam, self.w_star = power_law_problem(config.dim, config.capacity, config.source)
        self.trace_h = float(self.lam.sum())
        self.noise_floor = 0.5 * config.noise**2
        self._sqrt_lam = torch.as_tensor(np.sqrt(self.lam), dtype=torch.float32, device=self.device)
        self._w_star = torch.as_tensor(self.w_star, dtype=torch.float32, device=self.device)
        self._lam64 = torch.as_tensor(self.lam, dtype=torch.float64, device=self.device)
        self._w_star64 = torch.as_tensor(self.w_star, dtype=torch.float64, device=self.device)
        self.model = LinearPredictor(config.dim).to(self.device)  # w_0 = 0: nothing random
        self.n_params = config.dim
        self.tokens_per_step = batch_size
        self.flops_per_step = 6.0 * config.dim * batch_size

    def sample(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The minibatch ``(x, y)`` of update ``step``: ``x = sqrt(lam) * eps``, ``y = <w*, x> + sigma xi``."""
        rng = step_rng(self.seed, step, TRAIN_STREAM)
        eps = rng.standard_normal((self.batch_size, self.config.dim), dtype=np.float32)
        xi = rng.standard_normal(self.batch_size, dtype=np.float32)
        rows = self.shard_rows()  # this worker's rows of the global batch (all of them for one)
        x = torch.from_numpy(eps[rows]).to(self.device) * self._sqrt_lam  # (B, d)
        y = x @ self._w_star + self.config.noise * torch.from_numpy(xi[rows]).to(self.device)  # (B,)
        return x, y

    def train_loss(self, step: int) -> torch.Tensor:
        self.model.train()
        x, y = self.sample(step)
        return 0.5 * torch.mean((self.model(x) - y) ** 2)

    def excess_risk(self, w: torch.Tensor) -> float:
        """``1/2 (w - w*)^T H (w - w*)`` in float64, exactly."""
        diff = w.detach().to(device=self.device, dtype=torch.float64) - self._w_star64
        return float(0.5 * torch.sum(self._lam64 * diff * diff))

    @torch.no_grad()
    def eval_loss(self) -> float:
        """The exact excess population risk of the current ``w`` (no held-out sample needed)."""
        return self.excess_risk(self.model.w)
