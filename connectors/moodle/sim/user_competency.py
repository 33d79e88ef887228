"""Competency ratings wherever Moodle keeps them: a learner's user competency, plan or not.

A rating given directly (in the user's context, ``core_competency_grade_competency``) lives in
``competency_usercomp`` like a plan rating does; ``tool_lp_data_for_user_competency_summary``
(admin/tool/lp, 3.1+, cap ``moodle/competency:planview``) reads it for one learner and one
competency. As ``core_competency\\api::get_user_competency`` does, reading a pair that was never
rated creates the (unrated) record, so the answer always has a ``usercompetency``.
"""

from __future__ import annotations

import time
from typing import Any

from connectors.moodle.sim.functions import (
    function,
    missing_record,
    moodle_exception,
    picture,
    required_capability,
)
from connectors.moodle.sim.learning_plans import competency_struct, display_zone, userdate
from connectors.moodle.sim.spec import DEFAULT, Value
from connectors.moodle.sim.state import SimUser, SiteState

CREATED = 1700000000


def user_summary(state: SiteState, user: SimUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "idnumber": user.idnumber,
        "phone1": "",
        "phone2": "",
        "department": user.department,
        "institution": "",
        "fullname": f"{user.firstname} {user.lastname}",
        "identity": user.email,
        "profileurl": f"{state.url}/user/profile.php?id={user.id}",
        "profileimageurl": picture(state, "f1"),
        "profileimageurlsmall": picture(state, "f2"),
    }


def _uc_id(user_id: int, competency_id: int) -> int:
    return user_id * 100 + competency_id


def _lookup(state: SiteState, user_id: int, competency_id: int) -> tuple[SimUser, tuple[int, str, str], int]:
    user = state.live_user(user_id)
    if user is None:
        raise missing_record(state, "user")
    found = [(i, c) for i, c in enumerate(state.competencies()) if c[0] == competency_id]
    if not found:
        raise missing_record(state, "competency")
    index, competency = found[0]
    return user, competency, index


def _evidence(
    state: SiteState, user_id: int, competency_id: int, grade: int, when: int, note: str
) -> dict[str, Any]:
    _scale, labels = state.scale
    admin = state.users[2]
    return {
        "usercompetencyid": _uc_id(user_id, competency_id),
        "contextid": 10 + user_id,
        "action": 3,
        "actionuserid": 2,
        "descidentifier": "evidence_manualoverride",
        "desccomponent": "core_competency",
        "desca": None,
        "url": None,
        "grade": grade,
        "note": note,
        "id": _uc_id(user_id, competency_id),
        "timecreated": when,
        "timemodified": when,
        "usermodified": 2,
        "actionuser": user_summary(state, admin),
        "description": "The competency rating was manually set.",
        "gradename": labels[grade - 1],
        "userdate": userdate(when, display_zone(state)),
        "candelete": True,
    }


@function(
    "tool_lp_data_for_user_competency_summary",
    {"userid": Value("int"), "competencyid": Value("int")},
    since="3.1",
)
def user_competency_summary(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    # user_competency::can_read_user(): usercompetencyview, or plan::can_read_user() (planview).
    if not state.capabilities & {"moodle/competency:usercompetencyview", "moodle/competency:planview"}:
        raise required_capability(state, "moodle/competency:usercompetencyview")
    user, (cid, name, idnumber), index = _lookup(state, p["userid"], p["competencyid"])
    framework_id, framework_name, framework_idnumber = state.framework
    scale_id, labels = state.scale
    scaleconfiguration = (
        '[{"scaleid":2},{"id":1,"scaledefault":1,"proficient":0},{"id":2,"scaledefault":0,"proficient":1}]'
    )
    with state.lock:
        key = (user.id, cid)
        state.user_competency.setdefault(key, None)  # api::get_user_competency creates it
        grade = state.user_competency[key]
        when = state.rating_times.get(key, CREATED)
    base = f"{state.url}/admin/tool/lp"
    return {
        "showrelatedcompetencies": True,
        "cangrade": "moodle/competency:competencygrade" in state.capabilities,
        "competency": {
            "linkedcourses": [],
            "relatedcompetencies": [],
            "competency": competency_struct(cid, name, idnumber, index),
            "framework": {
                "shortname": framework_name,
                "idnumber": framework_idnumber,
                "description": framework_name,
                "descriptionformat": 1,
                "visible": True,
                "scaleid": scale_id,
                "scaleconfiguration": scaleconfiguration,
                "contextid": 1,
                "taxonomies": "",
                "id": framework_id,
                "timecreated": CREATED,
                "timemodified": CREATED,
                "usermodified": 2,
                "canmanage": False,
                "competenciescount": len(state.competencies()),
                "contextname": "System",
                "contextnamenoprefix": "System",
            },
            "hascourses": False,
            "hasrelatedcompetencies": False,
            "scaleid": scale_id,
            "scaleconfiguration": scaleconfiguration,
            "taxonomyterm": "Competency",
            "comppath": {
                "ancestors": [],
                "framework": {
                    "id": framework_id,
                    "name": framework_name,
                    "first": False,
                    "last": False,
                    "position": -1,
                },
                "pluginbaseurl": base,
                "pagecontextid": 1,
                "showlinks": True,
            },
            "pluginbaseurl": base,
        },
        "user": user_summary(state, user),
        "usercompetency": {
            "userid": user.id,
            "competencyid": cid,
            "status": 0,
            "reviewerid": None,
            "proficiency": None if grade is None else grade == 2,
            "grade": grade,
            "id": _uc_id(user.id, cid),
            "timecreated": CREATED,
            "timemodified": when,
            "usermodified": 2,
            "canrequestreview": False,
            "canreview": False,
            "gradename": labels[grade - 1] if grade else "-",
            "isrequestreviewallowed": False,
            "iscancelreviewrequestallowed": False,
            "isstartreviewallowed": False,
            "isstopreviewallowed": False,
            "isstatusidle": True,
            "isstatusinreview": False,
            "isstatuswaitingforreview": False,
            "proficiencyname": "-" if grade is None else ("Yes" if grade == 2 else "No"),
            "statusname": "-",
            "url": f"{base}/user_competency.php?id={_uc_id(user.id, cid)}",
        },
        "evidence": [] if grade is None else [_evidence(state, user.id, cid, grade, when, "")],
        "commentarea": {
            "component": "competency",
            "commentarea": "user_competency",
            "itemid": _uc_id(user.id, cid),
            "courseid": 1,
            "contextid": 10 + user.id,
            "cid": f"{_uc_id(user.id, cid):013x}",
            "autostart": False,
            "canpost": False,
            "canview": True,
            "count": 0,
            "collapsediconkey": "t/collapsed",
            "displaytotalcount": True,
            "displaycancel": False,
            "fullwidth": True,
            "linktext": "Comments",
            "notoggle": False,
            "template": "",
            "canpostorhascomments": False,
        },
    }


@function(
    "core_competency_grade_competency",
    {
        "userid": Value("int"),
        "competencyid": Value("int"),
        "grade": Value("int"),
        "note": Value("text", DEFAULT, ""),
    },
    since="3.1",
    requires=("moodle/competency:competencygrade",),
)
def grade_competency(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    user, (cid, _name, _idnumber), _index = _lookup(state, p["userid"], p["competencyid"])
    _scale, labels = state.scale
    if not 1 <= p["grade"] <= len(labels):
        raise moodle_exception(state, "invalidgrade", "Invalid grade")
    when = int(time.time())
    state.rate(user.id, cid, p["grade"], when)
    return _evidence(state, user.id, cid, p["grade"], when, p["note"])
