"""One lineage on N data-parallel workers, with ``torch.distributed`` only (no Ray here).

The process that calls :func:`trials.lineage.run_lineage` for a spec with ``workers = N > 1``
becomes rank 0; it starts ranks 1..N-1 as fresh interpreters, and all N run the
*same* lineage loop on identical weights:

- **data**: every rank draws the global batch of update ``t`` from ``(seed, t)`` and keeps
  its contiguous ``batch_size / N`` rows (:meth:`trials.workloads.Workload.shard`), so the N
  shards together are exactly the one-worker batch (global batch unchanged);
- **gradients**: after ``backward`` the gradients and the loss are averaged over ranks in one
  all-reduce (:meth:`DataParallel.average_`). Each rank's loss is a mean over an equal share
  of the batch, so the average is the one-worker loss and gradient up to float rounding;
  clipping and the optimizer step then run on identical tensors on every rank;
- **rank 0 only** writes rows, checkpoints and progress and evaluates; the other ranks get a
  sink that drops everything and never touch storage: a checkpoint rank 0 loads is broadcast
  to them (:class:`_RankCheckpoints`). Every decision (divergence, replay) follows from the
  averaged loss, so all ranks take the same path through the loop.

The process group is rendezvoused through a file (``FileStore``, no listening rendezvous
socket), and gloo/NCCL are pinned to the loopback interface (``GLOO_SOCKET_IFNAME`` /
``NCCL_SOCKET_IFNAME``): all workers run on the trial's own node and nothing leaves it
(``docs/gpus.md``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trials.lineage import LineageResult, Progress
    from trials.lineage_spec import LineageSpec
    from trials.sinks import Sink
    from trials.work import StoredLineage

__all__ = ["DataParallel", "rank_device", "run_data_parallel"]

log = logging.getLogger(__name__)

TIMEOUT = timedelta(minutes=30)  # a rank waits this long for the others (rank 0 may be saving a checkpoint)


def loopback_interface() -> str:
    """The name of this machine's loopback interface (``lo`` on Linux, ``lo0`` on macOS)."""
    for _, name in socket.if_nameindex():
        if name.startswith("lo"):
            return name
    return "lo"


def rank_device(device: str, rank: int, gpus_per_worker: int = 1) -> str:
    """The device of ``rank``: ``cpu``, or CUDA device ``rank * gpus_per_worker`` of the ones
    visible to the trial (Ray sets ``CUDA_VISIBLE_DEVICES`` to the trial's GPUs)."""
    if torch.device(device).type != "cuda":
        return "cpu"
    return f"cuda:{rank * max(1, gpus_per_worker)}"


@dataclasses.dataclass
class DataParallel:
    """This process's place in the group: its ``rank`` of ``world`` workers."""

    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor by its mean over ranks (one all-reduce of one flat buffer)."""
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world)
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; checkpoint states are CPU tensors)."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


@contextmanager
def process_group(rank: int, world: int, rendezvous: str, device: str) -> Iterator[DataParallel]:
    """Join (and finally leave) the group rendezvoused at the file ``rendezvous``."""
    lo = loopback_interface()
    os.environ["GLOO_SOCKET_IFNAME"] = lo  # gloo would otherwise bind the hostname's address
    os.environ["NCCL_SOCKET_IFNAME"] = lo
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))
    store = dist.FileStore(rendezvous, world)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=TIMEOUT)
    try:
        yield DataParallel(rank=rank, world=world)
    finally:
        dist.destroy_process_group()


class _NullSink:
    """Ranks > 0 write nothing: rank 0 holds the one copy of every row."""

    def segment(self, branch: str, key: str, rows: list[dict[str, Any]]) -> None:
        pass

    def truncate(self, branch: str, from_step: int) -> None:
        pass

    def finished(self, result: dict[str, Any]) -> None:
        pass

    def stored_train_losses(self, branch: str, start: int, end: int) -> dict[int, float] | None:
        return None


class _RankCheckpoints:
    """Checkpoints as every rank sees them: rank 0 reads and writes the real store and
    broadcasts what it loads; other ranks receive it and write nothing."""

    def __init__(self, inner: Any, dp: DataParallel) -> None:
        self.inner, self.dp = inner, dp

    def load_trunk(self, step: int) -> dict[str, Any]:
        return self.dp.broadcast(self.inner.load_trunk(step) if self.dp.is_main else None)

    def load_branch(self, name: str, step: int) -> dict[str, Any]:
        return self.dp.broadcast(self.inner.load_branch(name, step) if self.dp.is_main else None)

    def trunk_checkpoints(self) -> dict[int, frozenset[str]]:
        return self.inner.trunk_checkpoints() if self.dp.is_main else {}

    def __getattr__(self, name: str) -> Any:  # save_*, clear_branch, prune_trunk
        if self.dp.is_main:
            return getattr(self.inner, name)
        return lambda *args, **kwargs: None


def _rank_main(rank: int, world: int, rendezvous: str, spec_dict: dict[str, Any], stored: Any,
               threads: int, gpus_per_worker: int, checkpointed: bool) -> None:
    """Entry point of ranks 1..N-1 (a spawned process)."""
    from trials.lineage import run_lineage
    from trials.lineage_spec import LineageSpec

    torch.set_num_threads(max(1, threads))
    spec = LineageSpec.from_dict(spec_dict)
    device = rank_device(spec.device, rank, gpus_per_worker)
    with process_group(rank, world, rendezvous, device) as dp:
        run_lineage(dataclasses.replace(spec, device=device), sink=_NullSink(),  # type: ignore[arg-type]
                    checkpoints=_RankCheckpoints(None, dp) if checkpointed else None,  # type: ignore[arg-type]
                    stored=stored, data_parallel=dp)


def _rank_entry(payload: str) -> None:
    """``python -c`` entry of a child rank: its arguments come pickled in the file ``payload``."""
    with open(payload, "rb") as handle:
        kwargs = pickle.load(handle)
    _rank_main(**kwargs)


_CHILD = "import sys; from trials.data_parallel import _rank_entry; _rank_entry(sys.argv[1])"


def run_data_parallel(spec: LineageSpec, *, sink: Sink, checkpoints: Any, stored: StoredLineage | None,
                      progress: Progress | None, gpus_per_worker: int | None = None) -> LineageResult:
    """Run ``spec`` on ``spec.workers`` ranks: this process is rank 0 (see the module docstring).

    Ranks 1..N-1 are fresh interpreters (``python -c``), not ``multiprocessing`` children: those
    would re-import this process's ``__main__``, which inside a Ray worker is Ray's own. They
    are this call's own processes: when rank 0 fails they are killed at once (they would wait
    in their next collective); after a success they get a minute to leave the group. A child
    that dies closes its sockets, which makes rank 0's next collective raise.
    """
    from trials.lineage import run_lineage

    world = spec.workers
    if gpus_per_worker is None:  # the trial sees the GPUs of all its workers (CUDA_VISIBLE_DEVICES)
        cuda = torch.device(spec.device).type == "cuda"
        gpus_per_worker = max(1, torch.cuda.device_count() // world) if cuda else 1
    with tempfile.TemporaryDirectory(prefix="lrsweep-ddp-") as folder:
        rendezvous = os.path.join(folder, "rendezvous")
        children = []
        for r in range(1, world):
            payload = os.path.join(folder, f"rank{r}.pickle")
            with open(payload, "wb") as handle:
                pickle.dump({"rank": r, "world": world, "rendezvous": rendezvous, "spec_dict": spec.to_dict(),
                             "stored": stored, "threads": torch.get_num_threads(),
                             "gpus_per_worker": gpus_per_worker, "checkpointed": checkpoints is not None}, handle)
            children.append(subprocess.Popen([sys.executable, "-c", _CHILD, payload]))
        try:
            device = rank_device(spec.device, 0, gpus_per_worker)
            with process_group(0, world, rendezvous, device) as dp:
                return run_lineage(dataclasses.replace(spec, device=device), sink=sink,
                                   checkpoints=_RankCheckpoints(checkpoints, dp) if checkpoints is not None else None,
                                   stored=stored, progress=progress, data_parallel=dp)
        except BaseException:  # the others would wait in their next collective: stop them now
            for child in children:
                child.kill()
            raise
        finally:
            for child in children:
                try:
                    child.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            failed = [c.returncode for c in children if c.returncode]
            if failed:
                log.warning("data-parallel ranks exited with %s", failed)
