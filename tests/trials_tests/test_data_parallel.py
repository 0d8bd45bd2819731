"""A lineage on 2 gloo workers (real processes, CPU): the same curve as one worker at the same
global batch, forks equal to a standalone 2-worker run, resume, loopback-only sockets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.trials_tests._dp_reference import standalone_wsd
from trials.checkpoint import CheckpointStore
from trials.errors import ConfigError
from trials.lineage import run_lineage
from trials.lineage_plan import AveragerPoint, PlanConfig, TrialSetting, plan_lineages
from trials.sinks import MemorySink
from trials.workloads import build_workload

EMA = (AveragerPoint(kind="ema", params={"half_life": 0.1}, label="ema@0.1"),)
WSD = {"cooldown_fraction": 0.25, "cooldown_shape": "1-sqrt", "final_fraction": 0.0}

# The 1-vs-2-worker tolerance on every train and eval loss (nats, losses ~3-4): float32 rounding
# of a sum taken in another order, grown over 30 momentum-SGD updates. Measured here 4.8e-7;
# the two plausible bugs below move the curve by >= 1e-2 within the same 30 steps.
TOLERANCE = 1e-4


def setting(schedule: str = "constant", schedule_params: dict | None = None, horizons=(30,), peak_lr: float = 0.2,
            batch_size: int = 8, workload: str = "char_gpt") -> TrialSetting:
    """Momentum SGD: unlike Adam, its updates scale with the gradient, so a wrongly scaled
    all-reduce shows in the curve."""
    params = {"size": "nano", "block_size": 32, "eval_batches": 1} if workload == "char_gpt" else {"dim": 40}
    return TrialSetting(
        workload=workload, workload_params=params, optimizer="sgd", optimizer_params={"momentum": 0.9},
        schedule_free=False, schedule=schedule, schedule_params=schedule_params or {}, peak_lr=peak_lr, warmup=5,
        batch_size=batch_size, seed=3, horizons=tuple(horizons))


def lineage(s: TrialSetting, workers: int = 1, averagers=(), **config):
    lineages, _ = plan_lineages([s], PlanConfig(averagers=averagers, workers=workers, **config))
    assert len(lineages) == 1
    return lineages[0]


def losses(sink: MemorySink) -> dict[tuple, float]:
    return {(r["branch"], r["split"], r["step"], r["weights"]): r["loss"] for r in sink.rows()}


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def _inet_sockets() -> dict[str, str]:
    """inode -> local address (hex, as /proc/net/tcp{,6} write it) of every TCP socket."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            out[fields[9]] = fields[1].split(":")[0]
    return out


LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def test_two_workers_equal_one_worker_at_the_same_global_batch_and_stay_on_loopback():
    one = MemorySink()
    run_lineage(lineage(setting()), sink=one)
    seen: dict[str, set[str]] = {}

    def progress(branch: str, step: int, end: int, loss: float) -> None:
        if step == 10:  # mid-run: every TCP socket of rank 0 and its child ranks
            from tests._procs import descendants, process_table

            pids = [os.getpid(), *descendants(os.getpid(), process_table())]
            inet = _inet_sockets()
            seen.update({f"{pid}:{i}": inet[i] for pid in pids for i in _socket_inodes(pid) if i in inet})

    two = MemorySink()
    spec2 = lineage(setting(), workers=2)
    result = run_lineage(spec2, sink=two, progress=progress)
    assert result.status == "completed" and spec2.workers == 2
    a, b = losses(one), losses(two)
    assert {k[1:] for k in a} == {k[1:] for k in b} and len(a) == 30 + len(spec2.eval_steps)
    gap = max(abs(a[k] - b[k]) for k in a)
    assert 0 < gap < TOLERANCE  # not the same bits (another summation order), the same curve
    # the two plausible bugs, each run as the 1-worker run it amounts to, fall far outside:
    same_shard = MemorySink()  # both ranks on rank 0's rows: the gradient of half the batch
    run_lineage(lineage(setting(batch_size=4)), sink=same_shard)
    summed = MemorySink()  # gradients summed over 2 ranks, not averaged: SGD at twice the LR
    run_lineage(lineage(setting(peak_lr=0.4)), sink=summed)
    for bug in (same_shard, summed):
        c = losses(bug)
        assert max(abs(a[k] - c[k]) if k in c else float("inf") for k in a if k[1] == "train") > 100 * TOLERANCE
    # gloo's sockets (and nothing else of the group) on 127.0.0.1 / ::1 only
    assert seen, "no TCP socket found: the workers did not talk over TCP?"
    assert set(seen.values()) <= LOOPBACK, seen


@pytest.fixture(scope="module")
def wsd_two_workers():
    """A linreg WSD lineage (two cooldowns, an EMA) on 2 workers, run straight through once."""
    spec = lineage(setting("wsd", WSD, horizons=(20, 40), peak_lr=0.05, workload="linreg"), workers=2,
                   averagers=EMA, checkpoint_every=10, checkpoint_grid=0)
    sink = MemorySink()
    result = run_lineage(spec, sink=sink)
    return spec, sink, result


def test_wsd_fork_of_a_two_worker_trunk_equals_a_standalone_two_worker_run(wsd_two_workers):
    spec, sink, result = wsd_two_workers
    assert {b.branch for b in result.branches} == {"trunk", "h=20/1-sqrt@15", "h=40/1-sqrt@30"}
    rows = losses(sink)
    ref = standalone_wsd(spec.to_dict(), 40, 0.25)
    for t in range(40):  # trunk updates before the fork, then the cooldown's: bit for bit
        branch = "trunk" if t < 30 else "h=40/1-sqrt@30"
        assert rows[(branch, "train", t, "raw")] == ref[f"train:{t}"], t
    for weights in ("raw", "ema@0.1"):
        assert rows[("h=40/1-sqrt@30", "eval", 40, weights)] == ref[f"eval:40:{weights}"]


class KillingSink(MemorySink):
    def __init__(self, after: int | None) -> None:
        super().__init__()
        self.after, self.calls = after, 0

    def segment(self, branch, key, rows):
        self.calls += 1
        if self.after is not None and self.calls > self.after:
            raise KeyboardInterrupt("simulated kill")
        super().segment(branch, key, rows)


def test_a_killed_two_worker_lineage_resumes_to_the_uninterrupted_bits(wsd_two_workers, tmp_path):
    spec, straight, _ = wsd_two_workers
    ck = CheckpointStore(tmp_path / "ck", spec.lineage_id)
    sink = KillingSink(after=1)
    with pytest.raises(KeyboardInterrupt):
        run_lineage(spec, sink=sink, checkpoints=ck)  # dies writing its second segment, at step 20
    assert max(ck.trunk_checkpoints()) == 10
    sink.after = None
    result = run_lineage(spec, sink=sink, checkpoints=ck, stored=sink.stored(ck))  # rank 0 broadcasts step 10
    assert result.resumed_from == 10
    assert losses(sink) == losses(straight)


def test_workers_need_a_splittable_batch_and_a_workload_that_splits():
    w = build_workload("char_gpt", seed=0, batch_size=6, size="nano", block_size=16, eval_batches=1)
    with pytest.raises(ConfigError, match=r"^batch_size must be a multiple of resources\.workers \(4\), got 6"):
        w.shard(0, 4)
    w.shard(1, 3)
    x, _ = w.batch(7)
    full = build_workload("char_gpt", seed=0, batch_size=6, size="nano", block_size=16, eval_batches=1)
    assert x.tolist() == full.batch(7)[0][2:4].tolist()  # rank 1 of 3: rows 2-3 of the global batch

    class Whole(type(w)):  # a workload that never opted in
        data_parallel = False

    whole = Whole(w.config, seed=0, batch_size=6)
    with pytest.raises(ConfigError, match=r"^resources\.workers must be 1: workload 'char_gpt' does not split"):
        whole.shard(0, 2)


def ranks(pids) -> list[int]:
    """The data-parallel ranks among ``pids`` (by their command line; other children are not ours)."""
    out = []
    for pid in pids:
        try:
            if b"_rank_entry" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


def test_a_rank_that_dies_makes_rank_0_fail_at_once_and_leaves_no_process():
    from tests._procs import descendants, process_table

    spec = lineage(setting(horizons=(5000,), peak_lr=0.05, workload="linreg"), workers=2)
    killed: dict[str, float] = {}

    def progress(branch: str, step: int, end: int, loss: float) -> None:
        if step == 5:
            import signal
            import time

            pids = ranks(descendants(os.getpid(), process_table()))
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed["at"], killed["n"] = time.monotonic(), len(pids)

    import time

    with pytest.raises(RuntimeError, match=r"Connection reset by peer|Connection closed by peer"):
        run_lineage(spec, sink=MemorySink(), progress=progress)
    assert killed["n"] == 1 and time.monotonic() - killed["at"] < 30  # not gloo's 30-minute timeout
    assert ranks(descendants(os.getpid(), process_table())) == []


def test_each_rank_gets_its_own_device_and_the_group_binds_the_loopback_interface():
    import socket

    from trials.data_parallel import loopback_interface, rank_device

    assert [rank_device("cpu", r) for r in range(3)] == ["cpu"] * 3
    assert [rank_device("cuda", r, 2) for r in range(3)] == ["cuda:0", "cuda:2", "cuda:4"]
    assert loopback_interface() in {name for _, name in socket.if_nameindex()}
    assert loopback_interface().startswith("lo")
