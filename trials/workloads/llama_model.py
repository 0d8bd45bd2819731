"""A Llama-style decoder (Touvron et al. 2023), written anew: the model of the ``llama`` workload.

Pre-norm blocks with RMSNorm (no mean, no bias), rotary position embeddings on queries and
keys, grouped-query attention (``n_kv_heads`` key/value heads shared by ``n_heads`` query
heads), causal attention through ``F.scaled_dot_product_attention``, a SwiGLU MLP
``down(silu(gate(x)) * up(x))``, no bias anywhere, no learned positions, optionally the output
head tied to the token embedding.

It computes what Hugging Face's ``LlamaForCausalLM`` computes for the same configuration
(``tests/trials_tests/test_llama_hf.py`` checks logits and loss on the same weights):

- RoPE in the *half-split* layout: a head vector ``x = [x1, x2]`` (two halves) is rotated as
  ``x cos + [-x2, x1] sin``, with angle ``pos / theta^(2i / head_dim)`` shared by channel ``i``
  and ``i + head_dim/2``;
- RMSNorm ``w * x / sqrt(mean(x^2) + eps)``, ``eps`` inside the square root.

Module names (weights map one to one onto Hugging Face's, see ``docs/llama.md``)::

    tok_emb, blocks.{i}.attn_norm, blocks.{i}.attn.{q,k,v,o}, blocks.{i}.mlp_norm,
    blocks.{i}.mlp.{gate,up,down}, norm, lm_head

Initialisation: N(0, 0.02) for every matrix, N(0, 0.02 / sqrt(2 n_layers)) for the two residual
projections (``attn.o``, ``mlp.down``), norm gains 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Llama", "LlamaShape", "apply_rope", "rope_tables"]


@dataclass(frozen=True, kw_only=True)
class LlamaShape:
    """Resolved dimensions of a :class:`Llama` (validated by the workload that builds it)."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    context: int
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def rope_tables(context: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of shape ``(context, head_dim)``: angle ``t / theta^(2i/head_dim)``
    in channels ``i`` and ``i + head_dim/2`` (float32)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)
    angles = torch.outer(torch.arange(context, dtype=torch.float32), inv_freq)  # (T, hd/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, hd)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``(B, heads, T, hd)`` by position: ``x cos + [-x2, x1] sin``."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.hd = s.n_heads, s.n_kv_heads, s.head_dim
        self.q = nn.Linear(s.d_model, s.n_heads * self.hd, bias=False)
        self.k = nn.Linear(s.d_model, s.n_kv_heads * self.hd, bias=False)
        self.v = nn.Linear(s.d_model, s.n_kv_heads * self.hd, bias=False)
        self.o = nn.Linear(s.n_heads * self.hd, s.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.n_heads, self.hd).transpose(1, 2)  # (B, H, T, hd)
        k = self.k(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)  # (B, Hkv, T, hd)
        v = self.v(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv != self.n_heads)
        return self.o(y.transpose(1, 2).reshape(B, T, self.n_heads * self.hd))


class SwiGLU(nn.Module):
    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.gate = nn.Linear(s.d_model, s.ffn_hidden, bias=False)
        self.up = nn.Linear(s.d_model, s.ffn_hidden, bias=False)
        self.down = nn.Linear(s.ffn_hidden, s.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(s.d_model, eps=s.norm_eps)
        self.attn = Attention(s)
        self.mlp_norm = nn.RMSNorm(s.d_model, eps=s.norm_eps)
        self.mlp = SwiGLU(s)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    """Decoder-only Llama; ``forward(idx, targets)`` returns ``(logits, loss)``."""

    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.shape = shape
        self.tok_emb = nn.Embedding(shape.vocab_size, shape.d_model)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layers))
        self.norm = nn.RMSNorm(shape.d_model, eps=shape.norm_eps)
        self.lm_head = nn.Linear(shape.d_model, shape.vocab_size, bias=False)
        if shape.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        cos, sin = rope_tables(shape.context, shape.head_dim, shape.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def get_input_embeddings(self) -> nn.Module:  # the param-group policy's hooks (Hugging Face names)
        return self.tok_emb

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draws from the global torch RNG (the workload seeds it inside ``fork_rng``)."""
        resid_std = 0.02 / math.sqrt(2 * self.shape.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and not (self.shape.tie_embeddings and module is self.lm_head):
                nn.init.normal_(module.weight, std=resid_std if name.endswith(("attn.o", "mlp.down")) else 0.02)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)

    def embedding_params(self) -> int:
        """The vocabulary tables: ``tok_emb`` and (untied) ``lm_head``."""
        return sum(p.numel() for p in {id(p): p for m in (self.tok_emb, self.lm_head) for p in m.parameters()}.values())

    def non_embedding_params(self) -> int:
        """Every parameter but the vocabulary tables (Kaplan et al. 2020's N)."""
        return sum(p.numel() for p in self.parameters()) - self.embedding_params()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        T = idx.shape[1]
        if T > self.shape.context:
            raise ValueError(f"sequence length {T} exceeds the context {self.shape.context}")
        cos, sin = self.rope_cos[:T].to(self.tok_emb.weight.dtype), self.rope_sin[:T].to(self.tok_emb.weight.dtype)
        x = self.tok_emb(idx)  # (B, T, d)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss
