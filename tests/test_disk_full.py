"""The disk fills up under the SQLite store (issue 16, item 10): one clear line, nothing lost."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from bridge.cli import main
from connectors.moodle.sim.server import Running
from tests.conftest import SIM_TOKEN
from tests.test_cli_e2e import NOW, config, run


@pytest.fixture
def disk_full_after(request: pytest.FixtureRequest) -> Iterator[dict[str, int]]:
    """Every new SQLite connection in this process may grow its file by only a few pages, as a
    disk with no room left would allow (PRAGMA max_page_count)."""
    room: dict[str, int] = {}

    def limit(dbapi_connection: Any, _record: Any) -> None:
        if "pages" in room:
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages + room['pages']}")

    event.listen(Engine, "connect", limit)
    yield room
    event.remove(Engine, "connect", limit)


def test_a_full_disk_is_one_line_and_the_next_sync_loses_nothing(
    tmp_path: Path,
    moodle: Running,
    disk_full_after: dict[str, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = config(tmp_path, moodle.url)
    assert run(cfg, "db", "upgrade").returncode == 0
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LMSBRIDGE_SITES__MOODLE__TOKEN", SIM_TOKEN)
    monkeypatch.setenv("LMSBRIDGE_NOW", NOW)
    monkeypatch.setattr(sys, "argv", ["lmsbridge", "--config", str(cfg), "sync", "--once"])
    disk_full_after["pages"] = 3
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 1 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "database or disk is full" in line
    with sqlite3.connect(cfg.parent / "state.db") as db:
        assert db.execute("select count(*) from actions").fetchone()[0] == 0  # nothing half-written
    del disk_full_after["pages"]  # room again: the next sync does everything
    assert moodle.state.messages == []
    again = run(cfg, "sync", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    assert moodle.state.messages
