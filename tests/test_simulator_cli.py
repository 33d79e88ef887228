"""`lmsbridge simulator moodle|totara` on a port already taken: one line and exit 1, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    "args",
    [["moodle", "--token", "T", "--people", "5"], ["totara", "--client-id", "I", "--client-secret", "S"]],
    ids=["moodle", "totara"],
)
def test_a_port_in_use_is_one_line(taken_port: int, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "simulator", *args, "--port", str(taken_port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{taken_port}: Address already in use (choose another --port)"
    ]
