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

from typing import Any

from connectors.moodle.client import MoodleClient
from connectors.moodle.feeds import PerLearnerFeed

USERS_COURSES = "core_enrol_get_users_courses"


def users_courses(client: MoodleClient, user_id: int) -> list[dict[str, Any]]:
    """The courses ``user_id`` is actively enrolled in, with only the parameter Totara accepts."""
    answer = client.call(USERS_COURSES, {"userid": user_id})
    if not isinstance(answer, list):
        raise ValueError(f"{USERS_COURSES} answered {type(answer).__name__}, not a list")
    return [c for c in answer if isinstance(c, dict)]


class TotaraLearnerFeed(PerLearnerFeed):
    """Completions per learner through the legacy functions every Totara version has."""

    name = "per_learner (Totara legacy)"

    def _courses(self, user_id: int) -> list[dict[str, Any]]:
        return users_courses(self.client, user_id)

    def _may_be_complete(self, course: dict[str, Any]) -> bool:
        return bool(course.get("enablecompletion", True))  # no ``completed`` field: ask each
