"""A small decoder-only transformer in the nanoGPT mould (Karpathy, ``model.py``), written anew.

Pre-LayerNorm blocks, causal self-attention through ``F.scaled_dot_product_attention``, a GELU
MLP of width 4d, learned positional embeddings, no weight tying, no dropout by default.

Module names are part of the interface: the optimizer's param-group policy routes 2-D
parameters whose name contains ``emb`` or ``head`` to AdamW and the other matrices to Muon::

    tok_emb, pos_emb, blocks.{i}.ln1, blocks.{i}.attn.qkv, blocks.{i}.attn.proj,
    blocks.{i}.ln2, blocks.{i}.mlp.fc, blocks.{i}.mlp.proj, ln_f, lm_head

Initialisation follows GPT-2/nanoGPT: N(0, 0.02) for linear and embedding weights, zero biases,
and N(0, 0.02/sqrt(2 n_layer)) for the two residual projections (``attn.proj``, ``mlp.proj``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GPT", "GPTConfig", "GPT_SIZES"]

# Named sizes. n_params = non-embedding count (see GPT.non_embedding_params), at these shapes:
GPT_SIZES: dict[str, dict[str, int]] = {
    "nano": dict(n_layer=2, n_head=4, n_embd=64, block_size=64),  # 0.100M
    "micro": dict(n_layer=4, n_head=4, n_embd=128, block_size=128),  # 0.793M
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256),  # 10.65M (nanoGPT shakespeare_char)
    "gpt2-small": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024),  # 85.05M (GPT-2 124M with tied 50257 vocab)
}


@dataclass(frozen=True, kw_only=True)
class GPTConfig:
    """Shape of a :class:`GPT` (validated by the workload that builds it)."""

    vocab_size: int
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    bias: bool = True
    dropout: float = 0.0


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Decoder-only transformer; ``forward(idx, targets)`` returns ``(logits, loss)``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2 init; draws from the global torch RNG (callers seed it inside ``fork_rng``)."""
        resid_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = resid_std if name.endswith(("attn.proj", "mlp.proj")) else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def embedding_params(self) -> int:
        """Parameters of the vocabulary and position tables: ``tok_emb``, ``pos_emb``, ``lm_head``."""
        return sum(p.numel() for m in (self.tok_emb, self.pos_emb, self.lm_head) for p in m.parameters())

    def non_embedding_params(self) -> int:
        """All parameters except ``tok_emb``, ``pos_emb`` and ``lm_head``: Kaplan et al. (2020)'s N.

        Kaplan count neither the token/position embeddings nor (tied) unembedding; with an untied
        head we exclude it too, so N is the blocks plus ``ln_f`` (≈ 12 n_layer n_embd^2).
        """
        return sum(p.numel() for p in self.parameters()) - self.embedding_params()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss
