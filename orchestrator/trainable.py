"""What runs inside one Ray Tune trial: one lineage's missing work, its rows to the store.

Kept free of driver state so it pickles to any worker. The trial re-reads what the store holds
of its lineage (:func:`orchestrator.stored.stored_lineages`), so a retried trial continues
from what its previous attempt wrote and checkpointed; :func:`trials.lineage.run_lineage`
does the rest. Curves go to the Parquet store in keyed segments (never into Tune's logs), a
``runs`` row per branch as soon as the branch finishes; Tune only sees a small progress dict.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any

__all__ = ["StoreSink", "failed_rows", "read_events", "run_lineage_to_store", "run_row", "tune_trainable"]

PROGRESS_EVERY_S = 2.0  # how often a running trial tells the driver its step, tokens and loss


def run_row(spec: Any, result: dict[str, Any], *, model_size: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``runs`` row of one finished branch (or the trunk) of ``spec``; ``result`` also
    carries the workload's ``n_params``, ``tokens_per_step`` and ``flops_per_step``.

    ``previous``: the stored row this one replaces (an extended trunk): wall time and replays add up.
    """
    branch = result["branch"]
    n_params, tokens_per_step = result["n_params"], result["tokens_per_step"]
    flops_per_step = result["flops_per_step"]
    replayed_steps = result.get("replayed_steps", 0) if branch == "trunk" else 0
    b = None if branch == "trunk" else spec.branch(branch)
    steps = int(result["steps_trained"])
    return {
        "lineage_id": spec.lineage_id, "branch": branch, "parent": result.get("parent"),
        "fork_step": result.get("fork_step") if b is not None else None,
        "rule": spec.rule, "rule_params": json.dumps(spec.rule_params, sort_keys=True),
        "cooldown_shape": b.shape if b is not None else None,
        "final_fraction": float(b.final_fraction) if b is not None else None,
        "workload": spec.workload, "model_size": model_size, "n_params": int(n_params),
        "optimizer": spec.optimizer, "optimizer_params": json.dumps(spec.optimizer_params, sort_keys=True),
        "peak_lr": float(spec.peak_lr), "warmup": int(spec.warmup), "batch_size": int(spec.batch_size),
        "seed": int(spec.seed), "tokens_per_step": int(tokens_per_step), "max_step": int(result["max_step"]),
        "status": result["status"], "error": result.get("error"),
        "wall_time_s": float(result["wall_time_s"]) + float((previous or {}).get("wall_time_s") or 0.0),
        "steps_trained": steps, "tokens_trained": steps * int(tokens_per_step),
        "flops_trained": float(steps * flops_per_step),
        "replayed_steps": int(replayed_steps) + int((previous or {}).get("replayed_steps") or 0),
        "finished_at": datetime.now(timezone.utc),
        **throughput_columns(result, previous),
    }


def throughput_columns(result: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``runs`` throughput columns of a finished branch (``trials/throughput.py``): over the
    updates this run timed plus, for an extended trunk, those its ``previous`` row had timed."""
    from trials.throughput import mfu, peak_flops

    timed, seconds = int(result.get("timed_steps") or 0), float(result.get("train_time_s") or 0.0)
    prev = previous or {}
    if prev.get("train_time_s") and prev.get("step_time_s"):
        timed += round(float(prev["train_time_s"]) / float(prev["step_time_s"]))
        seconds += float(prev["train_time_s"])
    device, workers, precision = result.get("device"), result.get("workers"), result.get("precision")
    if not timed or seconds <= 0:
        return {"train_time_s": seconds if timed else None, "step_time_s": None, "tokens_per_s": None, "mfu": None,
                "device": device, "workers": workers, "precision": precision}
    step_time = seconds / timed
    peak = peak_flops(str(device), str(precision)) if device and precision else None
    return {"train_time_s": seconds, "step_time_s": step_time,
            "tokens_per_s": float(result["tokens_per_step"]) / step_time,
            "mfu": mfu(float(result["flops_per_step"]), step_time, peak, int(workers or 1)),
            "device": device, "workers": workers, "precision": precision}


class StoreSink:
    """A :class:`trials.sinks.Sink` writing one lineage's rows to the results store."""

    def __init__(self, store: Any, sweep_id: str, spec: Any, *, model_size: str) -> None:
        self.store, self.sweep_id, self.spec = store, sweep_id, spec
        self.model_size = model_size

    def segment(self, branch: str, key: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.store.write_curves(self.sweep_id, self.spec.lineage_id, branch, key, rows)

    def truncate(self, branch: str, from_step: int) -> None:
        self.store.truncate_curve(self.sweep_id, self.spec.lineage_id, branch, from_step)

    def _previous(self, branch: str) -> dict[str, Any] | None:
        import pyarrow.dataset as ds

        if not self.store.check_version():
            return None
        flt = ds.field("branch") == branch
        rows = self.store.read_table("runs", self.sweep_id, filter=flt, lineage_id=self.spec.lineage_id).to_pylist()
        return rows[0] if rows else None

    def finished(self, result: dict[str, Any]) -> None:
        branch = result["branch"]
        previous = self._previous(branch) if branch == "trunk" else None
        row = run_row(self.spec, result, model_size=self.model_size, previous=previous)
        self.store.write_runs(self.sweep_id, [row])

    def stored_train_losses(self, branch: str, start: int, end: int) -> dict[int, float] | None:
        import pyarrow.dataset as ds

        flt = ((ds.field("branch") == branch) & (ds.field("split") == "train")
               & (ds.field("step") >= start) & (ds.field("step") < end))
        table = self.store.read_table("curves", self.sweep_id, columns=["step", "loss"], filter=flt,
                                      lineage_id=self.spec.lineage_id)
        return dict(zip(table.column("step").to_pylist(), table.column("loss").to_pylist(), strict=True))


def failed_rows(spec: Any, error: str, stored: Any, *, model_size: str, n_params: int,
                tokens_per_step: int) -> list[dict[str, Any]]:
    """``runs`` rows for a lineage whose trial failed every retry: the trunk (keeping the
    frontier it had) and every unfinished branch, ``failed`` with the error."""
    rows = []
    numbers = {"n_params": n_params, "tokens_per_step": tokens_per_step, "flops_per_step": 6.0 * n_params * tokens_per_step}
    finished = {b for b, s in stored.branch_status.items() if s in ("completed", "diverged")}
    if stored.trunk_status not in ("completed", "diverged") or stored.frontier < spec.trunk_end:
        rows.append(run_row(spec, {"branch": "trunk", "parent": None, "max_step": stored.rows_frontier,
                                   "status": "failed", "error": error[-2000:], "wall_time_s": 0.0,
                                   "steps_trained": stored.rows_frontier, **numbers}, model_size=model_size))
    for b in spec.branches:
        if b.name not in finished:
            rows.append(run_row(spec, {"branch": b.name, "parent": "trunk", "fork_step": b.fork_step,
                                       "max_step": b.fork_step, "status": "failed", "error": error[-2000:],
                                       "wall_time_s": 0.0, "steps_trained": 0, **numbers}, model_size=model_size))
    return rows


def run_lineage_to_store(
    spec_dict: dict[str, Any], *, store_root: str, sweep_id: str, model_size: str,
    threads: int = 1, on_progress: Any = None, reopen: bool = False, store: Any = None,
) -> dict[str, Any]:
    """Do what the store still lacks of one lineage (resuming from its checkpoints).

    Every store read is of this lineage alone (its fragment folder, the merged parts, its
    checkpoint folder), so start-up does not grow with the sweep. ``store``: an open
    ``ResultsStore`` to use instead of opening ``store_root`` (tests pass one on a recording
    filesystem).

    ``reopen``: a search needs this lineage further than where it (for another trial) stopped
    it: rows marked ``stopped`` count as unfinished, so the trunk continues and the branches run.
    """
    import torch

    from orchestrator.store import ResultsStore
    from orchestrator.stored import checkpoints_of, stored_lineages
    from trials.lineage import run_lineage
    from trials.lineage_spec import LineageSpec

    torch.set_num_threads(max(1, threads))
    spec = LineageSpec.from_dict(spec_dict)
    store = store if store is not None else ResultsStore(store_root)
    _check_reachable(store, sweep_id)
    stored = stored_lineages(store, sweep_id, [spec.lineage_id])[spec.lineage_id]
    if reopen:
        stored = _reopened(stored)
    checkpoints = checkpoints_of(store, sweep_id, spec.lineage_id)
    began = time.perf_counter()
    done, last = [0, 0], [time.monotonic()]  # updates so far, at the last report; its time
    peak = _peak(spec) if on_progress is not None else None

    def progress(branch: str, step: int, end: int, loss: float) -> None:
        done[0] += 1
        now = time.monotonic()
        if on_progress is not None and now - last[0] >= PROGRESS_EVERY_S:  # a Tune report costs ~3.5 ms
            rate = (done[0] - done[1]) / (now - last[0])  # updates/s since the last report, evals included
            last[0], done[1] = now, done[0]
            on_progress({"steps_done": done[0], "branch": branch, "step": step, "end": end, "loss": loss,
                         "steps_per_s": rate, "peak_flops": peak})

    sink = StoreSink(store, sweep_id, spec, model_size=model_size)
    result = run_lineage(spec, sink=sink, checkpoints=checkpoints, stored=stored, progress=progress)
    if result.resumed_from is not None:  # an operator's trail (and the tests' evidence) of resumes
        _log_event(store, sweep_id, {"event": "resumed", "lineage_id": spec.lineage_id, "step": result.resumed_from,
                                     "pid": os.getpid(), "host": socket.gethostname(), "node_id": _ray_node_id()})
    return {"status": result.status, "steps_trained": result.run_steps, "replay_steps": result.replay_steps,
            "tokens_trained": result.run_steps * result.tokens_per_step,
            "train_time_s": time.perf_counter() - began, "resumed_from": result.resumed_from,
            "pid": os.getpid()}


def _peak(spec: Any) -> float | None:
    """Peak FLOP/s of all the lineage's devices at its precision (None on CPU / unknown GPUs)."""
    from trials.throughput import device_name, peak_flops

    peak = peak_flops(device_name(spec.device), spec.precision)
    return None if peak is None else peak * spec.workers


def _ray_node_id() -> str | None:
    """The Ray node this trial runs on (None outside Ray)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().get_node_id())


def _check_reachable(store: Any, sweep_id: str) -> None:
    """Rows go only to the sweep's own store: a worker that cannot see the store the driver
    created (a laptop path on a cluster node, an unshared disk) stops here with one line
    instead of writing results nobody will find."""
    from orchestrator.store import StoreError

    try:  # one marker read and one stat: a trial's start-up must not list the sweep
        reachable = store.check_version() and store.has_sweep(sweep_id)
    except OSError as exc:
        reachable, why = False, str(exc)
    else:
        why = "no sweep of that name there"
    if not reachable:
        raise StoreError(f"results store {store.root!r} is not reachable from node {socket.gethostname()} "
                         f"({why}); use a path shared by every node or an object store (s3://...)")


def _log_event(store: Any, sweep_id: str, event: dict[str, Any]) -> None:
    """One small JSON object per event under ``_checkpoints/<sweep>/_events`` (object stores
    cannot append)."""
    from orchestrator.stored import checkpoint_folder

    now = datetime.now(timezone.utc)
    folder = checkpoint_folder(store, sweep_id, "_events")
    store.fs.create_dir(folder, recursive=True)
    name = f"{now:%Y%m%dT%H%M%S%f}-{event.get('lineage_id', 'x')}-{os.getpid()}.json"
    with store.fs.open_output_stream(f"{folder}/{name}") as handle:
        handle.write(json.dumps({**event, "at": now.isoformat()}).encode())


def read_events(store: Any, sweep_id: str) -> list[dict[str, Any]]:
    """The events :func:`_log_event` wrote for a sweep, oldest first."""
    import pyarrow.fs as pafs

    from orchestrator.stored import checkpoint_folder

    infos = store.fs.get_file_info(pafs.FileSelector(checkpoint_folder(store, sweep_id, "_events"),
                                                     allow_not_found=True))
    out = []
    for info in sorted(infos, key=lambda i: i.base_name):
        if info.type == pafs.FileType.File and info.base_name.endswith(".json"):
            with store.fs.open_input_stream(info.path) as handle:
                out.append(json.loads(handle.read()))
    return out


def _reopened(stored: Any) -> Any:
    import dataclasses

    from trials.work import STOPPED

    return dataclasses.replace(
        stored, trunk_status=None if stored.trunk_status == STOPPED else stored.trunk_status,
        branch_status={b: s for b, s in stored.branch_status.items() if s != STOPPED})


def tune_trainable(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable: one bundle of lineages per trial (most often one;
    ``orchestrator/bundles.py``), run one after another.

    Each finished lineage is reported (``lineage_done``, its ``lineage_id`` and summary) as it
    ends, the last with Tune's ``done``. A lineage that raises does not stop the bundle: the
    others run, then the trial fails with the first error, so Tune retries it, and the retry
    skips the lineages the store already holds whole.
    """
    from ray import tune

    bundle = config.get("bundle") or [config["lineage"]]
    errors: list[tuple[str, BaseException]] = []
    for k, lineage in enumerate(bundle):
        lid = lineage["lineage_id"]

        def on_progress(progress: dict[str, Any], lid: str = lid) -> None:
            tune.report({"done": False, "lineage_id": lid, **progress})

        try:
            summary = run_lineage_to_store(
                lineage, store_root=config["store"], sweep_id=config["sweep_id"],
                model_size=config["model_size"][lid], threads=config.get("threads", 1), on_progress=on_progress,
            )
        except Exception as exc:
            if len(bundle) == 1:
                raise
            errors.append((lid, exc))
            continue
        last = k == len(bundle) - 1 and not errors
        tune.report({"done": last, "lineage_done": True, "lineage_id": lid, **summary})
    if errors:
        lid, exc = errors[0]
        raise RuntimeError(f"{len(errors)} of {len(bundle)} lineages of this bundle failed; "
                           f"first {lid}: {type(exc).__name__}: {exc}") from exc
