"""Canonical records: the only shapes that cross from connectors into the bridge.

Connectors translate their wire formats into these; the bridge never sees a Moodle
or HRIS payload. All datetimes are timezone-aware UTC. People are keyed by their
HR id (``person_id``); LMS users by ``(site, user_id)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class ItemKind(StrEnum):
    """What an LMS learning item is."""

    COURSE = "course"
    PROGRAM = "program"
    CERTIFICATION = "certification"


class RaterType(StrEnum):
    SELF = "self"
    MANAGER = "manager"
    OFFICIAL = "official"
    PEER = "peer"


@dataclass(frozen=True, slots=True)
class Person:
    """A person as the HR system knows them."""

    person_id: str
    first_name: str = ""
    last_name: str = ""
    employee_number: str | None = None
    email: str | None = None
    manager_id: str | None = None
    department: str | None = None
    job_title: str | None = None
    location: str | None = None
    timezone: str | None = None
    locale: str | None = None
    active: bool = True
    start_date: date | None = None
    source: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.person_id


@dataclass(frozen=True, slots=True)
class LmsUser:
    """A user account on one LMS site."""

    site: str
    user_id: int
    username: str | None = None
    idnumber: str | None = None
    email: str | None = None
    first_name: str = ""
    last_name: str = ""
    suspended: bool = False
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class LmsManager:
    """An LMS's own manager relation (Totara job assignments): the user's manager's user id.

    Stored only from sites configured to provide it; where present it takes precedence over the
    HR feed's manager for digests and manager audiences."""

    site: str
    user_id: int
    manager_user_id: int | None


@dataclass(frozen=True, slots=True)
class Identity:
    """The link between an HR person and their account on one LMS site."""

    person_id: str
    site: str
    user_id: int
    matched_by: str


@dataclass(frozen=True, slots=True)
class LearningItem:
    """A course, program or certification on one LMS site."""

    site: str
    item_id: int
    kind: ItemKind = ItemKind.COURSE
    shortname: str = ""
    fullname: str = ""
    idnumber: str | None = None
    category_id: int | None = None
    completion_enabled: bool = True
    visible: bool = True
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A user's enrolment in a course (active or ended)."""

    site: str
    user_id: int
    item_id: int
    active: bool = True


@dataclass(frozen=True, slots=True)
class Completion:
    """A learner completed a learning item at a known time."""

    site: str
    user_id: int
    item_id: int
    completed_at: datetime
    kind: ItemKind = ItemKind.COURSE
    expires_at: datetime | None = None
    window_opens_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Competency:
    """A competency defined on an LMS site."""

    site: str
    competency_id: int
    shortname: str = ""
    idnumber: str | None = None
    framework_id: int | None = None
    url: str | None = None  # where a learner works on it (Moodle: their learning plans page)


@dataclass(frozen=True, slots=True)
class CompetencyRating:
    """A learner's rating in an LMS competency (from a plan, a course, or Totara achievement)."""

    site: str
    user_id: int
    competency_id: int
    proficient: bool | None
    grade: int | None = None
    grade_name: str | None = None
    rated_at: datetime | None = None
    in_plan: bool = False


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value of one KPI for one person over one period."""

    person_id: str
    metric: str
    value: float
    period_start: date
    period_end: date
    source: str = ""


@dataclass(frozen=True, slots=True)
class ReviewRating:
    """A performance-review rating. ``value`` is None when the rater marked it unrated."""

    person_id: str
    competency: str
    rater_type: RaterType
    value: float | None
    period_start: date
    period_end: date
    scale_min: float | None = None
    scale_max: float | None = None
    label: str | None = None
    source: str = ""

    @property
    def normalised(self) -> float | None:
        """The rating on a 0-1 scale, or None when unrated or the scale is unknown."""
        if self.value is None or self.scale_min is None or self.scale_max is None:
            return None
        span = self.scale_max - self.scale_min
        if span <= 0:
            return None
        return (self.value - self.scale_min) / span


@dataclass(frozen=True, slots=True)
class Goal:
    person_id: str
    goal_id: str
    title: str
    progress: float | None = None
    due_date: date | None = None
    source: str = ""


Record = (
    Person
    | LmsUser
    | LmsManager
    | LearningItem
    | Enrolment
    | Completion
    | Competency
    | CompetencyRating
    | Measurement
    | ReviewRating
    | Goal
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input row that could not be read, kept so nothing is silently lost."""

    source: str
    location: str
    reason: str
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    """What a recommendation points the learner at, on one LMS site."""

    site: str
    kind: str
    item_id: int
    name: str = ""
    url: str | None = None

    @property
    def key(self) -> str:
        return f"{self.site}:{self.kind}:{self.item_id}"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a decision was taken: the facts that made the mapping true, in plain words."""

    facts: tuple[str, ...] = field(default_factory=tuple)

    def text(self) -> str:
        return "; ".join(self.facts)
