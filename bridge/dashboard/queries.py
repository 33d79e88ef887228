"""What the dashboard pages show, read from the store in a few grouped queries per page.

Nothing here writes. Counts are grouped in SQL so a page costs the same whether the store holds
a hundred recommendations or a million; only the "recent" lists fetch rows, and they are capped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from bridge import impact
from bridge.health import Health
from bridge.log import redact_text
from bridge.mapping.loader import MappingSet
from bridge.operational_state import DEFERRED_PREFIX
from bridge.outbox import counts_by_state
from bridge.store import schema as t

RECENT_FAILURES = 50
QUEUED_SHOWN = 50
# A date, with a time and zone if given, inside a reason: reasons are grouped without them, so
# "dropped unsent: queued 2026-05-03, ..." and "... queued 2026-05-04, ..." are one group.
DATE_IN_REASON = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}| UTC)?)?"
)
# Outbox states in the order an action moves through them; unknown states sort after these.
STATE_ORDER = ("waiting", "pending", "sending", "sent", "suppressed", "cancelled", "dead")


@dataclass(frozen=True)
class SourceStatus:
    name: str
    kind: str  # "site", "feed" or "stage"
    status: str  # "ok", "failing", "resting" (circuit breaker open) or "not run yet"
    last_success_at: datetime | None
    consecutive_failures: int
    last_error: str | None
    resting_until: datetime | None


@dataclass(frozen=True)
class JobRun:
    job: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None
    next_run_at: datetime | None
    worker: str | None

    @property
    def seconds(self) -> float | None:
        """How long the last finished run took; None while it runs or before it ever ran."""
        if self.last_started_at is None or self.last_finished_at is None:
            return None
        if self.last_finished_at < self.last_started_at:
            return None
        return (self.last_finished_at - self.last_started_at).total_seconds()


@dataclass
class MappingSummary:
    mapping_id: str
    title: str
    enabled: bool
    configured: bool  # False for a mapping whose file was removed but whose history is stored
    metric: str | None
    open: int = 0  # open recommendations outside the holdout
    open_holdout: int = 0
    actions: dict[str, int] = field(default_factory=dict)

    @property
    def actions_by_state(self) -> list[tuple[str, int]]:
        return in_lifecycle_order(self.actions)

    @property
    def dead(self) -> int:
        return self.actions.get("dead", 0)


@dataclass(frozen=True)
class ActionRow:
    """What the outbox page shows of any action: which one, about whom, what and where."""

    id: int
    mapping_id: str | None
    person_id: str | None  # the recipient where it has one (a manager), else the learner
    purpose: str
    kind: str
    site: str

    @staticmethod
    def fields(row: Any) -> dict[str, Any]:
        """These fields from a row of ``t.actions``."""
        return {
            "id": row.id,
            "mapping_id": row.mapping_id,
            "person_id": row.recipient_person_id or row.person_id,
            "purpose": row.purpose,
            "kind": row.kind,
            "site": row.site,
        }


@dataclass(frozen=True)
class FailedAction(ActionRow):
    state: str
    attempts: int
    error: str
    updated_at: datetime
    due_at: datetime


@dataclass(frozen=True)
class Reason:
    state: str
    reason: str
    count: int


def sources(
    names: list[str], kinds: dict[str, str], health: list[Health], now: datetime
) -> list[SourceStatus]:
    """Configured sources first (in pull order, including those never run), then any stage."""
    by_name = {h.name: h for h in health}
    listed = [*names, *(h.name for h in health if h.name not in names)]
    result = []
    for name in listed:
        h = by_name.get(name)
        resting = h.open_until() if h else None
        if h is None or (h.last_success_at is None and h.last_error_at is None):
            status = "not run yet"
        elif resting is not None and resting > now:
            status = "resting"
        elif h.consecutive_failures:
            status = "failing"
        else:
            status = "ok"
        result.append(
            SourceStatus(
                name=name,
                kind=kinds.get(name, "stage"),
                status=status,
                last_success_at=h.last_success_at if h else None,
                consecutive_failures=h.consecutive_failures if h else 0,
                last_error=redact_text(h.last_error)
                if h and h.last_error and h.consecutive_failures
                else None,
                resting_until=resting if status == "resting" else None,
            )
        )
    return result


def job_runs(conn: Connection) -> list[JobRun]:
    j = t.job_runs
    return [
        JobRun(r.job, r.last_started_at, r.last_finished_at, r.last_status, r.next_run_at, r.worker)
        for r in conn.execute(select(j).order_by(j.c.job))
    ]


def outbox_counts(conn: Connection) -> list[tuple[str, int]]:
    """Actions per state, in lifecycle order."""
    return in_lifecycle_order(counts_by_state(conn))


def in_lifecycle_order(counts: dict[str, int]) -> list[tuple[str, int]]:
    def rank(item: tuple[str, int]) -> tuple[int, str]:
        state = item[0]
        return (STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER), state)

    return sorted(counts.items(), key=rank)


def mapping_summaries(
    conn: Connection, mapping_set: MappingSet, only: str | None = None
) -> list[MappingSummary]:
    """One summary per configured mapping, then per mapping known only from stored history."""
    summaries: dict[str, MappingSummary] = {}
    for m in mapping_set.mappings:
        if only is None or m.id == only:
            summaries[m.id] = MappingSummary(
                m.id, m.title, m.enabled, True, m.measure.metric if m.measure else None
            )

    def summary(mapping_id: str) -> MappingSummary:
        if mapping_id not in summaries:
            summaries[mapping_id] = MappingSummary(mapping_id, mapping_id, False, False, None)
        return summaries[mapping_id]

    r = t.recommendations
    # Every mapping with stored history is listed; the figures about who was reached and who
    # completed are impact.reach's, not counted here a second way.
    recs = select(r.c.mapping_id, r.c.holdout, func.count(r.c.id).filter(r.c.state == "open").label("open"))
    recs = recs.group_by(r.c.mapping_id, r.c.holdout)
    if only is not None:
        recs = recs.where(r.c.mapping_id == only)
    for row in conn.execute(recs):
        s = summary(row.mapping_id)
        if row.holdout:
            s.open_holdout += row.open
        else:
            s.open += row.open

    a = t.actions
    acts = (
        select(a.c.mapping_id, a.c.state, func.count().label("n"))
        .where(a.c.mapping_id.is_not(None))
        .group_by(a.c.mapping_id, a.c.state)
    )
    if only is not None:
        acts = acts.where(a.c.mapping_id == only)
    for row in conn.execute(acts):
        summary(row.mapping_id).actions[row.state] = row.n
    return list(summaries.values())


def recent_failures(conn: Connection, limit: int = RECENT_FAILURES) -> list[FailedAction]:
    """Dead-lettered actions and those waiting to retry after a failed attempt, newest first."""
    a = t.actions
    failed = or_(
        a.c.state == "dead", and_(a.c.state == "pending", a.c.attempts > 0, a.c.last_error.is_not(None))
    )
    query = select(a).where(failed).order_by(a.c.updated_at.desc(), a.c.id.desc()).limit(limit)
    return [
        FailedAction(
            **ActionRow.fields(row),
            state="dead" if row.state == "dead" else "retrying",
            attempts=row.attempts,
            error=redact_text(row.last_error or ""),
            updated_at=row.updated_at,
            due_at=row.due_at,
        )
        for row in conn.execute(query)
    ]


def not_sent_reasons(conn: Connection) -> list[Reason]:
    """Why actions were deliberately not sent (suppressed, cancelled), grouped without the
    dates in the reasons. Those still waiting are ``queued_reasons``'."""
    return _reasons_in_states(conn, ("suppressed", "cancelled"), "no reason recorded")


def undated(reason: str) -> str:
    """A reason with its dates and times taken out, so reasons that differ only by them group."""
    return DATE_IN_REASON.sub("(date)", reason)


@dataclass(frozen=True)
class QueuedAction(ActionRow):
    status: str  # "deferred", "retrying", "waiting" or "queued"
    due_at: datetime
    created_at: datetime
    reason: str


def _queued_status(state: str, attempts: int, reason: str | None) -> str:
    if state == "waiting":
        return "waiting"
    if reason and reason.startswith(DEFERRED_PREFIX):
        return "deferred"
    if attempts and reason:
        return "retrying"
    return "queued"


def queued(conn: Connection, limit: int = QUEUED_SHOWN) -> list[QueuedAction]:
    """Actions not sent yet (pending, waiting), the soonest due first, with why they wait."""
    a = t.actions
    query = select(a).where(a.c.state.in_(("pending", "waiting"))).order_by(a.c.due_at, a.c.id).limit(limit)
    return [
        QueuedAction(
            **ActionRow.fields(row),
            status=_queued_status(row.state, row.attempts, row.last_error),
            due_at=row.due_at,
            created_at=row.created_at,
            reason=redact_text(row.last_error or "due, not sent yet"),
        )
        for row in conn.execute(query)
    ]


def queued_reasons(conn: Connection) -> list[Reason]:
    """Why the actions not sent yet wait, grouped (dates taken out), with their state."""
    return _reasons_in_states(conn, ("pending", "waiting"), "due, not sent yet")


def _reasons_in_states(conn: Connection, states: tuple[str, ...], no_reason: str) -> list[Reason]:
    """The reasons recorded on actions in ``states``, grouped; ``no_reason`` stands for none."""
    a = t.actions
    query = (
        select(a.c.state, a.c.last_error, func.count().label("n"))
        .where(a.c.state.in_(states))
        .group_by(a.c.state, a.c.last_error)
    )
    return _grouped((row.state, row.last_error or no_reason, row.n) for row in conn.execute(query))


def _grouped(rows: Iterable[tuple[str, str, int]]) -> list[Reason]:
    grouped: dict[tuple[str, str], int] = defaultdict(int)
    for state, reason, n in rows:
        grouped[(state, undated(redact_text(reason)))] += n
    return [
        Reason(state, reason, n)
        for (state, reason), n in sorted(grouped.items(), key=lambda item: (-item[1], item[0]))
    ]


def first_opened(conn: Connection, mapping_id: str, now: datetime) -> datetime | None:
    """When the oldest recommendation the impact follows (acted on, outside the holdout) opened."""
    r = t.recommendations
    query = select(func.min(r.c.opened_at)).where(
        and_(
            r.c.mapping_id == mapping_id,
            r.c.state.in_(impact.ACTED_ON),
            r.c.holdout.is_(False),
            r.c.opened_at <= now,
        )
    )
    value: datetime | None = conn.execute(query).scalar()
    return value
