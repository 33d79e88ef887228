"""Completion feeds: three ways to learn who completed which course, chosen by what the site offers.

============  =================================================  ================================
feed          calls per poll                                     needs
============  =================================================  ================================
report        1 + one per 500 new completions                    Moodle 4.1+, the custom report
per_learner   1 per learner in scope + 1 per new completion       Moodle 3.6+
per_course    pages of participants per course in scope,          any version
              + 1 per enrolled learner without a completion
============  =================================================  ================================

Moodle has no "completions since" web service; the Report Builder report sorted newest first
is the only bulk, incremental path: a steady-state poll reads one page and stops at the first
row older than the cursor (less a look-back window for completions written late). Its dates are
localised strings with minute precision, so the feed asks for English and UTC, and dedupes by
(user, course), never by time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from bridge import clock
from bridge.errors import Remedy, SourceError
from bridge.incremental import refreshed
from bridge.log import get_logger
from bridge.pagination import OffsetPaginator, Page, paginate
from bridge.ports import Batch, PullContext
from bridge.records import Completion, Enrolment, Record
from connectors.moodle import errors
from connectors.moodle.client import MoodleClient

log = get_logger(__name__)

REPORT_DATE = "%A, %d %B %Y, %I:%M %p"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_report_date(text: str, zone: tzinfo = UTC) -> datetime:
    """A report date in the zone it is shown in (UTC unless the site forces a time zone)."""
    local = datetime.strptime(text.strip(), REPORT_DATE).replace(tzinfo=zone)
    return local.astimezone(UTC)


def report_offset(shown: datetime, exact: datetime) -> timedelta | None:
    """How far a report time (minute precision) is from the exact time, to the quarter hour.

    None when the two are not a whole number of quarter hours apart (a late write, say, not a
    time zone); ``timedelta(0)`` when the report is in the zone lmsbridge reads it in.
    """
    difference = (shown - exact.replace(second=0, microsecond=0)).total_seconds()
    quarters = round(difference / 900)
    if abs(difference - quarters * 900) > 90:
        return None
    return timedelta(seconds=quarters * 900)


@dataclass(frozen=True)
class ZoneVerdict:
    """What report times compared with exact completion times say about the report's zone."""

    agree: bool  # every compared row is exactly right as read
    forced: str | None = None  # the report is in another zone: what was seen and what to set
    note: str | None = None  # nothing to compare, or differences that are not a time zone

    @staticmethod
    def of(pairs: Sequence[tuple[datetime, datetime]], reading: tzinfo, site: str) -> ZoneVerdict:
        """``pairs``: (time shown by the report, read in ``reading``; the exact time)."""
        offsets = [report_offset(shown, exact) for shown, exact in pairs]
        if not offsets:
            return ZoneVerdict(False, note="not checkable: no report row whose exact time could be read")
        if all(o is not None and not o for o in offsets):
            return ZoneVerdict(True)
        wrong = [(exact, o) for (_shown, exact), o in zip(pairs, offsets, strict=True) if o]
        if not wrong:
            return ZoneVerdict(
                False, note="report times differ from exact completion times, but not by a time zone"
            )
        seen = ", ".join(sorted({f"{o.total_seconds() / 3600:+g} h" for _e, o in wrong}))
        fitting = forced_zone_candidates(wrong, reading)
        zones = [z for z in fitting if z in _representative_zones()] or fitting
        likely = f", one like {' or '.join(zones[:3])}" if zones else ""
        example = zones[0] if zones else "Europe/Berlin"
        return ZoneVerdict(
            False,
            forced=(
                f"the completion report on site '{site}' shows times {seen} from {reading}: the site forces "
                f"a time zone{likely} (Site administration > General > Location > Force timezone), so "
                f"every completion would be stored hours off. Set report_timezone under [sites.{site}] "
                f'to the forced zone (e.g. "{example}"), or clear Force timezone'
            ),
        )


def forced_zone_candidates(wrong: Sequence[tuple[datetime, timedelta]], reading: tzinfo) -> list[str]:
    """IANA zones that shift each exact time by the offset seen (daylight saving included), so a
    zone with summer time, whose rows are off by different amounts, is still recognised."""
    found = []
    for name in sorted(available_timezones()):
        if "/" not in name or name.startswith(("Etc/", "SystemV/", "posix/", "right/", "US/")):
            continue
        zone = ZoneInfo(name)
        if all(_shift(zone, reading, exact) == offset for exact, offset in wrong):
            found.append(name)
    return found


@cache
def _representative_zones() -> frozenset[str]:
    """One zone per distinct clock of today's world (tzdata's zonenow.tab: America/New_York for
    US Eastern, not Detroit or Fort_Wayne), to name a fitting zone an administrator recognises."""
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "zonenow.tab").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return frozenset()
    return frozenset(line.split("\t")[2] for line in text.splitlines() if line and not line.startswith("#"))


def _shift(zone: tzinfo, reading: tzinfo, exact: datetime) -> timedelta:
    return (exact.astimezone(zone).utcoffset() or timedelta(0)) - (
        exact.astimezone(reading).utcoffset() or timedelta(0)
    )


class ReportColumns:
    def __init__(self, idnumber: str, email: str, course: str, completed: str) -> None:
        self.names = {"idnumber": idnumber, "email": email, "course": course, "completed": completed}

    def positions(self, headers: list[str], site: str) -> dict[str, int]:
        found = {key: headers.index(name) for key, name in self.names.items() if name in headers}
        missing = [name for key, name in self.names.items() if key not in found and key != "email"]
        if missing:
            raise SourceError(
                f"the completion report on site '{site}' has no column {', '.join(repr(m) for m in missing)} "
                f"(it has {', '.join(repr(h) for h in headers)}); set the column headings as in README > Moodle",
                Remedy.FIX_CONFIG,
            )
        return found


class ReportFeed:
    """Completions from the administrators' Report Builder report, newest first."""

    name = "report"

    def __init__(
        self,
        site: str,
        client: MoodleClient,
        report_id: int,
        columns: ReportColumns,
        lookback: timedelta,
        page_size: int = 500,
        zone: tzinfo = UTC,
    ) -> None:
        self.site = site
        self.client = client
        self.report_id = report_id
        self.columns = columns
        self.lookback = lookback
        self.page_size = page_size
        self.zone = zone
        self.times_checked: str | None = None  # what the time zone check found (doctor shows it)

    def check_times(self, samples: list[tuple[int, int, datetime]]) -> None:
        """Compare report times with each completion's exact time, once per process.

        With *Force timezone* set, Moodle ignores the UTC the feed asks for and shows every date
        in the forced zone; read as UTC they would all be hours off. Rows off by whole quarter
        hours (by different amounts either side of a daylight-saving change) mean exactly that:
        the pull stops with the fix, naming the zones that fit, and nothing is stored.
        """
        if self.times_checked is not None:
            return
        pairs = []
        for user_id, course_id, shown in samples[:2]:
            exact = exact_completion_time(self.client, user_id, course_id)
            if exact is not None:
                pairs.append((shown, exact))
        verdict = ZoneVerdict.of(pairs, self.zone, self.site)
        if verdict.forced:
            raise SourceError(verdict.forced, Remedy.FIX_CONFIG)
        self.times_checked = (
            f"report times agree with exact completion times ({self.zone})" if verdict.agree else verdict.note
        )

    def pull(self, ctx: PullContext, in_scope: set[int] | None) -> Iterator[Batch]:
        assert ctx.view is not None
        cursor = ctx.cursors.get("completions") if not ctx.full else None
        since = datetime.fromisoformat(cursor) - self.lookback if cursor else None
        index = ctx.view.index()
        newest = datetime.fromisoformat(cursor) if cursor else None
        # A row of an HR person whose account is not linked yet cannot be stored by user id: the
        # cursor is held at the oldest such row, so it is read again once the link appears.
        held: datetime | None = None
        kept = 0
        page = 0
        while True:
            answer = self.client.call(
                "core_reportbuilder_retrieve_report",
                {"reportid": self.report_id, "page": page, "perpage": self.page_size},
                lang="en",
                timezone="UTC",
            )
            data = answer.get("data", {})
            rows = data.get("rows", [])
            at = self.columns.positions(data.get("headers", []), self.site)
            records: list[Record] = []
            reached_cursor = False
            for row in rows:
                columns = row.get("columns", [])
                try:
                    when = parse_report_date(columns[at["completed"]] or "", self.zone)
                except (ValueError, IndexError):
                    log.warning("report row without a readable completion time", site=self.site, row=columns)
                    continue
                if since is not None and when < since:
                    reached_cursor = True
                    break
                newest = max(newest, when) if newest else when
                idnumber = (columns[at["idnumber"]] or "").strip()
                email = (columns[at["email"]] or "").strip().lower() if "email" in at else ""
                user_id = index.users_by_idnumber.get(idnumber)
                if user_id is None and email:
                    user_id = index.users_by_email.get(email)
                course_id = index.courses_by_shortname.get(columns[at["course"]] or "")
                if user_id is None and (
                    idnumber in ctx.people.employee_numbers or email in ctx.people.emails
                ):
                    held = min(held, when) if held else when
                    kept += 1
                    continue
                if (
                    user_id is None
                    or course_id is None
                    or (in_scope is not None and course_id not in in_scope)
                ):
                    continue  # not a person or course any mapping needs
                records.append(Completion(self.site, user_id, course_id, when))
            if page == 0 and self.times_checked is None:
                self.check_times(
                    [(r.user_id, r.item_id, r.completed_at) for r in records if isinstance(r, Completion)]
                )
            last_page = (page + 1) * self.page_size >= int(data.get("totalrowcount", 0)) or not rows
            if reached_cursor or last_page:
                if kept:
                    log.info(
                        "completions of HR people without a linked account are read again next poll",
                        site=self.site,
                        rows=kept,
                        held_at=stamp(held) if held else None,
                    )
                until = min(newest, held) if newest and held else newest
                yield Batch("completions", records, cursor=stamp(until) if until else None)
                return
            yield Batch("completions", records)
            page += 1


class PerLearnerFeed:
    """``core_enrol_get_users_courses`` per learner; completion times only for new completions."""

    name = "per_learner"

    def __init__(self, site: str, client: MoodleClient, batch: int = 200) -> None:
        self.site = site
        self.client = client
        self.batch = batch

    def pull(self, ctx: PullContext, in_scope: set[int] | None) -> Iterator[Batch]:
        assert ctx.view is not None
        linked = learners(ctx)
        known = ctx.view.known_completions()
        records: list[Record] = []
        for count, user_id in enumerate(sorted(linked), start=1):
            records.extend(self._learner(user_id, in_scope, known))
            if count % self.batch == 0:
                yield Batch("completions", records)
                records = []
        yield Batch("completions", records, cursor=refreshed(ctx))

    def _courses(self, user_id: int) -> list[dict[str, Any]]:
        """The courses ``user_id`` is actively enrolled in."""
        answer = self.client.call(
            "core_enrol_get_users_courses", {"userid": user_id, "returnusercount": False}
        )
        return [c for c in answer if isinstance(c, dict)] if isinstance(answer, list) else []

    def _may_be_complete(self, course: dict[str, Any]) -> bool:
        """Whether to ask for the completion time (Moodle 3.6+ says which courses are complete)."""
        return bool(course.get("completed"))

    def _learner(self, user_id: int, in_scope: set[int] | None, known: set[tuple[int, int]]) -> list[Record]:
        try:
            courses = self._courses(user_id)
        except errors.MoodleError as exc:
            if exc.remedy is Remedy.SKIP_ITEM:
                log.info("learner skipped", site=self.site, user_id=user_id, reason=exc.errorcode)
                return []
            raise
        records: list[Record] = []
        for course in courses:
            course_id = int(course["id"])
            if in_scope is not None and course_id not in in_scope:
                continue
            records.append(Enrolment(self.site, user_id, course_id, active=True))
            if (user_id, course_id) not in known and self._may_be_complete(course):
                when = completion_time(self.client, self.site, user_id, course_id)
                if when is not None:
                    records.append(Completion(self.site, user_id, course_id, when))
        return records


class PerCourseFeed:
    """Participants of the few courses in scope, then a status call per learner not yet complete."""

    name = "per_course"

    def __init__(self, site: str, client: MoodleClient, page_size: int = 1000) -> None:
        self.site = site
        self.client = client
        self.page_size = page_size

    def pull(self, ctx: PullContext, in_scope: set[int] | None) -> Iterator[Batch]:
        assert ctx.view is not None
        if in_scope is None:
            raise SourceError(
                f"site '{self.site}': the per-course feed needs the mappings' courses", Remedy.FIX_CONFIG
            )
        linked = learners(ctx)
        known = ctx.view.known_completions()
        for course_id in sorted(in_scope):
            records: list[Record] = []
            for user_id in self._participants(course_id):
                if user_id not in linked:
                    continue
                records.append(Enrolment(self.site, user_id, course_id, active=True))
                if (user_id, course_id) not in known:
                    when = completion_time(self.client, self.site, user_id, course_id)
                    if when is not None:
                        records.append(Completion(self.site, user_id, course_id, when))
            yield Batch("completions", records)
        yield Batch("completions", [], cursor=refreshed(ctx))

    def _participants(self, course_id: int) -> Iterator[int]:
        def page(start: int) -> Page[dict[str, Any]]:
            options = [
                {"name": "userfields", "value": "id"},
                {"name": "onlyactive", "value": 1},
                {"name": "limitfrom", "value": start},
                {"name": "limitnumber", "value": self.page_size},
            ]
            return Page(
                self.client.call("core_enrol_get_enrolled_users", {"courseid": course_id, "options": options})
            )

        paginator = OffsetPaginator(f"site '{self.site}': participants of course {course_id}", self.page_size)
        for users in paginate(paginator, page):
            yield from (int(u["id"]) for u in users.items)


def learners(ctx: PullContext, people: frozenset[str] | None = None) -> set[int]:
    """LMS users linked to people some mapping's audience can reach (or to ``people``)."""
    assert ctx.view is not None
    linked = ctx.view.linked_users()
    wanted = people if people is not None else ctx.scope.person_ids
    if wanted is not None:
        return {uid for uid, pid in linked.items() if pid in wanted}
    return set(linked)


def _completion_status(client: MoodleClient, user_id: int, course_id: int) -> tuple[bool, datetime | None]:
    """Whether the course is complete, and its latest criterion time (Moodle has no course-level one)."""
    try:
        status: dict[str, Any] = client.call(
            "core_completion_get_course_completion_status", {"courseid": course_id, "userid": user_id}
        )
    except errors.MoodleError as exc:
        if exc.remedy is Remedy.SKIP_ITEM:
            return False, None
        raise
    completion = status.get("completionstatus", {})
    times = [c.get("timecompleted") for c in completion.get("completions", []) if c.get("timecompleted")]
    latest = datetime.fromtimestamp(max(times), UTC) if times else None
    return bool(completion.get("completed")), latest


def exact_completion_time(client: MoodleClient, user_id: int, course_id: int) -> datetime | None:
    completed, latest = _completion_status(client, user_id, course_id)
    return latest if completed else None


def completion_time(client: MoodleClient, site: str, user_id: int, course_id: int) -> datetime | None:
    """The latest criterion time is the best proxy for when the course was completed."""
    completed, latest = _completion_status(client, user_id, course_id)
    if not completed:
        return None
    return latest or clock.now()
