"""Submission to a real Ray head (``ray start --head`` on 127.0.0.1) through Ray Jobs, and the
one-line errors when no cluster answers."""

from __future__ import annotations

import socket
import time

import pytest

SPEC = """
name = "submitted"
store = "{store}"
batch_size = 4
[workload]
name = "linreg"
sizes = [{{ dim = 50 }}]
[[optimizers]]
name = "sgd"
lr = [0.05, 0.1]
[[schedules]]
name = "constant"
[horizons]
steps = [40, 80]
[resources]
cpu = 1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------- no cluster
def dead_address() -> str:
    """A loopback port where nothing listens."""
    return f"127.0.0.1:{free_port()}"


@pytest.mark.parametrize("command", ["submit", "logs", "stop"])
@pytest.mark.parametrize("scheme", ["http://", ""])
def test_an_address_where_nothing_listens_fails_in_seconds_with_one_line(tmp_path, capsys, command, scheme):
    from orchestrator import cli

    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(store=tmp_path / "store"))
    address = scheme + dead_address()
    target = str(spec) if command == "submit" else "raysubmit_x"
    began = time.monotonic()
    code = cli.main([command, target, "--address", address])
    took = time.monotonic() - began
    err = capsys.readouterr().err
    assert code == 2 and took < 10  # Ray's client took ~40 s on a bare host:port
    assert err.count("\n") == 1 and len(err) < 300 and "Traceback" not in err
    assert err == (f"lrsweep: error: --address must be a Ray dashboard that answers "
                   f"({address.removeprefix('http://')}: Connection refused), got {address!r}\n")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("address", ["http://", "ftp://127.0.0.1:1", "http://127.0.0.1:99999"])
def test_a_malformed_address_is_one_line(capsys, address):
    from orchestrator import cli

    assert cli.main(["logs", "raysubmit_x", "--address", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrsweep: error: --address must be a Ray dashboard address such as "
                          "http://127.0.0.1:8265, got ") and err.count("\n") == 1
