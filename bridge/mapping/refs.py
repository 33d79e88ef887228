"""What a set of mappings refers to: learning items, competencies, metrics and peer groups.

Used to resolve references before evaluation, to limit what pollers read (only what some
mapping needs), and by ``validate`` to report references that nothing provides.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bridge.facts import KpiNeeds
from bridge.mapping import model as m


@dataclass(frozen=True, order=True)
class ItemRef:
    site: str
    kind: str  # course | program | certification | competency
    ref: str


def triggers(node: m.Trigger) -> Iterator[m.Trigger]:
    yield node
    for sub in node.all or []:
        yield from triggers(sub)
    for sub in node.any or []:
        yield from triggers(sub)
    if node.not_ is not None:
        yield from triggers(node.not_)


def item_refs(mapping: m.Mapping) -> set[ItemRef]:
    found = {ItemRef(t.site, t.kind, t.ref) for t in mapping.recommend}
    if mapping.closed_by.competency_proficient is not None:
        rule = mapping.closed_by.competency_proficient
        found.add(ItemRef(rule.site, "competency", rule.competency))
    for node in triggers(mapping.when):
        if node.competency is not None:
            found.add(ItemRef(node.competency.site, "competency", node.competency.competency))
        if node.completion_older_than is not None:
            found.add(ItemRef(node.completion_older_than.site, "course", node.completion_older_than.course))
        if node.completion_missing is not None:
            found.add(ItemRef(node.completion_missing.site, "course", node.completion_missing.course))
        if node.certification_due is not None:
            due = node.certification_due
            found.add(ItemRef(due.site, "certification", due.certification))
    return found


def all_item_refs(mappings: Iterable[m.Mapping]) -> set[ItemRef]:
    return {ref for mapping in mappings for ref in item_refs(mapping)}


def metrics(mapping: m.Mapping) -> set[str]:
    found = {mapping.measure.metric} if mapping.measure else set()
    for node in triggers(mapping.when):
        for rule in (node.kpi, node.kpi_trend, node.kpi_percentile):
            if rule is not None:
                found.add(rule.metric)
    return found


def kpi_needs(mappings: Iterable[m.Mapping]) -> KpiNeeds:
    """The KPI history the triggers of these mappings read (percentiles read peer ranks instead)."""
    metrics_used: set[str] = set()
    periods = 0
    for mapping in mappings:
        for node in triggers(mapping.when):
            if node.kpi is not None:
                metrics_used.add(node.kpi.metric)
                periods = max(periods, node.kpi.periods)
            if node.kpi_trend is not None:
                metrics_used.add(node.kpi_trend.metric)
                periods = max(periods, node.kpi_trend.periods + 1)
    return KpiNeeds(frozenset(metrics_used), periods)


def peer_groups(mappings: Iterable[m.Mapping]) -> set[tuple[str, str]]:
    return {
        (node.kpi_percentile.metric, node.kpi_percentile.peer_group)
        for mapping in mappings
        for node in triggers(mapping.when)
        if node.kpi_percentile is not None
    }


def uses_competencies(mappings: Iterable[m.Mapping], site: str) -> bool:
    return any(r.kind == "competency" and r.site == site for r in all_item_refs(mappings))
