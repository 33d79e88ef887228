"""Files with secrets or personal data are the owner's alone (issue 16, item 12)."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bridge import log
from bridge.ops import OpsServer
from bridge.private_files import warn_about_secrets
from bridge.store.db import make_engine
from tests.test_cli_e2e import config, run


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    log.configure("info", "json", stream)
    return stream


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_store_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'state.db'}")
        with engine.connect():
            pass
        engine.dispose()
    finally:
        os.umask(old)
    assert mode(tmp_path / "new" / "state.db") == 0o600


def test_an_existing_readable_store_is_named_in_a_warning(tmp_path: Path, captured: io.StringIO) -> None:
    path = tmp_path / "state.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    make_engine(f"sqlite:///{path}").dispose()
    (line,) = [json.loads(x) for x in captured.getvalue().splitlines() if "make it private" in x]
    assert line["level"] == "warning" and line["file"] == str(path) and line["fix"] == f"chmod 600 {path}"
    assert mode(path) == 0o644  # not changed behind the owner's back


def test_readable_secret_files_are_warned_about_without_their_content(tmp_path: Path, moodle: object) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    token = secrets / "lmsbridge_sites__moodle__token"
    token.write_text("sim-token-0123456789abcdef")
    token.chmod(0o644)
    cfg = config(tmp_path, "http://127.0.0.1:9")
    result = run(
        cfg, "config", "check", env={"LMSBRIDGE_SECRETS_DIR": str(secrets), "LMSBRIDGE_LOG__LEVEL": "info"}
    )
    output = result.stdout + result.stderr
    assert "a secret file can be read by other users" in output and str(token) in output
    assert "sim-token-0123456789abcdef" not in output
    token.chmod(0o600)
    assert warn_about_secrets(secrets) == []


def test_listening_beyond_loopback_without_a_token_is_warned_about(sqlite_engine: Engine) -> None:
    def warning(listen: str, token: str | None) -> str | None:
        ops = OpsServer(sqlite_engine, listen, token, lambda: [])  # not started: nothing listens
        try:
            return ops.exposure_warning()
        finally:
            ops.stop()

    found = warning("0.0.0.0:8080", None)
    assert found is not None and "daemon.token" in found
    assert warning("0.0.0.0:8080", "t" * 20) is None and warning("127.0.0.1:8080", None) is None
