"""Who the mappings' audiences hold, for a site's pull scope (bridge.cycle.scope_for).

Deciding it evaluates every active person against every audience, which is most of a steady
cycle's cost when nothing about people changed. The answer depends only on the people data,
the managers the LMS names and the accounts that link them (``version:people`` and
``version:managers`` in the control table, bumped by whatever writes them), the day (tenure)
and the audiences themselves; it is kept per process for exactly those. Open recommendations
are read every time: they change every cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, and_, select

from bridge import clock
from bridge.facts import Facts, iter_active_people
from bridge.kept import Kept, store_of
from bridge.mapping import model as m
from bridge.mapping.context import audience_context, names_a_manager
from bridge.mapping.evaluate import audience
from bridge.store import schema as t
from bridge.store.ingest import version

_members: Kept[frozenset[str]] = Kept()


def audience_members(engine: Engine, mappings: Sequence[m.Mapping]) -> frozenset[str]:
    """Who the mappings' audiences hold, decided as the evaluation decides it (the same managers,
    employee numbers and day), and who has an open recommendation of theirs."""
    r = t.recommendations
    with engine.connect() as conn:
        audiences = tuple((mp.id, mp.audience.model_dump_json()) for mp in mappings)
        held = _members.get(
            (store_of(engine), audiences), _version(conn, mappings), lambda: _in_audiences(conn, mappings)
        )
        ids = [mp.id for mp in mappings]
        open_ones = conn.execute(
            select(r.c.person_id).where(and_(r.c.state == "open", r.c.mapping_id.in_(ids)))
        ).scalars()
        return held | frozenset(open_ones)


def _in_audiences(conn: Connection, mappings: Sequence[m.Mapping]) -> frozenset[str]:
    ctx = audience_context(conn, mappings, clock.now())
    return frozenset(
        person.person_id
        for person in iter_active_people(conn)
        if any(audience(mp.audience, Facts(person), ctx, explain=False).ok for mp in mappings)
    )


def _version(conn: Connection, mappings: Sequence[m.Mapping]) -> tuple[object, ...] | None:
    """What the answer depends on besides the audiences; None (not kept) while the people data
    has no version yet."""
    people = version(conn, "people")
    if people is None:
        return None
    managers = version(conn, "managers") if any(names_a_manager(mp.audience) for mp in mappings) else ""
    return (people, managers, clock.now().date())
