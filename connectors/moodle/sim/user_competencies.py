"""A learner's rating of one competency wherever Moodle keeps it (in a plan, or rated directly).

``tool_lp_data_for_user_competency_summary`` is the web-service function that exposes a user
competency outside any plan; its answer carries the same ``usercompetency`` export as a plan's.
"""

from __future__ import annotations

from typing import Any

from connectors.moodle.sim.functions import function, missing_record
from connectors.moodle.sim.learning_plans import _competencies
from connectors.moodle.sim.spec import Value
from connectors.moodle.sim.state import SiteState


@function(
    "tool_lp_data_for_user_competency_summary",
    {"userid": Value("int"), "competencyid": Value("int")},
    since="3.1",
    requires=("moodle/competency:usercompetencyview",),
)
def user_competency_summary(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    user = state.live_user(p["userid"])
    competency = {c["id"]: c for c in _competencies(state)}.get(p["competencyid"])
    if user is None:
        raise missing_record(state, "user")
    if competency is None:
        raise missing_record(state, "competency")
    _scale_id, labels = state.scale
    grade = state.user_competency.get((p["userid"], p["competencyid"]))
    return {
        "showrelatedcompetencies": True,
        "cangrade": False,
        "competency": {"competency": competency},
        "usercompetency": {
            "userid": p["userid"],
            "competencyid": p["competencyid"],
            "status": 0,
            "reviewerid": None,
            "proficiency": None if grade is None else grade == 2,
            "grade": grade,
            "id": p["userid"] * 100 + p["competencyid"],
            "timecreated": 1700000000,
            "timemodified": 1700000000,
            "usermodified": 2,
            "gradename": labels[grade - 1] if grade else "-",
            "proficiencyname": "-" if grade is None else ("Yes" if grade == 2 else "No"),
            "statusname": "-",
        },
        "evidence": [],
        "commentarea": None,
    }
