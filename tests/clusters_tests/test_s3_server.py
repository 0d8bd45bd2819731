"""What the object-store path can rely on, checked against a real S3 server on 127.0.0.1.

These pin facts that the results store's design depends on (pyarrow 26, moto 5):
- pyarrow writes and reads Parquet through ``FileSystem.from_uri`` with credentials taken from
  the environment only;
- S3 has no rename: pyarrow's ``move`` is a server-side copy followed by a delete, so the
  local "write a temp file, then rename" trick is *not* atomic there. What is atomic on S3 is
  one object write: the object appears only when its upload completes (a single PUT, or
  pyarrow's CompleteMultipartUpload). The atomic pattern on S3 is: serialise the whole
  fragment first, then write it under its final key in one upload;
- closing a pyarrow output stream completes the upload, and ``with`` closes it even when the
  block raised: a writer that fails halfway publishes a truncated object under the final key;
- pyarrow accepts ``s3://KEY:SECRET@bucket`` and the filesystem then carries the secret in its
  pickle (what Ray ships to workers); one built from the environment does not.
"""

from __future__ import annotations

import os
import pickle

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from ray_nodes import listeners
from s3_server import S3Server, objects

ROWS = pa.table({
    "step": pa.array(range(1000), pa.int64()),
    "loss": pa.array([1.0 / (1 + i) for i in range(1000)], pa.float64()),
    "weights": pa.array(["raw", "ema@0.99"] * 500).dictionary_encode(),
})


def test_the_server_listens_on_loopback_only(s3_server: S3Server) -> None:
    mine = listeners({os.getpid()})
    assert ("127.0.0.1", s3_server.port) in mine
    assert all(addr.endswith("127.0.0.1") for addr, port in mine if port == s3_server.port)


def test_parquet_round_trip_through_the_uri(s3_server: S3Server, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a URI mistaken for a path would show up here
    fs, root = pafs.FileSystem.from_uri(s3_server.uri("sweeps/demo"))
    assert isinstance(fs, pafs.S3FileSystem) and root == f"{s3_server.bucket}/sweeps/demo"

    pq.write_table(ROWS, f"{root}/curves/part-0.parquet", filesystem=fs)

    stored = objects(s3_server, "sweeps/demo/")
    assert list(stored) == ["sweeps/demo/curves/part-0.parquet"] and stored[next(iter(stored))] > 1000
    assert pq.read_table(f"{root}/curves/part-0.parquet", filesystem=fs).equals(ROWS)
    # An independent client reads the same bytes as Parquet.
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key="sweeps/demo/curves/part-0.parquet")
    assert pq.read_table(pa.BufferReader(body["Body"].read())).equals(ROWS)
    assert list(tmp_path.iterdir()) == []


def test_credentials_in_the_uri_travel_with_the_filesystem(s3_server: S3Server) -> None:
    # (moto accepts unsigned requests, so what is checked is where the secret ends up.)
    from_env, _ = pafs.FileSystem.from_uri(s3_server.uri())
    assert s3_server.env["AWS_SECRET_ACCESS_KEY"].encode() not in pickle.dumps(from_env)
    keyed = s3_server.uri().replace("s3://", "s3://URIKEY:URISECRET@")
    from_uri, root = pafs.FileSystem.from_uri(keyed)  # accepted: the store must refuse such URIs
    assert b"URISECRET" in pickle.dumps(from_uri)
    pq.write_table(ROWS, f"{root}/x.parquet", filesystem=from_uri)
    assert pq.read_table(f"{root}/x.parquet", filesystem=from_env).equals(ROWS)


def test_move_is_a_copy_then_a_delete(s3_server: S3Server) -> None:
    client = s3_server.client()
    client.put_bucket_versioning(Bucket=s3_server.bucket, VersioningConfiguration={"Status": "Enabled"})
    fs, root = pafs.FileSystem.from_uri(s3_server.uri("m"))
    pq.write_table(ROWS, f"{root}/tmp-123.parquet", filesystem=fs)

    fs.move(f"{root}/tmp-123.parquet", f"{root}/part-0.parquet")

    history = client.list_object_versions(Bucket=s3_server.bucket, Prefix="m/")
    def body(version: dict) -> bytes:
        return client.get_object(Bucket=s3_server.bucket, Key=version["Key"],
                                 VersionId=version["VersionId"])["Body"].read()
    versions = {v["Key"]: body(v) for v in history["Versions"]}
    deleted = [d["Key"] for d in history.get("DeleteMarkers", [])]
    # A second object holding the same bytes under the new key, then a delete of the old key:
    # separate requests, with a moment in between where both keys exist. pyarrow also writes
    # an empty "m/" marker so that the "directory" outlives the delete.
    assert versions.keys() == {"m/tmp-123.parquet", "m/part-0.parquet", "m/"}
    assert versions["m/part-0.parquet"] == versions["m/tmp-123.parquet"] and versions["m/"] == b""
    assert deleted == ["m/tmp-123.parquet"]
    assert objects(s3_server, "m/") == {"m/": 0, "m/part-0.parquet": len(versions["m/part-0.parquet"])}


def test_a_failed_writer_publishes_a_truncated_object(s3_server: S3Server) -> None:
    fs, root = pafs.FileSystem.from_uri(s3_server.uri("f"))
    with pytest.raises(RuntimeError, match="writer died"):
        with fs.open_output_stream(f"{root}/part-0.parquet") as out:
            out.write(b"PAR1" + b"\0" * 96)  # the first 100 bytes of some fragment
            raise RuntimeError("writer died")
    assert objects(s3_server, "f/") == {"f/part-0.parquet": 100}

    # Serialising first, then one upload: a failure before the upload leaves no object at all.
    def failing_rows():
        yield ROWS.to_batches()[0]
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        sink = pa.BufferOutputStream()
        with pq.ParquetWriter(sink, ROWS.schema) as writer:
            for batch in failing_rows():
                writer.write_batch(batch)
        with fs.open_output_stream(f"{root}/part-1.parquet") as out:
            out.write(sink.getvalue())
    assert "f/part-1.parquet" not in objects(s3_server, "f/")
