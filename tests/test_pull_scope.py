"""Whom a site's pull reads: the people the mappings' audiences hold, decided exactly as the
evaluation decides who is in them (bridge.cycle.scope_for). A person the evaluation holds in an
audience but the pull leaves out has no completions read on the per-learner feeds, and would be
recommended (or enrolled in) a course they completed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from bridge import audiences, clock
from bridge.cycle import scope_for
from bridge.facts import Facts, load_people
from bridge.identity import match_identities
from bridge.mapping.context import build_context
from bridge.mapping.evaluate import audience
from bridge.records import LmsManager, LmsUser, Person
from bridge.store import schema as t
from tests.seed import CS101, link, settings, store, write_mapping

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)
BY_MANAGER = """\
id: team
title: Mia's team
audience:
  manager: [{manager}]
when:
  completion_missing:
    site: moodle
    course: CS-101
    days_after_start: 0
recommend:
  - site: moodle
    course: CS-101
"""


@pytest.fixture
def org(engine: Engine) -> Engine:
    """P1 reports to M1 in HR (employee number E-M1); the LMS names M2 as P1's manager."""
    store(
        engine,
        CS101,
        Person("M1", employee_number="E-M1"),
        Person("M2", employee_number="E-M2"),
        Person("P1", employee_number="E-P1", manager_id="M1"),
        LmsUser("moodle", 11, username="p1"),
        LmsUser("moodle", 92, username="m2"),
    )
    link(engine, "P1", 11)
    link(engine, "M2", 92)
    clock.set_now(NOW)
    return engine


def in_audience_when_deciding(engine: Engine, mappings: object) -> set[str]:
    with engine.connect() as conn:
        ctx = build_context(conn, mappings.mappings, settings(), NOW)  # type: ignore[attr-defined]
        people = load_people(conn, ["M1", "M2", "P1"])
    (mapping,) = mappings.mappings  # type: ignore[attr-defined]
    return {pid for pid, person in people.items() if audience(mapping.audience, Facts(person), ctx).ok}


@pytest.mark.parametrize("manager", ["M1", "E-M1"], ids=["by HR id", "by employee number"])
def test_a_manager_audience_is_pulled_as_it_is_decided(org: Engine, tmp_path: Path, manager: str) -> None:
    mappings = write_mapping(tmp_path, "team", BY_MANAGER.format(manager=manager))
    assert in_audience_when_deciding(org, mappings) == {"P1"}
    assert scope_for("moodle", mappings, org).person_ids == {"P1"}


def test_the_manager_the_lms_names_decides_the_pull_as_it_decides_the_audience(
    org: Engine, tmp_path: Path
) -> None:
    store(org, LmsManager("moodle", 11, 92))
    mappings = write_mapping(tmp_path, "team", BY_MANAGER.format(manager="E-M2"))
    assert in_audience_when_deciding(org, mappings) == {"P1"}
    assert scope_for("moodle", mappings, org).person_ids == {"P1"}
    mia = write_mapping(tmp_path / "mia", "team", BY_MANAGER.format(manager="M1"))
    assert in_audience_when_deciding(org, mia) == set() == scope_for("moodle", mia, org).person_ids


def test_audiences_are_decided_again_only_when_what_they_depend_on_changed(
    org: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A steady cycle with nothing new about people does not evaluate everyone again; a person
    changed, a manager the LMS names, an account relinked or a new day does."""
    evaluated: list[int] = []
    real = audiences.iter_active_people

    def counting(conn: object) -> object:
        evaluated.append(1)
        return real(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(audiences, "iter_active_people", counting)
    mappings = write_mapping(tmp_path, "team", BY_MANAGER.format(manager="E-M2"))

    def scope() -> frozenset[str] | None:
        return scope_for("moodle", mappings, org).person_ids

    assert scope() == set() and scope() == set() and len(evaluated) == 1
    store(org, LmsManager("moodle", 11, 92))  # the LMS names M2 as P1's manager
    assert scope() == {"P1"} and len(evaluated) == 2
    store(org, Person("P2", employee_number="E-P2", manager_id="M2"))
    assert scope() == {"P1", "P2"} and len(evaluated) == 3
    with org.begin() as conn:  # M2's account now belongs to someone else
        conn.execute(update(t.lms_users).where(t.lms_users.c.user_id == 92).values(username="other"))
        store_people = match_identities(conn, "moodle", ["username"])
    assert store_people.changed and scope() == {"P2"} and len(evaluated) == 4
    clock.set_now(NOW + timedelta(days=1))
    assert scope() == {"P2"} and len(evaluated) == 5
