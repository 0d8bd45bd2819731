"""Refuse before running: what a sweep would need, checked against what a trial can have.

Everything a trial would reject, or could never finish, is refused when the spec loads — one
line naming the field, exit code 2 from the CLI, before Ray starts or the store is touched:

- **int64**: every horizon, in tokens, fits the store's int64 step and token columns; and no
  horizon is longer than 10^9 optimizer steps (a tiny model that fits int64 could still never
  finish: 2^62 steps of linreg at 10k steps/s take 15 million years).
- **Corpus** (``char_gpt``, ``llama``): every shard readable (header, size, a prepared
  directory's manifest: ``orchestrator/spec/corpus.py``) and non-empty; ``vocab_size`` (given, or
  the manifest's, or the default) covers the corpus's characters (or token ids); a
  context window fits both splits; no lineage passes over the training split more than
  ``resources.max_epochs`` times (default 1,000) — ``tokens of the longest horizon /
  training tokens``. ``dtype = "bfloat16"`` needs a GPU (``resources.gpu > 0``).
- **Memory**, per trial, in bytes (float32)::

      4 · P · (2 + s + a + x)  +  activations(size, batch)

  with ``P`` every parameter (embeddings included), ``2`` for weights and gradients, ``s`` the
  largest optimizer state per parameter in the sweep (:attr:`OptimizerCard.state_per_param`:
  AdamW 2, SGD 1, ...), ``a`` the weight copies the averagers keep (1 each, LAWA ``k``; a
  ``start_fraction`` SWA one per horizon), ``x`` 1 for a schedule-free optimizer's evaluation
  point, and the activations autograd keeps for one step
  (:func:`trials.catalog.gpt_activation_bytes`; linreg: the batch of features). It must not
  exceed ``resources.memory_gb`` (10^9 bytes), by default this machine's physical memory
  (a trial cannot have more than the machine it runs on; set it to the per-trial memory of a
  cluster node, or the GPU memory times the ``gpu`` fraction).
- **Compute**: at least ``6 · N · tokens`` for every trunk the grid needs (each distinct
  size, batch, warmup, optimizer setting, LR and seed trained once to its longest horizon — a
  lower bound of the plan's cost) must not exceed ``resources.max_flops`` (default 1e21).
- **Plan size**: at most 1,000,000 settings in the grid (checked before anything enumerates
  it), 10,000 averagers, 1,000,000 evaluations and 100,000 checkpoints per lineage.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from orchestrator.spec.errors import bad, said, short
from orchestrator.spec.params import grid
from orchestrator.spec.workload import CharGPTWorkload, LlamaWorkload
from trials import catalog

if TYPE_CHECKING:
    from orchestrator.spec.sweep import SweepSpec
    from orchestrator.spec.workload import ModelSize

__all__ = ["check_budget", "check_grid_size", "check_horizon_range", "machine_memory_bytes"]

INT64_MAX = 2**63 - 1
MAX_STEPS = 10**9
MAX_SETTINGS = 1_000_000
MAX_AVERAGERS = 10_000
MAX_EVAL_POINTS = 1_000_000
MAX_CHECKPOINTS = 100_000
GB = 1e9


def machine_memory_bytes() -> int | None:
    """Physical memory of this machine (``None`` where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _where(field: str, values: list[Any], j: int) -> str:
    return f"{field}[{j}]" if len(values) > 1 else field


def _points(axes: dict[str, list[Any]]) -> int:
    return math.prod(len(axis) for axis in axes.values())


def check_grid_size(spec: SweepSpec) -> None:
    """The grid's settings and averagers, counted without enumerating them."""
    schedules = {e.name: 0 for e in spec.schedules}
    for e in spec.schedules:
        schedules[e.name] += _points(e.param_axes())
    per_seed = 0
    for o in spec.optimizers:
        crossed = 1 if o.schedule_free else sum(n for name, n in schedules.items()
                                                if o.schedules is None or name in o.schedules)
        per_seed += len(o.lr) * _points(o.params.axes()) * crossed
    n = (len(spec.workload.model_sizes()) * len(spec.batch_size) * len(spec.warmup) * len(spec.seeds)
         * per_seed)
    if n > MAX_SETTINGS:
        raise said("", f"the grid has {n:,} settings (sizes × batch sizes × warmups × optimizer points × "
                       f"schedules × seeds), at most {MAX_SETTINGS:,}")
    averagers = sum(_points(e.param_axes()) for e in spec.averagers)
    if averagers > MAX_AVERAGERS:
        raise said("averagers", f"{averagers:,} averagers ride along every lineage, at most {MAX_AVERAGERS:,}")


def check_horizon_range(spec: SweepSpec) -> None:
    """Every horizon in int64 tokens and at most :data:`MAX_STEPS` steps, for every size and
    batch (run before anything else computes steps: 1e305 x Chinchilla is not even a finite
    float of tokens)."""
    unit, values = spec.horizons.unit, spec.horizons.values
    for size in spec.workload.model_sizes():
        for batch in spec.batch_size:
            tps = size.tokens_per_step(batch)
            for j, value in enumerate(values):
                tokens = {"steps": value * tps, "tokens": value}.get(
                    unit, value * catalog.CHINCHILLA_TOKENS_PER_PARAM * size.n_params)
                if not math.isfinite(tokens) or tokens > INT64_MAX:
                    raise said(_where(f"horizons.{unit}", values, j),
                               f"{short(value)} is {float(tokens):.3g} tokens for size {size.label} at batch "
                               f"{batch}; a horizon must stay within int64 (2^63 - 1 tokens)")
            for j, (value, steps) in enumerate(zip(values, spec.horizons.to_steps(size.n_params, tps), strict=True)):
                if steps > MAX_STEPS:
                    raise said(_where(f"horizons.{unit}", values, j),
                               f"{short(value)} is {steps:,} steps for size {size.label} at batch {batch}; "
                               f"a lineage takes at most {MAX_STEPS:,} steps")


def check_budget(spec: SweepSpec) -> None:
    """Every check of the module docstring (horizon range aside); raises a validation error."""
    longest = _longest_steps(spec)
    if isinstance(spec.workload, (CharGPTWorkload, LlamaWorkload)):
        _check_corpus(spec, spec.workload, longest)
    _check_plan_size(spec, max(longest.values()))
    _check_memory(spec)
    _check_compute(spec, longest)


def _longest_steps(spec: SweepSpec) -> dict[tuple[int, int], int]:
    """(size index, batch) -> the longest horizon in steps."""
    return {(i, batch): max(spec.horizons.to_steps(size.n_params, size.tokens_per_step(batch)))
            for i, size in enumerate(spec.workload.model_sizes()) for batch in spec.batch_size}


def _check_corpus(spec: SweepSpec, workload: CharGPTWorkload | LlamaWorkload,
                  longest: dict[tuple[int, int], int]) -> None:
    resources = spec.resources
    params = workload.params
    if params.dtype == "bfloat16" and resources.gpu == 0:
        raise bad("workload.params.dtype", "bfloat16", "'float32' when resources.gpu = 0 (bfloat16 autocast is CUDA-only)")
    facts = workload.corpus()
    if facts.problem is not None or facts.tokens == 0:
        raise bad("workload.params.corpus", params.corpus, facts.problem or "a corpus with tokens (not an empty file)")
    if params.vocab_size is not None and facts.min_vocab is not None and params.vocab_size < facts.min_vocab:
        what = "characters" if facts.kind == "text" else "token ids (largest id + 1)"
        raise bad("workload.params.vocab_size", params.vocab_size, f"at least the corpus's {facts.min_vocab} {what}")
    if params.vocab_size is None and facts.kind == "shards" and facts.min_vocab is not None \
            and facts.min_vocab > workload.vocab_size():
        source = "its manifest's" if facts.manifest_vocab is not None else "the default"
        raise bad("workload.params.corpus", params.corpus,
                  f"token ids below {source} vocab_size {workload.vocab_size()}; the largest is {facts.min_vocab - 1} "
                  f"(set workload.params.vocab_size)")
    vf = workload.val_fraction()
    train, val = facts.train_tokens(vf), facts.val_tokens(vf)
    sizes = workload.model_sizes()
    for i, size in enumerate(sizes):
        window = size.block_size + 1
        for split, n in (("training", train), ("held-out", val)):
            if n < window:
                raise said(_where("workload.sizes", sizes, i),
                           f"a context of {size.block_size} tokens needs {window}-token windows; the corpus's "
                           f"{split} split has {n:,} tokens (val_fraction {vf:g})")
    for (i, batch), steps in longest.items():
        epochs = steps * sizes[i].tokens_per_step(batch) / train
        if epochs > resources.max_epochs:
            unit, values = spec.horizons.unit, spec.horizons.values
            j = max(range(len(values)), key=lambda k: values[k])
            raise said(_where(f"horizons.{unit}", values, j),
                       f"{short(values[j])} is {epochs:,.0f} epochs of the corpus's {train:,} training tokens "
                       f"for size {sizes[i].label} at batch {batch}, more than resources.max_epochs = "
                       f"{resources.max_epochs:g}")


def _check_plan_size(spec: SweepSpec, steps: int) -> None:
    every, ckpt, ratio = spec.eval.every, spec.resources.checkpoint_every, spec.resources.checkpoint_grid
    if every and steps // every > MAX_EVAL_POINTS:
        raise bad("eval.every", every, f"at least {math.ceil(steps / MAX_EVAL_POINTS):,}: up to step {steps:,} it "
                                       f"gives {steps // every:,} evaluations per lineage (at most {MAX_EVAL_POINTS:,})")
    if ckpt and steps // ckpt > MAX_CHECKPOINTS:
        raise bad("resources.checkpoint_every", ckpt, f"at least {math.ceil(steps / MAX_CHECKPOINTS):,}: up to step "
                                                      f"{steps:,} it keeps {steps // ckpt:,} checkpoints (at most {MAX_CHECKPOINTS:,})")
    if ratio > 1 and math.log(max(steps, 2)) / math.log(ratio) > MAX_CHECKPOINTS:
        raise bad("resources.checkpoint_grid", ratio, f"a ratio giving at most {MAX_CHECKPOINTS:,} checkpoints up to step {steps:,}")


def _copies(spec: SweepSpec) -> int:
    """Weight copies the averagers of one lineage keep."""
    horizons = len(spec.horizons.values)
    return sum(catalog.AVERAGERS[p.kind].copies(p.params) * (horizons if p.start_fraction is not None else 1)
               for p in spec.averager_points())


def _check_memory(spec: SweepSpec) -> None:
    limit_gb = spec.resources.memory_gb
    limit = limit_gb * GB if limit_gb is not None else machine_memory_bytes()
    if limit is None:
        return
    note = "" if limit_gb is not None else " (default: this machine's memory)"
    cards = [catalog.OPTIMIZERS[o.name] for o in spec.optimizers]
    per_param = 2 + max(c.state_per_param for c in cards) + _copies(spec) + any(c.schedule_free for c in cards)
    sizes = spec.workload.model_sizes()
    for i, size in enumerate(sizes):
        static = 4 * spec.workload.total_params(size) * per_param
        if static > limit:
            raise said(_where("workload.sizes", sizes, i),
                       f"size {size.label} needs about {static / GB:,.1f} GB per trial for weights, gradients, "
                       f"optimizer state and averages, more than resources.memory_gb = {limit / GB:,.1f}{note}")
        for k, batch in enumerate(spec.batch_size):
            act = spec.workload.activation_bytes(size, batch)
            if static + act > limit:
                raise said(_where("batch_size", spec.batch_size, k),
                           f"batch {batch} with size {size.label} needs about {(static + act) / GB:,.1f} GB per trial "
                           f"({act / GB:,.1f} GB of activations), more than resources.memory_gb = {limit / GB:,.1f}{note}")


def _trunks_per_size_and_batch(spec: SweepSpec) -> int:
    """Distinct (warmup, optimizer setting, LR, seed) per size and batch: each is a trunk."""
    per_warmup = sum(len(o.lr) * len(grid(o.params.axes())) for o in spec.optimizers)
    return len(spec.warmup) * per_warmup * len(spec.seeds)


def _check_compute(spec: SweepSpec, longest: dict[tuple[int, int], int]) -> None:
    sizes: list[ModelSize] = spec.workload.model_sizes()
    trunks = _trunks_per_size_and_batch(spec)
    flops = sum(6.0 * sizes[i].n_params * sizes[i].tokens_per_step(batch) * steps * trunks
                for (i, batch), steps in longest.items())
    if flops > spec.resources.max_flops:
        raise said("resources.max_flops",
                   f"the sweep needs at least {flops:.3g} FLOPs (6·N·tokens, {trunks * len(longest):,} trunks each "
                   f"to its longest horizon), more than resources.max_flops = {spec.resources.max_flops:.3g}; "
                   f"raise it to run this sweep")
