"""The model: the two previous tokens' embeddings, concatenated, through an MLP to logits."""

from __future__ import annotations

import torch


class ContextMLP(torch.nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, embed)
        self.hidden = torch.nn.Linear(2 * embed, hidden)
        self.out = torch.nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits for positions 2.. of ``tokens`` (B, T): (B, T - 2, vocab)."""
        e = self.embed(tokens)  # (B, T, embed)
        context = torch.cat([e[:, :-2], e[:, 1:-1]], dim=-1)  # (B, T - 2, 2 embed)
        return self.out(torch.relu(self.hidden(context)))
