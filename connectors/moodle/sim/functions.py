"""The web-service functions the simulator implements, with Moodle's parameters and answers.

Parameter descriptions follow each function's ``*_parameters()`` in Moodle core; answers follow
its ``*_returns()`` and the recorded answers in ``shared/reference/moodle``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.moodle.sim.capabilities import NAMES, visible_fields
from connectors.moodle.sim.spec import DEFAULT, OPTIONAL, Multiple, Struct, Value
from connectors.moodle.sim.state import SimUser, SiteState
from connectors.moodle.sim.versions import SPECS
from connectors.simulation.org import CATEGORIES, WS_USER_ID

MESSAGE_MAX_LENGTH = 4096
RELEASES = {name: (spec.release, spec.version) for name, spec in SPECS.items()}
SITE_COURSE = 1  # the front page course, which has no enrolment instances
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SimError(Exception):
    def __init__(self, exception: str, errorcode: str, message: str, debuginfo: str | None = None) -> None:
        super().__init__(message)
        self.exception = exception
        self.errorcode = errorcode
        self.message = message
        self.debuginfo = debuginfo


class PhpFatal(Exception):
    """A PHP fatal error inside the function: Moodle answers HTTP 500 with no body."""


def moodle_exception(state: SiteState, code: str, message: str) -> SimError:
    return SimError(
        "core\\exception\\moodle_exception" if state.namespaced else "moodle_exception", code, message
    )


def missing_record(state: SiteState, table: str) -> SimError:
    if state.namespaced:
        return SimError(
            "dml_missing_record_exception", "invalidrecordunknown", "Can't find data record in database."
        )
    return SimError(
        "dml_missing_record_exception", "invalidrecord", f"Can't find data record in database table {table}."
    )


def required_capability(state: SiteState, capability: str) -> SimError:
    """Moodle's require_capability() refusal: ``nopermissions`` naming the capability."""
    exception = (
        "core\\exception\\required_capability_exception"
        if state.namespaced
        else "required_capability_exception"
    )
    name = NAMES.get(capability, capability)
    return SimError(
        exception, "nopermissions", f"Sorry, but you do not currently have permissions to do that ({name})."
    )


def require(state: SiteState, *capabilities: str) -> None:
    for capability in capabilities:
        if capability not in state.capabilities:
            raise required_capability(state, capability)


@dataclass(frozen=True)
class Function:
    name: str
    params: Struct
    handler: Callable[[SiteState, dict[str, Any]], Any]
    since: str = "3.6"
    requires: tuple[str, ...] = ()  # capabilities checked (after parameter validation) before it runs
    plugin: str | None = None  # the plugin that declares it (db/services.php), when not Moodle core


REGISTRY: dict[str, Function] = {}

# Per-call web-service settings (moodlewssettinglang, moodlewssettingtimezone) of the call in flight.
CALL = threading.local()


def call_setting(name: str) -> str | None:
    settings: dict[str, str] = getattr(CALL, "settings", {})
    return settings.get(name)


def function(
    name: str,
    params: dict[str, Any],
    since: str = "3.6",
    requires: tuple[str, ...] = (),
    plugin: str | None = None,
) -> Callable[[Callable[[SiteState, dict[str, Any]], Any]], Callable[[SiteState, dict[str, Any]], Any]]:
    def register(
        handler: Callable[[SiteState, dict[str, Any]], Any],
    ) -> Callable[[SiteState, dict[str, Any]], Any]:
        REGISTRY[name] = Function(name, Struct(params), handler, since, requires, plugin)
        return handler

    return register


def picture(state: SiteState, size: str) -> str:
    return f"{state.url}/theme/image.php/boost/core/1795378138/u/{size}"


def user_struct(state: SiteState, user: SimUser, fields: frozenset[str] | None = None) -> dict[str, Any]:
    """A user as ``user_get_user_details`` returns it; ``fields``: only those the caller may see."""
    data = {
        "id": user.id,
        "username": user.username,
        "firstname": user.firstname,
        "lastname": user.lastname,
        "fullname": f"{user.firstname} {user.lastname}",
        "email": user.email,
        "department": user.department,
        "idnumber": user.idnumber,
        "firstaccess": 0,
        "lastaccess": user.lastaccess,
        "auth": "manual",
        "suspended": user.suspended,
        "confirmed": True,
        "lang": user.lang,
        "theme": "",
        "timezone": user.timezone,
        "mailformat": 1,
        "profileimageurlsmall": picture(state, "f2"),
        "profileimageurl": picture(state, "f1"),
    }
    for extra in state.spec.user_extra_fields:
        data[extra] = 0
    if fields is not None:
        data = {k: v for k, v in data.items() if k in fields}
    if not user.idnumber:
        data.pop("idnumber", None)  # only a non-empty idnumber is returned
    return data


def caller_sees(state: SiteState) -> frozenset[str] | None:
    """The user fields the web-service user may see at system level (None: no one at all)."""
    return visible_fields(state.capabilities, state.show_identity, state.spec.names_need_viewfullnames)


# ---------------------------------------------------------------------- site and users


@function("core_webservice_get_site_info", {"serviceshortnames": Multiple(Value("text"), DEFAULT)})
def site_info(state: SiteState, _p: dict[str, Any]) -> dict[str, Any]:
    release, version = RELEASES.get(state.release, RELEASES["4.4"])
    features = [
        "usecomments",
        "usetags",
        "enablenotes",
        "messaging",
        "enableblogs",
        "enablecompletion",
        "enablebadges",
    ]
    advanced = [{"name": f, "value": 1} for f in features] + [
        {"name": "messagingallusers", "value": 0},
        {"name": "enablecustomreports", "value": 1},
        {"name": "enableglobalsearch", "value": 0},
        {"name": "mnet_dispatcher_mode", "value": 0},
    ]
    advanced.extend({"name": feature, "value": 1} for feature in state.spec.site_features)
    ws = state.users[WS_USER_ID]
    return {
        "sitename": state.sitename,
        "username": ws.username,
        "firstname": ws.firstname,
        "lastname": ws.lastname,
        "fullname": f"{ws.firstname} {ws.lastname}",
        "lang": "en",
        "userid": ws.id,
        "siteurl": state.url,
        "userpictureurl": picture(state, "f1"),
        "functions": [{"name": name, "version": version} for name in sorted(service_functions(state))],
        "downloadfiles": 0,
        "uploadfiles": 0,
        "release": release,
        "version": version,
        "mobilecssurl": "",
        "advancedfeatures": advanced,
        "usercanmanageownfiles": True,
        "userquota": 0,
        "usermaxuploadfilesize": -1,
        "userhomepage": 1,
        "userprivateaccesskey": hashlib.sha256(state.url.encode()).hexdigest()[:32],
        "siteid": 1,
        "sitecalendartype": "gregorian",
        "usercalendartype": "gregorian",
        "userissiteadmin": False,
        "theme": "boost",
        "limitconcurrentlogins": 0,
    }


def _version(release: str) -> tuple[int, ...]:
    return tuple(int(x) for x in release.split(".")[:2])


def installed(state: SiteState, f: Function) -> bool:
    """Whether the site has the function at all: its release has it, and its plugin is installed."""
    return _version(f.since) <= _version(state.release) and (f.plugin is None or state.plugin is not None)


def service_functions(state: SiteState) -> set[str]:
    """The functions the token's service offers: everything the site has (unless removed)."""
    return {name for name, f in REGISTRY.items() if installed(state, f)} - state.removed_functions


@function(
    "core_user_get_users_by_field", {"field": Value("text"), "values": Multiple(Value("raw"))}, since="2.4"
)
def users_by_field(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    field, values = p["field"], p["values"]
    if field not in ("id", "idnumber", "username", "email"):
        raise SimError(_ipe(state), "invalidparameter", "Invalid parameter value detected")
    found: dict[int, SimUser] = {}
    for value in values:
        if field == "email" and not EMAIL.match(value):
            raise SimError(_ipe(state), "invalidparameter", "Invalid parameter value detected")
        if field == "id":
            ids = [int(value)] if str(value).isdigit() else []
        elif field == "idnumber":
            ids = [state.by_idnumber[value]] if value in state.by_idnumber else []
        elif field == "username":
            ids = [state.by_username[value]] if value in state.by_username else []
        else:  # exact match, as on PostgreSQL
            ids = [uid for uid in state.by_email.get(value.lower(), []) if state.users[uid].email == value]
        for uid in ids:
            user = state.live_user(uid)
            if user is not None:
                found[uid] = user
    # "Return the user only if the searched field is returned. Otherwise it means that the $USER
    # was not allowed to search the returned user." (user/externallib.php)
    fields = caller_sees(state)
    if fields is None:
        return []
    answers = (user_struct(state, u, fields) for u in found.values())
    return [a for a in answers if a.get(field)]


def _ipe(state: SiteState) -> str:
    return (
        "core\\exception\\invalid_parameter_exception" if state.namespaced else "invalid_parameter_exception"
    )


@function(
    "core_user_get_users",
    {"criteria": Multiple(Struct({"key": Value("text"), "value": Value("raw")}))},
    since="2.5",
)
def get_users(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    warnings, checks, seen = [], [], set()
    for criterion in p["criteria"]:
        key, value = criterion["key"], criterion["value"]
        if key not in ("id", "lastname", "firstname", "idnumber", "username", "email", "auth"):
            warnings.append(
                {
                    "item": key,
                    "warningcode": "invalidfieldparameter",
                    "message": f"The search key '{key}' is not supported, look at the web service documentation",
                }
            )
            continue
        if key in seen:
            raise moodle_exception(state, "keyalreadyset", f"Key '{key}' set twice")
        seen.add(key)
        checks.append((key, value))
    users = []
    fields = caller_sees(state)
    if checks and fields is not None:
        for user in state.users.values():
            if user.deleted:
                continue
            if all(_matches(user, key, value) for key, value in checks):
                answer = user_struct(state, user, fields)
                # Only users for whom every searched field is returned (user/externallib.php).
                if all(answer.get(key) for key, _value in checks):
                    users.append(answer)
    return {"users": users, "warnings": warnings}


def _truthy(value: Any) -> bool:
    """PHP's !empty() on an option value."""
    return value not in (None, "", "0", 0, False)


def _matches(user: SimUser, key: str, value: str) -> bool:
    if key in ("email", "firstname", "lastname"):  # SQL LIKE, case-insensitive
        pattern = value.lower().replace("%", "*").replace("_", "?")
        return fnmatch.fnmatchcase(getattr(user, key).lower(), pattern)
    if key == "id":
        return str(user.id) == value
    if key == "auth":
        return value == "manual"
    return str(getattr(user, key)) == value


# ---------------------------------------------------------------------- courses


def course_struct(state: SiteState, course: Any) -> dict[str, Any]:
    return {
        "id": course.id,
        "fullname": course.fullname,
        "displayname": course.fullname,
        "shortname": course.shortname,
        "courseimage": f"{state.url}/pluginfile.php/{course.id}/course/generated/course.svg",
        "categoryid": course.category_id,
        "categoryname": CATEGORIES.get(course.category_id, "Miscellaneous"),
        "sortorder": 10000 + course.id,
        "summary": f"{course.fullname} (simulated)",
        "summaryformat": 1,
        "summaryfiles": [],
        "overviewfiles": [],
        "showactivitydates": True,
        "showcompletionconditions": True,
        "contacts": [],
        "enrollmentmethods": ["manual"] if course.manual_enrolment else ["self"],
        "idnumber": f"C-{course.shortname}",
        "format": "topics",
        "showgrades": 1,
        "newsitems": 1,
        "startdate": course.startdate,
        "enddate": 0,
        "maxbytes": 0,
        "showreports": 0,
        "visible": 1,
        "groupmode": 0,
        "groupmodeforce": 0,
        "defaultgroupingid": 0,
        "enablecompletion": int(course.enablecompletion),
        "completionnotify": 0,
        "lang": "",
        "theme": "",
        "marker": 0,
        "legacyfiles": 0,
        "calendartype": "",
        "timecreated": course.startdate,
        "timemodified": course.startdate,
        "requested": 0,
        "cacherev": course.startdate,
        "filters": [],
        "courseformatoptions": [
            {"name": "hiddensections", "value": 1},
            {"name": "coursedisplay", "value": 0},
        ],
    }


@function(
    "core_course_get_courses_by_field",
    {"field": Value("text", DEFAULT, ""), "value": Value("raw", DEFAULT, "")},
    since="3.2",
)
def courses_by_field(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    field, value = p["field"], str(p["value"])
    courses = list(state.courses.values())
    if field == "id":
        courses = [c for c in courses if str(c.id) == value]
    elif field == "ids":
        wanted = {v.strip() for v in value.split(",") if v.strip()}
        courses = [c for c in courses if str(c.id) in wanted]
    elif field == "shortname":
        courses = [c for c in courses if c.shortname == value]
    elif field == "idnumber":
        courses = [c for c in courses if f"C-{c.shortname}" == value]
    elif field == "category":
        courses = [c for c in courses if str(c.category_id) == value]
    elif field != "":
        raise SimError(_ipe(state), "invalidparameter", "Invalid parameter value detected")
    return {"courses": [course_struct(state, c) for c in courses], "warnings": []}


@function(
    "core_course_get_courses",
    {"options": Struct({"ids": Multiple(Value("int"), OPTIONAL)}, DEFAULT, {})},
    since="2.2",
)
def get_courses(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    ids = p["options"].get("ids")
    courses = [state.courses[i] for i in ids if i in state.courses] if ids else list(state.courses.values())
    return [
        {
            k: v
            for k, v in course_struct(state, c).items()
            if k
            not in (
                "courseimage",
                "contacts",
                "enrollmentmethods",
                "filters",
                "summaryfiles",
                "overviewfiles",
                "categoryname",
                "sortorder",
            )
        }
        for c in courses
    ]


# ---------------------------------------------------------------------- enrolment and completion


def _progress(state: SiteState, user_id: int, course: Any) -> tuple[bool | None, float | None]:
    if not course.enablecompletion:
        return None, None
    done = (user_id, course.id) in state.completions
    if done:
        return True, 100.0
    digest = int(hashlib.sha256(f"{user_id}:{course.id}".encode()).hexdigest()[:4], 16)
    return False, float(digest % 90)


@function(
    "core_enrol_get_users_courses",
    {"userid": Value("int"), "returnusercount": Value("bool", DEFAULT, True)},
    since="2.2",
)
def users_courses(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    user_id = p["userid"]
    if state.live_user(user_id) is None:
        raise missing_record(state, "user")
    result = []
    for course_id in sorted(state.enrolments.get(user_id, {}), reverse=True):
        if not state.enrolment_active(user_id, course_id):
            continue  # enrol_get_users_courses(..., onlyactive=true): active enrolments only
        course = state.courses[course_id]
        completed, progress = _progress(state, user_id, course)
        item: dict[str, Any] = {
            "id": course.id,
            "shortname": course.shortname,
            "fullname": course.fullname,
            "displayname": course.fullname,
            "idnumber": f"C-{course.shortname}",
            "visible": 1,
            "summary": f"{course.fullname} (simulated)",
            "summaryformat": 1,
            "format": "topics",
            "courseimage": f"{state.url}/pluginfile.php/{course.id}/course/generated/course.svg",
            "showgrades": True,
            "lang": "",
            "enablecompletion": course.enablecompletion,
            "completionhascriteria": course.enablecompletion,
            "completionusertracked": True,
            "category": course.category_id,
            "progress": progress,
            "completed": completed,
            "startdate": course.startdate,
            "enddate": 0,
            "marker": 0,
            "lastaccess": None,
            "isfavourite": False,
            "hidden": False,
            "overviewfiles": [],
            "showactivitydates": True,
            "showcompletionconditions": True,
            "timemodified": course.startdate,
        }
        if p["returnusercount"]:
            item["enrolledusercount"] = len(state.participants.get(course.id, ()))
        result.append(item)
    return result


@function(
    "core_enrol_get_enrolled_users",
    {
        "courseid": Value("int"),
        "options": Multiple(Struct({"name": Value("text"), "value": Value("raw")}), DEFAULT),
    },
    since="2.1",
    requires=("moodle/course:viewparticipants",),
)
def enrolled_users(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    course = state.courses.get(p["courseid"])
    if course is None:
        raise missing_record(state, "course")
    options = {o["name"]: o["value"] for o in p["options"] if o["name"] in state.spec.enrolled_users_options}
    fields = [f.strip() for f in options.get("userfields", "").split(",") if f.strip()]
    start = int(options.get("limitfrom", 0) or 0)
    limit = int(options.get("limitnumber", 0) or 0)
    onlyactive = _truthy(options.get("onlyactive"))
    onlysuspended = _truthy(options.get("onlysuspended"))  # Moodle 3.11+
    if onlyactive or onlysuspended:
        require(state, "moodle/course:enrolreview")
    if onlyactive and onlysuspended:
        raise SimError(
            "coding_exception",
            "codingerror",
            "Coding error detected, it must be fixed by a programmer: Both onlyactive and onlysuspended are set, this is probably not what you want!",
        )
    ids = sorted(state.participants.get(course.id, ()))
    ids = [uid for uid in ids if state.live_user(uid) is not None]
    if onlyactive:  # active enrolment status, started and not ended, and an active account
        ids = [
            uid for uid in ids if not state.users[uid].suspended and state.enrolment_active(uid, course.id)
        ]
    if onlysuspended:  # the rest: suspended, not started or ended enrolments, or suspended accounts
        ids = [uid for uid in ids if state.users[uid].suspended or not state.enrolment_active(uid, course.id)]
    ids = ids[start : start + limit] if limit else ids[start:]
    result = []
    seen = caller_sees(state) or frozenset({"id", "fullname"})
    if "moodle/course:useremail" in state.capabilities:  # course context: email shown
        seen = seen | {"email"}
    wanted = set(fields) | {"id"} if fields else None  # Moodle always returns the id

    def asked(key: str) -> bool:
        return wanted is None or key in wanted

    for uid in ids:
        user = state.users[uid]
        item = {k: v for k, v in user_struct(state, user, seen).items() if asked(k)}
        # What only some callers ask for is built only for them (the bridge asks for ids alone).
        if asked("lastcourseaccess"):
            item["lastcourseaccess"] = 0
        if asked("roles"):
            item["roles"] = [{"roleid": 5, "name": "", "shortname": "student", "sortorder": 0}]
        if asked("enrolledcourses"):
            item["enrolledcourses"] = [
                {"id": c, "fullname": state.courses[c].fullname, "shortname": state.courses[c].shortname}
                for c in sorted(state.enrolments.get(uid, {}), reverse=True)
                if state.enrolment_active(uid, c)
            ]
        result.append(item)
    return result


@function(
    "core_completion_get_course_completion_status",
    {"courseid": Value("int"), "userid": Value("int")},
    since="2.9",
    requires=("report/completion:view",),
)
def completion_status(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    course = state.courses.get(p["courseid"])
    user = state.live_user(p["userid"])
    if course is None:
        raise missing_record(state, "course")
    if user is None:
        raise missing_record(state, "user")
    if p["courseid"] not in state.enrolments.get(user.id, {}):
        raise moodle_exception(state, "usernotenroled", "User is not enrolled in this course")
    if not course.enablecompletion:
        raise moodle_exception(state, "nocriteriaset", "No criteria set for this course")
    when = state.completions.get((user.id, course.id))
    return {
        "completionstatus": {
            "completed": when is not None,
            "aggregation": 1,
            "completions": [
                {
                    "type": 4,
                    "title": "Activity completion",
                    "status": "Yes" if when else "No",
                    "complete": when is not None,
                    "timecompleted": when,
                    "details": {
                        "type": "Activity completion",
                        "criteria": "All activities",
                        "requirement": "Marking complete",
                        "status": "",
                    },
                }
            ],
        },
        "warnings": [],
    }


# ---------------------------------------------------------------------- messages


@function(
    "core_message_send_instant_messages",
    {
        "messages": Multiple(
            Struct(
                {
                    "touserid": Value("int"),
                    "text": Value("raw"),
                    "textformat": Value("int", DEFAULT, 0),
                    "clientmsgid": Value("text", OPTIONAL),
                }
            )
        )
    },
    since="2.2",
    requires=("moodle/site:sendmessage",),
)
def send_instant_messages(state: SiteState, p: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    with state.lock:
        for message in p["messages"]:
            to = message["touserid"]
            result: dict[str, Any] = {}
            if state.live_user(to) is None:
                result = {
                    "msgid": -1,
                    "errormessage": f"You cannot send a message to a user ID ({to}) that doesn't exist.",
                }
                if state.spec.cantsendtouser:
                    result["cantsendtouser"] = ""
            elif len(message["text"].encode()) > MESSAGE_MAX_LENGTH:
                result = {"msgid": -1, "errormessage": "The message is longer than the maximum allowed."}
            elif not can_contact(state, to):
                user = state.users[to]
                result = {
                    "msgid": -1,
                    "errormessage": f"You can't message {user.firstname} {user.lastname} due to their message "
                    "preferences. Try adding them as a contact.",
                }
            else:
                conversation = state.conversations.setdefault((WS_USER_ID, to), len(state.conversations) + 1)
                msgid = len(state.messages) + 1
                now = int(time.time())
                state.messages.append(
                    {
                        "id": msgid,
                        "useridfrom": WS_USER_ID,
                        "touserid": to,
                        "text": message["text"],
                        "textformat": message["textformat"],
                        "timecreated": now,
                        "conversationid": conversation,
                    }
                )
                result = {
                    "msgid": msgid,
                    "text": message["text"],
                    "timecreated": now,
                    "conversationid": conversation,
                    "useridfrom": WS_USER_ID,
                }
            if "clientmsgid" in message:
                result["clientmsgid"] = message["clientmsgid"]
            result["candeletemessagesforallusers"] = False
            results.append(result)
    return results


def can_contact(state: SiteState, to: int) -> bool:
    """core_message\\api::can_contact_user for the web-service user (message/classes/api.php, 5.0).

    ``moodle/site:messageanyuser`` bypasses privacy and blocks; otherwise a block refuses, and so
    does the learner's privacy preference: "anyone on the site" (only with messagingallusers), or
    "my contacts and anyone in my courses" (the default) — and the web-service user shares no
    course with learners and is nobody's contact.
    """
    if "moodle/site:messageanyuser" in state.capabilities or to == WS_USER_ID:
        return True
    if to in state.blocked_users:
        return False
    privacy = state.message_privacy.get(to, 0)
    if privacy == 2 and state.messagingallusers:
        return True
    return any(WS_USER_ID in state.participants.get(c, ()) for c in state.enrolments.get(to, {}))


@function(
    "core_message_get_messages",
    {
        "useridto": Value("int"),
        "useridfrom": Value("int", DEFAULT, 0),
        "type": Value("text", DEFAULT, "both"),
        "read": Value("bool", DEFAULT, True),
        "newestfirst": Value("bool", DEFAULT, True),
        "limitfrom": Value("int", DEFAULT, 0),
        "limitnum": Value("int", DEFAULT, 0),
    },
    since="2.8",
)
def get_messages(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    if p["type"] not in ("notifications", "conversations", "both"):
        raise SimError(_ipe(state), "invalidparameter", "Invalid parameter value detected")
    if p["useridto"] and state.live_user(p["useridto"]) is None:
        raise moodle_exception(state, "invaliduser", "Invalid user")
    if WS_USER_ID not in (p["useridto"], p["useridfrom"]):
        raise moodle_exception(state, "accessdenied", "Access denied")
    if p["read"]:  # nothing the simulator sends is ever read by the learner
        return {"messages": [], "warnings": []}
    with state.lock:
        found = [
            m
            for m in state.messages
            if (not p["useridto"] or m["touserid"] == p["useridto"])
            and (not p["useridfrom"] or m["useridfrom"] == p["useridfrom"])
        ]
    found.sort(key=lambda m: (m["timecreated"], m["id"]), reverse=p["newestfirst"])
    found = (
        found[p["limitfrom"] : p["limitfrom"] + p["limitnum"]] if p["limitnum"] else found[p["limitfrom"] :]
    )
    users = state.users
    return {
        "messages": [
            {
                "id": m["id"],
                "useridfrom": m["useridfrom"],
                "useridto": m["touserid"],
                "subject": "New message from Learning Team",
                "text": m["text"],
                "fullmessage": m["text"],
                "fullmessageformat": m["textformat"],
                "fullmessagehtml": m["text"] if m["textformat"] == 1 else "",
                "smallmessage": m["text"],
                "notification": 0,
                "contexturl": None,
                "contexturlname": None,
                "timecreated": m["timecreated"],
                "timeread": 0,
                "usertofullname": f"{users[m['touserid']].firstname} {users[m['touserid']].lastname}",
                "userfromfullname": "Learning Team",
            }
            for m in found
        ],
        "warnings": [],
    }


@function(
    "enrol_manual_enrol_users",
    {
        "enrolments": Multiple(
            Struct(
                {
                    "roleid": Value("int"),
                    "userid": Value("int"),
                    "courseid": Value("int"),
                    "timestart": Value("int", OPTIONAL),
                    "timeend": Value("int", OPTIONAL),
                    "suspend": Value("int", OPTIONAL),
                }
            )
        )
    },
    since="2.2",
)
def manual_enrol(state: SiteState, p: dict[str, Any]) -> None:
    """enrol_manual_external::enrol_users (enrol/manual/externallib.php, 5.0), all or nothing.

    Per enrolment: ``enrol/manual:enrol``, an active user, the role among the caller's assignable
    roles (``moodle/role:assign`` and *Allow role assignments*), an enabled manual instance. Then
    ``enrol_user()``: on an existing enrolment, start, end and status are overwritten with what
    was sent (start 0 = now, end 0 = none, active unless ``suspend``) — a suspended enrolment
    comes back active and loses its end date.
    """
    with state.lock:
        for e in p["enrolments"]:  # all or nothing: check everything before writing anything
            course = state.courses.get(e["courseid"])
            if course is None and e["courseid"] != SITE_COURSE:  # validate_context(false)
                raise SimError(
                    _ipe(state),
                    "invalidparameter",
                    "Invalid parameter value detected",
                    "Context does not exist",
                )
            require(state, "enrol/manual:enrol")
            user = state.users.get(e["userid"])
            if user is None:
                raise missing_record(state, "user")
            if user.deleted:
                raise moodle_exception(state, "userdeleted", "User deleted")
            if "moodle/role:assign" not in state.capabilities or e["roleid"] not in state.assignable_roles:
                raise moodle_exception(
                    state,
                    "wsusercannotassign",
                    f"You don't have the permission to assign this role ({e['roleid']}) to this user ({e['userid']}) in this course ({e['courseid']}).",
                )
            if course is None or not course.manual_enrolment:  # the front page has no enrolment methods
                if state.spec.noinstance_is_fatal:
                    raise PhpFatal(
                        "stripos(): Argument #1 ($haystack) must be of type string, stdClass given"
                    )
                raise moodle_exception(
                    state,
                    "wsnoinstance",
                    f"Manual enrolment plugin instance doesn't exist or is disabled for the course (id = {e['courseid']})",
                )
        for e in p["enrolments"]:
            key = (e["userid"], e["courseid"])
            state.enrolments.setdefault(e["userid"], {})[e["courseid"]] = e.get("timestart") or int(
                time.time()
            )
            if e.get("suspend"):
                state.suspended_enrolments.add(key)
            else:
                state.suspended_enrolments.discard(key)
            if e.get("timeend"):
                state.enrolment_ends[key] = e["timeend"]
            else:
                state.enrolment_ends.pop(key, None)
            state.participants[e["courseid"]].add(e["userid"])
            state.enrolled.append({**e, "time": int(time.time())})
            state.log_enrolment(e["userid"], e["courseid"])
