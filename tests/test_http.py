"""bridge.http over real HTTP on 127.0.0.1: credentials never leave the configured host, a call
ends at its total deadline, an answer stops at its size limit, Retry-After in both forms.

"Another host" here is another port on 127.0.0.1: an origin is scheme, host and port, and the
tests must not leave loopback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from bridge import http
from bridge.errors import Remedy, SourceError
from bridge.ports import PullContext, PullScope
from connectors.hris.http_json import JsonOptions, JsonSource
from connectors.moodle.client import MoodleClient
from connectors.moodle.errors import TransportError
from connectors.totara import errors as totara_errors
from connectors.totara.graphql import GraphQLClient
from connectors.totara.oauth import TokenSource

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SECRET = "s3cret-credential-77"


@dataclass
class Seen:
    """What one server received: method, path, headers and body of every request."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def carried_secret(self) -> bool:
        return any(SECRET in str(h) or SECRET.encode() in b for _m, _p, h, b in self.requests)


Responder = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Server:
    url: str
    seen: Seen
    respond: list[Responder]


def serve(respond: Responder) -> Iterator[Server]:
    seen = Seen()
    holder: list[Responder] = [respond]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.requests.append((self.command, self.path, dict(self.headers), body))
            holder[0](self)

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{server.server_address[1]}", seen, holder)
    server.shutdown()
    server.server_close()


def json_answer(body: bytes = b'{"ok": true}') -> Responder:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def redirect(status: int, location: Callable[[], str]) -> Responder:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location())
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return respond


@pytest.fixture
def elsewhere() -> Iterator[Server]:
    """The other host a redirect points at: it must never see a credential."""
    yield from serve(json_answer(b'{"data": {"items": []}, "next_cursor": null}'))


@pytest.fixture
def origin_server() -> Iterator[Server]:
    yield from serve(json_answer())


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_refused_and_the_other_host_sees_nothing(
    status: int, origin_server: Server, elsewhere: Server
) -> None:
    origin_server.respond[0] = redirect(status, lambda: elsewhere.url + "/steal?x=1")
    session = http.session()
    session.headers["X-API-Key"] = SECRET
    with pytest.raises(http.RedirectRefused) as info:
        session.post(origin_server.url + "/api?wstoken=" + SECRET, data={"client_secret": SECRET}, timeout=5)
    assert elsewhere.seen.requests == []
    message = str(info.value)
    assert origin_server.url in message and elsewhere.url in message
    assert SECRET not in message and "/steal" not in message  # hosts only, never paths or queries


def test_a_redirect_on_the_same_host_is_followed(origin_server: Server) -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        if handler.path.startswith("/old"):
            redirect(308, lambda: "/new")(handler)
        else:
            json_answer()(handler)

    origin_server.respond[0] = respond
    answer = http.session().post(origin_server.url + "/old", data={"a": "1"}, timeout=5)
    assert answer.json() == {"ok": True}
    assert [p for _m, p, _h, _b in origin_server.seen.requests] == ["/old", "/new"]


@pytest.mark.parametrize(
    ("source", "target", "same"),
    [
        ("http://lms.example/a", "http://LMS.example:80/b", True),
        ("http://lms.example/a", "https://lms.example/b", True),  # upgrade to https on the host
        ("https://lms.example/a", "http://lms.example/b", False),  # never a downgrade
        ("http://lms.example/a", "http://lms.example:8080/b", False),
        ("http://lms.example/a", "http://evil.example/b", False),
        ("http://lms.example/a", "http://lms.example.evil.example/b", False),
        ("http://lms.example/a", "http://user@evil.example/b", False),
        ("http://lms.example/a", "http://[::1/b", False),
    ],
)
def test_same_site(source: str, target: str, same: bool) -> None:
    assert http.same_site(source, target) is same


def test_hr_json_feed_with_an_api_key_refuses_a_redirect_to_another_host(
    origin_server: Server, elsewhere: Server
) -> None:
    origin_server.respond[0] = redirect(302, lambda: elsewhere.url + "/v1/people")
    options = JsonOptions.model_validate(
        {
            "base_url": origin_server.url,
            "auth": "api_key",
            "api_key": SECRET,
            "people": {"path": "/v1/people", "items": "data.items", "fields": {"person_id": "id"}},
        }
    )
    source = JsonSource("hrapi", options, max_wait=0.01)
    with pytest.raises(SourceError) as info:
        list(source.pull(PullContext(cursors={}, scope=PullScope(), now=NOW)))
    assert info.value.remedy is Remedy.FIX_CONFIG
    assert "redirecting to " + elsewhere.url in str(info.value) and SECRET not in str(info.value)
    assert elsewhere.seen.requests == [] and len(origin_server.seen.requests) == 1  # not retried


@pytest.mark.parametrize("status", [307, 308])
def test_moodle_never_posts_its_token_to_another_host(
    status: int, origin_server: Server, elsewhere: Server
) -> None:
    origin_server.respond[0] = redirect(status, lambda: elsewhere.url + "/webservice/rest/server.php")
    client = MoodleClient("moodle", origin_server.url, SECRET, attempts=3, max_wait=0.01)
    with pytest.raises(TransportError) as info:
        client.call("core_webservice_get_site_info")
    assert info.value.remedy is Remedy.FIX_CONFIG and SECRET not in str(info.value)
    assert elsewhere.seen.requests == []
    assert origin_server.seen.carried_secret() and len(origin_server.seen.requests) == 1


@pytest.mark.parametrize("status", [307, 308])
def test_totara_never_posts_its_client_secret_to_another_host(
    status: int, origin_server: Server, elsewhere: Server
) -> None:
    origin_server.respond[0] = redirect(status, lambda: elsewhere.url + "/token")
    tokens = TokenSource("totara", origin_server.url, "client-1", SECRET, requests.Session(), timeout=5)
    with pytest.raises(totara_errors.TotaraError) as info:
        tokens.token()
    assert elsewhere.seen.requests == [] and SECRET not in str(info.value)


# --------------------------------------------------------------------------- deadlines and size


def trickle(total_bytes: int, every: float) -> Responder:
    """Headers at once, then one byte per ``every`` seconds: each read is quick, the whole is not."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(total_bytes))
        handler.end_headers()
        try:
            for _ in range(total_bytes):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(every)
        except OSError:  # the client hung up: what the deadline is for
            return

    return respond


def test_a_trickled_answer_ends_at_the_calls_total_deadline(origin_server: Server) -> None:
    # 200 bytes at 0.1 s each would take 20 s, while every single read returns within 0.1 s: a
    # per-read timeout of 1 s never fires. Only a total deadline ends the call.
    origin_server.respond[0] = trickle(200, 0.1)
    with pytest.raises(http.DeadlineExceeded) as info:
        http.session().get(origin_server.url + "/slow", timeout=1)
    assert "within 1 s" in str(info.value)
    assert isinstance(info.value, requests.Timeout)  # callers' timeout handling still applies


def test_moodle_reports_a_trickled_answer_as_a_timeout(origin_server: Server) -> None:
    origin_server.respond[0] = trickle(200, 0.1)
    client = MoodleClient("moodle", origin_server.url, SECRET, timeout=1, attempts=1, max_wait=0.01)
    with pytest.raises(TransportError) as info:
        client.call("core_webservice_get_site_info")
    assert "no answer within 1 s" in str(info.value)


def chunked(total_bytes: int) -> Responder:
    """An answer without Content-Length: only counting the bytes read can stop it."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        block = b"x" * 65536
        sent = 0
        try:
            while sent < total_bytes:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            return

    return respond


def test_an_answer_past_the_size_limit_stops_reading(origin_server: Server) -> None:
    origin_server.respond[0] = chunked(8 * 2**20)
    with pytest.raises(http.AnswerTooLarge) as info:
        http.session(max_bytes=2**20).get(origin_server.url + "/big", timeout=10)
    assert "1,048,576 bytes allowed" in str(info.value)


def test_an_announced_size_past_the_limit_is_refused_before_reading(origin_server: Server) -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(400 * 2**20))
        handler.end_headers()
        try:
            handler.wfile.write(b"x" * 1024)
        except OSError:
            return

    origin_server.respond[0] = respond
    with pytest.raises(http.AnswerTooLarge) as info:
        http.session(max_bytes=2**20).get(origin_server.url + "/big", timeout=10)
    assert "announced an answer of 419,430,400 bytes" in str(info.value)


def test_an_answer_within_the_limits_is_read_whole(origin_server: Server) -> None:
    body = b'{"items": [' + b",".join(b"%d" % i for i in range(50_000)) + b"]}"
    origin_server.respond[0] = json_answer(body)
    answer = http.session(max_bytes=len(body)).get(origin_server.url + "/ok", timeout=10)
    assert len(answer.json()["items"]) == 50_000


def test_hr_feed_names_the_size_limit_to_raise(origin_server: Server) -> None:
    origin_server.respond[0] = chunked(4 * 2**20)
    options = JsonOptions.model_validate(
        {
            "base_url": origin_server.url,
            "max_answer_mb": 1,
            "people": {"path": "/v1/people", "items": "data.items", "fields": {"person_id": "id"}},
        }
    )
    with pytest.raises(SourceError) as info:
        list(
            JsonSource("hrapi", options, max_wait=0.01).pull(
                PullContext(cursors={}, scope=PullScope(), now=NOW)
            )
        )
    assert info.value.remedy is Remedy.FIX_CONFIG and "bytes allowed" in str(info.value)


# --------------------------------------------------------------------------- Retry-After


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = datetime(2026, 10, 21, 7, 27, tzinfo=UTC)
    assert http.retry_after("120") == 120.0
    assert http.retry_after(" 7 ") == 7.0
    assert http.retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now) == 60.0
    assert http.retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now) == 0.0  # in the past: now
    assert http.retry_after("-5") == 0.0
    for unusable in (None, "", "soon", "nan", "inf", "Wed, 99 Foo 2026"):
        assert http.retry_after(unusable, now) is None


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_retry_after_http_date_round_trips(moment: datetime) -> None:
    now = datetime(2050, 1, 1, tzinfo=UTC)
    when = moment.replace(microsecond=0, tzinfo=UTC)
    expected = max(0.0, (when - now).total_seconds())
    assert http.retry_after(format_datetime(when, usegmt=True), now) == expected


def test_every_connector_session_is_hardened(origin_server: Server) -> None:
    options = JsonOptions.model_validate(
        {"base_url": origin_server.url, "people": {"path": "/p", "items": "x", "fields": {"person_id": "id"}}}
    )
    tokens = TokenSource("totara", origin_server.url, "c", SECRET, requests.Session())
    sessions = [
        JsonSource("hrapi", options).session,
        MoodleClient("moodle", origin_server.url, SECRET).session,
        tokens.session,
        GraphQLClient("totara", origin_server.url, tokens, requests.Session()).session,
    ]
    assert all(http.is_hardened(s) for s in sessions)


@given(
    st.integers(min_value=1, max_value=40),
    st.floats(min_value=0.1, max_value=120),
    st.one_of(st.none(), st.floats(min_value=0, max_value=600)),
    st.floats(min_value=0, max_value=600),
)
def test_backoff_grows_honours_retry_after_and_floor_and_never_passes_max_wait(
    attempt: int, max_wait: float, retry_after: float | None, floor: float
) -> None:
    delay = http.backoff(attempt, max_wait, retry_after, floor)
    assert 0 <= delay <= max_wait
    wanted = max(retry_after or 0.0, floor, min(max_wait, 0.5 * 2 ** min(16, attempt - 1)))
    assert delay >= min(wanted, max_wait)
