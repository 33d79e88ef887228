"""No decisions on half-pulled data (issue 16, item 3).

A mapping is decided only when every site it recommends from was read completely by its latest
pull: while that pull is running, or after it failed half-way (users and courses stored, the
completions not), people wait — and nobody is told they "never completed" what they did.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from bridge import health
from bridge.act import Actor
from bridge.decide import evaluate
from bridge.store import schema as t
from connectors.moodle.sim.server import Running
from connectors.moodle.simulator import start_in_thread
from tests.conftest import SIM_TOKEN
from tests.seed import CS101, CSAT_MAPPING, agent, link, rows, settings, store, write_mapping
from tests.test_cli_e2e import config, run

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


def test_a_site_being_pulled_or_failed_half_way_holds_its_mappings(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)

    def decide() -> tuple[list[tuple[str, str]], list[str]]:
        report = evaluate(engine, mappings, settings(), T0, persist=Actor(mappings, settings()))
        return [(d.person_id, d.outcome) for d in report.decisions], report.problems

    health.record_started(engine, "moodle", T0)
    assert decide() == ([], ["mapping(s) csat wait: site 'moodle' is being pulled"])
    health.record_failure(engine, "moodle", "core_reportbuilder_retrieve_report: 503", T0)
    decisions, problems = decide()
    assert decisions == [] and problems[0].endswith(
        "failed its last pull: core_reportbuilder_retrieve_report: 503"
    )
    assert [r.person_id for r in rows(engine, t.dirty_people)] == ["P1"]  # still to be decided
    assert rows(engine, t.mapping_state) == []  # and its first evaluation is still to come
    health.record_started(engine, "moodle", T0)
    health.record_success(engine, "moodle", T0)
    assert decide() == ([("P1", "open")], [])


def stored(cfg: Path) -> set[tuple[str, str, str]]:
    with sqlite3.connect(cfg.parent / "state.db") as db:
        return set(db.execute("select person_id, mapping_id, state from recommendations"))


def test_a_first_cycle_whose_completion_report_failed_opens_nothing_it_cannot_know(
    tmp_path: Path, moodle: Running
) -> None:
    """The report fails on every attempt of the first pull, after users and courses were read:
    nothing is opened or enrolled on guesses; the next cycle decides exactly what a clean first
    cycle on an identical site does."""
    faulted = config(tmp_path, moodle.url)
    assert run(faulted, "db", "upgrade").returncode == 0
    faults = moodle.simulator.faults
    faults.only = frozenset({"core_reportbuilder_retrieve_report"})
    faults.mode, faults.status, faults.count = "status", 503, 5  # every attempt of the first pull
    first = run(faulted, "sync", "--once")
    assert faults.count == 0
    assert "wait: site 'moodle' failed its last pull" in first.stdout + first.stderr
    assert stored(faulted) == set()  # every shipped mapping recommends from the moodle site
    assert moodle.state.enrolled == [] and moodle.state.messages == []
    second = run(faulted, "sync", "--once")
    assert second.returncode == 0, second.stdout + second.stderr
    twin = start_in_thread(SIM_TOKEN)  # the same organisation, read cleanly from the start
    try:
        (tmp_path / "clean").mkdir()
        clean = config(tmp_path / "clean", twin.url)
        assert run(clean, "db", "upgrade").returncode == 0
        assert run(clean, "sync", "--once").returncode == 0
        assert stored(faulted) == stored(clean) != set()
        assert sorted(moodle.state.enrolled) == sorted(twin.state.enrolled)
    finally:
        twin.stop()
