"""``lmsbridge doctor`` for Totara: each route the enabled mappings need, and whether this site
provides it — never assuming an operation a version does not have."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.errors import BridgeError
from bridge.ports import DoctorCheck
from connectors.moodle.doctor import function_check
from connectors.totara.graphql import GraphQLClient, operation
from connectors.totara.sink import NO_PLANS, TotaraSink
from connectors.totara.source import TotaraSource

API_FIX = "Development > API > API clients: enable the API (Shared services > Enable API), create a client, copy its id and secret"
REPLICA_FIX = (
    "no Totara API returns other learners' program, certification or competency records: give lmsbridge a "
    "read-only database user on a replica and set sites.<name>.replica_url (see README > Totara)"
)


OPERATIONS = ("users", "job_assignments", "courses", "enrol")  # operations/<name>.graphql lmsbridge runs


def _version(api: GraphQLClient) -> str:
    major = api.version()
    if major is None:
        return "unknown (totara_webapi_status did not answer)"
    later = " or later" if major == "19" else ""
    return f"{major}{later} (from the root fields it answers)"


def checks(source: TotaraSource, sink: TotaraSink, needs: Sequence[str]) -> list[DoctorCheck]:
    results: list[DoctorCheck] = []
    operations = _api(source, results)
    offered = _legacy(source, needs, results)
    _reads(source, needs, operations, offered, results)
    _writes(sink, needs, operations, offered, results)
    results.append(DoctorCheck("routes", True, routes(source, operations, offered), required=False))
    return results


def routes(source: TotaraSource, operations: set[str], offered: set[str]) -> str:
    """Which route each kind of record takes on this site, in one line."""
    legacy = bool(offered)
    replica = source.replica is not None

    def pick(*choices: tuple[bool, str]) -> str:
        return next((text for ok, text in choices if ok), "none")

    parts = {
        "users": pick(
            ("users" in operations, "API core_user_users"), (legacy, "legacy core_user_get_users_by_field")
        ),
        "courses": pick(
            ("courses" in operations, "API core_course_courses"),
            (legacy, "legacy core_course_get_courses_by_field"),
        ),
        "course completions": pick(
            (replica, "replica course_completions"),
            (legacy, "legacy core_enrol_get_users_courses + core_completion_get_course_completion_status"),
        ),
        "program and certification completions": pick((replica, "replica (expired certifications included)")),
        "enrolment": pick(
            ("enrol" in operations, "API enrol_manual_enrol_user"),
            (legacy, "legacy enrol_manual_enrol_users"),
        ),
        "program assignment": pick((legacy, "audience membership, legacy core_cohort_add_cohort_members")),
    }
    if source.managers:
        parts["managers"] = pick(
            ("job_assignments" in operations, "API totara_job_job_assignments"),
            (replica, "replica job_assignment"),
        )
    return "; ".join(f"{k}: {v}" for k, v in parts.items())


def _api(source: TotaraSource, results: list[DoctorCheck]) -> set[str]:
    """The lmsbridge operations the external API will run (empty without a working API client)."""
    if source.api is None:
        results.append(
            DoctorCheck("external API", True, "not configured: legacy web services only", required=False)
        )
        return set()
    try:
        source.api.tokens.token()
        results.append(DoctorCheck("API client valid", True, f"client {source.api.tokens.client_id}"))
    except BridgeError as exc:
        results.append(DoctorCheck("API client valid", False, str(exc), API_FIX))
        return set()
    try:
        source.api.execute("status")
        operations = source.api.operations()
        version = _version(source.api)
        runnable = {name for name in OPERATIONS if source.api.available(name)}
    except BridgeError as exc:
        results.append(DoctorCheck("external API reachable", False, str(exc), API_FIX))
        return set()
    results.append(DoctorCheck("external API reachable", True, "totara_webapi_status: ok"))
    results.append(DoctorCheck("Totara version", True, version, required=False))
    found = f"{', '.join(sorted(operations)) or 'none'} (found by {source.api.discovery})"
    results.append(DoctorCheck("operations available", True, found, required=False))
    for name in OPERATIONS:
        op = operation(name)
        missing = source.api.missing_types(name) if op.root in operations else []
        if missing:
            results.append(
                DoctorCheck(
                    f"operation {op.root}",
                    False,
                    f"the site answers {op.root} but has no type {', '.join(missing)}: lmsbridge uses the "
                    "other route for it (please report this Totara version)",
                    required=False,
                )
            )
    return runnable


def _legacy(source: TotaraSource, needs: Sequence[str], results: list[DoctorCheck]) -> set[str]:
    """The legacy functions the token's service offers (empty without a working token)."""
    if source.legacy is None:
        if "message" in needs or "assign" in needs:
            results.append(
                DoctorCheck(
                    "legacy web services",
                    False,
                    "messages and audience membership need the legacy token",
                    "set sites.<name>.token",
                )
            )
        return set()
    try:
        info = source.legacy.client.site_info()
    except BridgeError as exc:
        results.append(
            DoctorCheck(
                "legacy web services, token valid",
                False,
                str(exc),
                "check the token and that web services and REST are enabled",
            )
        )
        return set()
    results.append(
        DoctorCheck("legacy web services, token valid", True, f"signed in as {info.get('username')}")
    )
    return {f["name"] for f in info.get("functions", [])}


def _reads(
    source: TotaraSource,
    needs: Sequence[str],
    operations: set[str],
    offered: set[str],
    results: list[DoctorCheck],
) -> None:
    if "users" not in operations and offered:
        results.append(function_check("core_user_get_users_by_field", offered))
    if source.replica is not None:
        missing = source.replica.check()
        results.append(
            DoctorCheck(
                "database replica readable",
                not missing,
                "all tables readable" if not missing else f"missing or unreadable: {', '.join(missing)}",
                "check replica_url, grant SELECT on these tables, and check table_prefix",
            )
        )
        results.append(DoctorCheck("course completions", True, "from the replica", required=False))
    elif offered:
        for function in ("core_enrol_get_users_courses", "core_completion_get_course_completion_status"):
            results.append(function_check(function, offered))
        results.append(
            DoctorCheck(
                "course completions",
                True,
                "per learner, legacy web services (core_enrol_get_users_courses by userid, then the "
                "completion status of each enrolled course not yet complete)",
                required=False,
            )
        )
    else:
        results.append(
            DoctorCheck("course completions", False, "no route", "set a legacy token or replica_url")
        )
    if ("programs" in needs or "competencies" in needs) and source.replica is None:
        results.append(
            DoctorCheck("program, certification and competency records", False, "no route", REPLICA_FIX)
        )


def _writes(
    sink: TotaraSink,
    needs: Sequence[str],
    operations: set[str],
    offered: set[str],
    results: list[DoctorCheck],
) -> None:
    if "message" in needs and offered:
        results.append(function_check("core_message_send_instant_messages", offered))
    if "enrol" in needs:
        if "enrol" in operations:
            results.append(DoctorCheck("course enrolment", True, "enrol_manual_enrol_user (external API)"))
        elif offered:
            results.append(function_check("enrol_manual_enrol_users", offered))
        else:
            results.append(
                DoctorCheck(
                    "course enrolment",
                    False,
                    "no route: the site's API has no enrol_manual_enrol_user (Totara 18+)",
                    "set a legacy token (enrol_manual_enrol_users)",
                )
            )
    if "assign" in needs:
        configured = ", ".join(f"{k} -> {v}" for k, v in sink.audiences.items()) or "none configured"
        results.append(
            DoctorCheck(
                "program assignment by audience",
                bool(sink.audiences) and "core_cohort_add_cohort_members" in offered,
                f"audiences: {configured}",
                "no Totara API assigns programs: tie each program's assignment to an audience, list it in "
                "sites.<name>.audiences, and add core_cohort_add_cohort_members to the token's service",
            )
        )
    if "plan" in needs:
        results.append(
            DoctorCheck("learning plans", False, NO_PLANS, "change the mapping's channel to message or enrol")
        )
