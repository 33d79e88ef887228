"""Totara's legacy web services: the Moodle simulator's functions, as Totara's code base has them.

Totara 13 to 19 carry Moodle's web-service layer from the Moodle 3.3 era, so a few functions take
fewer parameters and answer fewer fields than the Moodle releases the Moodle simulator models.
Each difference is data (:data:`LEGACY`): the parameters Totara accepts — anything else fails
the call with ``invalid_parameter_exception``, as ``validate_parameters`` does on a real site —
and the fields its answer has.

Verified in Totara source (``server/enrol/externallib.php``, Totara 13 mirror; the issue's 17.3
site behaves the same): ``core_enrol_get_users_courses`` takes only ``userid`` and answers
``id, shortname, fullname, enrolledusercount, idnumber, visible, summary, summaryformat, format,
showgrades, lang, enablecompletion, category, startdate, enddate`` — no ``returnusercount``
parameter, no ``completed`` or ``progress`` field (both came with Moodle 3.6). The same is
assumed, not verified, for 18 and 19, which kept that code base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.moodle.sim.functions import REGISTRY, service_functions
from connectors.moodle.sim.server import Simulator
from connectors.moodle.sim.spec import InvalidParameter, Struct, Value, validate
from connectors.moodle.sim.state import SiteState


@dataclass(frozen=True)
class LegacyFunction:
    params: Struct
    answer_fields: frozenset[str] | None = None  # fields of each item of a list answer


USERS_COURSES_FIELDS = frozenset(
    {
        "id",
        "shortname",
        "fullname",
        "enrolledusercount",
        "idnumber",
        "visible",
        "summary",
        "summaryformat",
        "format",
        "showgrades",
        "lang",
        "enablecompletion",
        "category",
        "startdate",
        "enddate",
    }
)

LEGACY: dict[str, LegacyFunction] = {
    "core_enrol_get_users_courses": LegacyFunction(Struct({"userid": Value("int")}), USERS_COURSES_FIELDS),
}


class TotaraLegacySimulator(Simulator):
    """The Moodle simulator's REST endpoint with Totara's parameter lists and answer shapes."""

    def __init__(
        self,
        state: SiteState,
        token: str,
        legacy: dict[str, LegacyFunction] | None = None,
        debug: bool = False,
    ) -> None:
        super().__init__(state, token, debug)
        self.legacy = LEGACY if legacy is None else legacy

    def handle_rest(self, params: dict[str, Any]) -> tuple[Any, bool]:
        name = str(params.get("wsfunction", ""))
        spec = self.legacy.get(name)
        if (
            spec is None
            or params.get("wstoken") != self.token
            or name not in REGISTRY
            or name not in service_functions(self.state)
        ):
            return super().handle_rest(params)  # Moodle's answer (unknown function, bad token, ...)
        fields = {
            k: v
            for k, v in params.items()
            if k not in ("wstoken", "wsfunction") and not k.startswith("moodlews")
        }
        try:
            validate(spec.params, fields)
        except InvalidParameter as exc:
            with self.state.lock:
                self.state.calls[name] += 1
            body: dict[str, Any] = {
                "exception": "invalid_parameter_exception",
                "errorcode": "invalidparameter",
                "message": "Invalid parameter value detected",
            }
            if self.debug:
                body["debuginfo"] = str(exc)
            return body, params.get("moodlewsrestformat") == "json"
        answer, as_json = super().handle_rest(params)
        if spec.answer_fields is not None and isinstance(answer, list):
            answer = [
                {k: v for k, v in item.items() if k in spec.answer_fields} if isinstance(item, dict) else item
                for item in answer
            ]
        return answer, as_json
