"""The operations endpoint: ``/healthz``, ``/readyz``, ``/metrics`` and any pages added to it.

``/healthz`` says the process is alive; ``/readyz`` that the store is reachable and migrated,
with each source's health in the body (a failing LMS does not make the service unready: the
others go on). Everything else needs the bearer token when one is configured, and is refused
outright when the listener is not on loopback and no token is configured. Every response
carries security headers; nothing is served from the file system.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine

from bridge import clock, health
from bridge.errors import BridgeError
from bridge.log import get_logger
from bridge.metrics import StoreCollector, registry
from bridge.operational_state import operational_state
from bridge.settings import DeliverySettings
from bridge.store.db import current_revision, head_revision

log = get_logger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"

    @staticmethod
    def json(data: Any, status: int = 200) -> Response:
        return Response(status, json.dumps(data, indent=2, default=str).encode(), "application/json")

    @staticmethod
    def text(text: str, status: int = 200) -> Response:
        return Response(status, text.encode())


Route = Callable[[dict[str, list[str]]], Response]
# A page anyone may ask for; ``trusted`` says whether the caller may also see the protected ones.
PublicRoute = Callable[[bool], Response]
Hook = Callable[[bytes, Mapping[str, str]], Response]
MAX_HOOK_BODY = 1024 * 1024


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise BridgeError(f"daemon.listen must look like 127.0.0.1:8080, not {listen!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with a ceiling on open connections: past ``max_connections`` a new
    connection is closed at once, so a flood of idle clients cannot take every file descriptor
    (and with them the jobs' connections to the store and the sites)."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int
    ) -> None:
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class OpsServer:
    def __init__(
        self,
        engine: Engine,
        listen: str,
        token: str | None,
        sources: Callable[[], list[str]],
        *,
        connection_timeout: float = 10.0,
        max_connections: int = 64,
        delivery: DeliverySettings | None = None,
    ) -> None:
        self.engine = engine
        self.delivery = delivery or DeliverySettings()
        self.host, self.port = parse_listen(listen)
        self.token = token
        self.sources = sources
        self.connection_timeout = connection_timeout
        self.max_connections = max_connections
        self.protected: dict[str, Route] = {"/metrics": self._metrics}
        self.public: dict[str, PublicRoute] = {"/healthz": self._healthz, "/readyz": self._readyz}
        self.hooks: dict[str, Hook] = {}
        self._server: BoundedHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._collector: StoreCollector | None = StoreCollector(engine, self.delivery)
        registry.register(self._collector)

    def add_page(self, path: str, route: Route) -> None:
        """Pages (the dashboard) are always behind the same protection as /metrics."""
        self.protected[path] = route

    def add_hook(self, path: str, hook: Hook) -> None:
        """POST endpoints for pushed events; each authenticates its sender itself (a signature).
        Header names reach the hook in lower case."""
        self.hooks[path] = hook

    def receive(self, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        hook = self.hooks.get(urlsplit(path).path)
        if hook is None:
            return Response.text("not found\n", 404)
        if body is None:
            return Response.text("body too large\n", 413)
        return hook(body, headers)

    # ------------------------------------------------------------------ routes

    def _healthz(self, _trusted: bool) -> Response:
        return Response.json({"status": "alive", "time": clock.now().isoformat()})

    def _readyz(self, trusted: bool) -> Response:
        """Readiness, each source's health and the operational state (pause, rejected mappings,
        deferred backlog: none of them makes the replica unready); an error's text (it may name
        hosts, accounts or what a site answered) and the mapping problems' text only to a caller
        who may see the protected pages."""
        try:
            current, head = current_revision(self.engine), head_revision()
        except BridgeError as exc:
            return Response.json({"ready": False, "store": str(exc)}, 503)
        states = {h.name: h for h in health.all_health(self.engine)}
        sources = {}
        for name in self.sources():
            h = states.get(name)
            sources[name] = {
                "last_success": h.last_success_at if h else None,
                "consecutive_failures": h.consecutive_failures if h else 0,
                "last_error": (h.last_error if trusted else "failing (details need the token)")
                if h and h.consecutive_failures
                else None,
                "healthy": h is None or h.consecutive_failures == 0,
            }
        with self.engine.connect() as conn:
            operations = operational_state(conn, self.delivery).as_dict(details=trusted)
        ready = current == head
        body = {
            "ready": ready,
            "store": "ok",
            "schema": current,
            "expected_schema": head,
            "sources": sources,
            **operations,
        }
        return Response.json(body, 200 if ready else 503)

    def _metrics(self, _q: dict[str, list[str]]) -> Response:
        return Response(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ serving

    def handle(self, path: str, authorization: str | None) -> Response:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        public = self.public.get(parts.path)
        if public is not None:
            return public(self._refusal(authorization) is None)
        route = self.protected.get(parts.path)
        if route is None:
            return Response.text("not found\n", 404)
        refusal = self._refusal(authorization)
        return refusal if refusal is not None else route(query)

    def _refusal(self, authorization: str | None) -> Response | None:
        """Why a caller may not see the protected pages, or None if they may."""
        if self.token is None and not is_loopback(self.host):
            return Response.text("configure daemon.token to use this page on a non-loopback address\n", 403)
        if self.token is not None and not _token_ok(authorization, self.token):
            return Response.text("authentication required\n", 401)
        return None

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = server.connection_timeout  # a client that sends nothing is let go

            def do_GET(self) -> None:
                self._answer(lambda: server.handle(self.path, self.headers.get("Authorization")))

            def do_POST(self) -> None:
                length = _content_length(self.headers.get("Content-Length"))
                if length is None:
                    self.close_connection = True
                    self._answer(lambda: Response.text("bad Content-Length\n", 400))
                    return
                body = self.rfile.read(length) if length <= MAX_HOOK_BODY else None
                if body is None:
                    self.close_connection = True
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._answer(lambda: server.receive(self.path, body, headers))

            def _answer(self, respond: Callable[[], Response]) -> None:
                try:
                    response = respond()
                except Exception:
                    log.exception("ops request failed", path=urlsplit(self.path).path)
                    response = Response.text("internal error\n", 500)
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                if response.status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="lmsbridge", charset="UTF-8"')
                for key, value in SECURITY_HEADERS.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(response.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = BoundedHTTPServer((self.host, self.port), Handler, self.max_connections)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True)
        self._thread.start()
        log.info("operations endpoint listening", address=f"http://{self.host}:{self.port}")
        if (warning := self.exposure_warning()) is not None:
            log.warning(warning, address=f"{self.host}:{self.port}")

    def exposure_warning(self) -> str | None:
        """What to tell the operator when the endpoint is reachable from other machines unguarded."""
        if self.token is None and not is_loopback(self.host):
            return (
                "the operations endpoint listens beyond loopback without daemon.token: /metrics "
                "and the dashboard are refused there until a token is set"
            )
        return None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        # The metrics registry is process-wide: a stopped server must not leave its store's
        # collector behind (another server in the same process would collide with it).
        if self._collector is not None:
            registry.unregister(self._collector)
            self._collector = None


def _content_length(value: str | None) -> int | None:
    """The announced body length, or None when it is not a non-negative number."""
    if value is None:
        return 0
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _token_ok(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, or Basic auth with any user name and the token as the
    password (so a browser can open the dashboard)."""
    given = ""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    return hmac.compare_digest(given.encode(), token.encode())
