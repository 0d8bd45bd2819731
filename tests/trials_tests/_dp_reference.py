"""A standalone WSD run on N gloo workers, written straight from the loop's building blocks
(no trunk, no fork, no checkpoint): the reference a forked 2-worker cooldown must equal."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import tempfile

import torch


def _rank(rank: int, world: int, rendezvous: str, spec_dict: dict, horizon: int, cooldown: float, out: str) -> None:
    from trials._lineage_steps import _averagers, _build, _evaluate, _train_step, _update_averagers
    from trials.data_parallel import process_group
    from trials.lineage_spec import LineageSpec

    torch.set_num_threads(1)
    spec = LineageSpec.from_dict(spec_dict)
    with process_group(rank, world, rendezvous, "cpu") as dp:
        c = _build(spec, dp)
        averagers = _averagers(c, spec, [a.key for a in spec.averagers if a.eval_at is None])
        start = max(spec.warmup, horizon - round(cooldown * horizon))
        rows = {}
        for t in range(horizon):
            if t < spec.warmup:
                mult = (t + 1) / spec.warmup
            elif t < start:
                mult = 1.0
            else:
                mult = 1.0 - ((t - start) / (horizon - start)) ** 0.5  # 1-sqrt cooldown to 0
            rows[f"train:{t}"] = _train_step(c, t, mult)
            _update_averagers(c, averagers, t + 1)
            if t + 1 == horizon:
                labels = ["raw"] + [averagers.weights_label(k) for k in averagers.labels]
                for row in _evaluate(c, spec, averagers, "ref", t + 1, 0.0, labels):
                    rows[f"eval:{t + 1}:{row['weights']}"] = row["loss"]
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(rows, handle)


def standalone_wsd(spec_dict: dict, horizon: int, cooldown: float, world: int = 2) -> dict[str, float]:
    """Losses of the standalone run: ``train:<t>`` per update, ``eval:<T>:<weights>`` at ``T``."""
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "rows.json")
        procs = [ctx.Process(target=_rank, args=(r, world, os.path.join(folder, "rdv"), spec_dict, horizon, cooldown, out))
                 for r in range(world)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=300)
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        with open(out) as handle:
            return json.load(handle)
