"""Acting on decisions: store recommendations and queue their actions in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping as MappingType
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select, update

from bridge import compose, registry
from bridge.decide import LEFT, Decision, LatestRecommendation
from bridge.facts import Facts
from bridge.guards import window_options
from bridge.mapping import model as m
from bridge.mapping import templates
from bridge.mapping.loader import MappingSet
from bridge.outbox import (
    NewAction,
    action_key,
    address_waiting,
    cancel_for_recommendation,
    enqueue,
    target_json,
    wait_for_account,
)
from bridge.ports import ActionKind
from bridge.records import Target
from bridge.registry import Refusal
from bridge.settings import Settings
from bridge.store import schema as t
from bridge.store.ingest import bump_version
from bridge.timing import next_send_time, zone

MESSAGE_CHANNELS = ("message", "email")


def message_context(
    mapping: m.Mapping,
    facts: Facts,
    target: Target,
    reason: str,
    opened: datetime,
    manager: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The template variables of a message about ``target`` (as of ``now``, default ``opened``)."""
    return compose.context_values(
        person=facts.person,
        manager=manager,
        target=target,
        mapping_id=mapping.id,
        mapping_title=mapping.title,
        due_in_days=mapping.follow_up.due_in_days,
        reason=reason,
        opened=opened,
        now=now or opened,
        tz=facts.person.timezone,
    )


def sending_slot(
    schedule: m.Schedule, tz_name: str | None, settings: Settings, now: datetime
) -> tuple[datetime, dict[str, Any]]:
    """When a message may first go out, and the window the guards re-check whenever it is due."""
    tz = zone(tz_name, settings.delivery.default_timezone)
    start, end = schedule.window()
    return next_send_time(now, schedule.days, start, end, tz), window_options(
        schedule.days, schedule.hours, tz.key
    )


def enrol_options(rec: m.RecommendTarget, kind: ActionKind) -> dict[str, Any] | None:
    """The role and duration an 'enrol' action asks for (the sink dates it when it is sent)."""
    if kind is not ActionKind.ENROL:
        return None
    options = {"roleid": rec.enrol_role_id, "days": rec.enrol_days}
    return {k: v for k, v in options.items() if v is not None} or None


def recommend_actions(
    mapping: m.Mapping,
    decision: Decision,
    facts: Facts,
    recommendation_id: int,
    episode: int,
    settings: Settings,
    now: datetime,
    refuses: Refusal = lambda _site, _channel, _kind: None,
) -> list[NewAction]:
    """The actions a newly opened recommendation queues, one per target and channel.

    A channel the target's site can never take (a learning plan on Totara, say) is recorded as
    suppressed with the reason, and the learner is told by message instead unless the mapping
    already sends one — never dropped silently.
    """
    person = facts.person
    reason = compose.reason_of(
        {"facts": list(decision.facts), "learner_facts": list(decision.words)},
        mapping.messages.show_peer_rank,
    )
    send_at, window = sending_slot(mapping.schedule, person.timezone, settings, now)
    actions: list[NewAction] = []
    # The assessment resolves every `recommend:` entry in order, and a recommendation opens only
    # when all of them resolved: entry and target pair up by position (two courses on one site
    # are two targets, each with its own actions).
    if len(decision.targets) != len(mapping.recommend):
        return []
    for rec, target in zip(mapping.recommend, decision.targets, strict=True):
        refused: dict[str, str | None] = {
            ch: refuses(rec.site, ch, rec.kind) for ch in rec.channels if ch != "email"
        }
        channels = list(rec.channels)
        if any(refused.values()) and "message" not in channels and not refuses(rec.site, "message", rec.kind):
            channels.append("message")
        for channel in channels:
            kind = ActionKind(channel)
            site = "email" if kind is ActionKind.EMAIL else target.site
            account = facts.accounts.get(target.site)
            state, why = "pending", None
            if decision.holdout:
                state, why = "suppressed", "measurement holdout: deliberately not contacted"
            elif refused.get(channel):
                state, why = "suppressed", f"{refused[channel]} (the learner is told by message instead)"
            elif kind is ActionKind.EMAIL and not person.email:
                state, why = "suppressed", "no work email in the HR record"
            elif kind is not ActionKind.EMAIL and account is None:
                state, why = "waiting", f"waiting for an account on site '{target.site}' to be linked"
            elif kind is not ActionKind.EMAIL and account is not None and not account.usable:
                state, why = (
                    "suppressed",
                    f"the account on site '{target.site}' is suspended or deleted",
                )
            subject = html = text = ""
            options = enrol_options(rec, kind)
            if channel in MESSAGE_CHANNELS:
                # A draft for `plan` and `outbox`; delivery renders it again from the state of
                # the moment it is sent (bridge.compose).
                template = templates.template_for(mapping, "recommend", person.locale)
                options = {**window, "render": compose.render_spec(template, "recommend", mapping)}
                try:
                    rendered = templates.render(
                        template, message_context(mapping, facts, target, reason, now)
                    )
                    subject, html, text = rendered.subject, rendered.html, rendered.text
                except templates.TemplateFailed as exc:
                    state, why = (
                        "dead",
                        compose.template_failed(mapping.id, "recommend", exc, person=person.person_id),
                    )
            actions.append(
                NewAction(
                    key=action_key(mapping.id, person.person_id, episode, "recommend", channel, target.key),
                    purpose="recommend",
                    kind=kind,
                    site=site,
                    due_at=send_at if channel in MESSAGE_CHANNELS else now,
                    recommendation_id=recommendation_id,
                    mapping_id=mapping.id,
                    person_id=person.person_id,
                    recipient_person_id=person.person_id,
                    recipient_user_id=account.user_id if account else None,
                    recipient_email=person.email,
                    subject=subject,
                    body_html=html,
                    body_text=text,
                    target=target,
                    options=options,
                    state=state,
                    reason=why,
                )
            )
    return actions


# What a leaver's actions were cancelled with: at decide time, or by the guards at send time.
LEFT_REASONS = (f"recommendation closed: {LEFT}", "the person has left the organisation")


def reopen(conn: Connection, recommendation_id: int, now: datetime) -> int:
    """Open again a recommendation closed because its person left; returns the actions re-queued.

    Its actions cancelled for leaving are queued again, but not as they were: an LMS action
    waits to be addressed to the person's account of now (it may have changed while they were
    away), and every one passes the delivery guards again (still true, not too old, inside the
    sending hours). What was sent stays sent.
    """
    r, a = t.recommendations, t.actions
    conn.execute(
        update(r)
        .where(and_(r.c.id == recommendation_id, r.c.state == "closed", r.c.close_reason == LEFT))
        .values(state="open", closed_at=None, close_reason=None, completed_at=None)
    )
    cancelled_for_leaving = and_(
        a.c.recommendation_id == recommendation_id,
        a.c.state == "cancelled",
        a.c.last_error.in_(LEFT_REASONS),
    )
    email = a.c.kind == ActionKind.EMAIL.value
    emails = (
        conn.execute(
            update(a)
            .where(and_(cancelled_for_leaving, email))
            .values(state="pending", last_error=None, updated_at=now)
        ).rowcount
        or 0
    )
    reason = "back in the organisation: waiting for the account to be linked"
    lms = wait_for_account(conn, and_(cancelled_for_leaving, ~email), reason, now)
    address_waiting(conn, now)
    return emails + lms


OpenTargets = dict[tuple[str, str], str]  # (person id, target key) -> mapping id that holds it


class Actor:
    """The ``persist`` step of :func:`bridge.decide.evaluate` for ``sync``."""

    def __init__(self, mapping_set: MappingSet, settings: Settings) -> None:
        self.mappings = {mp.id: mp for mp in mapping_set.mappings}
        self.settings = settings
        self.refuses = registry.refusal(settings)
        self.queued = 0

    def __call__(
        self,
        conn: Connection,
        decisions: list[Decision],
        facts: MappingType[str, Facts],
        latest: MappingType[tuple[str, str], LatestRecommendation],
        now: datetime,
    ) -> None:
        r = t.recommendations
        already = self._open_targets(conn, {d.person_id for d in decisions if d.outcome == "open"})
        queued: list[NewAction] = []
        opening = [d for d in decisions if d.outcome in ("open", "suppress")]
        episodes = {}
        for d in opening:
            previous = latest.get((d.mapping_id, d.person_id))
            episodes[(d.mapping_id, d.person_id)] = previous.episode + 1 if previous else 1
        if opening:
            ids = conn.execute(
                r.insert().returning(r.c.id, sort_by_parameter_order=True),
                [
                    {
                        "mapping_id": d.mapping_id,
                        "person_id": d.person_id,
                        "episode": episodes[(d.mapping_id, d.person_id)],
                        "state": "open" if d.outcome == "open" else "suppressed",
                        "holdout": d.holdout,
                        "targets": [target_json(tg) for tg in d.targets],
                        "explanation": {
                            "reason": d.reason,
                            "facts": list(d.facts),
                            "learner_facts": list(d.words),
                            "manager_facts": list(d.about),
                            "audience": list(d.audience),
                            "due_in_days": self.mappings[d.mapping_id].follow_up.due_in_days,
                        },
                        "opened_at": now,
                    }
                    for d in opening
                ],
            ).scalars()
            for d, rec_id in zip(opening, ids, strict=True):
                if d.outcome == "open":
                    episode = episodes[(d.mapping_id, d.person_id)]
                    actions = recommend_actions(
                        self.mappings[d.mapping_id],
                        d,
                        facts[d.person_id],
                        rec_id,
                        episode,
                        self.settings,
                        now,
                        self.refuses,
                    )
                    queued.extend(self._not_twice(a, already, d) for a in actions)
        for d in decisions:
            if d.outcome == "reopen":
                assert d.recommendation_id is not None
                self.queued += reopen(conn, d.recommendation_id, now)
            if d.outcome in ("close", "lapse"):
                assert d.recommendation_id is not None
                state = "closed" if d.outcome == "close" else "lapsed"
                conn.execute(
                    update(r)
                    .where(r.c.id == d.recommendation_id)
                    .values(state=state, closed_at=now, close_reason=d.reason, completed_at=d.completed_at)
                )
                cancel_for_recommendation(
                    conn, d.recommendation_id, f"recommendation closed: {d.reason}", now
                )
        if opening or any(d.outcome in ("reopen", "close", "lapse") for d in decisions):
            bump_version(conn, "recommendations", now)  # what learners are shown on their site changed
        self.queued += enqueue(conn, queued, now)

    @staticmethod
    def _open_targets(conn: Connection, person_ids: set[str]) -> OpenTargets:
        r = t.recommendations
        found: OpenTargets = {}
        if not person_ids:
            return found
        rows = conn.execute(
            select(r.c.person_id, r.c.mapping_id, r.c.targets).where(
                and_(r.c.state == "open", r.c.holdout.is_(False), r.c.person_id.in_(sorted(person_ids)))
            )
        )
        for row in rows:
            for target in row.targets:
                found.setdefault(
                    (row.person_id, f"{target['site']}:{target['kind']}:{target['item_id']}"), row.mapping_id
                )
        return found

    @staticmethod
    def _not_twice(action: NewAction, already: OpenTargets, decision: Decision) -> NewAction:
        """One piece of learning is pushed to a person once, whichever mappings ask for it."""
        if action.target is None or action.state not in ("pending", "waiting"):
            return action
        holder = already.setdefault((decision.person_id, action.target.key), decision.mapping_id)
        if holder == decision.mapping_id:
            return action
        return replace(
            action, state="suppressed", reason=f"already recommended to this person by mapping {holder}"
        )
