"""The companion plugin's web-service functions (moodle/local_lmsbridge/db/services.php).

Same parameters, answers and capability checks as the plugin's classes/external/*.php; the
log and recommendations they read and write are in :mod:`connectors.moodle.sim.plugin_state`.
"""

from __future__ import annotations

from typing import Any

from connectors.moodle.sim.functions import SimError, function
from connectors.moodle.sim.plugin_state import PluginState
from connectors.moodle.sim.spec import DEFAULT, Multiple, Struct, Value
from connectors.moodle.sim.state import SiteState

PLUGIN = "local_lmsbridge"
READ = "local/lmsbridge:readchanges"
MANAGE = "local/lmsbridge:managerecommendations"
MAX_LIMIT = 1000  # get_changes::MAX_LIMIT


def _plugin(state: SiteState) -> PluginState:
    assert state.plugin is not None  # the server answers "no such function" without the plugin
    return state.plugin


def _grade_name(state: SiteState, competency_id: int, grade: int | None) -> str:
    if not competency_id or not grade:
        return ""
    names = state.scale[1]
    return names[grade - 1] if 0 < grade <= len(names) else ""


@function(
    "local_lmsbridge_get_changes",
    {"since_id": Value("int"), "limit": Value("int", DEFAULT, 500)},
    requires=(READ,),
    plugin=PLUGIN,
)
def get_changes(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    since, limit = p["since_id"], max(1, min(MAX_LIMIT, p["limit"]))
    if since < 0:
        exception = (
            "core\\exception\\invalid_parameter_exception"
            if state.namespaced
            else "invalid_parameter_exception"
        )
        raise SimError(
            exception, "invalidparameter", "Invalid parameter value detected", "since_id must be 0 or more"
        )
    plugin = _plugin(state)
    with plugin.lock:
        # Row ids are positions + 1 (rows are only appended): the rows after since_id start at
        # index since_id, and one page is a slice, not a copy of the whole log's tail.
        rows = plugin.changes[since : since + limit + 1]
    more = len(rows) > limit
    rows = rows[:limit]
    changes = [
        {
            **{k: row[k] for k in ("id", "kind", "userid", "courseid", "competencyid", "planid", "grade")},
            "gradename": _grade_name(state, row["competencyid"], row["grade"]),
            **{k: row[k] for k in ("proficiency", "status", "idnumber", "email")},
            "suspended": bool(row["suspended"]),
            "deleted": bool(row["deleted"]),
            "timechanged": row["timechanged"],
            "timecreated": row["timecreated"],
        }
        for row in rows
    ]
    return {
        "changes": changes,
        "lastid": changes[-1]["id"] if changes else since,
        "more": more,
        "latestid": plugin.last_id(),
        "warnings": [],
    }


ITEM = Struct(
    {
        "reference": Value("alphanumext"),
        "title": Value("raw"),
        "reason": Value("raw", DEFAULT, ""),
        "managerreason": Value("raw", DEFAULT, ""),
        "url": Value("raw", DEFAULT, ""),
        "duedate": Value("int", DEFAULT, 0),
        "managerid": Value("int", DEFAULT, 0),
    }
)


@function(
    "local_lmsbridge_set_recommendations",
    {"recommendations": Multiple(Struct({"userid": Value("int"), "items": Multiple(ITEM, DEFAULT)}))},
    requires=(MANAGE,),
    plugin=PLUGIN,
)
def set_recommendations(state: SiteState, p: dict[str, Any]) -> dict[str, Any]:
    plugin = _plugin(state)
    warnings, users, stored, removed = [], 0, 0, 0
    with plugin.lock:
        for entry in p["recommendations"]:
            user_id = entry["userid"]
            if state.live_user(user_id) is None:
                warnings.append(
                    {
                        "item": "user",
                        "itemid": user_id,
                        "warningcode": "invaliduser",
                        "message": "No such user: their recommendations were not stored",
                    }
                )
                continue
            before = plugin.recommendations.get(user_id, {})
            after = {item["reference"]: {**item, "userid": user_id} for item in entry["items"]}
            removed += len(set(before) - set(after))
            stored += len(after)
            users += 1
            if after:
                plugin.recommendations[user_id] = after
            else:
                plugin.recommendations.pop(user_id, None)
    return {"users": users, "stored": stored, "removed": removed, "warnings": warnings}


@function("local_lmsbridge_get_info", {}, requires=(READ,), plugin=PLUGIN)
def get_info(state: SiteState, _p: dict[str, Any]) -> dict[str, Any]:
    plugin = _plugin(state)
    hook = plugin.webhook
    return {
        "component": PLUGIN,
        "version": plugin.version,
        "release": plugin.release,
        "lastid": plugin.last_id(),
        "webhook": {
            "enabled": hook.enabled,
            "url": hook.url,
            "secretset": bool(hook.secret),
            "lastsent": hook.last_sent,
            "laststatus": hook.last_status,
        },
    }
