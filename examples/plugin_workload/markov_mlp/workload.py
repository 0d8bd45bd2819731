"""The workload object lrsweep loads: card, build, batches, loss, eval (docs/workloads.md)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from markov_mlp.data import sample_sequences, transition_cdf
from markov_mlp.model import ContextMLP
from trials.plugin import EVAL_STREAM, Bounds, Param, WorkloadCard, step_rng


class MarkovMLP:
    """An MLP language model predicting each token from the two before it."""

    card = WorkloadCard(
        name="markov_mlp", summary="an MLP LM on a synthetic order-2 Markov chain",
        params=(
            Param(name="vocab", kind="int", default=16, bounds=Bounds(2, 1024), help="tokens"),
            Param(name="seq_len", kind="int", default=18, bounds=Bounds(3), help="tokens per sequence"),
            Param(name="concentration", kind="float", default=0.2, bounds=Bounds(0, low_open=True),
                  help="Dirichlet concentration of the chain's rows (smaller: more predictable)"),
            Param(name="eval_sequences", kind="int", default=128, bounds=Bounds(1), help="held-out sequences"),
        ),
        size_params=(
            Param(name="embed", kind="int", default=8, bounds=Bounds(1), help="embedding width"),
            Param(name="hidden", kind="int", default=32, bounds=Bounds(1), help="MLP width"),
        ),
        default_size="tiny",
        named_sizes={"tiny": {"embed": 8, "hidden": 32}, "small": {"embed": 16, "hidden": 64}},
    )

    def __init__(self, params: dict[str, Any], *, seed: int, batch_size: int, device: str = "cpu") -> None:
        self.vocab, self.seq_len = params["vocab"], params["seq_len"]
        self.seed, self.batch_size, self.device = seed, batch_size, torch.device(device)
        self.cdf = transition_cdf(self.vocab, params["concentration"])
        self.model = ContextMLP(self.vocab, params["embed"], params["hidden"]).to(self.device)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.tokens_per_step = batch_size * (self.seq_len - 2)  # predicted tokens per update
        self.flops_per_step = 6.0 * self.n_params * self.tokens_per_step
        held_out = sample_sequences(step_rng(0, 0, EVAL_STREAM), self.cdf, params["eval_sequences"], self.seq_len)
        self.held_out = torch.from_numpy(held_out).to(self.device)

    @staticmethod
    def activation_bytes(params: dict[str, Any], batch_size: int) -> int:
        """What autograd keeps for backward, per predicted position: the float32 context
        (``2 embed``) the hidden layer reads, the ReLU's output (``hidden``, read by the output
        layer too) and the log-softmax (``vocab``); plus the int64 tokens and targets."""
        positions = params["seq_len"] - 2
        floats = positions * (2 * params["embed"] + params["hidden"] + params["vocab"])
        return batch_size * (4 * floats + 8 * (params["seq_len"] + positions))

    def batch(self, step: int) -> torch.Tensor:
        tokens = sample_sequences(step_rng(self.seed, step), self.cdf, self.batch_size, self.seq_len)
        return torch.from_numpy(tokens).to(self.device)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.model(batch)  # (B, T - 2, vocab)
        return F.cross_entropy(logits.reshape(-1, self.vocab), batch[:, 2:].reshape(-1))

    def eval_loss(self) -> float:
        return float(self.loss(self.held_out))
