"""The ``llama`` model against Hugging Face's ``LlamaForCausalLM`` on the same weights.

``transformers`` is a test extra only (``pyproject.toml``); without it these tests skip. Weights
map by name (``docs/llama.md``): ``tok_emb`` -> ``model.embed_tokens``, ``blocks.i.attn.{q,k,v,o}``
-> ``model.layers.i.self_attn.{q,k,v,o}_proj``, ``blocks.i.mlp.{gate,up,down}`` ->
``model.layers.i.mlp.{gate,up,down}_proj``, ``blocks.i.attn_norm`` / ``mlp_norm`` ->
``input_layernorm`` / ``post_attention_layernorm``, ``norm`` -> ``model.norm``, ``lm_head``.
Two plausible bugs (RoPE interleaved instead of half-split, RMSNorm's eps outside the root) are
shown to fall outside the tolerance, so the tolerance can tell.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from trials.workloads import llama_model
from trials.workloads.llama_model import Llama, LlamaShape

transformers = pytest.importorskip("transformers")

ATOL = 2e-5  # float32: both sides run the same arithmetic up to summation order


def hf_name(name: str) -> str:
    """Our parameter name -> the Hugging Face ``LlamaForCausalLM`` one."""
    if name == "lm_head.weight":
        return name
    for ours, theirs in ((r"^tok_emb\.", "model.embed_tokens."), (r"^norm\.", "model.norm."),
                         (r"^blocks\.(\d+)\.attn\.([qkvo])\.", r"model.layers.\1.self_attn.\2_proj."),
                         (r"^blocks\.(\d+)\.mlp\.(gate|up|down)\.", r"model.layers.\1.mlp.\2_proj."),
                         (r"^blocks\.(\d+)\.attn_norm\.", r"model.layers.\1.input_layernorm."),
                         (r"^blocks\.(\d+)\.mlp_norm\.", r"model.layers.\1.post_attention_layernorm.")):
        new, n = re.subn(ours, theirs, name)
        if n:
            return new
    raise KeyError(name)


def pair(shape: LlamaShape, seed: int = 0) -> tuple[Llama, torch.nn.Module]:
    torch.manual_seed(seed)
    ours = Llama(shape)
    with torch.no_grad():  # non-trivial norm gains, so a misplaced gain would show
        for m in ours.modules():
            if isinstance(m, torch.nn.RMSNorm):
                m.weight.uniform_(0.5, 1.5)
    cfg = transformers.LlamaConfig(
        vocab_size=shape.vocab_size, hidden_size=shape.d_model, intermediate_size=shape.ffn_hidden,
        num_hidden_layers=shape.n_layers, num_attention_heads=shape.n_heads, num_key_value_heads=shape.n_kv_heads,
        max_position_embeddings=shape.context, rms_norm_eps=shape.norm_eps, rope_theta=shape.rope_theta,
        tie_word_embeddings=shape.tie_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        attention_dropout=0.0)
    cfg._attn_implementation = "eager"  # the reference's own softmax(QK^T)V, not SDPA
    theirs = transformers.LlamaForCausalLM(cfg).eval()
    state = {hf_name(k): v for k, v in ours.state_dict().items()}
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected
    assert set(missing) <= {"lm_head.weight"} and (not missing or shape.tie_embeddings)
    return ours.eval(), theirs


@torch.no_grad()
def compare(ours: Llama, theirs: torch.nn.Module, vocab: int, T: int) -> tuple[float, float]:
    """Largest logit difference and loss difference on random tokens (3 sequences of ``T``)."""
    idx = torch.randint(0, vocab, (3, T), generator=torch.Generator().manual_seed(1))
    logits, loss = ours(idx[:, :-1], idx[:, 1:])
    out = theirs(input_ids=idx[:, :-1])
    hf_loss = theirs(input_ids=idx, labels=idx).loss  # HF shifts the labels itself
    assert float(hf_loss) == pytest.approx(float(F.cross_entropy(out.logits.reshape(-1, vocab),
                                                                  idx[:, 1:].reshape(-1))), abs=ATOL)
    return float((logits - out.logits).abs().max()), abs(float(loss) - float(hf_loss))


SHAPES = [
    LlamaShape(vocab_size=97, d_model=64, n_layers=2, n_heads=4, n_kv_heads=4, ffn_hidden=160, context=32),
    LlamaShape(vocab_size=97, d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, ffn_hidden=96, context=32,
               tie_embeddings=True, rope_theta=500.0, norm_eps=1e-3),
]


@pytest.mark.parametrize("shape", SHAPES, ids=["mha-untied", "gqa-tied"])
def test_logits_and_loss_equal_transformers(shape: LlamaShape) -> None:
    ours, theirs = pair(shape)
    dlogits, dloss = compare(ours, theirs, shape.vocab_size, shape.context)
    assert dlogits < ATOL and dloss < ATOL


def test_plausible_bugs_fall_outside_the_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = SHAPES[0]
    ours, theirs = pair(shape)

    def interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[..., 0::2], x[..., 1::2]  # pairs (2i, 2i+1): the GPT-J / Meta layout, not HF's
        rot = torch.stack((-x2, x1), dim=-1).flatten(-2)
        return x * cos + rot * sin

    monkeypatch.setattr(llama_model, "apply_rope", interleaved)
    dlogits, _ = compare(ours, theirs, shape.vocab_size, shape.context)
    assert dlogits > 100 * ATOL
    monkeypatch.undo()

    class EpsOutside(torch.nn.Module):  # w * x / (sqrt(mean x^2) + eps)
        def __init__(self, norm: torch.nn.RMSNorm) -> None:
            super().__init__()
            self.weight, self.eps = norm.weight, norm.eps

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.weight * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + self.eps)

    shape2 = LlamaShape(**{**SHAPES[0].__dict__, "norm_eps": 1e-2})
    ours, theirs = pair(shape2)
    dlogits, _ = compare(ours, theirs, shape2.vocab_size, shape2.context)
    assert dlogits < ATOL
    for block in ours.blocks:
        block.attn_norm = EpsOutside(block.attn_norm)
    dlogits, _ = compare(ours, theirs, shape2.vocab_size, shape2.context)
    assert dlogits > 100 * ATOL
