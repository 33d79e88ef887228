"""Pure evaluation of audiences and triggers against one person's facts.

Every check returns a :class:`Verdict`: whether it holds and the facts, in plain words, that
decided it ("csat 3.6 < target 4.2 in 2026-10"). Nothing here touches the database, so the
same facts always give the same answer, whatever the order of evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from datetime import date, datetime

from bridge.facts import Facts, GoalState, Point
from bridge.mapping import model as m
from bridge.mapping.peers import PeerRanks
from bridge.records import Target
from bridge.settings import MetricSettings


@dataclass(frozen=True)
class Verdict:
    """Whether a check holds, and its facts: ``facts`` for administrators (``explain``: metric ids,
    operators, thresholds); ``words`` the same facts as the learner reads them in a message (the
    metric's title, "below the 4.2 target"), ``about`` as their manager reads them ("their …").
    Both are None where the facts read plainly as they are."""

    ok: bool
    facts: tuple[str, ...] = ()
    words: tuple[str, ...] | None = field(default=None, compare=False)
    about: tuple[str, ...] | None = field(default=None, compare=False)

    @staticmethod
    def of(ok: bool, *facts: str) -> Verdict:
        return Verdict(ok, tuple(facts))

    @staticmethod
    def said(ok: bool, fact: str, words: Callable[[str], str]) -> Verdict:
        """``words(whose)`` says the fact of the person's ``whose`` ("your" or "their")."""
        return Verdict(ok, (fact,), (words("your"),), (words("their"),))

    @property
    def learner_words(self) -> tuple[str, ...]:
        return self.facts if self.words is None else self.words

    @property
    def manager_words(self) -> tuple[str, ...]:
        return self.facts if self.about is None else self.about


@dataclass
class EvalContext:
    now: datetime
    metrics: MappingType[str, MetricSettings] = field(default_factory=dict)
    targets: MappingType[tuple[str, str, str], Target | None] = field(default_factory=dict)
    competencies: MappingType[tuple[str, str], Target | None] = field(default_factory=dict)
    peers: PeerRanks = field(default_factory=PeerRanks)
    employee_numbers: MappingType[str, str] = field(default_factory=dict)  # employee number -> person id

    @property
    def today(self) -> date:
        return self.now.date()

    def target(self, site: str, kind: str, ref: str) -> Target | None:
        return self.targets.get((site, kind, ref))

    def competency(self, site: str, ref: str) -> Target | None:
        return self.competencies.get((site, ref))


def fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def period_label(point: Point) -> str:
    start, end = point.period_start, point.period_end
    if start.day == 1 and (end - start).days in range(27, 31) and end.month == start.month:
        return start.strftime("%Y-%m")
    return f"{start.isoformat()}..{end.isoformat()}"


# --------------------------------------------------------------------------- audience


def _matches_unit(value: str | None, wanted: list[str]) -> str | None:
    if not value:
        return None
    folded = value.casefold()
    for unit in wanted:
        u = unit.casefold()
        if folded == u or folded.startswith(u + "/") or folded.startswith(u + " > "):
            return unit
    return None


def _equals(value: str | None, wanted: list[str]) -> str | None:
    if not value:
        return None
    folded = value.casefold()
    return next((w for w in wanted if w.casefold() == folded), None)


def audience(aud: m.Audience, facts: Facts, ctx: EvalContext, explain: bool = True) -> Verdict:
    """Whether the person is in the audience; with ``explain``, the facts that decided it.

    Without ``explain`` no text is built: the engine's fast path asks this first for every
    person and mapping, and most answers are "no".
    """
    person = facts.person
    checks: list[tuple[bool, Callable[[], tuple[str, ...]]]] = []
    if aud.department is not None:
        hit = _matches_unit(person.department, aud.department) is not None
        listed = ", ".join(aud.department)
        checks.append(
            (
                hit,
                lambda: (
                    f"department {person.department or 'unknown'}" + ("" if hit else f" not in {listed}"),
                ),
            )
        )
    if aud.job_title is not None:
        title_hit = _equals(person.job_title, aud.job_title) is not None
        checks.append(
            (
                title_hit,
                lambda: (
                    f"job title {person.job_title or 'unknown'}" + ("" if title_hit else " not listed"),
                ),
            )
        )
    if aud.location is not None:
        place_hit = _equals(person.location, aud.location) is not None
        checks.append(
            (
                place_hit,
                lambda: (f"location {person.location or 'unknown'}" + ("" if place_hit else " not listed"),),
            )
        )
    if aud.manager is not None:
        managed = person.manager_id in {ctx.employee_numbers.get(ref, ref) for ref in aud.manager}
        checks.append(
            (
                managed,
                lambda: (f"manager {person.manager_id or 'none'}" + ("" if managed else " not listed"),),
            )
        )
    if aud.people is not None:
        named = person.person_id in aud.people or (person.employee_number or "") in aud.people
        checks.append((named, lambda: ("listed by name" if named else "not listed",)))
    if aud.started_within_days is not None or aud.started_more_than_days_ago is not None:
        tenure = _tenure(aud, person.start_date, ctx.today)
        checks.append((tenure.ok, lambda: tenure.facts))
    for sub in aud.all or []:
        inner = audience(sub, facts, ctx, explain)
        checks.append((inner.ok, lambda inner=inner: inner.facts))  # type: ignore[misc]
    if aud.any is not None:
        branches = [audience(sub, facts, ctx, explain) for sub in aud.any]
        hits = [b for b in branches if b.ok]
        checks.append((bool(hits), lambda: tuple(f for b in (hits or branches) for f in b.facts)))
    if aud.not_ is not None:
        negated = audience(aud.not_, facts, ctx, explain)
        checks.append((not negated.ok, lambda: tuple(f"not ({f})" for f in negated.facts)))
    if not checks:
        return Verdict.of(True, "everyone")
    failed = [facts_of for ok, facts_of in checks if not ok]
    if not explain:
        return Verdict(not failed)
    chosen = failed or [facts_of for _, facts_of in checks]
    return Verdict(not failed, tuple(f for facts_of in chosen for f in facts_of()))


def _tenure(aud: m.Audience, start: date | None, today: date) -> Verdict:
    if start is None:
        return Verdict.of(False, "start date unknown")
    days = (today - start).days
    ok = True
    if aud.started_within_days is not None:
        ok &= days <= aud.started_within_days
    if aud.started_more_than_days_ago is not None:
        ok &= days > aud.started_more_than_days_ago
    return Verdict.of(ok, f"started {start.isoformat()} ({days} days ago)")


def _joined(ok: bool, chosen: list[Verdict]) -> Verdict:
    return Verdict(
        ok,
        tuple(f for c in chosen for f in c.facts),
        tuple(w for c in chosen for w in c.learner_words),
        tuple(w for c in chosen for w in c.manager_words),
    )


def _all(checks: list[Verdict]) -> Verdict:
    failed = [c for c in checks if not c.ok]
    return _joined(not failed, failed or checks)


# --------------------------------------------------------------------------- triggers


def trigger(node: m.Trigger, facts: Facts, ctx: EvalContext) -> Verdict:
    if node.kpi is not None:
        return kpi_threshold(node.kpi, facts, ctx)
    if node.kpi_trend is not None:
        return kpi_trend(node.kpi_trend, facts, ctx)
    if node.kpi_percentile is not None:
        return kpi_percentile(node.kpi_percentile, facts, ctx)
    if node.review_rating is not None:
        return review_rating(node.review_rating, facts)
    if node.competency is not None:
        return competency(node.competency, facts, ctx)
    if node.completion_older_than is not None:
        return completion_older_than(node.completion_older_than, facts, ctx)
    if node.completion_missing is not None:
        return completion_missing(node.completion_missing, facts, ctx)
    if node.certification_due is not None:
        return certification_due(node.certification_due, facts, ctx)
    if node.goal is not None:
        return goal(node.goal, facts, ctx)
    if node.all is not None:
        return _all([trigger(sub, facts, ctx) for sub in node.all])
    if node.any is not None:
        branches = [trigger(sub, facts, ctx) for sub in node.any]
        hits = [b for b in branches if b.ok]
        return _joined(bool(hits), hits or branches)
    if node.not_ is not None:
        inner = trigger(node.not_, facts, ctx)
        return Verdict(not inner.ok, tuple(f"not ({f})" for f in inner.facts))
    raise AssertionError("a validated trigger has exactly one kind")


def kpi_threshold(rule: m.KpiThreshold, facts: Facts, ctx: EvalContext) -> Verdict:
    series = facts.kpis.get(rule.metric)
    if not series:
        return Verdict.of(False, f"no {rule.metric} data")
    window = series[-rule.periods :]
    value = sum(p.value for p in window) / len(window)
    bound = rule.below if rule.below is not None else rule.above
    settings = ctx.metrics.get(rule.metric)
    if bound == "target":
        if settings is None or settings.target is None:
            return Verdict.of(False, f"{rule.metric} has no target configured")
        limit, limit_name = settings.target, f"target {fmt(settings.target)}"
    else:
        assert isinstance(bound, float | int)
        limit, limit_name = float(bound), fmt(float(bound))
    what = (
        f"{rule.metric} {fmt(value)}"
        if rule.periods == 1
        else f"{rule.metric} average {fmt(value)} over {len(window)} periods"
    )
    when = f"in {period_label(window[-1])}" if rule.periods == 1 else f"to {period_label(window[-1])}"
    name = metric_name(rule.metric, ctx)
    said = (
        f"was {fmt(value)} in {period_label(window[-1])}"
        if len(window) == 1
        else f"averaged {fmt(value)} over the {len(window)} periods to {period_label(window[-1])}"
    )
    limit_said = f"the {fmt(limit)} target" if bound == "target" else fmt(limit)
    if rule.below is not None:
        ok = value < limit
        side = "below" if ok else "not below"
        return Verdict.said(
            ok,
            f"{what} {'<' if ok else '>='} {limit_name} {when}",
            lambda whose: f"{whose} {name} {said}, {side} {limit_said}",
        )
    ok = value > limit
    side = "above" if ok else "not above"
    return Verdict.said(
        ok,
        f"{what} {'>' if ok else '<='} {limit_name} {when}",
        lambda whose: f"{whose} {name} {said}, {side} {limit_said}",
    )


def metric_name(metric: str, ctx: EvalContext) -> str:
    """A metric as a learner reads it: its configured title ("customer satisfaction"), else its id
    in words; acronyms keep their case."""
    settings = ctx.metrics.get(metric)
    title = (settings.title if settings is not None else "") or metric.replace("_", " ")
    return title if title[:2].isupper() else title[:1].lower() + title[1:]


def kpi_trend(rule: m.KpiTrend, facts: Facts, ctx: EvalContext) -> Verdict:
    series = facts.kpis.get(rule.metric) or []
    if len(series) <= rule.periods:
        return Verdict.of(False, f"{rule.metric}: fewer than {rule.periods + 1} periods of data")
    old, new = series[-1 - rule.periods], series[-1]
    change = new.value - old.value
    percent = (change / abs(old.value) * 100) if old.value else None
    span = f"from {fmt(old.value)} in {period_label(old)} to {fmt(new.value)} in {period_label(new)}"
    name = metric_name(rule.metric, ctx)

    def said(ok: bool, text: str) -> Verdict:
        return Verdict.said(ok, f"{rule.metric} {text}", lambda whose: f"{whose} {name} {text}")

    if rule.fell_by is not None:
        ok = -change >= rule.fell_by
        return said(ok, f"fell by {fmt(-change)} {span}" if change < 0 else f"did not fall ({span})")
    if rule.rose_by is not None:
        ok = change >= rule.rose_by
        return said(ok, f"rose by {fmt(change)} {span}" if change > 0 else f"did not rise ({span})")
    if percent is None:
        return Verdict.of(
            False, f"{rule.metric} was 0 in {period_label(old)}; a percentage change is undefined"
        )
    if rule.fell_by_percent is not None:
        ok = -percent >= rule.fell_by_percent
        return said(ok, f"fell {fmt(-percent)}% {span}" if percent < 0 else f"did not fall ({span})")
    assert rule.rose_by_percent is not None
    ok = percent >= rule.rose_by_percent
    return said(ok, f"rose {fmt(percent)}% {span}" if percent > 0 else f"did not rise ({span})")


def kpi_percentile(rule: m.KpiPercentile, facts: Facts, ctx: EvalContext) -> Verdict:
    settings = ctx.metrics.get(rule.metric)
    higher_is_better = settings is None or settings.direction == "higher"
    placed = ctx.peers.place(rule.metric, rule.peer_group, facts.person, higher_is_better)
    group = rule.peer_group if rule.peer_group == "everyone" else f"{rule.peer_group} peers"
    if placed is None:
        return Verdict.of(False, f"no {rule.metric} value in the latest period")
    worse, better, size = placed
    if size < rule.min_peers:
        return Verdict.of(False, f"only {size} {group} with {rule.metric} (fewer than {rule.min_peers})")
    name = metric_name(rule.metric, ctx)
    if rule.bottom_percent is not None:
        ok = worse < size * rule.bottom_percent / 100
        place = f"the bottom {fmt(rule.bottom_percent)}% of {size} {group}"
        return Verdict.said(
            ok,
            f"{rule.metric} {'in' if ok else 'not in'} {place} ({worse} below)",
            lambda whose: f"{whose} {name} is {'in' if ok else 'not in'} {place}",
        )
    assert rule.top_percent is not None
    ok = better < size * rule.top_percent / 100
    place = f"the top {fmt(rule.top_percent)}% of {size} {group}"
    return Verdict.said(
        ok,
        f"{rule.metric} {'in' if ok else 'not in'} {place} ({better} above)",
        lambda whose: f"{whose} {name} is {'in' if ok else 'not in'} {place}",
    )


def review_rating(rule: m.ReviewRatingTrigger, facts: Facts) -> Verdict:
    rating = facts.reviews.get((rule.competency.casefold(), rule.rater))
    name = f"{rule.rater} rating for {rule.competency}"
    if rating is None:
        return Verdict.of(False, f"no {name}")
    period = rating.period_end.isoformat()
    if rating.value is None:
        return Verdict.of(
            False,
            f"{name} is unrated ({rating.label or 'no value'}) for the review ending {period}",
        )
    shown = rating.label or fmt(rating.value)

    # As the review system names it: "your review ending 2026-06-30 rated your Coaching 'Does not meet'".
    def words(whose: str) -> str:
        return f"{whose} {rule.rater} review ending {period} rated {whose} {rule.competency} '{shown}'"

    if rule.at_or_below is not None:
        ok = rating.value <= rule.at_or_below
        return Verdict.said(
            ok,
            f"{name} {shown} {'<=' if ok else '>'} {fmt(rule.at_or_below)} (review ending {period})",
            words,
        )
    normalised = rating.normalised
    assert rule.normalised_at_or_below is not None
    if normalised is None:
        return Verdict.of(False, f"{name} has no scale to normalise against")
    ok = normalised <= rule.normalised_at_or_below
    return Verdict.said(
        ok,
        f"{name} {shown} = {fmt(normalised)} of scale {'<=' if ok else '>'} {fmt(rule.normalised_at_or_below)} (review ending {period})",
        words,
    )


def competency(rule: m.CompetencyTrigger, facts: Facts, ctx: EvalContext) -> Verdict:
    target = ctx.competency(rule.site, rule.competency)
    if target is None:
        return Verdict.of(False, f"competency {rule.competency} not found on {rule.site}")
    rating = facts.competencies.get((rule.site, target.item_id))
    rated = rating is not None and rating.proficient is not None
    proficient = rating is not None and rating.proficient is True
    state = "proficient" if proficient else ("not proficient" if rated else "not rated")
    grade = f" ({rating.grade_name})" if rating is not None and rating.grade_name else ""
    ok = {
        "not_proficient": rated and not proficient,
        "not_rated": not rated,
        "not_proficient_or_not_rated": not proficient,
    }[rule.state]
    return Verdict.of(ok, f"competency {target.name or rule.competency}: {state}{grade}")


def completed_at(facts: Facts, target: Target) -> datetime | None:
    return facts.completions.get((target.site, target.kind, target.item_id))


def completion_older_than(rule: m.CompletionOlderThan, facts: Facts, ctx: EvalContext) -> Verdict:
    target = ctx.target(rule.site, "course", rule.course)
    if target is None:
        return Verdict.of(False, f"course {rule.course} not found on {rule.site}")
    done = completed_at(facts, target)
    if done is None:
        return Verdict.of(rule.or_never_completed, f"{target.name} never completed")
    age = (ctx.now - done).days
    ok = age > rule.older_than_days
    return Verdict.of(
        ok,
        f"{target.name} last completed {done.date().isoformat()} ({age} days ago{', due for a refresher' if ok else ''})",
    )


def certification_due(rule: m.CertificationDue, facts: Facts, ctx: EvalContext) -> Verdict:
    target = ctx.target(rule.site, "certification", rule.certification)
    if target is None:
        return Verdict.of(False, f"certification {rule.certification} not found on {rule.site}")
    renewal = facts.renewals.get((target.site, target.item_id))
    if renewal is None or completed_at(facts, target) is None:
        return Verdict.of(rule.or_never_certified, f"never certified in {target.name}")
    if renewal.expires_at is not None and renewal.expires_at <= ctx.now:
        return Verdict.of(True, f"{target.name} expired on {renewal.expires_at.date().isoformat()}")
    if renewal.window_opens_at is not None and renewal.window_opens_at <= ctx.now:
        expiry = f", expires {renewal.expires_at.date().isoformat()}" if renewal.expires_at else ""
        return Verdict.of(
            True,
            f"{target.name} recertification window open since {renewal.window_opens_at.date().isoformat()}{expiry}",
        )
    opens = renewal.window_opens_at.date().isoformat() if renewal.window_opens_at else "unknown"
    return Verdict.of(False, f"{target.name} valid; recertification window opens {opens}")


def completion_missing(rule: m.CompletionMissing, facts: Facts, ctx: EvalContext) -> Verdict:
    target = ctx.target(rule.site, "course", rule.course)
    if target is None:
        return Verdict.of(False, f"course {rule.course} not found on {rule.site}")
    start = facts.person.start_date
    if start is None:
        return Verdict.of(False, "start date unknown")
    done = completed_at(facts, target)
    if done is not None:
        return Verdict.of(False, f"{target.name} completed {done.date().isoformat()}")
    days = (ctx.today - start).days
    ok = days >= rule.days_after_start
    return Verdict.of(ok, f"{target.name} not completed {days} days after starting on {start.isoformat()}")


GOAL_FACTS_SHOWN = 3
ACHIEVED = 100.0


def goal_status(rule: m.GoalTrigger, item: GoalState, today: date) -> tuple[str, str]:
    """("missed" | "behind" | "achieved" | "on track" | "not judged", the goal in plain words)."""
    name = f"goal '{item.title}'"
    if item.progress is None:
        return "not judged", f"{name}: no progress reported"
    progress = f"{fmt(item.progress)}%"
    if item.progress >= ACHIEVED:
        return "achieved", f"{name} achieved ({progress})"
    if item.due_date is None:
        return "not judged", f"{name}: {progress}, no due date"
    due = item.due_date.isoformat()
    days = (item.due_date - today).days
    if days < 0:
        if -days <= rule.missed_within_days:
            return "missed", f"{name} missed: {progress} at its due date {due}"
        return "not judged", f"{name} missed on {due}, more than {rule.missed_within_days} days ago"
    if days <= rule.behind_due_within_days and item.progress < rule.behind_progress_below:
        return "behind", f"{name} behind: {progress} with {days} days left (due {due})"
    return "on track", f"{name} on track: {progress}, due {due}"


def goal(rule: m.GoalTrigger, facts: Facts, ctx: EvalContext) -> Verdict:
    words = [w.casefold() for w in rule.title_contains or []]
    candidates = [g for g in facts.goals if not words or any(w in g.title.casefold() for w in words)]
    if not candidates:
        matching = (
            f" with {' or '.join(repr(w) for w in rule.title_contains or [])} in the title" if words else ""
        )
        return Verdict.of(False, f"no goal{matching} in the HR data")
    wanted = {"missed": {"missed"}, "behind": {"behind"}, "missed_or_behind": {"missed", "behind"}}[
        rule.status
    ]
    judged = [goal_status(rule, g, ctx.today) for g in candidates]
    hits = [said for status, said in judged if status in wanted]
    shown = hits or [said for _status, said in judged]
    more = len(shown) - GOAL_FACTS_SHOWN
    facts_said = shown[:GOAL_FACTS_SHOWN] + ([f"and {more} more goal(s)"] if more > 0 else [])
    return Verdict(bool(hits), tuple(facts_said))
