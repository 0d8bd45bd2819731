"""A real S3-compatible server on 127.0.0.1 for tests: moto's ``ThreadedMotoServer``.

It serves the S3 HTTP API from a thread of the test process on a port the OS picks (no race
for a "free" port). ``S3Server.env`` is what a client needs — dummy credentials and a region
only: pyarrow and boto3 read them from the environment, and the store URI carries the
endpoint (``?endpoint_override=127.0.0.1:PORT&scheme=http``), never a key. The AWS SDKs are
kept from reading the user's ``~/.aws`` files and from probing the EC2 metadata address, so
no test request leaves the machine.

For a cluster test, hand ``env`` to the Ray nodes as well (their workers read and write the
store): ``LocalRayCluster(base, node_env=server.env)``. The server runs on the test process's GIL; a long multi-process sweep may prefer
moto's ``moto_server`` command in its own process — the same URI and ``env`` apply.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

__all__ = ["S3Server", "objects"]

# Nonexistent files: the SDKs must not pick up a developer's real profile or credentials.
_NO_FILE = "/nonexistent/lrsweep-test-aws"


@dataclass
class S3Server:
    """moto's S3 server on 127.0.0.1 with one bucket. Use as a context manager."""

    bucket: str = field(default_factory=lambda: f"lrsweep-test-{secrets.token_hex(4)}")
    host: str = ""
    port: int = 0
    _server: object | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for any client of this server (the test process, Ray nodes, the CLI)."""
        return {
            "AWS_ACCESS_KEY_ID": "lrsweep-test-key",
            "AWS_SECRET_ACCESS_KEY": "lrsweep-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",  # never probe 169.254.169.254
            "AWS_CONFIG_FILE": _NO_FILE,
            "AWS_SHARED_CREDENTIALS_FILE": _NO_FILE,
        }

    #: variables a test must clear so a developer's own AWS setup can't leak in
    UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
             "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")

    def uri(self, prefix: str = "lrsweep") -> str:
        """``s3://bucket/prefix`` addressed at this server, as pyarrow's ``from_uri`` takes it."""
        return f"s3://{self.bucket}/{prefix.strip('/')}?endpoint_override={self.endpoint}&scheme=http"

    def client(self):  # noqa: ANN201 - boto3 is typed only through stubs
        """A boto3 S3 client for this server: an independent view of what pyarrow wrote."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])

    def start(self) -> S3Server:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        self.host, self.port = server.get_host_and_port()
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]
            self._server = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def objects(server: S3Server, prefix: str = "") -> dict[str, int]:
    """Every object under ``prefix`` in the server's bucket: key -> size in bytes."""
    listing = server.client().list_objects_v2(Bucket=server.bucket, Prefix=prefix)
    return {item["Key"]: item["Size"] for item in listing.get("Contents", [])}

