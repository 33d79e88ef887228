"""Property: no message that is sent contradicts the store at the instant it is sent.

Hypothesis plays sequences of what happens to two learners and their manager (recommendations
opening as KPIs drop, completions, completions reset by the site, unenrolment, suspension, pause
and resume, time passing) through the real decide, follow-up and delivery code. The sink looks at
the store each time something reaches it and checks every claim the message makes.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, and_, delete, select

from bridge import clock
from bridge.act import Actor
from bridge.decide import evaluate
from bridge.delivery import deliver
from bridge.followups import follow_up
from bridge.operational_state import set_paused
from bridge.ports import DeliveryOutcome, OutcomeStatus, OutgoingAction
from bridge.records import Enrolment, LmsUser, Measurement, Person
from bridge.store import schema as t
from bridge.store.db import make_engine
from tests.seed import CS101, CSAT_MAPPING, completion, link, store, write_mapping
from tests.seed import settings as bridge_settings
from tests.test_delivery import FakeSink

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)
USERS = {"P1": 11, "P2": 12}
MAPPING = (
    CSAT_MAPPING
    + """\
follow_up:
  due_in_days: 10
  remind_after_days: [2]
  remind_before_due_days: [3]
  remind_when_overdue: true
  repeat_every_days: 3
  max_reminders: 5
  escalate_to_manager_after_days: 4
  copy_manager_on_recommend: true
  reinforce_after_days: [1, 3, 7]
  manager_observe_after_days: 2
messages:
  escalation:
    subject: "{{ person.full_name }} and {{ learning.name }}"
    body: "{{ person.full_name }} has not completed {{ learning.name }}."
"""
)
DUE_BY = re.compile(r"It is due by (\d{4}-\d\d-\d\d)")
OVERDUE = re.compile(r"It was due on (\d{4}-\d\d-\d\d) and is now overdue")
# After the events, a few more days of daily cycles, so what they queued comes due and is sent.
TAIL = [step for _ in range(6) for step in (("wait", 24), ("cycle", ""))]
LINE = re.compile(r"^- (P\d) (has not completed|was recommended|completed) ", re.M)


class TruthCheckingSink(FakeSink):
    """A site that, on receiving anything, checks it against the store of that instant."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.delivered: list[str] = []

    def deliver(self, actions: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        with self.engine.connect() as conn:
            for action in actions:
                assert action.key not in self.delivered, f"sent twice: {action.key}"
                self.delivered.append(action.key)
                check_true_now(conn, action)
        return [DeliveryOutcome(a.key, OutcomeStatus.SENT, external_id="m") for a in actions]


def _one(conn: Connection, table: Any, *where: Any) -> Any:
    return conn.execute(select(table).where(and_(*where))).first()


def _completed_since(conn: Connection, person_id: str, since: datetime) -> bool:
    c = t.completions
    done = _one(conn, c, c.c.site == "moodle", c.c.user_id == USERS[person_id], c.c.item_id == CS101.item_id)
    return done is not None and done.completed_at >= since


def check_true_now(conn: Connection, action: OutgoingAction) -> None:
    a, r, p, u, e = t.actions, t.recommendations, t.people, t.lms_users, t.enrolments
    row = _one(conn, a, a.c.key == action.key)
    assert conn.execute(select(t.control.c.value).where(t.control.c.name == "paused")).scalar() != "1"
    recipient = _one(conn, p, p.c.person_id == row.recipient_person_id)
    assert recipient.active
    account = _one(conn, u, u.c.site == "moodle", u.c.user_id == action.recipient_user_id)
    assert account is not None and not account.suspended, f"{action.key}: the account is suspended"
    today = clock.now().date()
    if row.purpose == "digest":
        for person_id, claim in LINE.findall(action.body_text):
            rec = conn.execute(
                select(r).where(r.c.person_id == person_id).order_by(r.c.id.desc()).limit(1)
            ).first()
            if claim == "completed":
                assert rec.completed_at is not None and _completed_since(conn, person_id, rec.completed_at)
            else:
                assert rec.state == "open" and not _completed_since(conn, person_id, rec.opened_at), (
                    f"{action.key}: '{claim}' for {person_id}, but {rec.state}"
                )
        return
    rec = _one(conn, r, r.c.id == row.recommendation_id)
    learner = _one(conn, p, p.c.person_id == row.person_id)
    if row.purpose in ("recommend", "reminder", "escalation", "manager_copy"):
        assert rec.state == "open", f"{action.key}: the recommendation is {rec.state}"
        assert not _completed_since(conn, row.person_id, rec.opened_at), f"{action.key}: completed"
    if row.purpose == "reminder":
        unenrolled = _one(
            conn, e, e.c.user_id == USERS[row.person_id], e.c.item_id == CS101.item_id, e.c.active.is_(False)
        )
        assert unenrolled is None, f"{action.key}: no longer enrolled"
        for due in DUE_BY.findall(action.body_text):
            assert date.fromisoformat(due) >= today, f"{action.key}: 'due by {due}' on {today}"
        for due in OVERDUE.findall(action.body_text):
            assert date.fromisoformat(due) < today, f"{action.key}: 'overdue since {due}' on {today}"
    if row.purpose in ("reinforcement", "observe"):
        assert rec.state == "closed" and rec.completed_at is not None, f"{action.key}: not completed"
        assert _completed_since(conn, row.person_id, rec.completed_at), f"{action.key}: completion gone"
    if row.purpose in ("escalation", "observe", "manager_copy"):
        assert learner.manager_id == row.recipient_person_id, f"{action.key}: not the manager"


learner = st.sampled_from(sorted(USERS))
event = st.one_of(
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=120)),
    st.tuples(
        st.sampled_from(
            ["complete", "reset_completion", "unenrol", "enrol", "suspend", "unsuspend", "kpi_drops"]
        ),
        learner,
    ),
    st.tuples(st.sampled_from(["cycle", "deliver", "pause", "resume"]), st.just("")),
)


def _happen(engine: Engine, kind: str, who: str, now: datetime) -> None:
    user = USERS.get(who, 0)
    if kind == "complete":
        store(engine, completion(user, now))
    elif kind == "reset_completion":
        with engine.begin() as conn:
            conn.execute(delete(t.completions).where(t.completions.c.user_id == user))
    elif kind in ("unenrol", "enrol"):
        store(engine, Enrolment("moodle", user, CS101.item_id, active=kind == "enrol"))
    elif kind in ("suspend", "unsuspend"):
        store(engine, LmsUser("moodle", user, username=who.lower(), suspended=kind == "suspend"))
    elif kind == "kpi_drops":
        store(engine, Measurement(who, "csat", 3.1, date(2026, 11, 1), date(2026, 11, 30)))
    elif kind in ("pause", "resume"):
        with engine.begin() as conn:
            set_paused(conn, kind == "pause", now)


def _fresh(directory: Path) -> Engine:
    engine = make_engine(f"sqlite:///{directory / 'state.db'}")
    t.metadata.create_all(engine)
    store(
        engine,
        CS101,
        Person("M1", first_name="Mia", department="Customer Service", timezone="UTC"),
        LmsUser("moodle", 90, username="mia"),
        Person("P1", first_name="P1", department="Customer Service", timezone="UTC", manager_id="M1"),
        Person("P2", first_name="P2", department="Customer Service", timezone="UTC", manager_id="M1"),
        Measurement("P1", "csat", 3.6, date(2026, 10, 1), date(2026, 10, 31)),
        Measurement("P2", "csat", 4.6, date(2026, 10, 1), date(2026, 10, 31)),  # above target, for now
        *(LmsUser("moodle", uid, username=pid.lower()) for pid, uid in USERS.items()),
    )
    for pid, uid in (("M1", 90), *USERS.items()):
        link(engine, pid, uid)
    return engine


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(event, min_size=1, max_size=30))
def test_no_message_sent_contradicts_the_store_at_send_time(events: list[tuple[str, Any]]) -> None:
    s = bridge_settings()
    with tempfile.TemporaryDirectory() as raw:
        root = Path(raw)
        mappings = write_mapping(root / "mappings", "csat", MAPPING)
        engine = _fresh(root)
        sink = TruthCheckingSink(engine)
        now = T0
        try:
            for kind, arg in [("cycle", ""), *events, *TAIL]:
                clock.set_now(now)
                if kind == "wait":
                    now += timedelta(hours=arg)
                elif kind in ("cycle", "deliver"):
                    if kind == "cycle":
                        evaluate(engine, mappings, s, now, persist=Actor(mappings, s))
                        follow_up(engine, mappings, s, now)
                    deliver(engine, {"moodle": sink}, s)
                else:
                    _happen(engine, kind, arg, now)
        finally:
            clock.set_now(None)
            engine.dispose()
