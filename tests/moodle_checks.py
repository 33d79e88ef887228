"""Contract checks of what a Moodle site enforces, shared by the simulator tests and the live suite.

Each check takes a ``Raw`` caller (one web-service call, the decoded JSON body, errors as bodies)
and asserts what a real Moodle answers; the simulator tests run them at every supported release
and the live suite (tests/live/test_moodle_live.py) against a real site.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from connectors.moodle.params import encode

Raw = Callable[..., Any]
REPORT_DATE = re.compile(r"^[A-Z][a-z]+day, \d{1,2} [A-Z][a-z]+ \d{4}, \d{1,2}:\d{2} [AP]M$")
LIMITED_EMAIL_KEYS = {"id", "firstname", "lastname", "fullname", "email", "firstaccess", "lastaccess"}


def raw_caller(url: str, token: str) -> Raw:
    def call(function: str, params: dict[str, Any] | None = None, **settings: str) -> Any:
        body = [("wstoken", token), ("wsfunction", function), ("moodlewsrestformat", "json")]
        body += [(f"moodlewssetting{k}", v) for k, v in settings.items()]
        body += encode(params or {})
        response = requests.post(f"{url}/webservice/rest/server.php", data=body, timeout=30)
        response.raise_for_status()
        return response.json()

    return call


def site_info(raw: Raw) -> dict[str, Any]:
    info = raw("core_webservice_get_site_info")
    assert "exception" not in info, info
    assert info["release"] and info["userid"] and isinstance(info["functions"], list)
    return dict(info)


def user_by(raw: Raw, field: str, value: str) -> list[dict[str, Any]]:
    answer = raw("core_user_get_users_by_field", {"field": field, "values": [value]})
    assert isinstance(answer, list), answer
    return answer


def check_full_lookup(raw: Raw, idnumber: str, email: str) -> None:
    """With the README's role, both look-ups find the account with username and idnumber."""
    by_idnumber = user_by(raw, "idnumber", idnumber)
    assert [u["idnumber"] for u in by_idnumber] == [idnumber]
    assert by_idnumber[0].get("username")
    by_email = user_by(raw, "email", email)
    assert len(by_email) == 1 and by_email[0]["email"] == email
    assert by_email[0].get("idnumber") == idnumber and by_email[0].get("username")


def check_report_utc(raw: Raw, report_id: int) -> list[list[str]]:
    """The report is readable and its dates have Moodle's English format (minute precision)."""
    answer = raw(
        "core_reportbuilder_retrieve_report",
        {"reportid": report_id, "page": 0, "perpage": 5},
        lang="en",
        timezone="UTC",
    )
    assert "exception" not in answer, answer
    rows = [row["columns"] for row in answer["data"]["rows"]]
    for columns in rows:
        assert REPORT_DATE.match(columns[-1]), columns
    return rows


def report_time(text: str) -> datetime:
    return datetime.strptime(text, "%A, %d %B %Y, %I:%M %p").replace(tzinfo=UTC)


def refusal(answer: Any, errorcode: str) -> str:
    assert isinstance(answer, dict) and answer.get("errorcode") == errorcode, answer
    return str(answer["message"])


def past_the_role_check(raw: Raw, probe: dict[str, Any], fatal: bool) -> None:
    """An enrolment ``probe`` in the front page, which has no enrolment method, got past the role
    check: Moodle refuses it with ``wsnoinstance`` or, where that refusal is a PHP fatal error
    (``VersionSpec.noinstance_is_fatal``: Moodle 4.1 on PHP 8), with HTTP 500."""
    try:
        answer = raw("enrol_manual_enrol_users", {"enrolments": [{**probe, "courseid": 1}]})
    except requests.HTTPError as exc:
        assert fatal and exc.response is not None and exc.response.status_code == 500, exc
        return
    assert not fatal, answer
    assert "(id = 1)" in refusal(answer, "wsnoinstance")


CHANGE_KEYS = {
    "id", "kind", "userid", "courseid", "competencyid", "planid", "grade", "gradename", "proficiency",
    "status", "idnumber", "email", "suspended", "deleted", "timechanged", "timecreated",
}  # fmt: skip


def check_plugin_changes(raw: Raw) -> int:
    """local_lmsbridge_get_changes pages the log in id order with the fields lmsbridge reads;
    returns how many rows the first page held."""
    first = raw("local_lmsbridge_get_changes", {"since_id": 0, "limit": 5})
    assert "exception" not in first, first
    assert set(first) == {"changes", "lastid", "more", "latestid", "warnings"}, first
    assert first["latestid"] >= first["lastid"], first
    ids = [c["id"] for c in first["changes"]]
    assert ids == sorted(ids) and len(ids) <= 5
    for change in first["changes"]:
        assert set(change) == CHANGE_KEYS, change
        assert change["kind"] in ("completion", "rating", "enrolment", "user"), change
        assert isinstance(change["timechanged"], int) and change["timechanged"] > 0, change
        if change["kind"] == "enrolment":
            assert change["status"] in ("active", "suspended", "ended", "removed"), change
    assert first["lastid"] == (ids[-1] if ids else 0)
    after = raw("local_lmsbridge_get_changes", {"since_id": first["lastid"], "limit": 5})
    assert all(c["id"] > first["lastid"] for c in after["changes"]), after
    return len(ids)


def check_plugin_info(raw: Raw) -> dict[str, Any]:
    """local_lmsbridge_get_info names the plugin and its webhook state, never the secret."""
    info = raw("local_lmsbridge_get_info")
    assert "exception" not in info, info
    assert info["component"] == "local_lmsbridge" and info["version"] >= 2026120300, info
    assert set(info["webhook"]) == {"enabled", "url", "secretset", "lastsent", "laststatus"}, info
    return dict(info)
