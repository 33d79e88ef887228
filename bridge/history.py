"""One person's history: every recommendation, action and follow-up, with its state and reason.

``lmsbridge why PERSON`` prints it and the dashboard's person page shows it, so both read the
same rows and word the same "why".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, or_, select

from bridge.facts import person_id_of
from bridge.store import schema as t


@dataclass(frozen=True)
class PersonHistory:
    person_id: str
    recommendations: list[Any]  # rows of t.recommendations, oldest first
    actions: list[Any]  # rows of t.actions about or to the person, oldest first


def person_history(conn: Connection, ref: str) -> PersonHistory:
    """The history of the person with this HR id or employee number (BridgeError if unknown)."""
    person_id = person_id_of(conn, ref)
    r, a = t.recommendations, t.actions
    recs = list(conn.execute(select(r).where(r.c.person_id == person_id).order_by(r.c.opened_at, r.c.id)))
    actions = list(
        conn.execute(
            select(a)
            .where(or_(a.c.person_id == person_id, a.c.recipient_person_id == person_id))
            .order_by(a.c.created_at, a.c.id)
        )
    )
    return PersonHistory(person_id, recs, actions)


def recommendation_state(rec: Any) -> str:
    return str(rec.state) + (" (holdout)" if rec.holdout else "")


def recommendation_why(rec: Any) -> str:
    """The facts that opened a recommendation, and why it closed."""
    facts = "; ".join(rec.explanation.get("facts", []))
    return facts + (f" | closed: {rec.close_reason}" if rec.close_reason else "")
