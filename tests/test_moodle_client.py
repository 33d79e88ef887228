"""The Moodle client against mocked HTTP (responses): errors, retries, counting, no token leaks."""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import responses

from bridge import log
from bridge.errors import Remedy
from connectors.moodle import errors
from connectors.moodle.client import MoodleClient

URL = "https://lms.example.org"
ENDPOINT = URL + "/webservice/rest/server.php"
TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
REFERENCE = Path(__file__).parent / "data" / "moodle"


def client(**kw: object) -> MoodleClient:
    return MoodleClient("main", URL, TOKEN, max_wait=0.01, **kw)  # type: ignore[arg-type]


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    log.configure("debug", "json", stream)
    log.register_secrets([TOKEN])
    return stream


@responses.activate
def test_posts_token_in_body_and_counts_calls() -> None:
    responses.post(ENDPOINT, json=[{"id": 3}])
    c = client()
    assert c.call("core_user_get_users_by_field", {"field": "id", "values": [3]}) == [{"id": 3}]
    request = responses.calls[0].request
    assert "wstoken" not in request.url
    body = parse_qs(request.body)
    assert body["wstoken"] == [TOKEN] and body["wsfunction"] == ["core_user_get_users_by_field"]
    assert body["moodlewsrestformat"] == ["json"] and body["values[0]"] == ["3"]
    assert c.calls == {"core_user_get_users_by_field": 1}


@pytest.mark.parametrize(
    ("release", "name", "kind", "remedy"),
    [
        ("4.4", "error_bad_token.json", errors.InvalidToken, Remedy.FIX_CONFIG),
        ("5.0", "error_bad_token.json", errors.InvalidToken, Remedy.FIX_CONFIG),
        ("4.4", "error_function_not_in_service.json", errors.AccessDenied, Remedy.FIX_CONFIG),
        ("4.4", "error_unknown_function.json", errors.UnknownFunction, Remedy.FIX_CONFIG),
        ("5.0", "error_invalid_param_type.json", errors.InvalidParameter, Remedy.FIX_CONFIG),
        ("4.4", "error_not_enrolled_completion.json", errors.NotEnrolled, Remedy.SKIP_ITEM),
        ("5.0", "error_not_enrolled_completion.json", errors.NotEnrolled, Remedy.SKIP_ITEM),
    ],
)
@responses.activate
def test_real_error_bodies_become_typed_errors(release: str, name: str, kind: type, remedy: Remedy) -> None:
    responses.post(ENDPOINT, json=json.loads((REFERENCE / release / name).read_text()))
    with pytest.raises(kind) as info:
        client().call("core_completion_get_course_completion_status", {"courseid": 2, "userid": 3})
    assert info.value.remedy is remedy
    assert responses.assert_call_count(ENDPOINT, 1)  # Moodle exceptions are not retried


@responses.activate
def test_unknown_function_on_moodle_5_is_recognised_through_site_info() -> None:
    responses.post(ENDPOINT, json=json.loads((REFERENCE / "5.0" / "error_unknown_function.json").read_text()))
    responses.post(
        ENDPOINT, json=json.loads((REFERENCE / "5.0" / "core_webservice_get_site_info.json").read_text())
    )
    with pytest.raises(errors.UnknownFunction):
        client().call("core_nothing_here")


@responses.activate
def test_bad_token_message_names_the_site_not_the_token() -> None:
    responses.post(
        ENDPOINT,
        json={
            "exception": "moodle_exception",
            "errorcode": "invalidtoken",
            "message": "Invalid token - token not found",
        },
    )
    with pytest.raises(errors.InvalidToken) as info:
        client().call("core_webservice_get_site_info")
    assert str(info.value) == "Moodle rejected the token for site 'main'"


@responses.activate
def test_retries_5xx_and_429_honouring_retry_after() -> None:
    responses.post(ENDPOINT, status=503, headers={"Retry-After": "0"}, body="<html>down</html>")
    responses.post(ENDPOINT, status=429, body="slow down")
    responses.post(ENDPOINT, json={"courses": [], "warnings": []})
    c = client()
    assert c.call("core_course_get_courses_by_field") == {"courses": [], "warnings": []}
    assert c.calls["core_course_get_courses_by_field"] == 3


@responses.activate
def test_gives_up_after_the_attempts_with_a_transport_error() -> None:
    responses.post(ENDPOINT, status=502)
    with pytest.raises(errors.TransportError) as info:
        client(attempts=3).call("core_course_get_courses_by_field")
    assert "HTTP 502" in str(info.value) and info.value.remedy is Remedy.RETRY
    assert len(responses.calls) == 3


@responses.activate
def test_html_instead_of_json_is_a_transport_error() -> None:
    responses.post(ENDPOINT, body="<!DOCTYPE html><p>Fatal error</p>", content_type="text/html")
    with pytest.raises(errors.TransportError, match="not JSON"):
        client(attempts=1).call("core_course_get_courses_by_field")


@responses.activate
def test_403_means_web_services_are_off_and_is_not_retried() -> None:
    responses.post(ENDPOINT, status=403, body="")
    with pytest.raises(errors.TransportError) as info:
        client().call("core_webservice_get_site_info")
    assert info.value.remedy is Remedy.FIX_CONFIG and "disabled" in str(info.value)
    assert len(responses.calls) == 1


@responses.activate
def test_warnings_are_logged_per_item(captured: io.StringIO) -> None:
    responses.post(
        ENDPOINT,
        json={
            "users": [],
            "warnings": [
                {"item": "nick", "warningcode": "invalidfieldparameter", "message": "not supported"}
            ],
        },
    )
    client().call("core_user_get_users", {"criteria": [{"key": "nick", "value": "x"}]})
    events = [json.loads(line) for line in captured.getvalue().splitlines()]
    warning = next(e for e in events if e["event"] == "moodle warning")
    assert (warning["item"], warning["code"]) == ("nick", "invalidfieldparameter")


def test_token_never_reaches_logs_or_errors_on_connection_failure(captured: io.StringIO) -> None:
    c = MoodleClient("main", "http://127.0.0.1:9", TOKEN, attempts=2, max_wait=0.01, timeout=2)
    with pytest.raises(errors.TransportError) as info:
        c.call("core_webservice_get_site_info")
    log.get_logger("test").error("pull failed", error=str(info.value), exc_info=info.value)
    assert TOKEN not in str(info.value)
    assert TOKEN not in captured.getvalue()
    assert c.calls["core_webservice_get_site_info"] == 2


@responses.activate
def test_token_never_reaches_logs_on_moodle_error(captured: io.StringIO) -> None:
    responses.post(
        ENDPOINT,
        json={
            "exception": "moodle_exception",
            "errorcode": "invalidtoken",
            "message": f"Invalid token {TOKEN}",
        },
    )
    with pytest.raises(errors.InvalidToken) as info:
        client().call("core_webservice_get_site_info")
    log.get_logger("test").exception("failed", exc_info=info.value)
    assert TOKEN not in str(info.value) and TOKEN not in captured.getvalue()


def test_oversized_requests_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="chunk"):
        client().call("core_user_get_users_by_field", {"field": "id", "values": list(range(5000))})


@responses.activate
def test_error_codes_do_not_become_metric_labels() -> None:
    """A site's own error codes are unbounded; the metric's outcome is the error's kind."""
    from bridge.metrics import registry

    for n in range(3):
        body = {"exception": "moodle_exception", "errorcode": f"pluginerror{n}", "message": "no"}
        responses.post(ENDPOINT, json=body)
        with pytest.raises(errors.MoodleError):
            client().call("local_plugin_thing")
    outcomes = {
        s.labels["outcome"]
        for metric in registry.collect()
        if metric.name == "lmsbridge_lms_call_seconds"
        for s in metric.samples
        if s.labels.get("function") == "local_plugin_thing"
    }
    assert outcomes == {"MoodleError"}
