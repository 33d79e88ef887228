"""``lmsbridge doctor`` for a Moodle site: what works, what is missing, and exactly how to fix it."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.errors import BridgeError
from bridge.ports import DoctorCheck
from connectors.moodle.client import MoodleClient
from connectors.moodle.feeds import ReportFeed
from connectors.moodle.source import MoodleSource

# function -> (what it is for, capabilities the web-service user needs)
FUNCTIONS = {
    "core_webservice_get_site_info": ("site checks", "webservice/rest:use"),
    "core_user_get_users_by_field": (
        "finding learners' accounts",
        "moodle/user:viewdetails, moodle/user:viewhiddendetails, moodle/course:useremail",
    ),
    "core_user_get_users": ("finding accounts by email", "moodle/user:viewdetails"),
    "core_course_get_courses_by_field": (
        "reading courses",
        "moodle/course:view, moodle/course:viewhiddencourses",
    ),
    "core_reportbuilder_list_reports": (
        "finding the completions report",
        "moodle/reportbuilder:view (and be in the report's audience)",
    ),
    "core_reportbuilder_retrieve_report": (
        "the report completion feed (Moodle 4.1+)",
        "moodle/reportbuilder:view (and be in the report's audience)",
    ),
    "core_enrol_get_users_courses": (
        "the per-learner completion feed",
        "moodle/course:viewparticipants, report/completion:view",
    ),
    "core_enrol_get_enrolled_users": (
        "the per-course completion feed",
        "moodle/course:viewparticipants, moodle/course:enrolreview",
    ),
    "core_completion_get_course_completion_status": ("completion times", "report/completion:view"),
    "core_message_send_instant_messages": (
        "messaging learners and managers",
        "moodle/site:sendmessage, moodle/site:messageanyuser",
    ),
    "core_message_get_messages": (
        "checking sent messages after a crash",
        "(none: the sender reads its own messages)",
    ),
    "enrol_manual_enrol_users": (
        "enrolling learners",
        "enrol/manual:enrol, and the student role assignable by the user's role",
    ),
    "core_competency_list_competency_frameworks": (
        "reading competencies",
        "moodle/competency:competencyview",
    ),
    "core_competency_list_competencies": ("reading competencies", "moodle/competency:competencyview"),
    "core_competency_list_user_plans": ("reading learning plans", "moodle/competency:planview"),
    "core_competency_list_plan_competencies": ("reading learners' ratings", "moodle/competency:planview"),
    "core_competency_create_plan": ("creating a learning plan", "moodle/competency:planmanage"),
    "core_cohort_add_cohort_members": ("adding learners to audiences (cohorts)", "moodle/cohort:assign"),
    "core_competency_add_competency_to_plan": (
        "adding a competency to a plan",
        "moodle/competency:planmanage",
    ),
}
READ = [
    "core_webservice_get_site_info",
    "core_user_get_users_by_field",
    "core_user_get_users",
    "core_course_get_courses_by_field",
]
NEEDS = {
    "message": ["core_message_send_instant_messages", "core_message_get_messages"],
    "enrol": ["enrol_manual_enrol_users", "core_enrol_get_users_courses"],
    "plan": [
        "core_competency_list_user_plans",
        "core_competency_list_plan_competencies",
        "core_competency_create_plan",
        "core_competency_add_competency_to_plan",
    ],
    "competencies": [
        "core_competency_list_competency_frameworks",
        "core_competency_list_competencies",
        "core_competency_list_user_plans",
        "core_competency_list_plan_competencies",
    ],
}
FEED_FUNCTIONS = {
    "report": ["core_reportbuilder_list_reports", "core_reportbuilder_retrieve_report"],
    "per_learner": ["core_enrol_get_users_courses", "core_completion_get_course_completion_status"],
    "per_course": ["core_enrol_get_enrolled_users", "core_completion_get_course_completion_status"],
}


def function_check(function: str, offered: set[str]) -> DoctorCheck:
    purpose, capability = FUNCTIONS.get(function, ("", ""))
    present = function in offered
    fix = (
        "Site administration > Server > Web services > External services > (the token's service) > Functions > "
        f"Add: {function}; the web-service user needs {capability}"
    )
    return DoctorCheck(f"function {function}", present, purpose, "" if present else fix)


def checks(source: MoodleSource, needs: Sequence[str]) -> list[DoctorCheck]:
    client: MoodleClient = source.client
    results: list[DoctorCheck] = []
    try:
        info = client.site_info()
    except BridgeError as exc:
        return [
            DoctorCheck(
                "reachable, token valid",
                False,
                str(exc),
                "check the site URL, the token, and that web services and REST are enabled",
            )
        ]
    results.append(
        DoctorCheck(
            "reachable, token valid", True, f"{info.get('sitename', '')}, signed in as {info.get('username')}"
        )
    )
    results.append(DoctorCheck("Moodle release", True, str(info.get("release", "unknown")), required=False))
    offered = {f["name"] for f in info.get("functions", [])}
    try:
        feed = source.feed()
    except BridgeError as exc:
        results.append(
            DoctorCheck("completion feed", False, str(exc), "see README > Moodle > The completions report")
        )
        feed = None
    if feed is not None:
        detail = f"{feed.name}" + (
            ""
            if feed.name == "report"
            else " (the report feed is far cheaper on Moodle 4.1+: see README > Moodle)"
        )
        results.append(DoctorCheck("completion feed", True, detail, required=False))
        if isinstance(feed, ReportFeed):
            results.append(_report_columns(feed))
    wanted = [
        *READ,
        *(FEED_FUNCTIONS[feed.name] if feed else []),
        *(f for need in needs for f in NEEDS.get(need, [])),
    ]
    results.extend(function_check(f, offered) for f in dict.fromkeys(wanted))
    features = {f["name"]: f["value"] for f in info.get("advancedfeatures", [])}
    results.append(
        DoctorCheck(
            "completion tracking enabled",
            bool(features.get("enablecompletion", 0)),
            "",
            "Site administration > Advanced features > Enable completion tracking",
        )
    )
    if "message" in needs:
        results.append(
            DoctorCheck(
                "messaging enabled",
                bool(features.get("messaging", 0)),
                "",
                "Site administration > Advanced features > Enable messaging system",
            )
        )
    if {"plan", "competencies"} & set(needs) and "enablecompetencies" in features:
        results.append(
            DoctorCheck(
                "competencies enabled",
                bool(features["enablecompetencies"]),
                "",
                "Site administration > Advanced features > Enable competencies",
            )
        )
    return results


def _report_columns(feed: ReportFeed) -> DoctorCheck:
    try:
        answer = feed.client.call(
            "core_reportbuilder_retrieve_report",
            {"reportid": feed.report_id, "page": 0, "perpage": 1},
            lang="en",
            timezone="UTC",
        )
        feed.columns.positions(answer.get("data", {}).get("headers", []), feed.site)
    except BridgeError as exc:
        return DoctorCheck(
            "completion report columns", False, str(exc), "see README > Moodle > The completions report"
        )
    return DoctorCheck(
        "completion report columns",
        True,
        f"report {feed.report_id}: {', '.join(feed.columns.names.values())}",
    )
