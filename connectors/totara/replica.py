"""Reading Totara's completion and competency tables from a read-only replica.

Totara's APIs return no other learner's program, certification or competency records (see the
README), so sites that need those give lmsbridge a read-only database user on a replica or
reporting copy. Each stream reads only rows changed since its cursor (the newest Totara time
seen, minus a look-back for late writes), through SQLAlchemy — any database Totara runs on
(PostgreSQL, MySQL/MariaDB, SQL Server) works with its driver installed.

Changed rows are read by keyset: each page is one short query for the next :data:`PAGE` rows
after the last (time, id) read, so no query stays open on the replica for the whole backfill (a
hot standby cancels long ones) and rows sharing a time are neither skipped nor read twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, and_, create_engine, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from bridge.errors import Remedy, SourceError, database_cause
from bridge.pagination import KeysetPaginator, Page, paginate
from bridge.records import Competency, CompetencyRating, Completion, ItemKind, LearningItem, Record
from connectors.totara.tables import (
    ACHIEVEMENT_ACTIVE,
    CERTIF_COMPLETED,
    CERTIF_EXPIRED,
    CERTIF_INPROGRESS,
    PROGRAM_COMPLETE,
    RENEWAL_EXPIRED,
    tables,
)

PAGE = 5000
AFTER_EVERY_ID = 2**63 - 1  # a keyset start after every row of its time (ids are BIGINT)


def _when(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(int(seconds), UTC) if seconds and int(seconds) > 0 else None


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


class ReplicaReader:
    def __init__(
        self, site: str, url: str, prefix: str = "ttr_", engine: Engine | None = None, site_url: str = ""
    ) -> None:
        self.site = site
        self.site_url = site_url.rstrip("/")
        self.t = tables(prefix)
        self.engine = engine or create_engine(url, pool_pre_ping=True)

    def _rows(self, query: Any) -> Iterator[list[Any]]:
        """A whole table (programs, competencies, job assignments), streamed in pages."""
        try:
            with self.engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(query)
                while rows := result.fetchmany(PAGE):
                    yield list(rows)
        except SQLAlchemyError as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: SQLAlchemyError) -> SourceError:
        return SourceError(
            f"Totara site '{self.site}': the database replica could not be read ({database_cause(exc)})",
            Remedy.RETRY,
        )

    def _incremental(
        self,
        stream: str,
        query: Select[Any],
        changed: ColumnElement[Any],
        row_id: ColumnElement[Any],
        since: int,
        record: Callable[[Any], Record | None],
    ) -> Iterator[tuple[list[Record], int]]:
        """Pages of the records whose ``changed`` time is after ``since``, each with the newest
        Totara time in it (the stream's next cursor), read by keyset on (``changed``, ``row_id``)."""
        keyed = query.add_columns(changed.label("key_time"), row_id.label("key_id")).order_by(changed, row_id)

        def fetch(after: tuple[int, int]) -> Page[Any]:
            at, last_id = after
            # ``changed >= at`` first: a range the time column's index answers on any database.
            following = and_(changed >= at, or_(changed > at, and_(changed == at, row_id > last_id)))
            try:
                with self.engine.connect() as conn:
                    return Page(list(conn.execute(keyed.where(following).limit(PAGE))))
            except SQLAlchemyError as exc:
                raise self._unreadable(exc) from None

        pages = KeysetPaginator[tuple[int, int], Any](
            f"Totara site '{self.site}': replica {stream}",
            PAGE,
            key=lambda row: (int(row.key_time), int(row.key_id)),
            start=(since, AFTER_EVERY_ID),
        )
        for page in paginate(pages, fetch):
            if page.items:
                found = [r for r in (record(row) for row in page.items) if r is not None]
                yield found, int(page.items[-1].key_time)  # the page is in time order: its last is newest

    def check(self) -> list[str]:
        """The Totara tables the replica lacks (empty when all are readable)."""
        missing = []
        for table in (
            self.t.course_completions,
            self.t.prog,
            self.t.prog_completion,
            self.t.certif_completion,
            self.t.certif_completion_history,
            self.t.comp,
            self.t.achievement,
            self.t.job_assignment,
        ):
            try:
                with self.engine.connect() as conn:
                    conn.execute(select(table.c.id).limit(1)).all()
            except SQLAlchemyError:
                missing.append(table.name)
        return missing

    # ------------------------------------------------------------------ streams

    def course_completions(self, since: int) -> Iterator[tuple[list[Record], int]]:
        c = self.t.course_completions
        return self._incremental(
            "course completions",
            select(c.c.userid, c.c.course, c.c.timecompleted),
            c.c.timecompleted,
            c.c.id,
            since,
            lambda r: Completion(self.site, int(r.userid), int(r.course), completed_at=_at(r.timecompleted)),
        )

    def programs(self) -> list[LearningItem]:
        p = self.t.prog
        items: list[LearningItem] = []
        for rows in self._rows(select(p).order_by(p.c.id)):
            items.extend(
                LearningItem(
                    site=self.site,
                    item_id=int(r.id),
                    kind=ItemKind.CERTIFICATION if r.certifid else ItemKind.PROGRAM,
                    shortname=r.shortname or "",
                    fullname=r.fullname or "",
                    idnumber=r.idnumber or None,
                    visible=bool(r.visible),
                    url=f"{self.site_url}/totara/program/view.php?id={r.id}" if self.site_url else None,
                )
                for r in rows
            )
        return items

    def program_completions(self, since: int) -> Iterator[tuple[list[Record], int]]:
        pc, p = self.t.prog_completion, self.t.prog
        query = (
            select(pc.c.userid, pc.c.programid, pc.c.timecompleted)
            .join(p, p.c.id == pc.c.programid)
            .where(
                and_(
                    pc.c.coursesetid == 0,  # 0 is the programme's own record, not a course set's
                    pc.c.status == PROGRAM_COMPLETE,
                    p.c.certifid.is_(None),
                )
            )
        )
        return self._incremental(
            "program completions",
            query,
            pc.c.timecompleted,
            pc.c.id,
            since,
            lambda r: Completion(
                self.site,
                int(r.userid),
                int(r.programid),
                completed_at=_at(r.timecompleted),
                kind=ItemKind.PROGRAM,
            ),
        )

    def certification_completions(self, since: int) -> Iterator[tuple[list[Record], int]]:
        """Certified, window-open and expired records, with their expiry and window dates.

        An expired record (``status`` EXPIRED, or INPROGRESS with ``renewalstatus`` EXPIRED) has
        ``timecompleted = 0`` and no dates of its own: it is reported with the date it lapsed
        (the program's ``prog_completion.timedue``, else the newest history expiry, else when the
        row changed) and the completion that lapsed (from ``certif_completion_history``), so
        ``certification_due`` fires for people who already lapsed. Assigned-only rows (never
        certified) are not completions and are skipped.
        """
        cc, p, pc, h = (
            self.t.certif_completion,
            self.t.prog,
            self.t.prog_completion,
            self.t.certif_completion_history,
        )
        history = (
            select(
                h.c.certifid,
                h.c.userid,
                func.max(h.c.timecompleted).label("last_completed"),
                func.max(h.c.timeexpires).label("last_expiry"),
            )
            .group_by(h.c.certifid, h.c.userid)
            .subquery()
        )
        expired = or_(
            cc.c.status == CERTIF_EXPIRED,
            and_(cc.c.status == CERTIF_INPROGRESS, cc.c.renewalstatus == RENEWAL_EXPIRED),
        )
        query = (
            select(
                cc.c.userid,
                p.c.id.label("programid"),
                cc.c.status,
                cc.c.renewalstatus,
                cc.c.timecompleted,
                cc.c.timewindowopens,
                cc.c.timeexpires,
                cc.c.timemodified,
                pc.c.timedue,
                history.c.last_completed,
                history.c.last_expiry,
            )
            .join(p, p.c.certifid == cc.c.certifid)
            .outerjoin(pc, and_(pc.c.programid == p.c.id, pc.c.userid == cc.c.userid, pc.c.coursesetid == 0))
            .outerjoin(history, and_(history.c.certifid == cc.c.certifid, history.c.userid == cc.c.userid))
            .where(or_(cc.c.status == CERTIF_COMPLETED, expired))
        )
        return self._incremental(
            "certification completions", query, cc.c.timemodified, cc.c.id, since, self._certification
        )

    def _certification(self, r: Any) -> Completion | None:
        lapsed = int(r.status) == CERTIF_EXPIRED or (
            int(r.status) == CERTIF_INPROGRESS and int(r.renewalstatus or 0) == RENEWAL_EXPIRED
        )
        if not lapsed:
            if not r.timecompleted or int(r.timecompleted) <= 0:
                return None  # an inconsistent row Totara's own completion checker reports
            return Completion(
                self.site,
                int(r.userid),
                int(r.programid),
                completed_at=_at(r.timecompleted),
                kind=ItemKind.CERTIFICATION,
                expires_at=_when(r.timeexpires),
                window_opens_at=_when(r.timewindowopens),
            )
        expiry = next(
            (int(v) for v in (r.timedue, r.last_expiry, r.timemodified) if v is not None and int(v) > 0), None
        )
        if expiry is None:
            return None
        completed = int(r.last_completed) if r.last_completed and int(r.last_completed) > 0 else expiry
        return Completion(
            self.site,
            int(r.userid),
            int(r.programid),
            completed_at=_at(completed),
            kind=ItemKind.CERTIFICATION,
            expires_at=_at(expiry),
            window_opens_at=None,
        )

    def competencies(self) -> list[Record]:
        c = self.t.comp
        found: list[Record] = []
        for rows in self._rows(select(c).order_by(c.c.id)):
            found.extend(
                Competency(
                    self.site,
                    int(r.id),
                    shortname=r.shortname or "",
                    idnumber=r.idnumber or None,
                    framework_id=r.frameworkid,
                )
                for r in rows
            )
        return found

    def job_assignments(self) -> Iterator[list[tuple[int, int, int | None]]]:
        """(job assignment id, user id, manager's job assignment id), first assignment first."""
        j = self.t.job_assignment
        query = select(j.c.id, j.c.userid, j.c.managerjaid).order_by(j.c.userid, j.c.sortorder, j.c.id)
        for rows in self._rows(query):
            yield [(int(r.id), int(r.userid), int(r.managerjaid) if r.managerjaid else None) for r in rows]

    def achievements(self, since: int) -> Iterator[tuple[list[Record], int]]:
        a = self.t.achievement
        query = select(
            a.c.user_id, a.c.competency_id, a.c.proficient, a.c.scale_value_id, a.c.time_status
        ).where(a.c.status == ACHIEVEMENT_ACTIVE)
        return self._incremental(
            "competency ratings",
            query,
            a.c.time_status,
            a.c.id,
            since,
            lambda r: CompetencyRating(
                self.site,
                int(r.user_id),
                int(r.competency_id),
                proficient=bool(r.proficient),
                grade=int(r.scale_value_id) if r.scale_value_id is not None else None,
                rated_at=_when(r.time_status),
            ),
        )
