"""The first hour on a site set up as the README says, with one step missed (issue 13).

The web-service role lacks the capabilities that let it see idnumbers and emails, so nobody
can be linked; the administrator grants them later. Nothing may be lost meanwhile and nobody
wrongly messaged: once granted, lmsbridge ends exactly where it would have been had the site
been right from the start.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from connectors.moodle.sim.server import Running
from connectors.moodle.simulator import start_in_thread
from tests.conftest import SIM_TOKEN
from tests.test_cli_e2e import NOW, config

MISSED = {"moodle/user:viewalldetails", "moodle/site:viewuseridentity"}
LATER = (datetime.fromisoformat(NOW) + timedelta(hours=2)).isoformat()


def sync(cfg: Path, at: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LMSBRIDGE_SITES__MOODLE__TOKEN": SIM_TOKEN,
        "LMSBRIDGE_NOW": at,
        "COLUMNS": "200",
        "LMSBRIDGE_LOG__LEVEL": "warning",
    }
    for args in (["db", "upgrade"], ["sync", "--once"]):
        result = subprocess.run(
            [sys.executable, "-m", "bridge", "--config", str(cfg), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def outcome(
    cfg: Path, site: Running
) -> tuple[set[tuple[str, str]], set[tuple[int, str]], set[tuple[int, int]]]:
    with sqlite3.connect(cfg.parent / "state.db") as db:
        # Open ones: a baseline (backfill: false) may also record, as suppressed, someone whose
        # history was unknown at switch-on; it sends nothing either way.
        recommendations = set(
            db.execute("select person_id, mapping_id from recommendations where state = 'open'")
        )
        completions = set(db.execute("select user_id, item_id from completions where kind = 'course'"))
    messages = {
        (m["touserid"], m["text"].split("<p><small>Ref")[0].replace(site.url, "SITE"))
        for m in site.state.messages
    }
    return recommendations, messages, completions


@pytest.fixture
def control(
    tmp_path: Path,
) -> Iterator[tuple[set[tuple[str, str]], set[tuple[int, str]], set[tuple[int, int]]]]:
    """The same organisation on a site set up right from the start, synced once, later."""
    site = start_in_thread(SIM_TOKEN)
    try:
        (tmp_path / "control").mkdir()
        cfg = config(tmp_path / "control", site.url)
        sync(cfg, LATER)
        yield outcome(cfg, site)
    finally:
        site.stop()


def test_a_capability_granted_late_loses_nothing_and_messages_nobody_wrongly(
    tmp_path: Path,
    moodle: Running,
    control: tuple[set[tuple[str, str]], set[tuple[int, str]], set[tuple[int, int]]],
) -> None:
    moodle.state.capabilities -= MISSED
    (tmp_path / "site").mkdir()
    cfg = config(tmp_path / "site", moodle.url)
    first = sync(cfg, NOW)
    assert "no linked LMS account yet" in first.stdout
    recommendations, messages, completions = outcome(cfg, moodle)
    assert recommendations == set() and messages == set()  # nobody told they "never completed"
    moodle.state.capabilities |= MISSED  # the administrator fixes the role
    sync(cfg, LATER)
    recommendations, messages, completions = outcome(cfg, moodle)
    expected_recommendations, expected_messages, expected_completions = control
    assert expected_recommendations and recommendations == expected_recommendations
    assert completions == expected_completions  # the history read while nobody was linked is kept
    assert messages == expected_messages
