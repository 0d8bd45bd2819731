"""Curve-write throughput: a local S3 server (moto, on 127.0.0.1) vs the local disk.

One curve fragment of ``--rows`` rows (the curves table's columns: sweep_id, lineage_id,
branch, step, tokens, flops, lr, split, weights, loss; zstd, like the store) is written
``--repeats`` times in each mode, the modes interleaved so that machine noise hits all alike:

- ``local``: ``pq.write_table`` to a temp file on the local disk, then ``os.replace`` onto the
  final name (the local store's atomic write) — the baseline;
- ``s3_stream``: ``pq.write_table`` straight to the S3 URI (pyarrow's streamed upload);
- ``s3_buffered``: the fragment serialised in memory first, then one upload under its final key
  (the atomic pattern on S3: the object appears whole or not at all).

The S3 server is moto's, in its own process (``python -m moto.server``) on a free loopback port,
with dummy credentials; nothing leaves the machine. ``--in-process`` runs moto's
``ThreadedMotoServer`` inside this process instead (what the tests use; it shares the GIL).

Usage: ``python benchmarks/object_store_writes.py [--rows 100000] [--repeats 10] [--smoke]``;
prints JSON (``--smoke``: 5,000 rows, 2 repeats, the same keys).
Needs the ``test`` extra (moto[server]).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

BUCKET = "lrsweep-bench"
ENV = {
    "AWS_ACCESS_KEY_ID": "bench-key", "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}


def curve_fragment(rows: int, seed: int = 0) -> pa.Table:
    """One lineage's curve: train rows every step, eval rows for 4 weight variants every 50."""
    rng = np.random.default_rng(seed)
    step = np.arange(rows, dtype=np.int64)
    is_eval = (step % 50) >= 46  # 4 of every 50 rows are eval rows
    weights = np.where(is_eval, np.array(["raw", "ema@0.05", "ema@0.1", "swa@0.2"])[step % 4], "raw")
    return pa.table({
        "sweep_id": pa.array(["bench"] * rows),
        "lineage_id": pa.array(["3f9c2a7e1b4d"] * rows),
        "branch": pa.array(["main"] * rows),
        "step": step,
        "tokens": step * 4096,
        "flops": step.astype(np.float64) * 6 * 124e6 * 4096,
        "lr": 3e-4 * np.minimum(1.0, (step + 1) / 1000),
        "split": pa.array(np.where(is_eval, "eval", "train")),
        "weights": pa.array(weights),
        "loss": 3.0 + 5.0 / np.sqrt(step + 1) + rng.normal(0, 0.01, rows),
    })


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(in_process: bool) -> tuple[str, Callable[[], None]]:
    """Start moto's S3 server on 127.0.0.1; returns (host:port, stop)."""
    if in_process:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on our stderr
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return f"{host}:{port}", server.stop
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)

    def stop() -> None:
        proc.terminate()
        proc.wait(10)

    return f"127.0.0.1:{port}", stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--in-process", action="store_true", help="moto in this process (shares the GIL)")
    parser.add_argument("--smoke", action="store_true", help="CI: 5,000 rows, 2 repeats")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.repeats = 5_000, 2
    os.environ.update(ENV)

    table = curve_fragment(args.rows)
    endpoint, stop = start_server(args.in_process)
    local_dir = Path(tempfile.mkdtemp(prefix="lrsweep-objstore-bench-"))
    try:
        s3, root = pafs.FileSystem.from_uri(f"s3://{BUCKET}/curves?endpoint_override={endpoint}&scheme=http")
        pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True).create_dir(BUCKET)

        def local(i: int) -> None:
            tmp = local_dir / f".part-{i}.parquet.tmp"
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, local_dir / f"part-{i}.parquet")

        def s3_stream(i: int) -> None:
            pq.write_table(table, f"{root}/stream/part-{i}.parquet", filesystem=s3, compression="zstd")

        def s3_buffered(i: int) -> None:
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            with s3.open_output_stream(f"{root}/buffered/part-{i}.parquet") as out:
                out.write(sink.getvalue())

        modes = {"local": local, "s3_stream": s3_stream, "s3_buffered": s3_buffered}
        for write in modes.values():  # warm-up: connections, allocator, page cache
            write(-1)
        times: dict[str, list[float]] = {name: [] for name in modes}
        for i in range(args.repeats):
            for name, write in modes.items():
                t0 = time.perf_counter()
                write(i)
                times[name].append(time.perf_counter() - t0)

        size = (local_dir / "part-0.parquet").stat().st_size
        for name, key in (("s3_stream", "stream"), ("s3_buffered", "buffered")):
            back = pq.read_table(f"{root}/{key}/part-0.parquet", filesystem=s3)
            assert back.equals(table), f"{name}: read back differs"
        result: dict[str, object] = {
            "rows": args.rows, "fragment_bytes": size, "repeats": args.repeats,
            "server": "moto ThreadedMotoServer (in process)" if args.in_process else "moto server (own process)",
        }
        for name, samples in times.items():
            med = statistics.median(samples)
            result[name] = {"median_s": round(med, 4), "min_s": round(min(samples), 4),
                            "MB_per_s": round(size / med / 1e6, 1), "rows_per_s": round(args.rows / med)}
        base = statistics.median(times["local"])
        result["time_ratio_vs_local"] = {name: round(statistics.median(times[name]) / base, 2)
                                         for name in ("s3_stream", "s3_buffered")}
        print(json.dumps(result, indent=2))
    finally:
        stop()
        shutil.rmtree(local_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
