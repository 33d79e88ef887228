"""``plan``: the decisions the engine would take now and the actions they would queue — sending
nothing and storing nothing. It runs the very code ``sync`` runs, so the two always agree."""

from __future__ import annotations

from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine

from bridge import registry
from bridge.act import recommend_actions, sending_slot
from bridge.decide import DecideReport, Decision, LatestRecommendation, evaluate
from bridge.facts import Facts
from bridge.mapping import model as m
from bridge.mapping.loader import MappingSet
from bridge.outbox import NewAction
from bridge.records import Person
from bridge.settings import Settings
from bridge.timing import zone


@dataclass(frozen=True)
class PlannedReminder:
    day: int  # after the recommendation
    on: date  # the day it would go, in the learner's time zone, inside the mapping's sending hours
    kind: str  # "after the recommendation", "3 days before due", "overdue", "repeat"


@dataclass
class PlannedDecision:
    decision: Decision
    actions: list[NewAction] = field(default_factory=list)
    reminders: list[PlannedReminder] = field(default_factory=list)


def planned_reminders(
    mapping: m.Mapping, person: Person, settings: Settings, opened: datetime
) -> list[PlannedReminder]:
    """The reminders a recommendation opened at ``opened`` would get if never completed."""
    tz = zone(person.timezone, settings.delivery.default_timezone)
    out = []
    for day, kind in mapping.follow_up.reminder_schedule():
        goes, _ = sending_slot(mapping.schedule, person.timezone, settings, opened + timedelta(days=day))
        out.append(PlannedReminder(day, goes.astimezone(tz).date(), kind))
    return out


class Planner:
    def __init__(self, mapping_set: MappingSet, settings: Settings) -> None:
        self.mappings = {mp.id: mp for mp in mapping_set.mappings}
        self.settings = settings
        self.refuses = registry.refusal(settings)
        self.planned: list[PlannedDecision] = []

    def __call__(
        self,
        conn: Connection,
        decisions: list[Decision],
        facts: MappingType[str, Facts],
        latest: MappingType[tuple[str, str], LatestRecommendation],
        now: datetime,
    ) -> None:
        for d in decisions:
            planned = PlannedDecision(d)
            if d.outcome == "open":
                previous = latest.get((d.mapping_id, d.person_id))
                episode = previous.episode + 1 if previous else 1
                planned.actions = recommend_actions(
                    self.mappings[d.mapping_id],
                    d,
                    facts[d.person_id],
                    0,
                    episode,
                    self.settings,
                    now,
                    self.refuses,
                )
                planned.reminders = planned_reminders(
                    self.mappings[d.mapping_id], facts[d.person_id].person, self.settings, now
                )
            self.planned.append(planned)


def plan(
    engine: Engine,
    mapping_set: MappingSet,
    settings: Settings,
    now: datetime,
    *,
    full: bool = False,
    mapping_ids: list[str] | None = None,
    person_ids: list[str] | None = None,
) -> tuple[DecideReport, list[PlannedDecision]]:
    planner = Planner(mapping_set, settings)
    report = evaluate(
        engine,
        mapping_set,
        settings,
        now,
        full=full,
        persist=planner,
        dry=True,
        mapping_ids=mapping_ids,
        person_ids=person_ids,
    )
    return report, planner.planned
