"""Is a message still true when it is about to leave? Checked against the store as it is now.

A recommendation or reminder goes only while its recommendation is open and the learning has not
been completed since; a reminder only while the learner is still enrolled (where the site's
enrolments are known); a reinforcement only while the completion it celebrates still stands and
no new recommendation for the same learning has opened. A message to the manager (a mapping's own
escalation, observe or manager-copy template) needs the same, and its recipient still to be the
learner's manager. Anything older than ``delivery.max_age_days`` for its purpose (messages to
managers: the ``digest`` limit) is dropped rather than arriving late. Each refusal
is a plain sentence, stored as the action's reason (``lmsbridge why`` shows it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from bridge.facts import NO_KPIS, Facts, iter_facts
from bridge.outbox import target_from_json
from bridge.settings import Settings
from bridge.store import schema as t

MESSAGE_KINDS = ("message", "email")
# Messages to the learner's manager (from a mapping's own template); they need the same truths as
# the learner's messages about the same recommendation, and the recipient still their manager.
MANAGER_PURPOSES = ("escalation", "observe", "manager_copy")
OPEN_PURPOSES = ("recommend", "reminder", "escalation", "manager_copy")  # true while it is open
# Purposes without a max_age_days entry of their own use that of another purpose.
AGE_LIMIT_OF = {"escalation": "digest", "observe": "digest", "manager_copy": "digest"}


@dataclass
class StateOfNow:
    """What the store says now about the people and recommendations of a batch of actions."""

    recommendations: dict[int, Any] = field(default_factory=dict)
    facts: dict[str, Facts] = field(default_factory=dict)
    open_episodes: dict[tuple[str, str], int] = field(default_factory=dict)  # newest open rec id
    unenrolled: set[tuple[str, int, int]] = field(default_factory=set)  # (site, user, course)
    links: set[tuple[str, str, int]] = field(default_factory=set)  # (site, person, user) of the rows


def load(conn: Connection, rows: Sequence[Any]) -> StateOfNow:
    state = StateOfNow()
    state.links = _links(conn, rows)
    rec_ids = sorted({r.recommendation_id for r in rows if r.recommendation_id})
    people = sorted({r.person_id for r in rows if r.person_id})
    if not rec_ids and not people:
        return state
    r = t.recommendations
    if rec_ids:
        state.recommendations = {x.id: x for x in conn.execute(select(r).where(r.c.id.in_(rec_ids)))}
    if people:
        state.facts = {f.person.person_id: f for f in iter_facts(conn, people, NO_KPIS)}
        for row in conn.execute(
            select(r.c.id, r.c.mapping_id, r.c.person_id).where(
                and_(r.c.state == "open", r.c.person_id.in_(people))
            )
        ):
            key = (row.mapping_id, row.person_id)
            state.open_episodes[key] = max(row.id, state.open_episodes.get(key, 0))
        e, i = t.enrolments, t.identities
        for row in conn.execute(
            select(e.c.site, e.c.user_id, e.c.item_id)
            .select_from(e.join(i, and_(i.c.site == e.c.site, i.c.user_id == e.c.user_id)))
            .where(and_(i.c.person_id.in_(people), e.c.active.is_(False)))
        ):
            state.unenrolled.add((row.site, int(row.user_id), int(row.item_id)))
    return state


def _links(conn: Connection, rows: Sequence[Any]) -> set[tuple[str, str, int]]:
    """The stored links touching the recipients of ``rows``: their people or their accounts."""
    addressed = [r for r in rows if r.recipient_user_id is not None and r.recipient_person_id]
    if not addressed:
        return set()
    i = t.identities
    people = sorted({r.recipient_person_id for r in addressed})
    users = sorted({int(r.recipient_user_id) for r in addressed})
    found = conn.execute(
        select(i.c.site, i.c.person_id, i.c.user_id).where(
            or_(i.c.person_id.in_(people), i.c.user_id.in_(users))
        )
    )
    return {(x.site, x.person_id, int(x.user_id)) for x in found}


def changed_hands(row: Any, state: StateOfNow) -> str | None:
    """Why the account an action is addressed to is not its person's any more, or None.

    Linking re-addresses queued actions when accounts move between people (bridge.identity), but
    a row already claimed when that happens still carries the old account. Without any link for
    the person or the account nothing is known to have changed, and the row goes as addressed.
    """
    if row.recipient_user_id is None or not row.recipient_person_id:
        return None
    user, person = int(row.recipient_user_id), row.recipient_person_id
    mine = {(s, p, u) for s, p, u in state.links if s == row.site and (p == person or u == user)}
    if not mine or (row.site, person, user) in mine:
        return None
    return (
        f"held: account {user} on site '{row.site}' is no longer linked to this person "
        "(the accounts were relinked after it was queued); it goes to their account of now"
    )


def too_old(row: Any, settings: Settings, now: datetime) -> str | None:
    limit = AGE_LIMIT_OF.get(row.purpose, row.purpose)
    days = settings.delivery.max_age_days.get(limit, 0)
    if row.kind not in MESSAGE_KINDS or not days or row.created_at > now - timedelta(days=days):
        return None
    setting = "delivery.max_age_days" if limit == row.purpose else f"delivery.max_age_days, {limit}"
    return (
        f"dropped unsent: queued {row.created_at:%Y-%m-%d}, older than the {days}-day limit "
        f"for {row.purpose} messages ({setting})"
    )


def no_longer_true(row: Any, state: StateOfNow, now: datetime) -> str | None:
    """Why this action would contradict the store now, or None when it is still true (an
    account that changed hands is not a contradiction: the guards hold the row, see
    :func:`changed_hands`)."""
    rec = state.recommendations.get(row.recommendation_id) if row.recommendation_id else None
    target = target_from_json(row.target)
    facts = state.facts.get(row.person_id or "")
    if rec is None or target is None or facts is None:
        return None
    done = facts.completions.get((target.site, target.kind, target.item_id))
    if row.purpose in MANAGER_PURPOSES and facts.person.manager_id != row.recipient_person_id:
        return f"the recipient is no longer {facts.person.full_name}'s manager"
    if row.purpose in OPEN_PURPOSES:
        if rec.state != "open":
            return "the recommendation is no longer open"
        if done is not None and done >= rec.opened_at:
            return f"{target.name} was completed on {done:%Y-%m-%d}, after it was recommended"
        account = facts.accounts.get(target.site)
        if (
            row.purpose == "reminder"
            and target.kind == "course"
            and account is not None
            and (target.site, account.user_id, target.item_id) in state.unenrolled
        ):
            return f"the learner is no longer enrolled in {target.name}"
    elif row.purpose in ("reinforcement", "observe"):
        if rec.state != "closed" or rec.completed_at is None:
            return "the recommendation was not closed by a completion"
        if done is None:
            return f"the completion of {target.name} is no longer recorded on site '{target.site}'"
        renewal = facts.renewals.get((target.site, target.item_id))
        if renewal is not None and renewal.expires_at is not None and renewal.expires_at <= now:
            return f"the certification {target.name} has expired since it was completed"
        newer = state.open_episodes.get((rec.mapping_id, rec.person_id), 0)
        if newer > rec.id:
            return f"{target.name} has been recommended again since it was completed"
    return None
