"""Builds the evaluation context: references resolved against what the store knows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, select

from bridge.mapping import model as m
from bridge.mapping.evaluate import EvalContext
from bridge.mapping.peers import PeerRanks
from bridge.mapping.refs import ItemRef, all_item_refs, peer_groups
from bridge.records import Target
from bridge.settings import Settings
from bridge.store import schema as t


def resolve_item(conn: Connection, ref: ItemRef) -> Target | None:
    """A course/program/certification or competency reference to the stored item, or None."""
    if ref.kind == "competency":
        table, id_col, name_col = (
            t.competencies,
            t.competencies.c.competency_id,
            t.competencies.c.shortname,
        )
        query = select(id_col.label("id"), name_col.label("name"), table.c.url).where(
            table.c.site == ref.site
        )
    else:
        table, id_col = t.learning_items, t.learning_items.c.item_id
        query = select(id_col.label("id"), table.c.fullname.label("name"), table.c.url).where(
            table.c.site == ref.site, table.c.kind == ref.kind
        )
    if ref.ref.startswith("id:") and ref.ref[3:].isdigit():
        query = query.where(id_col == int(ref.ref[3:]))
    elif ref.ref.startswith("idnumber:"):
        query = query.where(table.c.idnumber == ref.ref[len("idnumber:") :])
    elif ref.kind == "competency":
        query = query.where((table.c.idnumber == ref.ref) | (table.c.shortname == ref.ref))
    else:
        query = query.where(table.c.shortname == ref.ref)
    row = conn.execute(query.limit(2)).first()
    if row is None:
        return None
    return Target(site=ref.site, kind=ref.kind, item_id=int(row.id), name=row.name or ref.ref, url=row.url)


def _anywhere(aud: m.Audience, test: Callable[[m.Audience], bool]) -> bool:
    """Whether ``test`` holds for the audience or any audience inside it (all, any, not)."""
    subs = [*(aud.all or []), *(aud.any or []), *([aud.not_] if aud.not_ else [])]
    return test(aud) or any(_anywhere(s, test) for s in subs)


def _names_people(aud: m.Audience) -> bool:
    """Whether an audience refers to people by employee number (manager or people filters)."""
    return _anywhere(aud, lambda a: a.manager is not None or a.people is not None)


def names_a_manager(aud: m.Audience) -> bool:
    """Whether who is in the audience depends on people's managers."""
    return _anywhere(aud, lambda a: a.manager is not None)


def build_context(
    conn: Connection, mappings: Iterable[m.Mapping], settings: Settings, now: datetime
) -> EvalContext:
    mappings = list(mappings)
    targets: dict[tuple[str, str, str], Target | None] = {}
    competencies: dict[tuple[str, str], Target | None] = {}
    for ref in sorted(all_item_refs(mappings)):
        resolved = resolve_item(conn, ref)
        if ref.kind == "competency":
            competencies[(ref.site, ref.ref)] = resolved
        else:
            targets[(ref.site, ref.kind, ref.ref)] = resolved
    return replace(
        audience_context(conn, mappings, now),
        metrics=settings.metrics,
        targets=targets,
        competencies=competencies,
        peers=PeerRanks.load(conn, peer_groups(mappings)),
    )


def audience_context(conn: Connection, mappings: Iterable[m.Mapping], now: datetime) -> EvalContext:
    """What deciding who is in the mappings' audiences takes: the day (tenure) and, where an
    audience names people by employee number, the numbers' HR ids."""
    employee_numbers: dict[str, str] = {}
    if any(_names_people(mp.audience) for mp in mappings):
        p = t.people
        query = select(p.c.employee_number, p.c.person_id).where(p.c.employee_number.is_not(None))
        employee_numbers = {row.employee_number: row.person_id for row in conn.execute(query)}
    return EvalContext(now=now, employee_numbers=employee_numbers)
