"""Writing to a Moodle site: learner and manager messages, manual enrolments.

Messages go out with ``core_message_send_instant_messages``, many per call (each message is 4
form fields; batches stay far below ``max_input_vars``). Moodle does not keep ``clientmsgid``,
so every message carries a short visible reference derived from the action's idempotency key;
after a crash, :meth:`MoodleSink.reconcile` reads what the web-service user sent to the
recipient (``core_message_get_messages``) and looks for it before anything is sent again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Any

from bridge import clock
from bridge.errors import BridgeError, Remedy
from bridge.log import get_logger
from bridge.ports import ActionKind, DeliveryOutcome, OutcomeStatus, OutgoingAction, deliver_in_groups
from connectors.moodle import errors
from connectors.moodle.board import MoodleBoard
from connectors.moodle.changes import SET_RECOMMENDATIONS
from connectors.moodle.client import MoodleClient

log = get_logger(__name__)

FORMAT_HTML = 1
PARTICIPANTS_FRESH_SECONDS = 60.0  # how long a course's participant listing is used for


def reference(key: str) -> str:
    """The short code a message carries so it can be recognised on the site later."""
    return "LB-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def message_text(action: OutgoingAction) -> str:
    return f"{action.body_html}<p><small>Ref {reference(action.key)}</small></p>"


def enrolment_dates(action: OutgoingAction) -> dict[str, int]:
    """``timestart``/``timeend`` for an enrolment limited to ``days`` (dated when it is sent)."""
    days = action.options.get("days")
    if not days:
        return {}
    start = int(clock.now().timestamp())
    return {"timestart": start, "timeend": start + int(days) * 86400}


def _message_id(result: Any) -> int | None:
    """The ``msgid`` of one send result (-1 when Moodle refused it), or None when unreadable."""
    msgid = result.get("msgid") if isinstance(result, dict) else None
    if isinstance(msgid, int) and not isinstance(msgid, bool):
        return msgid
    if isinstance(msgid, str) and msgid.strip().lstrip("-").isdigit():
        return int(msgid)
    return None


class MoodleSink:
    kinds = frozenset({ActionKind.MESSAGE, ActionKind.ENROL, ActionKind.PLAN})

    def __init__(
        self, name: str, client: MoodleClient, message_batch: int = 50, student_role_id: int = 5
    ) -> None:
        self.name = name
        self.client = client
        self.message_batch = message_batch
        self.student_role_id = student_role_id
        # course id -> (read at, enrolled user ids, suspended user ids); see _participants
        self._listed: dict[int, tuple[float, set[int], set[int]]] = {}
        self._lock = threading.Lock()

    def board(self) -> MoodleBoard | None:
        """The site's "Recommended for you", when the companion plugin is in the service."""
        return MoodleBoard(self.client) if self.client.has_function(SET_RECOMMENDATIONS) else None

    def has_board(self) -> bool | None:
        """Whether the site has a board, as far as known without asking it (None: not known)."""
        return self.client.offers(SET_RECOMMENDATIONS)

    @property
    def ws_user(self) -> int:
        """The web-service user (from the site info the client already asked, if it did)."""
        return int(self.client.known_site_info()["userid"])

    def deliver(self, actions: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        messages = [a for a in actions if a.kind is ActionKind.MESSAGE]
        enrolments = [a for a in actions if a.kind is ActionKind.ENROL]
        step = self.message_batch
        outcomes = deliver_in_groups(
            [(messages[i : i + step], self._send_messages) for i in range(0, len(messages), step)]
            + [(enrolments[i : i + step], self._enrol_batch) for i in range(0, len(enrolments), step)]
            + [([a], self._plan_one) for a in actions if a.kind is ActionKind.PLAN]
        )
        for action in actions:
            if action.kind not in (ActionKind.MESSAGE, ActionKind.ENROL, ActionKind.PLAN):
                outcomes.append(
                    DeliveryOutcome(
                        action.key,
                        OutcomeStatus.DEAD,
                        error=f"site '{self.name}' cannot take {action.kind.value} actions",
                    )
                )
        return outcomes

    def _send_messages(self, batch: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        outcomes: list[DeliveryOutcome] = []
        sendable = []
        for action in batch:
            if action.recipient_user_id is None:
                outcomes.append(
                    DeliveryOutcome(action.key, OutcomeStatus.DEAD, error="no Moodle user to send to")
                )
            else:
                sendable.append(action)
        if not sendable:
            return outcomes
        params = {
            "messages": [
                {"touserid": a.recipient_user_id, "text": message_text(a), "textformat": FORMAT_HTML}
                for a in sendable
            ]
        }
        answer = self.client.call("core_message_send_instant_messages", params)
        if not isinstance(answer, list) or len(answer) != len(sendable):
            shape = (
                f"{type(answer).__name__} of {len(answer)}"
                if isinstance(answer, list | dict)
                else repr(answer)[:40]
            )
            what = f"an answer of an unexpected shape ({shape} for {len(sendable)} messages)"
            return outcomes + [self._unknown(a.key, what) for a in sendable]
        for action, result in zip(sendable, answer, strict=True):
            msgid = _message_id(result)
            if msgid is None:
                outcomes.append(self._unknown(action.key, f"an unreadable result ({repr(result)[:60]})"))
            elif msgid > 0:
                outcomes.append(DeliveryOutcome(action.key, OutcomeStatus.SENT, external_id=str(msgid)))
            else:
                reason = result.get("errormessage") or "Moodle did not accept the message"
                outcomes.append(
                    DeliveryOutcome(
                        action.key, OutcomeStatus.DEAD, error=f"Moodle refused the message: {reason}"
                    )
                )
        return outcomes

    def _unknown(self, key: str, what: str) -> DeliveryOutcome:
        """The site answered, but not so that it says whether the message went: checked on the
        site (by its Ref code) before any resend, never sent again blindly."""
        error = f"Moodle site '{self.name}' sent {what} to core_message_send_instant_messages"
        return DeliveryOutcome(key, OutcomeStatus.UNKNOWN, error=error)

    def _enrolment(self, action: OutgoingAction) -> dict[str, Any]:
        assert action.recipient_user_id is not None and action.target is not None
        return {
            "roleid": int(action.options.get("roleid", self.student_role_id)),
            "userid": action.recipient_user_id,
            "courseid": action.target.item_id,
            **enrolment_dates(action),
        }

    def _participants(self, course_id: int) -> tuple[set[int], set[int]]:
        """Everyone enrolled in the course (any status), and those whose enrolment is suspended.

        Each listing names every participant of the course, so it is read at most once a
        PARTICIPANTS_FRESH_SECONDS per course (with this sink's own enrolments added as they are
        made), not once per batch: a delivery run of thousands of enrolments over a few courses
        asked the same listings again for every batch (3,728 calls at 20,000 learners).
        """
        with self._lock:
            held = self._listed.get(course_id)
            if held is not None and time.monotonic() - held[0] < PARTICIPANTS_FRESH_SECONDS:
                return held[1], held[2]
        fields = {"name": "userfields", "value": "id"}
        everyone = self.client.call(
            "core_enrol_get_enrolled_users", {"courseid": course_id, "options": [fields]}
        )
        suspended = self.client.call(
            "core_enrol_get_enrolled_users",
            {"courseid": course_id, "options": [fields, {"name": "onlysuspended", "value": 1}]},
        )
        listed = {int(u["id"]) for u in everyone}, {int(u["id"]) for u in suspended}
        with self._lock:
            self._listed[course_id] = (time.monotonic(), *listed)
        return listed

    def _note_enrolled(self, action: OutgoingAction) -> None:
        """An enrolment this sink made, added to the course's held listing."""
        assert action.target is not None and action.recipient_user_id is not None
        with self._lock:
            held = self._listed.get(action.target.item_id)
            if held is not None:
                held[1].add(action.recipient_user_id)

    def _already_enrolled(self, actions: Sequence[OutgoingAction]) -> dict[str, DeliveryOutcome]:
        """Enrolments the site already has are left exactly as the site keeps them.

        ``enrol_manual_enrol_users`` on an existing manual enrolment re-activates a suspended
        one, removes its end date and resets its start: the site's decisions would be undone.
        """
        skipped: dict[str, DeliveryOutcome] = {}
        for course_id in sorted({a.target.item_id for a in actions if a.target is not None}):
            enrolled, suspended = self._participants(course_id)
            for action in actions:
                if action.target is None or action.target.item_id != course_id:
                    continue
                if action.recipient_user_id in suspended:
                    reason = "already enrolled, suspended on the site: left as the site decided"
                elif action.recipient_user_id in enrolled:
                    reason = "already enrolled on the site"
                else:
                    continue
                skipped[action.key] = DeliveryOutcome(action.key, OutcomeStatus.SKIPPED, error=reason)
        return skipped

    def _enrol_batch(self, batch: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        """Many enrolments in one call; Moodle applies them all or none, so a refused batch is
        sent again one by one to find the enrolment at fault and keep the others."""
        possible = [a for a in batch if a.recipient_user_id is not None and a.target is not None]
        skipped = self._already_enrolled(possible)
        ready = [a for a in possible if a.key not in skipped]
        outcomes = [
            DeliveryOutcome(a.key, OutcomeStatus.DEAD, error="no Moodle user or course to enrol")
            for a in batch
            if a not in possible
        ] + list(skipped.values())
        if len(ready) > 1:
            try:
                self.client.call(
                    "enrol_manual_enrol_users", {"enrolments": [self._enrolment(a) for a in ready]}
                )
            except errors.MoodleError as exc:
                if exc.remedy is Remedy.RETRY:
                    raise
            else:
                return outcomes + [self._enrolled(a) for a in ready]
        return outcomes + [self._enrol(a) for a in ready]

    def _enrolled(self, action: OutgoingAction) -> DeliveryOutcome:
        assert action.target is not None
        self._note_enrolled(action)
        return DeliveryOutcome(
            action.key,
            OutcomeStatus.SENT,
            external_id=f"enrol:{action.recipient_user_id}:{action.target.item_id}",
        )

    def _enrol(self, action: OutgoingAction) -> DeliveryOutcome:
        assert action.target is not None
        try:
            self.client.call("enrol_manual_enrol_users", {"enrolments": [self._enrolment(action)]})
        except errors.MoodleError as exc:
            if exc.errorcode == "wsusercannotassign":
                # Every enrolment on the site fails the same way until the role is fixed: the
                # actions wait (released, not dead) and the cycle reports how to fix it.
                raise BridgeError(
                    f"site '{self.name}' refused to enrol: the web-service user may not assign role "
                    f"{self._enrolment(action)['roleid']}. Give its role moodle/role:assign and allow it "
                    "to assign that role (Site administration > Users > Permissions > Define roles > "
                    "Allow role assignments)"
                ) from None
            if exc.errorcode == "wsnoinstance":
                return DeliveryOutcome(
                    action.key,
                    OutcomeStatus.DEAD,
                    error=f"course {action.target.name or action.target.item_id} has no enabled manual enrolment method on site '{self.name}'",
                )
            if exc.remedy is Remedy.SKIP_ITEM:
                return DeliveryOutcome(action.key, OutcomeStatus.DEAD, error=str(exc))
            raise
        return self._enrolled(action)

    def _plan_one(self, batch: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        return [self._plan(action) for action in batch]

    def _plan(self, action: OutgoingAction) -> DeliveryOutcome:
        """Add the competency to the learner's own plan, creating an individual plan if needed.

        Plans based on a template cannot take extra competencies without being unlinked from
        the template, which would change the learner's plan for good; the bridge leaves them
        alone and uses (or creates) an individual plan instead. Adding is idempotent.
        """
        if action.recipient_user_id is None or action.target is None:
            return DeliveryOutcome(action.key, OutcomeStatus.DEAD, error="no Moodle user or competency")
        user_id, competency_id = action.recipient_user_id, action.target.item_id
        try:
            plans = self.client.call("core_competency_list_user_plans", {"userid": user_id})
            own = [p for p in plans if p.get("templateid") is None and p.get("status") in (0, 1)]
            own.sort(key=lambda p: (p.get("status") != 1, p["id"]))
            if own:
                plan_id = int(own[0]["id"])
            else:
                plan = {
                    "name": "Development plan",
                    "description": "Competencies recommended to you from your performance data.",
                    "userid": user_id,
                    "status": 1,
                }
                plan_id = int(self.client.call("core_competency_create_plan", {"plan": plan})["id"])
            self.client.call(
                "core_competency_add_competency_to_plan", {"planid": plan_id, "competencyid": competency_id}
            )
        except errors.MoodleError as exc:
            if exc.remedy is Remedy.SKIP_ITEM:
                return DeliveryOutcome(action.key, OutcomeStatus.DEAD, error=str(exc))
            raise
        return DeliveryOutcome(action.key, OutcomeStatus.SENT, external_id=f"plan:{plan_id}:{competency_id}")

    # ------------------------------------------------------------------ reconciliation

    def reconcile(self, action: OutgoingAction) -> DeliveryOutcome | None:
        if action.recipient_user_id is None:
            return None
        if action.kind is ActionKind.PLAN and action.target is not None:
            for plan in self.client.call(
                "core_competency_list_user_plans", {"userid": action.recipient_user_id}
            ):
                listed = self.client.call("core_competency_list_plan_competencies", {"id": plan["id"]})
                if any(int(item["competency"]["id"]) == action.target.item_id for item in listed):
                    return DeliveryOutcome(
                        action.key,
                        OutcomeStatus.SENT,
                        external_id=f"plan:{plan['id']}:{action.target.item_id}",
                    )
            return None
        if action.kind is ActionKind.ENROL and action.target is not None:
            courses = self.client.call(
                "core_enrol_get_users_courses", {"userid": action.recipient_user_id, "returnusercount": 0}
            )
            if any(int(c["id"]) == action.target.item_id for c in courses):
                return DeliveryOutcome(
                    action.key,
                    OutcomeStatus.SENT,
                    external_id=f"enrol:{action.recipient_user_id}:{action.target.item_id}",
                )
            return None
        code = reference(action.key)
        for read in (False, True):  # unread and read messages are listed separately
            answer = self.client.call(
                "core_message_get_messages",
                {
                    "useridto": action.recipient_user_id,
                    "useridfrom": self.ws_user,
                    "type": "conversations",
                    "read": read,
                    "newestfirst": True,
                    "limitfrom": 0,
                    "limitnum": 100,
                },
            )
            for message in answer.get("messages", []):
                text = " ".join(str(message.get(k) or "") for k in ("fullmessage", "fullmessagehtml", "text"))
                if code in text:
                    log.info(
                        "message found on the site after a crash",
                        site=self.name,
                        key=action.key,
                        msgid=message["id"],
                    )
                    return DeliveryOutcome(action.key, OutcomeStatus.SENT, external_id=str(message["id"]))
        return None
