"""The outbox: every outgoing action is a row with a deterministic idempotency key and a state.

States: ``pending`` (waiting for its due time), ``waiting`` (for an LMS account: the person
is not linked to a user on the target site yet; becomes ``pending`` once linked), ``sending`` (claimed by a worker; outcome not yet
recorded), ``sent``, ``failed`` (last attempt failed, will retry — kept as ``pending`` with
``last_error``), ``dead`` (will not be retried: the reason says why), ``suppressed`` (deliberately
not sent: holdout, no account, guard), ``cancelled`` (no longer wanted: the learner completed,
left, or the recommendation closed).

The key is derived from what the action is for (mapping, person, episode, purpose, channel,
target, step), so creating the same action twice is a no-op: running a cycle again never sends
anything twice. Claims are committed before sending; a row left in ``sending`` by a crash is
reconciled against the outside system before it may be sent again (:mod:`bridge.claims`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from bridge.claims import PURPOSES, owned, owned_each, owned_params
from bridge.ports import ActionKind, DeliveryOutcome, OutcomeStatus, OutgoingAction
from bridge.records import Target
from bridge.store import schema as t
from bridge.store.ingest import upsert_statement


def action_key(
    mapping_id: str,
    person_id: str,
    episode: int,
    purpose: str,
    channel: str,
    target: str,
    step: int | str = 0,
) -> str:
    return f"{mapping_id}/{person_id}/{episode}/{purpose}/{channel}/{target}/{step}"


@dataclass(frozen=True)
class NewAction:
    key: str
    purpose: str
    kind: ActionKind
    site: str
    due_at: datetime
    recommendation_id: int | None = None
    mapping_id: str | None = None
    person_id: str | None = None
    recipient_person_id: str | None = None
    recipient_user_id: int | None = None
    recipient_email: str | None = None
    subject: str = ""
    body_html: str = ""
    body_text: str = ""
    target: Target | None = None
    options: dict[str, Any] | None = None
    state: str = "pending"
    reason: str | None = None


def target_json(target: Target | None) -> dict[str, Any] | None:
    if target is None:
        return None
    return {
        "site": target.site,
        "kind": target.kind,
        "item_id": target.item_id,
        "name": target.name,
        "url": target.url,
    }


def target_from_json(data: dict[str, Any] | None) -> Target | None:
    if not data:
        return None
    return Target(
        site=data["site"],
        kind=data["kind"],
        item_id=int(data["item_id"]),
        name=data.get("name", ""),
        url=data.get("url"),
    )


def enqueue(conn: Connection, actions: Sequence[NewAction], now: datetime) -> int:
    """Insert actions whose key is new; existing keys are left exactly as they are."""
    if not actions:
        return 0
    unknown = sorted({a.purpose for a in actions} - PURPOSES)
    if unknown:  # it would never be claimed (bridge.claims.CLAIM_ORDER)
        raise ValueError(f"actions with purposes outside claims.CLAIM_ORDER: {', '.join(unknown)}")
    rows = [
        {
            "key": a.key,
            "recommendation_id": a.recommendation_id,
            "mapping_id": a.mapping_id,
            "person_id": a.person_id,
            "purpose": a.purpose,
            "kind": a.kind.value,
            "site": a.site,
            "recipient_person_id": a.recipient_person_id,
            "recipient_user_id": a.recipient_user_id,
            "recipient_email": a.recipient_email,
            "subject": a.subject,
            "body_html": a.body_html,
            "body_text": a.body_text,
            "target": target_json(a.target),
            "options": a.options or {},
            "state": a.state,
            "attempts": 0,
            "due_at": a.due_at,
            "last_error": a.reason,
            "created_at": now,
            "updated_at": now,
        }
        for a in actions
    ]
    stmt = upsert_statement(conn, t.actions, ["key"], ["key"])
    inserted = conn.execute(stmt.returning(t.actions.c.id), rows).all()
    return len(inserted)


def cancel_for_recommendation(conn: Connection, recommendation_id: int, reason: str, now: datetime) -> int:
    result = conn.execute(
        update(t.actions)
        .where(
            and_(
                t.actions.c.recommendation_id == recommendation_id,
                t.actions.c.state.in_(("pending", "waiting")),
            )
        )
        .values(state="cancelled", last_error=reason, updated_at=now)
    )
    return result.rowcount or 0


def address_waiting(conn: Connection, now: datetime, site: str | None = None) -> int:
    """Release the actions that waited for an account that is now linked (on ``site``, or any).

    HR records often arrive before the LMS account exists (a new hire, an account created by a
    nightly sync). The recommendation stays open; once the account is linked its actions become
    due, and the delivery guards still check staleness and the sending window as for any other.
    One set-based statement, run when links change and again before every delivery, so an
    action queued as waiting while another replica was linking its account is never stranded.
    """
    a, i = t.actions, t.identities
    account = (
        select(i.c.user_id)
        .where(and_(i.c.person_id == a.c.recipient_person_id, i.c.site == a.c.site))
        .scalar_subquery()
    )
    condition = and_(a.c.state == "waiting", account.is_not(None))
    if site is not None:
        condition = and_(condition, a.c.site == site)
    result = conn.execute(
        update(a)
        .where(condition)
        .values(state="pending", recipient_user_id=account, last_error=None, updated_at=now)
    )
    return result.rowcount or 0


def wait_for_account(conn: Connection, condition: Any, reason: str, now: datetime) -> int:
    """Set the actions matching ``condition`` waiting for their person's account, the one they
    carried cleared; :func:`address_waiting` gives them the account of now. Returns how many."""
    a = t.actions
    result = conn.execute(
        update(a)
        .where(condition)
        .values(state="waiting", recipient_user_id=None, last_error=reason, updated_at=now)
    )
    return result.rowcount or 0


def _step(key: str) -> int:
    tail = key.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _follow_up_group(row: Any) -> tuple[Any, ...]:
    """Reminders of one recommendation; reinforcements of one completion (whichever mapping)."""
    if row.purpose == "reminder":
        return ("reminder", row.kind, row.recommendation_id)
    target = (row.target or {}).get("site"), (row.target or {}).get("kind"), (row.target or {}).get("item_id")
    return ("reinforcement", row.kind, row.recipient_person_id, target, row.completed_at)


def supersede(conn: Connection, now: datetime) -> int:
    """Cancel the follow-ups a later one makes redundant, with the reason; returns how many.

    Of several reminders for one recommendation only the latest goes (and none while the
    recommendation itself has not gone out); repeated reinforcements for one completion collapse
    to the latest step. One pass over what is pending, run before every delivery.
    """
    a, r = t.actions, t.recommendations
    columns = (
        a.c.id,
        a.c.key,
        a.c.purpose,
        a.c.kind,
        a.c.state,
        a.c.recommendation_id,
        a.c.recipient_person_id,
        a.c.target,
        r.c.completed_at,
    )
    joined = a.outerjoin(r, r.c.id == a.c.recommendation_id)
    kinds = a.c.kind.in_(("message", "email"))
    pending = list(
        conn.execute(
            select(*columns)
            .select_from(joined)
            .where(and_(a.c.state == "pending", kinds, a.c.purpose.in_(("reminder", "reinforcement"))))
        )
    )
    if not pending:
        return 0
    rec_ids = sorted({p.recommendation_id for p in pending if p.recommendation_id})
    people = sorted({p.recipient_person_id for p in pending if p.recipient_person_id})
    others = conn.execute(
        select(*columns)
        .select_from(joined)
        .where(
            and_(
                kinds,
                or_(
                    and_(a.c.state == "sent", a.c.purpose == "reminder", a.c.recommendation_id.in_(rec_ids)),
                    and_(
                        a.c.state == "sent",
                        a.c.purpose == "reinforcement",
                        a.c.recipient_person_id.in_(people),
                    ),
                ),
            )
        )
    )
    unsent_recommend = {
        (row.recommendation_id, row.kind)
        for row in conn.execute(
            select(a.c.recommendation_id, a.c.kind).where(
                and_(
                    a.c.purpose == "recommend",
                    a.c.state.in_(("pending", "waiting")),
                    kinds,
                    a.c.recommendation_id.in_(rec_ids),
                )
            )
        )
    }
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in [*pending, *others]:
        groups.setdefault(_follow_up_group(row), []).append(row)
    cancelled: dict[int, str] = {}
    for members in groups.values():
        best = max(members, key=lambda x: (_step(x.key), x.id))
        done = "was already sent" if best.state == "sent" else f"(action {best.id}) goes instead"
        for row in members:
            if row.state != "pending":
                continue
            if row.purpose == "reminder" and (row.recommendation_id, row.kind) in unsent_recommend:
                cancelled[row.id] = "superseded: the recommendation itself has not gone out yet"
            elif row is not best:
                cancelled[row.id] = f"superseded: the day-{_step(best.key)} {best.purpose} {done}"
    for action_id, reason in cancelled.items():
        conn.execute(
            update(a)
            .where(and_(a.c.id == action_id, a.c.state == "pending"))
            .values(state="cancelled", last_error=reason, updated_at=now)
        )
    return len(cancelled)


def to_outgoing(row: Any) -> OutgoingAction:
    return OutgoingAction(
        key=row.key,
        kind=ActionKind(row.kind),
        site=row.site,
        recipient_user_id=row.recipient_user_id,
        recipient_email=row.recipient_email,
        subject=row.subject,
        body_html=row.body_html,
        body_text=row.body_text,
        target=target_from_json(row.target),
        options=row.options or {},
    )


def backoff(attempts: int, base: float, cap: float) -> timedelta:
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    cap_seconds: float


def _outcome_values(row: Any, outcome: DeliveryOutcome, now: datetime, policy: RetryPolicy) -> dict[str, Any]:
    """What storing ``outcome`` writes about the claimed ``row``."""
    if outcome.status is OutcomeStatus.SENT:
        values: dict[str, Any] = {
            "state": "sent",
            "sent_at": now,
            "external_id": outcome.external_id,
            "last_error": None,
        }
    elif outcome.status is OutcomeStatus.DEAD:
        values = {"state": "dead", "last_error": outcome.error}
    elif outcome.status is OutcomeStatus.SKIPPED:
        values = {"state": "suppressed", "last_error": outcome.error}
    elif outcome.status is OutcomeStatus.UNKNOWN:
        # Left claimed: the next delivery run reconciles it with the site before any resend.
        values = {
            "state": "sending",
            "last_error": f"outcome unknown, to be checked on the site: {outcome.error}",
        }
    elif row.attempts >= policy.max_attempts:
        values = {
            "state": "dead",
            "last_error": f"gave up after {row.attempts} attempts: {outcome.error}",
        }
    else:
        delay = backoff(row.attempts, policy.base_seconds, policy.cap_seconds)
        values = {"state": "pending", "due_at": now + delay, "last_error": outcome.error}
    if values["state"] != "sending":
        values["claim_token"] = None
    values["updated_at"] = now
    return values


def record(conn: Connection, row: Any, outcome: DeliveryOutcome, now: datetime, policy: RetryPolicy) -> str:
    """Store a delivery outcome; returns the new state, or ``lost`` if another worker holds the
    claim now (the outcome is not recorded over theirs)."""
    (state,) = record_many(conn, [(row, outcome)], now, policy)
    return state


def record_many(
    conn: Connection,
    outcomes: Sequence[tuple[Any, DeliveryOutcome]],
    now: datetime,
    policy: RetryPolicy,
) -> list[str]:
    """Store the outcomes of a batch, as :func:`record` each: the new state per row, in order.

    One read finds the rows still carrying their claim (locked on PostgreSQL until the caller
    commits, so no other worker can take them meanwhile), then one executemany per shape of
    outcome (all sent, all retried, ...) writes them: a batch of 100 costs a few statements, not
    100 round trips.
    """
    if not outcomes:
        return []
    a = t.actions
    ids = sorted({row.id for row, _ in outcomes})
    held = select(a.c.id, a.c.claim_token).where(a.c.id.in_(ids))
    if conn.dialect.name == "postgresql":
        held = held.with_for_update()
    tokens = {r.id: r.claim_token for r in conn.execute(held)}
    states: list[str] = []
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row, outcome in outcomes:
        if row.id not in tokens or tokens[row.id] != row.claim_token:
            states.append("lost")
            continue
        values = _outcome_values(row, outcome, now, policy)
        tokens.pop(row.id)  # a row is written once, as one UPDATE each would find it
        by_shape.setdefault(tuple(sorted(values)), []).append(
            {**{f"v_{k}": v for k, v in values.items()}, **owned_params(row)}
        )
        states.append(str(values["state"]))
    for shape, params in by_shape.items():
        conn.execute(
            update(a).where(owned_each()).values({k: bindparam(f"v_{k}") for k in shape}),
            params,
        )
    return states


def _give_back(conn: Connection, row: Any, now: datetime, **values: Any) -> None:
    """Write about a claimed row and end the claim, the attempt not counted (nothing was sent)."""
    a = t.actions
    conn.execute(
        update(a)
        .where(owned(row))
        .values(claim_token=None, attempts=a.c.attempts - 1, updated_at=now, **values)
    )


def release(conn: Connection, row: Any, error: str, due_at: datetime, now: datetime) -> None:
    """Give a claimed action back to the queue, due again at ``due_at``."""
    _give_back(conn, row, now, state="pending", due_at=due_at, last_error=error)


def hold_for_account(conn: Connection, row: Any, reason: str, now: datetime) -> None:
    """Give a claimed action back to wait for its person's account (the one it carried belongs
    to someone else now); :func:`address_waiting` addresses it again before the next delivery."""
    _give_back(conn, row, now, state="waiting", recipient_user_id=None, last_error=reason)


def store_rendered(conn: Connection, rendered: Sequence[tuple[Any, Any]], now: datetime) -> None:
    """Keep the bodies rendered at send time: ``(row, body)`` pairs, a body with subject, html and
    text. One executemany for the batch; a row whose claim was lost is left alone."""
    if not rendered:
        return
    a = t.actions
    conn.execute(
        update(a)
        .where(owned_each())
        .values(subject=bindparam("v_subject"), body_html=bindparam("v_html"), body_text=bindparam("v_text"))
        .values(updated_at=now),
        [
            {**owned_params(row), "v_subject": body.subject, "v_html": body.html, "v_text": body.text}
            for row, body in rendered
        ],
    )


def finish(conn: Connection, row: Any, state: str, reason: str, now: datetime) -> None:
    """Close a claimed action without sending it (suppressed or cancelled by a guard)."""
    _give_back(conn, row, now, state=state, last_error=reason)


def counts_by_state(conn: Connection) -> dict[str, int]:
    a = t.actions
    return {
        r.state: r.n for r in conn.execute(select(a.c.state, func.count().label("n")).group_by(a.c.state))
    }
