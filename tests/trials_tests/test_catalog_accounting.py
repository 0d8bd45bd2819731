"""The workload catalog's accounting against built models: the parameter count N of a size
(:func:`trials.catalog.gpt_param_count`) and the activation memory of a training step
(:func:`trials.catalog.gpt_activation_bytes`), and the documentation tables written from the catalogs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from trials.catalog import CHAR_VOCAB, GPT_SIZES, gpt_activation_bytes, gpt_param_count
from trials.catalog.tables import DOCUMENTS, TABLES
from trials.workloads import build_workload
from trials.workloads.gpt import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------- N
def _nanogpt(n_layer: int, n_embd: int, block_size: int, vocab: int) -> nn.ModuleDict:
    """An independent nanoGPT-like model: Linear/LayerNorm with bias, learned positions, untied head
    without bias (as nanoGPT and trials.workloads.gpt)."""

    def block() -> nn.Module:
        return nn.ModuleDict({
            "ln_1": nn.LayerNorm(n_embd), "c_attn": nn.Linear(n_embd, 3 * n_embd), "c_proj": nn.Linear(n_embd, n_embd),
            "ln_2": nn.LayerNorm(n_embd), "c_fc": nn.Linear(n_embd, 4 * n_embd), "mlp_proj": nn.Linear(4 * n_embd, n_embd),
        })

    return nn.ModuleDict({
        "wte": nn.Embedding(vocab, n_embd), "wpe": nn.Embedding(block_size, n_embd),
        "h": nn.ModuleList([block() for _ in range(n_layer)]), "ln_f": nn.LayerNorm(n_embd),
        "lm_head": nn.Linear(n_embd, vocab, bias=False),
    })


@pytest.mark.parametrize("shape", [(2, 64, 64, 84), (4, 128, 128, 84), (3, 96, 32, 65)])
def test_gpt_param_count_matches_a_built_model(shape: tuple[int, int, int, int]) -> None:
    n_layer, n_embd, block, vocab = shape
    model = _nanogpt(n_layer, n_embd, block, vocab)
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for k in ("wte", "wpe", "lm_head") for p in model[k].parameters())
    assert gpt_param_count(n_layer, n_embd, block, vocab, non_embedding=False) == total
    assert gpt_param_count(n_layer, n_embd, block, vocab) == total - embedding


def test_gpt_param_count_without_biases() -> None:
    model = _nanogpt(2, 32, 16, 10)
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.LayerNorm)):
            module.bias = None
    total = sum(p.numel() for p in model.parameters())
    assert gpt_param_count(2, 32, 16, 10, non_embedding=False, bias=False) == total


def test_gpt_param_count_nano_by_hand() -> None:
    # 2 blocks x (12 * 64^2 + 13 * 64) + final LayerNorm 2 * 64
    assert gpt_param_count(2, 64, 64) == 2 * (12 * 4096 + 13 * 64) + 128 == 100_096
    assert CHAR_VOCAB == 84


def test_gpt_param_count_matches_the_real_workload() -> None:
    w = build_workload("char_gpt", seed=0, batch_size=2, device="cpu", size="nano")
    shape = GPT_SIZES["nano"]
    total = sum(p.numel() for p in w.model.parameters())
    assert total == gpt_param_count(shape["n_layer"], shape["n_embd"], shape["block_size"], CHAR_VOCAB, non_embedding=False)
    assert w.n_params == gpt_param_count(shape["n_layer"], shape["n_embd"], shape["block_size"])
    assert w.tokens_per_step == 2 * shape["block_size"]


# ---------------------------------------------------------------------------------- activations
def _saved_bytes(n_layer: int, n_head: int, n_embd: int, block: int, vocab: int, batch: int, dropout: float) -> int:
    """Bytes of the tensors autograd saves for backward in one training forward (parameters and
    repeated views of one storage counted once)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head,
                              n_embd=n_embd, dropout=dropout))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.randint(0, vocab, (batch, block), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, x)
    return sum(n for ptr, n in saved.items() if ptr not in params)


SHAPES = [  # n_layer, n_head, n_embd, block_size, vocab, batch: wide, deep, long context, large vocab
    (2, 4, 64, 64, 84, 4), (6, 6, 96, 32, 84, 2), (1, 2, 32, 256, 84, 2), (2, 4, 64, 64, 2000, 2),
    (4, 8, 64, 32, 84, 1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_activation_estimate_is_within_8_percent_of_what_autograd_saves(shape: tuple[int, ...], dropout: float) -> None:
    n_layer, n_head, n_embd, block, vocab, batch = shape
    measured = _saved_bytes(*shape, dropout)
    estimate = gpt_activation_bytes(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block,
                                    vocab_size=vocab, batch_size=batch, dropout=dropout)
    assert abs(estimate / measured - 1) < 0.08, (estimate, measured)


def test_activation_estimate_by_hand() -> None:
    # nano, batch 16, 84 characters: 4 B x 16 x (2 (16·64·64 + 4·64) + 3·64·64 + 64·84)
    per_sequence = 2 * (16 * 64 * 64 + 4 * 64) + 3 * 64 * 64 + 64 * 84
    assert gpt_activation_bytes(n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=84,
                                batch_size=16) == 4 * 16 * per_sequence == 9_551_872


# ---------------------------------------------------------------------------------- README
@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("kind", sorted(TABLES))
def test_the_readme_tables_are_the_catalogs(kind: str, document: str) -> None:
    """examples/README.md and docs/sweep-file.md hold each table exactly as
    ``python -m trials.catalog`` prints it."""
    assert TABLES[kind]() in (ROOT / document).read_text(), "regenerate: python -m trials.catalog --update"
