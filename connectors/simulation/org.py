"""A deterministic synthetic organisation, shared by the LMS simulators and the sample HR data.

Generated from a seed, so the Moodle simulator's users and the HR files in ``examples/hr`` are
two views of the same people. All history (start dates, enrolments, completions, 12 months of
KPIs, an annual review) is fixed relative to an anchor date, so committed sample files stay
valid. It scales to 50,000 people: people are slotted dataclasses, enrolments and completions
plain tuples, and KPI rows are generated on demand rather than held.

Built-in effects, so impact measurement has something true to find: people who complete
CS-101 gain about +0.35 CSAT in the months after completing; completing SAFE-REF changes
nothing about safety incidents.

The organisation has also run lmsbridge once a month since February 2026 (``cycle_times``):
agents whose CSAT fell below target were recommended CS-101 and about half of those who were
messaged completed it, while the mapping's measurement holdout was not messaged. The demo
replays those cycles, so the impact report has a recommendation history to measure.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

ANCHOR = date(2026, 11, 1)
WS_USER_ID = 3
FIRST_USER_ID = 100

DEPARTMENTS: dict[str, tuple[float, list[str], str]] = {
    # name: (share of people, job titles of staff, manager title)
    "Customer Service": (0.40, ["Customer Service Agent", "Senior Agent"], "Team Leader"),
    "Warehouse Operations": (0.25, ["Warehouse Operative", "Forklift Driver"], "Shift Lead"),
    "Sales": (0.20, ["Account Executive", "Sales Development Rep"], "Sales Manager"),
    "Engineering": (0.10, ["Software Engineer", "QA Engineer"], "Engineering Manager"),
    "People & Culture": (0.05, ["HR Advisor", "Recruiter"], "Manager"),
}
LOCATIONS = [
    ("London", "Europe/London", "en_GB"),
    ("New York", "America/New_York", "en_US"),
    ("Sydney", "Australia/Sydney", "en_AU"),
    ("Berlin", "Europe/Berlin", "de_DE"),
]
FIRST_NAMES = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Isla",
    "Jonas",
    "Kemi",
    "Liam",
    "Maya",
    "Nikhil",
    "Olivia",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sam",
    "Tomas",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
]
LAST_NAMES = [
    "Abbott",
    "Baker",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Murphy",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Taylor",
]

# (id, shortname, fullname, category id, department it targets or None)
NAMED_COURSES = [
    (2, "CS-101", "Customer Conversations that Resolve", 2, "Customer Service"),
    (3, "SAFE-REF", "Warehouse Safety Refresher", 3, "Warehouse Operations"),
    (4, "SALES-201", "Consultative Selling", 4, "Sales"),
    (5, "ONB-101", "New Starter Essentials", 5, None),
    (6, "COACH-101", "Coaching Conversations for Managers", 6, None),
    (7, "DATA-101", "Data Protection Basics", 7, None),
]
CATEGORIES = {
    1: "Miscellaneous",
    2: "Customer Service",
    3: "Health & Safety",
    4: "Sales",
    5: "Onboarding",
    6: "Leadership",
    7: "Compliance",
}
COMPETENCIES = [
    (1, "Active listening", "CS-LISTEN"),
    (2, "De-escalation", "CS-DEESC"),
    (3, "Product knowledge", "CS-PRODUCT"),
    (4, "Empathy", "CS-EMPATHY"),
    (5, "Resolution ownership", "CS-OWN"),
    (6, "Clear writing", "CS-WRITE"),
]
COMPETENCY_FRAMEWORK = (1, "Customer Service Competencies", "CS-FW")
PROFICIENCY_SCALE = (2, ["Not yet competent", "Competent"])  # grade 2 is proficient
REVIEW_LABELS = ["Does not meet", "Partially meets", "Meets", "Exceeds", "Far exceeds"]
CS101_EFFECT = 0.35
KPI_DIPS = {"csat": -0.5, "first_contact_resolution": -8, "win_rate": -7, "safety_incidents": 2}

# The monthly lmsbridge cycles and the rule of mappings/csat-customer-conversations.yaml,
# holdout included (tests/test_impact.py checks it agrees with bridge.decide.in_holdout).
CYCLE_MONTHS = 9
CSAT_MAPPING = "csat-customer-conversations"
CSAT_TARGET = 4.2
CSAT_CLOSED_BY_DAYS = 180
CSAT_HOLDOUT_PERCENT = 20.0
NUDGED_COMPLETION_RATE = 0.5


@dataclass(frozen=True, slots=True)
class OrgPerson:
    index: int
    person_id: str
    employee_number: str
    first_name: str
    last_name: str
    email: str
    department: str
    job_title: str
    is_manager: bool
    manager_index: int | None
    location: str
    timezone: str
    locale: str
    start_date: date
    active: bool
    user_id: int
    username: str
    lms_idnumber: str
    lms_email: str
    suspended: bool


@dataclass(frozen=True, slots=True)
class Course:
    id: int
    shortname: str
    fullname: str
    category_id: int
    enablecompletion: bool
    manual_enrolment: bool
    startdate: int


@dataclass(frozen=True, slots=True)
class LmsOnlyUser:
    user_id: int
    username: str
    first_name: str
    last_name: str
    email: str


@dataclass
class Organisation:
    seed: int
    anchor: date
    people: list[OrgPerson] = field(default_factory=list)
    lms_only: list[LmsOnlyUser] = field(default_factory=list)
    courses: list[Course] = field(default_factory=list)
    enrolments: dict[int, list[tuple[int, int]]] = field(
        default_factory=dict
    )  # user id -> [(course id, timestart)]
    completions: dict[tuple[int, int], int] = field(default_factory=dict)  # (user id, course id) -> time
    plan_ratings: dict[int, list[tuple[int, int | None]]] = field(
        default_factory=dict
    )  # user -> [(competency, grade)]
    competencies: list[tuple[int, str, str]] = field(default_factory=lambda: list(COMPETENCIES))

    def person_by_user(self, user_id: int) -> OrgPerson | None:
        index = user_id - FIRST_USER_ID
        return self.people[index] if 0 <= index < len(self.people) else None

    def months(self) -> list[date]:
        """The 12 monthly periods before the anchor, oldest first."""
        first = date(self.anchor.year - 1, self.anchor.month, 1)
        return [_add_months(first, i) for i in range(12)]

    def measurements(self) -> Iterator[tuple[str, str, date, date, float]]:
        """(employee number, metric, period start, period end, value) for every KPI row."""
        months = self.months()
        cs101 = _course_id("CS-101")
        for person in self.people:
            paths = self.kpi_paths(person)
            completed = self.completions.get((person.user_id, cs101))
            for i, start in enumerate(months):
                end = _add_months(start, 1) - timedelta(days=1)
                for metric, values in paths.items():
                    value = values[i]
                    if metric == "csat" and completed is not None and _epoch(start) > completed:
                        value += CS101_EFFECT
                    yield person.employee_number, metric, start, end, _clamp(metric, value)

    def kpi_paths(self, person: OrgPerson) -> dict[str, list[float]]:
        """Each of the person's metrics, month by month, before any learning effect or rounding."""
        rng = random.Random(f"{self.seed}:kpi:{person.index}")
        metrics = _metrics_for(person.department)
        base = {metric: center + rng.gauss(0, spread) for metric, (center, spread, _) in metrics.items()}
        count = len(self.months())
        dip_month = rng.randrange(count) if rng.random() < 0.35 else None
        paths: dict[str, list[float]] = {metric: [] for metric in metrics}
        for i in range(count):
            for metric, (_center, _spread, noise) in metrics.items():
                value = base[metric] + rng.gauss(0, noise)
                if dip_month is not None and dip_month <= i <= dip_month + 1:
                    value += KPI_DIPS[metric]
                paths[metric].append(value)
        return paths

    def reviews(self) -> Iterator[tuple[str, str, str, date, date, str]]:
        """(employee number, competency, rater, period start, period end, rating label) — annual review."""
        start, end = date(self.anchor.year, 1, 1), date(self.anchor.year, 6, 30)
        for person in self.people:
            rng = random.Random(f"{self.seed}:review:{person.index}")
            too_new = person.start_date > end - timedelta(days=90)
            topics = ["overall", "Coaching"] if person.is_manager else ["overall"]
            for topic in topics:
                if too_new:
                    label = "Too new to rate"
                elif rng.random() < 0.04:
                    label = "Unrated"
                else:
                    label = REVIEW_LABELS[min(4, max(0, round(rng.gauss(2.2, 0.9))))]
                yield person.employee_number, topic, "official", start, end, label


def _course_id(shortname: str) -> int:
    return next(c[0] for c in NAMED_COURSES if c[1] == shortname)


def _metrics_for(department: str) -> dict[str, tuple[float, float, float]]:
    """metric -> (centre, spread between people, month-to-month noise)."""
    return {
        "Customer Service": {"csat": (4.35, 0.25, 0.12), "first_contact_resolution": (78.0, 6.0, 3.0)},
        "Warehouse Operations": {"safety_incidents": (0.8, 0.5, 0.6)},
        "Sales": {"win_rate": (31.0, 6.0, 4.0)},
    }.get(department, {})


def cycle_times(anchor: date = ANCHOR) -> list[datetime]:
    """When the organisation ran lmsbridge: 10:00 UTC on the first Tuesday of each of the
    ``CYCLE_MONTHS`` months before the anchor's month."""
    times = []
    for back in range(CYCLE_MONTHS, 0, -1):
        first = _add_months(date(anchor.year, anchor.month, 1), -back)
        tuesday = first + timedelta(days=(1 - first.weekday()) % 7)
        times.append(datetime(tuesday.year, tuesday.month, tuesday.day, 10, tzinfo=UTC))
    return times


def _clamp(metric: str, value: float) -> float:
    if metric == "csat":
        return round(min(5.0, max(1.0, value)), 2)
    if metric == "safety_incidents":
        return float(max(0, round(value)))
    return round(min(100.0, max(0.0, value)), 1)


def _add_months(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def generate(
    seed: int = 1,
    people: int = 80,
    courses: int = 12,
    anchor: date = ANCHOR,
    *,
    manager_share: float = 0.11,
    competencies: int = len(COMPETENCIES),
) -> Organisation:
    """The organisation for a seed. Same seed and sizes, same organisation, always.

    ``manager_share`` is the chance that a person manages a team (about one in nine by
    default); ``competencies`` adds generic skills after the six Customer Service ones.
    """
    rng = random.Random(seed)
    org = Organisation(seed=seed, anchor=anchor)
    org.competencies += [
        (n, f"Skill {n}", f"SK-{n:03d}") for n in range(len(COMPETENCIES) + 1, competencies + 1)
    ]
    _people(org, rng, people, manager_share)
    _courses(org, rng, courses)
    _learning(org, rng)
    _csat_nudges(org)
    org.lms_only = [
        LmsOnlyUser(
            FIRST_USER_ID + people + i,
            f"contractor{i + 1}",
            "Contractor",
            str(i + 1),
            f"contractor{i + 1}@partner.example",
        )
        for i in range(3)
    ]
    return org


def _people(org: Organisation, rng: random.Random, count: int, manager_share: float) -> None:
    names = list(DEPARTMENTS)
    weights = [DEPARTMENTS[n][0] for n in names]
    departments = [names[0]] * min(count, 1) + rng.choices(names, weights=weights, k=max(0, count - 1))
    if count >= len(names):  # every department present even in a small organisation
        departments[: len(names)] = names
    managers: dict[str, list[int]] = {}
    seen_emails: set[str] = set()
    for index, department in enumerate(departments):
        staff_titles, manager_title = DEPARTMENTS[department][1], DEPARTMENTS[department][2]
        team = managers.setdefault(department, [])
        is_manager = not team or rng.random() < manager_share
        manager_index = None
        if team:
            manager_index = team[0] if is_manager else rng.choice(team)
        if is_manager:
            team.append(index)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}".lower()
        if email in seen_emails:
            email = f"{email}{index + 1}"
        seen_emails.add(email)
        email += "@example.org"
        location, tz, locale = LOCATIONS[rng.choices(range(4), weights=[5, 3, 1, 1])[0]]
        days = rng.randint(10, 60) if rng.random() < 0.06 else rng.randint(120, 3600)
        number = f"{index + 1:06d}"
        org.people.append(
            OrgPerson(
                index=index,
                person_id=f"P{index + 1:06d}",
                employee_number=number,
                first_name=first,
                last_name=last,
                email=email,
                department=department,
                job_title=manager_title if is_manager else rng.choice(staff_titles),
                is_manager=is_manager,
                manager_index=manager_index,
                location=location,
                timezone=tz,
                locale=locale,
                start_date=org.anchor - timedelta(days=days),
                active=(index + 1) % 53 != 0,
                user_id=FIRST_USER_ID + index,
                username=email.split("@")[0].replace(".", "")[:30] + str(index + 1),
                lms_idnumber="" if (index + 1) % 17 == 0 else number,
                lms_email=email.upper() if (index + 1) % 19 == 0 else email,
                suspended=(index + 1) % 97 == 0,
            )
        )


def _courses(org: Organisation, rng: random.Random, fillers: int) -> None:
    start = _epoch(date(org.anchor.year - 2, 1, 1))
    for course_id, shortname, fullname, category, _dept in NAMED_COURSES:
        org.courses.append(Course(course_id, shortname, fullname, category, True, True, start))
    topics = [
        "Excel Essentials",
        "Time Management",
        "Presenting with Impact",
        "Negotiation",
        "Wellbeing at Work",
        "Project Basics",
        "Writing for the Web",
        "Diversity and Inclusion",
    ]
    for i in range(fillers):
        course_id = len(NAMED_COURSES) + 2 + i
        name = f"{topics[i % len(topics)]}{'' if i < len(topics) else f' {i // len(topics) + 1}'}"
        org.courses.append(
            Course(course_id, f"GEN-{i + 1:03d}", name, 1, i != fillers - 1, i != fillers - 2, start)
        )


def _learning(org: Organisation, rng: random.Random) -> None:
    anchor = _epoch(org.anchor)
    day = 86400

    def at(days_before: int) -> int:
        """A moment during the working day, so report dates carry real hours and minutes."""
        return anchor - days_before * day + rng.randint(7 * 3600, 19 * 3600)

    fillers = [c.id for c in org.courses if c.shortname.startswith("GEN-")]
    cs101, safe, sales, onb, coach, data = (
        _course_id(s) for s in ("CS-101", "SAFE-REF", "SALES-201", "ONB-101", "COACH-101", "DATA-101")
    )
    for person in org.people:
        uid = person.user_id
        started = _epoch(person.start_date)
        courses = [onb, data, *rng.sample(fillers, k=min(len(fillers), rng.randint(1, 3)))]
        courses += {"Customer Service": [cs101], "Warehouse Operations": [safe], "Sales": [sales]}.get(
            person.department, []
        )
        if person.is_manager:
            courses.append(coach)
        org.enrolments[uid] = [(c, max(started, anchor - 700 * day)) for c in courses]
        tenure = (anchor - started) // day
        if tenure > 30 and rng.random() < 0.92:
            org.completions[(uid, onb)] = (
                started + rng.randint(5, 25) * day + rng.randint(7 * 3600, 19 * 3600)
            )
        if rng.random() < 0.8:
            org.completions[(uid, data)] = at(rng.randint(10, 700))
        if person.department == "Warehouse Operations" and rng.random() < 0.85:
            org.completions[(uid, safe)] = at(rng.randint(20, 600))
        if person.department == "Customer Service" and rng.random() < 0.3:
            org.completions[(uid, cs101)] = at(rng.randint(40, 330))
        if person.department == "Sales" and rng.random() < 0.25:
            org.completions[(uid, sales)] = at(rng.randint(30, 400))
        if person.is_manager and rng.random() < 0.4:
            org.completions[(uid, coach)] = at(rng.randint(30, 500))
        for course in courses[2:]:
            if course in fillers and rng.random() < 0.5:
                org.completions[(uid, course)] = at(rng.randint(5, 600))
        if person.department == "Customer Service":
            org.plan_ratings[uid] = [
                (cid, None if rng.random() < 0.3 else (2 if rng.random() < 0.6 else 1))
                for cid, _n, _i in COMPETENCIES
            ]


def in_csat_holdout(person_id: str) -> bool:
    """Whether the csat mapping holds this agent out of its messages (as ``bridge.decide`` does)."""
    digest = hashlib.sha256(f"{CSAT_MAPPING}:{person_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * 100 < CSAT_HOLDOUT_PERCENT


def _csat_nudges(org: Organisation) -> None:
    """CS-101 completions that followed the monthly cycles' CSAT recommendations.

    At each cycle an active agent (already started) whose latest monthly CSAT is below target,
    and who has not completed CS-101 in the last 180 days, is recommended the course, once.
    ``NUDGED_COMPLETION_RATE`` of those messaged complete it 3 to 45 days later (if that is
    before the anchor and before any completion of their own accord, drawn in ``_learning``);
    the holdout is not messaged and keeps only those own completions. Each agent draws from
    their own generator, so the rest of the organisation is the same as without the nudges.
    """
    cs101 = _course_id("CS-101")
    months = org.months()
    anchor = _epoch(org.anchor)
    day = 86400
    for person in org.people:
        if person.department != "Customer Service" or not person.active:
            continue
        csat = org.kpi_paths(person)["csat"]
        own = org.completions.get((person.user_id, cs101))
        for cycle in cycle_times(org.anchor):
            now = int(cycle.timestamp())
            recent = own is not None and now - CSAT_CLOSED_BY_DAYS * day <= own <= now
            if person.start_date > cycle.date() or recent:
                continue
            seen = _add_months(date(cycle.year, cycle.month, 1), -1)
            effect = CS101_EFFECT if own is not None and _epoch(seen) > own else 0.0
            if _clamp("csat", csat[months.index(seen)] + effect) >= CSAT_TARGET:
                continue
            rng = random.Random(f"{org.seed}:csat-nudge:{person.index}")
            messaged = not in_csat_holdout(person.person_id)
            if messaged and (own is None or own > now) and rng.random() < NUDGED_COMPLETION_RATE:
                when = now + rng.randint(3, 45) * day + rng.randint(0, 8 * 3600)
                if when < anchor and (own is None or when < own):
                    org.completions[(person.user_id, cs101)] = when
            break
