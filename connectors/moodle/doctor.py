"""``lmsbridge doctor`` for a Moodle site: what works, what is missing, and exactly how to fix it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bridge.errors import BridgeError
from bridge.ports import DoctorCheck
from bridge.settings import Settings
from connectors.moodle.changes import GET_CHANGES, GET_INFO, SET_RECOMMENDATIONS, ChangesFeed
from connectors.moodle.client import MoodleClient
from connectors.moodle.doctor_probes import (
    account_checks,
    enrol_role_check,
    hr_sample,
    release_tuple,
    report_fallback_reason,
    report_time_check,
)
from connectors.moodle.feeds import ReportFeed
from connectors.moodle.source import SUMMARY, MoodleSource

# function -> the Moodle release that added it (README > Moodle, "since")
SINCE = {
    "core_webservice_get_site_info": "2.2",
    "core_user_get_users_by_field": "2.4",
    "core_user_get_users": "2.5",
    "core_course_get_courses_by_field": "3.2",
    "core_reportbuilder_list_reports": "4.1",
    "core_reportbuilder_retrieve_report": "4.1",
    "core_enrol_get_users_courses": "3.6",
    "core_enrol_get_enrolled_users": "2.1",
    "core_completion_get_course_completion_status": "2.9",
    "core_message_send_instant_messages": "2.2",
    "core_message_get_messages": "2.8",
    "enrol_manual_enrol_users": "2.2",
    "tool_lp_data_for_user_competency_summary": "3.1",
}

# function -> (what it is for, capabilities the web-service user needs)
FUNCTIONS = {
    "core_webservice_get_site_info": ("site checks", "webservice/rest:use"),
    "core_user_get_users_by_field": (
        "finding learners' accounts",
        "moodle/user:viewdetails, moodle/user:viewalldetails (idnumber), moodle/site:viewuseridentity (email)",
    ),
    "core_user_get_users": (
        "finding accounts by email",
        "moodle/user:viewdetails, moodle/site:viewuseridentity",
    ),
    "core_course_get_courses_by_field": (
        "reading courses",
        "moodle/course:view, moodle/course:viewhiddencourses",
    ),
    "core_reportbuilder_list_reports": (
        "finding the completions report",
        "moodle/reportbuilder:view (and be in the report's audience)",
    ),
    "core_reportbuilder_retrieve_report": (
        "the report completion feed",
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
        "enrol/manual:enrol, moodle/role:assign, and the student role under Allow role assignments",
    ),
    "core_competency_list_competency_frameworks": (
        "reading competencies",
        "moodle/competency:competencyview",
    ),
    "core_competency_list_competencies": ("reading competencies", "moodle/competency:competencyview"),
    "core_competency_list_user_plans": ("reading learning plans", "moodle/competency:planview"),
    "core_competency_list_plan_competencies": ("reading learners' ratings", "moodle/competency:planview"),
    "tool_lp_data_for_user_competency_summary": (
        "reading ratings given outside a plan",
        "moodle/competency:planview",
    ),
    "core_competency_create_plan": ("creating a learning plan", "moodle/competency:planmanage"),
    "core_cohort_add_cohort_members": ("adding learners to audiences (cohorts)", "moodle/cohort:assign"),
    "core_competency_add_competency_to_plan": (
        "adding a competency to a plan",
        "moodle/competency:planmanage",
    ),
    GET_CHANGES: (
        "the companion plugin's change feed (completions, ratings, enrolments, user changes)",
        "local/lmsbridge:readchanges",
    ),
    SET_RECOMMENDATIONS: (
        'showing learners their recommendations ("Recommended for you")',
        "local/lmsbridge:managerecommendations",
    ),
    GET_INFO: ("the companion plugin's version and webhook status", "local/lmsbridge:readchanges"),
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
        "tool_lp_data_for_user_competency_summary",
    ],
}
FEED_FUNCTIONS = {
    "plugin": [GET_CHANGES, GET_INFO, SET_RECOMMENDATIONS],
    "report": ["core_reportbuilder_list_reports", "core_reportbuilder_retrieve_report"],
    "per_learner": ["core_enrol_get_users_courses", "core_completion_get_course_completion_status"],
    "per_course": ["core_enrol_get_enrolled_users", "core_completion_get_course_completion_status"],
}


def function_check(function: str, offered: set[str], release: str = "") -> DoctorCheck:
    purpose, capability = FUNCTIONS.get(function, ("", ""))
    present = function in offered
    since = SINCE.get(function, "3.1")
    if present:
        return DoctorCheck(f"function {function}", True, purpose)
    if release and release_tuple(release) < release_tuple(since):
        return DoctorCheck(
            f"function {function}",
            False,
            f"{purpose}: needs Moodle {since}+, this site is {release}",
            "upgrade Moodle, or configure lmsbridge not to need it",
        )
    fix = (
        "Site administration > Server > Web services > External services > (the token's service) > Functions > "
        f"Add: {function}; the web-service user needs {capability}"
    )
    where = f" (Moodle {release} has it)" if release else ""
    return DoctorCheck(f"function {function}", False, f"{purpose}: not in the token's service{where}", fix)


def checks(
    source: MoodleSource,
    needs: Sequence[str],
    settings: Settings | None = None,
    role_id: int = 5,
    webhook_secret_set: bool = False,
) -> list[DoctorCheck]:
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
                "check the site URL and the token (Moodle deletes a token whose 'Valid until' date has "
                "passed: create one without it), and that web services and REST are enabled",
            )
        ]
    results.append(
        DoctorCheck(
            "reachable, token valid", True, f"{info.get('sitename', '')}, signed in as {info.get('username')}"
        )
    )
    release = str(info.get("release", ""))
    results.append(DoctorCheck("Moodle release", True, release or "unknown", required=False))
    offered = {f["name"] for f in info.get("functions", [])}
    try:
        feed = source.feed()
    except BridgeError as exc:
        results.append(
            DoctorCheck("completion feed", False, str(exc), "see README > Moodle > The completions report")
        )
        feed = None
    if feed is not None:
        detail = feed.name
        if feed.name not in ("report", "plugin") and source.feed_choice == "auto":
            reason = report_fallback_reason(client, offered, release, source.report)
            detail += f", not the report feed (one call per poll): {reason}"
        results.append(DoctorCheck("completion feed", True, detail, required=False))
        if isinstance(feed, ReportFeed):
            columns = _report_columns(feed)
            results.append(columns)
            if columns.ok:
                results.append(_guarded("report times are UTC", lambda: report_time_check(client, feed)))
    results.extend(plugin_checks(client, offered, webhook_secret_set))
    # The plugin's log carries the ratings: the per-learner rating functions are not needed.
    per_learner_ratings = {
        SUMMARY,
        "core_competency_list_user_plans",
        "core_competency_list_plan_competencies",
    }
    wanted = [
        *READ,
        *(FEED_FUNCTIONS[feed.name] if feed else []),
        *(
            f
            for need in needs
            for f in NEEDS.get(need, [])
            if not (isinstance(feed, ChangesFeed) and need == "competencies" and f in per_learner_ratings)
        ),
    ]
    results.extend(function_check(f, offered, release) for f in dict.fromkeys(wanted))
    if "core_user_get_users_by_field" in offered:
        results.extend(_guarded_many("HR people found", lambda: account_checks(client, hr_sample(settings))))
    if "enrol" in needs and "enrol_manual_enrol_users" in offered:
        ws_user = int(info.get("userid", 0))
        results.append(
            _guarded("enrolment role assignable", lambda: enrol_role_check(client, ws_user, role_id))
        )
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
        results.append(
            DoctorCheck(
                "messages reach learners",
                True,
                "not checkable without sending a message: learners' messaging privacy refuses the "
                "web-service user unless its role has moodle/site:messageanyuser (README > Moodle); "
                "refusals show in `lmsbridge why` with Moodle's reason",
                required=False,
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


PLUGIN_CHECK = "companion plugin local_lmsbridge"


def plugin_checks(client: MoodleClient, offered: set[str], webhook_secret_set: bool) -> list[DoctorCheck]:
    """The companion plugin: whether the service has it, its version, and its webhook."""
    if GET_CHANGES not in offered:
        return [
            DoctorCheck(
                PLUGIN_CHECK,
                True,
                "not in the token's service (optional): completions, ratings and enrolments are read "
                "through Moodle's own functions",
                "for one call per poll, exact times and pushed changes: README > Moodle > The companion plugin",
                required=False,
            )
        ]
    if GET_INFO not in offered:
        return [
            DoctorCheck(
                PLUGIN_CHECK,
                True,
                "change feed in the service; add local_lmsbridge_get_info to see its version",
            )
        ]
    return [_guarded(PLUGIN_CHECK, lambda: _plugin_info(client, webhook_secret_set))]


def _plugin_info(client: MoodleClient, webhook_secret_set: bool) -> DoctorCheck:
    info = client.call(GET_INFO)
    hook = info.get("webhook", {})
    detail = f"version {info.get('version')} ({info.get('release')}), change log at id {info.get('lastid')}; webhook "
    if not hook.get("enabled"):
        return DoctorCheck(
            PLUGIN_CHECK,
            True,
            detail + "off: changes wait for the next poll",
            "Site administration > Plugins > Local plugins > lmsbridge: Webhook URL, secret, Notify lmsbridge",
        )
    status = f"{hook.get('url')}, last notification: {hook.get('laststatus') or 'none yet'}"
    if not hook.get("secretset") or not hook.get("url"):
        return DoctorCheck(
            PLUGIN_CHECK,
            False,
            detail + "on, but without a URL or secret: nothing is sent",
            "set the plugin's Webhook URL and Webhook secret",
        )
    if not webhook_secret_set:
        return DoctorCheck(
            PLUGIN_CHECK,
            False,
            detail
            + f"on ({status}), but this site has no webhook_secret in lmsbridge: every notification is refused",
            "set webhook_secret under [sites.NAME] (or LMSBRIDGE_SITES__NAME__WEBHOOK_SECRET) to the plugin's secret",
        )
    return DoctorCheck(PLUGIN_CHECK, True, detail + f"on ({status})")


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


def _guarded(name: str, probe: Callable[[], DoctorCheck]) -> DoctorCheck:
    """A probe's verdict, or the error that stopped it (a probe never stops the other checks)."""
    try:
        return probe()
    except BridgeError as exc:
        return DoctorCheck(name, False, str(exc), "")


def _guarded_many(name: str, probe: Callable[[], list[DoctorCheck]]) -> list[DoctorCheck]:
    try:
        return probe()
    except BridgeError as exc:
        return [DoctorCheck(name, False, str(exc), "")]
