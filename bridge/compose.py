"""Message bodies, rendered when they are sent from the state of that moment.

An action stores what it needs to be rendered (its template, purpose, step, target and
recommendation); dates, counts and "due by" are worked out when the message leaves, so a message
held back by quiet hours, a cap or an outage never arrives with yesterday's facts. An overdue
reminder says it is overdue. A manager digest is built from the current state of every item it
lists: one line per report per piece of learning, completed items shown as completed.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingType
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, select

from bridge.facts import load_people
from bridge.log import get_logger
from bridge.mapping import model as m
from bridge.mapping import templates
from bridge.outbox import target_from_json
from bridge.records import Person, Target
from bridge.store import schema as t
from bridge.timing import zone
from bridge.truth import MANAGER_PURPOSES, StateOfNow

log = get_logger(__name__)

DIGEST_TEMPLATE = m.MessageTemplate(
    subject="Your team's learning follow-ups ({{ items | length }})",
    body="Hello {{ name }},\n\n{% for x in items %}- {{ x }}\n{% endfor %}",
)


def render_spec(
    template: m.MessageTemplate,
    purpose: str,
    mapping: m.Mapping,
    step: int = 0,
    step_number: int = 1,
    steps: int = 1,
) -> dict[str, Any]:
    """What an action keeps so it can be rendered when it is sent."""
    return {
        "template": {"subject": template.subject, "body": template.body},
        "purpose": purpose,
        "mapping_title": mapping.title,
        "due_in_days": mapping.follow_up.due_in_days,
        "step": step,
        "step_number": step_number,
        "steps": steps,
        "peer_rank": mapping.messages.show_peer_rank,
    }


def names(person: Person | None) -> dict[str, str]:
    """A person's names for a template; a first name missing from HR falls back to the full name."""
    if person is None:
        return {"first_name": "", "last_name": "", "full_name": ""}
    return {
        "first_name": person.first_name or person.full_name,
        "last_name": person.last_name or "",
        "full_name": person.full_name,
    }


def context_values(
    *,
    person: Person,
    manager: Person | None,
    target: Target,
    mapping_id: str,
    mapping_title: str,
    due_in_days: int | None,
    reason: str,
    opened: datetime,
    now: datetime,
    tz: str | None,
    completed: datetime | None = None,
    step: int = 0,
    step_number: int = 1,
    steps: int = 1,
) -> dict[str, Any]:
    """The template variables for one message, as of ``now`` in the recipient's time zone."""
    today = now.astimezone(zone(tz)).date()
    due = (opened + timedelta(days=due_in_days)).astimezone(zone(tz)).date() if due_in_days else None
    overdue = due is not None and due < today
    return {
        "person": names(person),
        "manager": names(manager),
        "learning": {
            "name": target.name,
            "url": target.url or "",
            "kind": target.kind,
            "shortname": target.name,
        },
        "mapping": {"id": mapping_id, "title": mapping_title},
        "reason": reason,
        "due_date": due.isoformat() if due else "",
        "days_left": (due - today).days if due and not overdue else 0,
        "overdue": overdue,
        "days_overdue": (today - due).days if due and overdue else 0,
        "opened_on": opened.astimezone(zone(tz)).date().isoformat(),
        "days_since_recommended": (today - opened.astimezone(zone(tz)).date()).days,
        "completed_on": completed.astimezone(zone(tz)).date().isoformat() if completed else "",
        "today": today.isoformat(),
        "step": step,
        "step_number": step_number,
        "steps": steps,
    }


def reason_of(
    explanation: MappingType[str, Any] | None, show_peer_rank: bool = False, *, to_manager: bool = False
) -> str:
    """The reason of a recommendation in plain words (peer rank only where the mapping opts in):
    addressed to the learner ("your customer satisfaction ..."), or about them to their manager
    ("their customer satisfaction ..."), as the evaluation said them (bridge.mapping.evaluate)."""
    explanation = explanation or {}
    said = explanation.get("manager_facts" if to_manager else "learner_facts")
    facts: list[str] = said or explanation.get("facts", [])
    shown = facts if show_peer_rank else [f for f in facts if " peers " not in f and "% of " not in f]
    if to_manager:
        return "; ".join(shown)
    return "; ".join(shown) or "this learning was picked for your role"


def render_message(
    row: Any, rec: Any, person: Person, manager: Person | None, tz: str | None, now: datetime
) -> templates.Rendered | None:
    """The body of a learner message as of now; None when the action carries no render spec."""
    spec: MappingType[str, Any] | None = (row.options or {}).get("render")
    target = target_from_json(row.target)
    if not spec or target is None or rec is None:
        return None
    context = context_values(
        person=person,
        manager=manager,
        target=target,
        mapping_id=row.mapping_id or "",
        mapping_title=spec.get("mapping_title", ""),
        due_in_days=spec.get("due_in_days"),
        reason=reason_of(
            rec.explanation, bool(spec.get("peer_rank")), to_manager=row.purpose in MANAGER_PURPOSES
        ),
        opened=rec.opened_at,
        now=now,
        tz=tz,
        completed=rec.completed_at if spec.get("purpose") in ("reinforcement", "observe") else None,
        step=int(spec.get("step", 0)),
        step_number=int(spec.get("step_number", 1)),
        steps=int(spec.get("steps", 1)),
    )
    template = m.MessageTemplate(**spec["template"])
    return templates.render(template, context)


def digest_lines(conn: Connection, key: str, now: datetime) -> list[str]:
    """One line per report per piece of learning, from the recommendations' state now.

    Several items about the same person and learning (an escalation, then the completion's
    observe prompt, or two episodes) become one line telling where things stand today.
    """
    d, r = t.digest_items, t.recommendations
    rows = conn.execute(
        select(d.c.kind, r)
        .select_from(d.join(r, r.c.id == d.c.recommendation_id))
        .where(d.c.action_key == key)
        .order_by(r.c.person_id, r.c.id)
    ).all()
    people = load_people(conn, sorted({row.person_id for row in rows}))
    latest: dict[tuple[str, str], tuple[Any, Target]] = {}
    kinds: dict[int, set[str]] = {}
    for row in rows:
        kinds.setdefault(row.id, set()).add(row.kind)
        for target_data in row.targets or []:
            target = target_from_json(target_data)
            if target is None:
                continue
            group = (row.person_id, target.key)
            if group not in latest or latest[group][0].id < row.id:
                latest[group] = (row, target)
    lines = []
    for rec, target in latest.values():
        person = people.get(rec.person_id)
        if person is None or not person.active:
            continue
        line = digest_line(rec, target, person, now, frozenset(kinds[rec.id]))
        if line:
            lines.append(line)
    return lines


def digest_line(
    rec: Any, target: Target, person: Person, now: datetime, kinds: frozenset[str] = frozenset()
) -> str | None:
    """Where one report stands with one piece of learning, today. A line that only copies the
    manager on a new recommendation (``manager_copy``) says it was recommended, and goes only while
    the recommendation is open and not completed."""
    tz = person.timezone
    copy_only = kinds == {"manager_copy"}
    if rec.state == "closed" and rec.completed_at is not None and not copy_only:
        done = rec.completed_at.astimezone(zone(tz)).date().isoformat()
        return f"{person.full_name} completed {target.name} on {done}: watch for the new behaviour and give feedback."
    if rec.state != "open":
        return None
    opened = rec.opened_at.astimezone(zone(tz)).date().isoformat()
    due_days = (rec.explanation or {}).get("due_in_days")
    due = ""
    if due_days:
        due_date = (rec.opened_at + timedelta(days=int(due_days))).astimezone(zone(tz)).date()
        today = now.astimezone(zone(tz)).date()
        due = (
            f", overdue since {due_date.isoformat()}" if due_date < today else f", due {due_date.isoformat()}"
        )
    reason = reason_of(rec.explanation, show_peer_rank=True, to_manager=True)
    why = f" Why: {reason}." if reason else ""
    if copy_only:
        return f"{person.full_name} was recommended {target.name} on {opened}{due}.{why}"
    return f"{person.full_name} has not completed {target.name} yet (recommended {opened}{due}).{why}"


def render_digest(manager: Person, lines: list[str]) -> templates.Rendered:
    return templates.render(DIGEST_TEMPLATE, {"name": names(manager)["first_name"], "items": lines})


def template_failed(mapping_id: str, purpose: str, exc: templates.TemplateFailed, **where: str) -> str:
    """Why a message whose template fails on its data is not sent, logged once (at decide time
    the action is queued dead with it, at send time it is finished with it)."""
    reason = f"not sent: mapping '{mapping_id}', {purpose} message: {exc}"
    log.error("message not sent: its template failed", mapping=mapping_id, reason=reason, **where)
    return reason


@dataclass(frozen=True)
class NotSent:
    """Why a message must not go at all, and the state its action ends in.

    ``cancelled``: it is no longer true (nothing left in a digest). ``dead``: its template failed
    on this message's data, which an administrator must fix; a dead action can be retried
    (`lmsbridge outbox retry`) once the mapping is corrected.
    """

    state: Literal["cancelled", "dead"]
    reason: str


def for_sending(
    conn: Connection, rows: Sequence[Any], current: StateOfNow, now: datetime
) -> dict[int, templates.Rendered | NotSent]:
    """Each message rendered as of now, by action id, or why it must not go at all.

    Actions without a render spec (queued before bodies were rendered at send time, enrolments,
    plan entries) keep the body they were queued with. A template that fails on this message's
    data (an error, or past the sandbox's limits) stops that message only, with the reason.
    """
    wanted = [r for r in rows if r.purpose == "digest" or (r.options or {}).get("render")]
    if not wanted:
        return {}
    learners = {f.person.person_id: f.person for f in current.facts.values()}
    extra = {f.person.manager_id for f in current.facts.values() if f.person.manager_id}
    extra |= {r.recipient_person_id for r in wanted if r.purpose == "digest" and r.recipient_person_id}
    people = {**load_people(conn, sorted(extra - set(learners))), **learners}
    out: dict[int, templates.Rendered | NotSent] = {}
    for row in wanted:
        rendered: templates.Rendered | NotSent | None
        try:
            rendered = _render_for_sending(conn, row, people, current, now)
        except templates.TemplateFailed as exc:
            rendered = NotSent("dead", template_failed(row.mapping_id or "", row.purpose, exc, key=row.key))
        if rendered is not None:
            out[row.id] = rendered
    return out


def _render_for_sending(
    conn: Connection, row: Any, people: dict[str, Person], current: StateOfNow, now: datetime
) -> templates.Rendered | NotSent | None:
    if row.purpose == "digest":
        manager = people.get(row.recipient_person_id or "")
        if manager is None:
            return None
        lines = digest_lines(conn, row.key, now)
        if not lines:
            return NotSent(
                "cancelled",
                "nothing left to report: every item in this digest was closed or is no longer true",
            )
        return render_digest(manager, lines)
    person = people.get(row.person_id or "")
    rec = current.recommendations.get(row.recommendation_id or 0)
    if person is None or rec is None:
        return None
    manager = people.get(person.manager_id or "")
    return render_message(row, rec, person, manager, recipient_timezone(row.purpose, person, manager), now)


def recipient_timezone(purpose: str, person: Person, manager: Person | None) -> str | None:
    """The time zone a message is rendered in: its recipient's (the manager's for a message to
    the manager)."""
    return manager.timezone if manager is not None and purpose in MANAGER_PURPOSES else person.timezone
