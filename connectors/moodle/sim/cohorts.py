"""Audience (cohort) membership functions, as in Moodle's ``cohort/externallib.php`` (2.5+).

Totara keeps these legacy functions; they are how lmsbridge assigns programs and
certifications whose assignment an administrator tied to an audience.
"""

from __future__ import annotations

import time
from typing import Any

from connectors.moodle.sim.functions import function
from connectors.moodle.sim.spec import Multiple, Struct, Value
from connectors.moodle.sim.state import SimCohort, SiteState

REFERENCE = Struct({"type": Value("text"), "value": Value("raw")})


def _cohort(state: SiteState, ref: dict[str, Any]) -> SimCohort | None:
    if ref["type"] == "id":
        return state.cohorts.get(int(ref["value"]))
    if ref["type"] == "idnumber":
        return next((c for c in state.cohorts.values() if c.idnumber == ref["value"]), None)
    return None


def _user(state: SiteState, ref: dict[str, Any]) -> int | None:
    if ref["type"] == "id":
        user = state.live_user(int(ref["value"]))
        return user.id if user else None
    if ref["type"] == "idnumber":
        return state.by_idnumber.get(str(ref["value"]))
    if ref["type"] == "username":
        return state.by_username.get(str(ref["value"]))
    return None


@function(
    "core_cohort_add_cohort_members",
    {"members": Multiple(Struct({"cohorttype": REFERENCE, "usertype": REFERENCE}))},
    since="2.5",
)
def add_cohort_members(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    warnings = []
    with state.lock:
        for member in p["members"]:
            cohort = _cohort(state, member["cohorttype"])
            user_id = _user(state, member["usertype"])
            if cohort is None:
                warnings.append(
                    {
                        "item": "cohort",
                        "itemid": member["cohorttype"]["value"],
                        "warningcode": "1",
                        "message": "Invalid cohort id",
                    }
                )
                continue
            if user_id is None:
                warnings.append(
                    {
                        "item": "user",
                        "itemid": member["usertype"]["value"],
                        "warningcode": "1",
                        "message": "Invalid user id",
                    }
                )
                continue
            cohort.members.add(user_id)
            state.cohort_writes.append({"cohortid": cohort.id, "userid": user_id, "time": int(time.time())})
    return {"warnings": warnings}


@function(
    "core_cohort_get_cohort_members",
    {"cohortids": Multiple(Value("int"))},
    since="2.5",
)
def get_cohort_members(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    with state.lock:
        return [
            {"cohortid": cid, "userids": sorted(state.cohorts[cid].members)}
            for cid in p["cohortids"]
            if cid in state.cohorts
        ]
