"""Deciding: evaluate mappings for people and open, close or leave recommendations.

The same code serves ``plan`` (nothing stored) and ``sync`` (decisions and their actions stored
together in one transaction per chunk of people), so both always agree. Evaluation is
incremental: only people whose inputs changed since they were last evaluated, unless a full
evaluation is due (asked for, a mapping changed, or the daily re-check for time-based rules).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, select, tuple_, update

from bridge import health
from bridge.facts import Facts, all_person_ids, iter_facts
from bridge.mapping import evaluate as ev
from bridge.mapping import model as m
from bridge.mapping.context import build_context
from bridge.mapping.loader import MappingSet
from bridge.mapping.refs import item_refs, kpi_needs
from bridge.records import Target
from bridge.settings import Settings
from bridge.store import schema as t

Outcome = Literal["open", "reopen", "close", "suppress", "lapse", "wait"]
FULL_EVERY = timedelta(hours=24)
LEFT = "left the organisation"


@dataclass(frozen=True)
class Assessment:
    """Every part of one mapping's verdict for one person (what ``explain`` prints)."""

    mapping: m.Mapping
    facts: Facts
    audience: ev.Verdict
    trigger: ev.Verdict
    targets: tuple[Target, ...]
    missing_targets: tuple[str, ...]
    completed: tuple[Target, datetime] | None
    proficient: bool

    @property
    def matches(self) -> bool:
        return self.facts.person.active and self.audience.ok and self.trigger.ok


@dataclass(frozen=True)
class Decision:
    mapping_id: str
    person_id: str
    person_name: str
    outcome: Outcome
    reason: str
    facts: tuple[str, ...]
    targets: tuple[Target, ...]
    holdout: bool = False
    recommendation_id: int | None = None
    completed_at: datetime | None = None
    audience: tuple[str, ...] = ()
    words: tuple[str, ...] = ()  # the trigger's facts as the learner reads them (messages, the site)
    about: tuple[str, ...] = ()  # the same as their manager reads them


@dataclass(frozen=True)
class LatestRecommendation:
    id: int
    episode: int
    state: str
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None = None

    @property
    def left(self) -> bool:
        """Closed only because the person left: it opens again if they come back."""
        return self.state == "closed" and self.close_reason == LEFT


@dataclass
class DecideReport:
    """What an evaluation decided: every decision counted by mapping and outcome, and the first
    ``keep`` of them (all unless the caller limits it: a sync of 50,000 people lists 100, not
    hold 50,000 decisions with their explanations until it prints them)."""

    full: bool
    evaluated: int = 0
    decisions: list[Decision] = field(default_factory=list)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    keep: int | None = None

    @property
    def decided(self) -> int:
        return sum(self.outcomes.values())

    def add(self, decisions: Sequence[Decision]) -> None:
        self.outcomes.update((d.mapping_id, d.outcome) for d in decisions)
        room = len(decisions) if self.keep is None else max(0, self.keep - len(self.decisions))
        self.decisions.extend(decisions[:room])


def in_holdout(mapping: m.Mapping, person_id: str) -> bool:
    """Deterministic assignment to the measurement holdout (same answer on every replica)."""
    if mapping.measure is None or mapping.measure.holdout_percent <= 0:
        return False
    digest = hashlib.sha256(f"{mapping.id}:{person_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * 100 < mapping.measure.holdout_percent


def assess(
    mapping: m.Mapping, facts: Facts, ctx: ev.EvalContext, since: datetime | None = None
) -> Assessment:
    targets: list[Target] = []
    missing: list[str] = []
    for rec in mapping.recommend:
        resolved = (
            ctx.competency(rec.site, rec.ref)
            if rec.kind == "competency"
            else ctx.target(rec.site, rec.kind, rec.ref)
        )
        if resolved is None:
            missing.append(f"{rec.kind} {rec.ref} on site {rec.site}")
        else:
            targets.append(resolved)
    completed = None
    rule = mapping.closed_by.completed
    if rule is not None:
        window_start = ctx.now - timedelta(days=rule.within_days)
        if since is not None:
            window_start = min(window_start, since)
        for target in targets:
            when = ev.completed_at(facts, target)
            if when is not None and when >= window_start:
                completed = (target, when)
                break
    proficient = False
    if mapping.closed_by.competency_proficient is not None:
        prof = mapping.closed_by.competency_proficient
        comp = ctx.competency(prof.site, prof.competency)
        rating = facts.competencies.get((prof.site, comp.item_id)) if comp else None
        proficient = rating is not None and rating.proficient is True
    return Assessment(
        mapping=mapping,
        facts=facts,
        audience=ev.audience(mapping.audience, facts, ctx),
        trigger=ev.trigger(mapping.when, facts, ctx),
        targets=tuple(targets),
        missing_targets=tuple(missing),
        completed=completed,
        proficient=proficient,
    )


def decide_one(
    mapping: m.Mapping,
    facts: Facts,
    ctx: ev.EvalContext,
    latest: LatestRecommendation | None,
    first_evaluation: bool,
) -> Decision | None:
    """What to do for one mapping and one person, given their latest recommendation."""
    person = facts.person
    is_open = latest is not None and latest.state == "open"
    watching = latest is not None and latest.state in ("open", "suppressed")
    if not watching and not (person.active and ev.audience(mapping.audience, facts, ctx, explain=False).ok):
        return None  # the common case, decided without evaluating the trigger
    a = assess(mapping, facts, ctx, since=latest.opened_at if is_open and latest else None)

    def decision(outcome: Outcome, reason: str, facts_: Iterable[str], **kw: Any) -> Decision:
        return Decision(
            mapping.id,
            person.person_id,
            person.full_name,
            outcome,
            reason,
            tuple(facts_),
            a.targets,
            **kw,
        )

    if is_open:
        assert latest is not None
        if not person.active:
            return decision("close", LEFT, [], recommendation_id=latest.id)
        if a.completed is not None:
            target, when = a.completed
            return decision(
                "close",
                f"completed {target.name} on {when.date().isoformat()}",
                [],
                recommendation_id=latest.id,
                completed_at=when,
            )
        if a.proficient:
            return decision("close", "rated proficient in the competency", [], recommendation_id=latest.id)
        if not a.audience.ok:
            return decision(
                "close", "no longer in the audience", a.audience.facts, recommendation_id=latest.id
            )
        if not a.trigger.ok and mapping.closed_by.trigger_clears == "close":
            return decision(
                "close", "the trigger no longer holds", a.trigger.facts, recommendation_id=latest.id
            )
        return None
    if latest is not None and latest.state == "suppressed":
        if not person.active:
            return None  # leaving is not "no longer matching": a baseline stays one
        if not a.matches:
            return decision(
                "lapse",
                "no longer matches since it was switched on",
                a.trigger.facts,
                recommendation_id=latest.id,
            )
        return None
    if not a.matches or a.missing_targets or a.completed is not None or a.proficient:
        return None
    if not _in_schedule(mapping.schedule, ctx.now):
        return None
    cooling = (
        latest is not None and latest.state == "closed" and latest.closed_at is not None and not latest.left
    )
    if cooling and ctx.now < latest.closed_at + timedelta(days=mapping.schedule.cooldown_days):  # type: ignore[union-attr,operator]
        return None
    if first_evaluation and not mapping.schedule.backfill:
        reason = "already matched when the mapping was switched on (backfill: false)"
        return decision("suppress", reason, a.trigger.facts, audience=a.audience.facts)
    if sites := unknown_history(a):
        # Shown by plan, sync and why; nothing is stored, the person is decided again once linked.
        reason = f"waiting for an account on site {', '.join(repr(x) for x in sites)} to be linked (learning history not known yet)"
        return decision("wait", reason, a.trigger.facts, audience=a.audience.facts)
    holdout = in_holdout(mapping, person.person_id)
    if latest is not None and latest.left:
        # Back in the organisation (rehired, or listed again after a bad export): the work that
        # leaving closed comes back, rather than a second episode re-sending what was sent.
        return decision(
            "reopen",
            f"back in the organisation: {mapping.title}",
            a.trigger.facts,
            holdout=holdout,
            audience=a.audience.facts,
            recommendation_id=latest.id,
        )
    return decision(
        "open",
        mapping.title,
        a.trigger.facts,
        holdout=holdout,
        audience=a.audience.facts,
        words=a.trigger.learner_words,
        about=a.trigger.manager_words,
    )


def unknown_history(a: Assessment) -> list[str]:
    """Sites of the recommended items where the person's learning history is not known yet.

    Without a linked account the site's completions and ratings cannot be attached to the
    person, so "has not completed" would be a guess: no recommendation opens until the link
    appears (linking marks the person for re-evaluation).
    """
    return sorted({tg.site for tg in a.targets if tg.site not in a.facts.accounts})


def _in_schedule(schedule: m.Schedule, now: datetime) -> bool:
    today = now.date()
    return not ((schedule.start and today < schedule.start) or (schedule.end and today > schedule.end))


def latest_recommendations(
    conn: Connection, person_ids: Sequence[str]
) -> dict[tuple[str, str], LatestRecommendation]:
    r = t.recommendations
    found: dict[tuple[str, str], LatestRecommendation] = {}
    rows = conn.execute(
        select(
            r.c.id,
            r.c.mapping_id,
            r.c.person_id,
            r.c.episode,
            r.c.state,
            r.c.opened_at,
            r.c.closed_at,
            r.c.close_reason,
        )
        .where(r.c.person_id.in_(person_ids))
        .order_by(r.c.mapping_id, r.c.person_id, r.c.episode)
    )
    for row in rows:
        found[(row.mapping_id, row.person_id)] = LatestRecommendation(
            row.id, row.episode, row.state, row.opened_at, row.closed_at, row.close_reason
        )
    return found


Persist = Callable[
    [
        Connection,
        list[Decision],
        dict[str, Facts],
        dict[tuple[str, str], LatestRecommendation],
        datetime,
    ],
    None,
]


def evaluate(
    engine: Engine,
    mapping_set: MappingSet,
    settings: Settings,
    now: datetime,
    *,
    full: bool = False,
    persist: Persist | None = None,
    person_ids: Iterable[str] | None = None,
    mapping_ids: Iterable[str] | None = None,
    dry: bool = False,
    keep: int | None = None,
) -> DecideReport:
    """Evaluate enabled mappings and hand each chunk's decisions to ``persist``.

    With ``dry`` (``plan``), the evaluation leaves no trace: people stay marked for
    re-evaluation and mapping versions are not recorded. ``keep``: how many decisions the report
    lists (all of them are counted).
    """
    mappings = sorted(mapping_set.enabled, key=lambda mp: mp.id)
    if mapping_ids is not None:
        wanted = set(mapping_ids)
        mappings = [mp for mp in mappings if mp.id in wanted]
    problems: list[str] = []
    with engine.connect() as conn:
        state = _mapping_state(conn)
        changed = [
            mp.id for mp in mappings if state.get(mp.id, (None, None))[0] != mapping_set.fingerprints()[mp.id]
        ]
        last_full = min((s[1] for s in state.values() if s[1] is not None), default=None)
        due = last_full is None or now - last_full >= FULL_EVERY
        full = full or bool(changed) or due
        mappings, unsettled = _settled(conn, mappings, problems)
        ctx = build_context(conn, mappings, settings, now)
        synced = set(conn.execute(select(t.learning_items.c.site).distinct()).scalars())
        dirty = t.dirty_people
        marks = {r.person_id: r.mark for r in conn.execute(select(dirty.c.person_id, dirty.c.mark))}
        if person_ids is not None:
            ids = sorted(set(person_ids))
            full = False
        elif full:
            ids = all_person_ids(conn)
        else:
            ids = sorted(marks)
    report = DecideReport(full=full, problems=problems, keep=keep)
    first = {mp.id: mp.id not in state for mp in mappings}
    needs = kpi_needs(mappings)
    waiting = _check_targets(mappings, ctx, synced, report.problems)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        with engine.begin() as conn:
            latest = latest_recommendations(conn, chunk)
            decisions: list[Decision] = []
            chunk_facts: dict[str, Facts] = {}
            for facts in iter_facts(conn, chunk, needs):
                chunk_facts[facts.person.person_id] = facts
                report.evaluated += 1
                for mp in mappings:
                    d = decide_one(mp, facts, ctx, latest.get((mp.id, facts.person.person_id)), first[mp.id])
                    if d is not None:
                        decisions.append(d)
            report.add(decisions)
            if persist is not None:
                persist(conn, decisions, chunk_facts, latest, now)
            if not dry and not unsettled:  # a mapping left out decides these people later
                _clear_marks(conn, [(p, marks[p]) for p in chunk if p in marks])
    if not dry:
        with engine.begin() as conn:
            _save_mapping_state(conn, mapping_set, state, now, full, waiting | unsettled)
    return report


def _settled(
    conn: Connection, mappings: list[m.Mapping], problems: list[str]
) -> tuple[list[m.Mapping], set[str]]:
    """The mappings whose every site was read completely by its latest pull, and the ids of the
    others: on a site whose pull is still running or failed half-way (users stored, completions
    not), "never completed" may only mean "not read yet", so those mappings wait."""
    sites = {ref.site for mp in mappings for ref in item_refs(mp)}
    why = health.unsettled(conn, sites)
    ready, held = [], {}
    for mp in mappings:
        blocked = {ref.site for ref in item_refs(mp)} & set(why)
        if blocked:
            held[mp.id] = blocked
        else:
            ready.append(mp)
    for site in sorted(why):
        ids = sorted(mapping_id for mapping_id, blocked in held.items() if site in blocked)
        if ids:
            problems.append(f"mapping(s) {', '.join(ids)} wait: site '{site}' {why[site]}")
    return ready, set(held)


def _check_targets(
    mappings: list[m.Mapping], ctx: ev.EvalContext, synced: set[str], problems: list[str]
) -> set[str]:
    """Add a problem per recommended item not found; return the mappings whose sites were never read."""
    waiting: set[str] = set()
    for mp in mappings:
        refs = item_refs(mp)
        mine = {(r.site, r.kind, r.ref) for r in refs}
        missing = [k for k, v in ctx.targets.items() if v is None and k in mine]
        for site, kind, ref in missing:
            problem = f"mapping {mp.id}: {kind} '{ref}' was not found on site '{site}'"
            if problem not in problems:
                problems.append(problem)
        if any(ref.site not in synced for ref in refs):
            # Nothing read from that site yet (it was down, or is new): this is not the
            # mapping's first evaluation, and its backfill baseline must wait for the site.
            waiting.add(mp.id)
    return waiting


def _clear_marks(conn: Connection, read: list[tuple[str, str]]) -> None:
    """Delete the dirty marks this evaluation read; a person marked again meanwhile stays dirty."""
    if read:
        d = t.dirty_people
        conn.execute(delete(d).where(tuple_(d.c.person_id, d.c.mark).in_(read)))


def _mapping_state(conn: Connection) -> dict[str, tuple[str, datetime | None]]:
    s = t.mapping_state
    return {
        r.mapping_id: (r.sha256, r.full_evaluated_at)
        for r in conn.execute(select(s.c.mapping_id, s.c.sha256, s.c.full_evaluated_at))
    }


def _save_mapping_state(
    conn: Connection,
    mapping_set: MappingSet,
    state: dict[str, Any],
    now: datetime,
    full: bool,
    waiting: set[str],
) -> None:
    s = t.mapping_state
    for mapping_id, sha in mapping_set.fingerprints().items():
        if mapping_id in waiting:
            continue
        if mapping_id in state:
            values: dict[str, Any] = {"sha256": sha, "evaluated_at": now}
            if full:
                values["full_evaluated_at"] = now
            conn.execute(update(s).where(s.c.mapping_id == mapping_id).values(**values))
        else:
            conn.execute(
                s.insert().values(
                    mapping_id=mapping_id,
                    sha256=sha,
                    first_seen_at=now,
                    evaluated_at=now,
                    full_evaluated_at=now,
                )
            )
