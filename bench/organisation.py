"""One organisation end to end: initial sync, evaluation, delivery, then a steady-state cycle.

The simulators generate the organisation (N learners with their managers, 300 courses, 12
months of KPIs exported as the HR files); the Moodle simulator runs in its own process, so CPU
time is lmsbridge's alone and the simulator's is reported beside it (wall time holds both). The
initial sync's floor is a bulk insert of the rows it stored (bench.floors). Stages run the real code paths (``pull_source``,
``decide_stage``, ``deliver_stage``) against SQLite or PostgreSQL, with 20 mappings over the
organisation's departments, metrics and courses. Per stage: wall and CPU time, the process's
peak RSS so far, HTTP calls by Moodle function, and rows written to the store.

    python -m bench.organisation [--learners 50000] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from bench.common import Run, add_store_options, scratch_postgres
from bench.floors import Recorded, bulk_insert_floor, replay_cpu_s
from bridge import clock, log
from bridge.cycle import decide_stage, deliver_stage, pull_source
from bridge.mapping.loader import MappingSet, load_dir
from bridge.registry import configured, sinks
from bridge.settings import Settings
from bridge.store import schema
from bridge.store.db import make_engine, upgrade
from connectors.simulation.export_hr import export
from connectors.simulation.loopback import free_port
from connectors.simulation.org import NAMED_COURSES, Organisation, generate

TOKEN = "bench-token-0123456789"
NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)  # a Tuesday morning, inside most sending windows
COURSES = 300
MANAGER_SHARE = 0.01  # 500 managers for 50,000 learners
COMPETENCIES = 40
FIXED_CHANGES = 50  # people completing a course in the second steady cycle, at every size
METRICS = {
    "csat": ("Customer Service", "higher", 4.2),
    "first_contact_resolution": ("Customer Service", "higher", 75),
    "safety_incidents": ("Warehouse Operations", "lower", 1),
    "win_rate": ("Sales", "higher", 30),
}
TRIGGERS = {
    "below": "kpi: {metric: METRIC, DIRECTION: target}",
    "quarter": "kpi: {metric: METRIC, DIRECTION: target, periods: 3}",
    "trend": "kpi_trend: {metric: METRIC, TREND: 15, periods: 3}",
    "percentile": "kpi_percentile: {metric: METRIC, bottom_percent: 10, peer_group: department}",
    "review": "all: [{review_rating: {normalised_at_or_below: 0.25}}, {kpi: {metric: METRIC, DIRECTION: target}}]",
}


def write_mappings(directory: Path, org: Organisation) -> None:
    """20 mappings: 4 metrics x 5 trigger kinds, each recommending its own course."""
    directory.mkdir(parents=True, exist_ok=True)
    courses = [c.shortname for c in org.courses if c.enablecompletion and c.manual_enrolment]
    for m, (metric, (department, direction, _target)) in enumerate(METRICS.items()):
        for k, (kind, template) in enumerate(TRIGGERS.items()):
            rule = (
                template.replace("METRIC", metric)
                .replace("DIRECTION", "below" if direction == "higher" else "above")
                .replace("TREND", "fell_by_percent" if direction == "higher" else "rose_by_percent")
            )
            course = courses[(m * len(TRIGGERS) + k) % len(courses)]
            channels = "[message, enrol]" if k % 2 else "[message]"
            (directory / f"{metric}-{kind}.yaml").write_text(
                f"id: {metric.replace('_', '-')}-{kind}\ntitle: {kind} {metric}\n"
                f"audience: {{department: {department}}}\n"
                f"when:\n  {rule}\n"
                f"recommend: [{{site: moodle, course: {course}, channels: {channels}}}]\n"
                f"measure: {{metric: {metric}}}\n"
            )


def settings(root: Path, store: str, url: str) -> Settings:
    return Settings(
        store={"url": store},
        mappings={"dir": root / "mappings"},
        metrics={m: {"direction": d, "target": t} for m, (_dep, d, t) in METRICS.items()},
        sites={"moodle": {"type": "moodle", "url": url, "token": TOKEN}},
        feeds={
            "hr": {
                "type": "csv",
                "people": str(root / "hr" / "people.csv"),
                "measurements": str(root / "hr" / "kpis.csv"),
                "reviews": str(root / "hr" / "reviews.csv"),
            }
        },
    )


class RowCounter:
    """Rows added to the store between two readings (all tables, counted in the database)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last = self._total()

    def _total(self) -> int:
        with self.engine.connect() as conn:
            return sum(
                int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for table in schema.metadata.sorted_tables
            )

    def take(self) -> int:
        total = self._total()
        added, self.last = total - self.last, total
        return added


def simulator(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{url}/_simulator/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


@contextmanager
def moodle_process(
    learners: int, port: int, courses: int = COURSES - len(NAMED_COURSES), run: Run | None = None
) -> Iterator[str]:
    """The Moodle simulator in a process of its own; ``run`` measures its CPU per stage."""
    command = [sys.executable, "-m", "bridge", "simulator", "moodle", "--token", TOKEN, "--port", str(port)]
    command += ["--people", str(learners), "--courses", str(courses)]
    command += ["--manager-share", str(MANAGER_SHARE), "--competencies", str(COMPETENCIES)]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    if run is not None:
        run.simulator_pid = process.pid
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                simulator(url, "reset-calls", {})
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the Moodle simulator did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def calls(url: str) -> dict[str, int]:
    """The simulator's calls by function since the last time, asked in one light request (the
    state holds every message sent, which the stages' timings would count)."""
    answer: dict[str, int] = simulator(url, "reset-calls", {})["calls"]
    return {k: v for k, v in sorted(answer.items()) if v}


def deliver_all(engine: Engine, s: Settings) -> dict[str, int]:
    report = deliver_stage(engine, s, sinks(s))
    return dict(report.states)


def settle(
    engine: Engine, s: Settings, mapping_set: MappingSet, source: Any, url: str, hours: int = 12
) -> int:
    """Cycles an hour apart, untimed, until a poll asks no account by email letter case (the users'
    hourly retry asks at most 50 a poll; until every account is found, their completions hold the
    report's cursor back): a steady cycle measured right after the initial sync measures that
    catching up, not a steady cycle. Returns the hours it took."""
    for hour in range(1, hours + 1):
        clock.set_now(NOW + timedelta(hours=hour))
        pull_source(engine, s, mapping_set, source)
        decide_stage(engine, s, mapping_set)  # what those polls changed is decided and sent here,
        deliver_all(engine, s)  # not in the steady cycle measured after them
        if calls(url).get("core_user_get_users", 0) == 0:
            return hour
    return hours


def pipeline(
    learners: int, store: str, root: Path, url: str, run: Run, *, settled: bool = False
) -> dict[str, Any]:
    """The stages; ``settled``: the steady cycle comes after the polls of ``settle`` (the
    reference test keeps the protocol its fingerprints were taken with: right after delivery)."""
    org = generate(
        1,
        people=learners,
        courses=COURSES - len(NAMED_COURSES),
        manager_share=MANAGER_SHARE,
        competencies=COMPETENCIES,
    )
    export(org, root / "hr")
    write_mappings(root / "mappings", org)
    s = settings(root, store, url)
    engine = make_engine(s.store_url())
    upgrade(engine)
    rows = RowCounter(engine)
    mapping_set: MappingSet = load_dir(root / "mappings")
    sources = {
        i.name: i.connector.build_source(i.name, i.options, s)
        for i in configured(s)
        if i.connector.build_source
    }  # type: ignore[misc]
    figures: dict[str, Any] = {
        "competencies": len(org.competencies),
        "learners": learners,
        "managers": sum(p.is_manager for p in org.people),
        "courses": len(org.courses),
        "mappings": len(mapping_set.mappings),
    }
    enrolments = sum(len(v) for v in org.enrolments.values())
    clock.set_now(NOW)
    calls(url)
    with run.stage("initial sync (HR + Moodle)") as stage:
        pull_source(engine, s, mapping_set, sources["hr"])
        pull_source(engine, s, mapping_set, sources["moodle"])
        stage.figures.update(http_calls=calls(url), rows_added=rows.take())
    floor_cpu, floor_rows = bulk_insert_floor(store)
    bulk = "COPY" if store.startswith("postgresql") else "bulk insert"
    run.floor(stage, floor_cpu, f"{bulk} of the same {floor_rows:,} rows")
    with run.stage("evaluation (everyone, 20 mappings)") as stage:
        decided = decide_stage(engine, s, mapping_set, full=True)
        stage.figures.update(
            decisions=decided.decisions.decided if decided.decisions else 0,
            queued=decided.queued,
            rows_added=rows.take(),
        )
    with run.stage("delivery of the resulting messages") as delivery, Recorded() as conversation:
        delivery.figures.update(
            outcomes=deliver_all(engine, s), http_calls=calls(url), rows_added=rows.take()
        )
    steady_at = NOW
    if settled:
        figures["settled_after_hours"] = settle(engine, s, mapping_set, sources["moodle"], url)
        figures["settling_rows_added"] = rows.take()
        steady_at = clock.now()
    learners_only = [p for p in org.people if not p.is_manager]
    changed = random.Random(3).sample(learners_only, learners // 100)

    def steady_cycle(name: str, people: list[Any], at: datetime) -> dict[str, int]:
        """People complete CS-101 five minutes after ``at``; one cycle half an hour after it."""
        cs101 = next(c.id for c in org.courses if c.shortname == "CS-101")
        for person in people:
            completed = int((at + timedelta(minutes=5)).timestamp())
            simulator(
                url, "complete", {"userid": person.user_id, "courseid": cs101, "timecompleted": completed}
            )
        calls(url)
        clock.set_now(at + timedelta(minutes=30))
        with run.stage(name) as stage:
            started = time.perf_counter()
            pull_source(engine, s, mapping_set, sources["hr"])
            pull_source(engine, s, mapping_set, sources["moodle"])
            polled = calls(url)
            pull_s = time.perf_counter() - started
            decided = decide_stage(engine, s, mapping_set)
            stage.figures.update(
                http_calls_poll=polled,
                poll_calls=sum(polled.values()),
                pull_s=round(pull_s, 2),
                evaluated=decided.decisions.evaluated if decided.decisions else 0,
                outcomes=deliver_all(engine, s),
                rows_added=rows.take(),
            )
        return polled

    polled = steady_cycle("steady-state cycle (1% completed something)", changed, steady_at)
    if settled:
        # The same cycle with a fixed number of changes at every size: what it costs beyond them
        # is what grows with the organisation (the exponent bench/__main__ prints).
        others = random.Random(4).sample([p for p in learners_only if p not in changed], FIXED_CHANGES)
        # 40 minutes after the last settling poll, as the first: no hourly refresh falls due.
        steady_cycle(
            f"steady-state cycle ({FIXED_CHANGES} completed something)",
            others,
            steady_at + timedelta(minutes=10),
        )
    # Last: the replay writes the same messages and enrolments to the simulator again.
    run.floor(
        delivery,
        replay_cpu_s(conversation),
        f"the same {conversation.count:,} HTTP requests sent again on one keep-alive session",
    )
    figures.update(
        enrolments=enrolments,
        naive_calls_per_poll=enrolments,
        lower_bound_poll_calls=1,
        steady_poll_calls=sum(polled.values()),
    )
    engine.dispose()
    clock.set_now(None)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learners", type=int, default=50_000)
    add_store_options(parser)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    log.configure("warning")
    run = Run(f"organisation-{args.store}-{args.learners}")
    print(
        f"organisation benchmark: {args.learners} learners, {COURSES} courses, 20 mappings ({args.store})",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as raw, ExitStack() as stack:
        root = Path(raw)
        store = (
            f"sqlite:///{root / 'state.db'}"
            if args.store == "sqlite"
            else stack.enter_context(scratch_postgres(args.postgres_url))
        )
        port = args.port or free_port()
        url = stack.enter_context(moodle_process(args.learners, port, run=run))
        run.notes.update(pipeline(args.learners, store, root, url, run, settled=True), store=args.store)
    print(f"results: {run.save()}")


if __name__ == "__main__":
    main()
