"""What ``doctor`` checks on a Moodle site by behaviour, because no function reports it.

Each probe makes a few read calls (or a write Moodle must refuse before it writes anything) and
says what it saw, in numbers, with the fix: whether HR people can be found by idnumber and by
email, whether the role may assign the enrolment role, whether the report's times are UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from bridge import registry
from bridge.errors import BridgeError
from bridge.ports import DoctorCheck, PullContext, PullScope
from bridge.records import Person
from bridge.settings import Settings
from connectors.moodle import errors
from connectors.moodle.client import MoodleClient
from connectors.moodle.feeds import ReportFeed, ZoneVerdict, exact_completion_time, parse_report_date

SAMPLE = 30
SITE_COURSE = 1  # the front page: a course with no enrolment instances on a standard site
NOWHERE = 2_000_000_000  # a course id no site has
IDNUMBER_FIX = (
    "give the lmsbridge role moodle/user:viewalldetails (Site administration > Users > Permissions > "
    "Define roles), or add 'ID number' to Site administration > Users > Permissions > User policies > "
    "Show user identity"
)
EMAIL_FIX = (
    "give the lmsbridge role moodle/site:viewuseridentity (email is in Show user identity by default; "
    "check it still is: Site administration > Users > Permissions > User policies)"
)


@dataclass(frozen=True)
class HrKeys:
    employee_numbers: list[str]
    emails: list[str]
    feeds: list[str]


def hr_sample(settings: Settings | None, size: int = SAMPLE) -> HrKeys:
    """Up to ``size`` active people from the configured HR feeds (read, never stored)."""
    numbers: list[str] = []
    emails: list[str] = []
    names: list[str] = []
    if settings is None:
        return HrKeys(numbers, emails, names)
    for item in registry.configured(settings):
        if item.section != "feeds" or item.connector.kind != "hris" or item.connector.build_source is None:
            continue
        names.append(item.name)
        source = item.connector.build_source(item.name, item.options, settings)
        context = PullContext(cursors={}, scope=PullScope(), now=datetime.now(UTC), full=True)
        for person in islice(_people(source.pull(context)), size - len(numbers)):
            if person.employee_number:
                numbers.append(person.employee_number.strip())
            if person.email:
                emails.append(person.email.strip())
        if len(numbers) >= size:
            break
    return HrKeys(numbers[:size], emails[:size], names)


def _people(batches: Iterator[Any]) -> Iterator[Person]:
    for batch in batches:
        for record in batch.records:
            if isinstance(record, Person) and record.active:
                yield record


def _lookup(client: MoodleClient, field: str, values: Sequence[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for start in range(0, len(values), 50):
        answer = client.call(
            "core_user_get_users_by_field", {"field": field, "values": list(values[start : start + 50])}
        )
        found.extend(a for a in answer if isinstance(a, dict))
    return found


def account_checks(client: MoodleClient, sample: HrKeys) -> list[DoctorCheck]:
    """Look HR people up the way the pull does and say how many were found, and if not, why."""
    if not sample.feeds:
        return [
            DoctorCheck("HR people found", True, "no HR feed configured: nothing to look up", required=False)
        ]
    checks: list[DoctorCheck] = []
    by_number = _lookup(client, "idnumber", sample.employee_numbers) if sample.employee_numbers else []
    by_email = _lookup(client, "email", sample.emails) if sample.emails else []
    if sample.employee_numbers:
        n, total = len(by_number), len(sample.employee_numbers)
        checks.append(
            DoctorCheck(
                "HR people found by idnumber",
                n > 0,
                f"{n} of {total} HR people found by idnumber",
                "" if n else f"if their employee numbers are the accounts' ID numbers, {IDNUMBER_FIX}",
                required=not by_email,
            )
        )
    if sample.emails:
        n, total = len(by_email), len(sample.emails)
        hidden = [a for a in by_email if "idnumber" not in a and "username" not in a]
        detail = f"{n} of {total} HR people found by email"
        if hidden:
            detail += f" (their answers carry no username or idnumber: {IDNUMBER_FIX})"
        checks.append(
            DoctorCheck(
                "HR people found by email",
                n > 0,
                detail,
                "" if n else f"if their work emails are the accounts' emails, {EMAIL_FIX}",
                required=not by_number,
            )
        )
    return checks


def enrol_role_check(client: MoodleClient, ws_user_id: int, role_id: int) -> DoctorCheck:
    """Whether the web-service user may give enrolments ``role_id``, without enrolling anyone.

    Moodle checks enrol/manual:enrol, then the role (``wsusercannotassign``), then the course's
    manual enrolment method (``wsnoinstance``). The probe enrols the web-service user itself in
    the front page, which has no enrolment method, so a role it may assign ends at
    ``wsnoinstance``. A second item for a course that does not exist makes Moodle roll the
    whole call back should a site have a manual method on its front page.
    """
    name = "enrolment role assignable"
    probe = {"roleid": role_id, "userid": ws_user_id}
    try:
        client.call(
            "enrol_manual_enrol_users",
            {"enrolments": [{**probe, "courseid": SITE_COURSE}, {**probe, "courseid": NOWHERE}]},
            once=True,
        )
    except errors.MoodleError as exc:
        if exc.errorcode in ("wsnoinstance", "invalidparameter") or isinstance(exc, errors.MissingRecord):
            return DoctorCheck(name, True, f"role {role_id} (checked without enrolling anyone)")
        if exc.errorcode == "wsusercannotassign":
            return DoctorCheck(
                name,
                False,
                f"Moodle refuses role {role_id}: {exc.moodle_message}",
                "give the lmsbridge role moodle/role:assign, and under Site administration > Users > "
                "Permissions > Define roles > (lmsbridge) > Allow role assignments tick the role "
                f"{role_id} (student on a standard site)",
            )
        if isinstance(exc, errors.MissingCapability):
            return DoctorCheck(name, False, exc.moodle_message, "give the lmsbridge role enrol/manual:enrol")
        if isinstance(exc, errors.AccessDenied):
            return DoctorCheck(name, False, "enrol_manual_enrol_users is not in the token's service", "")
        return DoctorCheck(name, False, f"unexpected answer: {exc}", "", required=False)
    except errors.TransportError as exc:
        if exc.status != 500:
            raise
        # Moodle 4.1 (seen on 4.1.11, PHP 8.2) throws wsnoinstance with its parameters where the
        # error's link goes, which PHP 8 turns into a fatal error: an HTTP 500 after the role check.
        return DoctorCheck(
            name,
            False,
            f"Moodle answered HTTP 500 where it refuses a course without a manual enrolment method "
            f"(Moodle 4.1 on PHP 8 crashes there, after checking the role): role {role_id} is probably "
            "assignable, but this site cannot confirm it without enrolling someone",
            "enrol one learner by hand with the lmsbridge user's token to be sure; on Moodle 4.1, every "
            "course a mapping enrols into needs an enabled manual enrolment method, or its enrolments "
            "fail with HTTP 500 instead of a clear error",
            required=False,
        )
    return DoctorCheck(
        name, False, "Moodle accepted an enrolment in a course that does not exist", "", required=False
    )


def report_time_check(client: MoodleClient, feed: ReportFeed, rows: int = 3) -> DoctorCheck:
    """Compare report rows with the exact completion times: UTC, or a forced time zone."""
    name = "report times are UTC"
    answer = client.call(
        "core_reportbuilder_retrieve_report",
        {"reportid": feed.report_id, "page": 0, "perpage": rows},
        lang="en",
        timezone="UTC",
    )
    data = answer.get("data", {})
    at = feed.columns.positions(data.get("headers", []), feed.site)
    pairs = []
    for row in data.get("rows", []):
        columns = row.get("columns", [])
        try:
            shown = parse_report_date(columns[at["completed"]] or "", feed.zone)
        except (ValueError, IndexError):
            continue
        user_id = _user_id(
            client,
            str(columns[at["idnumber"]] or ""),
            str(columns[at["email"]] or "") if "email" in at else "",
        )
        course_id = _course_id(client, str(columns[at["course"]] or ""))
        if user_id is None or course_id is None:
            continue
        exact = exact_completion_time(client, user_id, course_id)
        if exact is not None:
            pairs.append((shown, exact))
    verdict = ZoneVerdict.of(pairs, feed.zone, feed.site)
    if verdict.agree:
        zone = "UTC" if str(feed.zone) == "UTC" else f"read as {feed.zone}"
        return DoctorCheck(
            name, True, f"{len(pairs)} report rows agree with their exact completion times ({zone})"
        )
    if verdict.forced:
        problem, _, fix = verdict.forced.partition(". Set ")
        return DoctorCheck(name, False, problem, "set " + fix)
    return DoctorCheck(name, not pairs, verdict.note or "", required=False)


def _user_id(client: MoodleClient, idnumber: str, email: str) -> int | None:
    for field, value in (("idnumber", idnumber.strip()), ("email", email.strip())):
        if value:
            found = _lookup(client, field, [value])
            if found:
                return int(found[0]["id"])
    return None


def _course_id(client: MoodleClient, shortname: str) -> int | None:
    if not shortname:
        return None
    answer = client.call("core_course_get_courses_by_field", {"field": "shortname", "value": shortname})
    courses = answer.get("courses", [])
    return int(courses[0]["id"]) if courses else None


def report_fallback_reason(
    client: MoodleClient, offered: set[str], release: str, report: int | str | None
) -> str:
    """Why ``auto`` did not choose the report feed, in words an administrator can act on."""
    if "core_reportbuilder_retrieve_report" not in offered:
        if release_tuple(release) >= (4, 1):
            return f"core_reportbuilder_retrieve_report is not in the token's service (Moodle {release} has it: add it)"
        return f"this site is Moodle {release}; custom reports need Moodle 4.1+"
    if "core_reportbuilder_list_reports" not in offered and not isinstance(report, int):
        return (
            "core_reportbuilder_list_reports is not in the token's service (or set completion_report = <id>)"
        )
    wanted = report or "Course completions (lmsbridge)"
    try:
        answer = client.call("core_reportbuilder_list_reports", {"page": 0, "perpage": 50})
    except BridgeError as exc:
        return f"the report list could not be read: {exc}"
    reports = answer.get("reports", [])
    if not reports:
        return (
            f"no report named {wanted!r} is visible to the web-service user, nor any other: give the lmsbridge role "
            "moodle/reportbuilder:view and add the lmsbridge user to the report's audience (README > Moodle > The "
            "completions report)"
        )
    names = ", ".join(repr(r.get("name")) for r in reports[:5])
    return f"no report named {wanted!r} among those the web-service user can see ({names})"


def release_tuple(release: str) -> tuple[int, ...]:
    digits = []
    for part in release.split(" ", maxsplit=1)[0].split(".")[:2]:
        number = "".join(ch for ch in part if ch.isdigit())
        digits.append(int(number or 0))
    return tuple(digits)
