"""The demo's backlog: its monthly cycles, then one ordinary sync. Nothing stale, contradictory or twice.

The demo replays the sample organisation's monthly cycles at 10:00 UTC (outside sending hours in
New York and Sydney), so messages pile up between cycles; today's `sync --once` is where a
backlog would go out at once.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from bridge.settings import MAX_AGE_DAYS
from bridge.store import schema as t

ROOT = Path(__file__).parents[1]
LEARNER = ("recommend", "reminder", "reinforcement")


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lmsbridge_demo", ROOT / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_store() -> Iterator[tuple[list[Any], list[Any], list[Any], datetime]]:
    run_dir = ROOT / "test-artifacts" / f"demo-run-{os.getpid()}"  # the demo names it relative to the repo
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    demo = load_demo()
    demo.RUN_DIR = run_dir
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMSBRIDGE_STORE__URL", f"sqlite:///{run_dir / 'lmsbridge.db'}")
        demo.main()
    engine = create_engine(f"sqlite:///{run_dir / 'lmsbridge.db'}")
    with engine.connect() as conn:
        actions = list(conn.execute(select(t.actions).order_by(t.actions.c.id)))
        recs = list(conn.execute(select(t.recommendations)))
        completions = list(
            conn.execute(
                select(t.completions, t.identities.c.person_id).join(
                    t.identities,
                    (t.identities.c.site == t.completions.c.site)
                    & (t.identities.c.user_id == t.completions.c.user_id),
                )
            )
        )
    engine.dispose()
    yield actions, recs, completions, datetime.fromisoformat(demo.DEMO_NOW)
    shutil.rmtree(run_dir, ignore_errors=True)


def sent_today(actions: list[Any], now: datetime) -> list[Any]:
    return [a for a in actions if a.state == "sent" and a.sent_at >= now - timedelta(hours=1)]


def test_todays_sync_sends_no_backlog(demo_store: tuple[list[Any], list[Any], list[Any], datetime]) -> None:
    actions, recs, completions, now = demo_store
    today = sent_today(actions, now)
    assert today, "the demo's sync sends something today"
    by_id = {r.id: r for r in recs}
    done = {(c.person_id, c.site, c.kind, c.item_id): c.completed_at for c in completions}
    for a in today:
        if a.kind not in ("message", "email"):
            continue
        limit = MAX_AGE_DAYS[a.purpose]
        assert a.created_at >= now - timedelta(days=limit), f"{a.key} queued {a.created_at}, sent {now}"
        if a.purpose in ("recommend", "reminder"):
            rec = by_id[a.recommendation_id]
            assert rec.state == "open", a.key
            target = a.target
            finished = done.get((a.person_id, target["site"], target["kind"], target["item_id"]))
            assert finished is None or finished < rec.opened_at, f"{a.key}: completed since"
        if a.purpose == "reinforcement":
            rec = by_id[a.recommendation_id]
            assert rec.state == "closed" and rec.completed_at is not None, a.key
        for due in re.findall(r"due by (\d{4}-\d\d-\d\d)", a.body_text):
            assert due >= now.date().isoformat(), f"{a.key} says due by {due} on {now.date()}"


def test_nothing_twice_and_nothing_contradictory(
    demo_store: tuple[list[Any], list[Any], list[Any], datetime],
) -> None:
    actions, _recs, _completions, now = demo_store
    today = [a for a in sent_today(actions, now) if a.kind in ("message", "email")]
    per_item = Counter(
        (a.recipient_person_id, a.purpose, a.target["site"], a.target["item_id"])
        for a in today
        if a.purpose in LEARNER
    )
    assert max(per_item.values()) == 1, [k for k, n in per_item.items() if n > 1]
    bodies = Counter(a.body_text for a in today)
    assert max(bodies.values()) == 1, "two identical messages"
    about = {}
    for a in today:
        if a.purpose in ("reminder", "recommend"):
            about.setdefault((a.recipient_person_id, a.target["item_id"]), set()).add("open")
        if a.purpose == "reinforcement":
            about.setdefault((a.recipient_person_id, a.target["item_id"]), set()).add("done")
    assert all(len(v) == 1 for v in about.values()), "told both to do and that they did"
    for digest in (a for a in today if a.purpose == "digest"):
        lines = [x[2:] for x in digest.body_text.splitlines() if x.startswith("- ")]
        subjects = Counter(
            line.split(" has not completed ")[0].split(" completed ")[0] + "|" + _item(line) for line in lines
        )
        assert max(subjects.values()) == 1, digest.body_text


def _item(line: str) -> str:
    match = re.search(r"completed (.+?)(?: yet| on \d)", line)
    return match.group(1) if match else line


def test_a_new_recommendation_is_not_pushed_back_by_follow_ups(
    demo_store: tuple[list[Any], list[Any], list[Any], datetime],
) -> None:
    actions, _recs, _completions, now = demo_store
    followed = {
        a.recipient_person_id for a in sent_today(actions, now) if a.purpose in ("reminder", "reinforcement")
    }
    held = [
        a
        for a in actions
        if a.purpose == "recommend"
        and a.state == "pending"
        and "weekly cap" in (a.last_error or "")
        and a.recipient_person_id in followed
    ]
    assert held == []


def test_what_was_not_sent_says_why(demo_store: tuple[list[Any], list[Any], list[Any], datetime]) -> None:
    actions, *_ = demo_store
    unsent = [a for a in actions if a.state in ("cancelled", "suppressed", "dead")]
    assert unsent and all(a.last_error for a in unsent)
    assert any(a.last_error.startswith("superseded") or "older than" in a.last_error for a in unsent)
