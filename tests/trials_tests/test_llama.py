"""The ``llama`` workload: counts against the built model, FLOPs against torch's counter, param
roles, batches addressed by (seed, step), the fixed held-out slice, and shards of every layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from trials import catalog
from trials.optimizers import build_optimizer, decay_param_groups, param_roles, split_muon_params
from trials.workloads import build_workload, read_shard, write_shard
from trials.workloads.llama_model import Llama, LlamaShape


def shape_of(size: str, vocab: int, tied: bool) -> LlamaShape:
    return LlamaShape(vocab_size=vocab, tie_embeddings=tied, **catalog.LLAMA_SIZES[size])


@pytest.mark.parametrize("size", list(catalog.LLAMA_SIZES))
@pytest.mark.parametrize("tied", [False, True])
def test_param_count_equals_the_built_model(size: str, tied: bool) -> None:
    vocab = 50304
    with torch.device("meta"):  # shapes only: 124m costs nothing
        model = Llama(shape_of(size, vocab, tied))
    total = sum(p.numel() for p in model.parameters())
    dims = catalog.LLAMA_SIZES[size]
    assert catalog.llama_param_count(**dims, vocab_size=vocab, tie_embeddings=tied, non_embedding=False) == total
    assert catalog.llama_param_count(**dims) == model.non_embedding_params()
    if size == "124m" and tied:
        assert total == 123_587_328  # GPT-2 small's 124M class
    if size == "micro":
        assert 0.8e6 < model.non_embedding_params() < 1e6


def test_gqa_param_count() -> None:
    dims = dict(d_model=64, n_layers=3, n_heads=8, n_kv_heads=2, ffn_hidden=96, context=16)
    model = Llama(LlamaShape(vocab_size=50, **dims))
    assert catalog.llama_param_count(**dims) == model.non_embedding_params()
    assert model.blocks[0].attn.k.weight.shape == (16, 64)  # 2 kv heads of 8


def test_flops_per_token_equal_torch_flop_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward + backward FLOPs torch counts on one batch, attention written as two matmuls
    (torch's counter does not see inside the fused CPU attention kernel)."""
    dims = dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=96, context=32)
    vocab, B, T = 101, 3, 32
    model = Llama(LlamaShape(vocab_size=vocab, **dims))
    idx = torch.randint(0, vocab, (B, T + 1))

    def counted_flops() -> float:
        model.zero_grad()
        with FlopCounterMode(display=False) as counter:
            _, loss = model(idx[:, :-1], idx[:, 1:])
            loss.backward()
        return counter.get_total_flops() / (B * T)

    fused = counted_flops()

    def math_attention(q, k, v, *, is_causal, enable_gqa=False):  # type: ignore[no-untyped-def]
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        scores = (q @ k.transpose(-2, -1)) / q.shape[-1] ** 0.5
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", math_attention)
    explicit = counted_flops()
    per_token = catalog.llama_flops_per_token(**dims, vocab_size=vocab)
    norm_gains = 6 * (2 * 64 * 2 + 64)  # inside N, but elementwise: not matmul FLOPs
    attention = 12 * 2 * T * 64
    assert explicit == per_token - norm_gains
    assert fused == explicit - attention


def test_param_roles_route_like_the_seed_papers() -> None:
    for tied in (False, True):
        model = Llama(LlamaShape(vocab_size=37, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, ffn_hidden=24,
                                 context=8, tie_embeddings=tied))
        roles = param_roles(model)
        expected = {"tok_emb.weight": "embedding", "blocks.0.attn_norm.weight": "norm",
                    "blocks.0.mlp_norm.weight": "norm", "norm.weight": "norm",
                    **{f"blocks.0.attn.{m}.weight": "hidden" for m in "qkvo"},
                    **{f"blocks.0.mlp.{m}.weight": "hidden" for m in ("gate", "up", "down")}}
        if not tied:
            expected["lm_head.weight"] = "output_head"
        assert roles == expected
        muon, adamw = split_muon_params(model)
        hidden = {id(p) for n, p in model.named_parameters() if roles[n] == "hidden"}
        assert {id(p) for p in muon} == hidden and len(muon) == 7
        assert {id(p) for p in adamw} == {id(p) for n, p in model.named_parameters() if roles[n] != "hidden"}
        groups = decay_param_groups(model.named_parameters(), 0.1)
        no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
        assert no_decay == {id(p) for n, p in model.named_parameters() if roles[n] == "norm"}
        opt = build_optimizer("muon", model, lr=0.02)  # the Muon family takes the model as is
        assert sum(len(g["params"]) for g in opt.param_groups) == len(roles)


def test_batch_is_a_function_of_seed_and_step() -> None:
    a = build_workload("llama", seed=3, batch_size=4, size="nano", eval_batches=2, eval_batch_size=4)
    a.train_loss(0).backward()  # training in between changes nothing about the data
    b = build_workload("llama", seed=3, batch_size=4, size="nano", eval_batches=2, eval_batch_size=4)
    for step in (0, 7, 12345):
        assert torch.equal(a.batch(step)[0], b.batch(step)[0])
    assert not torch.equal(a.batch(1)[0], a.batch(2)[0])
    c = build_workload("llama", seed=4, batch_size=4, size="nano", eval_batches=2, eval_batch_size=4)
    assert not torch.equal(a.batch(7)[0], c.batch(7)[0])
    assert torch.equal(a.eval_windows, c.eval_windows)  # the held-out set ignores the seed
    x, y = a.batch(5)
    assert torch.equal(x[:, 1:], y[:, :-1])
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):  # init from the seed alone
        if p.grad is None:
            assert torch.equal(p, q)


def _prepared_like(tmp_path, tokens: np.ndarray, *, header: bool) -> str:
    cut = int(len(tokens) * 0.8)
    write_shard(tmp_path / "train.bin", tokens[:cut], header=header)
    write_shard(tmp_path / "val.bin", tokens[cut:], header=header)
    return str(tmp_path)


@pytest.mark.parametrize("header", [True, False], ids=["modded-nanogpt", "nanogpt-raw"])
def test_shards_without_manifest_work_as_they_are(tmp_path, header: bool) -> None:
    tokens = np.random.default_rng(0).integers(0, 500, size=4000).astype(np.uint16)
    corpus = _prepared_like(tmp_path, tokens, header=header)
    w = build_workload("llama", seed=0, batch_size=2, size="nano", corpus=corpus, vocab_size=500,
                       eval_batches=2, eval_batch_size=3)
    assert w.corpus.vocab_size == 500 and w.corpus.train.n_tokens == 3200
    T = w.block_size
    # the held-out set is the val shard's first windows, k * context apart
    val = tokens[3200:]
    expected = np.stack([val[k * T: k * T + T + 1] for k in range(6)])
    assert np.array_equal(w.eval_windows.reshape(6, T + 1).numpy(), expected)
    x, _ = w.batch(3)
    starts = [int(np.flatnonzero((np.lib.stride_tricks.sliding_window_view(tokens[:3200], T) == row).all(1))[0])
              for row in x.numpy()]
    assert len(starts) == 2
    assert np.isfinite(w.eval_loss())


def test_uint32_shards_round_trip(tmp_path) -> None:
    tokens = np.array([0, 70000, 65536, 5, 2**32 - 1], dtype=np.int64)
    write_shard(tmp_path / "big.bin", tokens)
    header = np.fromfile(tmp_path / "big.bin", dtype="<i4", count=3)
    assert header.tolist() == [20240520, 2, 5]
    got = read_shard(tmp_path / "big.bin")
    assert got.dtype == np.dtype("<u4") and got.tolist() == tokens.tolist()
    write_shard(tmp_path / "small.bin", tokens[[0, 3]])
    assert np.fromfile(tmp_path / "small.bin", dtype="<i4", count=2).tolist() == [20240520, 1]
    assert (tmp_path / "small.bin").stat().st_size == 1024 + 2 * 2


def test_llama_wsd_fork_and_resume_equal_straight_runs(tmp_path) -> None:
    """The lineage machinery on llama: a WSD cooldown forked off the trunk equals an independent
    run to its horizon, and a run killed and resumed from its checkpoint equals one that was not."""
    from tests.trials_tests.test_lineage import (
        KillingSink,
        lineage,
        reference_wsd_run,
        rows_of,
        setting,
    )
    from trials.checkpoint import CheckpointStore
    from trials.lineage import run_lineage
    from trials.sinks import MemorySink

    params = {"size": "nano", "context": 16, "eval_batches": 1, "eval_batch_size": 4}
    wsd = {"cooldown_fraction": 0.25, "cooldown_shape": "1-sqrt", "final_fraction": 0.0}
    spec = lineage(setting("wsd", wsd, (20, 40), workload="llama", workload_params=params, batch_size=4),
                   averagers=(), checkpoint_every=10, checkpoint_grid=0)
    straight = MemorySink()
    run_lineage(spec, sink=straight)
    rows = {(r["branch"], r["step"], r["weights"]): r["loss"] for r in straight.rows() if r["split"] == "eval"}
    for h, start in ((20, 15), (40, 30)):
        assert rows[(f"h={h}/1-sqrt@{start}", h, "raw")] == reference_wsd_run(spec, h, 0.25)[(h, "raw")]
    ck = CheckpointStore(tmp_path / "ck", spec.lineage_id)
    sink = KillingSink(after=2)
    with pytest.raises(KeyboardInterrupt):
        run_lineage(spec, sink=sink, checkpoints=ck)
    sink.after = None
    result = run_lineage(spec, sink=sink, checkpoints=ck, stored=sink.stored(ck))
    assert result.resumed_from is not None
    assert rows_of(sink) == rows_of(straight)


@pytest.mark.parametrize(("dims", "vocab", "batch"), [
    (dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=4, ffn_hidden=192, context=64), 2048, 4),
    (dict(d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_hidden=384, context=128), 512, 2),
    (dict(d_model=64, n_layers=1, n_heads=2, n_kv_heads=2, ffn_hidden=96, context=256), 84, 2),
], ids=["large-vocab", "gqa-deep", "long-context"])
def test_activation_estimate_is_within_8_percent_of_what_autograd_saves(dims, vocab, batch) -> None:
    model = Llama(LlamaShape(vocab_size=vocab, **dims))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    x = torch.randint(0, vocab, (batch, dims["context"]), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, x)
    measured = sum(n for ptr, n in saved.items() if ptr not in params)
    estimate = catalog.llama_activation_bytes(**dims, vocab_size=vocab, batch_size=batch)
    assert abs(estimate / measured - 1) < 0.08, (estimate, measured)
