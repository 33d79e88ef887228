"""Totara's legacy web services where they differ from Moodle's, as lmsbridge calls them.

Totara 13 to 19 keep the web-service layer of the Moodle 3.3 era, so the calls Moodle 3.6+
accepts are not all there: ``core_enrol_get_users_courses`` takes only ``userid`` (an extra
``returnusercount`` fails the call with ``invalid_parameter_exception``) and its answer has no
``completed`` field, so it can list a learner's courses but never say which are complete
(source: Totara's ``server/enrol/externallib.php``). The per-learner completion feed here lists
each learner's active enrolments with it, then asks
``core_completion_get_course_completion_status`` about each enrolled course with completion
tracking that lmsbridge does not already hold as complete.

Calls per poll: 1 per learner in scope + 1 per (learner, enrolled course in scope, completion
enabled, not yet known complete). A read-only replica (``replica_url``) replaces all of it with
one query per stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bridge.errors import Remedy
from bridge.log import get_logger
from bridge.ports import Batch, PullContext
from bridge.records import Completion, Enrolment, Record
from connectors.moodle import errors
from connectors.moodle.client import MoodleClient
from connectors.moodle.feeds import completion_time, learners, stamp

log = get_logger(__name__)

USERS_COURSES = "core_enrol_get_users_courses"
COMPLETION_STATUS = "core_completion_get_course_completion_status"


def users_courses(client: MoodleClient, user_id: int) -> list[dict[str, Any]]:
    """The courses ``user_id`` is actively enrolled in, with only the parameter Totara accepts."""
    answer = client.call(USERS_COURSES, {"userid": user_id})
    if not isinstance(answer, list):
        raise ValueError(f"{USERS_COURSES} answered {type(answer).__name__}, not a list")
    return [c for c in answer if isinstance(c, dict)]


class TotaraLearnerFeed:
    """Completions per learner through the legacy functions every Totara version has."""

    name = "per_learner (Totara legacy)"

    def __init__(self, site: str, client: MoodleClient, batch: int = 200) -> None:
        self.site = site
        self.client = client
        self.batch = batch

    def pull(self, ctx: PullContext, in_scope: set[int] | None) -> Iterator[Batch]:
        assert ctx.view is not None
        known = ctx.view.known_completions()
        records: list[Record] = []
        for count, user_id in enumerate(sorted(learners(ctx)), start=1):
            records.extend(self._learner(user_id, in_scope, known))
            if count % self.batch == 0:
                yield Batch("completions", records)
                records = []
        yield Batch("completions", records, cursor=stamp(ctx.now))

    def _learner(self, user_id: int, in_scope: set[int] | None, known: set[tuple[int, int]]) -> list[Record]:
        try:
            courses = users_courses(self.client, user_id)
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
            if (user_id, course_id) in known or not course.get("enablecompletion", True):
                continue
            when = completion_time(self.client, self.site, user_id, course_id)
            if when is not None:
                records.append(Completion(self.site, user_id, course_id, when))
        return records
