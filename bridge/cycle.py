"""The stages of a cycle — pull, decide (with follow-up), deliver — and one whole cycle.

``sync --once`` runs them in order; the daemon runs each on its own schedule. HR feeds are
pulled before LMS sites so that new people are known when their accounts are looked up. A
source that fails is recorded and skipped (and, after repeated failures, rested by a circuit
breaker); the others go on. With several replicas on PostgreSQL, each source and the decide
stage are taken by one replica at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from sqlalchemy import Engine, and_, select

from bridge import board, clock, clock_guard, health, locks, metrics, registry
from bridge.act import Actor
from bridge.audiences import audience_members
from bridge.decide import DecideReport, evaluate
from bridge.delivery import DeliveryReport, deliver
from bridge.errors import BridgeError, Remedy
from bridge.followups import FollowUpReport, follow_up
from bridge.identity import match_identities
from bridge.kept import Kept, store_of, versions
from bridge.log import get_logger, redact_text
from bridge.mapping.loader import MappingSet
from bridge.mapping.refs import all_item_refs, item_refs, uses_competencies
from bridge.ports import PeopleKeys, PersonKeys, PullContext, PullScope, Sink, SiteIndex, Source
from bridge.records import LmsUser
from bridge.settings import Settings
from bridge.store import schema as t
from bridge.store.ingest import WriteResult, get_cursors, write_batch

log = get_logger(__name__)
LISTED = 100  # decisions and deliveries a cycle's report lists (every one is counted)


_links: Kept[dict[int, str]] = Kept()
_indexes: Kept[SiteIndex] = Kept()
_keys: Kept[PeopleKeys] = Kept(4)


class StoreSiteView:
    """What the store already knows about one site, read at the moment a source asks.

    The account links and the index are kept per process while the site's accounts, courses and
    links are unchanged (bridge.kept): a steady poll asks for them and they rarely change."""

    def __init__(self, engine: Engine, site: str) -> None:
        self.engine = engine
        self.site = site

    def linked_users(self) -> dict[int, str]:
        subject, version = (store_of(self.engine), self.site), versions(self.engine, [f"links:{self.site}"])
        return _links.get(subject, version, self._read_links)

    def _read_links(self) -> dict[int, str]:
        i = t.identities
        with self.engine.connect() as conn:
            rows = conn.execute(select(i.c.user_id, i.c.person_id).where(i.c.site == self.site))
            return {r.user_id: r.person_id for r in rows}

    def known_completions(self) -> set[tuple[int, int]]:
        c = t.completions
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.c.user_id, c.c.item_id).where(and_(c.c.site == self.site, c.c.kind == "course"))
            )
            return {(r.user_id, r.item_id) for r in rows}

    def active_enrolments(self, course_ids: set[int]) -> set[tuple[int, int]]:
        e = t.enrolments
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(e.c.user_id, e.c.item_id).where(
                    and_(e.c.site == self.site, e.c.active, e.c.item_id.in_(sorted(course_ids)))
                )
            )
            return {(r.user_id, r.item_id) for r in rows}

    def index(self) -> SiteIndex:
        version = versions(self.engine, [f"users:{self.site}", f"items:{self.site}"])
        return _indexes.get((store_of(self.engine), self.site), version, self._read_index)

    def _read_index(self) -> SiteIndex:
        u, items = t.lms_users, t.learning_items
        with self.engine.connect() as conn:
            users = conn.execute(
                select(u.c.user_id, u.c.idnumber, u.c.email).where(
                    and_(u.c.site == self.site, u.c.deleted.is_(False))
                )
            ).all()
            courses = conn.execute(
                select(items.c.item_id, items.c.shortname).where(
                    and_(items.c.site == self.site, items.c.kind == "course")
                )
            ).all()
        return SiteIndex(
            users_by_idnumber={r.idnumber.strip(): r.user_id for r in users if r.idnumber},
            users_by_email={r.email.strip().lower(): r.user_id for r in users if r.email},
            courses_by_shortname={r.shortname: r.item_id for r in courses},
        )

    def course_ids(self, refs: frozenset[str]) -> set[int]:
        items = t.learning_items
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(items.c.item_id, items.c.shortname, items.c.idnumber).where(
                    and_(items.c.site == self.site, items.c.kind == "course")
                )
            )
            return {
                r.item_id
                for r in rows
                if r.shortname in refs
                or f"id:{r.item_id}" in refs
                or (r.idnumber and f"idnumber:{r.idnumber}" in refs)
            }


@dataclass
class PullReport:
    source: str
    result: WriteResult = field(default_factory=WriteResult)
    error: str | None = None
    skipped: str | None = None
    identities: str | None = None


@dataclass
class DecideStage:
    decisions: DecideReport | None = None
    followups: FollowUpReport | None = None
    queued: int = 0
    skipped: str | None = None


@dataclass
class CycleReport:
    started: datetime
    pulls: list[PullReport] = field(default_factory=list)
    decide: DecideStage = field(default_factory=DecideStage)
    delivery: DeliveryReport | None = None
    refused: list[str] = field(default_factory=list)  # why nothing was decided (reference errors)

    @property
    def decisions(self) -> DecideReport | None:
        return self.decide.decisions

    @property
    def queued(self) -> int:
        return self.decide.queued


def person_keys(engine: Engine) -> PeopleKeys:
    """Every active HR person's keys, kept while the people data is unchanged (``version:people``)."""
    return _keys.get(store_of(engine), versions(engine, ["people"]), lambda: _read_person_keys(engine))


def _read_person_keys(engine: Engine) -> PeopleKeys:
    p = t.people
    with engine.connect() as conn:
        rows = conn.execute(
            select(p.c.person_id, p.c.employee_number, p.c.email, p.c.updated_at)
            .where(p.c.active)
            .order_by(p.c.person_id)
        )
        return PeopleKeys(PersonKeys(r.person_id, r.employee_number, r.email, r.updated_at) for r in rows)


def scope_for(site: str, mapping_set: MappingSet, engine: Engine | None = None) -> PullScope:
    """What the enabled mappings need from one site: their courses, and the people they can reach.

    People are those in the audience of a mapping that concerns the site, plus anyone with an
    open recommendation there (whose completion closes it and starts reinforcement).
    """
    concerned = [mp for mp in mapping_set.enabled if site in {ref.site for ref in item_refs(mp)}]
    refs = {r.ref for r in all_item_refs(concerned) if r.site == site and r.kind != "competency"}
    rated = [mp for mp in concerned if uses_competencies([mp], site)]
    competency_refs = {r.ref for r in all_item_refs(rated) if r.site == site and r.kind == "competency"}
    return PullScope(
        course_refs=frozenset(refs),
        people=partial(audience_members, engine, concerned) if engine is not None else None,
        competencies=bool(rated),
        competency_refs=frozenset(competency_refs),
        competency_people=partial(audience_members, engine, rated) if engine is not None and rated else None,
    )


def ordered_sources(settings: Settings, only: str | None = None) -> list[Source]:
    """HR feeds first, then LMS sites, so people exist before their accounts are matched."""
    names = [n for n in (*settings.feeds, *settings.sites) if only is None or n == only]
    if only is not None and not names:
        raise BridgeError(f"no site or feed named '{only}' is configured")
    built = {s.name: s for s in registry.sources(settings)}
    return [built[n] for n in names if n in built]


def pull_source(
    engine: Engine, settings: Settings, mapping_set: MappingSet, source: Source, *, full: bool = False
) -> PullReport:
    report = PullReport(source.name)
    state = health.get(engine, source.name)
    reopens = state.open_until() if state else None
    if reopens is not None and clock.now() < reopens and not full:
        report.skipped = f"resting after {state.resting_failures} failures until {reopens:%H:%M:%S} UTC"  # type: ignore[union-attr]
        return report
    with locks.exclusive(engine, f"pull:{source.name}") as mine:
        if not mine:
            report.skipped = "being pulled by another replica"
            return report
        started = time.monotonic()
        health.record_started(engine, source.name, clock.now())
        with engine.connect() as conn:
            cursors = {} if full else get_cursors(conn, source.name)
        ctx = PullContext(
            cursors=cursors,
            scope=scope_for(source.name, mapping_set, engine)
            if source.name in settings.sites
            else PullScope(),
            now=clock.now(),
            full=full,
            people=person_keys(engine) if source.name in settings.sites else PeopleKeys(),
            view=StoreSiteView(engine, source.name),
        )
        users_changed = False

        def link_accounts() -> None:
            # Once a site's users are stored (before its other streams need the links).
            nonlocal users_changed
            if users_changed:
                with engine.begin() as conn:
                    report.identities = str(match_identities(conn, source.name, settings.identity.match))
                users_changed = False

        try:
            for batch in source.pull(ctx):
                if batch.stream != "users":
                    link_accounts()
                with engine.begin() as conn:
                    result = write_batch(conn, source.name, batch, clock.now())
                users_changed |= result.written.get(LmsUser.__name__, 0) > 0  # not a second pass
                report.result.add(result)
                for kind, count in result.written.items():
                    metrics.records_pulled.labels(source.name, kind).inc(count)
                metrics.rows_rejected.labels(source.name).inc(result.rejected)
            link_accounts()
        except BridgeError as exc:
            report.error = redact_text(str(exc))
            log.error("pull failed", source=source.name, error=report.error)
            health.record_failure(
                engine, source.name, report.error, clock.now(), rests=exc.remedy is not Remedy.FIX_DATA
            )
            link_accounts()  # the users stored before the failure are linked all the same
        else:
            health.record_success(engine, source.name, clock.now())
        metrics.stage_duration.labels(f"pull:{source.name}").observe(time.monotonic() - started)
    return report


def pull(
    engine: Engine,
    settings: Settings,
    mapping_set: MappingSet,
    *,
    full: bool = False,
    only: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[PullReport]:
    reports = []
    for source in ordered_sources(settings, only):
        if progress:
            progress(source.name)
        reports.append(pull_source(engine, settings, mapping_set, source, full=full))
    return reports


def decide_stage(
    engine: Engine, settings: Settings, mapping_set: MappingSet, *, full: bool = False
) -> DecideStage:
    """Evaluate, open/close recommendations with their actions, then queue follow-ups."""
    stage = DecideStage()
    if (refused := clock_guard.refusal(engine, clock.now())) is not None:
        stage.skipped = refused
        log.error("not deciding", reason=refused)
        health.record_failure(engine, "decide", refused, clock.now())
        return stage
    with locks.exclusive(engine, "decide") as mine:
        if not mine:
            stage.skipped = "another replica is deciding"
            return stage
        started = time.monotonic()
        actor = Actor(mapping_set, settings)
        stage.decisions = evaluate(
            engine, mapping_set, settings, clock.now(), full=full, persist=actor, keep=LISTED
        )
        for (mapping_id, outcome), count in stage.decisions.outcomes.items():
            metrics.decisions.labels(mapping_id, outcome).inc(count)
        metrics.stage_duration.labels("decide").observe(time.monotonic() - started)
        started = time.monotonic()
        stage.followups = follow_up(engine, mapping_set, settings, clock.now())
        metrics.stage_duration.labels("follow_up").observe(time.monotonic() - started)
        stage.queued = actor.queued + stage.followups.queued + stage.followups.digests
    health.record_success(engine, "decide", clock.now())
    return stage


def deliver_stage(
    engine: Engine, settings: Settings, sinks: Mapping[str, Sink], stop: Callable[[], bool] = lambda: False
) -> DeliveryReport:
    if (refused := clock_guard.refusal(engine, clock.now())) is not None:
        health.record_failure(engine, "deliver", refused, clock.now())
        return DeliveryReport(errors=[refused])
    started = time.monotonic()
    report = deliver(engine, sinks, settings, stop=stop, keep=LISTED)
    if not report.paused:
        report.errors += board.publish(engine, sinks, clock.now(), report.unreachable).errors
    metrics.stage_duration.labels("deliver").observe(time.monotonic() - started)
    if report.errors:
        health.record_failure(engine, "deliver", "; ".join(report.errors), clock.now())
    else:
        health.record_success(engine, "deliver", clock.now())
    return report


def run_cycle(
    engine: Engine,
    settings: Settings,
    mapping_set: MappingSet,
    sinks: Mapping[str, Sink] | None = None,
    *,
    full: bool = False,
    only: str | None = None,
    send: bool = True,
    progress: Callable[[str], None] | None = None,
    refusals: Callable[[], list[str]] | None = None,
) -> CycleReport:
    """Pull, decide, deliver. ``refusals``, asked after the pull (so it sees what the sites hold
    now), gives reasons not to decide or send anything this cycle."""
    report = CycleReport(started=clock.now())
    report.pulls = pull(engine, settings, mapping_set, full=full, only=only, progress=progress)
    report.refused = refusals() if refusals is not None else []
    if report.refused:
        return report
    if progress:
        progress("deciding")
    report.decide = decide_stage(engine, settings, mapping_set, full=full)
    if send and not settings.delivery.dry_run:
        if progress:
            progress("delivering")
        report.delivery = deliver_stage(
            engine, settings, sinks if sinks is not None else registry.sinks(settings)
        )
    return report
