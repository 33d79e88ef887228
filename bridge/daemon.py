"""``lmsbridge run``: the long-running service.

APScheduler 3 runs one job per stage — a pull job per source, decide (with follow-up), deliver —
on intervals or cron expressions from the configuration, each coalesced and never overlapping
itself. A reload job watches the mappings directory.

Signals: SIGTERM/SIGINT stop new work, let the work in flight finish (delivery stops between
batches, so the batch being sent completes and is recorded), release locks and exit 0 within
``daemon.grace_seconds``. SIGHUP reloads the mappings now. A mapping set that does not validate
is rejected with a log line and the last good set stays active.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge import clock, health, registry
from bridge.cycle import decide_stage, deliver_stage, ordered_sources, pull_source
from bridge.dashboard import Dashboard
from bridge.delivery import worker_id
from bridge.errors import BridgeError, MappingError, StoreError, database_cause
from bridge.locks import single_process
from bridge.log import get_logger, redact_text
from bridge.mapping.loader import MappingSet, load_dir, mapping_files
from bridge.operational_state import pause_state, record_mappings_accepted, record_mappings_rejected
from bridge.ops import OpsServer
from bridge.settings import Settings
from bridge.store import schema as t
from bridge.store.ingest import upsert_statement
from bridge.webhooks import receiver

log = get_logger(__name__)

EARLY_PULL_GAP = 30.0  # seconds between two webhook-triggered pulls of one source


def trigger(every_seconds: float, cron: str | None) -> IntervalTrigger | CronTrigger:
    if cron:
        try:
            return CronTrigger.from_crontab(cron, timezone=UTC)
        except ValueError as exc:
            raise BridgeError(f"invalid cron expression {cron!r}: {exc}") from None
    return IntervalTrigger(seconds=every_seconds, timezone=UTC)


class Daemon:
    def __init__(self, settings: Settings, engine: Engine, mapping_set: MappingSet) -> None:
        self.settings = settings
        self.engine = engine
        self.mapping_set = mapping_set
        self.mappings_dir = settings.resolve(settings.mappings.dir)
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self.early_pulls: dict[str, float] = {}  # source -> monotonic time of its last early pull
        self.decide_after: set[str] = set()  # sources whose next pull is an early one: decide after it
        self.seen_files: str | None = None  # the first check validates the directory once more
        self.paused_seen = False  # a service found paused at its first delivery run says so
        self.sources = {s.name: s for s in ordered_sources(settings)}
        self.sinks = registry.sinks(settings)
        self.worker = worker_id()
        self.triggers: dict[str, IntervalTrigger | CronTrigger] = {}
        self.scheduler = BackgroundScheduler(
            # SQLite has one writer: jobs side by side would fail to upgrade their read
            # transactions to writes ("database is locked"), so there they run one at a time.
            executors={
                "default": ThreadPoolExecutor(
                    1 if engine.dialect.name == "sqlite" else settings.daemon.workers
                )
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 120},
            timezone=UTC,
        )
        token = settings.daemon.token.get_secret_value() if settings.daemon.token else None
        self.ops = OpsServer(
            engine,
            settings.daemon.listen,
            token,
            lambda: list(self.sources),
            connection_timeout=settings.daemon.connection_timeout_seconds,
            max_connections=settings.daemon.max_connections,
            delivery=settings.delivery,
        )
        # Lambdas, so the pages show the mapping set the daemon holds now, after any reload.
        Dashboard(
            engine,
            settings,
            lambda: self.mapping_set,
            lambda: list(self.sources),
        ).install(self.ops)
        for item in registry.configured(settings):
            hook = item.connector.webhook(item.options) if item.connector.webhook else None
            if hook is not None and item.name in self.sources:
                self.ops.add_hook(
                    f"/webhooks/{item.name}", receiver(item.name, hook, partial(self.pull_now, item.name))
                )

    def pull_now(self, name: str) -> None:
        """Run the source's pull job at once (coalesced with a run already due or running), at
        most once per :data:`EARLY_PULL_GAP` seconds: a replayed or flooded webhook, which its
        signature cannot tell from a new one, costs the site at most that one early pull. A
        signal inside the gap is not lost: one early pull is set for the gap's end. Decide runs
        right after an early pull, so a pushed completion closes its reminders and queues its
        reinforcement then, not at the next decide interval."""
        now = time.monotonic()
        last = self.early_pulls.get(name)
        if last is not None and now - last < EARLY_PULL_GAP:
            log.info("webhook received; an early pull of the site was asked for just before", site=name)
            self.scheduler.add_job(
                self.pull_now,
                DateTrigger(
                    datetime.now(UTC) + timedelta(seconds=EARLY_PULL_GAP - (now - last)), timezone=UTC
                ),
                args=[name],
                id=f"early-pull:{name}",
                replace_existing=True,
            )
            return
        self.early_pulls[name] = now
        self.decide_after.add(name)
        self.scheduler.modify_job(f"pull:{name}", next_run_time=datetime.now(UTC))

    # ------------------------------------------------------------------ jobs

    def _job(self, name: str, work: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            if self.stopping.is_set():
                return
            try:
                self._record(name, started=clock.now())
                status = "ok"
                try:
                    work()
                except BridgeError as exc:
                    status = "error"
                    log.error("job failed", job=name, error=redact_text(str(exc)))
                    health.record_failure(self.engine, name, redact_text(str(exc)), clock.now())
                self._record(name, finished=clock.now(), status=status)
            except (SQLAlchemyError, StoreError) as exc:
                # The store is away (a restart, a failover): say so in one line; the job runs
                # again at its next time and the work it did not record is picked up then.
                log.error(
                    "job could not reach the store; it runs again at its next time",
                    job=name,
                    error=redact_text(database_cause(exc)),
                )
            except Exception:
                log.exception("job crashed", job=name)
                with suppress(Exception):
                    health.record_failure(self.engine, name, "unexpected error (see the log)", clock.now())

        return run

    def _record(
        self,
        job: str,
        started: datetime | None = None,
        finished: datetime | None = None,
        status: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"job": job, "worker": self.worker, "updated_at": clock.now()}
        if started:
            values["last_started_at"] = started
        if finished:
            values["last_finished_at"] = finished
            values["last_status"] = status
        # From the trigger, not scheduler.get_job: that takes the scheduler's job-store lock, which
        # shutdown(wait=True) holds while it waits for this very job to finish.
        # The scheduler runs on the machine's clock; what is stored is on the bridge's clock.
        trigger_ = self.triggers.get(job)
        machine_now = datetime.now(UTC)
        upcoming = trigger_.get_next_fire_time(None, machine_now) if trigger_ is not None else None
        if upcoming is not None:
            values["next_run_at"] = clock.now() + (upcoming - machine_now)
        with self.engine.begin() as conn:
            stmt = upsert_statement(conn, t.job_runs, ["job"], list(values))
            conn.execute(stmt, values)

    def _pull(self, name: str) -> None:
        early = name in self.decide_after
        self.decide_after.discard(name)
        report = pull_source(self.engine, self.settings, self.mapping_set, self.sources[name])
        log.info(
            "pulled",
            source=name,
            changed=report.result.changed,
            rejected=report.result.rejected,
            skipped=report.skipped,
            error=report.error,
        )
        if early and not self.stopping.is_set():
            self.scheduler.modify_job("decide", next_run_time=datetime.now(UTC))

    def _decide(self) -> None:
        stage = decide_stage(self.engine, self.settings, self.mapping_set)
        if stage.decisions is not None:
            log.info(
                "decided",
                evaluated=stage.decisions.evaluated,
                decisions=stage.decisions.decided,
                queued=stage.queued,
            )

    def _deliver(self) -> None:
        report = deliver_stage(self.engine, self.settings, self.sinks, stop=self.stopping.is_set)
        if report.paused != self.paused_seen:
            self._log_pause(report.paused)
        if report.states or report.errors:
            log.info("delivered", states=dict(report.states), errors=report.errors)

    def _log_pause(self, paused: bool) -> None:
        """One line when delivery is seen paused or running again, not one per delivery run."""
        self.paused_seen = paused
        if paused:
            with self.engine.connect() as conn:
                by = pause_state(conn, self.settings.delivery).by
            log.warning("delivery paused: nothing is sent until `lmsbridge resume`", paused_by=by)
        else:
            log.info("delivery running")

    def reload(self) -> bool:
        """Load the mappings again; keep the current set if the new one is invalid. The verdict
        is kept in the store, so `status`, /readyz and /metrics show a rejected set too."""
        try:
            candidate = load_dir(self.mappings_dir)
        except MappingError as exc:
            log.error("mappings rejected; keeping the last good set", problems=exc.problems)
            self._record_verdict(exc.problems)
            return False
        self._record_verdict(None)
        if candidate.fingerprints() != self.mapping_set.fingerprints():
            self.mapping_set = candidate
            log.info("mappings reloaded", mappings=sorted(candidate.fingerprints()))
        return True

    def _record_verdict(self, problems: list[str] | None) -> None:
        try:
            with self.engine.begin() as conn:
                if problems is None:
                    record_mappings_accepted(conn)
                else:
                    record_mappings_rejected(conn, problems, clock.now())
        except SQLAlchemyError as exc:
            log.warning(
                "could not record the mappings verdict in the store", error=redact_text(database_cause(exc))
            )

    def _watch(self) -> None:
        """Reload when the files change (or on SIGHUP); unchanged files are not validated again,
        so a rejected set is logged once, not at every check."""
        forced = self.reload_requested.is_set()
        self.reload_requested.clear()
        files = self._files_digest()
        if forced or files != self.seen_files:
            self.seen_files = files
            self.reload()

    def _files_digest(self) -> str | None:
        digest = hashlib.sha256()
        try:
            for path in mapping_files(self.mappings_dir):
                raw = path.read_bytes()
                digest.update(f"{path.name}\0{len(raw)}\0".encode())
                digest.update(raw)
        except OSError:
            return None
        return digest.hexdigest()

    def schedule(self) -> None:
        d = self.settings.daemon
        for name in self.sources:
            entry = self.settings.feeds.get(name) or self.settings.sites[name]
            every = entry.poll_every_seconds or d.pull_every_seconds
            self._add(f"pull:{name}", partial(self._pull, name), trigger(every, entry.poll_cron))
        self._add("decide", self._decide, trigger(d.decide_every_seconds, d.decide_cron))
        self._add("deliver", self._deliver, trigger(d.deliver_every_seconds, d.deliver_cron))
        self.scheduler.add_job(
            self._watch, IntervalTrigger(seconds=d.reload_check_seconds, timezone=UTC), id="reload"
        )
        self.scheduler.add_listener(self._missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    def _add(self, job: str, work: Callable[[], Any], when: IntervalTrigger | CronTrigger) -> None:
        self.triggers[job] = when
        self.scheduler.add_job(self._job(job, work), when, id=job, name=job, next_run_time=datetime.now(UTC))

    @staticmethod
    def _missed(event: JobEvent) -> None:
        log.warning("job run missed (the previous run took longer than its interval)", job=event.job_id)

    # ------------------------------------------------------------------ lifecycle

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload_requested.set()
            self.scheduler.modify_job("reload", next_run_time=datetime.now(UTC))
        else:
            self.stopping.set()

    def run(self) -> int:
        with single_process(self.engine):
            return self._run()

    def _run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._signal)
        self.ops.start()
        self.schedule()
        self.scheduler.start()
        log.info(
            "lmsbridge running",
            sources=list(self.sources),
            worker=self.worker,
            listen=f"{self.ops.host}:{self.ops.port}",
        )
        while not self.stopping.wait(0.5):
            pass
        return self.shutdown()

    def shutdown(self) -> int:
        log.info("stopping: finishing the work in flight", grace_seconds=self.settings.daemon.grace_seconds)
        self.scheduler.pause()
        finished = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        finished.start()
        finished.join(self.settings.daemon.grace_seconds)
        self.ops.stop()
        if finished.is_alive():
            log.error("work still running after the grace period; it will be reconciled at the next start")
            return 1
        self.engine.dispose()
        log.info("stopped cleanly")
        return 0
