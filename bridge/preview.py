"""What each message of a mapping would say to one person, rendered the way delivery renders it.

``preview`` uses the person's stored facts and the send-time renderer (``bridge.compose``), so a
preview is the message as it would leave now. Where a message would not be sent at all (the
person does not match, opted out, is in the holdout, has no LMS account or no manager) it says
why in one line instead of rendering a greeting without a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, and_, select

from bridge import compose, guards
from bridge.decide import assess, in_holdout, unknown_history
from bridge.facts import Facts, load_people
from bridge.followups import completed_target, schedule_days
from bridge.mapping import model as m
from bridge.mapping import templates
from bridge.mapping.evaluate import EvalContext
from bridge.outbox import target_from_json, target_json
from bridge.records import Person, Target
from bridge.store import schema as t
from bridge.truth import MANAGER_PURPOSES

KINDS: tuple[m.MessageKind, ...] = (
    "recommend",
    "reminder",
    "escalation",
    "reinforcement",
    "observe",
    "manager_copy",
)
DEFAULT_KINDS: tuple[m.MessageKind, ...] = ("recommend", "reminder", "escalation", "reinforcement")


@dataclass(frozen=True)
class Preview:
    kind: m.MessageKind
    recipient: str = ""
    note: str = ""
    rendered: templates.Rendered | None = None
    not_sent: str = ""  # why nothing of this kind would be sent


def preview(
    conn: Connection,
    mapping: m.Mapping,
    facts: Facts,
    ctx: EvalContext,
    now: datetime,
    kinds: tuple[m.MessageKind, ...] = DEFAULT_KINDS,
) -> list[Preview]:
    """One entry per kind: the message as it would be sent now, or why it would not be."""
    person = facts.person
    rec = _latest(conn, mapping.id, person.person_id)
    manager = load_people(conn, [person.manager_id]).get(person.manager_id) if person.manager_id else None
    blocked = _blocked(conn, mapping, facts, ctx, rec)
    out = []
    for kind in kinds:
        why = blocked(kind)
        if why:
            out.append(Preview(kind, not_sent=why))
            continue
        try:
            out.append(_render(mapping, facts, ctx, rec, manager, kind, now))
        except templates.TemplateFailed as exc:
            out.append(Preview(kind, not_sent=f"the template fails on this person's data: {exc}"))
    return out


def _latest(conn: Connection, mapping_id: str, person_id: str) -> Any:
    r = t.recommendations
    query = select(r).where(and_(r.c.mapping_id == mapping_id, r.c.person_id == person_id))
    row = conn.execute(query.order_by(r.c.episode.desc()).limit(1)).first()
    return SimpleNamespace(**row._mapping) if row is not None else None


def _opted_out(conn: Connection, mapping_id: str, person_id: str) -> bool:
    opted = guards.opt_outs(conn, {person_id})
    return ("*", person_id) in opted or (mapping_id, person_id) in opted


def _blocked(conn: Connection, mapping: m.Mapping, facts: Facts, ctx: EvalContext, rec: Any) -> Any:
    """A function of the kind giving why nothing of that kind would be sent ("" when it would)."""
    person = facts.person
    a = assess(mapping, facts, ctx)
    is_open = rec is not None and rec.state == "open"
    completed = rec is not None and rec.state == "closed" and rec.completed_at is not None
    common = ""
    if not mapping.enabled:
        common = "the mapping is disabled"
    elif not person.active:
        common = f"{person.full_name} has left the organisation"
    elif _opted_out(conn, mapping.id, person.person_id):
        common = f"{person.full_name} opted out"
    elif (rec.holdout if rec is not None else in_holdout(mapping, person.person_id)) and (
        rec is not None or a.matches
    ):
        common = f"{person.full_name} is in the measurement holdout: deliberately not contacted"
    elif rec is not None and rec.state == "suppressed":
        common = "already matched when the mapping was switched on (backfill: false)"
    elif a.missing_targets:
        common = f"not found on the site: {'; '.join(a.missing_targets)}"
    elif not (is_open or completed) and (sites := unknown_history(a)):
        common = f"no LMS account linked for {person.full_name} on site {', '.join(map(repr, sites))}"
    elif unusable := sorted({tg.site for tg in a.targets if not _usable(facts, tg.site)}):
        common = (
            f"{person.full_name}'s account on site {', '.join(map(repr, unusable))} is suspended or deleted"
        )
    schedule = mapping.follow_up
    if completed:
        assert rec is not None
        before = f"{person.full_name} already completed it on {rec.completed_at.date().isoformat()}"
    elif is_open:
        before = ""
    elif (
        rec is not None
        and rec.closed_at is not None
        and (rec.closed_at + timedelta(days=mapping.schedule.cooldown_days) > ctx.now)
    ):
        until = (rec.closed_at + timedelta(days=mapping.schedule.cooldown_days)).date().isoformat()
        before = f"recommended before and closed ({rec.close_reason}); it may open again from {until}"
    elif a.completed is not None:
        before = f"already completed {a.completed[0].name} on {a.completed[1].date().isoformat()}"
    elif not a.matches:
        verdict = a.audience if not a.audience.ok else a.trigger
        before = f"{person.full_name} does not match: {'; '.join(verdict.facts) or 'no facts'}"
    else:
        before = ""

    def why(kind: m.MessageKind) -> str:
        if common:
            return common
        if kind in ("recommend", "reminder", "escalation", "manager_copy") and before:
            return before
        if kind in ("reinforcement", "observe") and not completed and (a.completed or not a.matches):
            return before or "nothing to reinforce: not completed"
        if kind == "reminder" and not schedule.reminder_days():
            return "the mapping sends no reminders (follow_up.remind_after_days and remind_before_due_days are empty)"
        if kind == "reinforcement" and not schedule.reinforce_after_days:
            return "the mapping sends no reinforcement (follow_up.reinforce_after_days is empty)"
        if kind == "escalation" and schedule.escalate_to_manager_after_days is None:
            return "the mapping does not escalate to the manager"
        if kind == "observe" and schedule.manager_observe_after_days is None:
            return "the mapping does not ask the manager to observe"
        if kind == "manager_copy" and not schedule.copy_manager_on_recommend:
            return "the mapping does not copy the manager (follow_up.copy_manager_on_recommend is false)"
        if kind in ("escalation", "observe", "manager_copy") and not person.manager_id:
            return f"{person.full_name} has no manager in the HR record or on the LMS"
        return ""

    return why


def _render(
    mapping: m.Mapping,
    facts: Facts,
    ctx: EvalContext,
    rec: Any,
    manager: Person | None,
    kind: m.MessageKind,
    now: datetime,
) -> Preview:
    person = facts.person
    if rec is None or rec.state not in ("open", "closed"):
        # Not recommended yet: as it would be if the recommendation opened now.
        a = assess(mapping, facts, ctx)
        rec = SimpleNamespace(
            state="open",
            opened_at=now,
            completed_at=None,
            targets=[target_json(tg) for tg in a.targets],
            explanation={"facts": list(a.trigger.facts), "due_in_days": mapping.follow_up.due_in_days},
        )
    note = ""
    if kind in ("reinforcement", "observe") and rec.completed_at is None:
        rec = SimpleNamespace(**{**vars(rec), "state": "closed", "completed_at": now})
        note = "if completed today"
    if kind == "reinforcement":
        target = completed_target(rec, facts)
    else:
        target = target_from_json((rec.targets or [None])[0])
    assert target is not None
    if kind in MANAGER_PURPOSES:
        f = mapping.follow_up
        days = {
            "escalation": f.escalate_to_manager_after_days,
            "observe": f.manager_observe_after_days,
        }.get(kind)
        at = max(now, _after(rec, kind, days or 0))
        note = _when(note, kind, days or 0, at, now) if kind != "manager_copy" else note
        return _to_manager(mapping, kind, rec, target, person, manager, at, note)
    purpose = "recommend" if kind == "recommend" else kind
    schedule = schedule_days(mapping, purpose) if kind != "recommend" else []
    step = max([d for d in schedule if _after(rec, kind, d) <= now] or schedule[:1] or [0])
    at = max(now, _after(rec, kind, step))
    template = templates.template_for(mapping, kind, person.locale)
    number = schedule.index(step) + 1 if step in schedule else 1
    spec = compose.render_spec(template, purpose, mapping, step, number, max(len(schedule), 1))
    rendered = _rendered(mapping, purpose, spec, rec, target, person, manager, at)
    note = _when(note, kind, step, at, now) if kind != "recommend" else note
    return Preview(kind, recipient=person.full_name, note=note, rendered=rendered)


def _rendered(
    mapping: m.Mapping,
    purpose: str,
    spec: dict[str, Any],
    rec: Any,
    target: Target,
    person: Person,
    manager: Person | None,
    at: datetime,
) -> templates.Rendered | None:
    """The message as delivery renders it when it is sent: from an action row like the queued one."""
    row = SimpleNamespace(
        options={"render": spec}, target=target_json(target), mapping_id=mapping.id, purpose=purpose
    )
    tz = compose.recipient_timezone(purpose, person, manager)
    return compose.render_message(row, rec, person, manager, tz, at)


def _after(rec: Any, kind: str, days: int) -> datetime:
    """When a follow-up falls due: days after the completion (reinforcement, observe) or the opening."""
    done = kind in ("reinforcement", "observe") and rec.completed_at
    start: datetime = rec.completed_at if done else rec.opened_at
    return start + timedelta(days=days)


def _when(note: str, kind: str, days: int, at: datetime, now: datetime) -> str:
    since = "completion" if kind in ("reinforcement", "observe") else "recommendation"
    later = f", as it would read on {at.date().isoformat()}" if at > now else ""
    return ", ".join(x for x in (note, f"day {days} after the {since}{later}") if x)


def _to_manager(
    mapping: m.Mapping,
    kind: m.MessageKind,
    rec: Any,
    target: Target,
    person: Person,
    manager: Person | None,
    now: datetime,
    note: str,
) -> Preview:
    """As delivery sends it: the mapping's own template for the kind, else a digest line."""
    if manager is None or not manager.active:
        return Preview(kind, not_sent=f"{person.full_name}'s manager is not in the HR record or has left")
    template = templates.own_template(mapping, kind, manager.locale)
    if template is not None:
        spec = compose.render_spec(template, kind, mapping)
        rendered = _rendered(mapping, kind, spec, rec, target, person, manager, now)
        return Preview(kind, recipient=manager.full_name, note=note, rendered=rendered)
    line = compose.digest_line(rec, target, person, now, frozenset({kind}))
    if line is None:
        return Preview(kind, not_sent="nothing to report to the manager")
    note = ", ".join(x for x in (note, "in the manager's daily digest") if x)
    return Preview(
        kind, recipient=manager.full_name, note=note, rendered=compose.render_digest(manager, [line])
    )


def _usable(facts: Facts, site: str) -> bool:
    account = facts.accounts.get(site)
    return account is None or account.usable  # no account at all is said by unknown_history
