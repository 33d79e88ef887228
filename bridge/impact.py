"""Impact: did a mapping's learning move its KPI, and what did it take?

For every mapping with a ``measure`` section, the people it recommended learning to are split
into cohorts at their first recommendation, by what was *delivered*, not by what was queued:

* ``completed``: contacted (a recommendation or reminder message or email to the learner was
  actually sent, outbox state ``sent``), and completed a recommended item (or were rated
  proficient in a recommended competency) after the recommendation opened;
* ``not_completed``: contacted, and have not completed it;
* ``not_contacted``: recommended, but no message ever reached them (held by quiet hours, caps or
  opt-outs, dropped as stale, failed, or completed before it went out); whether they completed
  or not, the mapping did not reach them, so they are neither completers nor non-completers;
* ``holdout``: deliberately not contacted (``measure.holdout_percent``).

The holdout comparison is intention-to-treat: everyone recommended (contacted or not) against
the holdout, because the holdout was drawn at random from the same recommendations, and who
could not be reached is not random (no account yet, opted out, already done). The contacted-only
comparison with the holdout is reported beside it, labelled as such, never as the headline.
``Reach`` gives the counts every view shows (``lmsbridge impact`` as a table and as JSON, and
the dashboard), all from ``measure``.

Each person's KPI *before* is the mean of their periods that ended in the ``before_days`` before
the recommendation opened; *after* is the mean of the periods that began in the ``after_days``
after they completed (after the recommendation for the other two cohorts). The effect is a
difference in differences: the mean per-person change of one cohort minus another's, with a
Welch 95% interval, signed so that a positive effect always means the KPI improved.

Only the difference between cohorts can be read as an effect. Everyone here was picked because
their KPI was low, and low months tend to be followed by better ones anyway (regression to the
mean), so each cohort's own change overstates what the learning did. The comparison with the
randomised holdout is the honest one when the holdout is big enough; completers against
non-completers otherwise, with the caveat that learners chose themselves.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, and_, select

from bridge.errors import BridgeError
from bridge.impact_stats import (
    Estimate,
    Survival,
    difference_in_differences,
    kaplan_meier,
    mean_and_sd,
    minimum_detectable_effect,
    pre_trend,
)
from bridge.log import redact_text
from bridge.mapping.loader import MappingSet
from bridge.mapping.model import Mapping, Measure
from bridge.settings import Settings
from bridge.store import schema as t

Verdict = Literal["works", "no detectable effect", "harmful", "insufficient data"]
Headline = Literal["treated_vs_holdout", "completers_vs_non"]

COHORTS = ("completed", "not_completed", "not_contacted", "holdout")
# What each cohort means, for every view that labels them.
COHORT_MEANINGS = {
    "completed": "a message was delivered, and they completed",
    "not_completed": "a message was delivered, not completed",
    "not_contacted": "recommended, but no message was delivered",
    "holdout": "deliberately not contacted (random holdout)",
}
# A smaller randomised holdout gives an interval too wide to decide anything (with 5 people it
# spans about +-1.2 standard deviations of the per-person change, with 10 about +-0.7), so below
# this the holdout comparison is reported in the notes and completers vs non-completers leads.
MIN_HOLDOUT = 10
ACTED_ON = ("open", "closed")  # "suppressed" and "lapsed" recommendations were never acted on
MESSAGE_PURPOSES = ("recommend", "reminder")  # what contacts a learner about a recommendation
MESSAGE_KINDS = ("message", "email")
# Why a recommendation's learner messages did not go out, by the state of its outbox actions.
NOT_SENT_STATES = {
    "pending": "not sent yet",
    "sending": "not sent yet",
    "waiting": "held",
    "dead": "delivery failed",
    "cancelled": "cancelled before sending",
    "suppressed": "suppressed",
}
NO_MESSAGE = "no message queued"
REASON_CHARS = 80
CHUNK = 500
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class CohortStats:
    """One cohort's KPI, in the metric's own units: per-person means before and after."""

    name: str
    n: int
    mean_before: float | None
    mean_after: float | None
    mean_change: float | None
    before: list[float]
    after: list[float]


@dataclass(frozen=True)
class Reach:
    """Who the mapping's recommendations reached, counted by what was delivered.

    Recommendations acted on (every episode, not only each person's first). ``contacted``: at
    least one recommendation or reminder message or email to the learner was actually sent.
    ``not_contacted_reasons``: for the others, why (reason -> recommendations).
    """

    recommended: int  # holdout excluded
    contacted: int
    not_contacted: int
    not_contacted_reasons: dict[str, int]
    holdout: int
    completed: int  # of everyone recommended (intention to treat)
    contacted_completed: int
    holdout_completed: int = 0

    @property
    def completion_rate(self) -> float | None:
        return self.completed / self.recommended if self.recommended else None

    @property
    def contacted_completion_rate(self) -> float | None:
        return self.contacted_completed / self.contacted if self.contacted else None

    @property
    def holdout_completion_rate(self) -> float | None:
        return self.holdout_completed / self.holdout if self.holdout else None


@dataclass(frozen=True)
class Effort:
    """What the recommendations took: messages sent (learner recommendations and reminders).

    ``messages_sent`` counts only messages in state ``sent``; ``messages_per_completion``
    divides them by the completions of contacted people (a completion nobody was messaged
    about took no messages, so it does not thin the figure out).
    """

    recommendations: int
    completions: int
    completion_rate: float | None
    median_days_to_complete: float | None
    messages_sent: int
    messages_per_completion: float | None
    contacted_completions: int = 0


@dataclass(frozen=True)
class MappingImpact:
    """The impact report of one mapping. Estimates are signed so that positive means improved."""

    mapping_id: str
    title: str
    metric: str
    direction: str
    before_days: int
    after_days: int
    cohorts: dict[str, CohortStats]
    completers_vs_non: Estimate | None  # contacted completers vs contacted non-completers
    treated_vs_holdout: Estimate | None  # intention to treat: everyone recommended vs holdout
    contacted_vs_holdout: Estimate | None  # secondary: only those a message reached vs holdout
    headline: str
    mde: float | None
    verdict: str
    pre_trend: Estimate | None
    time_to_competency: Survival | None
    effort: Effort
    reach: Reach
    notes: list[str]

    @property
    def headline_estimate(self) -> Estimate | None:
        return self.treated_vs_holdout if self.headline == "treated_vs_holdout" else self.completers_vs_non


@dataclass(frozen=True)
class _Recommendation:
    id: int
    person_id: str
    holdout: bool
    opened_at: datetime
    done_at: datetime | None  # first completion (or proficient rating) after it opened
    sent: int = 0  # learner messages (recommendation, reminders) actually sent
    not_sent_reason: str | None = None  # why none was sent, when sent == 0


@dataclass(frozen=True)
class _Period:
    start: date
    end: date
    value: float


@dataclass(frozen=True)
class _Person:
    """One person at their first recommendation, with the KPI periods of each window."""

    cohort: str
    before: list[_Period]
    after: list[_Period]


def measure(
    engine: Engine,
    mapping_set: MappingSet,
    settings: Settings,
    now: datetime,
    mapping_id: str | None = None,
) -> list[MappingImpact]:
    """The impact of every mapping with a ``measure`` section (or of one), ordered by id.

    Raises BridgeError when ``mapping_id`` names no mapping or one without ``measure``.
    """
    if mapping_id is not None:
        mapping = mapping_set.get(mapping_id)
        if mapping is None:
            raise BridgeError(f"no mapping with id '{mapping_id}'")
        if mapping.measure is None:
            raise BridgeError(f"mapping '{mapping_id}' has no measure section, so its impact is not measured")
        chosen = [mapping]
    else:
        chosen = sorted((mp for mp in mapping_set.mappings if mp.measure is not None), key=lambda mp: mp.id)
    with engine.connect() as conn:
        return [_measure_one(conn, mp, settings, now) for mp in chosen]


def reach(conn: Connection, mapping_id: str, now: datetime) -> tuple[Reach, Effort]:
    """A mapping's reach and effort by what was delivered, with or without a ``measure`` section.

    The same computation ``measure`` reports, for views that show the counts of any mapping.
    """
    recs = _recommendations(conn, mapping_id, now)
    return _reach(recs), _effort([rec for rec in recs if not rec.holdout])


def _measure_one(conn: Connection, mapping: Mapping, settings: Settings, now: datetime) -> MappingImpact:
    spec = mapping.measure
    assert spec is not None
    metric_settings = settings.metrics.get(spec.metric)
    direction = metric_settings.direction if metric_settings else "higher"
    sign = 1.0 if direction == "higher" else -1.0
    recs = _recommendations(conn, mapping.id, now)
    first: dict[str, _Recommendation] = {}
    for rec in recs:
        first.setdefault(rec.person_id, rec)
    kpis = _periods(conn, spec.metric, list(first))
    people = [_person(rec, kpis.get(rec.person_id, []), spec) for rec in first.values()]
    measured = [p for p in people if p.before and p.after]
    groups = {name: [p for p in measured if p.cohort == name] for name in COHORTS}
    cohorts = {name: _cohort_stats(name, groups[name]) for name in COHORTS}

    contacted = groups["completed"] + groups["not_completed"]
    recommended = contacted + groups["not_contacted"]
    completers_vs_non = _did(groups["completed"], groups["not_completed"], sign)
    treated_vs_holdout = _did(recommended, groups["holdout"], sign)
    contacted_vs_holdout = _did(contacted, groups["holdout"], sign)
    headline: Headline = (
        "treated_vs_holdout" if len(groups["holdout"]) >= MIN_HOLDOUT else "completers_vs_non"
    )
    treated, control = (
        (recommended, groups["holdout"])
        if headline == "treated_vs_holdout"
        else (groups["completed"], groups["not_completed"])
    )
    estimate = treated_vs_holdout if headline == "treated_vs_holdout" else completers_vs_non
    mde = _mde(treated, control, sign)
    verdict = _verdict(estimate)
    trend = _pre_trend(treated, control, sign)
    recommended_recs = [rec for rec in recs if not rec.holdout]
    reach = _reach(recs)

    notes = _framing_notes(spec, direction, metric_settings is None)
    notes.append(_reach_note(reach))
    left_out = [p.cohort for p in people if not (p.before and p.after)]
    if left_out:
        counts = ", ".join(f"{name.replace('_', ' ')} {left_out.count(name)}" for name in COHORTS)
        who = "person" if len(left_out) == 1 else "people"
        notes.append(
            f"{len(left_out)} {who} without {spec.metric} values both before and after left out ({counts})."
        )
    if len(recs) > len(first):
        notes.append(
            f"{len(recs) - len(first)} repeat recommendation(s) to people already counted are left out of "
            "the KPI comparison (each person counts once, at their first) but count in the effort."
        )
    notes += _headline_notes(headline, groups["holdout"], treated_vs_holdout, contacted_vs_holdout)
    notes += _verdict_notes(verdict, estimate, mde, len(treated), len(control))
    notes.append(_pre_trend_note(trend))
    survival = _time_to_competency(recommended_recs, now)
    if survival is not None:
        notes.append(_time_note(survival, len(recommended_recs)))
    effort = _effort(recommended_recs)
    if effort.messages_sent or effort.completions:
        per = (
            f"{effort.messages_per_completion:.1f} per completion by a contacted person"
            if effort.messages_per_completion is not None
            else "no contacted person has completed yet"
        )
        notes.append(
            f"Effort: {effort.messages_sent} messages (recommendations and reminders) actually sent, {per}."
        )
    return MappingImpact(
        mapping_id=mapping.id,
        title=mapping.title,
        metric=spec.metric,
        direction=direction,
        before_days=spec.before_days,
        after_days=spec.after_days,
        cohorts=cohorts,
        completers_vs_non=completers_vs_non,
        treated_vs_holdout=treated_vs_holdout,
        contacted_vs_holdout=contacted_vs_holdout,
        headline=headline,
        mde=mde,
        verdict=verdict,
        pre_trend=trend,
        time_to_competency=survival,
        effort=effort,
        reach=reach,
        notes=notes,
    )


# --------------------------------------------------------------------------- loading


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _recommendations(conn: Connection, mapping_id: str, now: datetime) -> list[_Recommendation]:
    """The mapping's acted-on recommendations opened by ``now``, oldest first, with completion."""
    r = t.recommendations
    rows = conn.execute(
        select(r.c.id, r.c.person_id, r.c.holdout, r.c.opened_at, r.c.targets)
        .where(and_(r.c.mapping_id == mapping_id, r.c.state.in_(ACTED_ON), r.c.opened_at <= now))
        .order_by(r.c.opened_at, r.c.id)
    ).all()
    accounts = _accounts(conn, sorted({row.person_id for row in rows}))
    wanted: dict[tuple[str, str], set[int]] = defaultdict(set)  # (site, kind) -> item ids
    for row in rows:
        for target in row.targets:
            wanted[(target["site"], target["kind"])].add(int(target["item_id"]))
    done = _done_times(conn, wanted, accounts, now)
    delivered = _deliveries(conn, [int(row.id) for row in rows], now)
    found = []
    for row in rows:
        times = [
            when
            for target in row.targets
            if (user_id := accounts.get((row.person_id, target["site"]))) is not None
            for when in done.get((target["site"], target["kind"], int(target["item_id"]), user_id), [])
            if when >= row.opened_at
        ]
        sent, reason = delivered.get(int(row.id), (0, NO_MESSAGE))
        found.append(
            _Recommendation(
                row.id, row.person_id, row.holdout, row.opened_at, min(times, default=None), sent, reason
            )
        )
    return found


def _reason_text(state: str, error: str | None) -> str:
    """A groupable reason: the state in words and the head of the recorded reason (no dates)."""
    words = NOT_SENT_STATES.get(state, state)
    head = redact_text(error or "").split(":", 1)[0].strip()[:REASON_CHARS]
    return f"{words}: {head}" if head and state in ("cancelled", "suppressed", "waiting") else words


def _deliveries(conn: Connection, rec_ids: Sequence[int], now: datetime) -> dict[int, tuple[int, str | None]]:
    """recommendation id -> (learner messages sent by ``now``, why none was when none was).

    The reason comes from the recommendation message itself when there is one (a reminder is
    usually only "superseded" because the recommendation never went out), else the latest other.
    """
    a = t.actions
    found: dict[int, tuple[int, str | None]] = {}
    rows_by_rec: dict[int, list[Any]] = defaultdict(list)
    for chunk in _chunks(list(rec_ids)):
        query = (
            select(a.c.id, a.c.recommendation_id, a.c.purpose, a.c.state, a.c.last_error, a.c.sent_at)
            .where(
                and_(
                    a.c.recommendation_id.in_(chunk),
                    a.c.purpose.in_(MESSAGE_PURPOSES),
                    a.c.kind.in_(MESSAGE_KINDS),
                )
            )
            .order_by(a.c.id)
        )
        for row in conn.execute(query):
            rows_by_rec[int(row.recommendation_id)].append(row)
    for rec_id, rows in rows_by_rec.items():
        sent = sum(1 for r in rows if r.state == "sent" and (r.sent_at is None or r.sent_at <= now))
        if sent:
            found[rec_id] = (sent, None)
            continue
        recommend = [r for r in rows if r.purpose == "recommend"]
        row = (recommend or rows)[-1]
        found[rec_id] = (0, _reason_text(row.state, row.last_error))
    return found


def _accounts(conn: Connection, person_ids: Sequence[str]) -> dict[tuple[str, str], int]:
    """(person id, site) -> LMS user id."""
    i = t.identities
    found: dict[tuple[str, str], int] = {}
    for chunk in _chunks(person_ids):
        for row in conn.execute(select(i.c.person_id, i.c.site, i.c.user_id).where(i.c.person_id.in_(chunk))):
            found[(row.person_id, row.site)] = int(row.user_id)
    return found


def _done_times(
    conn: Connection,
    wanted: dict[tuple[str, str], set[int]],
    accounts: dict[tuple[str, str], int],
    now: datetime,
) -> dict[tuple[str, str, int, int], list[datetime]]:
    """(site, kind, item id, user id) -> when it was completed (competencies: rated proficient)."""
    c, cr = t.completions, t.competency_ratings
    users_by_site: dict[str, list[int]] = defaultdict(list)
    for (_person, site), user_id in accounts.items():
        users_by_site[site].append(user_id)
    done: dict[tuple[str, str, int, int], list[datetime]] = defaultdict(list)
    for (site, kind), items in wanted.items():
        for users in _chunks(sorted(users_by_site.get(site, []))):
            if kind == "competency":
                query = select(
                    cr.c.competency_id.label("item_id"), cr.c.user_id, cr.c.rated_at.label("at")
                ).where(
                    and_(
                        cr.c.site == site,
                        cr.c.competency_id.in_(sorted(items)),
                        cr.c.user_id.in_(users),
                        cr.c.proficient.is_(True),
                        cr.c.rated_at <= now,
                    )
                )
            else:
                query = select(c.c.item_id, c.c.user_id, c.c.completed_at.label("at")).where(
                    and_(
                        c.c.site == site,
                        c.c.kind == kind,
                        c.c.item_id.in_(sorted(items)),
                        c.c.user_id.in_(users),
                        c.c.completed_at <= now,
                    )
                )
            for row in conn.execute(query):
                done[(site, kind, int(row.item_id), int(row.user_id))].append(row.at)
    return done


def _periods(conn: Connection, metric: str, person_ids: Sequence[str]) -> dict[str, list[_Period]]:
    """person id -> the metric's periods, oldest first."""
    m = t.measurements
    found: dict[str, list[_Period]] = defaultdict(list)
    for chunk in _chunks(sorted(person_ids)):
        rows = conn.execute(
            select(m.c.person_id, m.c.period_start, m.c.period_end, m.c.value)
            .where(and_(m.c.metric == metric, m.c.person_id.in_(chunk)))
            .order_by(m.c.person_id, m.c.period_start)
        )
        for row in rows:
            found[row.person_id].append(_Period(row.period_start, row.period_end, float(row.value)))
    return found


# --------------------------------------------------------------------------- windows and cohorts


def _person(rec: _Recommendation, periods: list[_Period], spec: Measure) -> _Person:
    """Place one person in a cohort and pick their periods in the windows around the event.

    Before: periods that ended in the ``before_days`` before the day the recommendation opened.
    After: periods that began in the ``after_days`` after the day of completion (of the
    recommendation for people who did not complete, and for the holdout). Periods spanning
    the day itself are in neither window.
    """
    if rec.holdout:
        cohort = "holdout"
    elif not rec.sent:
        cohort = "not_contacted"
    else:
        cohort = "completed" if rec.done_at is not None else "not_completed"
    opened = rec.opened_at.date()
    start = rec.done_at.date() if cohort == "completed" and rec.done_at is not None else opened
    before_from = opened - timedelta(days=spec.before_days)
    after_to = start + timedelta(days=spec.after_days)
    return _Person(
        cohort=cohort,
        before=[p for p in periods if before_from <= p.end < opened],
        after=[p for p in periods if start < p.start <= after_to],
    )


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _before(person: _Person) -> float:
    return statistics.fmean(p.value for p in person.before)


def _after(person: _Person) -> float:
    return statistics.fmean(p.value for p in person.after)


def _cohort_stats(name: str, people: Sequence[_Person]) -> CohortStats:
    before = [_before(p) for p in people]
    after = [_after(p) for p in people]
    return CohortStats(
        name=name,
        n=len(people),
        mean_before=_mean(before),
        mean_after=_mean(after),
        mean_change=_mean([a - b for b, a in zip(before, after, strict=True)]),
        before=before,
        after=after,
    )


def _did(treated: Sequence[_Person], control: Sequence[_Person], sign: float) -> Estimate | None:
    """Difference in differences on values multiplied by ``sign`` (so positive = improved)."""
    return difference_in_differences(
        [sign * _before(p) for p in treated],
        [sign * _after(p) for p in treated],
        [sign * _before(p) for p in control],
        [sign * _after(p) for p in control],
    )


def _mde(treated: Sequence[_Person], control: Sequence[_Person], sign: float) -> float | None:
    if len(treated) < 2 or len(control) < 2:
        return None
    _, sd_treated = mean_and_sd([sign * (_after(p) - _before(p)) for p in treated])
    _, sd_control = mean_and_sd([sign * (_after(p) - _before(p)) for p in control])
    return minimum_detectable_effect(sd_treated, sd_control, len(treated), len(control))


def _verdict(estimate: Estimate | None) -> Verdict:
    """Works or harmful only when the interval excludes 0; an interval covering 0 is always
    narrower than the MDE, so such an estimate is never reported as an effect."""
    if estimate is None:
        return "insufficient data"
    if estimate.low > 0:
        return "works"
    if estimate.high < 0:
        return "harmful"
    return "no detectable effect"


def _pre_trend(treated: Sequence[_Person], control: Sequence[_Person], sign: float) -> Estimate | None:
    """Slopes over the last k periods before, k being the fewest anyone with 2 or more has."""
    with_two = [p for p in (*treated, *control) if len(p.before) >= 2]
    if not with_two:
        return None
    k = min(len(p.before) for p in with_two)

    def paths(people: Iterable[_Person]) -> list[list[float]]:
        return [[sign * q.value for q in p.before[-k:]] for p in people if len(p.before) >= 2]

    return pre_trend(paths(treated), paths(control))


# --------------------------------------------------------------------------- time and effort


def _days(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() / SECONDS_PER_DAY)


def _time_to_competency(recs: Sequence[_Recommendation], now: datetime) -> Survival | None:
    """Kaplan-Meier of days from recommendation to completion; the rest are censored at now."""
    if not recs:
        return None
    return kaplan_meier(
        [_days(rec.opened_at, rec.done_at or now) for rec in recs],
        [rec.done_at is not None for rec in recs],
    )


def _effort(recs: Sequence[_Recommendation]) -> Effort:
    """Messages actually sent for these recommendations, and per completion by a contacted person."""
    sent = sum(rec.sent for rec in recs)
    days = [_days(rec.opened_at, rec.done_at) for rec in recs if rec.done_at is not None]
    contacted_done = sum(1 for rec in recs if rec.done_at is not None and rec.sent)
    return Effort(
        recommendations=len(recs),
        completions=len(days),
        completion_rate=len(days) / len(recs) if recs else None,
        median_days_to_complete=statistics.median(days) if days else None,
        messages_sent=sent,
        messages_per_completion=sent / contacted_done if contacted_done else None,
        contacted_completions=contacted_done,
    )


def _reach(recs: Sequence[_Recommendation]) -> Reach:
    """The counts by what was delivered, over every acted-on recommendation (not only firsts)."""
    recommended = [rec for rec in recs if not rec.holdout]
    contacted = [rec for rec in recommended if rec.sent]
    reasons: dict[str, int] = defaultdict(int)
    for rec in recommended:
        if not rec.sent:
            reasons[rec.not_sent_reason or NO_MESSAGE] += 1
    return Reach(
        recommended=len(recommended),
        contacted=len(contacted),
        not_contacted=len(recommended) - len(contacted),
        not_contacted_reasons=dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
        holdout=sum(1 for rec in recs if rec.holdout),
        completed=sum(1 for rec in recommended if rec.done_at is not None),
        contacted_completed=sum(1 for rec in contacted if rec.done_at is not None),
        holdout_completed=sum(1 for rec in recs if rec.holdout and rec.done_at is not None),
    )


# --------------------------------------------------------------------------- notes


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _framing_notes(spec: Measure, direction: str, assumed: bool) -> list[str]:
    better = "higher" if direction == "higher" else "lower"
    notes = [
        f"Effect: the difference between cohorts in the per-person change of {spec.metric} (mean over "
        f"the {spec.after_days} days after minus the {spec.before_days} days before), signed so that "
        f"positive means it improved ({better} is better)."
    ]
    if assumed:
        notes.append(
            f"metric '{spec.metric}' has no [metrics.{spec.metric}] settings: assuming higher is better."
        )
    notes.append(
        "Regression to the mean: people were picked because their KPI was low, and a low KPI tends to "
        "recover on its own, so each cohort's own change overstates the effect; only the difference "
        "between cohorts picked by the same rule measures it."
    )
    return notes


def _interval(estimate: Estimate | None) -> str:
    return "" if estimate is None else f"95% interval {_signed(estimate.low)} to {_signed(estimate.high)}"


def _reach_note(reach: Reach) -> str:
    """The delivered-based counts in words: what "contacted" means, and why the rest were not."""
    text = (
        f"Reach: {reach.recommended} recommendation(s) outside the holdout; {reach.contacted} contacted "
        f"(a message was delivered: a recommendation or reminder actually sent), {reach.not_contacted} "
        "not contacted"
    )
    if reach.not_contacted_reasons:
        text += " (" + "; ".join(f"{why} {n}" for why, n in reach.not_contacted_reasons.items()) + ")"
    return (
        text + f"; {reach.holdout} in the holdout. The not contacted are neither completers nor "
        "non-completers, but stay in the intention-to-treat comparison with the holdout."
    )


def _headline_notes(
    headline: Headline,
    holdout: Sequence[_Person],
    itt: Estimate | None,
    delivered: Estimate | None,
) -> list[str]:
    secondary = (
        f" Delivered only (secondary: contacted vs holdout, {_interval(delivered)}): who could be "
        "reached is not random, so this figure can be biased either way."
        if delivered is not None
        else ""
    )
    if headline == "treated_vs_holdout":
        return [
            "Compared (intention to treat): everyone recommended, contacted or not, against the random "
            "holdout, never contacted; nobody chose their group, so self-selection cannot explain a "
            "difference, and it measures what recommending does, including the people a message "
            f"never reached.{secondary}"
        ]
    notes = [
        "Compared: contacted people who completed against contacted people who did not. They "
        "chose whether to complete, so part of a difference may be who they are rather than the "
        "learning; a large enough holdout (measure.holdout_percent) removes that doubt."
    ]
    if holdout:
        detail = f" (intention to treat, recommended vs holdout, {_interval(itt)})" if itt is not None else ""
        notes.append(
            f"The holdout has {len(holdout)} people with KPI values before and after, fewer than the "
            f"{MIN_HOLDOUT} it needs to lead{detail}.{secondary}"
        )
    return notes


def _verdict_notes(
    verdict: Verdict, estimate: Estimate | None, mde: float | None, n_treated: int, n_control: int
) -> list[str]:
    if estimate is None:
        return [
            f"Insufficient data: a comparison needs at least 2 people with KPI values in each group "
            f"(here {n_treated} and {n_control})."
        ]
    interval = f"{_signed(estimate.low)} to {_signed(estimate.high)}"
    if verdict == "no detectable effect":
        floor = (
            f" these cohorts could only reliably detect an effect of {mde:.2f} or more, and" if mde else ""
        )
        return [
            f"No detectable effect: the 95% interval ({interval}) includes 0;{floor} a smaller true "
            "effect cannot be told apart from noise."
        ]
    notes = [f"The 95% interval ({interval}) excludes 0."]
    if mde is not None and abs(estimate.effect) < mde:
        notes.append(
            f"The estimate is below the minimum detectable effect ({mde:.2f}): estimates that only just "
            "clear the noise tend to overstate the true effect."
        )
    return notes


def _time_note(survival: Survival, recommended: int) -> str:
    reached = sum(survival.events)
    start = (
        f"Time to complete (Kaplan-Meier, from the recommendation; the {recommended - reached} not done yet "
        f"are censored at now): {reached} of {recommended} recommendations completed"
    )
    if survival.median is None:
        return f"{start}; the median is not reached yet (fewer than half have completed)."
    quartiles = (
        f", quartiles {survival.q1:.0f} to {survival.q3:.0f}"
        if survival.q1 is not None and survival.q3 is not None
        else ""
    )
    return f"{start}, median {survival.median:.0f} days{quartiles}."


def _pre_trend_note(trend: Estimate | None) -> str:
    if trend is None:
        return "Pre-trend not checked: it needs 2 or more periods before the recommendation for 2 or more people per group."
    if trend.covers(0.0):
        return (
            "Pre-trend check: no sign that the groups were already drifting apart before the recommendation "
            f"(slope difference per period, 95% interval {_signed(trend.low)} to {_signed(trend.high)})."
        )
    return (
        f"Pre-trend warning: the groups were already drifting apart before the recommendation "
        f"({_signed(trend.effect)} per period, 95% interval {_signed(trend.low)} to {_signed(trend.high)}), "
        "so the difference in differences mixes that drift into the effect."
    )
