"""A store with a known, lived-in state for the dashboard tests: sources in good and bad health,
job runs, recommendations with completions and a holdout, KPI history before and after, and an
outbox with sent, retrying, dead, suppressed and waiting actions."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from bridge.dashboard import Dashboard
from bridge.mapping.loader import MappingSet, load_dir
from bridge.ops import OpsServer
from bridge.records import Completion, LmsUser, Measurement, Person, Record
from bridge.settings import ConnectorSettings, MetricSettings, Settings
from bridge.store import schema as t
from tests.seed import CS101, link, store
from tests.test_cli_e2e import ROOT

NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)
CSAT = "csat-customer-conversations"
SOURCES = ["hr", "moodle"]
MANAGER_A, MANAGER_B = "lead-a", "lead-b"  # cs01-cs15 report to the first, cs16-cs30 to the second
ESCALATED = "cs17"  # open and overdue; escalated to MANAGER_B in a digest that was sent
# A last_error that would run script if the pages did not escape what they show.
HOSTILE_ERROR = '<script>alert("x")</script> Moodle said: user cannot receive messages'


def dashboard_settings() -> Settings:
    return Settings(
        metrics={
            "csat": MetricSettings(direction="higher", target=4.2, title="Customer satisfaction", unit="1-5"),
            "win_rate": MetricSettings(direction="higher", target=30, unit="%"),
        },
        feeds={"hr": ConnectorSettings(type="csv")},
        sites={"moodle": ConnectorSettings(type="moodle")},
    )


def mapping_set() -> MappingSet:
    return load_dir(ROOT / "mappings")


def serve(engine: Engine, listen: str, token: str | None) -> OpsServer:
    """The dashboard over real HTTP on ``engine``'s store, started."""
    ops = OpsServer(engine, listen, token, lambda: SOURCES)
    mappings = mapping_set()
    Dashboard(engine, dashboard_settings(), lambda: mappings, lambda: SOURCES).install(ops)
    ops.start()
    return ops


def seed(engine: Engine) -> None:
    rng = random.Random(20261103)
    records: list[Record] = [CS101]
    people = [f"cs{i:02d}" for i in range(1, 31)]
    completed_after = {
        p: d for p, d in zip(people[:13], [4, 6, 9, 11, 13, 16, 20, 24, 29, 33, 41, 52, 70], strict=True)
    }
    opened = {
        p: datetime(2026, 6, 1, 9, tzinfo=UTC) + timedelta(days=i % 9) for i, p in enumerate(people[:26])
    }
    records += [
        Person(MANAGER_A, first_name="Dana", last_name="Lead", department="Customer Service", timezone="UTC"),
        Person(MANAGER_B, first_name="Sam", last_name="Lead", department="Sales", timezone="UTC"),
    ]
    for i, person in enumerate(people):
        user_id = 100 + i
        records.append(
            Person(
                person,
                first_name=f"Agent {i + 1}",
                department="Sales" if i >= 26 else "Customer Service",
                manager_id=MANAGER_A if i < 15 else MANAGER_B,
                timezone="UTC",
            )
        )
        records.append(LmsUser("moodle", user_id, username=person))
        base = 3.55 + rng.uniform(-0.25, 0.25)
        done = opened[person] + timedelta(days=completed_after[person]) if person in completed_after else None
        for month in range(1, 11):
            start = date(2026, month, 1)
            end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
            lift = 0.0
            if done is not None and start > done.date():
                lift = 0.45
            elif person in opened and start > opened[person].date():
                lift = 0.1
            value = round(base + lift + rng.uniform(-0.15, 0.15), 2)
            records.append(Measurement(person, "csat", value, start, end))
        if done is not None:
            records.append(Completion("moodle", user_id, CS101.item_id, done))
    store(engine, *records, now=NOW)
    for i, person in enumerate(people):
        link(engine, person, 100 + i)

    with engine.begin() as conn:
        _health(conn)
        _jobs(conn)
        rec_ids: dict[str, int] = {}
        for i, person in enumerate(people[:26]):
            holdout = i >= 22
            done_at = (
                opened[person] + timedelta(days=completed_after[person])
                if person in completed_after
                else None
            )
            state = "closed" if done_at else ("lapsed" if i in (20, 21) else "open")
            rec_ids[person] = conn.execute(
                t.recommendations.insert()
                .values(
                    mapping_id=CSAT,
                    person_id=person,
                    episode=1,
                    state=state,
                    holdout=holdout,
                    targets=[
                        {
                            "site": "moodle",
                            "kind": "course",
                            "item_id": 7,
                            "name": "Customer Conversations",
                            "url": None,
                        }
                    ],
                    explanation={"reason": "csat below target 4.2", "facts": [], "audience": []},
                    opened_at=opened[person],
                    closed_at=done_at or (NOW - timedelta(days=3) if state == "lapsed" else None),
                    close_reason="completed CS-101" if done_at else None,
                    completed_at=done_at,
                )
                .returning(t.recommendations.c.id)
            ).scalar_one()

        def open_recommendation(
            mapping_id: str, person: str, days_ago: int, reason: str, facts: list[str]
        ) -> None:
            conn.execute(
                t.recommendations.insert().values(
                    mapping_id=mapping_id,
                    person_id=person,
                    state="open",
                    holdout=False,
                    targets=[],
                    explanation={"reason": reason, "facts": facts, "audience": []},
                    opened_at=NOW - timedelta(days=days_ago),
                )
            )

        for j, person in enumerate(people[26:]):
            open_recommendation("sales-win-rate", person, 10 + j, "win rate below 30%", [])
        # A mapping without measure: one new starter overdue (21 days to finish), one not yet.
        for person, days in ((people[28], 30), (people[29], 5)):
            open_recommendation("onboarding-essentials", person, days, "new starter", ["started 2026-10-01"])
        conn.execute(
            t.recommendations.insert().values(
                mapping_id="retired-mapping",
                person_id="cs01",
                state="closed",
                holdout=False,
                targets=[],
                explanation={"reason": "old rule", "facts": [], "audience": []},
                opened_at=datetime(2026, 1, 5, tzinfo=UTC),
                closed_at=datetime(2026, 2, 5, tzinfo=UTC),
                close_reason="mapping removed",
            )
        )
        _actions(conn, people, rec_ids, opened)


def _health(conn: Any) -> None:
    rows = [
        {"name": "hr", "last_success_at": NOW - timedelta(minutes=4)},
        {
            "name": "moodle",
            "last_success_at": NOW - timedelta(hours=2),
            "last_error_at": NOW - timedelta(seconds=50),
            "last_error": "HTTP 503 from the Moodle site: Service Unavailable",
            "consecutive_failures": 4,
            "resting_failures": 4,  # a site that is down: the breaker counts them
        },
        {"name": "decide", "last_success_at": NOW - timedelta(minutes=2)},
        {"name": "deliver", "last_success_at": NOW - timedelta(seconds=40)},
    ]
    for row in rows:
        conn.execute(t.source_health.insert().values(updated_at=NOW, **row))


def _jobs(conn: Any) -> None:
    rows = [
        ("pull:hr", 300, 2.4, "ok"),
        ("pull:moodle", 180, 30.1, "error"),
        ("decide", 120, 5.2, "ok"),
        ("deliver", 40, 0.8, "ok"),
    ]
    conn.execute(
        t.job_runs.insert(),
        [
            {
                "job": job,
                "last_started_at": NOW - timedelta(seconds=ago),
                "last_finished_at": NOW - timedelta(seconds=ago) + timedelta(seconds=took),
                "last_status": status,
                "next_run_at": NOW + timedelta(seconds=60),
                "worker": "lmsbridge-7f9c:4242",
                "updated_at": NOW,
            }
            for job, ago, took, status in rows
        ],
    )


def _actions(conn: Any, people: list[str], rec_ids: dict[str, int], opened: dict[str, datetime]) -> None:
    rows: list[dict[str, Any]] = []

    def action(person: str, purpose: str, state: str, when: datetime, **extra: Any) -> None:
        rows.append(
            {
                "key": f"{CSAT}:{person}:{purpose}:{len(rows)}",
                "recommendation_id": rec_ids[person],
                "mapping_id": CSAT,
                "person_id": person,
                "purpose": purpose,
                "kind": "message",
                "site": "moodle",
                "recipient_person_id": person,
                "subject": "A short course for you",
                "state": state,
                "attempts": 1 if state == "sent" else 0,
                "due_at": when,
                "sent_at": when if state == "sent" else None,
                "created_at": when,
                "updated_at": when,
                **extra,
            }
        )

    for i, person in enumerate(people[:22]):
        action(person, "recommend", "sent", opened[person])
        if i >= 9:
            action(person, "reminder", "sent", opened[person] + timedelta(days=7))
        if i >= 13:
            action(person, "reminder", "sent", opened[person] + timedelta(days=14))
    for person in people[22:26]:
        action(
            person,
            "recommend",
            "suppressed",
            opened[person],
            last_error="measurement holdout: deliberately not contacted",
        )
    action(
        people[3],
        "reminder",
        "cancelled",
        opened[people[3]] + timedelta(days=7),
        last_error="recommendation closed: completed CS-101",
    )
    action(people[14], "escalation", "dead", NOW - timedelta(hours=5), attempts=8, last_error=HOSTILE_ERROR)
    action(
        people[15],
        "reminder",
        "dead",
        NOW - timedelta(days=1),
        attempts=8,
        last_error="Moodle said invalidtoken: Invalid token - token not found",
    )
    action(
        people[16],
        "reminder",
        "pending",
        NOW + timedelta(minutes=4),
        attempts=2,
        last_error="HTTP 503 from the Moodle site: Service Unavailable",
        updated_at=NOW - timedelta(minutes=2),
    )
    action(people[17], "reminder", "pending", NOW + timedelta(minutes=20), last_error=None)
    action(
        people[18],
        "reminder",
        "waiting",
        NOW - timedelta(days=2),
        last_error="no account on site 'moodle' yet; sent once the account is linked",
    )
    # Put off by delivery, and dropped as stale: reasons that group on the outbox page.
    action(
        people[19],
        "reminder",
        "pending",
        NOW + timedelta(hours=1),
        last_error="deferred: outside the recipient's sending hours",
        created_at=NOW - timedelta(days=1),
    )
    action(
        people[13],
        "reminder",
        "pending",
        NOW + timedelta(days=2),
        last_error="deferred: weekly cap of 3 messages reached",
        created_at=NOW - timedelta(days=3),
    )
    for person, queued in ((people[20], "2026-06-08"), (people[21], "2026-06-09")):
        action(
            person,
            "reminder",
            "cancelled",
            NOW - timedelta(days=100),
            last_error=f"dropped unsent: queued {queued}, older than the 14-day limit for reminder "
            "messages (delivery.max_age_days)",
        )
    for row in rows:
        conn.execute(t.actions.insert().values(**row))
    digest_key = f"digest/{MANAGER_B}/2026-06-23"
    conn.execute(
        t.actions.insert().values(
            key=digest_key,
            person_id=MANAGER_B,
            purpose="digest",
            kind="message",
            site="moodle",
            recipient_person_id=MANAGER_B,
            state="sent",
            attempts=1,
            due_at=datetime(2026, 6, 23, 9, tzinfo=UTC),
            sent_at=datetime(2026, 6, 23, 9, tzinfo=UTC),
            created_at=datetime(2026, 6, 23, 9, tzinfo=UTC),
            updated_at=datetime(2026, 6, 23, 9, tzinfo=UTC),
        )
    )
    conn.execute(
        t.digest_items.insert().values(
            manager_id=MANAGER_B,
            recommendation_id=rec_ids[ESCALATED],
            kind="escalation",
            text="Agent 17 has not completed Customer Conversations yet",
            created_at=datetime(2026, 6, 23, 8, tzinfo=UTC),
            action_key=digest_key,
        )
    )
