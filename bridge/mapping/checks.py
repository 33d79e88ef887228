"""Cross-checks ``validate`` runs across mappings, the configuration and what the store knows.

A single file can be valid on its own and still be wrong in context: a course that does not
exist on the site, a metric that no feed provides, a site that is not configured, or two
mappings pushing the same learning at the same people (which would message them twice).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from bridge import clock
from bridge.facts import NO_KPIS, all_person_ids, iter_facts
from bridge.mapping import evaluate as ev
from bridge.mapping import model as m
from bridge.mapping.context import resolve_item
from bridge.mapping.loader import MappingSet
from bridge.mapping.refs import item_refs, metrics
from bridge.settings import Settings
from bridge.store import schema as t


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    mapping_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: mapping {self.mapping_id}: {self.message}"


def check_configuration(mapping_set: MappingSet, settings: Settings) -> list[Finding]:
    findings = []
    for mapping in mapping_set.mappings:
        for ref in sorted(item_refs(mapping)):
            if ref.site not in settings.sites:
                known = ", ".join(sorted(settings.sites)) or "none"
                findings.append(
                    Finding("error", mapping.id, f"site '{ref.site}' is not configured (configured: {known})")
                )
        for metric in sorted(metrics(mapping)):
            if metric not in settings.metrics:
                findings.append(
                    Finding(
                        "warning",
                        mapping.id,
                        f"metric '{metric}' is not declared under [metrics] (direction and target unknown)",
                    )
                )
        findings.extend(Finding("warning", mapping.id, why) for why in unused_templates(mapping))
    return findings


def unused_templates(mapping: m.Mapping) -> list[str]:
    """The mapping's own templates its follow-up settings never send (an administrator who wrote
    one would otherwise wait for a message that never comes)."""
    f = mapping.follow_up
    off: dict[str, str] = {
        "reminder": "" if f.reminder_days() else "no reminder days are set",
        "escalation": "" if f.escalate_to_manager_after_days else "escalate_to_manager_after_days is null",
        "reinforcement": "" if f.reinforce_after_days else "reinforce_after_days is empty",
        "observe": "" if f.manager_observe_after_days is not None else "manager_observe_after_days is null",
        "manager_copy": "" if f.copy_manager_on_recommend else "copy_manager_on_recommend is false",
    }
    written = [(kind, f"messages.{kind}") for kind in off if getattr(mapping.messages, kind) is not None]
    written += [
        (kind, f"messages.locales.{locale}.{kind}")
        for locale, overrides in sorted(mapping.messages.locales.items())
        for kind in overrides
        if kind in off
    ]
    return [f"{where} is never sent: follow_up.{off[kind]}" for kind, where in written if off[kind]]


def check_against_store(mapping_set: MappingSet, settings: Settings, engine: Engine) -> list[Finding]:
    findings: list[Finding] = []
    with engine.connect() as conn:
        stored_metrics = set(conn.execute(select(t.measurements.c.metric).distinct()).scalars())
        have_people = conn.execute(select(func.count()).select_from(t.people)).scalar_one() > 0
        synced_sites = set(conn.execute(select(t.learning_items.c.site).distinct()).scalars())
        for mapping in mapping_set.mappings:
            for ref in sorted(item_refs(mapping)):
                if ref.site in synced_sites and resolve_item(conn, ref) is None:
                    findings.append(
                        Finding(
                            "error", mapping.id, f"{ref.kind} '{ref.ref}' does not exist on site '{ref.site}'"
                        )
                    )
            if have_people:
                for metric in sorted(metrics(mapping) - stored_metrics):
                    findings.append(Finding("error", mapping.id, f"no feed has provided metric '{metric}'"))
    findings.extend(_overlaps(mapping_set, settings, engine))
    return findings


def _overlaps(mapping_set: MappingSet, settings: Settings, engine: Engine) -> list[Finding]:
    """Mappings recommending the same item to audiences that share people."""
    by_item: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for mapping in mapping_set.enabled:
        for rec in mapping.recommend:
            by_item[(rec.site, rec.kind, rec.ref)].append(mapping.id)
    shared = {item: ids for item, ids in by_item.items() if len(ids) > 1}
    if not shared:
        return []
    ctx = ev.EvalContext(now=clock.now(), metrics=settings.metrics)
    members: dict[str, set[str]] = defaultdict(set)
    wanted = [mp for mp in mapping_set.enabled if any(mp.id in ids for ids in shared.values())]
    with engine.connect() as conn:
        for facts in iter_facts(conn, all_person_ids(conn), NO_KPIS):
            for candidate in wanted:
                if ev.audience(candidate.audience, facts, ctx).ok:
                    members[candidate.id].add(facts.person.person_id)
    findings = []
    for (site, kind, ref), ids in sorted(shared.items()):
        for i, first in enumerate(ids):
            for second in ids[i + 1 :]:
                both = members[first] & members[second]
                if both:
                    findings.append(
                        Finding(
                            "warning",
                            first,
                            f"recommends {kind} '{ref}' on '{site}' like mapping {second}, to {len(both)} shared "
                            "people; a person matched by both is contacted once, for the first mapping that opens",
                        )
                    )
    return findings
