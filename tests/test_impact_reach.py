"""Impact counts only what happened (issue 15): "contacted" means a message was delivered, and
`lmsbridge impact` (table and JSON) and the dashboard show the same counts from one computation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bridge import clock
from bridge.dashboard import Dashboard
from bridge.impact import measure, reach
from bridge.ops import OpsServer
from bridge.store import schema as t
from bridge.store.db import make_engine, upgrade
from tests.seed import store
from tests.test_dashboard import fetch
from tests.test_impact import NOW, OPENED, action, complete, mappings, monthly, recommend, settings

CLOSED = "recommendation closed: completed CS-101 on 2026-04-03"


def seed_reach(engine: Engine) -> None:
    """Seven recommended, three of whom a message reached, and two in the holdout.

    A, B, C: a recommendation message was sent (B also a reminder); A and B completed.
    D completed before its queued message went out, so it was cancelled: never contacted.
    E's message is still pending; F opted out; G has no message at all (only an enrolment and a
    manager escalation, which are not learner messages). H and I are in the holdout.
    """
    ids = {p: recommend(engine, p, i) for i, p in enumerate("ABCDEFG", start=1)}
    ids["H"] = recommend(engine, "H", 8, holdout=True)
    ids["I"] = recommend(engine, "I", 9, holdout=True)
    for i, person in enumerate(ids):
        after = 4.1 + 0.03 * i + (0.2 if person in "AB" else 0.0)
        store(engine, *monthly(person, {1: 4.0, 2: 4.0 - 0.01 * i, 3: 4.0, 5: after, 6: after, 7: after}))
    complete(engine, 1, OPENED + timedelta(days=5))
    complete(engine, 2, OPENED + timedelta(days=9))
    complete(engine, 4, OPENED + timedelta(days=2))
    action(engine, ids["A"], "A-rec", "recommend", "message", "sent")
    action(engine, ids["B"], "B-rec", "recommend", "email", "sent")
    action(engine, ids["B"], "B-rem", "reminder", "message", "sent")
    action(engine, ids["C"], "C-rec", "recommend", "message", "sent")
    action(engine, ids["C"], "C-rem", "reminder", "message", "pending")
    action(engine, ids["D"], "D-rec", "recommend", "message", "cancelled")
    action(engine, ids["E"], "E-rec", "recommend", "message", "pending")
    action(engine, ids["E"], "E-esc", "escalation", "message", "sent")
    action(engine, ids["F"], "F-rec", "recommend", "message", "suppressed")
    action(engine, ids["G"], "G-enrol", "recommend", "enrol", "sent")
    action(engine, ids["H"], "H-rec", "recommend", "message", "suppressed")
    action(engine, ids["I"], "I-rec", "recommend", "message", "suppressed")
    with engine.begin() as conn:
        conn.execute(t.actions.update().where(t.actions.c.key == "D-rec").values(last_error=CLOSED))
        conn.execute(
            t.actions.update()
            .where(t.actions.c.key == "F-rec")
            .values(last_error="opted out: the learner turned these messages off")
        )


def test_contacted_means_a_message_was_delivered(engine: Engine, tmp_path: Path) -> None:
    seed_reach(engine)
    result = measure(engine, mappings(tmp_path), settings(), NOW)[0]
    r = result.reach
    assert (r.recommended, r.contacted, r.not_contacted, r.holdout) == (7, 3, 4, 2)
    assert r.not_contacted_reasons == {
        "cancelled before sending: recommendation closed": 1,
        "no message queued": 1,
        "not sent yet": 1,
        "suppressed: opted out": 1,
    }
    assert (r.completed, r.contacted_completed) == (3, 2)
    # Cohorts by delivery: D completed but was never contacted, so it is not a completer.
    n = {name: c.n for name, c in result.cohorts.items()}
    assert n == {"completed": 2, "not_completed": 1, "not_contacted": 4, "holdout": 2}
    # Intention to treat keeps everyone recommended against the holdout; delivered-only is apart.
    itt, delivered = result.treated_vs_holdout, result.contacted_vs_holdout
    assert itt is not None and (itt.n_treated, itt.n_control) == (7, 2)
    assert delivered is not None and (delivered.n_treated, delivered.n_control) == (3, 2)
    assert any("Delivered only (secondary" in note for note in result.notes)
    assert any("Reach: 7 recommendation(s)" in note and "3 contacted" in note for note in result.notes)
    # The same figures for a view that shows any mapping.
    with engine.connect() as conn:
        assert reach(conn, "csat", NOW) == (result.reach, result.effort)


def test_messages_per_completion_counts_only_sent_messages(engine: Engine, tmp_path: Path) -> None:
    seed_reach(engine)
    effort = measure(engine, mappings(tmp_path), settings(), NOW)[0].effort
    # A 1, B 2, C 1 sent; not the pending, cancelled or suppressed ones, the escalation or the
    # enrolment. Completions: A, B and D, but D was never contacted: 4 messages over 2.
    assert effort.messages_sent == 4
    assert (effort.completions, effort.contacted_completions) == (3, 2)
    assert effort.messages_per_completion == pytest.approx(2.0)


def test_a_message_sent_after_now_has_not_been_delivered_yet(engine: Engine, tmp_path: Path) -> None:
    seed_reach(engine)
    with engine.begin() as conn:
        later = NOW + timedelta(days=1)
        conn.execute(t.actions.update().where(t.actions.c.key == "A-rec").values(sent_at=later))
    r = measure(engine, mappings(tmp_path), settings(), NOW)[0].reach
    assert (r.contacted, r.not_contacted) == (2, 5)


def _row_cells(table: str, mapping_id: str) -> list[str]:
    """The cells of the table row (header row: "Mapping") that starts with ``mapping_id``."""
    lines = [ln.replace("┃", "│") for ln in table.splitlines()]
    (line,) = [ln for ln in lines if ln.startswith("│ " + mapping_id + " ")]
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_cli_json_cli_table_and_dashboard_show_the_same_contacted_count(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(engine)
    seed_reach(engine)
    mapping_set = mappings(tmp_path)
    cfg = tmp_path / "lmsbridge.toml"
    cfg.write_text('[store]\nurl = "sqlite:///state.db"\n[mappings]\ndir = "mappings"\n[metrics.csat]\n')
    env = {
        **os.environ,
        "LMSBRIDGE_NOW": NOW.isoformat(),
        "LMSBRIDGE_LOG__LEVEL": "warning",
        "COLUMNS": "320",
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "--config", str(cfg), "impact", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    (data,) = json.loads(run("--format", "json"))
    assert data["reach"]["contacted"] == 3 and data["reach"]["not_contacted"] == 4
    assert data["reach"]["recommended"] == 7 and data["reach"]["holdout"] == 2
    assert data["effort"]["messages_sent"] == 4 and data["effort"]["messages_per_completion"] == 2.0
    assert data["cohort_meanings"]["completed"].startswith("a message was delivered")
    assert "intention to treat" in data["comparisons"]["treated_vs_holdout"]

    table = run()
    header = _row_cells(table, "Mapping")
    cells = dict(zip(header, _row_cells(table, "csat"), strict=True))
    assert (cells["Recommended"], cells["Contacted"], cells["Not contacted"], cells["Holdout"]) == (
        "7",
        "3",
        "4",
        "2",
    )
    assert cells["Msgs / completion"] == "2.0"
    assert "Contacted: a message was delivered" in " ".join(table.split())

    clock.set_now(NOW)
    try:
        ops = OpsServer(engine, "127.0.0.1:0", None, lambda: [])
        Dashboard(engine, settings(), lambda: mapping_set, lambda: []).install(ops)
        ops.start()
        try:
            status, _, body = fetch(ops.port, "/dashboard/mapping?id=csat")
            list_status, _, list_body = fetch(ops.port, "/dashboard/mappings")
        finally:
            ops.stop()
    finally:
        clock.set_now(None)
    assert status == 200
    html = body.decode()

    def figure(name: str) -> str:
        found = re.search(rf'data-figure="{name}"><span class="figure">([^<]*)</span>', html)
        assert found, name
        return found.group(1)

    assert figure("contacted") == str(data["reach"]["contacted"]) == "3"
    assert figure("not-contacted") == "4" and figure("recommended") == "7" and figure("holdout") == "2"
    assert figure("messages-sent") == "4" and figure("messages-per-completion") == "2.0"
    assert "contacted: a message was delivered" in html
    assert "suppressed: opted out: 1" in html and "intention to treat" in html
    # The mappings list shows the same counts.
    assert list_status == 200
    listed = list_body.decode()
    assert '<td data-label="Contacted" class="num" data-figure="contacted">3</td>' in listed
    assert '<td data-label="Recommended" class="num">7</td>' in listed
    assert '<td data-label="Messages sent" class="num">4</td>' in listed
    engine.dispose()
