"""Issue 17: a paused delivery, a rejected mapping set and the deferred backlog are visible in
`status` (table and JSON), the /readyz body and /metrics, all from one query
(bridge.operational_state), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from bridge.cli import app
from bridge.operational_state import (
    operational_state,
    record_mappings_accepted,
    record_mappings_rejected,
    set_paused,
)
from bridge.ops import OpsServer
from bridge.settings import DeliverySettings
from bridge.store import schema as t

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PROBLEM = "mappings/broken.yaml:3:1: when.kpi.below: field required"


def add_action(engine: Engine, key: str, state: str, last_error: str | None, created_at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(t.actions).values(
                key=key,
                purpose="recommend",
                kind="message",
                site="moodle",
                state=state,
                due_at=created_at + timedelta(days=1),
                last_error=last_error,
                created_at=created_at,
                updated_at=created_at,
            )
        )


@pytest.fixture
def busy(engine: Engine) -> Engine:
    """Three deferred actions (two reasons), one pending retry and one sent: only the three count."""
    add_action(engine, "a", "pending", "deferred: weekly cap of 3 messages reached", NOW - timedelta(days=3))
    add_action(engine, "b", "pending", "deferred: weekly cap of 3 messages reached", NOW - timedelta(days=1))
    add_action(
        engine, "c", "pending", "deferred: outside the recipient's sending hours", NOW - timedelta(hours=2)
    )
    add_action(engine, "d", "pending", "HTTP 503 from the site", NOW - timedelta(days=9))
    add_action(engine, "e", "sent", None, NOW - timedelta(days=20))
    return engine


def test_a_quiet_store_is_running_with_nothing_deferred(engine: Engine) -> None:
    with engine.connect() as conn:
        current = operational_state(conn, DeliverySettings())
    assert not current.pause.paused and current.pause.by is None
    assert current.mappings_rejected is None
    assert current.deferred.count == 0 and current.deferred.oldest_queued_at is None


def test_pause_rejection_and_backlog_are_read_from_the_store(busy: Engine) -> None:
    with busy.begin() as conn:
        set_paused(conn, True, NOW)
        record_mappings_rejected(conn, [PROBLEM], NOW)
    with busy.connect() as conn:
        current = operational_state(conn, DeliverySettings())
    assert (current.pause.paused, current.pause.by, current.pause.since) == (True, "lmsbridge pause", NOW)
    assert current.mappings_rejected is not None and current.mappings_rejected.problems == [PROBLEM]
    assert current.deferred.count == 3
    assert current.deferred.oldest_queued_at == NOW - timedelta(days=3)
    assert current.deferred.by_reason == {
        "weekly cap of 3 messages reached": 2,
        "outside the recipient's sending hours": 1,
    }
    with busy.begin() as conn:
        set_paused(conn, False, NOW)
        record_mappings_accepted(conn)
    with busy.connect() as conn:
        current = operational_state(conn, DeliverySettings())
    assert not current.pause.paused and current.mappings_rejected is None


def test_the_configuration_switch_counts_as_paused(engine: Engine) -> None:
    with engine.connect() as conn:
        current = operational_state(conn, DeliverySettings(paused=True))
    assert (current.pause.paused, current.pause.by) == (True, "delivery.paused")


@pytest.fixture
def ops(busy: Engine) -> Iterator[OpsServer]:
    server = OpsServer(busy, "127.0.0.1:0", "tok", lambda: [])  # not started: handle() is called directly
    with busy.begin() as conn:
        set_paused(conn, True, NOW)
        record_mappings_rejected(conn, [PROBLEM], NOW)
    yield server
    server.stop()


def test_readyz_shows_the_state_and_the_problems_only_with_the_token(ops: OpsServer) -> None:
    anonymous = ops.handle("/readyz", None)
    assert anonymous.status == 200  # paused or rejected, the replica still serves
    body = json.loads(anonymous.body)
    assert body["delivery"]["paused"] is True and body["delivery"]["paused_by"] == "lmsbridge pause"
    assert body["mappings"] == {"rejected": True, "rejected_at": str(NOW), "problems": 1}
    assert body["deferred"]["count"] == 3
    trusted = json.loads(ops.handle("/readyz", "Bearer tok").body)
    assert trusted["mappings"]["problems"] == [PROBLEM]


def test_metrics_carry_pause_rejection_and_backlog(ops: OpsServer) -> None:
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(ops.handle("/metrics", "Bearer tok").body.decode())
        for sample in family.samples
    }
    assert samples["lmsbridge_delivery_paused"] == 1
    assert samples["lmsbridge_mappings_rejected"] == 1
    assert samples["lmsbridge_deferred_actions"] == 3
    oldest = (NOW - timedelta(days=3)).timestamp()
    assert samples["lmsbridge_deferred_oldest_queued_timestamp_seconds"] == oldest


def test_status_shows_the_state_in_the_table_and_in_json(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "lmsbridge.toml"
    cfg.write_text('[store]\nurl = "sqlite:///state.db"\n')
    add_action(sqlite_engine, "a", "pending", "deferred: weekly cap of 3 messages reached", NOW)
    with sqlite_engine.begin() as conn:
        set_paused(conn, True, NOW)
        record_mappings_rejected(conn, [PROBLEM], NOW)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    table = runner.invoke(app, ["--config", str(cfg), "status"])
    assert table.exit_code == 0, table.output
    assert "PAUSED by lmsbridge pause since 2026-11-30 09:00 UTC" in table.output
    assert "REJECTED at 2026-11-30 09:00 UTC" in table.output and PROBLEM in table.output
    assert (
        "1 action(s), oldest queued 2026-11-30 09:00 UTC (1 weekly cap of 3 messages reached)" in table.output
    )
    data = json.loads(runner.invoke(app, ["--config", str(cfg), "status", "--json"]).stdout)
    assert data["delivery"]["paused"] is True
    assert data["mappings"]["problems"] == [PROBLEM]
    assert data["deferred"]["count"] == 1
