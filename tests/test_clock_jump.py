"""A clock that jumps ahead for one cycle (issue 16, item 9).

The cycle still reads, but decides and sends nothing and says why: its clock is ahead of the
site's (the Date of the site's answers). A refresh stamped by that cycle in the future does not
hold the next refresh back, so a suspension made meanwhile is seen at once.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bridge.incremental import refresh_due
from bridge.ports import PullContext, PullScope
from connectors.moodle.sim.server import Running
from tests.test_cli_e2e import NOW, config, run


def test_a_refresh_stamped_in_the_future_is_due_at_once() -> None:
    now = datetime(2026, 11, 3, 10, tzinfo=UTC)

    def stamped(at: datetime) -> PullContext:
        return PullContext(cursors={"users": at.isoformat()}, scope=PullScope(), now=now)

    assert not refresh_due(stamped(now - timedelta(hours=1)), "users", timedelta(days=1))
    assert refresh_due(stamped(now + timedelta(days=30)), "users", timedelta(days=1))


def sync_at(cfg: Path, when: datetime, exit_code: int = 0) -> str:
    result = run(cfg, "sync", "--once", env={"LMSBRIDGE_NOW": when.isoformat()})
    assert result.returncode == exit_code, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_a_cycle_whose_clock_jumped_ahead_decides_and_sends_nothing(tmp_path: Path, moodle: Running) -> None:
    cfg = config(tmp_path, moodle.url)
    assert run(cfg, "db", "upgrade").returncode == 0
    pinned = datetime.fromisoformat(NOW)
    sync_at(cfg, pinned)
    sent, enrolled = len(moodle.state.messages), len(moodle.state.enrolled)
    assert sent
    with sqlite3.connect(cfg.parent / "state.db") as db:
        actions = db.execute("select count(*) from actions").fetchone()[0]
    jumped = datetime.now(UTC) + timedelta(days=30)  # ahead of the machine's clock, and the site's
    output = sync_at(cfg, jumped, exit_code=2)  # a failed stage, as for any other refusal
    assert "ahead of the site or feed at 127.0.0.1" in output and "nothing is decided or sent" in output
    assert (len(moodle.state.messages), len(moodle.state.enrolled)) == (sent, enrolled)
    with sqlite3.connect(cfg.parent / "state.db") as db:
        assert db.execute("select count(*) from actions").fetchone()[0] == actions  # nothing queued
    user = next(u for u in moodle.state.users.values() if u.idnumber and not u.suspended)
    user.suspended = True  # while the clock was wrong
    sync_at(cfg, pinned + timedelta(hours=2))  # the clock is right again
    with sqlite3.connect(cfg.parent / "state.db") as db:
        (suspended,) = db.execute(
            "select suspended from lms_users where site = 'moodle' and user_id = ?", (user.id,)
        ).fetchone()
    assert suspended == 1, "the users refresh stamped 30 days ahead did not hold the next one back"
