"""The Moodle contract checks against a real site (pytest marker ``live``).

The same checks (tests/moodle_checks.py) the simulator passes at every release, run against a
site set up as README > Moodle says. Set ``LMSBRIDGE_TEST_MOODLE_URL`` and
``LMSBRIDGE_TEST_MOODLE_TOKEN`` (the lmsbridge user's token) and optionally:
``LMSBRIDGE_TEST_MOODLE_VERSION`` (the branch you expect, e.g. ``5.0``),
``LMSBRIDGE_TEST_MOODLE_IDNUMBER`` / ``_EMAIL`` (a learner's ID number and email, default the
seeded ``000001`` / ``ana.garcia@example.org``), ``LMSBRIDGE_TEST_MOODLE_REPORT_NAME``, and
``LMSBRIDGE_TEST_MOODLE_WRITES=1`` with ``LMSBRIDGE_TEST_MOODLE_WRITE_COURSE`` (a course id) to
allow the one write (an enrolment of that learner). Without WRITES nothing is written: the
role-assignment check is Moodle's refusal on the front page, which has no enrolment method.
Run: ``pytest -m live tests/live/test_moodle_live.py``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.moodle.sim.versions import SPECS
from tests import moodle_checks as checks

URL = os.environ.get("LMSBRIDGE_TEST_MOODLE_URL", "").rstrip("/")
TOKEN = os.environ.get("LMSBRIDGE_TEST_MOODLE_TOKEN", "")
VERSION = os.environ.get("LMSBRIDGE_TEST_MOODLE_VERSION", "")
IDNUMBER = os.environ.get("LMSBRIDGE_TEST_MOODLE_IDNUMBER", "000001")
EMAIL = os.environ.get("LMSBRIDGE_TEST_MOODLE_EMAIL", "ana.garcia@example.org")
REPORT = os.environ.get("LMSBRIDGE_TEST_MOODLE_REPORT_NAME", "Course completions (lmsbridge)")
WRITES = os.environ.get("LMSBRIDGE_TEST_MOODLE_WRITES", "") == "1"
WRITE_COURSE = os.environ.get("LMSBRIDGE_TEST_MOODLE_WRITE_COURSE", "")

pytestmark = pytest.mark.live
if not (URL and TOKEN):
    pytest.skip(
        "no real Moodle site: set LMSBRIDGE_TEST_MOODLE_URL and LMSBRIDGE_TEST_MOODLE_TOKEN to run the live suite",
        allow_module_level=True,
    )
needs_writes = pytest.mark.skipif(
    not (WRITES and WRITE_COURSE),
    reason="writes not allowed: set LMSBRIDGE_TEST_MOODLE_WRITES=1 and LMSBRIDGE_TEST_MOODLE_WRITE_COURSE",
)
README_FUNCTIONS = {
    "core_webservice_get_site_info",
    "core_user_get_users_by_field",
    "core_user_get_users",
    "core_course_get_courses_by_field",
    "core_reportbuilder_list_reports",
    "core_reportbuilder_retrieve_report",
    "core_enrol_get_users_courses",
    "core_completion_get_course_completion_status",
    "core_enrol_get_enrolled_users",
    "core_message_send_instant_messages",
    "core_message_get_messages",
    "enrol_manual_enrol_users",
    "core_competency_list_competency_frameworks",
    "core_competency_list_competencies",
    "tool_lp_data_for_user_competency_summary",
    "core_competency_create_plan",
    "core_competency_add_competency_to_plan",
}


@pytest.fixture(scope="module")
def raw() -> checks.Raw:
    return checks.raw_caller(URL, TOKEN)


@pytest.fixture(scope="module")
def info(raw: checks.Raw) -> dict[str, Any]:
    return checks.site_info(raw)


def test_site_info_and_the_service_functions(info: dict[str, Any]) -> None:
    if VERSION:
        assert info["release"].split(" ")[0] == VERSION or info["release"].startswith(f"{VERSION}."), info[
            "release"
        ]
    offered = {f["name"] for f in info["functions"]}
    assert offered >= README_FUNCTIONS, f"not in the service: {sorted(README_FUNCTIONS - offered)}"


def test_a_learner_is_found_by_idnumber_and_by_email(raw: checks.Raw) -> None:
    checks.check_full_lookup(raw, IDNUMBER, EMAIL)


def test_courses_are_readable(raw: checks.Raw) -> None:
    answer = raw("core_course_get_courses_by_field", {})
    assert answer["courses"] and all("shortname" in c for c in answer["courses"])


def report_id(raw: checks.Raw, info: dict[str, Any]) -> int:
    answer = raw("core_reportbuilder_list_reports", {"page": 0, "perpage": 50})
    ids = [int(r["id"]) for r in answer.get("reports", []) if r.get("name") == REPORT]
    if not ids and "local_lmsbridge_get_changes" in {f["name"] for f in info["functions"]}:
        pytest.skip(f"no report {REPORT!r}: the site has the companion plugin, whose feed replaces it")
    assert ids, f"report {REPORT!r} not visible to the web-service user: {answer}"
    return ids[0]


def test_the_report_is_readable_and_its_times_are_utc(raw: checks.Raw, info: dict[str, Any]) -> None:
    rows = checks.check_report_utc(raw, report_id(raw, info))
    assert rows, "the completions report has no rows"
    compared = 0
    for idnumber, email, shortname, shown in rows:
        users = checks.user_by(raw, "idnumber", idnumber) if idnumber else checks.user_by(raw, "email", email)
        courses = raw("core_course_get_courses_by_field", {"field": "shortname", "value": shortname})[
            "courses"
        ]
        if not users or not courses:
            continue
        status = raw(
            "core_completion_get_course_completion_status",
            {"courseid": courses[0]["id"], "userid": users[0]["id"]},
        )
        times = [
            c["timecompleted"] for c in status["completionstatus"]["completions"] if c.get("timecompleted")
        ]
        if not times:
            continue
        exact = datetime.fromtimestamp(max(times), UTC).replace(second=0)
        assert checks.report_time(shown) == exact, (shown, exact, "a forced time zone?")
        compared += 1
    assert compared, "no report row could be compared with its exact completion time"


def test_the_role_may_assign_students_checked_without_writing(raw: checks.Raw, info: dict[str, Any]) -> None:
    """Student passes the role check, Manager (a role the lmsbridge role may not assign) does not;
    how the front page is refused after it is the simulator's spec for this release."""
    branch = ".".join(str(info["release"]).split(".")[:2])
    fatal = SPECS[branch].noinstance_is_fatal if branch in SPECS else False
    checks.past_the_role_check(raw, {"roleid": 5, "userid": info["userid"]}, fatal)
    manager = {"roleid": 1, "userid": info["userid"], "courseid": 1}
    checks.refusal(raw("enrol_manual_enrol_users", {"enrolments": [manager]}), "wsusercannotassign")


def test_suspended_enrolments_are_listed_apart(raw: checks.Raw) -> None:
    courses = raw("core_course_get_courses_by_field", {})["courses"]
    course = next(c for c in courses if c["id"] != 1)
    for option in ("onlyactive", "onlysuspended"):
        answer = raw(
            "core_enrol_get_enrolled_users",
            {"courseid": course["id"], "options": [{"name": option, "value": 1}]},
        )
        assert isinstance(answer, list), answer


def test_a_bad_token_is_refused_as_moodle_does() -> None:
    answer = checks.raw_caller(URL, "0" * 32)("core_webservice_get_site_info")
    checks.refusal(answer, "invalidtoken")


@needs_writes
def test_an_enrolment_answers_null(raw: checks.Raw) -> None:
    user = checks.user_by(raw, "idnumber", IDNUMBER)[0]
    item = {"roleid": 5, "userid": user["id"], "courseid": int(WRITE_COURSE)}
    assert raw("enrol_manual_enrol_users", {"enrolments": [item]}) is None


PLUGIN_FUNCTIONS = {"local_lmsbridge_get_changes", "local_lmsbridge_get_info"}


def test_the_companion_plugin_answers_as_the_simulator_does(raw: checks.Raw, info: dict[str, Any]) -> None:
    offered = {f["name"] for f in info["functions"]}
    if not offered >= PLUGIN_FUNCTIONS:
        pytest.skip(
            "the companion plugin's functions are not in the service (README > Moodle > The companion plugin)"
        )
    checks.check_plugin_changes(raw)
    checks.check_plugin_info(raw)
