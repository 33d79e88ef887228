"""The companion plugin's change log: completions, ratings, enrolments and user changes, one feed.

``local_lmsbridge_get_changes(since_id, limit)`` answers the log's rows after a cursor, oldest
first, with exact epoch times; the cursor is the last row's id, stored with the records like
every other cursor. A steady poll is one call whatever the size of the site; the first sync
(since_id 0) reads the backfill the plugin wrote at install and then the log, in pages.

Rows are written by concurrent Moodle requests, so a row with a smaller id can commit just after
one with a larger id has been read. Each poll therefore reads again from :data:`OVERLAP` ids
before the cursor: what it reads twice is stored unchanged (upserts touch only changed rows),
and users are refreshed only for rows after the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from bridge.log import get_logger
from bridge.ports import Batch, PullContext
from bridge.records import CompetencyRating, Completion, Enrolment, LmsUser, Record
from connectors.moodle.client import MoodleClient

log = get_logger(__name__)

GET_CHANGES = "local_lmsbridge_get_changes"
SET_RECOMMENDATIONS = "local_lmsbridge_set_recommendations"
GET_INFO = "local_lmsbridge_get_info"
SIGNATURE_HEADER = "X-Lmsbridge-Signature"  # notify_webhook::HEADER
STREAM = "changes"
PAGE = 1000  # the plugin's most rows per call
OVERLAP = 100


def moment(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


class ChangesFeed:
    """Every learning change from the plugin's log, mapped to the records the other feeds produce.

    ``competencies``: the site's competency ids the mappings need (None: ratings are not needed),
    asked at each pull. ``users``: reads full user records by id (changed accounts).
    """

    name = "plugin"

    def __init__(
        self,
        site: str,
        client: MoodleClient,
        competencies: Callable[[PullContext], set[int] | None],
        users: Callable[[list[int]], Iterator[list[LmsUser]]],
        page_size: int = PAGE,
    ) -> None:
        self.site = site
        self.client = client
        self.competencies = competencies
        self.users = users
        self.page_size = page_size

    def pull(self, ctx: PullContext, in_scope: set[int] | None) -> Iterator[Batch]:
        cursor = ctx.cursors.get(STREAM)
        seen = 0 if ctx.full or not cursor else int(cursor)
        since = max(0, seen - OVERLAP)
        wanted = self.competencies(ctx)
        while True:
            answer = self.client.call(GET_CHANGES, {"since_id": since, "limit": self.page_size})
            if int(answer.get("latestid", seen)) < seen:
                # The log ends before the cursor: the plugin was reinstalled (its tables dropped,
                # its backfill written anew, its ids started again), or a privacy deletion took
                # its newest rows. Reading it again from the start is right in both cases.
                log.warning(
                    "the companion plugin's change log ends before the cursor; reading it again from the start",
                    site=self.site,
                    cursor=seen,
                    latest=answer.get("latestid"),
                )
                seen = since = 0
                continue
            rows: list[dict[str, Any]] = answer.get("changes", [])
            records: list[Record] = []
            changed_users: list[int] = []
            for row in rows:
                record = self._record(row, in_scope, wanted)
                if record is not None:
                    records.append(record)
                elif row["kind"] == "user" and not row.get("deleted") and int(row["id"]) > seen:
                    changed_users.append(int(row["userid"]))
            for users in self.users(sorted(set(changed_users))):
                records.extend(users)
            last = int(answer.get("lastid", since))
            # Each page's cursor is stored with its records: a first sync cut short goes on
            # from the last page stored.
            yield Batch(STREAM, records, cursor=str(max(last, seen)))
            if not answer.get("more") or last <= since:
                return
            since = last

    def _record(
        self, row: dict[str, Any], in_scope: set[int] | None, wanted: set[int] | None
    ) -> Record | None:
        kind, user_id = row["kind"], int(row["userid"])
        course_id = int(row.get("courseid") or 0)
        if kind == "completion":
            if in_scope is not None and course_id not in in_scope:
                return None
            return Completion(self.site, user_id, course_id, moment(row["timechanged"]))
        if kind == "enrolment":
            if in_scope is not None and course_id not in in_scope:
                return None
            return Enrolment(self.site, user_id, course_id, active=row.get("status") == "active")
        if kind == "rating":
            # A rating given in a course is the course's, not the learner's own rating (which
            # Moodle rates, and the plugin logs, separately when the course pushes ratings).
            competency_id = int(row["competencyid"])
            if course_id or wanted is None or competency_id not in wanted:
                return None
            grade = row.get("grade")
            proficiency = row.get("proficiency")
            return CompetencyRating(
                site=self.site,
                user_id=user_id,
                competency_id=competency_id,
                proficient=None if proficiency is None else bool(proficiency),
                grade=None if grade is None else int(grade),
                grade_name=(row.get("gradename") or None) if grade else None,
                rated_at=moment(row["timechanged"]) if grade else None,
                in_plan=bool(row.get("planid")),
            )
        if kind == "user" and row.get("deleted"):
            return LmsUser(self.site, user_id, suspended=True, deleted=True)
        return None
