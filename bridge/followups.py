"""Follow-up: reminders until completion, manager escalation, reinforcement after completion,
and a prompt to the manager to observe the new behaviour.

Each follow-up is queued when it falls due, with a deterministic key, so a cycle that runs
twice queues nothing twice, and a learner who completes gets nothing more (pending reminders are
cancelled when the recommendation closes). When the service was down past several steps, only
the latest is sent; the missed ones are recorded as superseded instead of arriving in a burst.
Items for managers are collected into one daily digest per manager, unless the mapping has its
own template for them (:mod:`bridge.manager_followups`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, false, or_, select, update

from bridge import compose
from bridge import manager_followups as mf
from bridge.act import message_context, sending_slot
from bridge.facts import NO_KPIS, Facts, iter_facts, load_people
from bridge.mapping import evaluate as ev
from bridge.mapping import model as m
from bridge.mapping import templates
from bridge.mapping.loader import MappingSet
from bridge.outbox import NewAction, action_key, enqueue, target_from_json
from bridge.ports import ActionKind
from bridge.records import Person, Target
from bridge.settings import Settings
from bridge.store import schema as t
from bridge.timing import zone

CHUNK = 500
DIGEST_SCHEDULE = m.Schedule()  # weekdays, 09:00-17:00 in the manager's time zone


@dataclass
class FollowUpReport:
    queued: int = 0
    digests: int = 0


def _due_steps(start: datetime, days: Sequence[int], now: datetime) -> list[int]:
    return [d for d in days if start + timedelta(days=d) <= now]


def _learner_channels(mapping: m.Mapping, target: Target) -> list[str]:
    for rec in mapping.recommend:
        if rec.site == target.site and rec.kind == target.kind:
            return [c for c in rec.channels if c in ("message", "email")] or ["message"]
    return ["message"]


def completed_target(rec: Any, facts: Facts) -> Target | None:
    """The item whose completion closed the recommendation (not simply the first one listed)."""
    targets = [tg for tg in (target_from_json(x) for x in rec.targets or []) if tg is not None]
    done = [(tg, ev.completed_at(facts, tg)) for tg in targets]
    exact = [tg for tg, when in done if when is not None and when == rec.completed_at]
    any_done = [tg for tg, when in done if when is not None]
    chosen = exact or any_done or targets
    return chosen[0] if chosen else None


def _learner_actions(
    mapping: m.Mapping,
    rec: Any,
    target: Target,
    facts: Facts,
    purpose: str,
    steps: list[int],
    context: dict[str, Any],
    settings: Settings,
    now: datetime,
) -> list[NewAction]:
    """The latest due step is queued; earlier unsent steps are recorded as superseded."""
    person = facts.person
    if not steps:
        return []
    template_kind: m.MessageKind = "reminder" if purpose == "reminder" else "reinforcement"
    template = templates.template_for(mapping, template_kind, person.locale)
    schedule = schedule_days(mapping, purpose)
    context = {
        **context,
        "step": steps[-1],
        "step_number": _number(schedule, steps[-1]),
        "steps": len(schedule),
    }
    failed: str | None = None
    try:
        rendered = templates.render(template, context)  # a draft: delivery renders it again when sent
    except templates.TemplateFailed as exc:
        rendered, failed = (
            templates.Rendered("", "", ""),
            compose.template_failed(mapping.id, purpose, exc, person=person.person_id),
        )
    send_at, window = sending_slot(mapping.schedule, person.timezone, settings, now)
    account = facts.accounts.get(target.site)
    actions = []
    for channel in _learner_channels(mapping, target):
        kind = ActionKind(channel)
        for step in steps:
            latest = step == steps[-1]
            state, reason = (
                ("pending", None) if latest else ("cancelled", f"superseded by the day-{steps[-1]} {purpose}")
            )
            if latest and kind is ActionKind.MESSAGE and (account is None or not account.usable):
                state, reason = "suppressed", f"no usable account on site '{target.site}'"
            if latest and failed:
                state, reason = "dead", failed
            actions.append(
                NewAction(
                    key=action_key(
                        mapping.id, person.person_id, rec.episode, purpose, channel, target.key, step
                    ),
                    purpose=purpose,
                    kind=kind,
                    site="email" if kind is ActionKind.EMAIL else target.site,
                    due_at=send_at,
                    recommendation_id=rec.id,
                    mapping_id=mapping.id,
                    person_id=person.person_id,
                    recipient_person_id=person.person_id,
                    recipient_user_id=account.user_id if account else None,
                    recipient_email=person.email,
                    subject=rendered.subject,
                    body_html=rendered.html,
                    body_text=rendered.text,
                    target=target,
                    options={
                        **window,
                        "render": compose.render_spec(
                            template, purpose, mapping, step, _number(schedule, step), len(schedule)
                        ),
                    },
                    state=state,
                    reason=reason,
                )
            )
    return actions


def schedule_days(mapping: m.Mapping, purpose: str) -> list[int]:
    f = mapping.follow_up
    return f.reminder_days() if purpose == "reminder" else list(f.reinforce_after_days)


def _number(schedule: list[int], step: int) -> int:
    return schedule.index(step) + 1 if step in schedule else len(schedule)


def _recommendations(conn: Connection, where: Any) -> list[Any]:
    r = t.recommendations
    return list(conn.execute(select(r).where(where).order_by(r.c.person_id, r.c.id)))


def _open_steps(f: m.FollowUp) -> list[int]:
    """The days after the recommendation that may hold a step: every reminder of the schedule
    (after the recommendation, before and after the due date, repeats) and the escalation. The
    manager's copy has no day: it is due once the learner's own message went (``_copy_due``)."""
    escalation = f.escalate_to_manager_after_days
    return [*f.reminder_days(), *([escalation] if escalation is not None else [])]


def _copy_due(mapping_ids: list[str]) -> Any:
    """Open recommendations of mappings that copy the manager whose learner has been sent the
    recommendation and whose manager's copy is not made yet (an action, sent or suppressed, or a
    line of the digest): each is read until its copy exists, then never again for it."""
    r, a, d = t.recommendations, t.actions, t.digest_items
    if not mapping_ids:
        return false()
    sent = select(a.c.id).where(a.c.recommendation_id == r.c.id, *mf.RECOMMEND_SENT)
    copied = select(a.c.id).where(a.c.recommendation_id == r.c.id, a.c.purpose == "manager_copy")
    in_digest = select(d.c.id).where(d.c.recommendation_id == r.c.id, d.c.kind == "manager_copy")
    return and_(r.c.mapping_id.in_(mapping_ids), sent.exists(), ~copied.exists(), ~in_digest.exists())


def _completed_steps(f: m.FollowUp) -> list[int]:
    """The days after the completion that may hold a step: each reinforcement and the observe prompt."""
    observe = f.manager_observe_after_days
    return [*f.reinforce_after_days, *([observe] if observe is not None else [])]


def _something_due(start: Any, first_days: dict[str, int | None], now: datetime) -> Any:
    """Recommendations of which at least one follow-up step is due: ``start`` (when the schedule
    began) at least its mapping's earliest step ago. A recommendation that is not yet at its
    first step has nothing to do, so its facts are never loaded (the steady cycle costs what is
    due, not every open recommendation)."""
    r = t.recommendations
    due = [
        and_(r.c.mapping_id == mapping_id, start <= now - timedelta(days=day))
        for mapping_id, day in sorted(first_days.items())
        if day is not None
    ]
    return or_(false(), *due)


def follow_up(engine: Engine, mapping_set: MappingSet, settings: Settings, now: datetime) -> FollowUpReport:
    report = FollowUpReport()
    mappings = {mp.id: mp for mp in mapping_set.enabled}
    if not mappings:
        return report
    r = t.recommendations
    longest = max(max([0, *_completed_steps(mp.follow_up)]) for mp in mappings.values())
    horizon = now - timedelta(days=longest + 2)
    first_reminder = {mp.id: min(_open_steps(mp.follow_up), default=None) for mp in mappings.values()}
    first_reinforcement = {
        mp.id: min(_completed_steps(mp.follow_up), default=None) for mp in mappings.values()
    }
    with engine.connect() as conn:
        open_recs = _recommendations(
            conn,
            and_(
                r.c.state == "open",
                r.c.holdout.is_(False),
                r.c.mapping_id.in_(sorted(mappings)),
                or_(
                    _something_due(r.c.opened_at, first_reminder, now),
                    _copy_due(
                        sorted(mp.id for mp in mappings.values() if mp.follow_up.copy_manager_on_recommend)
                    ),
                ),
            ),
        )
        completed_recs = _recommendations(
            conn,
            and_(
                r.c.state == "closed",
                r.c.holdout.is_(False),
                r.c.completed_at.is_not(None),
                r.c.completed_at >= horizon,
                r.c.mapping_id.in_(sorted(mappings)),
                _something_due(r.c.completed_at, first_reinforcement, now),
            ),
        )
    for start in range(0, max(len(open_recs), len(completed_recs)), CHUNK):
        with engine.begin() as conn:
            _chunk(
                conn,
                open_recs[start : start + CHUNK],
                completed_recs[start : start + CHUNK],
                mappings,
                settings,
                now,
                report,
            )
    with engine.begin() as conn:
        report.digests = build_digests(conn, settings, now)
    return report


def _chunk(
    conn: Connection,
    open_recs: list[Any],
    completed_recs: list[Any],
    mappings: dict[str, m.Mapping],
    settings: Settings,
    now: datetime,
    report: FollowUpReport,
) -> None:
    person_ids = {rec.person_id for rec in [*open_recs, *completed_recs]}
    facts = {f.person.person_id: f for f in iter_facts(conn, person_ids, NO_KPIS)}
    managers = load_people(conn, sorted({f.person.manager_id for f in facts.values() if f.person.manager_id}))
    actions: list[NewAction] = []
    sent_to_learner = mf.recommendations_sent(conn, [rec.id for rec in open_recs])
    for rec in open_recs:
        mapping, person_facts = mappings[rec.mapping_id], facts.get(rec.person_id)
        if person_facts is None or not person_facts.person.active or not rec.targets:
            continue
        target = target_from_json(rec.targets[0])
        assert target is not None
        reason = "; ".join(rec.explanation.get("facts", []))
        context = message_context(mapping, person_facts, target, reason, rec.opened_at)
        steps = _due_steps(rec.opened_at, schedule_days(mapping, "reminder"), now)
        actions.extend(
            _learner_actions(mapping, rec, target, person_facts, "reminder", steps, context, settings, now)
        )
        escalate = mapping.follow_up.escalate_to_manager_after_days
        manager = managers.get(person_facts.person.manager_id or "")
        if escalate is not None and manager is not None and rec.opened_at + timedelta(days=escalate) <= now:
            due = context["due_date"]
            text = (
                f"{person_facts.person.full_name} has not completed {target.name} yet "
                f"(recommended {context['opened_on']}{f', due {due}' if due else ''}). Why: {reason}."
            )
            actions.extend(
                mf.to_manager(
                    conn,
                    mapping,
                    rec,
                    target,
                    person_facts,
                    manager,
                    "escalation",
                    escalate,
                    text,
                    settings,
                    now,
                )
            )
        if mapping.follow_up.copy_manager_on_recommend and rec.id in sent_to_learner:
            actions.extend(
                mf.manager_copy(conn, mapping, rec, target, person_facts, manager, reason, settings, now)
            )
    for rec in completed_recs:
        mapping, person_facts = mappings[rec.mapping_id], facts.get(rec.person_id)
        if person_facts is None or not person_facts.person.active or not rec.targets:
            continue
        target = completed_target(rec, person_facts)
        assert target is not None
        context = message_context(mapping, person_facts, target, rec.close_reason or "", rec.opened_at)
        context["completed_on"] = rec.completed_at.date().isoformat()
        steps = _due_steps(rec.completed_at, mapping.follow_up.reinforce_after_days, now)
        actions.extend(
            _learner_actions(
                mapping, rec, target, person_facts, "reinforcement", steps, context, settings, now
            )
        )
        after = mapping.follow_up.manager_observe_after_days
        manager = managers.get(person_facts.person.manager_id or "")
        if after is not None and manager is not None and rec.completed_at + timedelta(days=after) <= now:
            text = (
                f"{person_facts.person.full_name} completed {target.name} on {context['completed_on']}: "
                "watch for the new behaviour and give feedback."
            )
            actions.extend(
                mf.to_manager(
                    conn, mapping, rec, target, person_facts, manager, "observe", after, text, settings, now
                )
            )
    report.queued += enqueue(conn, actions, now)


def build_digests(conn: Connection, settings: Settings, now: datetime) -> int:
    """One message per manager listing every item not yet in a digest."""
    d = t.digest_items
    items = list(conn.execute(select(d).where(d.c.action_key.is_(None)).order_by(d.c.manager_id, d.c.id)))
    by_manager: dict[str, list[Any]] = defaultdict(list)
    for item in items:
        by_manager[item.manager_id].append(item)
    managers = load_people(conn, sorted(by_manager))
    made = 0
    for manager_id, new_items in by_manager.items():
        manager = managers.get(manager_id)
        if manager is None or not manager.active:
            continue
        made += _digest_for(conn, manager, new_items, settings, now)
    return made


def _digest_for(
    conn: Connection, manager: Person, new_items: list[Any], settings: Settings, now: datetime
) -> int:
    a, d, r = t.actions, t.digest_items, t.recommendations
    targets = conn.execute(
        select(r.c.targets).where(r.c.id.in_([i.recommendation_id for i in new_items]))
    ).scalars()
    sites = [target["site"] for row in targets for target in row]
    account = mf.manager_account(conn, manager, dict.fromkeys(sites))
    pending = conn.execute(
        select(a.c.key).where(
            and_(
                a.c.purpose == "digest", a.c.recipient_person_id == manager.person_id, a.c.state == "pending"
            )
        )
    ).scalar()
    tz = zone(manager.timezone, settings.delivery.default_timezone)
    key = pending or f"digest/{manager.person_id}/{now.astimezone(tz).date().isoformat()}"
    if pending is None and conn.execute(select(a.c.id).where(a.c.key == key)).first() is not None:
        key = f"digest/{manager.person_id}/{(now.astimezone(tz) + timedelta(days=1)).date().isoformat()}"
    conn.execute(update(d).where(d.c.id.in_([i.id for i in new_items])).values(action_key=key))
    texts = list(conn.execute(select(d.c.text).where(d.c.action_key == key).order_by(d.c.id)).scalars())
    subject = f"Your team's learning follow-ups ({len(texts)})"
    body_text = f"Hello {manager.first_name},\n\n" + "\n".join(f"- {x}" for x in texts)
    body_html = templates.render(
        m.MessageTemplate(
            subject=subject, body="Hello {{ name }},\n\n{% for x in items %}- {{ x }}\n{% endfor %}"
        ),
        {"name": manager.first_name, "items": texts},
    ).html
    due, window = sending_slot(DIGEST_SCHEDULE, manager.timezone, settings, now)
    state, reason = "pending", None
    if account is None and not manager.email:
        state, reason = "suppressed", "the manager has no LMS account or email to send the digest to"
    if pending:
        conn.execute(
            update(a)
            .where(a.c.key == key)
            .values(subject=subject, body_html=body_html, body_text=body_text, updated_at=now)
        )
        return 0
    site, user_id = account if account else ("email", None)
    return enqueue(
        conn,
        [
            NewAction(
                key=key,
                purpose="digest",
                kind=ActionKind.MESSAGE if account else ActionKind.EMAIL,
                site=site,
                due_at=due,
                recipient_person_id=manager.person_id,
                person_id=manager.person_id,
                recipient_user_id=user_id,
                recipient_email=manager.email,
                subject=subject,
                body_html=body_html,
                body_text=body_text,
                options=window,
                state=state,
                reason=reason,
            )
        ],
        now,
    )
