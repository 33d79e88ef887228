"""Writing to a Totara site through the routes each version has.

- Messages: the legacy ``core_message_send_instant_messages`` (Totara's external API has no
  messaging mutation), with the same reference marker and crash reconciliation as Moodle.
- Course enrolment: ``enrol_manual_enrol_user`` on the external API where the site answers it
  (18+), else the legacy ``enrol_manual_enrol_users``.
- Program and certification assignment: no Totara API assigns them. An administrator ties the
  program's assignment to an audience; lmsbridge adds the learner to that audience with the
  legacy ``core_cohort_add_cohort_members`` and Totara assigns the program on its next cron run.
  Without a configured audience the action fails with a reason naming the setting, and
  ``lmsbridge doctor`` reports it before anything is sent.
- Learning plans: no route on any Totara version; such actions fail with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from bridge.errors import Remedy
from bridge.ports import ActionKind, DeliveryOutcome, OutcomeStatus, OutgoingAction, deliver_in_groups
from connectors.moodle.client import MoodleClient
from connectors.moodle.sink import MoodleSink, enrolment_dates
from connectors.totara import errors
from connectors.totara.graphql import GraphQLClient
from connectors.totara.legacy import users_courses

NO_PLANS = "Totara has no web service or API that adds items to learning plans; use a message or an audience-assigned program instead"


class TotaraSink:
    kinds = frozenset({ActionKind.MESSAGE, ActionKind.ENROL, ActionKind.PLAN})

    def __init__(
        self,
        name: str,
        *,
        api: GraphQLClient | None,
        legacy: MoodleClient | None,
        audiences: Mapping[str, str],
        idnumbers: Callable[[], Mapping[tuple[str, int], str]] = dict,
        message_batch: int = 50,
        student_role_id: int = 5,
    ) -> None:
        self.name = name
        self.api = api
        self.legacy = MoodleSink(name, legacy, message_batch, student_role_id) if legacy is not None else None
        self.audiences = dict(audiences)
        self._idnumbers = idnumbers
        self._known: Mapping[tuple[str, int], str] | None = None
        self.student_role_id = student_role_id

    def deliver(self, actions: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        messages = [a for a in actions if a.kind is ActionKind.MESSAGE]
        send_messages = self.legacy.deliver if self.legacy is not None else self._no_messages
        outcomes = deliver_in_groups(
            [
                (messages, send_messages),
                *(([a], self._enrol_one) for a in actions if a.kind is ActionKind.ENROL),
            ]
        )
        for action in actions:
            if action.kind is ActionKind.PLAN:
                outcomes.append(self._dead(action, NO_PLANS))
            elif action.kind not in (ActionKind.MESSAGE, ActionKind.ENROL):
                outcomes.append(
                    self._dead(action, f"site '{self.name}' cannot take {action.kind.value} actions")
                )
        return outcomes

    def _no_messages(self, batch: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        return [
            self._dead(a, "messages need the legacy web-service token (sites.<name>.token)") for a in batch
        ]

    def _enrol_one(self, batch: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        return [self._enrol(action) for action in batch]

    @staticmethod
    def _dead(action: OutgoingAction, reason: str) -> DeliveryOutcome:
        return DeliveryOutcome(action.key, OutcomeStatus.DEAD, error=reason)

    def audience_for(self, kind: str, item_id: int) -> str | None:
        """The audience configured for the program or certification, by idnumber or ``id:N``."""
        if f"{kind}:id:{item_id}" in self.audiences:
            return self.audiences[f"{kind}:id:{item_id}"]
        if self._known is None:
            self._known = self._idnumbers()
        idnumber = self._known.get((kind, item_id))
        return self.audiences.get(f"{kind}:{idnumber}") if idnumber else None

    def _enrol(self, action: OutgoingAction) -> DeliveryOutcome:
        target = action.target
        if action.recipient_user_id is None or target is None:
            return self._dead(action, "no Totara user or learning item to assign")
        if target.kind in ("program", "certification"):
            return self._assign_by_audience(action)
        if self.api is not None and self.api.available("enrol"):
            try:
                answer = self.api.execute(
                    "enrol",
                    {
                        "input": {
                            "user": {"id": action.recipient_user_id},
                            "course": {"id": target.item_id},
                            "role": {"id": int(action.options.get("roleid", self.student_role_id))},
                            **enrolment_dates(action),
                        }
                    },
                )
            except errors.TotaraError as exc:
                if exc.remedy is Remedy.RETRY:
                    raise
                return self._dead(action, str(exc))
            if not answer.get("success") and not answer.get("was_already_enrolled"):
                return self._dead(
                    action, f"Totara did not enrol the learner in {target.name or target.item_id}"
                )
            return DeliveryOutcome(
                action.key,
                OutcomeStatus.SENT,
                external_id=f"enrol:{action.recipient_user_id}:{target.item_id}",
            )
        if self.legacy is not None:
            return self.legacy.deliver([action])[0]
        return self._dead(
            action,
            "no enrolment route: the site's API has no enrol_manual_enrol_user (18+) and no legacy token is set",
        )

    def _assign_by_audience(self, action: OutgoingAction) -> DeliveryOutcome:
        target = action.target
        assert target is not None and action.recipient_user_id is not None
        audience = self.audience_for(target.kind, target.item_id)
        if audience is None:
            return self._dead(
                action,
                f"no Totara API assigns a {target.kind}: tie {target.name or target.item_id}'s assignment to an "
                f"audience and name it in sites.{self.name}.audiences",
            )
        if self.legacy is None:
            return self._dead(
                action, "audience membership needs the legacy web-service token (sites.<name>.token)"
            )
        answer = self.legacy.client.call(
            "core_cohort_add_cohort_members",
            {
                "members": [
                    {
                        "cohorttype": {"type": "idnumber", "value": audience},
                        "usertype": {"type": "id", "value": str(action.recipient_user_id)},
                    }
                ]
            },
        )
        warnings = answer.get("warnings") if isinstance(answer, dict) else None
        if warnings:
            return self._dead(action, f"Totara refused the audience membership: {warnings[0].get('message')}")
        return DeliveryOutcome(
            action.key, OutcomeStatus.SENT, external_id=f"audience:{audience}:{action.recipient_user_id}"
        )

    def reconcile(self, action: OutgoingAction) -> DeliveryOutcome | None:
        """Whether an action whose outcome is unknown happened on the site.

        Messages are looked up by their reference (as for Moodle). A course enrolment is looked
        up in the learner's courses with ``core_enrol_get_users_courses`` and only ``userid``
        (Totara's parameter list); audience memberships are idempotent, so sending again is safe.
        """
        if self.legacy is None or action.recipient_user_id is None:
            return None
        if action.kind is ActionKind.MESSAGE:
            return self.legacy.reconcile(action)
        target = action.target
        if action.kind is ActionKind.ENROL and target is not None and target.kind == "course":
            courses = users_courses(self.legacy.client, action.recipient_user_id)
            if any(int(c["id"]) == target.item_id for c in courses):
                return DeliveryOutcome(
                    action.key,
                    OutcomeStatus.SENT,
                    external_id=f"enrol:{action.recipient_user_id}:{target.item_id}",
                )
        return None
