"""The service as a real process: cycles, health and metrics, clean shutdown, replicas."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from connectors.moodle.sim.server import Running
from connectors.simulation.loopback import free_port
from tests.conftest import SIM_TOKEN
from tests.test_cli_e2e import NOW, ROOT, config


def daemon_config(tmp_path: Path, url: str, store: str | None = None) -> tuple[Path, int]:
    port = free_port()
    cfg = config(tmp_path, url)
    body = cfg.read_text()
    if store:
        body = body.replace('url = "sqlite:///state.db"', f'url = "{store}"')
    body += f'\n[daemon]\nlisten = "127.0.0.1:{port}"\npull_every_seconds = 2\ndecide_every_seconds = 2\ndeliver_every_seconds = 1\nreload_check_seconds = 1\ngrace_seconds = 20\n'
    cfg.write_text(body)
    return cfg, port


def env() -> dict[str, str]:
    return {
        **os.environ,
        "LMSBRIDGE_SITES__MOODLE__TOKEN": SIM_TOKEN,
        "LMSBRIDGE_NOW": NOW,
        "LMSBRIDGE_LOG__FORMAT": "json",
    }


class Service:
    """A running `lmsbridge run`; its log goes to a file so a full pipe can never block it."""

    def __init__(self, cfg: Path, environment: dict[str, str] | None = None) -> None:
        self.log_path = cfg.parent / "service.log"
        self.log_file = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--config", str(cfg), "run"],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment if environment is not None else env(),
        )

    def stop(self, timeout: float = 60) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.log_file.close()
        return code, self.log_path.read_text()

    def alive(self) -> bool:
        return self.process.poll() is None


def start(cfg: Path) -> Service:
    return Service(cfg)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(
    predicate: Any,
    timeout: float = 60,
    progress: Callable[[], object] | None = None,
    logs: Sequence[Path] = (),
) -> None:
    """Poll until ``predicate()`` holds; fail after ``timeout`` seconds in which nothing moved.

    With ``progress`` (a value that changes whenever the daemon gets further, such as
    :func:`store_progress`) each change starts the wait again: a daemon slowed down by a busy
    machine is waited on, a stuck one still fails after ``timeout``. A failure shows the end of
    ``logs``.
    """
    last = progress() if progress else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        if progress is not None and (moved := progress()) != last:
            last, deadline = moved, time.monotonic() + timeout
        time.sleep(0.3)
    tails = [f"--- {p}:\n{p.read_text()[-2500:]}" for p in logs if p.exists()]
    raise AssertionError("\n".join([f"condition not reached in {timeout:g} s without progress", *tails]))


def store_progress(engine: Engine) -> tuple[object, ...]:
    """What the daemon has got done so far: people and completions stored, actions by state.

    An idle daemon polling an unchanged site changes none of it; one that pulls, decides or
    delivers changes some of it."""
    with engine.connect() as conn:
        stored = conn.execute(
            text("select (select count(*) from people), (select count(*) from completions)")
        ).one()
        states = conn.execute(text("select state, count(*) from actions group by state order by state")).all()
    return (*stored, *map(tuple, states))


def migrate(cfg: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(cfg), "db", "upgrade"],
        env=env(),
        check=True,
        capture_output=True,
    )


def test_service_runs_cycles_serves_health_and_metrics_and_stops_cleanly(
    tmp_path: Path, moodle: Running
) -> None:
    cfg, port = daemon_config(tmp_path, moodle.url)
    migrate(cfg)
    process = start(cfg)
    try:
        wait_for(lambda: get(port, "/healthz")[0] == 200)
        wait_for(lambda: len(moodle.state.messages) > 0)
        status, body = get(port, "/readyz")
        ready = json.loads(body)
        assert status == 200 and ready["ready"] and set(ready["sources"]) == {"hr", "moodle"}
        wait_for(lambda: 'lmsbridge_outbox_actions{state="sent"}' in get(port, "/metrics")[1])
        metrics = get(port, "/metrics")[1]
        assert (
            'lmsbridge_lms_call_seconds_count{function="core_message_send_instant_messages",outcome="ok",site="moodle"}'
            in metrics
        )
        assert (
            "lmsbridge_records_pulled_total" in metrics
            and "lmsbridge_last_success_timestamp_seconds" in metrics
        )
        assert get(port, "/nothing")[0] == 404
    finally:
        code, log = process.stop()
    assert code == 0, log[-2000:]
    assert "stopped cleanly" in log
    import sqlite3

    with sqlite3.connect(cfg.parent / "state.db") as db:
        assert db.execute("select count(*) from actions where state = 'sending'").fetchone() == (0,)


def test_second_daemon_on_one_sqlite_file_refuses(tmp_path: Path, moodle: Running) -> None:
    cfg, port = daemon_config(tmp_path, moodle.url)
    migrate(cfg)
    first = start(cfg)
    try:
        wait_for(lambda: get(port, "/healthz")[0] == 200)
        second = subprocess.run(
            [sys.executable, "-m", "bridge", "--config", str(cfg), "run"],
            capture_output=True,
            text=True,
            env=env(),
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert "SQLite allows one lmsbridge process per database" in second.stderr
    finally:
        first.stop()


def test_an_invalid_mapping_change_keeps_the_last_good_set(tmp_path: Path, moodle: Running) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in ("csat-customer-conversations.yaml", "safety-refresher.yaml"):
        (rules / name).write_text((ROOT / "mappings" / name).read_text())
    cfg, port = daemon_config(tmp_path, moodle.url)
    cfg.write_text(cfg.read_text().replace(f'dir = "{ROOT / "mappings"}"', f'dir = "{rules}"'))
    migrate(cfg)
    process = start(cfg)
    try:
        wait_for(lambda: get(port, "/healthz")[0] == 200)
        (rules / "broken.yaml").write_text("id: broken\ntitle: x\nwhen: {kpi: {metric: csat}}\n")
        process.process.send_signal(signal.SIGHUP)
        # Issue 17: the rejection is visible, not only a log line: /readyz, /metrics, status.
        wait_for(lambda: json.loads(get(port, "/readyz")[1])["mappings"]["rejected"])
        problems = re.search(r"\nlmsbridge_mappings_rejected ([0-9.]+)\n", get(port, "/metrics")[1])
        assert problems is not None and float(problems.group(1)) >= 1
        status = json.loads(cli(cfg, "status", "--json"))
        assert [p for p in status["mappings"]["problems"] if "broken.yaml" in p]
        assert process.alive()
        (rules / "broken.yaml").unlink()
        wait_for(lambda: not json.loads(get(port, "/readyz")[1])["mappings"]["rejected"])
        # And a pause: the log says so once, /readyz and /metrics show it.
        cli(cfg, "pause")
        wait_for(lambda: json.loads(get(port, "/readyz")[1])["delivery"]["paused"])
        assert "\nlmsbridge_delivery_paused 1.0\n" in get(port, "/metrics")[1]
        wait_for(lambda: "delivery paused: nothing is sent until" in process.log_path.read_text())
    finally:
        code, log = process.stop()
    assert "mappings rejected; keeping the last good set" in log
    assert log.count("delivery paused: nothing is sent until") == 1
    assert code == 0


def cli(cfg: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(cfg), *args],
        env=env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def stage_runs(port: int) -> dict[str, float]:
    """How many times each stage has run, from /metrics (the clock is pinned: times do not move)."""
    found = re.findall(
        r'lmsbridge_stage_duration_seconds_count\{stage="([^"]+)"\} ([0-9.e+]+)', get(port, "/metrics")[1]
    )
    return {stage: float(count) for stage, count in found}


@pytest.mark.timeout(240)
def test_a_template_bomb_dropped_into_a_running_daemon_is_refused_and_every_job_goes_on(
    tmp_path: Path, moodle: Running
) -> None:
    """Issue 16: nested range(100000) loops in a new file used to hold the reload job (and with it
    every job on SQLite's one worker) for hours, with /healthz still 200 and SIGTERM not ending it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in ("csat-customer-conversations.yaml", "safety-refresher.yaml"):
        (rules / name).write_text((ROOT / "mappings" / name).read_text())
    cfg, port = daemon_config(tmp_path, moodle.url)
    cfg.write_text(cfg.read_text().replace(f'dir = "{ROOT / "mappings"}"', f'dir = "{rules}"'))
    migrate(cfg)
    process = start(cfg)
    refused = "template of mapping 'bomb' exceeded a limit"
    try:
        wait_for(lambda: get(port, "/healthz")[0] == 200)
        wait_for(lambda: len(moodle.state.messages) > 0, logs=[process.log_path])
        loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        (rules / "bomb.yaml").write_text(
            (ROOT / "mappings" / "safety-refresher.yaml")
            .read_text()
            .replace("id: safety-refresher", "id: bomb")
            + f"\nmessages:\n  recommend:\n    subject: 'Hello'\n    body: '{loops}'\n"
        )
        wait_for(lambda: refused in process.log_path.read_text(), timeout=30, logs=[process.log_path])
        before = stage_runs(port)
        wait_for(
            lambda: all(
                stage_runs(port).get(s, 0) >= before.get(s, 0) + 2
                for s in ("pull:moodle", "pull:hr", "decide", "deliver")
            ),
            timeout=60,
            logs=[process.log_path],
        )
        assert get(port, "/healthz")[0] == 200
        assert process.alive()
    finally:
        stopping = time.monotonic()
        code, log = process.stop(timeout=40)
    assert code == 0, log[-2000:]
    assert time.monotonic() - stopping < 20  # daemon.grace_seconds
    assert "stopped cleanly" in log
    assert log.count(refused) == 1, "the unchanged bad file is refused once, not at every check"


@pytest.mark.postgres
def test_two_replicas_on_postgresql_share_the_work_and_send_each_message_once(
    tmp_path: Path, moodle: Running, postgres_url: str
) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:  # this test uses its own schema state: start from nothing
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    processes = []
    ports = []
    for n in range(2):
        directory = tmp_path / f"replica{n}"
        directory.mkdir()
        cfg, port = daemon_config(directory, moodle.url, store=postgres_url)
        ports.append(port)
        if n == 0:
            migrate(cfg)
        processes.append(start(cfg))
    store = create_engine(postgres_url)
    try:
        for port in ports:
            wait_for(lambda port=port: get(port, "/healthz")[0] == 200)
        wait_for(
            lambda: len(moodle.state.messages) >= 10,
            progress=lambda: store_progress(store),
            logs=[p.log_path for p in processes],
        )
        time.sleep(6)  # several more cycles on both replicas
    finally:
        store.dispose()
        errors = []
        for process in processes:
            code, log = process.stop()
            errors.append(log)
            assert code == 0, log[-2000:]
    counts = Counter((m["touserid"], m["text"]) for m in moodle.state.messages)
    assert counts and max(counts.values()) == 1, "a message was sent twice"
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        senders = {
            row[0].rsplit(":", 1)[-1]
            for row in conn.execute(text("select claimed_by from actions where state = 'sent'"))
        }
        pulled = set(
            conn.execute(text("select name from source_health where last_success_at is not null")).scalars()
        )
        sending = conn.execute(text("select count(*) from actions where state = 'sending'")).scalar()
    engine.dispose()
    assert {"hr", "moodle"} <= pulled and sending == 0
    assert all("deadlock" not in e.lower() for e in errors)
    assert len(senders) >= 1
