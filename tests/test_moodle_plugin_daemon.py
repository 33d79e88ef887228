"""The service with the companion plugin: a completion is pushed, pulled and followed up at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import create_engine, select

from bridge.daemon import EARLY_PULL_GAP, Daemon
from bridge.store import schema as t
from connectors.moodle.sim.server import Running
from connectors.moodle.simulator import start_in_thread
from tests.conftest import SIM_TOKEN
from tests.test_cli_e2e import NOW, run
from tests.test_daemon import Service, daemon_config, env, wait_for

SECRET = "plugin-webhook-secret-42"
MAPPING = "csat-customer-conversations"  # reinforces 1, 3, 7, 21 and 60 days after completion


@pytest.fixture
def site() -> Iterator[Running]:
    handle = start_in_thread(SIM_TOKEN, plugin=True)
    yield handle
    handle.stop()


def test_a_pushed_completion_queues_reinforcement_without_waiting_a_poll(
    tmp_path: Path, site: Running
) -> None:
    cfg, port = daemon_config(tmp_path, site.url)
    body = cfg.read_text().replace('type = "moodle"\n', f'type = "moodle"\nwebhook_secret = "{SECRET}"\n', 1)
    # Pull and decide hourly: anything that happens within seconds was pushed.
    body = body.replace("pull_every_seconds = 2", "pull_every_seconds = 3600")
    cfg.write_text(body.replace("decide_every_seconds = 2", "decide_every_seconds = 3600"))
    opened = datetime.fromisoformat(NOW) - timedelta(days=5)
    assert run(cfg, "db", "upgrade").returncode == 0
    assert run(cfg, "sync", "--once", env={"LMSBRIDGE_NOW": opened.isoformat()}).returncode == 0
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    r, i = t.recommendations, t.identities
    with engine.connect() as conn:
        rec = conn.execute(
            select(r.c.id, r.c.person_id, r.c.targets, i.c.user_id)
            .join(i, i.c.person_id == r.c.person_id)
            .where(r.c.mapping_id == MAPPING, r.c.state == "open", r.c.holdout.is_(False))
            .order_by(r.c.id)
        ).first()
    assert rec is not None, "the example mapping opens recommendations"
    assert site.state.plugin is not None
    hook = site.state.plugin.webhook
    hook.url, hook.secret, hook.enabled = f"http://127.0.0.1:{port}/webhooks/moodle", SECRET, True

    service = Service(cfg, env())
    try:
        wait_for(lambda: '"decided"' in service.log_path.read_text(), logs=[service.log_path])
        pulls_before = service.log_path.read_text().count('"event": "pulled"')
        completed = datetime.fromisoformat(NOW) - timedelta(days=2)
        started = time.monotonic()
        site.state.complete(int(rec.user_id), int(rec.targets[0]["item_id"]), int(completed.timestamp()))

        def reinforcement_queued() -> bool:
            with engine.connect() as conn:
                return bool(
                    conn.execute(
                        select(t.actions.c.id).where(
                            t.actions.c.recommendation_id == rec.id,
                            t.actions.c.purpose == "reinforcement",
                            t.actions.c.state == "pending",
                        )
                    ).first()
                )

        wait_for(reinforcement_queued, timeout=30, logs=[service.log_path])
        seconds = time.monotonic() - started
        with engine.connect() as conn:
            state = conn.execute(select(r.c.state).where(r.c.id == rec.id)).scalar()
    finally:
        code, log = service.stop()
    assert code == 0
    assert state == "closed"
    assert log.count('"event": "pulled"') == pulls_before + 1  # the one early pull, nothing else
    assert "webhook received; pulling the site now" in log and SECRET not in log
    assert hook.last_status == "HTTP 202"
    assert seconds < 30, f"a pushed completion took {seconds:.1f} s to be followed up"


class RecordingScheduler:
    def __init__(self) -> None:
        self.modified: list[str] = []
        self.added: list[tuple[str, datetime, bool]] = []

    def modify_job(self, job_id: str, **_changes: object) -> None:
        self.modified.append(job_id)

    def add_job(
        self, _func: object, trigger: DateTrigger, *, args: list[str], id: str, replace_existing: bool
    ) -> None:
        self.added.append((id, trigger.run_date, replace_existing))


def test_a_notification_inside_the_early_pull_gap_sets_one_pull_for_the_gaps_end() -> None:
    daemon = SimpleNamespace(early_pulls={}, decide_after=set(), scheduler=RecordingScheduler())
    daemon.pull_now = lambda name: Daemon.pull_now(daemon, name)  # type: ignore[arg-type]
    Daemon.pull_now(daemon, "moodle")  # type: ignore[arg-type]
    assert daemon.scheduler.modified == ["pull:moodle"] and daemon.decide_after == {"moodle"}
    daemon.decide_after.clear()
    for _ in range(5):  # a flood (or a replay) inside the gap
        Daemon.pull_now(daemon, "moodle")  # type: ignore[arg-type]
    assert daemon.scheduler.modified == ["pull:moodle"]  # no second early pull now
    assert {job for job, _when, _replace in daemon.scheduler.added} == {"early-pull:moodle"}
    assert all(replace for _job, _when, replace in daemon.scheduler.added)  # one job, set again
    _job, when, _replace = daemon.scheduler.added[-1]
    assert (
        timedelta(seconds=EARLY_PULL_GAP - 5) < when - datetime.now(UTC) <= timedelta(seconds=EARLY_PULL_GAP)
    )
