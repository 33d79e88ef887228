"""Simulated Report Builder (4.1+) and competency (3.1+) web-service functions.

The custom report is the one administrators are asked to build (see README, "Moodle"):
"Course participants" source, columns user ID number, email, course short name and completion
time, condition "time completed is not empty", sorted by time completed, newest first. Its dates
are formatted as Moodle formats them for an English-language caller, in the time zone the call
asks for (``moodlewssettingtimezone``) unless the site forces one (*Force timezone*), which wins.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from connectors.moodle.sim.functions import (
    SimError,
    call_setting,
    function,
    missing_record,
    moodle_exception,
    required_capability,
)
from connectors.moodle.sim.spec import DEFAULT, OPTIONAL, Multiple, Struct, Value
from connectors.moodle.sim.state import SimPlan, SiteState

REPORT_ID = 1
REPORT_NAME = "Course completions (lmsbridge)"
REPORT_HEADERS = ["ID number", "Email address", "Course short name", "Time completed"]


def userdate(timestamp: int, zone: str = "UTC") -> str:
    """Moodle's ``strftimedaydatetime`` in English: 'Friday, 20 November 2026, 7:05 PM'."""
    moment = datetime.fromtimestamp(timestamp, ZoneInfo(zone))
    return f"{moment:%A}, {moment.day} {moment:%B %Y}, {int(moment.strftime('%I'))}:{moment:%M %p}"


def display_zone(state: SiteState) -> str:
    """The zone dates are shown in: the forced one, else the call's, else the caller's (99 = site's)."""
    if state.forcetimezone:
        return state.forcetimezone
    asked = call_setting("timezone")
    if asked and asked != "99":
        return asked
    return state.timezone


def report_details(state: SiteState) -> dict[str, Any]:
    created = int(time.time())
    return {
        "name": REPORT_NAME,
        "source": "core_course\\reportbuilder\\datasource\\participants",
        "type": 0,
        "uniquerows": False,
        "conditiondata": '{"completion:timecompleted_operator":1}',
        "settingsdata": None,
        "contextid": 1,
        "component": "",
        "area": "",
        "itemid": 0,
        "usercreated": 2,
        "id": REPORT_ID,
        "timecreated": created,
        "timemodified": created,
        "usermodified": 2,
        "sourcename": "Course participants",
        "tags": [],
        "modifiedby": {
            "id": 2,
            "email": "admin@example.org",
            "idnumber": "",
            "phone1": "",
            "phone2": "",
            "department": "",
            "institution": "",
            "fullname": "Admin User",
            "identity": "admin@example.org",
            "profileurl": f"{state.url}/user/profile.php?id=2",
            "profileimageurl": "",
            "profileimageurlsmall": "",
        },
    }


@function(
    "core_reportbuilder_list_reports",
    {"page": Value("int", DEFAULT, 0), "perpage": Value("int", DEFAULT, 10)},
    since="4.1",
)
def list_reports(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    # Only the reports the caller may view: none at all without moodle/reportbuilder:view.
    visible = "moodle/reportbuilder:view" in state.capabilities
    reports = [report_details(state)] if p["page"] == 0 and visible else []
    return {"reports": reports, "warnings": []}


@function(
    "core_reportbuilder_retrieve_report",
    {"reportid": Value("int"), "page": Value("int", DEFAULT, 0), "perpage": Value("int", DEFAULT, 10)},
    since="4.1",
    requires=("moodle/reportbuilder:view",),
)
def retrieve_report(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    if p["reportid"] != REPORT_ID:
        raise missing_record(state, "reportbuilder_report")
    done = state.completions_newest_first()
    start = p["page"] * p["perpage"]
    zone = display_zone(state)
    rows = []
    for (user_id, course_id), when in done[start : start + p["perpage"]] if p["perpage"] else done[start:]:
        user, course = state.users.get(user_id), state.courses.get(course_id)
        if user is None or course is None or user.deleted:
            continue
        rows.append({"columns": [user.idnumber, user.email, course.shortname, userdate(when, zone)]})
    return {
        "details": report_details(state),
        "data": {"headers": REPORT_HEADERS, "rows": rows, "totalrowcount": len(done)},
        "warnings": [],
    }


# ---------------------------------------------------------------------- competencies


def competency_struct(competency_id: int, shortname: str, idnumber: str, sortorder: int) -> dict[str, Any]:
    return {
        "shortname": shortname,
        "idnumber": idnumber,
        "description": f"{shortname} competency",
        "descriptionformat": 1,
        "sortorder": sortorder,
        "parentid": 0,
        "path": "/0/",
        "ruleoutcome": 0,
        "ruletype": None,
        "ruleconfig": None,
        "scaleid": None,
        "scaleconfiguration": None,
        "competencyframeworkid": 1,
        "id": competency_id,
        "timecreated": 1700000000,
        "timemodified": 1700000000,
        "usermodified": 2,
    }


def _competencies(state: SiteState) -> list[dict[str, Any]]:
    return [
        competency_struct(cid, name, idnumber, i)
        for i, (cid, name, idnumber) in enumerate(state.competencies())
    ]


@function(
    "core_competency_list_competency_frameworks",
    {
        "sort": Value("text", DEFAULT, "shortname"),
        "order": Value("text", DEFAULT, ""),
        "skip": Value("int", DEFAULT, 0),
        "limit": Value("int", DEFAULT, 0),
        "context": Struct(
            {
                "contextid": Value("int", DEFAULT, 0),
                "contextlevel": Value("text", DEFAULT, ""),
                "instanceid": Value("int", DEFAULT, 0),
            }
        ),
        "includes": Value("text", DEFAULT, "children"),
        "onlyvisible": Value("bool", DEFAULT, False),
        "query": Value("text", DEFAULT, ""),
    },
    since="3.1",
    requires=("moodle/competency:competencyview",),
)
def list_frameworks(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    framework_id, name, idnumber = state.framework
    scale_id, _labels = state.scale
    return [
        {
            "shortname": name,
            "idnumber": idnumber,
            "description": name,
            "descriptionformat": 1,
            "visible": True,
            "scaleid": scale_id,
            "scaleconfiguration": '[{"scaleid":2},{"id":1,"scaledefault":1,"proficient":0},{"id":2,"scaledefault":0,"proficient":1}]',
            "contextid": 1,
            "taxonomies": "",
            "id": framework_id,
            "timecreated": 1700000000,
            "timemodified": 1700000000,
            "usermodified": 2,
            "canmanage": True,
            "competenciescount": len(state.competencies()),
            "contextname": "System",
            "contextnamenoprefix": "System",
        }
    ][p["skip"] : p["skip"] + p["limit"] if p["limit"] else None]


@function(
    "core_competency_list_competencies",
    {
        "filters": Multiple(Struct({"column": Value("text"), "value": Value("raw")})),
        "sort": Value("text", DEFAULT, ""),
        "order": Value("text", DEFAULT, ""),
        "skip": Value("int", DEFAULT, 0),
        "limit": Value("int", DEFAULT, 0),
    },
    since="3.1",
    requires=("moodle/competency:competencyview",),
)
def list_competencies(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    allowed = {"id", "shortname", "description", "sortorder", "idnumber", "parentid", "competencyframeworkid"}
    found = _competencies(state)
    for f in p["filters"]:
        if f["column"] not in allowed:
            raise SimError(
                "invalid_parameter_exception", "invalidparameter", "Invalid parameter value detected"
            )
        found = [c for c in found if str(c[f["column"]]) == str(f["value"])]
    found.sort(key=lambda c: c["shortname"])
    return found[p["skip"] : p["skip"] + p["limit"] if p["limit"] else None]


@function(
    "core_competency_read_competency",
    {"id": Value("int")},
    since="3.1",
    requires=("moodle/competency:competencyview",),
)
def read_competency(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    for competency in _competencies(state):
        if competency["id"] == p["id"]:
            return competency
    raise missing_record(state, "competency")


def plan_struct(state: SiteState, plan: SimPlan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "description": "",
        "descriptionformat": 1,
        "userid": plan.userid,
        "templateid": plan.templateid,
        "origtemplateid": None,
        "status": plan.status,
        "duedate": 0,
        "reviewerid": None,
        "id": plan.id,
        "timecreated": plan.timecreated,
        "timemodified": plan.timecreated,
        "usermodified": 2,
        "statusname": {0: "Draft", 1: "Active", 2: "Complete"}.get(plan.status, "Active"),
        "isbasedontemplate": plan.templateid is not None,
        "canmanage": True,
        "canrequestreview": True,
        "canreview": True,
        "canbeedited": plan.status != 2,
        "isactive": plan.status == 1,
        "isdraft": plan.status == 0,
        "iscompleted": plan.status == 2,
        "url": f"{state.url}/admin/tool/lp/plan.php?id={plan.id}",
    }


@function(
    "core_competency_list_user_plans",
    {"userid": Value("int")},
    since="3.1",
    requires=("moodle/competency:planview",),
)
def list_user_plans(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    if state.live_user(p["userid"]) is None:
        raise missing_record(state, "user")
    with state.lock:
        return [
            plan_struct(state, plan)
            for plan in state.plans.values()
            if plan.userid == p["userid"] and can_read(state, plan)
        ]


DRAFT = 0


def can_read(state: SiteState, plan: SimPlan) -> bool:
    """competency\\plan::can_read(): a draft plan needs planviewdraft, any other planview."""
    return "moodle/competency:planviewdraft" in state.capabilities if plan.status == DRAFT else True


def require_manage(state: SiteState, plan_status: int) -> None:
    """competency\\plan::can_manage(): a draft needs planmanagedraft (Moodle names planmanage)."""
    if plan_status == DRAFT and "moodle/competency:planmanagedraft" not in state.capabilities:
        raise required_capability(state, "moodle/competency:planmanage")


@function(
    "core_competency_list_plan_competencies",
    {"id": Value("int")},
    since="3.1",
    requires=("moodle/competency:planview",),
)
def list_plan_competencies(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    plan = state.plans.get(p["id"])
    if plan is None:
        raise missing_record(state, "competency_plan")
    if not can_read(state, plan):
        raise required_capability(state, "moodle/competency:planview")
    by_id = {c["id"]: c for c in _competencies(state)}
    _scale_id, labels = state.scale
    result = []
    for competency_id in plan.competencies:
        grade = state.user_competency.get((plan.userid, competency_id))
        result.append(
            {
                "competency": by_id[competency_id],
                "usercompetency": {
                    "userid": plan.userid,
                    "competencyid": competency_id,
                    "status": 0,
                    "reviewerid": None,
                    "proficiency": None if grade is None else grade == 2,
                    "grade": grade,
                    "id": plan.userid * 100 + competency_id,
                    "timecreated": 1700000000,
                    "timemodified": 1700000000,
                    "usermodified": 2,
                    "gradename": labels[grade - 1] if grade else "-",
                    "proficiencyname": "-" if grade is None else ("Yes" if grade == 2 else "No"),
                    "statusname": "-",
                },
            }
        )
    return result


@function(
    "core_competency_create_plan",
    {
        "plan": Struct(
            {
                "name": Value("text"),
                "description": Value("raw", OPTIONAL),
                "descriptionformat": Value("int", OPTIONAL),
                "userid": Value("int"),
                "templateid": Value("int", OPTIONAL),
                "origtemplateid": Value("int", OPTIONAL),
                "status": Value("int", OPTIONAL),
                "duedate": Value("int", OPTIONAL),
                "reviewerid": Value("int", OPTIONAL),
            }
        )
    },
    since="3.1",
    requires=("moodle/competency:planmanage",),
)
def create_plan(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    data = p["plan"]
    if data.get("templateid"):
        raise SimError(
            "coding_exception",
            "codingerror",
            "Coding error detected, it must be fixed by a programmer: To create a plan from a template use api::create_plan_from_template().",
        )
    if state.live_user(data["userid"]) is None:
        raise missing_record(state, "user")
    require_manage(state, data.get("status", DRAFT))  # a plan is created as a draft unless told
    with state.lock:
        plan = SimPlan(
            max(state.plans, default=0) + 1,
            data["userid"],
            data["name"],
            data.get("status", 0),
            None,
            [],
            int(time.time()),
        )
        state.plans[plan.id] = plan
        state.plan_writes.append({"action": "create_plan", "planid": plan.id, "userid": plan.userid})
        return plan_struct(state, plan)


@function(
    "core_competency_add_competency_to_plan",
    {"planid": Value("int"), "competencyid": Value("int")},
    since="3.1",
    requires=("moodle/competency:planmanage",),
)
def add_competency_to_plan(state: SiteState, p: dict[str, Any]) -> bool:
    with state.lock:
        plan = state.plans.get(p["planid"])
        if plan is None:
            raise missing_record(state, "competency_plan")
        if not can_read(state, plan):
            raise required_capability(state, "moodle/competency:planview")
        require_manage(state, plan.status)
        if plan.templateid is not None:
            raise moodle_exception(
                state, "invalidplan", "A competency can not be added to a learning plan based on a template"
            )
        if p["competencyid"] not in {c[0] for c in state.competencies()}:
            raise missing_record(state, "competency")
        if p["competencyid"] not in plan.competencies:
            plan.competencies.append(p["competencyid"])
            state.plan_writes.append(
                {
                    "action": "add_competency",
                    "planid": plan.id,
                    "competencyid": p["competencyid"],
                    "userid": plan.userid,
                }
            )
        return True


@function("core_competency_list_course_competencies", {"id": Value("int")}, since="3.1")
def list_course_competencies(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    if p["id"] not in state.courses:
        raise missing_record(state, "course")
    if state.courses[p["id"]].shortname != "CS-101":
        return []
    return [
        {
            "competency": c,
            "coursecompetency": {
                "courseid": p["id"],
                "competencyid": c["id"],
                "sortorder": i,
                "ruleoutcome": 1,
                "id": i + 1,
                "timecreated": 1700000000,
                "timemodified": 1700000000,
                "usermodified": 2,
            },
        }
        for i, c in enumerate(_competencies(state)[:3])
    ]
