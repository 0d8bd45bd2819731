"""Workload plugins that each break one part of the contract (docs/workloads.md), built on a
working one, for tests/orchestrator_tests/test_plugin_refusals.py. Imported as
``broken_plugins:<Name>`` with this folder on the Python path."""

from __future__ import annotations

import numpy as np
import torch

from trials.plugin import Bounds, Param, WorkloadCard, step_rng


class Good:
    """A linear next-token model on uniform random tokens: the baseline every case breaks."""

    card = WorkloadCard(
        name="good", summary="a working plugin",
        params=(Param(name="vocab", kind="int", default=8, bounds=Bounds(2)),),
        size_params=(Param(name="width", kind="int", default=4, bounds=Bounds(1)),),
        default_size={"width": 4},
    )

    def __init__(self, params, *, seed, batch_size, device="cpu"):
        self.vocab, self.seed, self.batch_size = params["vocab"], seed, batch_size
        self.model = torch.nn.Sequential(torch.nn.Embedding(self.vocab, params["width"]),
                                         torch.nn.Linear(params["width"], self.vocab))
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.tokens_per_step = batch_size * 4
        self.flops_per_step = 6.0 * self.n_params * self.tokens_per_step
        self.held_out = self._tokens(np.random.default_rng(99), 16)

    def _tokens(self, rng, n):
        return torch.from_numpy(rng.integers(self.vocab, size=(n, 5)))

    def batch(self, step):
        return self._tokens(step_rng(self.seed, step), self.batch_size)

    def loss(self, batch):
        logits = self.model(batch[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, self.vocab), batch[:, 1:].reshape(-1))

    def eval_loss(self):
        return float(self.loss(self.held_out))


class NoEval:
    """Missing method: no ``eval_loss``."""

    card = Good.card
    __init__ = Good.__init__
    _tokens, batch, loss = Good._tokens, Good.batch, Good.loss


class LossAsFloat(Good):
    """Wrong return type: the loss as a Python float (no graph)."""

    def loss(self, batch):
        return float(super().loss(batch))


class StreamingBatches(Good):
    """History-dependent data: the next item of one generator, whatever ``step`` says."""

    def __init__(self, params, **kw):
        super().__init__(params, **kw)
        self._rng = np.random.default_rng(self.seed)

    def batch(self, step):
        return self._tokens(self._rng, self.batch_size)


class CardTooWide(Good):
    """The card accepts every width >= 1; the model refuses odd widths."""

    def __init__(self, params, **kw):
        if params["width"] % 2:
            raise ValueError(f"width must be even, got {params['width']}")
        super().__init__(params, **kw)
