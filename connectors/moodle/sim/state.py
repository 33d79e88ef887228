"""What the simulated site knows and what was written to it.

Built from a synthetic organisation with indexes by id, idnumber, email and username, so every
lookup is constant time even at 50,000 users. Writes (messages, enrolments, plans) are
recorded for tests and the demo to inspect, and every call is counted by function name.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from connectors.moodle.sim.capabilities import DEFAULT_SHOW_IDENTITY, PLUGIN_ROLE, README_ROLE
from connectors.moodle.sim.plugin_state import PluginState
from connectors.moodle.sim.versions import DEFAULT, VersionSpec, spec
from connectors.simulation.org import (
    COMPETENCY_FRAMEWORK,
    PROFICIENCY_SCALE,
    WS_USER_ID,
    Organisation,
)


@dataclass
class SimUser:
    id: int
    username: str
    firstname: str
    lastname: str
    email: str
    idnumber: str
    department: str = ""
    suspended: bool = False
    deleted: bool = False
    timezone: str = "99"
    lang: str = "en"
    lastaccess: int = 0


@dataclass
class SimPlan:
    id: int
    userid: int
    name: str
    status: int
    templateid: int | None
    competencies: list[int] = field(default_factory=list)
    timecreated: int = 0


@dataclass
class SimCohort:
    """An audience (Moodle: cohort). Totara ties program and certification assignment to them."""

    id: int
    idnumber: str
    name: str
    members: set[int] = field(default_factory=set)


@dataclass
class SiteState:
    org: Organisation
    url: str = "http://127.0.0.1"
    release: str = DEFAULT
    users: dict[int, SimUser] = field(default_factory=dict)
    by_idnumber: dict[str, int] = field(default_factory=dict)
    by_email: dict[str, list[int]] = field(default_factory=dict)
    by_username: dict[str, int] = field(default_factory=dict)
    courses: dict[int, Any] = field(default_factory=dict)
    course_by_shortname: dict[str, int] = field(default_factory=dict)
    enrolments: dict[int, dict[int, int]] = field(default_factory=dict)  # user -> course -> timestart
    participants: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    suspended_enrolments: set[tuple[int, int]] = field(default_factory=set)  # (user, course)
    completions: dict[tuple[int, int], int] = field(default_factory=dict)
    plans: dict[int, SimPlan] = field(default_factory=dict)
    user_competency: dict[tuple[int, int], int | None] = field(default_factory=dict)  # grade, 2 = proficient
    messages: list[dict[str, Any]] = field(default_factory=list)
    conversations: dict[tuple[int, int], int] = field(default_factory=dict)
    enrolled: list[dict[str, Any]] = field(default_factory=list)
    plan_writes: list[dict[str, Any]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    lock: threading.RLock = field(default_factory=threading.RLock)
    blocked_users: set[int] = field(default_factory=set)
    removed_functions: set[str] = field(default_factory=set)  # known to Moodle, not in the token's service
    sitename: str = "Simulated Moodle"
    cohorts: dict[int, SimCohort] = field(default_factory=dict)
    cohort_writes: list[dict[str, Any]] = field(default_factory=list)
    # What the site enforces (README > Moodle is the default set-up): the web-service user's
    # capabilities, the roles its role may assign (Define roles > Allow role assignments), the
    # identity fields shown (Show user identity), Force timezone, and learners' messaging privacy
    # (0 = my contacts and anyone in my courses, the default; 1 = my contacts only; 2 = anyone).
    capabilities: set[str] = field(default_factory=lambda: set(README_ROLE))
    assignable_roles: set[int] = field(default_factory=lambda: {5})
    show_identity: set[str] = field(default_factory=lambda: set(DEFAULT_SHOW_IDENTITY))
    forcetimezone: str | None = None
    timezone: str = "UTC"  # the site's default time zone (users with timezone 99)
    message_privacy: dict[int, int] = field(default_factory=dict)
    messagingallusers: bool = False
    enrolment_ends: dict[tuple[int, int], int] = field(default_factory=dict)  # (user, course) -> timeend
    rating_times: dict[tuple[int, int], int] = field(default_factory=dict)  # (user, competency) -> rated
    # The companion plugin local_lmsbridge (connectors.moodle.sim.plugin), when installed.
    plugin: PluginState | None = None
    # The completions newest first, as the report lists them: sorted once per change, not per page.
    _completion_order: tuple[dict[tuple[int, int], int], list[tuple[tuple[int, int], int]]] | None = field(
        default=None, repr=False
    )

    @classmethod
    def build(
        cls,
        org: Organisation,
        url: str = "http://127.0.0.1",
        release: str = DEFAULT,
        capabilities: set[str] | frozenset[str] | None = None,
    ) -> SiteState:
        spec(release)  # an unknown release fails here, not at the first call
        state = cls(org=org, url=url, release=release)
        if capabilities is not None:
            state.capabilities = set(capabilities)
        state._add(SimUser(2, "admin", "Admin", "User", "admin@example.org", ""))
        state._add(SimUser(WS_USER_ID, "lmsbridge", "Learning", "Team", "learning@example.org", ""))
        for p in org.people:
            state._add(
                SimUser(
                    p.user_id,
                    p.username,
                    p.first_name,
                    p.last_name,
                    p.lms_email,
                    p.lms_idnumber,
                    p.department,
                    suspended=p.suspended,
                    timezone=p.timezone,
                )
            )
        for i, extra in enumerate(org.lms_only):
            state._add(
                SimUser(
                    extra.user_id,
                    extra.username,
                    extra.first_name,
                    extra.last_name,
                    extra.email,
                    "",
                    deleted=i == 2,
                )
            )
        for course in org.courses:
            state.courses[course.id] = course
            state.course_by_shortname[course.shortname] = course.id
        for user_id, rows in org.enrolments.items():
            state.enrolments[user_id] = dict(rows)
            for course_id, _start in rows:
                state.participants[course_id].add(user_id)
        state.completions = dict(org.completions)
        for plan_id, (user_id, ratings) in enumerate(org.plan_ratings.items(), start=1):
            state.plans[plan_id] = SimPlan(
                plan_id, user_id, "Customer Service development plan", 1, None, [c for c, _g in ratings]
            )
            for competency_id, grade in ratings:
                state.user_competency[(user_id, competency_id)] = grade
        return state

    def _add(self, user: SimUser) -> None:
        self.users[user.id] = user
        if user.idnumber:
            self.by_idnumber[user.idnumber] = user.id
        self.by_email.setdefault(user.email.lower(), []).append(user.id)
        self.by_username[user.username] = user.id

    # ------------------------------------------------------------------ helpers

    @property
    def spec(self) -> VersionSpec:
        return spec(self.release)

    @property
    def namespaced(self) -> bool:
        """Moodle 5.0 answers with namespaced exception classes."""
        return self.spec.namespaced_exceptions

    def enrolment_active(self, user_id: int, course_id: int, now: int | None = None) -> bool:
        """As Moodle's get_enrolled_sql(onlyactive): status active, started, not ended."""
        start = self.enrolments.get(user_id, {}).get(course_id)
        if start is None or (user_id, course_id) in self.suspended_enrolments:
            return False
        moment = int(time.time()) if now is None else now
        end = self.enrolment_ends.get((user_id, course_id), 0)
        return start <= moment and (end == 0 or end > moment)

    def suspend_enrolment(self, user_id: int, course_id: int, timeend: int = 0) -> None:
        """Suspend an existing enrolment (status suspended, optional end), as an administrator does."""
        with self.lock:
            if course_id not in self.enrolments.get(user_id, {}):
                raise KeyError(f"user {user_id} is not enrolled in course {course_id}")
            self.suspended_enrolments.add((user_id, course_id))
            if timeend:
                self.enrolment_ends[(user_id, course_id)] = timeend
            self.log_enrolment(user_id, course_id)

    def rate(self, user_id: int, competency_id: int, grade: int | None, when: int | None = None) -> None:
        """Rate a learner's competency directly (in the user's context, not in a plan)."""
        with self.lock:
            self.user_competency[(user_id, competency_id)] = grade
            self.rating_times[(user_id, competency_id)] = when or int(time.time())
            if self.plugin is not None:
                self.plugin.log_rating(
                    user_id, competency_id, grade, self.rating_times[(user_id, competency_id)]
                )

    def live_user(self, user_id: int) -> SimUser | None:
        user = self.users.get(user_id)
        return user if user is not None and not user.deleted else None

    def competencies(self) -> list[tuple[int, str, str]]:
        return list(self.org.competencies)

    framework = COMPETENCY_FRAMEWORK
    scale = PROFICIENCY_SCALE

    def completions_newest_first(self) -> list[tuple[tuple[int, int], int]]:
        """``((user, course), time)`` of every completion, newest first (ties by user, course).

        Kept sorted between changes: a report read in pages must not sort everything per page.
        Completions change through :meth:`complete`, or by replacing the whole dict.
        """
        with self.lock:
            if self._completion_order is None or self._completion_order[0] is not self.completions:
                done = sorted(self.completions.items(), key=lambda item: (-item[1], item[0]))
                self._completion_order = (self.completions, done)
            return self._completion_order[1]

    def complete(self, user_id: int, course_id: int, when: int | None = None) -> None:
        with self.lock:
            self._completion_order = None
            self.completions[(user_id, course_id)] = when or int(time.time())
            new_enrolment = course_id not in self.enrolments.get(user_id, {})
            self.enrolments.setdefault(user_id, {}).setdefault(course_id, int(time.time()))
            self.participants[course_id].add(user_id)
            if new_enrolment:
                self.log_enrolment(user_id, course_id)
            if self.plugin is not None:
                self.plugin.log(
                    "completion", user_id, self.completions[(user_id, course_id)], courseid=course_id
                )

    def enrolment_status(self, user_id: int, course_id: int) -> str:
        """The plugin's enrolment state (change_log::enrolment_status): active, suspended, ended
        (every end date passed) or removed."""
        if course_id not in self.enrolments.get(user_id, {}):
            return "removed"
        if self.enrolment_active(user_id, course_id):
            return "active"
        end = self.enrolment_ends.get((user_id, course_id), 0)
        return "ended" if end and end <= int(time.time()) else "suspended"

    def log_enrolment(self, user_id: int, course_id: int) -> None:
        if self.plugin is not None:
            self.plugin.log(
                "enrolment",
                user_id,
                int(time.time()),
                courseid=course_id,
                status=self.enrolment_status(user_id, course_id),
            )

    def log_user(self, user: SimUser) -> None:
        if self.plugin is not None:
            if user.deleted:
                self.plugin.log("user", user.id, int(time.time()), deleted=True)
            else:
                self.plugin.log(
                    "user",
                    user.id,
                    int(time.time()),
                    idnumber=user.idnumber,
                    email=user.email,
                    suspended=user.suspended,
                )

    def install_plugin(self, version: int, grant: bool = True) -> PluginState:
        """Install local_lmsbridge: its log starts with the site's completions, ratings and
        enrolments (db/install.php, \\local_lmsbridge\\backfill), before any change. ``grant``:
        its capabilities are added to the web-service user's role, as README > Moodle says."""
        with self.lock:
            if grant:
                self.capabilities |= PLUGIN_ROLE
            plugin = PluginState(version=version)
            now = int(time.time())
            for (user_id, course_id), when in sorted(self.completions.items(), key=lambda i: (i[1], i[0])):
                plugin.log("completion", user_id, when, courseid=course_id, created=now)
            for (user_id, competency_id), grade in sorted(self.user_competency.items()):
                if grade is not None:
                    rated = self.rating_times.get((user_id, competency_id), now)
                    plugin.log_rating(user_id, competency_id, grade, rated, created=now)
            for user_id in sorted(self.enrolments):
                if self.live_user(user_id) is None:
                    continue
                for course_id in sorted(self.enrolments[user_id]):
                    status = "active" if self.enrolment_active(user_id, course_id) else "suspended"
                    plugin.log("enrolment", user_id, now, courseid=course_id, status=status, created=now)
            self.plugin = plugin
            return plugin

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "release": self.release,
                "capabilities": sorted(self.capabilities),
                "forcetimezone": self.forcetimezone,
                "users": len(self.users),
                "courses": len(self.courses),
                "messages": list(self.messages),
                "enrolments": list(self.enrolled),
                "plan_writes": list(self.plan_writes),
                "cohort_writes": list(self.cohort_writes),
                "calls": dict(self.calls),
                "total_calls": sum(self.calls.values()),
            }
