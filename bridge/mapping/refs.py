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


# Where a value sits in the mapping file, as YAML keys and list indexes: ("recommend", 0, "course").
FieldPath = tuple[str | int, ...]


def triggers(node: m.Trigger) -> Iterator[m.Trigger]:
    for _path, sub in located_triggers(node):
        yield sub


def located_triggers(node: m.Trigger, path: FieldPath = ("when",)) -> Iterator[tuple[FieldPath, m.Trigger]]:
    """Every trigger in the tree with its place in the file."""
    yield path, node
    for i, sub in enumerate(node.all or []):
        yield from located_triggers(sub, (*path, "all", i))
    for i, sub in enumerate(node.any or []):
        yield from located_triggers(sub, (*path, "any", i))
    if node.not_ is not None:
        yield from located_triggers(node.not_, (*path, "not"))


def located_item_refs(mapping: m.Mapping) -> list[tuple[FieldPath, ItemRef]]:
    """Every learning item or competency the mapping names, with the place of the name (its
    ``site`` is the sibling key ``site``)."""
    found: list[tuple[FieldPath, ItemRef]] = [
        (("recommend", i, target.kind), ItemRef(target.site, target.kind, target.ref))
        for i, target in enumerate(mapping.recommend)
    ]
    if mapping.closed_by.competency_proficient is not None:
        rule = mapping.closed_by.competency_proficient
        found.append(
            (
                ("closed_by", "competency_proficient", "competency"),
                ItemRef(rule.site, "competency", rule.competency),
            )
        )
    for path, node in located_triggers(mapping.when):
        if node.competency is not None:
            ref = ItemRef(node.competency.site, "competency", node.competency.competency)
            found.append(((*path, "competency", "competency"), ref))
        if node.completion_older_than is not None:
            older = node.completion_older_than
            found.append(
                ((*path, "completion_older_than", "course"), ItemRef(older.site, "course", older.course))
            )
        if node.completion_missing is not None:
            missing = node.completion_missing
            found.append(
                ((*path, "completion_missing", "course"), ItemRef(missing.site, "course", missing.course))
            )
        if node.certification_due is not None:
            due = node.certification_due
            found.append(
                (
                    (*path, "certification_due", "certification"),
                    ItemRef(due.site, "certification", due.certification),
                )
            )
    return found


def item_refs(mapping: m.Mapping) -> set[ItemRef]:
    return {ref for _path, ref in located_item_refs(mapping)}


def all_item_refs(mappings: Iterable[m.Mapping]) -> set[ItemRef]:
    return {ref for mapping in mappings for ref in item_refs(mapping)}


def located_metrics(mapping: m.Mapping) -> list[tuple[FieldPath, str]]:
    """Every KPI the mapping reads, with the place of its ``metric`` key."""
    found: list[tuple[FieldPath, str]] = []
    for path, node in located_triggers(mapping.when):
        for key in ("kpi", "kpi_trend", "kpi_percentile"):
            rule = getattr(node, key)
            if rule is not None:
                found.append(((*path, key, "metric"), rule.metric))
    if mapping.measure:
        found.append((("measure", "metric"), mapping.measure.metric))
    return found


def metrics(mapping: m.Mapping) -> set[str]:
    return {metric for _path, metric in located_metrics(mapping)}


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
