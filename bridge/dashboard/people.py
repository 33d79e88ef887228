"""Who was recommended what: the people view, one row per recommendation, filtered and paged.

A page reads one page of recommendations (``PAGE_SIZE`` rows, newest first) and the facts of
those rows only: messages and reminders sent, escalations to a manager, the people and their
managers. Filters are SQL conditions, so the count and the page cost the same with 50,000
learners as with 50; nothing loads everyone. The CSV export walks the same query in pages.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, false, func, or_, select

from bridge.facts import load_people, manager_of_person, person_from_row
from bridge.mapping.model import Mapping
from bridge.records import Person
from bridge.store import schema as t

PAGE_SIZE = 50
EXPORT_CHUNK = 500
MAX_SEARCH = 100
MAX_REPORTS = 500
# The states a row can be in, as the filter offers them. "open" includes the overdue ones.
STATES = {
    "open": "open (overdue included)",
    "overdue": "open past its due date",
    "completed": "completed",
    "closed": "closed without a completion",
    "holdout": "in the holdout",
    "suppressed": "suppressed",
    "lapsed": "lapsed",
}
LEARNER_MESSAGES = ("message", "email")


class FilterError(ValueError):
    """A query parameter the people view cannot use; the message names it."""


@dataclass(frozen=True)
class PeopleFilter:
    search: str = ""
    mapping: str = ""
    manager: str = ""
    department: str = ""
    state: str = ""
    page: int = 1

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> PeopleFilter:
        def one(name: str) -> str:
            return (query.get(name) or [""])[0].strip()

        state = one("state")
        if state and state not in STATES:
            raise FilterError(f"state: '{state}' is not one of {', '.join(STATES)}")
        page_text = one("page") or "1"
        if not page_text.isdigit() or int(page_text) < 1:
            raise FilterError(f"page: '{page_text}' is not a page number (1, 2, ...)")
        search = one("q")
        if len(search) > MAX_SEARCH:
            raise FilterError(f"q: the search is longer than {MAX_SEARCH} characters")
        return cls(search, one("mapping"), one("manager"), one("department"), state, int(page_text))

    def params(self, **changes: Any) -> dict[str, str]:
        """The query parameters of this filter (with ``changes``), empty ones left out."""
        chosen = replace(self, **changes)
        values = {
            "q": chosen.search,
            "mapping": chosen.mapping,
            "manager": chosen.manager,
            "department": chosen.department,
            "state": chosen.state,
            "page": str(chosen.page) if chosen.page > 1 else "",
        }
        return {key: value for key, value in values.items() if value}

    @property
    def active(self) -> bool:
        return bool(self.search or self.mapping or self.manager or self.department or self.state)


@dataclass(frozen=True)
class Escalation:
    manager_id: str
    manager_name: str
    at: datetime
    digest_state: str | None  # the manager digest's outbox state; None until one is made


@dataclass(frozen=True)
class RecommendationRow:
    id: int
    mapping_id: str
    mapping_title: str
    person_id: str
    name: str
    department: str
    manager_id: str | None
    manager_name: str
    episode: int
    state: str  # one of STATES' row states: open, overdue, completed, closed, suppressed, lapsed
    holdout: bool
    opened_at: datetime
    due_at: datetime | None
    completed_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    messaged_at: datetime | None  # the first recommendation message or email actually sent
    reminders_sent: int
    escalation: Escalation | None


@dataclass(frozen=True)
class PeoplePage:
    rows: list[RecommendationRow]
    total: int
    page: int
    pages: int


def overdue_condition(mappings: Sequence[Mapping], now: datetime) -> ColumnElement[bool]:
    """Open recommendations past their mapping's ``follow_up.due_in_days`` (no SQL date maths:
    one cut-off time per mapping, so it reads the same on SQLite and PostgreSQL)."""
    r = t.recommendations
    cuts = [
        and_(r.c.mapping_id == m.id, r.c.opened_at < now - timedelta(days=m.follow_up.due_in_days))
        for m in mappings
        if m.follow_up.due_in_days is not None
    ]
    return and_(r.c.state == "open", or_(*cuts)) if cuts else false()


def reports_condition(manager_id: str) -> ColumnElement[bool]:
    """People whose manager is ``manager_id``, as ``bridge.facts`` sees it (the LMS's where a site
    names one, the HR feed's otherwise)."""
    return manager_of_person() == manager_id


def _active_reports(manager_id: str) -> ColumnElement[bool]:
    p = t.people
    return and_(reports_condition(manager_id), p.c.active.is_(True), p.c.person_id != manager_id)


def report_count(conn: Connection, manager_id: str) -> int:
    query = select(func.count()).select_from(t.people).where(_active_reports(manager_id))
    return int(conn.execute(query).scalar_one())


def _search_condition(text: str) -> ColumnElement[bool]:
    p = t.people
    pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    full_name = func.lower(p.c.first_name + " " + p.c.last_name)
    return or_(
        full_name.like(pattern, escape="\\"),
        func.lower(p.c.person_id).like(pattern, escape="\\"),
        func.lower(func.coalesce(p.c.employee_number, "")).like(pattern, escape="\\"),
        func.lower(func.coalesce(p.c.email, "")).like(pattern, escape="\\"),
    )


def _state_condition(state: str, mappings: Sequence[Mapping], now: datetime) -> ColumnElement[bool]:
    r = t.recommendations
    if state == "overdue":
        return overdue_condition(mappings, now)
    if state == "completed":
        return r.c.completed_at.is_not(None)
    if state == "closed":
        return and_(r.c.state == "closed", r.c.completed_at.is_(None))
    if state == "holdout":
        return r.c.holdout.is_(True)
    return r.c.state == state


def _conditions(
    chosen: PeopleFilter, mappings: Sequence[Mapping], now: datetime
) -> list[ColumnElement[bool]]:
    r, p = t.recommendations, t.people
    conditions: list[ColumnElement[bool]] = []
    if chosen.mapping:
        conditions.append(r.c.mapping_id == chosen.mapping)
    if chosen.department:
        conditions.append(p.c.department == chosen.department)
    if chosen.manager:
        conditions.append(reports_condition(chosen.manager))
    if chosen.state:
        conditions.append(_state_condition(chosen.state, mappings, now))
    if chosen.search:
        conditions.append(_search_condition(chosen.search))
    return conditions


def _joined() -> Any:
    r, p = t.recommendations, t.people
    return r.outerjoin(p, p.c.person_id == r.c.person_id)


def _narrowed(
    query: Select[Any], chosen: PeopleFilter, mappings: Sequence[Mapping], now: datetime
) -> Select[Any]:
    """``query`` over recommendations joined with their people, narrowed by the filter."""
    conditions = _conditions(chosen, mappings, now)
    query = query.select_from(_joined())
    return query.where(and_(*conditions)) if conditions else query


def filtered(chosen: PeopleFilter, mappings: Sequence[Mapping], now: datetime) -> Select[Any]:
    """Recommendations joined with their people, narrowed by the filter (no order, no limit)."""
    return _narrowed(select(t.recommendations), chosen, mappings, now)


def count(conn: Connection, chosen: PeopleFilter, mappings: Sequence[Mapping], now: datetime) -> int:
    """How many recommendations the filter matches (its page ignored)."""
    query = _narrowed(select(func.count(t.recommendations.c.id)), chosen, mappings, now)
    return int(conn.execute(query).scalar_one())


def people_page(
    conn: Connection, chosen: PeopleFilter, mappings: Sequence[Mapping], now: datetime
) -> PeoplePage:
    query = filtered(chosen, mappings, now)
    total = count(conn, chosen, mappings, now)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(chosen.page, pages)
    rows = _rows(conn, query, mappings, now, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    return PeoplePage(rows, total, page, pages)


def export_csv(conn: Connection, chosen: PeopleFilter, mappings: Sequence[Mapping], now: datetime) -> str:
    """Every row the filter matches, as CSV, read ``EXPORT_CHUNK`` rows at a time."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "person_id",
            "name",
            "department",
            "manager_id",
            "manager",
            "mapping",
            "episode",
            "state",
            "holdout",
            "opened_at",
            "due_at",
            "messaged_at",
            "reminders_sent",
            "escalated_to",
            "escalated_at",
            "completed_at",
            "closed_at",
            "close_reason",
        ]
    )
    for row in _all_rows(conn, filtered(chosen, mappings, now), mappings, now):
        writer.writerow(
            [
                row.person_id,
                row.name,
                row.department,
                row.manager_id or "",
                row.manager_name,
                row.mapping_id,
                row.episode,
                row.state,
                "yes" if row.holdout else "no",
                _iso(row.opened_at),
                _iso(row.due_at),
                _iso(row.messaged_at),
                row.reminders_sent,
                row.escalation.manager_id if row.escalation else "",
                _iso(row.escalation.at if row.escalation else None),
                _iso(row.completed_at),
                _iso(row.closed_at),
                row.close_reason or "",
            ]
        )
    return out.getvalue()


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _newest_first(query: Select[Any]) -> Select[Any]:
    r = t.recommendations
    return query.order_by(r.c.opened_at.desc(), r.c.id.desc())


def _all_rows(
    conn: Connection, query: Select[Any], mappings: Sequence[Mapping], now: datetime
) -> Iterator[RecommendationRow]:
    """Every row of the query in one ordered pass, completed ``EXPORT_CHUNK`` rows at a time."""
    result = conn.execution_options(yield_per=EXPORT_CHUNK).execute(_newest_first(query))
    for chunk in result.partitions():
        yield from _complete(conn, list(chunk), mappings, now)


def _rows(
    conn: Connection,
    query: Select[Any],
    mappings: Sequence[Mapping],
    now: datetime,
    offset: int,
    limit: int,
) -> list[RecommendationRow]:
    found = list(conn.execute(_newest_first(query).offset(offset).limit(limit)))
    return _complete(conn, found, mappings, now)


def _complete(
    conn: Connection, found: list[Any], mappings: Sequence[Mapping], now: datetime
) -> list[RecommendationRow]:
    """The page's rows with what happened to each: messages, reminders, escalation, people."""
    if not found:
        return []
    ids = [int(row.id) for row in found]
    messaged, reminders = _learner_messages(conn, ids)
    escalations = _escalations(conn, ids)
    people = load_people(conn, sorted({row.person_id for row in found}))
    manager_ids = {
        *(p.manager_id for p in people.values() if p.manager_id),
        *(e[0] for e in escalations.values()),
    }
    managers = load_people(conn, sorted(manager_ids))
    by_id = {m.id: m for m in mappings}
    result = []
    for row in found:
        mapping = by_id.get(row.mapping_id)
        due_days = mapping.follow_up.due_in_days if mapping is not None else None
        due_at = row.opened_at + timedelta(days=due_days) if due_days is not None else None
        person = people.get(row.person_id)
        manager_id = person.manager_id if person is not None else None
        escalated = escalations.get(int(row.id))
        result.append(
            RecommendationRow(
                id=int(row.id),
                mapping_id=row.mapping_id,
                mapping_title=mapping.title if mapping is not None else row.mapping_id,
                person_id=row.person_id,
                name=person.full_name if person is not None else row.person_id,
                department=(person.department if person is not None else None) or "",
                manager_id=manager_id,
                manager_name=_name(managers, manager_id),
                episode=int(row.episode),
                state=row_state(row.state, row.completed_at, due_at, now),
                holdout=bool(row.holdout),
                opened_at=row.opened_at,
                due_at=due_at,
                completed_at=row.completed_at,
                closed_at=row.closed_at,
                close_reason=row.close_reason,
                messaged_at=messaged.get(int(row.id)),
                reminders_sent=reminders.get(int(row.id), 0),
                escalation=Escalation(escalated[0], _name(managers, escalated[0]), escalated[1], escalated[2])
                if escalated is not None
                else None,
            )
        )
    return result


def row_state(state: str, completed_at: datetime | None, due_at: datetime | None, now: datetime) -> str:
    if state == "open":
        return "overdue" if due_at is not None and due_at < now else "open"
    if completed_at is not None:
        return "completed"
    return state


def _name(people: dict[str, Person], person_id: str | None) -> str:
    if person_id is None:
        return ""
    person = people.get(person_id)
    return person.full_name if person is not None else person_id


def _learner_messages(conn: Connection, ids: list[int]) -> tuple[dict[int, datetime], dict[int, int]]:
    """Per recommendation: when its first recommendation was sent, and how many reminders were.

    Selected by recommendation id only and counted here, so the database walks the
    recommendation index (a handful of rows each), not every sent action.
    """
    a = t.actions
    rows = conn.execute(
        select(a.c.recommendation_id, a.c.purpose, a.c.kind, a.c.state, a.c.sent_at).where(
            a.c.recommendation_id.in_(ids)
        )
    )
    messaged: dict[int, datetime] = {}
    reminders: dict[int, int] = defaultdict(int)
    for row in rows:
        if row.state != "sent" or row.kind not in LEARNER_MESSAGES or row.sent_at is None:
            continue
        rec_id = int(row.recommendation_id)
        if row.purpose == "recommend":
            first = messaged.get(rec_id)
            messaged[rec_id] = row.sent_at if first is None or row.sent_at < first else first
        elif row.purpose == "reminder":
            reminders[rec_id] += 1
    return messaged, reminders


def _escalations(conn: Connection, ids: list[int]) -> dict[int, tuple[str, datetime, str | None]]:
    """Per recommendation: the manager it was escalated to, when, and their digest's state."""
    d, a = t.digest_items, t.actions
    rows = conn.execute(
        select(d.c.recommendation_id, d.c.manager_id, d.c.created_at, a.c.state)
        .select_from(d.outerjoin(a, a.c.key == d.c.action_key))
        .where(and_(d.c.recommendation_id.in_(ids), d.c.kind == "escalation"))
    )
    return {int(row.recommendation_id): (row.manager_id, row.created_at, row.state) for row in rows}


def departments(conn: Connection) -> list[str]:
    """Every department named in the HR data, for the filter's choices."""
    p = t.people
    query = select(p.c.department).where(p.c.department.is_not(None)).distinct().order_by(p.c.department)
    return [str(d) for d in conn.execute(query).scalars() if d]


@dataclass(frozen=True)
class Report:
    """One of a manager's reports and what is open for them."""

    person_id: str
    name: str
    department: str
    job_title: str
    open: list[RecommendationRow]

    @property
    def overdue(self) -> int:
        return sum(1 for row in self.open if row.state == "overdue")


def manager_reports(
    conn: Connection, manager_id: str, mappings: Sequence[Mapping], now: datetime
) -> tuple[list[Report], bool]:
    """A manager's reports (at most ``MAX_REPORTS``, by name) with their open recommendations;
    the flag says whether there were more."""
    p, r = t.people, t.recommendations
    found = list(
        conn.execute(
            select(p)
            .where(_active_reports(manager_id))
            .order_by(p.c.last_name, p.c.first_name, p.c.person_id)
            .limit(MAX_REPORTS + 1)
        )
    )
    more = len(found) > MAX_REPORTS
    people = [person_from_row(row) for row in found[:MAX_REPORTS]]
    ids = [person.person_id for person in people]
    open_rows: dict[str, list[RecommendationRow]] = defaultdict(list)
    if ids:
        query = filtered(PeopleFilter(state="open"), mappings, now).where(r.c.person_id.in_(ids))
        for row in _all_rows(conn, query, mappings, now):
            open_rows[row.person_id].append(row)
    reports = [
        Report(
            person_id=person.person_id,
            name=person.full_name,
            department=person.department or "",
            job_title=person.job_title or "",
            open=open_rows.get(person.person_id, []),
        )
        for person in people
    ]
    return reports, more
