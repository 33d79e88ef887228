"""The web-service user's capabilities, as a set, and what Moodle shows or refuses because of them.

``README_ROLE`` is the single source of truth for the lmsbridge role: the simulator grants
exactly these by default, and a test checks that README > Moodle lists exactly this set, so a
README that forgets a capability fails the tests instead of a real site's first hour.
The visibility rules follow ``user_get_user_details()`` in Moodle 5.0's ``user/lib.php``.
"""

from __future__ import annotations

import json
from pathlib import Path

README_ROLE: frozenset[str] = frozenset(
    {
        "webservice/rest:use",
        "moodle/user:viewdetails",
        "moodle/user:viewhiddendetails",
        "moodle/user:viewalldetails",
        "moodle/site:viewuseridentity",
        "moodle/course:useremail",
        "moodle/course:view",
        "moodle/course:viewhiddencourses",
        "moodle/course:viewparticipants",
        "moodle/course:enrolreview",
        "report/completion:view",
        "moodle/reportbuilder:view",
        "moodle/site:sendmessage",
        "moodle/site:messageanyuser",
        "enrol/manual:enrol",
        "moodle/role:assign",
        "moodle/competency:competencyview",
        "moodle/competency:planview",
        "moodle/competency:planmanage",
        "moodle/competency:planviewdraft",
        "moodle/competency:planmanagedraft",
        "moodle/site:viewfullnames",
    }
)

# What README > Moodle > The companion plugin adds to the lmsbridge role once local_lmsbridge is
# installed (its db/access.php declares them; a test checks both agree).
PLUGIN_ROLE: frozenset[str] = frozenset(
    {"local/lmsbridge:readchanges", "local/lmsbridge:managerecommendations"}
)

# Moodle's names for the capabilities it refuses by name (lang/en/role.php and plugins, 5.0).
NAMES = {
    "moodle/site:sendmessage": "Send messages to any user",
    "moodle/reportbuilder:view": "View custom reports",
    "moodle/course:viewparticipants": "View participants",
    "moodle/course:enrolreview": "Review course enrolments",
    "moodle/competency:competencyview": "View competency frameworks",
    "moodle/competency:planview": "View all learning plans",
    "moodle/competency:planmanage": "Manage learning plans",
    "moodle/competency:usercompetencyview": "View a user competency",
    "enrol/manual:enrol": "Enrol users",
    "report/completion:view": "View course completion report",
    "local/lmsbridge:readchanges": "Read the lmsbridge change log (completions, ratings, enrolments, user changes)",
    "local/lmsbridge:managerecommendations": "Replace the recommendations lmsbridge shows to learners",
}

# Fields every caller who may see the user at all gets.
ALWAYS = frozenset(
    {"id", "fullname", "firstaccess", "lastaccess", "suspended", "timezone"}
    | {"profileimageurlsmall", "profileimageurl", "customfields"}
)
IDENTITY = frozenset({"email", "idnumber", "department", "institution", "phone1", "phone2"})
ALL_DETAILS = frozenset({"username", "auth", "confirmed", "lang", "theme", "mailformat", "trackforums"})
DEFAULT_SHOW_IDENTITY = frozenset({"email"})  # Site administration > Users > Permissions > User policies


NAMES_FIELDS = frozenset({"firstname", "lastname"})


def visible_fields(
    capabilities: frozenset[str] | set[str],
    show_identity: frozenset[str] | set[str],
    names_need_capability: bool = False,
) -> frozenset[str] | None:
    """The user fields a caller with these capabilities sees, or None when it sees no one.

    ``names_need_capability``: first and last name only with ``moodle/site:viewfullnames``
    (seen on 4.5.0; 5.0 also shows them when the full name format uses them).
    """
    if "moodle/user:viewdetails" not in capabilities:
        return None
    fields = set(ALWAYS)
    if not names_need_capability or "moodle/site:viewfullnames" in capabilities:
        fields |= NAMES_FIELDS
    if "moodle/site:viewuseridentity" in capabilities:
        fields |= IDENTITY & set(show_identity)
    if "moodle/user:viewalldetails" in capabilities:
        fields |= ALL_DETAILS | (IDENTITY - {"email"})
    return frozenset(fields)


def load(path: Path) -> frozenset[str]:
    """A capability list from a file: a JSON array, or one capability a line (``#`` comments)."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        items = json.loads(text)
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"{path}: expected a JSON array of capability names")
        return frozenset(i.strip() for i in items if i.strip())
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(n for n in names if n)
