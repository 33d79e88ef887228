"""Two replicas on PostgreSQL behind a slow, throttling LMS: each message still goes exactly once.

A running clock, a lease far shorter than a send (issue 16, item 1): a send that waits out 429s or a
slow site must keep its claim, and the other replica must neither reconcile nor resend it.
With the cap at one message a week, two replicas must not both spend a person's slot (item 2).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectors.moodle.sim.server import Running
from tests.test_cli_e2e import NOW, ROOT
from tests.test_daemon import Service, daemon_config, env, migrate, store_progress, wait_for

SEND = "core_message_send_instant_messages"


def replicas(tmp_path: Path, moodle: Running, postgres_url: str, delivery: str) -> list[Path]:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:  # this test uses its own schema state: start from nothing
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    configs = []
    for n in range(2):
        directory = tmp_path / f"replica{n}"
        directory.mkdir()
        cfg, _port = daemon_config(directory, moodle.url, store=postgres_url)
        cfg.write_text(cfg.read_text() + f"\n[delivery]\n{delivery}\n")
        configs.append(cfg)
    migrate(configs[0])
    return configs


def run_until_quiet(configs: list[Path], moodle: Running, postgres_url: str) -> list[str]:
    """Run the replicas until the faults are used up and nothing is left to send; their logs."""
    store = create_engine(postgres_url)
    running = {**env(), "LMSBRIDGE_CLOCK": "running"}  # the pinned day runs on: leases can lapse
    processes = [Service(cfg, running) for cfg in configs]
    seen: list[int] = []

    def quiet() -> bool:
        with store.connect() as conn:
            busy = conn.execute(
                text(
                    "select count(*) from actions where state = 'sending' or (state = 'pending' and due_at <= :now)"
                ),
                {"now": datetime.fromisoformat(NOW) + timedelta(minutes=5)},
            ).scalar()
            sent = conn.execute(text("select count(*) from actions where state = 'sent'")).scalar()
        seen.append(len(moodle.state.messages))
        return busy == 0 and bool(sent) and len(seen) >= 3 and seen[-1] == seen[-3]

    try:
        wait_for(quiet, progress=lambda: store_progress(store), logs=[p.log_path for p in processes])
    finally:
        store.dispose()
        logs = []
        for process in processes:
            code, log = process.stop()
            logs.append(log)
            assert code == 0, log[-2000:]
    return logs


def sent_messages(postgres_url: str, learner_only: bool = False) -> list[tuple[str, int]]:
    query = "select person_id, recipient_user_id from actions where state = 'sent' and kind = 'message'"
    if learner_only:
        query += " and purpose in ('recommend', 'reminder', 'reinforcement')"
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        rows = conn.execute(text(query)).all()
    engine.dispose()
    return [(r.person_id, r.recipient_user_id) for r in rows]


@pytest.mark.postgres
@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["slow", "throttled"])
def test_a_send_longer_than_the_lease_is_not_sent_again_by_the_other_replica(
    tmp_path: Path, moodle: Running, postgres_url: str, fault: str
) -> None:
    faults = moodle.simulator.faults
    faults.only = frozenset({SEND})
    if fault == "slow":
        faults.mode, faults.delay, faults.count = "slow", 4.0, 3  # each of the first 3 sends takes 4 s
    else:
        faults.mode, faults.status, faults.retry_after, faults.count = "status", 429, 2, 3
    delivery = "lease_seconds = 1\nbackoff_base_seconds = 1\nbatch_size = 4"
    logs = run_until_quiet(replicas(tmp_path, moodle, postgres_url, delivery), moodle, postgres_url)
    assert faults.count == 0, "every slow or throttled answer was given"
    counts = Counter((m["touserid"], m["text"]) for m in moodle.state.messages)
    assert counts, "something was sent"
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1][:3]
    assert len(moodle.state.messages) == len(sent_messages(postgres_url)), "one message per sent action"
    assert not any("claim lost" in log for log in logs)  # the heartbeat kept every claim


SECOND_MAPPING = """\
id: warehouse-onboarding
title: Warehouse staff finish the essentials course
audience:
  department: Warehouse Operations
when:
  completion_missing: {site: moodle, course: ONB-101, days_after_start: 0}
recommend:
  - {site: moodle, course: ONB-101, channels: [message]}
schedule:
  backfill: true
"""


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_the_weekly_cap_holds_across_replicas(tmp_path: Path, moodle: Running, postgres_url: str) -> None:
    """Warehouse staff are due two recommendations; with a cap of one a week they get one, even
    while the other replica is sending theirs (a send in flight uses up the slot)."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "safety-refresher.yaml").write_text((ROOT / "mappings" / "safety-refresher.yaml").read_text())
    (rules / "warehouse-onboarding.yaml").write_text(SECOND_MAPPING)
    faults = moodle.simulator.faults
    faults.only, faults.mode, faults.delay, faults.count = frozenset({SEND}), "slow", 1.5, 12
    configs = replicas(tmp_path, moodle, postgres_url, "cap_per_week = 1\nbatch_size = 1")
    for cfg in configs:
        cfg.write_text(cfg.read_text().replace(f'dir = "{ROOT / "mappings"}"', f'dir = "{rules}"'))
    run_until_quiet(configs, moodle, postgres_url)
    assert faults.count == 0
    per_person = Counter(person for person, _user in sent_messages(postgres_url, learner_only=True))
    assert per_person and max(per_person.values()) == 1, per_person.most_common(3)
