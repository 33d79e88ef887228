"""Every command of the CLI, run in-process against a store filled by a real cycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.errors import BridgeError
from connectors.moodle.sim.server import Running
from tests.conftest import SIM_TOKEN
from tests.test_cli_e2e import NOW, config

ROOT = Path(__file__).parents[1]


@pytest.fixture
def cli(tmp_path: Path, moodle: Running, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, CliRunner]:
    monkeypatch.setenv("LMSBRIDGE_SITES__MOODLE__TOKEN", SIM_TOKEN)
    monkeypatch.setenv("LMSBRIDGE_NOW", NOW)
    monkeypatch.setenv("COLUMNS", "200")
    cfg = config(tmp_path, moodle.url)
    runner = CliRunner()
    for args in (["db", "upgrade"], ["sync", "--once"]):
        result = runner.invoke(app, ["--config", str(cfg), *args])
        assert result.exit_code == 0, result.output
    return cfg, runner


def invoke(cli: tuple[Path, CliRunner], *args: str) -> str:
    cfg, runner = cli
    result = runner.invoke(app, ["--config", str(cfg), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def someone_recommended(cli: tuple[Path, CliRunner]) -> str:
    rows = json.loads(invoke(cli, "outbox", "--state", "sent", "--format", "json"))
    return str(rows[0]["person"])


def test_why_shows_recommendations_and_actions(cli: tuple[Path, CliRunner]) -> None:
    person = someone_recommended(cli)
    output = invoke(cli, "why", person)
    assert "Recommendations" in output and "Actions" in output and "sent" in output


def test_explain_gives_every_mapping_verdict(cli: tuple[Path, CliRunner]) -> None:
    output = invoke(cli, "explain", "000001")
    for mapping in (
        "csat-customer-conversations",
        "safety-refresher",
        "onboarding-essentials",
        "sales-win-rate",
        "coaching-review-gap",
    ):
        assert mapping in output
    assert "audience:" in output and "trigger:" in output


def test_preview_renders_a_message(cli: tuple[Path, CliRunner]) -> None:
    output = invoke(cli, "preview", "csat-customer-conversations", "--person", "000028")
    assert "Subject: A short course for you: Customer Conversations that Resolve" in output
    assert "Hello Liam," in output and "your csat was 3.51 in 2026-10, below the 4.2 target" in output


def test_status_json(cli: tuple[Path, CliRunner]) -> None:
    data = json.loads(invoke(cli, "status", "--json"))
    assert {s["source"] for s in data["sources"]} == {"hr", "moodle"}
    assert all(s["last_success"] for s in data["sources"])
    assert data["queue"]["sent"] > 0


def test_opt_out_pause_and_resume(cli: tuple[Path, CliRunner]) -> None:
    invoke(cli, "optout", "add", "000001", "--reason", "asked by email")
    assert "asked by email" in invoke(cli, "optout", "list")
    invoke(cli, "optout", "remove", "000001")
    assert "P000001" not in invoke(cli, "optout", "list")
    assert "paused" in invoke(cli, "pause")
    assert "resumed" in invoke(cli, "resume")


def test_outbox_retry_requeues_a_dead_action(cli: tuple[Path, CliRunner]) -> None:
    dead = json.loads(invoke(cli, "outbox", "--state", "suppressed", "--format", "json"))
    assert dead, "the demo data has suppressed (holdout) actions"
    output = invoke(cli, "outbox", "retry", str(dead[0]["id"]))
    assert "1 action(s) queued again" in output


def test_config_commands_and_schema(cli: tuple[Path, CliRunner]) -> None:
    assert "[sites.moodle] moodle" in invoke(cli, "config", "check")
    assert "LMSBRIDGE_DELIVERY__CAP_PER_WEEK" in invoke(cli, "config", "reference")
    assert json.loads(invoke(cli, "schema")) == json.loads((ROOT / "mappings" / "schema.json").read_text())


def test_doctor_passes_against_the_simulator(cli: tuple[Path, CliRunner]) -> None:
    output = invoke(cli, "doctor")
    assert "completion report columns" in output and "MISSING" not in output


def test_doctor_fails_with_the_fix_when_a_function_is_missing(
    cli: tuple[Path, CliRunner], moodle: Running
) -> None:
    moodle.state.removed_functions.add("core_message_send_instant_messages")
    cfg, runner = cli
    result = runner.invoke(app, ["--config", str(cfg), "doctor"])
    assert result.exit_code == 1
    assert "Add: core_message_send_instant_messages" in result.output


def test_hris_check_and_rejects(cli: tuple[Path, CliRunner], tmp_path: Path) -> None:
    output = invoke(cli, "hris", "check", "hr")
    assert "80 people, 1188 measurements" in output and "0 rejected" in output
    assert "people snapshot: 0 active person(s) not listed would be retired" in output
    assert "Identity matches" in output and "moodle" in output
    assert "Rejected rows" in invoke(cli, "hris", "rejects")


def test_hris_check_says_a_snapshot_would_be_refused(cli: tuple[Path, CliRunner], tmp_path: Path) -> None:
    cfg, _runner = cli
    people = tmp_path / "cut.csv"
    people.write_text("".join((ROOT / "examples/hr/people.csv").read_text().splitlines(keepends=True)[:9]))
    cfg.write_text(cfg.read_text().replace(str(ROOT / "examples/hr/people.csv"), str(people)))
    output = " ".join(invoke(cli, "hris", "check", "hr").split())
    assert "sync would refuse this snapshot: feed 'hr': refused the people snapshot cut.csv" in output
    assert "it would retire 71 of 79 active people (90%)" in output


def test_outbox_retry_of_an_action_that_does_not_exist_is_an_error(cli: tuple[Path, CliRunner]) -> None:
    cfg, runner = cli
    result = runner.invoke(app, ["--config", str(cfg), "outbox", "retry", "99999"])
    # `lmsbridge` (bridge.cli.main) prints a BridgeError as one line "error: ..." and exits 1.
    assert isinstance(result.exception, BridgeError)
    assert str(result.exception) == "no action with id 99999 (see `lmsbridge outbox`)"
    assert "queued again" not in result.output


def test_outbox_retry_says_which_actions_were_not_retryable(cli: tuple[Path, CliRunner]) -> None:
    sent = json.loads(invoke(cli, "outbox", "--state", "sent", "--format", "json"))
    output = invoke(cli, "outbox", "retry", str(sent[0]["id"]))
    assert "0 action(s) queued again" in output
    assert f"action {sent[0]['id']} is sent, not retried" in output


def test_sync_while_paused_says_so(cli: tuple[Path, CliRunner]) -> None:
    invoke(cli, "pause")
    output = invoke(cli, "sync", "--once")
    assert "delivery is paused: nothing was sent (`lmsbridge resume`, or delivery.paused = false)" in output
    assert json.loads(invoke(cli, "status", "--json"))["delivery"]["paused_by"] == "lmsbridge pause"


def test_sync_lists_the_first_decisions_and_deliveries_and_counts_the_rest(
    tmp_path: Path, moodle: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle's report keeps counts of everything and lists only the first few (bridge.cycle.LISTED)."""
    from bridge import cycle

    monkeypatch.setattr(cycle, "LISTED", 3)
    monkeypatch.setenv("LMSBRIDGE_SITES__MOODLE__TOKEN", SIM_TOKEN)
    monkeypatch.setenv("LMSBRIDGE_NOW", NOW)
    monkeypatch.setenv("COLUMNS", "200")
    cfg = config(tmp_path, moodle.url)
    runner = CliRunner()
    assert runner.invoke(app, ["--config", str(cfg), "db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["--config", str(cfg), "sync", "--once"])
    assert result.exit_code == 0, result.output
    assert "more decision(s), not listed here (see `lmsbridge plan`)" in result.stdout
    assert "more delivery outcome(s), not listed here (see `lmsbridge outbox`)" in result.stdout
