"""Helpers that put known facts into a store for tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update

from bridge.mapping.loader import MappingSet, load_dir
from bridge.records import Completion, LearningItem, LmsUser, Measurement, Person, Record
from bridge.settings import MetricSettings, Settings
from bridge.store import schema as t
from bridge.store.ingest import bump_version, write_records

CS101 = LearningItem(
    "moodle", 7, shortname="CS-101", fullname="Customer Conversations", url="http://lms/course/view.php?id=7"
)


def store(engine: Engine, *records: Record, now: datetime | None = None) -> None:
    with engine.begin() as conn:
        write_records(conn, list(records), now or datetime.now(UTC))


def link(engine: Engine, person_id: str, user_id: int, site: str = "moodle") -> None:
    """Link an account as identity matching does, bumping the site's links version with it."""
    with engine.begin() as conn:
        conn.execute(
            t.identities.insert().values(
                person_id=person_id,
                site=site,
                user_id=user_id,
                matched_by="test",
                updated_at=datetime.now(UTC),
            )
        )
        bump_version(conn, f"links:{site}", datetime.now(UTC))


def agent(person_id: str, csat: float, *, user_id: int | None = None, **kw: Any) -> list[Record]:
    """A Customer Service agent with one month of CSAT and (optionally) an LMS account."""
    records: list[Record] = [
        Person(
            person_id,
            first_name=kw.pop("first_name", person_id),
            department="Customer Service",
            timezone="UTC",
            **kw,
        ),
        Measurement(person_id, "csat", csat, date(2026, 10, 1), date(2026, 10, 31)),
    ]
    if user_id is not None:
        records.append(LmsUser("moodle", user_id, username=person_id.lower()))
    return records


def agent_and_manager(engine: Engine) -> Engine:
    """P1, a Customer Service agent below the CSAT target (user 11), whose manager is M1 (user 90)."""
    store(
        engine,
        CS101,
        Person("M1", first_name="Mia", last_name="Boss", department="Customer Service", timezone="UTC"),
        LmsUser("moodle", 90, username="mia"),
        *agent("P1", 3.6, user_id=11, manager_id="M1"),
    )
    for pid, uid in (("M1", 90), ("P1", 11)):
        link(engine, pid, uid)
    return engine


def completion(user_id: int, when: datetime, item: LearningItem = CS101) -> Completion:
    return Completion("moodle", user_id, item.item_id, when)


def write_mapping(directory: Path, name: str, text: str) -> MappingSet:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return load_dir(directory)


def settings() -> Settings:
    return Settings(metrics={"csat": MetricSettings(direction="higher", target=4.2)})


def lapse_leases(engine: Engine) -> None:
    """Let every claim's lease run out, as the lease time passing on the database's clock would
    (leases are on PostgreSQL's clock, which tests cannot pin; SQLite has none)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(
                update(t.actions)
                .where(t.actions.c.state == "sending")
                .values(lease_until=func.now() - timedelta(seconds=1))
            )


def rows(engine: Engine, table: Any, *order: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(*(order or table.primary_key.columns))))


CSAT_RULE = """\
id: csat
title: CSAT below target
audience:
  department: Customer Service
when:
  kpi: {metric: csat, below: target}
recommend:
  - site: moodle
    course: CS-101
"""
"""Who the CSAT mapping is for, what opens it and what it recommends; tests add the rest."""
CSAT_MAPPING = (
    CSAT_RULE
    + """\
schedule:
  days: [mon, tue, wed, thu, fri, sat, sun]
  hours: "00:00-24:00"
  cooldown_days: 30
"""
)
