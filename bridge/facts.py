"""Everything the engine knows about one person, loaded in chunks for many people at once.

A handful of set-based queries per chunk of people (never one query per person) keeps full
evaluation of a large organisation fast, and chunking keeps memory flat.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, func, select

from bridge.errors import BridgeError
from bridge.records import Person, RaterType, ReviewRating
from bridge.store import schema as t

CHUNK = 500


@dataclass(frozen=True, slots=True)
class Point:
    period_start: date
    period_end: date
    value: float


@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    usable: bool  # not suspended and not deleted


@dataclass(frozen=True, slots=True)
class Rating:
    proficient: bool | None
    grade_name: str | None
    rated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Renewal:
    """When a certification runs out, and when its recertification window opens."""

    expires_at: datetime | None
    window_opens_at: datetime | None


@dataclass(frozen=True, slots=True)
class GoalState:
    """One of the person's HR goals: progress in percent (None: not reported)."""

    goal_id: str
    title: str
    progress: float | None
    due_date: date | None


@dataclass(slots=True)
class Facts:
    person: Person
    kpis: dict[str, list[Point]] = field(default_factory=dict)
    completions: dict[tuple[str, str, int], datetime] = field(default_factory=dict)
    renewals: dict[tuple[str, int], Renewal] = field(default_factory=dict)  # certifications only
    enrolled: set[tuple[str, int]] = field(default_factory=set)
    competencies: dict[tuple[str, int], Rating] = field(default_factory=dict)
    reviews: dict[tuple[str, str], ReviewRating] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    goals: list[GoalState] = field(default_factory=list)


PERSON_FIELDS = tuple(f.name for f in fields(Person))


def person_from_row(row: Row[Any]) -> Person:
    values = row._mapping
    return Person(**{name: values[name] for name in PERSON_FIELDS})


def person_id_of(conn: Connection, ref: str) -> str:
    """The HR id of the person with this HR id or employee number, or a clear error."""
    p = t.people
    row = conn.execute(
        select(p.c.person_id).where((p.c.person_id == ref) | (p.c.employee_number == ref))
    ).first()
    if row is None:
        raise BridgeError(f"no person with HR id or employee number '{ref}' is known")
    return str(row.person_id)


def all_person_ids(conn: Connection) -> list[str]:
    return list(conn.execute(select(t.people.c.person_id).order_by(t.people.c.person_id)).scalars())


def _lms_manager() -> Any:
    """The person linked to the manager an LMS names for this person (Totara job assignments),
    for sites configured to provide it: the first site's, by name."""
    own, boss = t.identities.alias("own"), t.identities.alias("boss")
    lm = t.lms_managers
    return (
        select(boss.c.person_id)
        .select_from(
            own.join(lm, and_(lm.c.site == own.c.site, lm.c.user_id == own.c.user_id)).join(
                boss, and_(boss.c.site == lm.c.site, boss.c.user_id == lm.c.manager_user_id)
            )
        )
        .where(own.c.person_id == t.people.c.person_id)
        .order_by(boss.c.site)
        .limit(1)
        .scalar_subquery()
    )


def manager_of_person() -> ColumnElement[str]:
    """A person's manager as every part of the bridge sees it (SQL over ``people``): the one their
    LMS names, where a site provides it and it is not the person themself, else the HR feed's."""
    return func.coalesce(func.nullif(_lms_manager(), t.people.c.person_id), t.people.c.manager_id)


def _people_query() -> Any:
    return select(t.people, manager_of_person().label("effective_manager_id"))


def _person_with_manager(row: Row[Any]) -> Person:
    person = person_from_row(row)
    if row.effective_manager_id != person.manager_id:
        person = replace(person, manager_id=row.effective_manager_id)
    return person


def load_people(conn: Connection, person_ids: Sequence[str]) -> dict[str, Person]:
    """People by HR id, each with their manager as the bridge sees it (``manager_of_person``)."""
    found: dict[str, Person] = {}
    query = _people_query()
    for start in range(0, len(person_ids), CHUNK):
        rows = conn.execute(query.where(t.people.c.person_id.in_(person_ids[start : start + CHUNK])))
        for row in rows:
            found[row.person_id] = _person_with_manager(row)
    return found


def iter_active_people(conn: Connection) -> Iterator[Person]:
    """Every active person, as ``load_people`` gives them."""
    for row in conn.execute(_people_query().where(t.people.c.active)):
        yield _person_with_manager(row)


@dataclass(frozen=True)
class KpiNeeds:
    """Which KPI history to load: ``metrics`` (None = all) and the latest ``periods`` of each (None = all)."""

    metrics: frozenset[str] | None = None
    periods: int | None = None


ALL_KPIS = KpiNeeds()
NO_KPIS = KpiNeeds(metrics=frozenset())


def iter_facts(conn: Connection, person_ids: Iterable[str], needs: KpiNeeds = ALL_KPIS) -> Iterator[Facts]:
    """Facts for each person id that exists, in id order, loaded ``CHUNK`` people at a time."""
    ids = sorted(set(person_ids))
    for start in range(0, len(ids), CHUNK):
        yield from _load_chunk(conn, ids[start : start + CHUNK], needs)


def _load_chunk(conn: Connection, ids: list[str], needs: KpiNeeds) -> list[Facts]:
    people = load_people(conn, ids)
    facts = {pid: Facts(person) for pid, person in people.items()}
    if facts:
        chunk = list(facts)
        for loader in (_kpis, _accounts, _completions, _enrolments, _competencies, _reviews, _goals):
            loader(conn, chunk, facts, needs)
    return [facts[pid] for pid in sorted(facts)]


Loaded = dict[str, Facts]


def _kpis(conn: Connection, chunk: list[str], facts: Loaded, needs: KpiNeeds) -> None:
    """The latest ``needs.periods`` values of each needed metric (all of them when None)."""
    m = t.measurements
    columns = [m.c.person_id, m.c.metric, m.c.period_start, m.c.period_end, m.c.value]
    where = [m.c.person_id.in_(chunk)]
    if needs.metrics is not None:
        if not needs.metrics:
            return
        where.append(m.c.metric.in_(sorted(needs.metrics)))
    if needs.periods is None:
        query = select(*columns).where(*where)
    else:
        recency = func.row_number().over(
            partition_by=(m.c.person_id, m.c.metric), order_by=m.c.period_start.desc()
        )
        ranked = select(*columns, recency.label("recency")).where(*where).subquery()
        query = select(*(ranked.c[c.name] for c in columns)).where(ranked.c.recency <= needs.periods)
    series: dict[tuple[str, str], list[Point]] = defaultdict(list)
    for person_id, metric, start, end, value in conn.execute(query).all():
        series[(person_id, metric)].append(Point(start, end, value))
    for points in series.values():
        points.sort(key=lambda p: p.period_start)
    for (pid, metric), points in series.items():
        facts[pid].kpis[metric] = points


def _by_account(table: Any) -> Any:
    """Join an LMS table to the identities that link its users to people."""
    i = t.identities
    return table.join(i, and_(i.c.site == table.c.site, i.c.user_id == table.c.user_id))


def _accounts(conn: Connection, chunk: list[str], facts: Loaded, _m: object) -> None:
    i, u = t.identities, t.lms_users
    query = (
        select(i.c.person_id, i.c.site, i.c.user_id, u.c.suspended, u.c.deleted)
        .select_from(i.outerjoin(u, and_(u.c.site == i.c.site, u.c.user_id == i.c.user_id)))
        .where(i.c.person_id.in_(chunk))
    )
    for row in conn.execute(query):
        facts[row.person_id].accounts[row.site] = Account(row.user_id, not (row.suspended or row.deleted))


def _completions(conn: Connection, chunk: list[str], facts: Loaded, _m: object) -> None:
    c = t.completions
    query = (
        select(
            t.identities.c.person_id,
            c.c.site,
            c.c.kind,
            c.c.item_id,
            c.c.completed_at,
            c.c.expires_at,
            c.c.window_opens_at,
        )
        .select_from(_by_account(c))
        .where(t.identities.c.person_id.in_(chunk))
    )
    for row in conn.execute(query):
        facts[row.person_id].completions[(row.site, row.kind, row.item_id)] = row.completed_at
        if row.kind == "certification":
            facts[row.person_id].renewals[(row.site, row.item_id)] = Renewal(
                row.expires_at, row.window_opens_at
            )


def _enrolments(conn: Connection, chunk: list[str], facts: Loaded, _m: object) -> None:
    e = t.enrolments
    query = (
        select(t.identities.c.person_id, e.c.site, e.c.item_id)
        .select_from(_by_account(e))
        .where(and_(t.identities.c.person_id.in_(chunk), e.c.active))
    )
    for row in conn.execute(query):
        facts[row.person_id].enrolled.add((row.site, row.item_id))


def _competencies(conn: Connection, chunk: list[str], facts: Loaded, _m: object) -> None:
    r = t.competency_ratings
    query = (
        select(
            t.identities.c.person_id,
            r.c.site,
            r.c.competency_id,
            r.c.proficient,
            r.c.grade_name,
            r.c.rated_at,
        )
        .select_from(_by_account(r))
        .where(t.identities.c.person_id.in_(chunk))
    )
    for row in conn.execute(query):
        facts[row.person_id].competencies[(row.site, row.competency_id)] = Rating(
            row.proficient, row.grade_name, row.rated_at
        )


def _reviews(conn: Connection, chunk: list[str], facts: Loaded, _m: object) -> None:
    rv = t.review_ratings
    query = select(rv).where(rv.c.person_id.in_(chunk)).order_by(rv.c.person_id, rv.c.period_end)
    for row in conn.execute(query):
        rating = ReviewRating(
            person_id=row.person_id,
            competency=row.competency,
            rater_type=RaterType(row.rater_type),
            value=row.value,
            period_start=row.period_start,
            period_end=row.period_end,
            scale_min=row.scale_min,
            scale_max=row.scale_max,
            label=row.label,
            source=row.source,
        )
        # Ordered by period_end, so the rating kept is the latest one.
        facts[row.person_id].reviews[(row.competency.casefold(), row.rater_type)] = rating


def _goals(conn: Connection, chunk: list[str], facts: Loaded, _m: object) -> None:
    g = t.goals
    query = select(g).where(g.c.person_id.in_(chunk)).order_by(g.c.person_id, g.c.goal_id)
    for row in conn.execute(query):
        facts[row.person_id].goals.append(GoalState(row.goal_id, row.title, row.progress, row.due_date))
