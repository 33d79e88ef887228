"""End to end: the real `lmsbridge` command against the Moodle simulator over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.moodle.sim.server import Running
from tests.conftest import SIM_TOKEN

ROOT = Path(__file__).parents[1]
NOW = "2026-11-03T10:00:00+00:00"


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "lmsbridge.toml"
    path.write_text(
        f"""
[store]
url = "sqlite:///state.db"
[mappings]
dir = "{ROOT / "mappings"}"
[metrics.csat]
target = 4.2
[metrics.first_contact_resolution]
target = 75
[metrics.safety_incidents]
direction = "lower"
[metrics.win_rate]
target = 30
[sites.moodle]
type = "moodle"
url = "{url}"
[feeds.hr]
type = "csv"
people = "{ROOT / "examples/hr/people.csv"}"
measurements = "{ROOT / "examples/hr/kpis.csv"}"
reviews = "{ROOT / "examples/hr/reviews.csv"}"
"""
    )
    return path


def run(
    cfg: Path, *args: str, token: str = SIM_TOKEN, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "LMSBRIDGE_SITES__MOODLE__TOKEN": token,
        "LMSBRIDGE_NOW": NOW,
        "COLUMNS": "200",
        "LMSBRIDGE_LOG__LEVEL": "warning",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cfg(tmp_path: Path, moodle: Running) -> Path:
    path = config(tmp_path, moodle.url)
    assert run(path, "db", "upgrade").returncode == 0
    return path


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "lmsbridge 0.1.0"


def test_plan_sends_nothing_and_agrees_with_sync(cfg: Path, moodle: Running) -> None:
    plan = run(cfg, "plan", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    decisions = json.loads(plan.stdout[plan.stdout.index("[") :])
    planned = {(d["person_id"], d["mapping"], d["decision"]) for d in decisions}
    # each opened recommendation shows the days its reminders would go (the examples: 7 and 14 days)
    opened = [d for d in decisions if d["decision"] == "open"]
    assert opened and all(len(d["reminders"].split(", ")) == 2 for d in opened)
    assert planned and moodle.state.messages == [] and moodle.state.enrolled == []
    synced = run(cfg, "sync", "--once")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "cycle done:" in synced.stdout
    import sqlite3

    with sqlite3.connect(cfg.parent / "state.db") as db:
        stored = {
            (p, m, "open" if s == "open" else "suppress")
            for p, m, s in db.execute("select person_id, mapping_id, state from recommendations")
        }
    assert stored == planned
    assert moodle.state.messages  # the cycle really sent


def test_second_sync_sends_nothing_new(cfg: Path, moodle: Running) -> None:
    assert run(cfg, "sync", "--once").returncode == 0
    sent = (len(moodle.state.messages), len(moodle.state.enrolled))
    second = run(cfg, "sync", "--once")
    assert second.returncode == 0
    assert (len(moodle.state.messages), len(moodle.state.enrolled)) == sent
    assert "0 recommendation(s) opened" in second.stdout and "0 sent" in second.stdout


def test_bad_token_is_one_clear_line_without_the_token(cfg: Path) -> None:
    secret = "wrong-token-5f4e3d2c1b0a"
    result = run(cfg, "sync", "--once", token=secret)
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "Moodle rejected the token for site 'moodle'" in output
    assert secret not in output and "Traceback" not in output


def test_validate_names_file_line_and_field(tmp_path: Path, moodle: Running) -> None:
    cfg = config(tmp_path, moodle.url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "typo.yaml").write_text(
        "id: x\ntitle: t\nwhen:\n  kpi: {metric: csat, below: 4}\nrecommend:\n  - site: moodle\n    course: CS-101\n    chanels: [message]\n"
    )
    result = run(cfg, "validate", str(rules))
    assert result.returncode == 1
    assert (
        f"{rules / 'typo.yaml'}:8:5: recommend.0.chanels: unknown field (did you mean 'channels'?)"
        in result.stdout + result.stderr
    )
    ok = run(cfg, "validate")
    assert ok.returncode == 0 and "5 mapping(s) valid" in ok.stdout


def test_bad_configuration_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "lmsbridge.toml"
    path.write_text('[sites.moodle]\ntype = "moodle"\nurl = "not a url"\n')
    result = run(path, "sync", "--once")
    assert result.returncode == 1
    assert "sites.moodle: url: Input should be a valid URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_is_idempotent(cfg: Path) -> None:
    result = run(cfg, "db", "upgrade")
    assert result.returncode == 0 and "already at revision" in result.stdout


def test_rejected_rows_are_loaded_around_counted_and_listed(tmp_path: Path, moodle: Running) -> None:
    kpis = tmp_path / "kpis.csv"
    good = (ROOT / "examples/hr/kpis.csv").read_text().splitlines()
    kpis.write_text(
        "\n".join(
            [
                *good[:50],
                "000001,csat,2026-13-01,2026-13-31,4.0",
                "000002,csat,2026-10-01,2026-10-31,high",
                *good[50:],
            ]
        )
        + "\n"
    )
    cfg = config(tmp_path, moodle.url)
    cfg.write_text(cfg.read_text().replace(str(ROOT / "examples/hr/kpis.csv"), str(kpis)))
    assert run(cfg, "db", "upgrade").returncode == 0
    synced = run(cfg, "sync", "--once")
    assert synced.returncode == 0 and "2 input row(s) rejected" in synced.stdout
    listed = run(cfg, "hris", "rejects")
    assert (
        "kpis.csv:51" in listed.stdout
        and "kpis.csv:52" in listed.stdout
        and "is not a number" in listed.stdout
    )


def test_a_bad_people_export_then_the_good_one_loses_no_message(tmp_path: Path, moodle: Running) -> None:
    people = tmp_path / "people.csv"
    good = (ROOT / "examples/hr/people.csv").read_text()
    people.write_text(good)
    cfg = config(tmp_path, moodle.url)
    cfg.write_text(cfg.read_text().replace(str(ROOT / "examples/hr/people.csv"), str(people)))
    assert run(cfg, "db", "upgrade").returncode == 0
    assert run(cfg, "sync", "--once").returncode == 0
    import sqlite3

    def outbox() -> dict[str, str]:
        with sqlite3.connect(cfg.parent / "state.db") as db:
            return dict(db.execute("select key, state from actions"))

    before, sent = outbox(), len(moodle.state.messages)
    assert "pending" in before.values() and sent  # some wait for their recipients' sending hours
    header, *body = good.splitlines(keepends=True)
    bad_exports = {
        "cut to 10%": (header + "".join(body[:8]), "it would retire 71 of 79 active people (90%)"),
        "renamed id column": (good.replace("Employee ID", "Worker ID", 1), "80 of 80 rows were rejected"),
    }
    for data, numbers in bad_exports.values():
        people.write_text(data)
        bad = run(cfg, "sync", "--once")
        output = bad.stdout + bad.stderr
        assert bad.returncode == 2 and "Traceback" not in output
        assert "refused the people snapshot people.csv" in " ".join(output.split())
        assert numbers in " ".join(output.split())
        assert "0 closed" in output
    people.write_text(good)
    back = run(cfg, "sync", "--once")
    assert back.returncode == 0, back.stdout + back.stderr
    assert outbox() == before and len(moodle.state.messages) == sent
    # Five people really missing (within max_retire_percent) are retired; listed again, their
    # recommendations open again and the cancelled message is queued again.
    people.write_text(header + "".join(body[5:]))
    left = run(cfg, "sync", "--once")
    assert left.returncode == 0 and "2 closed" in left.stdout
    assert list(outbox().values()).count("cancelled") == 1
    people.write_text(good)
    back = run(cfg, "sync", "--once")
    assert back.returncode == 0 and "2 recommendation(s) opened" in back.stdout
    assert outbox() == before and len(moodle.state.messages) == sent


def test_two_accounts_swapping_employee_numbers_relink_and_messages_follow(
    cfg: Path, moodle: Running
) -> None:
    import sqlite3

    assert run(cfg, "sync", "--once").returncode == 0
    query = (
        "select p.employee_number, a.recipient_user_id from actions a join people p on p.person_id = "
        "a.recipient_person_id where a.state = 'pending' and a.kind = 'message'"
    )
    with sqlite3.connect(cfg.parent / "state.db") as db:
        (n1, u1), (n2, u2) = sorted(set(db.execute(query)))[:2]
    state = moodle.state
    with state.lock:
        state.users[u1].idnumber, state.users[u2].idnumber = n2, n1
        state.by_idnumber[n1], state.by_idnumber[n2] = u2, u1
    swapped = run(cfg, "sync", "--once", "--full")
    assert swapped.returncode == 0, swapped.stdout + swapped.stderr
    assert "Traceback" not in swapped.stdout + swapped.stderr
    with sqlite3.connect(cfg.parent / "state.db") as db:
        links = dict(
            db.execute(
                "select p.employee_number, i.user_id from identities i join people p using (person_id)"
            )
        )
        pending = set(db.execute(query))
    assert (links[n1], links[n2]) == (u2, u1)
    assert {(n, u) for n, u in pending if n in (n1, n2)} == {(n1, u2), (n2, u1)}
