"""Faults: the LMS and the database misbehave while real cycles run (issue #10, "Faults").

Every test drives real cycles against the bundled Moodle simulator over HTTP on 127.0.0.1 — in
this process through :func:`bridge.cycle.run_cycle`, or as the real ``lmsbridge`` command — while
a fault is active, and again after it clears. Then it checks what matters to an operator:

- nothing lost: every action that is due has gone out, and what came in during the fault is stored;
- nothing sent twice: the simulator never received one (user, text) twice, and what it received
  is exactly what the outbox records as sent;
- every error is one readable line naming the site, never a traceback or a secret;
- the source's health (and circuit breaker) is recorded.

The simulator's fault switch (``POST /_simulator/faults``) spoils the next N requests. "Down" and
"PostgreSQL unavailable" are a TCP forwarder on 127.0.0.1 that the test stops and starts. In-process
cycles shrink the client's retry sleeps (the number of attempts and the waits it asks for are
unchanged and checked) so the whole file stays within a few minutes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from bridge import clock, health, log
from bridge.cycle import CycleReport, run_cycle
from bridge.health import BREAKER_AFTER
from bridge.mapping.loader import MappingSet, load_dir
from bridge.settings import Settings, load_settings
from bridge.store import schema as t
from bridge.store.db import make_engine, upgrade
from connectors.moodle.client import MoodleClient
from connectors.moodle.sim.server import Running
from connectors.moodle.simulator import start_in_thread
from connectors.moodle.sink import MoodleSink, reference
from connectors.moodle.source import MoodleSource
from tests.conftest import POSTGRES_URL, SIM_TOKEN
from tests.test_cli_e2e import ROOT, config
from tests.test_cli_e2e import run as cli
from tests.test_daemon import Service, daemon_config, get, migrate, store_progress, wait_for

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)  # the first cycle: everything starts clean
T1 = datetime(2026, 11, 3, 14, 30, tzinfo=UTC)  # the faulted cycle: the morning's deferred actions are due
T2 = T1 + timedelta(minutes=5)  # the fault has cleared
ATTEMPTS = 5  # MoodleClient's default attempts per call: a fault this long fails the call
REF = re.compile(r"Ref (LB-[0-9a-f]{10})")


# ---------------------------------------------------------------------- plumbing


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``. ``stop()`` closes the listener and every open
    connection, so the service behind it is simply gone (connection refused); ``start()`` brings
    it back on the same port."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)
                with self._lock:
                    self._open.discard(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def post(url: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def arm(sim: Running, spec: dict[str, Any]) -> None:
    """The next ``count`` REST requests fail as ``spec`` says (see connectors/moodle/sim/server.py)."""
    post(sim.url, "/_simulator/faults", spec)


def clear(sim: Running) -> None:
    post(sim.url, "/_simulator/faults", {"mode": None, "count": 0})


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client still makes every attempt and computes every wait; it only sleeps 10 ms."""
    asked: list[float] = []
    original = MoodleClient._wait

    def short(self: MoodleClient, state: Any) -> float:
        asked.append(original(self, state))
        return 0.01

    monkeypatch.setattr(MoodleClient, "_wait", short)
    return asked


@dataclass
class Bridge:
    """One lmsbridge installation driven in this process: configuration, store, mappings, log."""

    settings: Settings
    engine: Engine
    mapping_set: MappingSet
    log: io.StringIO = field(default_factory=io.StringIO)

    def cycle(self, at: datetime, progress: Callable[[str], None] | None = None) -> CycleReport:
        clock.set_now(at)
        return run_cycle(self.engine, self.settings, self.mapping_set, progress=progress)

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line.strip()]


def install(
    directory: Path, url: str, monkeypatch: pytest.MonkeyPatch, site_options: str = "", extra: str = ""
) -> Bridge:
    directory.mkdir(parents=True, exist_ok=True)
    cfg = config(directory, url)
    body = cfg.read_text().replace(
        '[sites.moodle]\ntype = "moodle"', f'[sites.moodle]\ntype = "moodle"\n{site_options}'
    )
    cfg.write_text(body + "\n[delivery]\nbackoff_base_seconds = 1\n" + extra)
    monkeypatch.setenv("LMSBRIDGE_SITES__MOODLE__TOKEN", SIM_TOKEN)
    settings = load_settings(cfg)
    log.register_secrets(settings.secrets())
    bridge = Bridge(
        settings, make_engine(settings.store_url()), load_dir(settings.resolve(settings.mappings.dir))
    )
    log.configure("info", "json", bridge.log)
    upgrade(bridge.engine)
    return bridge


# ---------------------------------------------------------------------- what must hold


def received(sim: Running) -> Counter[tuple[int, str]]:
    """What the simulated site holds: (recipient, reference) of every message, counted."""
    with sim.state.lock:
        messages = list(sim.state.messages)
    found: Counter[tuple[int, str]] = Counter()
    for message in messages:
        match = REF.search(str(message["text"]))
        found[(int(message["touserid"]), match.group(1) if match else "no ref")] += 1
    return found


def outbox(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.key: r.state for r in conn.execute(select(t.actions.c.key, t.actions.c.state))}


def assert_sent_exactly_once(engine: Engine, sim: Running) -> None:
    """The site got each message once, and exactly the messages and enrolments the outbox sent."""
    with sim.state.lock:
        texts = Counter((m["touserid"], m["text"]) for m in sim.state.messages)
        enrolled = Counter((e["userid"], e["courseid"]) for e in sim.state.enrolled)
    twice = [key for key, n in texts.items() if n > 1]
    assert not twice, f"{len(twice)} message(s) reached the site more than once"
    a = t.actions
    with engine.connect() as conn:
        sent = conn.execute(
            select(a.c.key, a.c.kind, a.c.recipient_user_id, a.c.target).where(a.c.state == "sent")
        ).all()
    expected_messages = Counter((r.recipient_user_id, reference(r.key)) for r in sent if r.kind == "message")
    assert received(sim) == expected_messages, "the site's messages differ from the outbox's sent ones"
    # An enrolment is written at most once, only for a sent action; and every sent one holds on the
    # site (reconciliation after a crash may find the learner enrolled already and write nothing).
    expected_enrolments = {(r.recipient_user_id, int(r.target["item_id"])) for r in sent if r.kind == "enrol"}
    assert max(enrolled.values(), default=1) == 1 and set(enrolled) <= expected_enrolments
    with sim.state.lock:
        assert all(course in sim.state.enrolments.get(user, {}) for user, course in expected_enrolments)


def assert_nothing_due_left(engine: Engine, now: datetime) -> None:
    """Nothing in flight, nothing dead, and every action that is due has been sent."""
    a = t.actions
    with engine.connect() as conn:
        stuck = conn.execute(
            select(a.c.key, a.c.state, a.c.last_error).where(
                (a.c.state.in_(("sending", "dead"))) | ((a.c.state == "pending") & (a.c.due_at <= now))
            )
        ).all()
    assert not stuck, f"actions not delivered: {stuck[:3]}"


def assert_one_clear_line(message: str | None, *, says: str) -> None:
    assert message is not None
    assert "\n" not in message and "Traceback" not in message and SIM_TOKEN not in message
    assert "site 'moodle'" in message and says in message, message


# ---------------------------------------------------------------------- the fault matrix


@dataclass(frozen=True)
class Fault:
    name: str
    spec: dict[str, Any] | None  # the simulator's fault switch; None: nothing listens at all
    says: str  # what the one-line error says
    site_options: str = ""
    # A message send failing this way may have been carried out: it is checked on the site first.
    outcome_unknown: bool = False

    @property
    def delay(self) -> float:
        return float((self.spec or {}).get("delay", 0))


FAULTS = [
    Fault("lms-down", None, "cannot connect"),
    Fault(
        "slower-than-timeout",
        {"mode": "slow", "delay": 1.0},
        "no answer within 0.5 s",
        site_options="timeout_seconds = 0.5",
        outcome_unknown=True,
    ),
    Fault("http-500", {"mode": "status", "status": 500}, "HTTP 500", outcome_unknown=True),
    Fault("http-503-retry-after", {"mode": "status", "status": 503, "retry_after": 1}, "HTTP 503"),
    Fault("http-429", {"mode": "status", "status": 429}, "HTTP 429"),
    Fault("connection-reset", {"mode": "reset"}, "cannot connect", outcome_unknown=True),
    Fault("truncated-json", {"mode": "truncated"}, "the answer is not JSON", outcome_unknown=True),
    Fault("html-error-page", {"mode": "html"}, "the answer is not JSON", outcome_unknown=True),
    Fault("token-expires-mid-run", {"mode": "expire_token"}, "Moodle rejected the token"),
]


@dataclass
class Scenario:
    """Cycle at T0 (clean), a learner completes, cycle at T1 under the fault, cycle at T2 after it."""

    bridge: Bridge
    sim: Running
    proxy: TcpProxy
    completed: tuple[int, int] = (0, 0)
    faulted: CycleReport | None = None
    health_during: dict[str, health.Health | None] = field(default_factory=dict)
    recovered: CycleReport | None = None


def run_scenario(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: Fault | None,
    phase: str,
    sim: Running,
) -> Scenario:
    proxy = TcpProxy(int(sim.url.rsplit(":", 1)[1]))
    proxy.start()
    bridge = install(directory, proxy.url, monkeypatch, site_options=fault.site_options if fault else "")
    scenario = Scenario(bridge, sim, proxy)
    first = bridge.cycle(T0)
    assert first.delivery is not None and first.delivery.states["sent"] > 0 and not first.delivery.errors
    # While the LMS misbehaves a learner completes a course the bridge recommended this morning.
    a = t.actions
    with bridge.engine.connect() as conn:
        row = conn.execute(
            select(a.c.recipient_user_id, a.c.target)
            .where((a.c.state == "sent") & (a.c.kind == "message"))
            .order_by(a.c.key)
        ).first()
    assert row is not None
    scenario.completed = (int(row.recipient_user_id), int(row.target["item_id"]))
    sim.state.complete(*scenario.completed, int((T0 + timedelta(hours=2)).timestamp()))

    def start_fault() -> None:
        if fault is None:
            return
        if fault.spec is None:
            proxy.stop()
        else:
            arm(sim, {"count": ATTEMPTS, **fault.spec})

    def at_stage(stage: str) -> None:
        if phase == "deliver" and stage == "delivering":
            start_fault()  # mid-run: the pull and the decisions went fine

    if phase == "pull":
        start_fault()
    scenario.faulted = bridge.cycle(T1, progress=at_stage)
    scenario.health_during = {name: health.get(bridge.engine, name) for name in ("moodle", "deliver")}
    if fault is not None:
        if fault.spec is None:
            proxy.start()
        else:
            clear(sim)
        time.sleep(fault.delay)  # requests the client gave up on are still being answered
    scenario.recovered = bridge.cycle(T2)
    return scenario


@pytest.fixture(scope="module")
def baseline(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Counter[tuple[int, str]], dict[str, str]]]:
    """What the same three cycles produce without any fault: what the site got, the outbox."""
    sim = start_in_thread(SIM_TOKEN)
    with pytest.MonkeyPatch.context() as mp:
        scenario = run_scenario(tmp_path_factory.mktemp("baseline"), mp, None, "none", sim)
    try:
        yield received(sim), outbox(scenario.bridge.engine)
    finally:
        scenario.bridge.engine.dispose()
        scenario.proxy.stop()
        sim.stop()
        clock.set_now(None)


def _phase_params() -> list[Any]:
    return [
        pytest.param(fault, phase, id=f"{fault.name}-during-{phase}")
        for fault in FAULTS
        for phase in ("pull", "deliver")
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("fault", "phase"), _phase_params())
def test_fault_then_recovery_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moodle: Running,
    fast_retries: list[float],
    baseline: tuple[Counter[tuple[int, str]], dict[str, str]],
    fault: Fault,
    phase: str,
) -> None:
    scenario = run_scenario(tmp_path, monkeypatch, fault, phase, moodle)
    bridge, faulted, recovered = scenario.bridge, scenario.faulted, scenario.recovered
    assert faulted is not None and recovered is not None and faulted.delivery is not None
    engine = bridge.engine
    try:
        # While the fault lasted: one clear line, and the failure is on record.
        pulled = {p.source: p for p in faulted.pulls}
        assert pulled["hr"].error is None, "the HR feed goes on while the LMS is failing"
        if phase == "pull":
            assert_one_clear_line(pulled["moodle"].error, says=fault.says)
            moodle_health = scenario.health_during["moodle"]
            assert moodle_health is not None and moodle_health.consecutive_failures == 1
            assert moodle_health.last_error == pulled["moodle"].error
        if phase == "deliver" or fault.spec is None or fault.name == "token-expires-mid-run":
            assert faulted.delivery.errors, "delivery should have failed"
            for error in faulted.delivery.errors:
                assert_one_clear_line(error, says=fault.says)
            deliver_health = scenario.health_during["deliver"]
            assert deliver_health is not None and deliver_health.consecutive_failures == 1
        logged = bridge.log_lines()
        failures = [e for e in logged if e["event"] in ("pull failed", "delivery failed")]
        assert failures and all(fault.says in e["error"] for e in failures)
        assert SIM_TOKEN not in bridge.log.getvalue() and "Traceback" not in bridge.log.getvalue()
        if fault.name == "http-503-retry-after":
            assert fast_retries and min(fast_retries) >= 1, "Retry-After: 1 must be honoured"

        # After it cleared: healthy again, nothing lost, nothing twice.
        assert all(p.error is None for p in recovered.pulls)
        assert recovered.delivery is not None and not recovered.delivery.errors
        if phase == "deliver" and fault.outcome_unknown:
            assert recovered.delivery.reconciled > 0, "looked for on the site before any resend"
        for name in ("moodle", "deliver"):
            state = health.get(engine, name)
            assert state is not None and state.consecutive_failures == 0 and state.last_success_at == T2
        assert_sent_exactly_once(engine, moodle)
        assert_nothing_due_left(engine, T2)
        with engine.connect() as conn:
            stored = conn.execute(
                select(t.completions.c.user_id, t.completions.c.item_id).where(
                    t.completions.c.site == "moodle"
                )
            ).all()
        assert scenario.completed in {(r.user_id, r.item_id) for r in stored}
        site_got, outbox_states = baseline
        assert received(moodle) == site_got, "the site got other messages than without the fault"
        assert outbox(engine) == outbox_states, "the outbox ended differently than without the fault"
    finally:
        engine.dispose()
        scenario.proxy.stop()


@pytest.mark.timeout(60)
def test_lms_failing_between_the_message_batch_and_the_enrolments_sends_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moodle: Running, fast_retries: list[float]
) -> None:
    bridge = install(tmp_path, moodle.url, monkeypatch)
    send_messages = MoodleSink._send_messages

    def then_fail(self: MoodleSink, batch: Any) -> Any:
        outcomes = send_messages(self, batch)
        arm(moodle, {"mode": "status", "status": 503, "count": ATTEMPTS})
        return outcomes

    monkeypatch.setattr(MoodleSink, "_send_messages", then_fail)
    # Nobody is enrolled yet, so the enrolment group really sends (the site's own enrolments
    # would be left alone: see test_moodle_connector).
    moodle.state.enrolments.clear()
    moodle.state.participants.clear()
    first = bridge.cycle(T0)
    assert first.delivery is not None
    assert first.delivery.states["sent"] > 0 and first.delivery.states["pending"] > 0  # enrolments wait
    monkeypatch.setattr(MoodleSink, "_send_messages", send_messages)
    clear(moodle)
    later = T0 + timedelta(minutes=5)
    second = bridge.cycle(later)
    try:
        assert second.delivery is not None and not second.delivery.errors
        assert_sent_exactly_once(bridge.engine, moodle)
        assert_nothing_due_left(bridge.engine, later)
        assert len(moodle.state.enrolled) > 0
    finally:
        bridge.engine.dispose()


@pytest.mark.timeout(60)
def test_a_site_that_stays_down_is_rested_by_the_circuit_breaker_then_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moodle: Running, fast_retries: list[float]
) -> None:
    proxy = TcpProxy(int(moodle.url.rsplit(":", 1)[1]))
    bridge = install(tmp_path, proxy.url, monkeypatch)  # the LMS is down from the start
    try:
        at = T0
        for failures in range(1, BREAKER_AFTER + 1):
            report = bridge.cycle(at)
            (moodle_pull,) = [p for p in report.pulls if p.source == "moodle"]
            assert_one_clear_line(moodle_pull.error, says="cannot connect")
            state = health.get(bridge.engine, "moodle")
            assert state is not None and state.consecutive_failures == failures
            at += timedelta(seconds=30)
        assert state.open_until() is not None and state.open_until() > at  # type: ignore[operator]
        calls = len(fast_retries)
        rested = bridge.cycle(at)
        (moodle_pull,) = [p for p in rested.pulls if p.source == "moodle"]
        assert moodle_pull.error is None and moodle_pull.skipped is not None
        assert moodle_pull.skipped.startswith(f"resting after {BREAKER_AFTER} failures until")
        assert len(fast_retries) == calls, "a resting site is not called"
        assert rested.decisions is not None, "the other stages go on while the site rests"
        proxy.start()
        back = bridge.cycle(state.open_until() + timedelta(seconds=1))  # type: ignore[operator]
        assert all(p.error is None and p.skipped is None for p in back.pulls)
        state = health.get(bridge.engine, "moodle")
        assert state is not None and state.consecutive_failures == 0 and state.open_until() is None
        assert back.delivery is not None and back.delivery.states["sent"] > 0
        assert_sent_exactly_once(bridge.engine, moodle)
    finally:
        bridge.engine.dispose()
        proxy.stop()


# ---------------------------------------------------------------------- the real command


def sent_in(state_db: Path) -> list[tuple[str, str, int, str | None]]:
    with sqlite3.connect(state_db) as db:
        return list(
            db.execute("select key, kind, recipient_user_id, target from actions where state = 'sent'")
        )


@pytest.mark.timeout(120)
def test_sync_with_the_lms_down_says_so_in_one_line_and_the_next_run_catches_up(
    tmp_path: Path, moodle: Running
) -> None:
    proxy = TcpProxy(int(moodle.url.rsplit(":", 1)[1]))  # not started: nothing listens
    cfg = config(tmp_path, proxy.url)
    store = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(store)
    store.dispose()
    try:
        down = cli(cfg, "sync", "--once")
        output = down.stdout + down.stderr
        assert down.returncode == 2, output
        assert "Traceback" not in output and SIM_TOKEN not in output
        assert "sources failing: moodle" in output
        error = "Moodle site 'moodle' could not answer core_user_get_users_by_field: cannot connect (ConnectionError)"
        assert any(error in line for line in output.splitlines()), output
        proxy.start()
        back = cli(cfg, "sync", "--once")
        assert back.returncode == 0, back.stdout + back.stderr
        assert "sources failing" not in back.stdout
        sent = sent_in(tmp_path / "state.db")
        assert sent and received(moodle) == Counter(
            (user, reference(key)) for key, kind, user, _ in sent if kind == "message"
        )
        with sqlite3.connect(tmp_path / "state.db") as db:
            failures = dict(db.execute("select name, consecutive_failures from source_health"))
        assert failures["moodle"] == 0 and failures["hr"] == 0
    finally:
        proxy.stop()


@pytest.mark.timeout(60)
def test_lms_down_on_the_first_cycle_changes_nothing_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_retries: list[float]
) -> None:
    """A mapping's first evaluation (its 'backfill: false' baseline) waits for the site's data."""
    outcomes = []
    for down in (False, True):
        sim = start_in_thread(SIM_TOKEN)
        proxy = TcpProxy(int(sim.url.rsplit(":", 1)[1]))
        bridge = install(tmp_path / f"down-{down}", proxy.url, monkeypatch)
        try:
            if not down:
                proxy.start()
            bridge.cycle(T0)
            if down:
                proxy.start()
            bridge.cycle(T0 + timedelta(minutes=5))
            outcomes.append((received(sim), outbox(bridge.engine)))
        finally:
            bridge.engine.dispose()
            proxy.stop()
            sim.stop()
    assert outcomes[0] == outcomes[1]


@pytest.mark.timeout(60)
def test_lms_failing_right_after_the_users_are_read_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_retries: list[float]
) -> None:
    """10:00 the LMS is down (HR loads); 11:00 it answers the users, then fails; 12:00 all is well."""
    pull_courses = MoodleSource.pull_courses
    outcomes = []
    for failing in (False, True):
        sim = start_in_thread(SIM_TOKEN)
        proxy = TcpProxy(int(sim.url.rsplit(":", 1)[1]))
        bridge = install(tmp_path / f"failing-{failing}", proxy.url, monkeypatch)

        def then_fail(self: MoodleSource, ctx: Any, sim: Running = sim, failing: bool = failing) -> Any:
            if failing and clock.now() == T0 + timedelta(hours=1):
                arm(sim, {"mode": "status", "status": 503, "count": ATTEMPTS})
            return pull_courses(self, ctx)

        monkeypatch.setattr(MoodleSource, "pull_courses", then_fail)
        try:
            bridge.cycle(T0)
            proxy.start()
            second = bridge.cycle(T0 + timedelta(hours=1))
            assert failing == any(p.error for p in second.pulls)
            bridge.cycle(T0 + timedelta(hours=2))
            outcomes.append((counts(bridge.engine)["identities"], received(sim), outbox(bridge.engine)))
        finally:
            bridge.engine.dispose()
            proxy.stop()
            sim.stop()
    assert outcomes[1] == outcomes[0]


# ---------------------------------------------------------------------- the database goes away


def lower_csat(kpis: Path, employee: str, value: str) -> None:
    """Change one person's October CSAT in the HR export, as next month's file would."""
    lines = kpis.read_text().splitlines()
    prefix = f"{employee},csat,2026-10-01,"
    changed = [",".join([*line.split(",")[:4], value]) if line.startswith(prefix) else line for line in lines]
    assert changed != lines
    kpis.write_text("\n".join(changed) + "\n")


@dataclass
class Outage:
    """A daemon on PostgreSQL that lost its database for a few seconds, and what was seen meanwhile."""

    sim: Running
    store: str  # URL of the database, not through the forwarder
    probes: list[tuple[int, int]]  # (/healthz, /readyz) statuses while the database was away
    readyz_body: str
    alive: bool
    sent_while_away: int
    resumed: bool
    exit_code: int
    log: str


@pytest.fixture(scope="module")
def postgres_outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    tmp_path = tmp_path_factory.mktemp("postgres-outage")
    server = make_url(POSTGRES_URL)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    database = f"lmsbridge_f_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    sim = start_in_thread(SIM_TOKEN)
    proxy = TcpProxy(server.port or 5432, server.host or "127.0.0.1")
    proxy.start()
    hr = tmp_path / "hr"
    hr.mkdir()
    for name in ("people.csv", "kpis.csv", "reviews.csv"):
        (hr / name).write_text((ROOT / "examples" / "hr" / name).read_text())
    through_proxy = server.set(host="127.0.0.1", port=proxy.port, database=database)
    cfg, port = daemon_config(tmp_path, sim.url, store=through_proxy.render_as_string(hide_password=False))
    cfg.write_text(cfg.read_text().replace(str(ROOT / "examples" / "hr"), str(hr)))
    store = server.set(database=database).render_as_string(hide_password=False)
    direct = create_engine(store)
    migrate(cfg)
    service = Service(cfg)
    try:
        wait_for(lambda: get(port, "/readyz")[0] == 200)
        seen: list[int] = []

        def delivered_and_quiet() -> bool:
            seen.append(len(sim.state.messages))
            with direct.connect() as conn:
                busy = conn.execute(
                    text(
                        "select count(*) from actions"
                        " where state = 'sending' or (state = 'pending' and due_at <= :now)"
                    ),
                    {"now": T0},
                ).scalar()
            return busy == 0 and len(seen) >= 3 and seen[-1] == seen[-3] > 0

        wait_for(delivered_and_quiet, progress=lambda: store_progress(direct), logs=[service.log_path])
        before = len(sim.state.messages)
        proxy.stop()  # PostgreSQL is gone; meanwhile HR delivers new data
        lower_csat(hr / "kpis.csv", "000018", "3.1")
        probes = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            probes.append((get(port, "/healthz")[0], get(port, "/readyz")[0]))
            time.sleep(0.4)
        readyz_body = get(port, "/readyz")[1]
        alive = service.alive()
        sent_while_away = len(sim.state.messages) - before
        proxy.start()
        wait_for(lambda: get(port, "/readyz")[0] == 200)
        user = sim.state.by_idnumber["000018"]
        try:
            wait_for(
                lambda: any(m["touserid"] == user for m in sim.state.messages[before:]),
                progress=lambda: store_progress(direct),
            )
            resumed = True
        except AssertionError:
            resumed = False
        time.sleep(2)  # a few more cycles: nothing more may go out
    finally:
        exit_code, output = service.stop()
        proxy.stop()
        direct.dispose()
    try:
        yield Outage(sim, store, probes, readyz_body, alive, sent_while_away, resumed, exit_code, output)
    finally:
        sim.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_daemon_outlives_postgresql_going_away_and_resumes_without_loss_or_duplicates(
    postgres_outage: Outage,
) -> None:
    outage = postgres_outage
    assert outage.alive and outage.exit_code == 0, outage.log[-3000:]
    assert outage.probes and all(alive == 200 for alive, _ in outage.probes), "/healthz keeps answering"
    assert all(ready == 503 for _, ready in outage.probes), f"/readyz says not ready: {outage.probes}"
    assert json.loads(outage.readyz_body)["store"].startswith("the database cannot be reached")
    assert outage.sent_while_away == 0
    assert outage.resumed, "the HR change made while the database was away was acted on afterwards"
    engine = create_engine(outage.store)
    try:
        assert_sent_exactly_once(engine, outage.sim)
        assert_nothing_due_left(engine, T0)
    finally:
        engine.dispose()
    assert SIM_TOKEN not in outage.log


@pytest.mark.postgres
def test_daemon_reports_the_database_outage_in_clear_lines(postgres_outage: Outage) -> None:
    """One line per job run that could not reach the store, naming the job; no tracebacks."""
    errors = [json.loads(line) for line in postgres_outage.log.splitlines() if '"level": "error"' in line]
    assert any(e["event"].startswith("job could not reach the store") for e in errors), errors[:3]
    for error in errors:
        assert "exception" not in error and "Traceback" not in json.dumps(error), error["event"]
        assert "<locals>" not in error["event"] and "\n" not in error.get("error", "")


# ---------------------------------------------------------------------- killed mid-cycle

STREAM_TABLES = {
    ("hr", "people"): t.people,
    ("hr", "measurements"): t.measurements,
    ("hr", "reviews"): t.review_ratings,
    ("moodle", "users"): t.lms_users,
    ("moodle", "courses"): t.learning_items,
    ("moodle", "completions"): t.completions,
}


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (*STREAM_TABLES.values(), t.identities, t.recommendations, t.actions)
        }


def spawn(cfg: Path, command: str, at: datetime, log_file: Any) -> subprocess.Popen[str]:
    args = ["sync", "--once"] if command == "sync" else ["run"]
    env = {
        **os.environ,
        "LMSBRIDGE_SITES__MOODLE__TOKEN": SIM_TOKEN,
        "LMSBRIDGE_NOW": at.isoformat(),
        "LMSBRIDGE_LOG__FORMAT": "json",
        "COLUMNS": "200",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "--config", str(cfg), *args],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


KILL_TIMES = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2, minutes=30), T1, T1 + timedelta(hours=1)]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigkill_at_random_points_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moodle: Running
) -> None:
    # How much each stream holds once read completely (in this process, its own simulator).
    sim = start_in_thread(SIM_TOKEN)
    clean = install(tmp_path / "clean", sim.url, monkeypatch)
    try:
        clean.cycle(T0)
        complete = counts(clean.engine)
    finally:
        clean.engine.dispose()
        sim.stop()
        clock.set_now(None)

    cfg, _port = daemon_config(tmp_path, moodle.url)
    migrate(cfg)
    # Every answer takes 0.3 s, so a cycle lasts long enough to be cut short anywhere.
    arm(moodle, {"mode": "slow", "delay": 0.3, "count": 1_000_000})
    store = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    rng = random.Random(20261103)
    killed = 0
    try:
        with (tmp_path / "runs.log").open("w") as log_file:
            for i, at in enumerate(KILL_TIMES):
                process = spawn(cfg, "run" if i == 2 else "sync", at, log_file)
                try:
                    process.wait(rng.uniform(1.6, 3.2))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                    process.wait(10)
                    killed += 1
                # A cursor is never ahead of the data it covers: when one is stored, so is its stream.
                with store.connect() as conn:
                    cursors = {(c.source, c.stream) for c in conn.execute(select(t.cursors))}
                now = counts(store)
                for key in cursors & set(STREAM_TABLES):
                    name = STREAM_TABLES[key].name
                    assert now[name] == complete[name], f"run {i}: cursor {key} is ahead of its data"
            clear(moodle)
            final = spawn(cfg, "sync", KILL_TIMES[-1] + timedelta(minutes=5), log_file)
            assert final.wait(60) == 0
        assert killed >= 3, "the random delays should cut most runs short"
        with store.connect() as conn:
            sending = conn.execute(select(func.count()).where(t.actions.c.state == "sending")).scalar_one()
        assert sending == 0
        assert_sent_exactly_once(store, moodle)
        assert_nothing_due_left(store, KILL_TIMES[-1] + timedelta(minutes=5))
    finally:
        store.dispose()


# ---------------------------------------------------------------------- a cycle longer than its interval

PULL_CALLS = {
    "core_user_get_users_by_field",
    "core_course_get_courses_by_field",
    "core_webservice_get_site_info",
    "core_reportbuilder_list_reports",
    "core_reportbuilder_retrieve_report",
}


@dataclass
class LongPulls:
    most_at_once: int  # the most requests of the pull job the site had in flight at once
    pulls_finished: int
    exit_code: int | None  # None: still running 10 s after SIGTERM (then killed)
    log: str


@pytest.fixture(scope="module")
def long_pulls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LongPulls]:
    """A daemon pulling every second from a site that takes 0.6 s per read, for a few seconds;
    then SIGTERM arrives while a pull is waiting for the site."""
    tmp_path = tmp_path_factory.mktemp("long-pulls")
    sim = start_in_thread(SIM_TOKEN)
    in_flight = Counter[str]()
    most = Counter[str]()
    lock = threading.Lock()
    gate = threading.Event()
    gate.set()
    handle_rest = sim.simulator.handle_rest

    def counting(params: dict[str, Any]) -> tuple[Any, bool]:
        name = str(params.get("wsfunction", ""))
        with lock:
            in_flight[name] += 1
            most[name] = max(most[name], in_flight[name])
        try:
            if name in PULL_CALLS:
                time.sleep(0.6)
                gate.wait(10)
            return handle_rest(params)
        finally:
            with lock:
                in_flight[name] -= 1

    sim.simulator.handle_rest = counting  # type: ignore[method-assign]
    cfg, port = daemon_config(tmp_path, sim.url)
    body = cfg.read_text().replace("pull_every_seconds = 2", "pull_every_seconds = 1")
    cfg.write_text(body.replace("grace_seconds = 20", "grace_seconds = 3"))
    migrate(cfg)
    service = Service(cfg)
    exit_code: int | None = None
    try:
        wait_for(lambda: get(port, "/healthz")[0] == 200)
        time.sleep(4)
        gate.clear()  # the site holds its next answers to the pull...
        wait_for(lambda: any(in_flight[name] for name in PULL_CALLS), timeout=10)
        service.process.send_signal(signal.SIGTERM)  # ...while the service is told to stop
        time.sleep(1.5)
        gate.set()
        exit_code = service.process.wait(5)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)
        service.log_file.close()
        sim.stop()
    output = service.log_path.read_text()
    finished = sum(1 for line in output.splitlines() if '"source": "moodle"' in line and '"pulled"' in line)
    yield LongPulls(max(most[name] for name in PULL_CALLS), finished, exit_code, output)


@pytest.mark.timeout(60)
def test_a_pull_longer_than_its_interval_never_overlaps_itself(long_pulls: LongPulls) -> None:
    assert long_pulls.most_at_once == 1
    assert long_pulls.pulls_finished >= 1
    assert SIM_TOKEN not in long_pulls.log


def test_a_pull_longer_than_its_interval_is_logged_as_missed(long_pulls: LongPulls) -> None:
    missed = [json.loads(line) for line in long_pulls.log.splitlines() if '"job run missed' in line]
    assert any(event.get("job") == "pull:moodle" for event in missed)


def test_sigterm_while_a_pull_waits_for_the_site_stops_cleanly(long_pulls: LongPulls) -> None:
    assert long_pulls.exit_code == 0, long_pulls.log[-2000:]
    assert "stopped cleanly" in long_pulls.log


def test_jobs_on_sqlite_never_crash_on_a_locked_database(long_pulls: LongPulls) -> None:
    assert '"job crashed"' not in long_pulls.log and "database is locked" not in long_pulls.log
