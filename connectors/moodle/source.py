"""Reading a Moodle site: users, courses, completions, competencies and learning plans.

Streams and what they cost the site:

- ``users``: the HR people's accounts, by ``idnumber`` (= employee number) and then by email,
  100 values per ``core_user_get_users_by_field`` call. Afterwards only people who are not
  linked yet and whose HR record changed are looked up; everyone is refreshed once a day (to
  see suspensions) or on ``--full``.
- ``courses``: one ``core_course_get_courses_by_field`` call for every course, at most hourly.
- ``completions``: one of the feeds in :mod:`connectors.moodle.feeds`, chosen automatically —
  or, on a site with the companion plugin, its change log (:mod:`connectors.moodle.changes`,
  stream ``changes``), which also carries enrolments, ratings and account changes, so the
  ``enrolments`` and ratings reads below are not made.
- ``competencies`` (only when a mapping uses competencies): frameworks and competencies hourly;
  learners' plans and their ratings (``core_competency_list_user_plans`` and
  ``list_plan_competencies``) for the learners in scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any, Literal

from bridge import incremental
from bridge.errors import Remedy, SourceError
from bridge.incremental import refreshed
from bridge.log import get_logger
from bridge.pagination import OffsetPaginator, Page, paginate
from bridge.ports import Batch, PersonKeys, PullContext
from bridge.records import Competency, CompetencyRating, Enrolment, ItemKind, LearningItem, LmsUser, Record
from connectors.moodle import errors
from connectors.moodle.changes import GET_CHANGES, ChangesFeed
from connectors.moodle.client import MoodleClient
from connectors.moodle.feeds import PerCourseFeed, PerLearnerFeed, ReportColumns, ReportFeed, learners

log = get_logger(__name__)

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USERS_REFRESH = timedelta(hours=24)
# HR rows are stamped when written and seen when committed; a look-back covers the gap (and a
# clock pinned for a replay, where every HR change carries the same instant).
HR_LOOKBACK = timedelta(minutes=5)
UNLINKED_REFRESH = timedelta(hours=1)
COURSES_REFRESH = timedelta(hours=1)
ENROLMENTS_REFRESH = timedelta(hours=1)
ENROLMENT_PAGE = 1000
COMPETENCY_PAGE = 200
LIKE_FALLBACK_LIMIT = 50
NEVER = datetime.min.replace(tzinfo=UTC)  # sorts HR records without a change time first
FeedName = Literal["auto", "plugin", "report", "per_learner", "per_course"]
Feed = ChangesFeed | ReportFeed | PerLearnerFeed | PerCourseFeed


@contextmanager
def unexpected_answers(site: str) -> Iterator[None]:
    """An answer missing a field or shaped otherwise (a plugin, a proxy, a version we have not
    seen) fails the pull with one line naming the site, never a raw KeyError or TypeError."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        detail = f"{type(exc).__name__}: {exc}"[:200]
        raise SourceError(f"{site} sent an answer of an unexpected shape ({detail})", Remedy.RETRY) from None


def text(value: object) -> str | None:
    """A scalar from an answer as text; anything else is an answer of the wrong shape."""
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a text value, got {type(value).__name__}")


def number(value: object) -> int | None:
    return None if value is None or value == "" else int(text(value) or "")


def user_record(site: str, data: dict[str, Any]) -> LmsUser:
    return LmsUser(
        site=site,
        user_id=int(data["id"]),
        username=text(data.get("username")),
        idnumber=(text(data.get("idnumber")) or "").strip() or None,
        email=text(data.get("email")) or None,
        first_name=text(data.get("firstname")) or "",
        last_name=text(data.get("lastname")) or "",
        suspended=bool(data.get("suspended", False)),
    )


def _like_position(cursor: str | None) -> tuple[datetime, str] | None:
    """The ``like_tried`` cursor: HR versions up to (time, HR id) were searched by email letter
    case; a bare time: every version of that time was."""
    if not cursor:
        return None
    at, _, person = cursor.partition("|")
    return datetime.fromisoformat(at), person or "\U0010ffff"


def _after(person: PersonKeys, position: tuple[datetime, str]) -> bool:
    return person.changed_at is not None and (person.changed_at, person.person_id) > position


def _like_cursor(last: PersonKeys) -> str | None:
    """Searched up to ``last``, the last one asked, of a poll that could not ask everyone."""
    return f"{last.changed_at.astimezone(UTC).isoformat()}|{last.person_id}" if last.changed_at else None


def _newest_cursor(through: tuple[datetime, str] | None, people: Sequence[PersonKeys]) -> str | None:
    """Searched every version up to the newest one considered."""
    times = [through[0]] if through else []
    times += [p.changed_at for p in people if p.changed_at is not None]
    return max(times).astimezone(UTC).isoformat() if times else None


class MoodleSource:
    def __init__(
        self,
        name: str,
        client: MoodleClient,
        *,
        users_chunk: int = 100,
        feed: FeedName = "auto",
        report: int | str | None = None,
        report_columns: ReportColumns | None = None,
        lookback: timedelta = timedelta(days=1),
        report_zone: tzinfo = UTC,
    ) -> None:
        self.name = name
        self.client = client
        self.users_chunk = users_chunk
        self.feed_choice = feed
        self.report = report
        self.report_columns = report_columns or ReportColumns(
            "ID number", "Email address", "Course short name", "Time completed"
        )
        self.lookback = lookback
        self.report_zone = report_zone
        self._feed: Feed | None = None
        self._competencies: list[Competency] | None = None
        self._tried_like: set[tuple[str, datetime | None]] = set()

    def pull(self, ctx: PullContext) -> Iterator[Batch]:
        with unexpected_answers(f"Moodle site '{self.name}'"):
            yield from self.pull_users(ctx)
            yield from self.pull_courses(ctx)
            if isinstance(self.feed(), ChangesFeed):
                # The plugin's log carries ratings, enrolments and user changes too: only the
                # competencies themselves are read here, before the log that names them.
                if ctx.scope.competencies:
                    yield from self.pull_competency_definitions(ctx)
                yield from self.pull_completions(ctx)
                return
            yield from self.pull_completions(ctx)
            yield from self.pull_enrolments(ctx)
            if ctx.scope.competencies:
                yield from self.pull_competencies(ctx)

    # ------------------------------------------------------------------ users

    def pull_users(self, ctx: PullContext) -> Iterator[Batch]:
        """Everyone daily (``users`` cursor); in between, only unlinked people whose HR record
        changed since the newest one the previous poll saw (``users_since``), so a person with
        no account is not looked up again on every poll. A poll before any HR data arrived
        counts for neither."""
        cursor = ctx.cursors.get("users")
        everyone = incremental.refresh_due(ctx, "users", USERS_REFRESH)
        linked = set(ctx.view.linked_users().values()) if ctx.view is not None else set()
        seen = ctx.cursors.get("users_since")
        # Everyone still unlinked is looked up again hourly: a capability granted on the site
        # (moodle/user:viewalldetails, say) then links people without waiting for an HR change.
        retry = incremental.refresh_due(ctx, "unlinked", UNLINKED_REFRESH)
        since = datetime.fromisoformat(seen) if seen and not (everyone or retry) else None
        people = (
            list(ctx.people)
            if everyone
            else [
                p
                for p in (ctx.people if since is None else ctx.people.changed_after(since))
                if p.person_id not in linked
            ]
        )
        found_numbers: set[str] = set()
        found_emails: set[str] = set()
        numbers = sorted(
            {p.employee_number.strip() for p in people if p.employee_number and p.employee_number.strip()}
        )
        for users in self._by_field("idnumber", numbers):
            found_numbers.update(u.idnumber or "" for u in users)
            found_emails.update((u.email or "").lower() for u in users)
            yield Batch("users", users)
        remaining = [p for p in people if (p.employee_number or "").strip() not in found_numbers and p.email]
        emails = sorted({p.email.strip() for p in remaining if p.email and EMAIL.match(p.email.strip())})
        for users in self._by_field("email", emails):
            found_emails.update((u.email or "").lower() for u in users)
            yield Batch("users", users)
        # The case-insensitive fallback costs a call per person: once per HR version of them
        # (the ``like_tried`` cursor: HR versions up to then were tried, even by another
        # process, such as the previous ``sync --once`` from cron), and for everyone daily.
        tried = ctx.cursors.get("like_tried")
        through = _like_position(tried) if not everyone else None
        missing = sorted(
            (
                p
                for p in remaining
                if p.email
                and p.email.strip().lower() not in found_emails
                and (everyone or (p.person_id, p.changed_at) not in self._tried_like)
                and (through is None or _after(p, through))
            ),
            key=lambda p: (p.changed_at or NEVER, p.person_id),
        )
        # At most LIKE_FALLBACK_LIMIT a poll, in (HR time, HR id) order; only those asked count as
        # tried, so the next retry goes on where this one stopped instead of never asking the rest.
        asked, waiting = missing[:LIKE_FALLBACK_LIMIT], missing[LIKE_FALLBACK_LIMIT:]
        self._tried_like.update((p.person_id, p.changed_at) for p in asked)
        yield from self._email_like(asked, len(missing))
        position = _like_cursor(asked[-1]) if waiting else _newest_cursor(through, people)
        if position is not None:
            yield Batch("like_tried", [], cursor=position)
        yield Batch("users", [], cursor=refreshed(ctx) if everyone and ctx.people else cursor)
        newest = ctx.people.newest_change
        # Every HR change stamped before now - HR_LOOKBACK was committed and seen by now; later
        # stamps may still be committing, so the cursor stays behind them until then.
        settled = min(newest, ctx.now - HR_LOOKBACK) if newest is not None else None
        # Full precision: HR stamps carry microseconds, and a cursor cut to the second would
        # keep selecting the newest change for ever.
        cursor_since = settled.astimezone(UTC).isoformat() if settled is not None else seen
        yield Batch("users_since", [], cursor=cursor_since)
        if retry and ctx.people:
            yield Batch("unlinked", [], cursor=refreshed(ctx))

    def _by_field(self, field: str, values: Sequence[str]) -> Iterator[list[LmsUser]]:
        for start in range(0, len(values), self.users_chunk):
            chunk = list(values[start : start + self.users_chunk])
            answer = self.client.call("core_user_get_users_by_field", {"field": field, "values": chunk})
            yield [user_record(self.name, u) for u in answer]

    def _email_like(self, people: Sequence[PersonKeys], missing: int) -> Iterator[Batch]:
        """Emails differing only in letter case: core_user_get_users matches case-insensitively."""
        if missing > len(people):
            log.info(
                "people without an account found by idnumber or email: the rest are asked next polls",
                site=self.name,
                count=missing,
                asked=len(people),
            )
        for person in people:
            assert person.email is not None
            escaped = person.email.strip().replace("%", "").replace("_", r"\_")
            answer = self.client.call(
                "core_user_get_users", {"criteria": [{"key": "email", "value": escaped}]}
            )
            users = [user_record(self.name, u) for u in answer.get("users", [])]
            if len(users) == 1:
                yield Batch("users", users)

    # ------------------------------------------------------------------ courses

    def pull_courses(self, ctx: PullContext) -> Iterator[Batch]:
        if not incremental.refresh_due(ctx, "courses", COURSES_REFRESH):
            return
        answer = self.client.call("core_course_get_courses_by_field", {"field": "", "value": ""})
        items: list[Record] = [
            LearningItem(
                site=self.name,
                item_id=int(c["id"]),
                kind=ItemKind.COURSE,
                shortname=text(c.get("shortname")) or "",
                fullname=text(c.get("fullname")) or "",
                idnumber=text(c.get("idnumber")) or None,
                category_id=number(c.get("categoryid")),
                completion_enabled=bool(c.get("enablecompletion", 0)),
                visible=bool(c.get("visible", 1)),
                url=f"{self.client.url}/course/view.php?id={c['id']}",
            )
            for c in answer.get("courses", [])
            if int(c["id"]) != 1
        ]
        yield Batch("courses", items, cursor=refreshed(ctx))

    # ------------------------------------------------------------------ completions

    def feed(self) -> Feed:
        """The configured feed, or the cheapest one the site supports (asked once)."""
        if self._feed is None:
            self._feed = self._choose()
            log.info("completion feed chosen", site=self.name, feed=self._feed.name)
        return self._feed

    def _choose(self) -> Feed:
        choice = self.feed_choice
        if choice in ("auto", "plugin") and self.client.has_function(GET_CHANGES):
            return ChangesFeed(self.name, self.client, self._wanted_competencies, self._users_by_id)
        if choice == "plugin":
            raise SourceError(
                f"site '{self.name}' does not offer {GET_CHANGES}: install the companion plugin "
                "local_lmsbridge and add its functions to the service (README > Moodle)",
                Remedy.FIX_CONFIG,
            )
        if choice in ("auto", "report") and self.client.has_function("core_reportbuilder_retrieve_report"):
            report_id = self._report_id()
            if report_id is not None:
                return ReportFeed(
                    self.name,
                    self.client,
                    report_id,
                    self.report_columns,
                    self.lookback,
                    zone=self.report_zone,
                )
            if choice == "report":
                raise SourceError(
                    f"site '{self.name}': completion report {self.report!r} was not found", Remedy.FIX_CONFIG
                )
        elif choice == "report":
            raise SourceError(
                f"site '{self.name}' does not offer core_reportbuilder_retrieve_report (Moodle 4.1+)",
                Remedy.FIX_CONFIG,
            )
        if choice in ("auto", "per_learner") and self.client.has_function("core_enrol_get_users_courses"):
            return PerLearnerFeed(self.name, self.client)
        return PerCourseFeed(self.name, self.client)

    def _report_id(self) -> int | None:
        if isinstance(self.report, int):
            return self.report
        wanted = self.report or "Course completions (lmsbridge)"
        page = 0
        while True:
            answer = self.client.call("core_reportbuilder_list_reports", {"page": page, "perpage": 50})
            reports = answer.get("reports", [])
            for report in reports:
                if report.get("name") == wanted:
                    return int(report["id"])
            if len(reports) < 50:
                return None
            page += 1

    def pull_completions(self, ctx: PullContext) -> Iterator[Batch]:
        if ctx.view is None:
            return
        refs = ctx.scope.course_refs
        in_scope = ctx.view.course_ids(refs) if refs is not None else None
        if in_scope is not None and not in_scope and not isinstance(self.feed(), ChangesFeed):
            yield Batch("completions", [], cursor=refreshed(ctx))
            return
        yield from self.feed().pull(ctx, in_scope)

    # ------------------------------------------------------------------ enrolments

    def pull_enrolments(self, ctx: PullContext) -> Iterator[Batch]:
        """Who is enrolled in the courses the mappings use, hourly, for the report feed.

        The report carries no enrolment state, yet reminders must stop when a learner is
        unenrolled or suspended: two calls per course in scope (everyone enrolled, and those
        suspended), and stored enrolments no longer listed are marked ended. The other feeds
        read enrolments as they read completions.
        """
        if ctx.view is None or not isinstance(self.feed(), ReportFeed):
            return
        if not incremental.refresh_due(ctx, "enrolments", ENROLMENTS_REFRESH):
            return
        refs = ctx.scope.course_refs
        courses = (
            ctx.view.course_ids(refs)
            if refs is not None
            else set(ctx.view.index().courses_by_shortname.values())
        )
        stored = ctx.view.active_enrolments(courses)
        records: list[Record] = []
        for course_id in sorted(courses):
            enrolled = self._course_participants(course_id, [])
            suspended = self._course_participants(course_id, [{"name": "onlysuspended", "value": 1}])
            records += [Enrolment(self.name, uid, course_id, active=uid not in suspended) for uid in enrolled]
            records += [
                Enrolment(self.name, uid, course_id, active=False)
                for uid, cid in stored
                if cid == course_id and uid not in enrolled
            ]
        yield Batch("enrolments", records, cursor=refreshed(ctx))

    def _course_participants(self, course_id: int, options: list[dict[str, Any]]) -> set[int]:
        found: set[int] = set()
        page = ENROLMENT_PAGE
        while True:
            answer = self.client.call(
                "core_enrol_get_enrolled_users",
                {
                    "courseid": course_id,
                    "options": [
                        {"name": "userfields", "value": "id"},
                        {"name": "limitfrom", "value": len(found)},
                        {"name": "limitnumber", "value": page},
                        *options,
                    ],
                },
            )
            found.update(int(u["id"]) for u in answer)
            if len(answer) < page:
                return found

    # ------------------------------------------------------------------ competencies

    def pull_competencies(self, ctx: PullContext) -> Iterator[Batch]:
        """Ratings of the competencies the mappings name, for the people of those mappings.

        ``tool_lp_data_for_user_competency_summary`` reads a learner's rating of one competency
        wherever Moodle keeps it (in a plan or rated directly, outside any plan): one call per
        learner and competency. Moodle has no bulk or "since" function for ratings. Without it
        in the service, the plans route reads ratings inside plans only (two calls a learner).
        """
        yield from self.pull_competency_definitions(ctx)
        wanted = competency_ids(self._competencies or [], ctx.scope.competency_refs)
        people = ctx.scope.competency_person_ids
        users = learners(ctx) if people is None else learners(ctx, people)
        summary = self.client.has_function(SUMMARY)
        records: list[Record] = []
        for count, user_id in enumerate(sorted(users), start=1):
            if summary:
                records.extend(r for c in sorted(wanted) if (r := self._summary_rating(user_id, c)))
            else:
                records.extend(r for r in self._plan_ratings(user_id) if r.competency_id in wanted)
            if count % 200 == 0:
                yield Batch("ratings", records)
                records = []
        yield Batch("ratings", records, cursor=refreshed(ctx))

    def pull_competency_definitions(self, ctx: PullContext) -> Iterator[Batch]:
        """Frameworks and their competencies, hourly (and on the first pull of a process)."""
        if self._competencies is None or incremental.refresh_due(ctx, "competencies", COURSES_REFRESH):
            self._competencies = list(self._frameworks())
            yield Batch("competencies", list(self._competencies), cursor=refreshed(ctx))

    def _wanted_competencies(self, ctx: PullContext) -> set[int] | None:
        """The competency ids whose ratings the mappings need (None: no mapping uses ratings)."""
        if not ctx.scope.competencies or self._competencies is None:
            return None
        return competency_ids(self._competencies, ctx.scope.competency_refs)

    def _users_by_id(self, user_ids: list[int]) -> Iterator[list[LmsUser]]:
        """Accounts the plugin's log says changed, read again in full."""
        yield from self._by_field("id", [str(u) for u in user_ids])

    def _summary_rating(self, user_id: int, competency_id: int) -> CompetencyRating | None:
        try:
            answer = self.client.call(SUMMARY, {"userid": user_id, "competencyid": competency_id})
        except errors.MoodleError as exc:
            if exc.remedy is Remedy.SKIP_ITEM:
                return None
            raise
        uc = answer.get("usercompetency") or {}
        if not uc:
            return None
        return rating(self.name, user_id, competency_id, uc, in_plan=False)

    def _frameworks(self) -> Iterator[Competency]:
        frameworks = self.client.call(
            "core_competency_list_competency_frameworks",
            {"context": {"contextid": 1}, "includes": "children"},
        )
        for framework in frameworks:
            framework_id = int(framework["id"])
            stream = f"site '{self.name}': competencies of framework {framework_id}"
            pages = paginate(
                OffsetPaginator(stream, COMPETENCY_PAGE), partial(self._competency_page, framework_id)
            )
            for page in pages:
                for c in page.items:
                    yield Competency(
                        self.name,
                        int(c["id"]),
                        text(c.get("shortname")) or "",
                        text(c.get("idnumber")) or None,
                        framework_id,
                        # The learner's own learning plans (tool_lp's plans.php shows the signed-in
                        # user's plans without a userid): where the competency is worked on.
                        url=f"{self.client.url}/admin/tool/lp/plans.php",
                    )

    def _competency_page(self, framework_id: int, skip: int) -> Page[dict[str, Any]]:
        return Page(
            self.client.call(
                "core_competency_list_competencies",
                {
                    "filters": [{"column": "competencyframeworkid", "value": framework_id}],
                    "skip": skip,
                    "limit": COMPETENCY_PAGE,
                },
            )
        )

    def _plan_ratings(self, user_id: int) -> list[CompetencyRating]:
        try:
            plans = self.client.call("core_competency_list_user_plans", {"userid": user_id})
        except errors.MoodleError as exc:
            if exc.remedy is Remedy.SKIP_ITEM:
                return []
            raise
        ratings: dict[int, CompetencyRating] = {}
        for plan in plans:
            if plan.get("status") == 2:
                continue  # completed plans hold archived snapshots
            for item in self.client.call("core_competency_list_plan_competencies", {"id": plan["id"]}):
                uc = item.get("usercompetency") or {}
                competency_id = int(item["competency"]["id"])
                ratings[competency_id] = rating(self.name, user_id, competency_id, uc, in_plan=True)
        return list(ratings.values())


SUMMARY = "tool_lp_data_for_user_competency_summary"


def rating(
    site: str, user_id: int, competency_id: int, uc: dict[str, Any], *, in_plan: bool
) -> CompetencyRating:
    """A user competency as Moodle exports it (the same shape in plans and in the summary)."""
    modified = uc.get("timemodified")
    return CompetencyRating(
        site=site,
        user_id=user_id,
        competency_id=competency_id,
        proficient=None if uc.get("proficiency") is None else bool(uc.get("proficiency")),
        grade=number(uc.get("grade")),
        grade_name=text(uc.get("gradename")) if uc.get("grade") else None,
        rated_at=datetime.fromtimestamp(modified, UTC) if modified and uc.get("grade") else None,
        in_plan=in_plan,
    )


def competency_ids(competencies: Sequence[Competency], refs: frozenset[str] | None) -> set[int]:
    """The site's ids for the mappings' competency references (every competency without refs)."""
    if refs is None:
        return {c.competency_id for c in competencies}
    return {
        c.competency_id
        for c in competencies
        if c.shortname in refs
        or (c.idnumber and c.idnumber in refs)
        or f"id:{c.competency_id}" in refs
        or (c.idnumber and f"idnumber:{c.idnumber}" in refs)
    }
