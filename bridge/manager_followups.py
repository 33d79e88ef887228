"""Follow-ups for the learner's manager: escalation, the observe prompt and the copy of a new
recommendation.

Each goes as a line of the manager's daily digest (:mod:`bridge.followups` builds it when it is
sent) unless the mapping has its own template for it: then that template is a message of its
own to the manager, rendered again when it is sent and checked like every message
(:mod:`bridge.truth`). A template the administrator wrote is never silently left unused.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from bridge import compose
from bridge.act import sending_slot
from bridge.facts import Facts
from bridge.mapping import model as m
from bridge.mapping import templates
from bridge.outbox import NewAction, action_key
from bridge.ports import ActionKind
from bridge.records import Person, Target
from bridge.settings import Settings
from bridge.store import schema as t
from bridge.store.ingest import upsert_statement

# The channel part of a manager message's key: one message whichever channel it takes, so a
# manager who gains an LMS account after an email was queued is not told twice.
TO_MANAGER = "manager"


# An action that is a recommendation's message to its learner, sent.
RECOMMEND_SENT = (
    t.actions.c.purpose == "recommend",
    t.actions.c.kind.in_(("message", "email")),
    t.actions.c.state == "sent",
)


def recommendations_sent(conn: Connection, rec_ids: list[int]) -> set[int]:
    """The recommendations among ``rec_ids`` whose recommend message reached the learner."""
    if not rec_ids:
        return set()
    a = t.actions
    query = select(a.c.recommendation_id).where(a.c.recommendation_id.in_(rec_ids), *RECOMMEND_SENT)
    return set(conn.execute(query).scalars())


def to_manager(
    conn: Connection,
    mapping: m.Mapping,
    rec: Any,
    target: Target,
    facts: Facts,
    manager: Person,
    purpose: m.MessageKind,
    day: int,
    digest_text: str,
    settings: Settings,
    now: datetime,
) -> list[NewAction]:
    """A manager follow-up: the mapping's own template for it as a message of its own, or,
    without one, a line of the manager's daily digest (built from the state of when it is sent)."""
    template = templates.own_template(mapping, purpose, manager.locale)
    if template is None:
        digest_item(conn, manager.person_id, rec.id, purpose, digest_text, now)
        return []
    # The mapping's own template: a message to the manager, rendered again when sent.
    person = facts.person
    account = manager_account(conn, manager, [target.site])
    kind = ActionKind.MESSAGE if account else ActionKind.EMAIL
    state, reason = "pending", None
    if account is None and not manager.email:
        state, reason = "suppressed", "the manager has no LMS account on the site or email to send to"
    context = compose.context_values(
        person=person,
        manager=manager,
        target=target,
        mapping_id=mapping.id,
        mapping_title=mapping.title,
        due_in_days=mapping.follow_up.due_in_days,
        reason=compose.reason_of(rec.explanation, mapping.messages.show_peer_rank, to_manager=True),
        opened=rec.opened_at,
        now=now,
        tz=manager.timezone,
        completed=rec.completed_at,
        step=day,
    )
    try:
        rendered = templates.render(template, context)  # a draft: delivery renders it again when sent
    except templates.TemplateFailed as exc:
        rendered = templates.Rendered("", "", "")
        state, reason = "dead", compose.template_failed(mapping.id, purpose, exc, person=person.person_id)
    send_at, window = sending_slot(mapping.schedule, manager.timezone, settings, now)
    return [
        NewAction(
            key=action_key(mapping.id, person.person_id, rec.episode, purpose, TO_MANAGER, target.key, day),
            purpose=purpose,
            kind=kind,
            site=account[0] if account else "email",
            due_at=send_at,
            recommendation_id=rec.id,
            mapping_id=mapping.id,
            person_id=person.person_id,
            recipient_person_id=manager.person_id,
            recipient_user_id=account[1] if account else None,
            recipient_email=manager.email,
            subject=rendered.subject,
            body_html=rendered.html,
            body_text=rendered.text,
            target=target,
            options={**window, "render": compose.render_spec(template, purpose, mapping, day)},
            state=state,
            reason=reason,
        )
    ]


def manager_copy(
    conn: Connection,
    mapping: m.Mapping,
    rec: Any,
    target: Target,
    facts: Facts,
    manager: Person | None,
    reason: str,
    settings: Settings,
    now: datetime,
) -> list[NewAction]:
    """The manager's copy of a recommendation the learner has been sent (once per episode); with
    no manager to send it to, the copy is recorded as not sent, with the reason."""
    person = facts.person
    if manager is None or not manager.active:
        why = (
            f"{person.full_name} has no manager in the HR record"
            if not person.manager_id
            else f"{person.full_name}'s manager is not in the HR record or has left"
        )
        key = action_key(mapping.id, person.person_id, rec.episode, "manager_copy", TO_MANAGER, target.key)
        return [
            NewAction(
                key=key,
                purpose="manager_copy",
                kind=ActionKind.MESSAGE,
                site=target.site,
                due_at=now,
                recommendation_id=rec.id,
                mapping_id=mapping.id,
                person_id=person.person_id,
                target=target,
                state="suppressed",
                reason=f"no manager copy: {why}",
            )
        ]
    text = f"{person.full_name} was recommended {target.name}. Why: {reason}."
    return to_manager(conn, mapping, rec, target, facts, manager, "manager_copy", 0, text, settings, now)


def digest_item(conn: Connection, manager_id: str, rec_id: int, kind: str, text: str, now: datetime) -> None:
    stmt = upsert_statement(
        conn, t.digest_items, ["recommendation_id", "kind"], ["recommendation_id", "kind"]
    )
    conn.execute(
        stmt,
        {
            "manager_id": manager_id,
            "recommendation_id": rec_id,
            "kind": kind,
            "text": text,
            "created_at": now,
        },
    )


def manager_account(conn: Connection, manager: Person, sites: Iterable[str]) -> tuple[str, int] | None:
    i, u = t.identities, t.lms_users
    for site in sites:
        row = conn.execute(
            select(i.c.user_id, u.c.suspended, u.c.deleted)
            .select_from(i.outerjoin(u, and_(u.c.site == i.c.site, u.c.user_id == i.c.user_id)))
            .where(and_(i.c.person_id == manager.person_id, i.c.site == site))
        ).first()
        if row is not None and not (row.suspended or row.deleted):
            return site, int(row.user_id)
    return None
