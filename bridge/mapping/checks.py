"""Cross-checks ``validate`` runs across mappings, the configuration and what the store knows.

A single file can be valid on its own and still be wrong in context: a course that does not
exist on the site, a metric that no feed provides, a site that is not configured, or two
mappings pushing the same learning at the same people (which would message them twice).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, Engine, select

from bridge import clock
from bridge.errors import did_you_mean
from bridge.facts import NO_KPIS, all_person_ids, iter_facts
from bridge.mapping import evaluate as ev
from bridge.mapping import model as m
from bridge.mapping.context import resolve_item
from bridge.mapping.loader import LoadedMapping, MappingSet
from bridge.mapping.refs import FieldPath, located_item_refs, located_metrics
from bridge.settings import Settings
from bridge.store import schema as t

Severity = Literal["error", "warning", "unchecked"]
PLURALS = {"competency": "competencies"}


@dataclass(frozen=True)
class Finding:
    severity: Severity  # "unchecked": cannot be checked yet (nothing pulled to check it against)
    mapping_id: str
    message: str
    where: str = ""  # file:line:column of the field, like the schema errors
    field: str = ""  # dotted path of the field in the file

    def __str__(self) -> str:
        if not self.where:
            return f"{self.severity}: mapping {self.mapping_id}: {self.message}"
        if self.severity == "warning":
            return f"{self.where}: warning: {self.field}: {self.message}"
        if self.severity == "unchecked":
            return f"{self.where}: {self.field}: not checked: {self.message}"
        return f"{self.where}: {self.field}: {self.message}"


def _finding(severity: Severity, item: LoadedMapping, path: FieldPath, message: str) -> Finding:
    return Finding(severity, item.mapping.id, message, item.where(path), ".".join(str(p) for p in path))


def check_configuration(mapping_set: MappingSet, settings: Settings) -> list[Finding]:
    findings = []
    for item in mapping_set.items:
        for path, ref in sorted(located_item_refs(item.mapping), key=lambda found: found[1]):
            if ref.site not in settings.sites:
                known = ", ".join(sorted(settings.sites)) or "none"
                hint = did_you_mean(ref.site, settings.sites) or f" (configured: {known})"
                message = f"site '{ref.site}' is not configured{hint}"
                findings.append(_finding("error", item, (*path[:-1], "site"), message))
        for path, metric in located_metrics(item.mapping):
            if metric not in settings.metrics:
                message = (
                    f"metric '{metric}' is not declared under [metrics] (direction and target unknown)"
                    + did_you_mean(metric, settings.metrics)
                )
                findings.append(_finding("warning", item, path, message))
        findings.extend(Finding("warning", item.mapping.id, why) for why in unused_templates(item.mapping))
    return list(dict.fromkeys(findings))


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


def check_references(mapping_set: MappingSet, settings: Settings, engine: Engine) -> list[Finding]:
    """Each course, program, certification, competency and metric named by a mapping, against
    what was pulled: an error when the site (or the feeds) were read and it is not there, with the
    closest name that is; "unchecked" while nothing of its kind has been read from there yet."""
    findings: list[Finding] = []
    with engine.connect() as conn:
        stored_metrics = set(conn.execute(select(t.measurements.c.metric).distinct()).scalars())
        known = _KnownNames(conn)
        for item in mapping_set.items:
            for path, ref in sorted(located_item_refs(item.mapping), key=lambda found: found[1]):
                if ref.site not in settings.sites:
                    continue  # check_configuration reports it
                names = known.names(ref.site, ref.kind)
                shown = f"{ref.kind} '{ref.ref}'"
                if not names:
                    plural = PLURALS.get(ref.kind, f"{ref.kind}s")
                    message = f"{shown}: no {plural} pulled from site '{ref.site}' yet (run `lmsbridge sync`)"
                    findings.append(_finding("unchecked", item, path, message))
                elif resolve_item(conn, ref) is None:
                    message = f"{shown} does not exist on site '{ref.site}'{did_you_mean(ref.ref, names)}"
                    findings.append(_finding("error", item, path, message))
            for path, metric in located_metrics(item.mapping):
                if not stored_metrics:
                    message = f"metric '{metric}': no feed has provided KPI values yet (run `lmsbridge sync`)"
                    findings.append(_finding("unchecked", item, path, message))
                elif metric not in stored_metrics:
                    message = f"no feed has provided metric '{metric}'{did_you_mean(metric, stored_metrics)}"
                    findings.append(_finding("error", item, path, message))
    return list(dict.fromkeys(findings))


def reference_errors(mapping_set: MappingSet, settings: Settings, engine: Engine) -> list[Finding]:
    """The findings that make a mapping set unusable: `validate` exits 1 on them, `sync` refuses."""
    found = [*check_configuration(mapping_set, settings), *check_references(mapping_set, settings, engine)]
    return [f for f in found if f.severity == "error"]


def check_against_store(mapping_set: MappingSet, settings: Settings, engine: Engine) -> list[Finding]:
    return [*check_references(mapping_set, settings, engine), *_overlaps(mapping_set, settings, engine)]


class _KnownNames:
    """The names a reference may use, per site and kind, read once each (for suggestions):
    shortnames and idnumbers of competencies, shortnames of the rest (as resolve_item matches)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cache: dict[tuple[str, str], list[str]] = {}

    def names(self, site: str, kind: str) -> list[str]:
        key = (site, kind)
        if key not in self.cache:
            if kind == "competency":
                c = t.competencies
                query = select(c.c.shortname, c.c.idnumber).where(c.c.site == site)
            else:
                li = t.learning_items
                query = select(li.c.shortname).where(li.c.site == site, li.c.kind == kind)
            self.cache[key] = [name for row in self.conn.execute(query) for name in row if name]
        return self.cache[key]


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
