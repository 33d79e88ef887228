"""Contract tests: the real client against the Moodle simulator over HTTP on 127.0.0.1.

Answers are compared with the recorded answers of real Moodle 4.4 and 5.0 sites in
``tests/data/moodle``: same keys (except a few optional ones the simulated site has no
data for) and the same JSON types.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.moodle import errors
from connectors.moodle.client import MoodleClient
from connectors.moodle.sim.server import Running
from connectors.moodle.simulator import start_in_thread
from tests.conftest import SIM_TOKEN

REFERENCE = Path(__file__).parent / "data" / "moodle"
NO_DATA = {
    "customfields",
    "preferences",
    "summaryfiles",
    "overviewfiles",
    "contacts",
    "filters",
    "courseformatoptions",
    "enrolledusercount",
}


def reference(release: str, name: str) -> Any:
    return json.loads((REFERENCE / release / f"{name}.json").read_text())


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def same_shape(real: Any, simulated: Any, where: str = "$") -> None:
    if isinstance(real, list):
        assert isinstance(simulated, list), where
        if real and simulated:
            same_shape(real[0], simulated[0], f"{where}[0]")
        return
    if isinstance(real, dict):
        assert isinstance(simulated, dict), where
        missing = set(real) - set(simulated) - NO_DATA
        assert not missing, f"{where}: simulator lacks {sorted(missing)}"
        for key in set(real) & set(simulated):
            if real[key] is not None and simulated[key] is not None:
                same_shape(real[key], simulated[key], f"{where}.{key}")
        return
    assert kind(real) == kind(simulated), f"{where}: real {kind(real)}, simulated {kind(simulated)}"


@pytest.fixture(params=["4.4", "5.0"])
def site(request: pytest.FixtureRequest) -> Any:
    handle = start_in_thread(SIM_TOKEN, release=request.param)
    yield request.param, handle, MoodleClient("sim", handle.url, SIM_TOKEN, max_wait=0.01)
    handle.stop()


def test_site_info(site: tuple[str, Running, MoodleClient]) -> None:
    release, _handle, client = site
    info = client.site_info()
    same_shape(
        {k: v for k, v in reference(release, "core_webservice_get_site_info").items() if k != "policyagreed"},
        info,
    )
    assert info["release"].startswith(release) and client.has_function("core_message_send_instant_messages")


def test_users_by_field_and_not_found(site: tuple[str, Running, MoodleClient]) -> None:
    release, _handle, client = site
    found = client.call("core_user_get_users_by_field", {"field": "idnumber", "values": ["000001", "999999"]})
    assert [u["idnumber"] for u in found] == ["000001"]
    same_shape(reference(release, "core_user_get_users_by_field"), found)
    assert client.call(
        "core_user_get_users_by_field", {"field": "email", "values": ["nobody@example.org"]}
    ) == reference(release, "core_user_get_users_by_field__notfound")


def test_get_users_like_and_warnings(site: tuple[str, Running, MoodleClient]) -> None:
    release, _handle, client = site
    answer = client.call(
        "core_user_get_users",
        {"criteria": [{"key": "email", "value": "ANA.GARCIA@example.org"}, {"key": "nick", "value": "x"}]},
    )
    same_shape(reference(release, "core_user_get_users"), answer)
    assert [u["id"] for u in answer["users"]] == [100]
    assert answer["warnings"][0]["warningcode"] == "invalidfieldparameter"


def test_courses(site: tuple[str, Running, MoodleClient]) -> None:
    release, _handle, client = site
    answer = client.call("core_course_get_courses_by_field", {"field": "shortname", "value": "CS-101"})
    same_shape(reference(release, "core_course_get_courses_by_field"), answer)
    assert [c["shortname"] for c in answer["courses"]] == ["CS-101"]
    assert len(client.call("core_course_get_courses_by_field")["courses"]) == 18


def test_enrolment_reads(site: tuple[str, Running, MoodleClient]) -> None:
    release, _handle, client = site
    courses = client.call("core_enrol_get_users_courses", {"userid": 100, "returnusercount": False})
    same_shape(reference(release, "core_enrol_get_users_courses"), courses)
    assert all("enrolledusercount" not in c for c in courses)
    users = client.call(
        "core_enrol_get_enrolled_users",
        {"courseid": 2, "options": [{"name": "limitfrom", "value": 0}, {"name": "limitnumber", "value": 5}]},
    )
    same_shape(reference(release, "core_enrol_get_enrolled_users")[0], users[0])
    assert len(users) == 5


def test_completion_status_and_its_errors(site: tuple[str, Running, MoodleClient], moodle: Running) -> None:
    release, handle, client = site
    done = next((u, c) for (u, c) in handle.state.completions if c == 5)
    status = client.call(
        "core_completion_get_course_completion_status", {"courseid": done[1], "userid": done[0]}
    )
    same_shape(reference(release, "core_completion_get_course_completion_status__completed"), status)
    assert status["completionstatus"]["completed"] is True
    with pytest.raises(errors.NotEnrolled):
        client.call("core_completion_get_course_completion_status", {"courseid": 4, "userid": 100})


def test_messages_sent_recorded_and_read_back(site: tuple[str, Running, MoodleClient]) -> None:
    release, handle, client = site
    sent = client.call(
        "core_message_send_instant_messages",
        {
            "messages": [
                {"touserid": 100, "text": "<p>Hi</p>", "textformat": 1, "clientmsgid": "a1"},
                {"touserid": 99999, "text": "x"},
            ]
        },
    )
    same_shape(reference(release, "core_message_send_instant_messages"), sent[:1])
    same_shape(reference(release, "core_message_send_instant_messages__baduser"), sent[1:])
    assert sent[1]["msgid"] == -1 and sent[0]["clientmsgid"] == "a1"
    assert [m["touserid"] for m in handle.state.messages] == [100]
    unread = client.call(
        "core_message_get_messages",
        {"useridto": 100, "useridfrom": 3, "type": "conversations", "read": False},
    )
    assert unread["messages"][0]["fullmessage"] == "<p>Hi</p>"


def test_manual_enrolment_answers_null_and_is_all_or_nothing(site: tuple[str, Running, MoodleClient]) -> None:
    release, handle, client = site
    assert client.call(
        "enrol_manual_enrol_users", {"enrolments": [{"roleid": 5, "userid": 101, "courseid": 2}]}
    ) is reference(release, "enrol_manual_enrol_users")
    no_manual = next(c.id for c in handle.state.courses.values() if not c.manual_enrolment)
    with pytest.raises(errors.ItemError) as info:
        client.call(
            "enrol_manual_enrol_users",
            {
                "enrolments": [
                    {"roleid": 5, "userid": 102, "courseid": 2},
                    {"roleid": 5, "userid": 102, "courseid": no_manual},
                ]
            },
        )
    assert info.value.errorcode == "wsnoinstance"
    assert [e["userid"] for e in handle.state.enrolled] == [101]


@pytest.mark.parametrize("release", ["4.4", "5.0"])
def test_error_bodies_match_real_sites(release: str) -> None:
    handle = start_in_thread(SIM_TOKEN, release=release)
    try:
        import requests

        def raw(token: str, function: str, **params: str) -> Any:
            return requests.post(
                handle.url + "/webservice/rest/server.php",
                data={"wstoken": token, "wsfunction": function, "moodlewsrestformat": "json", **params},
                timeout=5,
            ).json()

        assert raw("wrong", "core_webservice_get_site_info") == reference(release, "error_bad_token")
        assert raw(SIM_TOKEN, "core_no_such_function") == reference(release, "error_unknown_function")
        assert raw(SIM_TOKEN, "core_user_get_users_by_field", field="id") == reference(
            release, "error_missing_param"
        )
        assert raw(SIM_TOKEN, "core_enrol_get_users_courses", userid="abc") == reference(
            release, "error_invalid_param_type"
        )
        handle.state.removed_functions.add("core_user_get_users")
        assert raw(
            SIM_TOKEN, "core_user_get_users", **{"criteria[0][key]": "id", "criteria[0][value]": "3"}
        ) == reference(release, "error_function_not_in_service")
        assert (
            raw(SIM_TOKEN, "core_enrol_get_users_courses", userid="100", returnusercount="true")["errorcode"]
            == "invalidparameter"
        )
    finally:
        handle.stop()


def test_xml_is_the_default_format(moodle: Running) -> None:
    import requests

    body = requests.post(
        moodle.url + "/webservice/rest/server.php",
        data={"wstoken": "wrong", "wsfunction": "core_webservice_get_site_info"},
        timeout=5,
    ).text
    assert (
        body.startswith('<?xml version="1.0" encoding="UTF-8" ?>')
        and "<ERRORCODE>invalidtoken</ERRORCODE>" in body
    )
