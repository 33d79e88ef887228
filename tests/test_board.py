"""What lmsbridge shows learners inside Moodle (bridge.board): each learner's open
recommendations, with the manager who sees them too, and a digest per set so only changed sets
are written."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine
from typer.testing import CliRunner

from bridge import board
from bridge.cli import app
from bridge.ports import ShownRecommendation
from bridge.records import LmsManager, LmsUser, Person
from tests.seed import CSAT_MAPPING, agent, agent_and_manager, completion, link, store, write_mapping
from tests.test_send_time import T0, decide


def test_the_manager_shown_beside_a_recommendation_is_the_one_the_bridge_uses(
    engine: Engine, tmp_path: Path
) -> None:
    """Where a site names a learner's manager (Totara job assignments) that manager sees the
    learner's items, as digests and manager audiences use it, not the HR feed's."""
    agent_and_manager(engine)  # P1 (user 11) reports to M1 (user 90) in HR
    decide(engine, write_mapping(tmp_path, "csat", CSAT_MAPPING), T0)
    with engine.connect() as conn:
        assert [s.manager_user_id for s in board.open_recommendations(conn, "moodle")[11]] == [90]
    store(
        engine,
        Person("M2", first_name="Max"),
        LmsUser("moodle", 92, username="max"),
        LmsManager("moodle", 11, 92),
    )
    link(engine, "M2", 92)
    with engine.connect() as conn:
        assert [s.manager_user_id for s in board.open_recommendations(conn, "moodle")[11]] == [92]


texts = st.text(max_size=20)
shown = st.builds(
    ShownRecommendation,
    reference=texts,
    title=texts,
    reason=texts,
    url=st.none() | texts,
    due_at=st.none() | st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1)),
    manager_user_id=st.none() | st.integers(min_value=1, max_value=10**9),
    manager_reason=texts,
)


@given(st.lists(shown, max_size=5))
def test_a_sets_digest_is_the_one_stored_before_it_was_made_cheaper(items: list[ShownRecommendation]) -> None:
    """The digests stored by earlier releases stay valid: no learner's set is written again
    because the digest was computed another way."""
    before = hashlib.sha256(json.dumps([asdict(i) for i in items], default=str, sort_keys=True).encode())
    assert board.digest(items) == before.hexdigest()


def reads_of_open_recommendations(monkeypatch: pytest.MonkeyPatch) -> list[set[str] | None]:
    """Whose open recommendations each publish reads from now on (None: everyone's)."""
    reads: list[set[str] | None] = []
    real = board.open_recommendations

    def spy(conn: Any, site: str, people: set[str] | None = None) -> Any:
        reads.append(people)
        return real(conn, site, people)

    monkeypatch.setattr(board, "open_recommendations", spy)
    return reads


class ShownSink:
    """A site with a board that records every set it is told."""

    def __init__(self) -> None:
        self.told: list[dict[int, list[ShownRecommendation]]] = []

    def board(self) -> ShownSink:
        return self

    def show(self, sets: dict[int, list[ShownRecommendation]]) -> None:
        self.told.append(dict(sets))


def test_a_delivery_run_with_nothing_new_reads_nothing_for_the_board(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sets are made of recommendations, people, account links and opt-outs: while none of
    them changed since the last complete publish, no open recommendation is read; any change
    makes the next run compare every set again."""
    agent_and_manager(engine)
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    decide(engine, mappings, T0)
    reads = reads_of_open_recommendations(monkeypatch)
    sink = ShownSink()
    assert board.publish(engine, {"moodle": sink}, T0).written == 1 and len(reads) == 1
    assert board.publish(engine, {"moodle": sink}, T0).written == 0 and len(reads) == 1  # nothing read
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("LMSBRIDGE_STORE__URL", url)
    optout = CliRunner().invoke(app, ["optout", "add", "P1", "--mapping", "csat"])
    assert optout.exit_code == 0, optout.output
    structlog.reset_defaults()  # the command logged to the runner's stream, closed now
    logging.getLogger().handlers.clear()
    assert board.publish(engine, {"moodle": sink}, T0).written == 1 and len(reads) == 2
    assert sink.told[-1] == {11: []}  # opted out: shown nothing
    assert board.publish(engine, {"moodle": sink}, T0).written == 0 and len(reads) == 2
    store(engine, completion(11, T0))
    decide(engine, mappings, T0 + timedelta(hours=1))  # the recommendation closes
    assert board.publish(engine, {"moodle": sink}, T0).written == 0 and len(reads) == 3
    assert reads == [None, None, {"P1"}]  # only recommendations changed: only their people are read


class PluginLater(ShownSink):
    """A site without the companion plugin until ``installed``; counts the times it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.installed = False
        self.asked = 0

    def board(self) -> ShownSink | None:  # type: ignore[override]
        self.asked += 1
        return self if self.installed else None


def test_a_site_without_a_board_costs_a_new_process_nothing_until_something_changes(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each `sync --once` is a new process whose sink does not know the site has no board: the
    site is asked before every open recommendation is read (a site without one costs no read),
    what it answered is kept in the store, so nothing is read or asked while nothing changed;
    after a change the site is asked first, and once it has a board everyone's set is written."""
    agent_and_manager(engine)
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    decide(engine, mappings, T0)
    reads = reads_of_open_recommendations(monkeypatch)
    sink = PluginLater()
    assert board.publish(engine, {"moodle": sink}, T0).written == 0 and (len(reads), sink.asked) == (0, 1)
    assert board.publish(engine, {"moodle": PluginLater()}, T0).written == 0 and len(reads) == 0
    store(engine, completion(11, T0))
    decide(engine, mappings, T0 + timedelta(hours=1))  # the recommendation closes
    later = PluginLater()
    assert board.publish(engine, {"moodle": later}, T0).written == 0 and (len(reads), later.asked) == (0, 1)
    store(engine, *agent("P2", 3.2, user_id=12, manager_id="M1"))
    link(engine, "P2", 12)
    decide(engine, mappings, T0 + timedelta(hours=2))  # P2 is recommended the course
    installed = PluginLater()
    installed.installed = True
    assert board.publish(engine, {"moodle": installed}, T0).written == 1 and reads[-1] is None
    assert list(installed.told[-1]) == [12]
