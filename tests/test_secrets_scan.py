"""No configured secret ever shows: the whole flow run for real, then every output scanned (issue #10).

One installation with every kind of secret: a Moodle web-service token, an HR API bearer token, an
SMTP password (from the secrets directory) and the operations endpoint's token. The real
``lmsbridge`` command runs the demo flow at debug level — migrate, check, validate, doctor, plan,
two syncs (HR CSV and JSON, Moodle messages and enrolments, email over STARTTLS with AUTH), a sync
while the site rejects the token, status and the outbox — and then the service, whose pages are
fetched with and without the token. Every byte of output, every text column of every table, the
database files, the pages, and what the site and the mail server received are searched for every
secret.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from connectors.moodle.sim.server import Running
from connectors.moodle.simulator import start_in_thread
from connectors.simulation.loopback import free_port
from tests.test_cli_e2e import NOW, ROOT

MOODLE_TOKEN = "moodle-ws-7f3a9c1e5b2d4f6a8c0e1d3f"
HR_TOKEN = "hr-bearer-3e4f5a6b7c8d9e0f1a2b3c4d"
SMTP_PASSWORD = "smtp-pw-9d8c7b6a5f4e3d2c1b0a9f8e"
OPS_TOKEN = "ops-token-1a2b3c4d5e6f7a8b9c0d1e2f"
SECRETS = {
    "Moodle token": MOODLE_TOKEN,
    "HR API token": HR_TOKEN,
    "SMTP password": SMTP_PASSWORD,
    "operations token": OPS_TOKEN,
}

EMAIL_MAPPING = """\
id: csat-by-email
title: CSAT below target, by email
audience:
  department: Customer Service
when:
  kpi: {metric: csat, below: target}
recommend:
  - site: moodle
    course: CS-101
    channels: [email]
schedule:
  days: [mon, tue, wed, thu, fri, sat, sun]
  hours: "00:00-24:00"
"""


LINK = re.compile(r'(?:href|src)="([^"#]+)"')


# ---------------------------------------------------------------------- the outside systems


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(bytes(envelope.content))
        return "250 Message accepted"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@dataclass
class HrApi:
    url: str
    server: ThreadingHTTPServer
    seen_tokens: list[str | None] = field(default_factory=list)


def hr_api() -> HrApi:
    """KPIs by bearer token; the first request gets a 503, so the retry path runs (and logs) too."""
    api: HrApi
    failed_once = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.seen_tokens.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != f"Bearer {HR_TOKEN}":
                self._send(401, {"error": "unauthorised"})
            elif not failed_once.is_set():
                failed_once.set()
                self._send(503, {"error": "busy"})
            else:
                period = {"from": "2026-10-01", "to": "2026-10-31"}
                items = [{"emp": "000018", "kpi": "csat", "period": period, "score": 3.2}]
                self._send(200, {"data": {"items": items}})

        def _send(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api = HrApi(f"http://127.0.0.1:{server.server_address[1]}", server)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return api


@dataclass
class Installation:
    directory: Path
    config: Path
    ops_port: int
    env: dict[str, str]
    moodle: Running
    inbox: Inbox
    api: HrApi
    outputs: dict[str, str] = field(default_factory=dict)  # what each command printed, by name

    def run(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "bridge", "--config", str(self.config), "--log-level", "debug", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )
        self.outputs[name] = result.stdout + result.stderr
        return result


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[Installation]:
    moodle = start_in_thread(MOODLE_TOKEN)
    api = hr_api()
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(
        inbox,
        hostname="127.0.0.1",
        port=smtp_port,
        tls_context=tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    smtp.start()
    rules = tmp_path / "rules"
    rules.mkdir()
    for mapping in (ROOT / "mappings").glob("*.yaml"):
        (rules / mapping.name).write_text(mapping.read_text())
    (rules / "csat-by-email.yaml").write_text(EMAIL_MAPPING)
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "lmsbridge_channels__email__password").write_text(SMTP_PASSWORD)
    ops_port = free_port()
    hr = ROOT / "examples" / "hr"
    config = tmp_path / "lmsbridge.toml"
    config.write_text(
        f"""
[store]
url = "sqlite:///state.db"
[mappings]
dir = "{rules}"
[metrics.csat]
target = 4.2
[metrics.first_contact_resolution]
target = 75
[metrics.safety_incidents]
direction = "lower"
[metrics.win_rate]
target = 30
[daemon]
listen = "127.0.0.1:{ops_port}"
pull_every_seconds = 2
decide_every_seconds = 2
deliver_every_seconds = 1
[sites.moodle]
type = "moodle"
url = "{moodle.url}"
[feeds.hr]
type = "csv"
people = "{hr / "people.csv"}"
measurements = "{hr / "kpis.csv"}"
reviews = "{hr / "reviews.csv"}"
[feeds.hrapi]
type = "json_http"
base_url = "{api.url}"
auth = "bearer"
attempts = 3
[feeds.hrapi.measurements]
path = "/v1/kpis"
items = "data.items"
fields = {{person = "emp", metric = "kpi", period_start = "period.from", period_end = "period.to", value = "score"}}
[channels.email]
type = "smtp"
host = "127.0.0.1"
port = {smtp_port}
username = "bridge"
from_address = "learning@example.org"
ca_file = "{ca_file}"
"""
    )
    env = {
        **os.environ,
        "LMSBRIDGE_NOW": NOW,
        "LMSBRIDGE_LOG__FORMAT": "json",
        "LMSBRIDGE_SITES__MOODLE__TOKEN": MOODLE_TOKEN,
        "LMSBRIDGE_FEEDS__HRAPI__TOKEN": HR_TOKEN,
        "LMSBRIDGE_DAEMON__TOKEN": OPS_TOKEN,
        "LMSBRIDGE_SECRETS_DIR": str(secrets_dir),
        "COLUMNS": "200",
    }
    try:
        yield Installation(tmp_path, config, ops_port, env, moodle, inbox, api)
    finally:
        smtp.stop()
        api.server.shutdown()
        api.server.server_close()
        moodle.stop()


# ---------------------------------------------------------------------- the flow and the scan


def fetch(port: int, path: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, str(dict(response.headers)) + response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, str(dict(error.headers)) + error.read().decode(errors="replace")


def serve_and_fetch(inst: Installation) -> dict[str, str]:
    """Run the service, read every page with and without the token, stop it; return the pages."""
    log_path = inst.directory / "service.log"
    pages: dict[str, str] = {}
    with log_path.open("w") as log_file:
        service = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--config", str(inst.config), "--log-level", "debug", "run"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env=inst.env,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if fetch(inst.ops_port, "/readyz", None)[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.3)
            time.sleep(2.5)  # a cycle or two of every job
            # The fixed endpoints, then every page the dashboard links to (followed from its overview).
            todo = ["/healthz", "/readyz", "/metrics", "/dashboard", "/nothing", "/webhooks/moodle"]
            seen: set[str] = set()
            while todo and len(seen) < 60:
                path = todo.pop(0)
                if path in seen:
                    continue
                seen.add(path)
                for token in (OPS_TOKEN, None, "wrong-token"):
                    status, body = fetch(inst.ops_port, path, token)
                    shown = "token" if token == OPS_TOKEN else token or "no token"
                    pages[f"GET {path} ({shown}): {status}"] = body
                    if token == OPS_TOKEN and status == 200:
                        todo += [html.unescape(link) for link in LINK.findall(body) if link.startswith("/")]
        finally:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(30)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait(10)
    inst.outputs["lmsbridge run"] = log_path.read_text()
    return pages


def database_text(path: Path) -> dict[str, str]:
    """Every text (or blob) value of every table, by table.column."""
    found: dict[str, list[str]] = {}
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            cursor = db.execute(f'select * from "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes | str):
                        text = value.decode(errors="replace") if isinstance(value, bytes) else value
                        found.setdefault(f"{table}.{column}", []).append(text)
    return {key: "\n".join(values) for key, values in found.items()}


def leaks(places: dict[str, str]) -> list[str]:
    found = []
    for where, text in places.items():
        for name, secret in SECRETS.items():
            if secret in text or quote(secret, safe="") in text:
                found.append(f"{name} in {where}")
    return found


@pytest.mark.timeout(240)
def test_no_secret_appears_in_any_output_table_file_or_page(installation: Installation) -> None:
    inst = installation
    assert inst.run("db upgrade", "db", "upgrade").returncode == 0
    assert inst.run("config check", "config", "check").returncode == 0, inst.outputs["config check"]
    assert inst.run("validate", "validate").returncode == 0, inst.outputs["validate"]
    inst.run("doctor", "doctor")
    assert inst.run("plan", "plan").returncode == 0, inst.outputs["plan"]
    first = inst.run("sync", "sync", "--once")
    assert first.returncode == 0, inst.outputs["sync"]
    assert inst.run("sync again", "sync", "--once").returncode == 0
    inst.moodle.simulator.faults.mode = "expire_token"  # the site stops accepting the token
    inst.moodle.simulator.faults.count = 1
    rejected = inst.run("sync with the token rejected", "sync", "--once", "--full")
    inst.moodle.simulator.faults.mode = None
    assert rejected.returncode == 2 and "Moodle rejected the token" in rejected.stdout + rejected.stderr
    assert inst.run("status", "status").returncode == 0
    assert inst.run("status --json", "status", "--json").returncode == 0
    assert inst.run("outbox", "outbox", "--limit", "500").returncode == 0
    pages = serve_and_fetch(inst)

    # The flow really used every secret.
    assert inst.moodle.state.messages, "Moodle received messages"
    assert inst.inbox.messages, "the mail server received email (after AUTH)"
    assert f"Bearer {HR_TOKEN}" in inst.api.seen_tokens, "the HR API was called with its token"
    assert any(name.startswith("GET /metrics (token): 200") for name in pages)
    dashboard = [
        name for name in pages if name.startswith("GET /dashboard") and name.endswith("(token): 200")
    ]
    assert len(dashboard) >= 5, dashboard
    assert any(name.startswith("GET /metrics (no token): 401") for name in pages)
    debug_lines = sum(text.count('"level": "debug"') for text in inst.outputs.values())
    assert debug_lines > 10, "the commands logged at debug level"

    places: dict[str, str] = {f"output of `lmsbridge {name}`": text for name, text in inst.outputs.items()}
    places.update(
        {f"database column {key}": text for key, text in database_text(inst.directory / "state.db").items()}
    )
    places.update(
        {
            f"file {path.name}": path.read_bytes().decode(errors="replace")
            for path in inst.directory.iterdir()
            if path.name.startswith("state.db") or path.suffix in (".log", ".lock")
        }
    )
    places.update({f"page {name}": body for name, body in pages.items()})
    places.update({"messages the site received": json.dumps(inst.moodle.state.messages)})
    places.update({"email sent": "\n".join(m.decode(errors="replace") for m in inst.inbox.messages)})
    assert not leaks(places), leaks(places)


def test_the_scan_finds_a_secret_where_there_is_one() -> None:
    assert leaks({"a log line": f'{{"event": "oops", "token": "{SMTP_PASSWORD}"}}'}) == [
        "SMTP password in a log line"
    ]
    assert leaks({"a URL": f"https://x/?wstoken={quote(MOODLE_TOKEN)}"}) == ["Moodle token in a URL"]
    assert not leaks({"clean": "wstoken=***"})
