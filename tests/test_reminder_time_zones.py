"""Reminder schedules in the recipient's time zone: learners in Sydney and New York, a weekday
09:00-17:00 sending window, and both their daylight-saving changes inside the schedule (Sydney
moves to +11 on 2026-10-04, New York to -5 on 2026-11-01). Every reminder lands inside the
window on the right local day, none is lost and none is sent twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from bridge import clock
from bridge.act import Actor
from bridge.decide import evaluate
from bridge.delivery import deliver
from bridge.followups import follow_up
from bridge.ports import DeliveryOutcome, OutgoingAction
from bridge.records import LmsUser, Measurement, Person
from tests.seed import CS101, CSAT_RULE, link, settings, store, write_mapping
from tests.test_delivery import FakeSink

OPENED = datetime(2026, 9, 28, 12, tzinfo=UTC)  # Monday: 22:00 in Sydney, 08:00 in New York
MAPPING = (
    CSAT_RULE
    + """\
follow_up:
  due_in_days: 40
  remind_after_days: [3, 10]
  remind_before_due_days: [3]
  remind_when_overdue: true
  repeat_every_days: 7
  max_reminders: 6
  escalate_to_manager_after_days: null
  reinforce_after_days: []
  manager_observe_after_days: null
schedule:
  days: [mon, tue, wed, thu, fri]
  hours: "09:00-17:00"
"""
)
ZONES = {"S1": ("Australia/Sydney", 21), "N1": ("America/New_York", 22)}


class ClockedSink(FakeSink):
    """Records each message with the instant it reached the site."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[datetime, OutgoingAction]] = []

    def deliver(self, actions: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        self.log.extend((clock.now(), a) for a in actions)
        return super().deliver(actions)


def test_reminders_land_in_the_window_on_the_right_local_days_across_dst(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    store(engine, CS101)
    for pid, (tz, uid) in ZONES.items():
        store(
            engine,
            Person(pid, first_name=pid, department="Customer Service", timezone=tz),
            Measurement(pid, "csat", 3.6, date(2026, 8, 1), date(2026, 8, 31)),
            LmsUser("moodle", uid, username=pid.lower()),
        )
        link(engine, pid, uid)
    mappings = write_mapping(tmp_path / "mappings", "csat", MAPPING)
    s = settings()
    sink = ClockedSink()
    now = OPENED
    while now < OPENED + timedelta(days=60):  # the service's cycle every two hours for two months
        clock.set_now(now)
        evaluate(engine, mappings, s, now, persist=Actor(mappings, s))
        follow_up(engine, mappings, s, now)
        deliver(engine, {"moodle": sink}, s)
        now += timedelta(hours=2)

    sent: dict[str, list[tuple[str, int, date, str]]] = {pid: [] for pid in ZONES}
    for at, action in sink.log:
        _, pid, _, purpose, _, _, step = action.key.split("/")
        local = at.astimezone(ZoneInfo(ZONES[pid][0]))
        assert local.weekday() < 5 and 9 <= local.hour < 17, f"{action.key} sent at {local}"
        sent[pid].append((purpose, int(step), local.date(), action.body_text))

    # Day N falls due at OPENED + N days (12:00 UTC); it goes in the first window from then on.
    expected = {
        "S1": [
            ("recommend", 0, "2026-09-29"),  # opened at 22:00 local: the next morning
            ("reminder", 3, "2026-10-02"),  # due Thu 22:00 AEST: Friday morning
            ("reminder", 10, "2026-10-09"),  # due Thu 23:00 AEDT (after the change): Friday
            ("reminder", 37, "2026-11-05"),  # 3 days before due
            ("reminder", 41, "2026-11-09"),  # overdue: due Sunday, goes Monday
            ("reminder", 48, "2026-11-16"),  # repeats
            ("reminder", 55, "2026-11-23"),
        ],
        "N1": [
            ("recommend", 0, "2026-09-28"),  # opened at 08:00 local: at 09:00 the same day
            ("reminder", 3, "2026-10-01"),
            ("reminder", 10, "2026-10-08"),
            ("reminder", 37, "2026-11-04"),  # due Wed 07:00 EST (after the change): that day
            ("reminder", 41, "2026-11-09"),
            ("reminder", 48, "2026-11-16"),
            ("reminder", 55, "2026-11-23"),
        ],
    }
    for pid, want in expected.items():
        assert [(p, step, day.isoformat()) for p, step, day, _ in sent[pid]] == want, pid

    texts = {(pid, step): text for pid in ZONES for _, step, _, text in sent[pid]}
    assert "Please complete it by 2026-11-07." in texts[("S1", 0)]  # 23:00 on 7 Nov in Sydney
    assert "It is due by 2026-11-07 (2 days left)." in texts[("S1", 37)]
    assert "It is due by 2026-11-07 (3 days left)." in texts[("N1", 37)]
    for pid in ZONES:
        for step in (41, 48, 55):
            assert "It was due on 2026-11-07 and is now overdue" in texts[(pid, step)]
