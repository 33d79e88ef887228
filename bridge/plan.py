"""``plan``: the decisions the engine would take now and the actions they would queue — sending
nothing and storing nothing. It runs the very code ``sync`` runs, so the two always agree."""

from __future__ import annotations

from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine

from bridge import registry
from bridge.act import recommend_actions
from bridge.decide import DecideReport, Decision, LatestRecommendation, evaluate
from bridge.facts import Facts
from bridge.mapping.loader import MappingSet
from bridge.outbox import NewAction
from bridge.settings import Settings


@dataclass
class PlannedDecision:
    decision: Decision
    actions: list[NewAction] = field(default_factory=list)


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
