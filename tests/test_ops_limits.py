"""The operations endpoint under abuse, over real HTTP on 127.0.0.1 (issue 16, items 6, 10, 12).

Idle connections are let go after a timeout and capped in number, so a flood cannot take the
process's file descriptors; a bad Content-Length is a 400, not a traceback; /readyz gives an
error's text only to a caller holding the token.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine

from bridge import clock, health
from bridge.ops import OpsServer

TOKEN = "ops-token-0123456789abcdef"
SECRET_ERROR = "Moodle site 'moodle' at https://lms.internal.example: invalidtoken for user svc-bridge"


@contextmanager
def serving(engine: Engine, token: str | None = None, **limits: Any) -> Iterator[OpsServer]:
    ops = OpsServer(engine, "127.0.0.1:0", token, lambda: ["moodle"], **limits)
    ops.start()
    try:
        yield ops
    finally:
        ops.stop()


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_idle_connection_is_let_go_after_the_timeout(sqlite_engine: Engine) -> None:
    with serving(sqlite_engine, connection_timeout=0.5) as ops:
        client = socket.create_connection(("127.0.0.1", ops.port))
        client.settimeout(10)
        started = time.monotonic()
        assert client.recv(1) == b""  # the server closed its end
        assert time.monotonic() - started < 5
        client.close()


@pytest.mark.timeout(60)
def test_a_flood_of_idle_connections_cannot_take_the_processes_descriptors(sqlite_engine: Engine) -> None:
    flood = 300
    with serving(sqlite_engine, connection_timeout=1.0, max_connections=8) as ops:
        before = open_fds()
        clients = [socket.create_connection(("127.0.0.1", ops.port)) for _ in range(flood)]
        try:
            time.sleep(0.5)
            # Each client holds one descriptor here; the server holds at most its 8 slots.
            assert open_fds() - before <= flood + 8 + 4
            time.sleep(1.5)  # the idle ones are let go; the flood is still connected
            status, body = request(ops.port, "GET", "/healthz")
            assert status == 200 and json.loads(body)["status"] == "alive"
        finally:
            for client in clients:
                client.close()


def test_a_bad_content_length_is_a_clear_400(
    sqlite_engine: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    with serving(sqlite_engine) as ops:
        for value in ("abc", "-5", "1e9"):
            status, body = request(ops.port, "POST", "/hooks/totara", {"Content-Length": value})
            assert (status, body) == (400, b"bad Content-Length\n")
        assert request(ops.port, "GET", "/healthz")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


def test_readyz_shows_an_error_text_only_with_the_token(sqlite_engine: Engine) -> None:
    health.record_failure(sqlite_engine, "moodle", SECRET_ERROR, clock.now())
    with serving(sqlite_engine, TOKEN) as ops:
        status, body = request(ops.port, "GET", "/readyz")
        public = json.loads(body)["sources"]["moodle"]
        assert status == 200 and not public["healthy"]
        assert public["last_error"] == "failing (details need the token)"
        assert "lms.internal.example" not in body.decode()
        _status, body = request(ops.port, "GET", "/readyz", {"Authorization": f"Bearer {TOKEN}"})
        assert json.loads(body)["sources"]["moodle"]["last_error"] == SECRET_ERROR
