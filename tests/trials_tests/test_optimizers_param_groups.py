"""Param groups by module role, not by name: which tensors the Muon family gets.

Known answers on the char-GPT of :mod:`trials.workloads.gpt` and on models whose parameter names
would fool a substring rule (an embedding called ``lm_head``, hidden layers called ``emb_mixer``
and ``head_gate``, an output layer called ``w``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trials.errors import ConfigError
from trials.optimizers import build_optimizer, decay_param_groups, param_roles, split_muon_params
from trials.workloads.gpt import GPT, GPTConfig


def gpt() -> GPT:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=2, n_embd=8))


class ScaleNorm(nn.Module):  # a user-written norm: the role comes from the class, not the name
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(dim))


class OddNames(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lm_head = nn.Embedding(11, 8)  # an embedding named like a head
        self.emb_mixer = nn.Linear(8, 8)  # hidden, named like an embedding
        self.head_gate = nn.Linear(8, 16, bias=False)  # hidden, "head" in its name
        self.stack = nn.Sequential(nn.Linear(16, 8), ScaleNorm(8))
        self.conv = nn.Conv1d(8, 8, 3)  # a 3-D filter: not for Muon (2-D only)
        self.temperature = nn.Parameter(torch.ones(()))
        self.w = nn.Linear(8, 11)  # the output layer


def test_char_gpt_roles():
    roles = param_roles(gpt())
    assert roles == {
        "tok_emb.weight": "embedding",
        "pos_emb.weight": "embedding",
        "blocks.0.ln1.weight": "norm",
        "blocks.0.ln1.bias": "norm",
        "blocks.0.attn.qkv.weight": "hidden",
        "blocks.0.attn.qkv.bias": "bias",
        "blocks.0.attn.proj.weight": "hidden",
        "blocks.0.attn.proj.bias": "bias",
        "blocks.0.ln2.weight": "norm",
        "blocks.0.ln2.bias": "norm",
        "blocks.0.mlp.fc.weight": "hidden",
        "blocks.0.mlp.fc.bias": "bias",
        "blocks.0.mlp.proj.weight": "hidden",
        "blocks.0.mlp.proj.bias": "bias",
        "ln_f.weight": "norm",
        "ln_f.bias": "norm",
        "lm_head.weight": "output_head",
    }


def test_char_gpt_split_gives_muon_the_four_hidden_matrices_per_block():
    model = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=16))
    names = {id(p): n for n, p in model.named_parameters()}
    muon, adamw = split_muon_params(model)
    assert [names[id(p)] for p in muon] == [
        f"blocks.{i}.{m}.weight"
        for i in range(2)
        for m in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")
    ]
    assert len(muon) + len(adamw) == len(list(model.parameters()))
    assert {names[id(p)] for p in adamw} >= {"tok_emb.weight", "pos_emb.weight", "lm_head.weight"}


def test_names_do_not_decide():
    model = OddNames()
    assert param_roles(model) == {
        "lm_head.weight": "embedding",
        "emb_mixer.weight": "hidden",
        "emb_mixer.bias": "bias",
        "head_gate.weight": "hidden",
        "stack.0.weight": "hidden",
        "stack.0.bias": "bias",
        "stack.1.g": "norm",
        "conv.weight": "tensor",
        "conv.bias": "bias",
        "temperature": "vector",
        "w.weight": "output_head",
        "w.bias": "bias",
    }
    names = {id(p): n for n, p in model.named_parameters()}
    muon, _ = split_muon_params(model)
    assert [names[id(p)] for p in muon] == [
        "emb_mixer.weight",
        "head_gate.weight",
        "stack.0.weight",
    ]


def test_hugging_face_accessors_name_the_head_and_the_embeddings():
    """``get_output_embeddings()`` wins over "last matrix leaf"; ``get_input_embeddings()`` marks a
    Linear used as an input table."""

    class HF(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(11, 8, bias=False)  # a one-hot input table as a Linear
            self.decoder = nn.Linear(8, 11, bias=False)
            self.adapter = nn.Linear(8, 8)  # registered last, but hidden

        def get_input_embeddings(self) -> nn.Module:
            return self.inp

        def get_output_embeddings(self) -> nn.Module:
            return self.decoder

    roles = param_roles(HF())
    assert (roles["inp.weight"], roles["decoder.weight"], roles["adapter.weight"]) == (
        "embedding", "output_head", "hidden",
    )  # fmt: skip


def test_a_tied_head_is_the_embedding_and_frozen_tensors_are_left_out():
    model = gpt()
    model.lm_head.weight = model.tok_emb.weight  # weight tying
    model.blocks[0].attn.proj.weight.requires_grad_(False)
    roles = param_roles(model)
    assert "lm_head.weight" not in roles and roles["tok_emb.weight"] == "embedding"
    muon, adamw = split_muon_params(model)
    ids = {id(p) for p in muon + adamw}
    assert id(model.tok_emb.weight) in {id(p) for p in adamw}
    assert id(model.blocks[0].attn.proj.weight) not in ids
    assert len(muon) == 3


def test_named_parameters_need_roles():
    model = OddNames()
    named = list(model.named_parameters())
    with pytest.raises(TypeError, match=r"needs the model .* decided by module role, not by name"):
        split_muon_params(named)
    assert split_muon_params(named, param_roles(model)) == split_muon_params(model)


def test_decay_param_groups_decays_matrices_only():
    groups = decay_param_groups(gpt().named_parameters(), 0.1)
    assert [(g["weight_decay"], len(g["params"])) for g in groups] == [(0.1, 7), (0.0, 10)]
    assert all(p.ndim >= 2 for p in groups[0]["params"])
    assert all(p.ndim < 2 for p in groups[1]["params"])
    with pytest.raises(ValueError, match=r"Invalid weight_decay value: -0\.1"):
        decay_param_groups(gpt().named_parameters(), -0.1)


@pytest.mark.parametrize("name", ["muon", "normuon", "sf_normuon"])
def test_build_spectral_groups_and_learning_rates(name):
    model = gpt()
    opt = build_optimizer(
        name,
        model,
        lr=0.02,
        weight_decay=0.01,
        adamw_lr=1e-3,
        adamw_weight_decay=0.1,
        ns_dtype="bfloat16",
    )
    summary = [
        (g["use_muon"], g["base_lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups
    ]
    # muon: 4 hidden matrices; AdamW: embeddings + head (decayed), norms + biases (not)
    assert summary == [(True, 0.02, 0.01, 4), (False, 1e-3, 0.1, 3), (False, 1e-3, 0.0, 10)]
    assert opt.param_groups[0]["ns_dtype"] is torch.bfloat16
    assert set(opt.param_groups[0]["params"]) == set(split_muon_params(model)[0])
    if name == "sf_normuon":  # the fallback is SF-AdamW sharing beta1
        assert [g["betas"] for g in opt.param_groups] == [(0.9, 0.95), (0.9, 0.999), (0.9, 0.999)]
    else:
        assert opt.param_groups[1]["betas"] == (0.9, 0.95) and opt.param_groups[1]["eps"] == 1e-10
    with pytest.raises(ConfigError, match=r"Invalid adamw_weight_decay: -1"):
        build_optimizer(name, model, lr=0.02, adamw_weight_decay=-1)
