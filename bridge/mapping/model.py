"""The mapping language: what an LMS administrator writes in ``mappings/*.yaml``.

A mapping ties a performance gap to the learning that closes it: who it is for (``audience``),
what opens it (``when``), what closes it (``closed_by``), what to recommend and how
(``recommend``), how to follow up (``follow_up``), how to prove it worked (``measure``) and when
it may act (``schedule``). Every model forbids unknown keys, so a typo is an error, not a
silently ignored setting. The JSON Schema shipped in ``mappings/schema.json`` is generated
from these models (``lmsbridge schema``).
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,79}$"
StrList = Annotated[list[str], Field(min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _one_of(model: BaseModel, names: list[str], what: str) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        shown = ", ".join(f"'{n.rstrip('_')}'" for n in names)
        if not given:
            raise ValueError(f"{what} needs exactly one of {shown}")
        raise ValueError(
            f"{what} has {', '.join(given)}; use exactly one of {shown} (combine with 'all'/'any')"
        )


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | int | float) else value


# --------------------------------------------------------------------------- audience


class Audience(Strict):
    """Who a mapping is for. Several keys in one block must all hold; use any/all/not to combine."""

    department: StrList | None = Field(
        default=None,
        description="Department or organisation unit; also matches its sub-units ('Operations' matches 'Operations/Warehouse').",
    )
    job_title: StrList | None = Field(default=None, description="Any of these job titles (case ignored).")
    location: StrList | None = Field(default=None, description="Any of these HR locations (case ignored).")
    manager: StrList | None = Field(default=None, description="HR id or employee number of the manager.")
    people: StrList | None = Field(default=None, description="Explicit HR ids or employee numbers.")
    started_within_days: int | None = Field(
        default=None, ge=1, description="New hires: started at most this many days ago."
    )
    started_more_than_days_ago: int | None = Field(
        description="People who started more than this many days ago.", default=None, ge=0
    )
    all: list[Audience] | None = Field(default=None, description="Every one of these blocks holds.")
    any: list[Audience] | None = Field(default=None, description="At least one of these blocks holds.")
    not_: Audience | None = Field(description="This block does not hold.", default=None, alias="not")

    @field_validator("department", "job_title", "location", "manager", "people", mode="before")
    @classmethod
    def _single_value_is_a_list(cls, value: Any) -> Any:
        return _as_list(value)


# --------------------------------------------------------------------------- triggers


class KpiThreshold(Strict):
    """A KPI compared with a number or the metric's configured target."""

    metric: str = Field(description="KPI name as the HR feeds provide it (declare it under [metrics]).")
    below: float | Literal["target"] | None = Field(
        default=None,
        description="Opens when the KPI is below this number, or below the metric's configured target ('target').",
    )
    above: float | Literal["target"] | None = Field(
        default=None,
        description="Opens when the KPI is above this number, or above the metric's configured target ('target').",
    )
    periods: int = Field(
        default=1, ge=1, le=36, description="1 = the latest period; N = the average of the last N."
    )

    @model_validator(mode="after")
    def _one_side(self) -> Self:
        _one_of(self, ["below", "above"], "kpi")
        return self


class KpiTrend(Strict):
    """A KPI that fell or rose by an amount (units or percent) over the last N periods."""

    metric: str = Field(description="KPI name as the HR feeds provide it (declare it under [metrics]).")
    fell_by: float | None = Field(
        description="Fell by at least this much (in the KPI's units).", default=None, gt=0
    )
    fell_by_percent: float | None = Field(description="Fell by at least this percentage.", default=None, gt=0)
    rose_by: float | None = Field(
        description="Rose by at least this much (in the KPI's units).", default=None, gt=0
    )
    rose_by_percent: float | None = Field(description="Rose by at least this percentage.", default=None, gt=0)
    periods: int = Field(
        default=3,
        ge=1,
        le=36,
        description="Compare the latest period with the one this many periods earlier.",
    )

    @model_validator(mode="after")
    def _one_change(self) -> Self:
        _one_of(self, ["fell_by", "fell_by_percent", "rose_by", "rose_by_percent"], "kpi_trend")
        return self


class KpiPercentile(Strict):
    """A KPI in the bottom (or top) share of a peer group, in the latest period."""

    metric: str = Field(description="KPI name as the HR feeds provide it (declare it under [metrics]).")
    bottom_percent: float | None = Field(
        description="In the lowest this-many percent of the peer group.", default=None, gt=0, le=100
    )
    top_percent: float | None = Field(
        description="In the highest this-many percent of the peer group.", default=None, gt=0, le=100
    )
    peer_group: Literal["department", "job_title", "location", "everyone"] = Field(
        default="department",
        description="Who a person is ranked against: same department, job title, location, or everyone.",
    )
    min_peers: int = Field(default=5, ge=2, description="Smaller peer groups are not ranked.")

    @model_validator(mode="after")
    def _one_side(self) -> Self:
        _one_of(self, ["bottom_percent", "top_percent"], "kpi_percentile")
        return self


class ReviewRatingTrigger(Strict):
    """The latest review rating for a competency (or 'overall') at or below a level."""

    competency: str = Field(
        default="overall",
        description="The competency as the review names it, or 'overall' for the overall rating.",
    )
    rater: Literal["official", "manager", "self", "peer"] = Field(
        default="official",
        description="Whose rating counts: the official (final) one, the manager's, the person's own, or a peer's.",
    )
    at_or_below: float | None = Field(default=None, description="On the rating's own scale.")
    normalised_at_or_below: float | None = Field(default=None, ge=0, le=1, description="On a 0-1 scale.")

    @model_validator(mode="after")
    def _one_level(self) -> Self:
        _one_of(self, ["at_or_below", "normalised_at_or_below"], "review_rating")
        return self


class CompetencyTrigger(Strict):
    """An LMS competency the learner is not proficient in (or has not been rated in)."""

    site: str = Field(description="Name of the configured LMS site ([sites.NAME]).")
    competency: str = Field(description="Competency idnumber, shortname, or 'id:N'.")
    state: Literal["not_proficient", "not_rated", "not_proficient_or_not_rated"] = Field(
        default="not_proficient_or_not_rated",
        description="Which learners match: not proficient, not rated, or either (the default).",
    )


class CompletionOlderThan(Strict):
    """Refresher / recertification: the last completion is older than N days (or missing)."""

    site: str = Field(description="Name of the configured LMS site ([sites.NAME]).")
    course: str = Field(description="Course shortname, 'id:N' or 'idnumber:X'.")
    older_than_days: int = Field(description="The last completion is older than this many days.", ge=1)
    or_never_completed: bool = Field(default=True, description="Also open for people who never completed it.")


class CertificationDue(Strict):
    """Recertification: the certification's renewal window is open, it expired, or (optionally)
    the person was never certified. Uses the expiry and window dates the LMS reports (Totara)."""

    site: str = Field(description="Name of the configured LMS site ([sites.NAME]).")
    certification: str = Field(description="Certification idnumber, shortname, or 'id:N'.")
    or_never_certified: bool = Field(
        default=True, description="Also open for people never certified (false: only renewals and expiries)."
    )


class CompletionMissing(Strict):
    """Onboarding: a course not completed N days after the person's start date."""

    site: str = Field(description="Name of the configured LMS site ([sites.NAME]).")
    course: str = Field(description="Course shortname, 'id:N' or 'idnumber:X'.")
    days_after_start: int = Field(
        description="Days after the person's HR start date by which the course should be completed.", ge=0
    )


class GoalTrigger(Strict):
    """An HR goal (from the feeds' goals export) the person missed or is behind on.

    Progress is a percentage (0-100): a goal at 100 or more is achieved. *Missed*: the due date
    has passed (at most ``missed_within_days`` ago) and the goal was not achieved. *Behind*: it
    is due within ``behind_due_within_days`` and progress is below ``behind_progress_below``.
    A goal without a reported progress or due date is not judged, and explain says so.
    """

    status: Literal["missed", "behind", "missed_or_behind"] = Field(
        default="missed_or_behind",
        description="Which goals open it: missed, behind, or either (the default).",
    )
    title_contains: StrList | None = Field(
        default=None,
        description="Only goals whose title contains one of these words (case ignored); default: every goal.",
    )
    missed_within_days: int = Field(
        default=90,
        ge=1,
        description="missed: the due date passed at most this many days ago (older misses are history).",
    )
    behind_due_within_days: int = Field(
        default=30, ge=1, description="behind: the goal is due within this many days..."
    )
    behind_progress_below: float = Field(
        default=50, gt=0, le=100, description="behind: ...and its progress (percent) is below this."
    )

    @field_validator("title_contains", mode="before")
    @classmethod
    def _single_value_is_a_list(cls, value: Any) -> Any:
        return _as_list(value)


class Trigger(Strict):
    """One condition, or a combination with all/any/not."""

    kpi: KpiThreshold | None = Field(
        default=None, description="A KPI below or above a number or the metric's target."
    )
    kpi_trend: KpiTrend | None = Field(
        default=None, description="A KPI that fell or rose by an amount over the last periods."
    )
    kpi_percentile: KpiPercentile | None = Field(
        default=None, description="A KPI in the bottom or top share of a peer group."
    )
    review_rating: ReviewRatingTrigger | None = Field(
        default=None, description="The latest review rating at or below a level."
    )
    competency: CompetencyTrigger | None = Field(
        default=None, description="An LMS competency the learner is not proficient in, or not rated in."
    )
    completion_older_than: CompletionOlderThan | None = Field(
        default=None, description="Refresher: the last completion of a course is older than N days."
    )
    completion_missing: CompletionMissing | None = Field(
        default=None, description="Onboarding: a course not completed N days after the start date."
    )
    certification_due: CertificationDue | None = Field(
        default=None,
        description="Recertification: the certification's window is open, it expired, or was never held.",
    )
    goal: GoalTrigger | None = Field(
        default=None, description="An HR goal the person missed (past due, not achieved) or is behind on."
    )
    all: list[Trigger] | None = Field(
        description="Every one of these triggers holds.", default=None, min_length=1
    )
    any: list[Trigger] | None = Field(
        description="At least one of these triggers holds.", default=None, min_length=1
    )
    not_: Trigger | None = Field(description="This trigger does not hold.", default=None, alias="not")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        _one_of(self, TRIGGER_KEYS, "a trigger")
        return self


TRIGGER_KEYS = [
    "kpi",
    "kpi_trend",
    "kpi_percentile",
    "review_rating",
    "competency",
    "completion_older_than",
    "completion_missing",
    "certification_due",
    "goal",
    "all",
    "any",
    "not_",
]


# --------------------------------------------------------------------------- closing


class CompletedRule(Strict):
    within_days: int = Field(
        default=365,
        ge=1,
        description="A completion of the recommended learning this recent (or after the recommendation) closes it.",
    )


class ProficientRule(Strict):
    site: str = Field(description="Name of the configured LMS site ([sites.NAME]).")
    competency: str = Field(description="Competency idnumber, shortname, or 'id:N'.")


class ClosedBy(Strict):
    completed: CompletedRule | None = Field(
        description="Completing the recommended learning closes it; `null` to close by competency only.",
        default_factory=CompletedRule,
    )
    competency_proficient: ProficientRule | None = Field(
        default=None, description="Becoming proficient in this LMS competency closes it."
    )
    trigger_clears: Literal["keep_open", "close"] = Field(
        default="keep_open",
        description="What happens when the trigger stops being true before the learner finishes.",
    )


# --------------------------------------------------------------------------- recommend

Channel = Literal["message", "enrol", "plan", "email"]


class RecommendTarget(Strict):
    """One piece of learning on one site, and the channels to push it through."""

    site: str = Field(description="Name of the configured LMS site ([sites.NAME]) the learning is on.")
    course: str | None = Field(default=None, description="Course shortname, 'id:N' or 'idnumber:X'.")
    program: str | None = Field(default=None, description="Totara program shortname, 'id:N' or 'idnumber:X'.")
    certification: str | None = Field(
        default=None, description="Totara certification shortname, 'id:N' or 'idnumber:X'."
    )
    competency: str | None = Field(default=None, description="Competency to add to the learner's plan.")
    channels: list[Channel] = Field(
        description="message (LMS notification), enrol, plan (competency into the learning plan), email.",
        default_factory=lambda: list[Channel](["message"]),
        min_length=1,
    )
    enrol_role_id: int | None = Field(
        default=None, ge=1, description="Role the 'enrol' channel gives (default: the site's student role)."
    )
    enrol_days: int | None = Field(
        default=None, ge=1, description="The enrolment ends this many days after it starts (default: no end)."
    )

    @model_validator(mode="after")
    def _one_item(self) -> Self:
        _one_of(self, ["course", "program", "certification", "competency"], "a recommendation")
        if self.competency is not None and set(self.channels) - {"plan", "message", "email"}:
            raise ValueError("a competency can only go through 'plan', 'message' or 'email'")
        return self

    @property
    def kind(self) -> str:
        for name in ("course", "program", "certification", "competency"):
            if getattr(self, name) is not None:
                return name
        raise AssertionError("validated to have one item")

    @property
    def ref(self) -> str:
        value = getattr(self, self.kind)
        assert isinstance(value, str)
        return value


# --------------------------------------------------------------------------- follow-up, measure, schedule


class FollowUp(Strict):
    """Reminders until completion, manager follow-ups, and reinforcement after completion.

    Reminder days are counted from the recommendation (``remind_after_days``) or from the due
    date (``remind_before_due_days``, ``remind_when_overdue``); ``repeat_every_days`` goes on
    after the last of them, and ``max_reminders`` limits them all together. See
    :meth:`reminder_days` for the days they produce.
    """

    due_in_days: int | None = Field(
        default=30, ge=1, description="The learner is asked to finish within this many days."
    )
    remind_after_days: list[int] = Field(
        default_factory=lambda: [7, 14],
        description="Learner reminders until completion, in days after the recommendation.",
    )
    remind_before_due_days: list[int] = Field(
        default_factory=list,
        description="Learner reminders this many days before the due date (needs due_in_days).",
    )
    remind_when_overdue: bool = Field(
        default=False,
        description="One more reminder the day after the due date, saying it is overdue (needs due_in_days).",
    )
    max_reminders: int | None = Field(
        default=None,
        ge=1,
        description="The most reminders one recommendation gets, counting every kind.",
    )
    repeat_every_days: int | None = Field(
        default=None,
        ge=1,
        description="After the last scheduled reminder, remind again every this many days until done (needs max_reminders).",
    )
    escalate_to_manager_after_days: int | None = Field(
        description="The manager hears about it (a digest line, or the mapping's own escalation message) "
        "if not completed by then; null: never.",
        default=21,
        ge=1,
    )
    copy_manager_on_recommend: bool = Field(
        default=False,
        description="Tell the learner's manager once, when the recommendation has been sent to the learner.",
    )
    reinforce_after_days: list[int] = Field(
        default_factory=lambda: [1, 3, 7, 21, 60],
        description="Spaced reinforcement nudges after completion.",
    )
    manager_observe_after_days: int | None = Field(
        default=14,
        ge=0,
        description="Prompt the manager to observe the new behaviour this long after completion.",
    )

    @field_validator("remind_after_days", "reinforce_after_days", "remind_before_due_days")
    @classmethod
    def _positive_sorted(cls, value: list[int]) -> list[int]:
        if any(d < 0 for d in value):
            raise ValueError("days must be 0 or more")
        if len(set(value)) != len(value):
            raise ValueError("each day may appear once")
        return sorted(value)

    @field_validator("remind_before_due_days")
    @classmethod
    def _before_a_due_date(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if "due_in_days" not in info.data:  # due_in_days itself is wrong: its own error says so
            return value
        due = info.data["due_in_days"]
        if value and due is None:
            raise ValueError("reminders before the due date need follow_up.due_in_days")
        if due is not None and (late := [d for d in value if d >= due]):
            raise ValueError(
                f"{', '.join(map(str, late))} day(s) before the due date is not after the recommendation "
                f"(due_in_days is {due}): each must be less than {due}"
            )
        return value

    @field_validator("remind_when_overdue")
    @classmethod
    def _overdue_needs_a_due_date(cls, value: bool, info: ValidationInfo) -> bool:
        if value and "due_in_days" in info.data and info.data["due_in_days"] is None:
            raise ValueError("an overdue reminder needs follow_up.due_in_days")
        return value

    @field_validator("repeat_every_days")
    @classmethod
    def _repeat_has_a_limit(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and "max_reminders" in info.data and info.data["max_reminders"] is None:
            raise ValueError("repeat_every_days needs follow_up.max_reminders: reminders must stop somewhere")
        return value

    def reminder_schedule(self) -> list[tuple[int, str]]:
        """Each reminder as (days after the recommendation, what it is), in order.

        Before-due days count back from ``due_in_days``; the overdue reminder is the day after
        the due date (the first day the due date is in the past); repeats follow the last of
        those every ``repeat_every_days``. Two rules landing on one day make one reminder.
        ``max_reminders`` keeps the first ones.
        """
        labelled: dict[int, str] = {}
        for day in self.remind_after_days:
            labelled.setdefault(day, "after the recommendation")
        if self.due_in_days is not None:
            for before in self.remind_before_due_days:
                label = (
                    f"{before} day{'' if before == 1 else 's'} before due" if before else "on the due date"
                )
                labelled.setdefault(self.due_in_days - before, label)
            if self.remind_when_overdue:
                labelled.setdefault(self.due_in_days + 1, "overdue")
        ordered = sorted(labelled.items())
        if self.repeat_every_days is not None and self.max_reminders is not None:
            last = ordered[-1][0] if ordered else 0
            while len(ordered) < self.max_reminders:
                last += self.repeat_every_days
                ordered.append((last, "repeat"))
        return ordered[: self.max_reminders] if self.max_reminders is not None else ordered

    def reminder_days(self) -> list[int]:
        """The days after the recommendation on which a reminder falls, in order."""
        return [day for day, _ in self.reminder_schedule()]


class Measure(Strict):
    metric: str = Field(description="The KPI the learning should move.")
    before_days: int = Field(
        description="The before value: KPI periods that began this many days before the recommendation.",
        default=90,
        ge=1,
    )
    after_days: int = Field(
        description="The after value: KPI periods that began this many days after completion.",
        default=90,
        ge=1,
    )
    holdout_percent: float = Field(
        default=0, ge=0, le=50, description="Share of learners deliberately not messaged."
    )


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class Schedule(Strict):
    days: list[Weekday] = Field(
        description="Weekdays on which messages may be sent.",
        default_factory=lambda: list[Weekday](["mon", "tue", "wed", "thu", "fri"]),
    )
    hours: str = Field(default="09:00-17:00", description="Local time window in the recipient's time zone.")
    start: date | None = Field(default=None, description="First day the mapping may act (YYYY-MM-DD).")
    end: date | None = Field(default=None, description="Last day the mapping may act (YYYY-MM-DD).")
    backfill: bool = Field(
        default=True, description="Act on people who already match when the mapping is switched on."
    )
    cooldown_days: int = Field(
        default=90,
        ge=0,
        description="After a recommendation closes, wait this long before reopening.",
    )

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = HOURS.match(value.replace(" ", ""))
        if not match or value.replace(" ", "")[:5] >= value.replace(" ", "")[6:]:
            raise ValueError("hours must look like '09:00-17:00' with the start before the end")
        return value.replace(" ", "")

    def window(self) -> tuple[time, time]:
        start, end = self.hours.split("-")
        end_time = time(23, 59, 59) if end == "24:00" else time.fromisoformat(end)
        return time.fromisoformat(start), end_time


class MessageTemplate(Strict):
    subject: str = Field(
        description="Subject line (Jinja2, sandboxed; not shown by Moodle's messages).", min_length=1
    )
    body: str = Field(
        description="Message body (Jinja2, sandboxed; Markdown-like text, rendered to HTML and plain text).",
        min_length=1,
    )


MessageKind = Literal["recommend", "reminder", "escalation", "reinforcement", "observe", "manager_copy"]


class Messages(Strict):
    recommend: MessageTemplate | None = Field(default=None, description="The first message to the learner.")
    reminder: MessageTemplate | None = Field(
        default=None, description="The learner's reminders until completion."
    )
    escalation: MessageTemplate | None = Field(
        default=None,
        description="The manager's own message about a report who has not completed (without it: a digest line).",
    )
    reinforcement: MessageTemplate | None = Field(
        default=None, description="The spaced nudges to the learner after completion."
    )
    observe: MessageTemplate | None = Field(
        default=None,
        description="The manager's own prompt to observe the new behaviour (without it: a digest line).",
    )
    manager_copy: MessageTemplate | None = Field(
        default=None,
        description="The manager's copy of a new recommendation (follow_up.copy_manager_on_recommend).",
    )
    show_peer_rank: bool = Field(
        default=False,
        description="Show learners where they rank among peers (always shown to administrators in `explain`).",
    )
    locales: dict[str, dict[MessageKind, MessageTemplate]] = Field(
        default_factory=dict, description="Per-locale overrides, e.g. {de: {recommend: {...}}}."
    )


# --------------------------------------------------------------------------- mapping


class Mapping(Strict):
    id: str = Field(pattern=ID_PATTERN, description="Stable id: lower-case letters, digits, '-' and '_'.")
    title: str = Field(description="One line shown in plans, reports and the dashboard.", min_length=1)
    description: str = Field(default="", description="What the mapping is for, in your words.")
    owner: str = Field(default="", description="Who to ask about it (a person or team address).")
    enabled: bool = Field(default=True, description="false keeps the file valid but inactive.")
    audience: Audience = Field(
        description="Who the mapping is for (default: everyone).", default_factory=Audience
    )
    when: Trigger = Field(description="The trigger that opens a recommendation.")
    closed_by: ClosedBy = Field(
        description="What closes a recommendation (default: completing the recommended learning).",
        default_factory=ClosedBy,
    )
    recommend: list[RecommendTarget] = Field(
        description="One or more pieces of learning and the channels to push each through.", min_length=1
    )
    follow_up: FollowUp = Field(
        description="Reminders, manager escalation, reinforcement and the manager's observation prompt.",
        default_factory=FollowUp,
    )
    measure: Measure | None = Field(
        default=None, description="The KPI that should move, for the impact report."
    )
    schedule: Schedule = Field(
        description="When the mapping may act: weekdays, hours, dates, backfill and cooldown.",
        default_factory=Schedule,
    )
    messages: Messages = Field(
        description="Your own message templates (otherwise the built-in ones).", default_factory=Messages
    )


Audience.model_rebuild()
Trigger.model_rebuild()


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a mapping file, as shipped in ``mappings/schema.json``."""
    document = Mapping.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "lmsbridge mapping"
    return document
