"""Checks made right before anything is sent, on every action whatever created it.

- The kill switch (``lmsbridge pause`` or ``delivery.paused``) stops all delivery.
- Opt-outs, per person and per mapping, suppress the action.
- Stale actions are cancelled with the reason: the recommendation closed, the person left, or
  their account was suspended since the action was queued; anything else no longer true now
  (the item completed since, the completion gone, too old to send) — see :mod:`bridge.truth`.
- A per-person cap (learner messages per 7 days, across all mappings) defers, never drops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from bridge import locks, truth
from bridge.operational_state import pause_state
from bridge.settings import Settings
from bridge.store import schema as t
from bridge.timing import next_send_time, zone

LEARNER_PURPOSES = ("recommend", "reminder", "reinforcement")
CAP_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Verdict:
    row: Any
    state: str  # "send", "suppressed", "cancelled", "dead", "deferred" or "waiting" (for the right account)
    reason: str | None = None
    until: datetime | None = None


def paused(conn: Connection, settings: Settings) -> bool:
    return pause_state(conn, settings.delivery).paused


def screen(
    conn: Connection,
    rows: Sequence[Any],
    settings: Settings,
    now: datetime,
    current: truth.StateOfNow | None = None,
) -> list[Verdict]:
    """A verdict for each claimed action, in order (claim puts new recommendations first, so
    under the per-person cap they go before reinforcement and reminders)."""
    people = {r.recipient_person_id for r in rows if r.recipient_person_id}
    opted = opt_outs(conn, people)
    active = _active(conn, people)
    usable = _usable_accounts(conn, [(r.site, r.recipient_user_id) for r in rows if r.recipient_user_id])
    rec_state = _recommendation_states(conn, {r.recommendation_id for r in rows if r.recommendation_id})
    current = current if current is not None else truth.load(conn, rows)
    cap = settings.delivery.cap_per_week
    capped = {r.recipient_person_id for r in rows if r.recipient_person_id and _counts_for_cap(r)}
    if cap:
        locks.for_each_until_commit(conn, "cap", capped)
    sent_recently, oldest = _recent_learner_messages(conn, capped, now, {r.id for r in rows})
    verdicts = []
    for row in rows:
        person = row.recipient_person_id
        if (person and ("*", person) in opted) or (row.mapping_id, person) in opted:
            verdicts.append(Verdict(row, "suppressed", "the person opted out"))
        elif person and not active.get(person, True):
            verdicts.append(Verdict(row, "cancelled", "the person has left the organisation"))
        elif row.recipient_user_id and not usable.get((row.site, row.recipient_user_id), True):
            verdicts.append(
                Verdict(row, "cancelled", f"the account on site '{row.site}' is suspended or deleted")
            )
        elif row.purpose in truth.OPEN_PURPOSES and rec_state.get(row.recommendation_id, "open") != "open":
            verdicts.append(Verdict(row, "cancelled", "the recommendation is no longer open"))
        elif (moved := truth.changed_hands(row, current)) is not None:
            verdicts.append(Verdict(row, "waiting", moved))
        elif (
            untrue := truth.too_old(row, settings, now) or truth.no_longer_true(row, current, now)
        ) is not None:
            verdicts.append(Verdict(row, "cancelled", untrue))
        elif (opens := _window_opens(row, now)) is not None:
            verdicts.append(Verdict(row, "deferred", "outside the recipient's sending hours", opens))
        elif cap and _counts_for_cap(row) and sent_recently[person] >= cap:
            until = (oldest.get(person) or now) + CAP_WINDOW
            verdicts.append(Verdict(row, "deferred", f"weekly cap of {cap} messages reached", until))
        else:
            if _counts_for_cap(row) and person:
                sent_recently[person] += 1
                oldest.setdefault(person, now)
            verdicts.append(Verdict(row, "send"))
    return verdicts


def window_options(days: Sequence[str], hours: str, tz: str) -> dict[str, Any]:
    """What an action carries so its sending hours are re-checked whenever it is due."""
    return {"window": {"days": list(days), "hours": hours, "tz": tz}}


def _window_opens(row: Any, now: datetime) -> datetime | None:
    window = (row.options or {}).get("window")
    if not window:
        return None
    start, end = (
        time.fromisoformat(x) if x != "24:00" else time(23, 59, 59) for x in window["hours"].split("-")
    )
    opens = next_send_time(now, window["days"], start, end, zone(window["tz"]))
    return None if opens <= now else opens


def opt_outs(conn: Connection, people: set[str]) -> set[tuple[str, str]]:
    """(mapping id or ``*``, person id) of each opt-out of ``people``."""
    if not people:
        return set()
    o = t.opt_outs
    rows = conn.execute(select(o.c.mapping_id, o.c.person_id).where(o.c.person_id.in_(sorted(people))))
    return {(r.mapping_id, r.person_id) for r in rows}


def _active(conn: Connection, people: set[str]) -> dict[str, bool]:
    if not people:
        return {}
    p = t.people
    return {
        r.person_id: r.active
        for r in conn.execute(select(p.c.person_id, p.c.active).where(p.c.person_id.in_(sorted(people))))
    }


def _usable_accounts(conn: Connection, accounts: list[tuple[str, int]]) -> dict[tuple[str, int], bool]:
    if not accounts:
        return {}
    u = t.lms_users
    conditions = [and_(u.c.site == site, u.c.user_id == uid) for site, uid in set(accounts)]
    rows = conn.execute(select(u.c.site, u.c.user_id, u.c.suspended, u.c.deleted).where(or_(*conditions)))
    return {(r.site, r.user_id): not (r.suspended or r.deleted) for r in rows}


def _recommendation_states(conn: Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    r = t.recommendations
    return {
        row.id: row.state for row in conn.execute(select(r.c.id, r.c.state).where(r.c.id.in_(sorted(ids))))
    }


def _counts_for_cap(row: Any) -> bool:
    return row.purpose in LEARNER_PURPOSES and row.kind in ("message", "email")


def _recent_learner_messages(
    conn: Connection, people: set[str], now: datetime, batch: set[int]
) -> tuple[Counter[str], dict[str, datetime]]:
    """Learner messages per person sent in the cap window, or being sent by another worker now
    (claimed outside ``batch``): a message in flight uses up its slot too."""
    if not people:
        return Counter(), {}
    a = t.actions
    in_flight = and_(a.c.state == "sending", a.c.id.not_in(sorted(batch)))
    rows = conn.execute(
        select(a.c.recipient_person_id, func.count().label("n"), func.min(a.c.sent_at).label("oldest"))
        .where(
            and_(
                a.c.recipient_person_id.in_(sorted(people)),
                or_(and_(a.c.state == "sent", a.c.sent_at > now - CAP_WINDOW), in_flight),
                a.c.purpose.in_(LEARNER_PURPOSES),
                a.c.kind.in_(("message", "email")),
            )
        )
        .group_by(a.c.recipient_person_id)
    )
    counts: Counter[str] = Counter()
    oldest: dict[str, datetime] = {}
    for row in rows:
        counts[row.recipient_person_id] = row.n
        oldest[row.recipient_person_id] = t.UtcDateTime().process_result_value(row.oldest, conn.dialect)  # type: ignore[assignment]
    return counts, oldest
