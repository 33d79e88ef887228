"""The simulator's HTTP server: Moodle's REST endpoint plus out-of-band control endpoints.

``/webservice/rest/server.php`` speaks the real protocol (GET or POST, PHP-style parameters,
``wstoken``, ``wsfunction``, ``moodlewsrestformat``, errors as HTTP 200 bodies). Under
``/_simulator/`` (not part of Moodle) tests and the demo read what was written and change the
site: ``GET state``, ``POST complete``, ``POST reset-calls``, ``POST faults``, ``POST suspend``,
``POST update-user``, ``POST rate``, ...; and the companion plugin: ``POST install-plugin``,
``POST plugin-webhook`` (its settings: url, secret, enabled) and ``GET plugin`` (its log, the
recommendations written to it, the notifications it sent).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

from connectors.moodle.params import decode
from connectors.moodle.sim import cohorts, learning_plans, plugin, user_competency  # noqa: F401 - register their functions
from connectors.moodle.sim.functions import (
    CALL,
    REGISTRY,
    PhpFatal,
    SimError,
    missing_record,
    moodle_exception,
    require,
    service_functions,
)
from connectors.moodle.sim.plugin_state import VERSION as PLUGIN_VERSION
from connectors.moodle.sim.spec import InvalidParameter, validate
from connectors.moodle.sim.state import SiteState

ENDPOINT = "/webservice/rest/server.php"


@dataclass
class Faults:
    """Switches for fault-injection tests: the next N requests fail in a chosen way."""

    mode: str | None = None  # status | slow | html | truncated | reset | expire_token
    count: int = 0
    status: int = 503
    retry_after: int | None = None
    delay: float = 0.0
    only: frozenset[str] = frozenset()  # web-service functions the faults hit (empty: every call)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, function: str) -> str | None:
        with self.lock:
            if self.mode is None or self.count == 0 or (self.only and function not in self.only):
                return None
            self.count -= 1
            mode = self.mode
            if self.count == 0 and mode != "expire_token":
                self.mode = None
            return mode


class Simulator:
    def __init__(self, state: SiteState, token: str, debug: bool = False) -> None:
        self.state = state
        self.token = token
        self.debug = debug
        self.faults = Faults()

    # ------------------------------------------------------------------ protocol

    def handle_rest(self, params: dict[str, Any]) -> tuple[Any, bool]:
        """The answer body and whether the caller asked for JSON."""
        fmt = params.pop("moodlewsrestformat", "xml")
        as_json = fmt == "json"
        token = params.pop("wstoken", None)
        name = str(params.pop("wsfunction", ""))
        settings = {
            k.removeprefix("moodlewssetting"): str(params.pop(k))
            for k in list(params)
            if k.startswith("moodlewssetting")
        }
        with self.state.lock:
            self.state.calls[name] += 1
        try:
            if token != self.token or self.faults.mode == "expire_token":
                raise moodle_exception(self.state, "invalidtoken", "Invalid token - token not found")
            if "webservice/rest:use" not in self.state.capabilities:
                raise SimError(
                    "webservice_access_exception",
                    "accessexception",
                    "Access control exception",
                    "You are not allowed to use the rest protocol (missing capability: webservice/rest:use)",
                )
            function = REGISTRY.get(name)
            if function is None or (function.plugin is not None and self.state.plugin is None):
                raise missing_record(self.state, "external_functions")
            if name not in service_functions(self.state):
                raise SimError("webservice_access_exception", "accessexception", "Access control exception")
            try:
                cleaned = validate(function.params, params)
            except InvalidParameter as exc:
                exception = (
                    "core\\exception\\invalid_parameter_exception"
                    if self.state.namespaced
                    else "invalid_parameter_exception"
                )
                raise SimError(
                    exception, "invalidparameter", "Invalid parameter value detected", str(exc)
                ) from None
            require(self.state, *function.requires)
            CALL.settings = settings
            try:
                return function.handler(self.state, cleaned), as_json
            finally:
                CALL.settings = {}
        except SimError as exc:
            body: dict[str, Any] = {
                "exception": exc.exception,
                "errorcode": exc.errorcode,
                "message": exc.message,
            }
            if self.debug and exc.debuginfo:
                body["debuginfo"] = exc.debuginfo
            return body, as_json

    # ------------------------------------------------------------------ control

    def control(self, path: str, body: dict[str, Any]) -> Any:
        if path == "state":
            return self.state.snapshot()
        if path == "complete":
            self.state.complete(int(body["userid"]), int(body["courseid"]), body.get("timecompleted"))
            return {"ok": True}
        if path == "reset-calls":  # answers the counts it cleared (lighter than the whole state)
            with self.state.lock:
                calls = dict(self.state.calls)
                self.state.calls.clear()
            return {"ok": True, "calls": calls}
        if path == "faults":
            with self.faults.lock:
                self.faults.mode = body.get("mode")
                self.faults.count = int(body.get("count", 1))
                self.faults.status = int(body.get("status", 503))
                self.faults.retry_after = body.get("retry_after")
                self.faults.delay = float(body.get("delay", 0))
            return {"ok": True}
        if path == "suspend":
            with self.state.lock:
                user = self.state.users[int(body["userid"])]
                user.suspended = bool(body.get("suspended", True))
                self.state.log_user(user)
            return {"ok": True}
        if path == "update-user":  # {"userid", "idnumber"?, "email"?}: a profile edit
            with self.state.lock:
                user = self.state.users[int(body["userid"])]
                user.idnumber = str(body.get("idnumber", user.idnumber))
                user.email = str(body.get("email", user.email))
                self.state.log_user(user)
            return {"ok": True}
        if path == "suspend-enrolment":
            self.state.suspend_enrolment(
                int(body["userid"]), int(body["courseid"]), int(body.get("timeend", 0))
            )
            return {"ok": True}
        if path in ("install-plugin", "plugin-webhook", "plugin"):
            return self.plugin_control(path, body)
        if path == "capabilities":  # {"grant": [...], "revoke": [...]} or {"set": [...]}
            with self.state.lock:
                if "set" in body:
                    self.state.capabilities = set(body["set"])
                self.state.capabilities |= set(body.get("grant", []))
                self.state.capabilities -= set(body.get("revoke", []))
                return {"capabilities": sorted(self.state.capabilities)}
        if path == "forcetimezone":  # {"zone": "Europe/Berlin"} or {"zone": null}
            with self.state.lock:
                self.state.forcetimezone = body.get("zone")
            return {"ok": True}
        if path == "rate":
            self.state.rate(
                int(body["userid"]), int(body["competencyid"]), body.get("grade"), body.get("time")
            )
            return {"ok": True}
        raise KeyError(path)

    def plugin_control(self, path: str, body: dict[str, Any]) -> Any:
        """The companion plugin: install it (backfill and all), set its webhook, read it."""
        if path == "install-plugin":  # {"version": N, "grant": true}: install local_lmsbridge
            self.state.install_plugin(
                int(body.get("version", PLUGIN_VERSION)), grant=bool(body.get("grant", True))
            )
            return {"ok": True}
        if path == "plugin-webhook":  # the plugin's settings: {"url", "secret", "enabled"}
            if self.state.plugin is None:
                raise ValueError("local_lmsbridge is not installed")
            hook = self.state.plugin.webhook
            hook.url, hook.secret = str(body.get("url", "")), str(body.get("secret", ""))
            hook.enabled = bool(body.get("enabled", True))
            return {"ok": True}
        # "plugin": what it holds (its log, recommendations, webhook sends)
        if self.state.plugin is None:
            raise ValueError("local_lmsbridge is not installed")
        with self.state.plugin.lock:
            return {
                "changes": list(self.state.plugin.changes),
                "recommendations": {
                    str(uid): list(items.values()) for uid, items in self.state.plugin.recommendations.items()
                },
                "webhook_sent": list(self.state.plugin.webhook.sent),
            }


def to_xml(value: Any) -> str:
    def render(item: Any) -> str:
        if isinstance(item, dict):
            inner = "".join(f'<KEY name="{escape(str(k))}">{render(v)}\n</KEY>\n' for k, v in item.items())
            return f"<SINGLE>\n{inner}</SINGLE>"
        if isinstance(item, list):
            return "<MULTIPLE>\n" + "\n".join(render(v) for v in item) + "\n</MULTIPLE>"
        if item is None:
            return '<VALUE null="null"/>'
        if isinstance(item, bool):
            item = int(item)
        return f"<VALUE>{escape(str(item))}</VALUE>"

    if isinstance(value, dict) and "exception" in value and "errorcode" in value:
        return (
            f'<?xml version="1.0" encoding="UTF-8" ?>\n<EXCEPTION class="{escape(value["exception"])}">\n'
            f"<ERRORCODE>{escape(value['errorcode'])}</ERRORCODE>\n<MESSAGE>{escape(value['message'])}</MESSAGE>\n</EXCEPTION>\n"
        )
    return f'<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>\n{render(value)}\n</RESPONSE>\n'


def make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-type", content_type)
            self.send_header(
                "Cache-Control", "private, must-revalidate, pre-check=0, post-check=0, max-age=0"
            )
            self.send_header("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")
            self.send_header("Pragma", "no-cache")
            self.send_header("Accept-Ranges", "none")
            self.send_header("Access-Control-Allow-Origin", "*")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _rest(self, raw_query: str, body: bytes) -> None:
            params = decode(
                list(parse_qsl(raw_query, keep_blank_values=True))
                + list(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            )
            fault = sim.faults.take(str(params.get("wsfunction", "")))
            if fault == "reset":
                self.connection.close()
                self.close_connection = True
                return
            if fault == "slow":
                time.sleep(sim.faults.delay)
            if fault == "status":
                extra = (
                    {"Retry-After": str(sim.faults.retry_after)} if sim.faults.retry_after is not None else {}
                )
                self._send(
                    sim.faults.status, b"<html><body>Service unavailable</body></html>", "text/html", extra
                )
                return
            if fault == "html":
                self._send(
                    200,
                    b"<!DOCTYPE html><html><body><p>Fatal error: out of memory</p></body></html>",
                    "text/html; charset=utf-8",
                )
                return
            try:
                answer, as_json = sim.handle_rest(params)
            except PhpFatal:
                self._send(500, b"", "text/html; charset=utf-8")
                return
            if as_json:
                payload = json.dumps(answer, separators=(",", ":")).encode()
                if fault == "truncated":
                    payload = payload[: max(1, len(payload) // 2)]
                self._send(200, payload, "application/json")
            else:
                self._send(200, to_xml(answer).encode(), "application/xml; charset=utf-8")

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == ENDPOINT:
                self._rest(parts.query, b"")
            elif parts.path.startswith("/_simulator/"):
                self._control(parts.path, {})
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            body = self._body()
            if parts.path == ENDPOINT:
                self._rest(parts.query, body)
            elif parts.path.startswith("/_simulator/"):
                self._control(parts.path, json.loads(body or b"{}"))
            else:
                self._send(404, b"not found", "text/plain")

        def _control(self, path: str, body: dict[str, Any]) -> None:
            try:
                answer = sim.control(path.removeprefix("/_simulator/"), body)
            except (KeyError, ValueError) as exc:
                self._send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                return
            self._send(200, json.dumps(answer).encode(), "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


class Served(Protocol):
    state: SiteState


S = TypeVar("S", bound=Served)


@dataclass
class Running(Generic[S]):
    """A simulator serving in a background thread; ``stop`` also closes what it holds open."""

    simulator: S
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.simulator.state.url

    @property
    def state(self) -> SiteState:
        return self.simulator.state

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        close = getattr(self.simulator, "close", None)
        if close is not None:
            close()


def start(
    simulator: S, handler: type[BaseHTTPRequestHandler], name: str, port: int = 0, host: str = "127.0.0.1"
) -> Running[S]:
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    simulator.state.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
    thread.start()
    return Running(simulator, server, thread)


def serve(simulator: Simulator, port: int = 0, host: str = "127.0.0.1") -> Running[Simulator]:
    return start(simulator, make_handler(simulator), "moodle-simulator", port, host)


@contextmanager
def running(state: SiteState, token: str, debug: bool = False) -> Iterator[Running[Simulator]]:
    handle = serve(Simulator(state, token, debug))
    try:
        yield handle
    finally:
        handle.stop()
