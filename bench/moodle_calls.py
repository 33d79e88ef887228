"""HTTP calls to Moodle per completion feed: initial sync and a steady-state poll.

A simulated site with N learners and 100 courses (defaults: 10,000 learners). The real pull
path (HR feed, then the Moodle source, into a SQLite store) runs once per feed; then 1% of the
learners complete a course the mappings care about and the source is polled again. Beside it,
a naive client that asks ``core_completion_get_course_completion_status`` for every learner and
every enrolled course, which is how existing Python Moodle clients tend to be used.

Lower bound of a steady-state poll: Moodle has no "completions since" function; the only bulk
read is a Report Builder report, whose page size has no maximum. Learning about c new
completions therefore needs at least one call (one page sorted newest first), and no feed can
do with zero calls because nothing pushes completions to the bridge. So the floor is 1 call.
The companion plugin's change log (``plugin``, a site with moodle/local_lmsbridge installed)
reads every change after a cursor in one call as well, with exact times and enrolments, ratings
and account changes in the same call.

    python -m bench.moodle_calls [--learners 10000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Run
from bridge import clock, log
from bridge.cycle import pull_source
from bridge.mapping.loader import load_dir
from bridge.registry import configured
from bridge.settings import Settings
from bridge.store.db import make_engine, upgrade
from connectors.moodle.client import MoodleClient
from connectors.moodle.simulator import start_in_thread
from connectors.simulation.export_hr import export
from connectors.simulation.org import generate

TOKEN = "bench-token-0123456789"
ROOT = Path(__file__).parents[1]
NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)


def settings(root: Path, url: str, feed: str) -> Settings:
    return Settings(
        store={"url": f"sqlite:///{root / 'state.db'}"},
        mappings={"dir": ROOT / "mappings"},
        sites={"moodle": {"type": "moodle", "url": url, "token": TOKEN, "completion_feed": feed}},
        feeds={"hr": {"type": "csv", "people": str(root / "hr" / "people.csv")}},
    )


def calls_of(handle: Any) -> dict[str, int]:
    return dict(handle.state.calls)


def feed_run(feed: str, learners: int, courses: int, run: Run) -> dict[str, Any]:
    handle = start_in_thread(TOKEN, people=learners, courses=courses - 6, plugin=feed == "plugin")
    try:
        with tempfile.TemporaryDirectory() as raw:
            root = Path(raw)
            org = generate(1, people=learners, courses=courses - 6)
            export(org, root / "hr")
            s = settings(root, handle.url, feed)
            engine = make_engine(s.store_url())
            upgrade(engine)
            mapping_set = load_dir(ROOT / "mappings")
            sources = {
                item.name: item.connector.build_source(item.name, item.options, s)
                for item in configured(s)
                if item.connector.build_source
            }  # type: ignore[misc]
            clock.set_now(NOW)
            pull_source(engine, s, mapping_set, sources["hr"])
            handle.state.calls.clear()
            with run.stage(f"{feed}: initial sync") as stage:
                pull_source(engine, s, mapping_set, sources["moodle"])
                initial = calls_of(handle)
                stage.figures.update(calls=sum(initial.values()))
            scope = [
                c.id
                for c in org.courses
                if c.shortname in ("CS-101", "SAFE-REF", "SALES-201", "ONB-101", "COACH-101")
            ]
            rng = random.Random(2)
            completed = 0
            for person in rng.sample(org.people, learners // 100):
                todo = [
                    c
                    for c in scope
                    if (person.user_id, c) not in handle.state.completions
                    and c in dict(org.enrolments[person.user_id])
                ]
                if todo:
                    handle.state.complete(person.user_id, todo[0], int(NOW.timestamp()) + 60)
                    completed += 1
            handle.state.calls.clear()
            clock.set_now(NOW.replace(minute=30))
            with run.stage(f"{feed}: steady-state poll ({completed} new completions)") as stage:
                pull_source(engine, s, mapping_set, sources["moodle"])
                steady = calls_of(handle)
                stage.figures.update(calls=sum(steady.values()))
            engine.dispose()
            return {"initial": initial, "steady": steady, "new_completions": completed}
    finally:
        handle.stop()
        clock.set_now(None)


def naive_run(learners: int, courses: int, run: Run) -> dict[str, Any]:
    """Per learner, per enrolled course: one completion-status call."""
    handle = start_in_thread(TOKEN, people=learners, courses=courses - 6)
    try:
        client = MoodleClient("naive", handle.url, TOKEN)
        with run.stage("naive: every learner x every enrolled course") as stage:
            for user_id, enrolled in sorted(handle.state.enrolments.items()):
                for course_id in enrolled:
                    if handle.state.courses[course_id].enablecompletion:
                        client.call(
                            "core_completion_get_course_completion_status",
                            {"courseid": course_id, "userid": user_id},
                        )
            stage.figures.update(calls=client.total_calls())
        return {"poll": client.total_calls()}
    finally:
        handle.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--courses", type=int, default=100)
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    log.configure("warning")
    run = Run(f"moodle-calls-{args.learners}")
    print(f"Moodle calls: {args.learners} learners x {args.courses} courses; mappings use 5 courses")
    results = {
        feed: feed_run(feed, args.learners, args.courses, run)
        for feed in ("plugin", "report", "per_learner", "per_course")
    }
    naive = None if args.skip_naive else naive_run(args.learners, args.courses, run)["poll"]
    print("\nfeed          initial  steady  vs lower bound (1)  naive/steady")
    for feed, r in results.items():
        initial, steady = sum(r["initial"].values()), sum(r["steady"].values())
        ratio = f"{naive / max(steady, 1):,.0f}x" if naive else "-"
        print(f"{feed:<12} {initial:>8} {steady:>7} {steady:>18.0f}x  {ratio:>12}")
    if naive:
        print(f"{'naive':<12} {naive:>8} {naive:>7}")
    run.notes.update(results=results, naive_calls_per_poll=naive, lower_bound_steady=1)
    print(f"results: {run.save()}")


if __name__ == "__main__":
    main()
