"""Turning one HR row — from CSV, SQL or JSON — into a canonical record.

Each source hands over a getter (field name -> raw value); values may already be typed (a SQL
``date``, a JSON number) or be text to parse with the feed's date format and decimal separator.
A value that cannot be read raises :class:`RowError`, which the source turns into a rejected
row naming where it came from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.records import Goal, Measurement, Person, RaterType, ReviewRating
from connectors.hris.csv_reader import RowError, parse_bool, parse_date, parse_number

Getter = Callable[[str], Any]

PEOPLE_FIELDS = (
    "person_id",
    "employee_number",
    "first_name",
    "last_name",
    "email",
    "manager",
    "department",
    "job_title",
    "location",
    "timezone",
    "locale",
    "start_date",
    "active",
)
MEASUREMENT_FIELDS = ("person", "metric", "period_start", "period_end", "value")
REVIEW_FIELDS = ("person", "competency", "rater", "period_start", "period_end", "rating")
GOAL_FIELDS = ("person", "goal_id", "title", "progress", "due_date")


@dataclass(frozen=True)
class Scale:
    labels: tuple[str, ...] = ("Does not meet", "Partially meets", "Meets", "Exceeds", "Far exceeds")
    min: float = 1
    max: float = 5
    unrated: tuple[str, ...] = ("Unrated", "Too new to rate", "N/A", "-1972", "-1971")


@dataclass
class Builder:
    """Reads records for one feed, resolving people by employee number or HR id."""

    source: str
    date_format: str | None = None
    decimal: str = "."
    scale: Scale = field(default_factory=Scale)
    employee_numbers: dict[str, str] = field(default_factory=dict)
    person_ids: set[str] = field(default_factory=set)
    _index: Callable[[], tuple[dict[str, str], set[str]]] | None = field(default=None, repr=False)

    def know(self, index: Callable[[], tuple[dict[str, str], set[str]]]) -> None:
        """The people read: ``index()`` gives employee number -> HR id and every HR id, asked for
        when a row first names someone (a feed without measurements never holds the index)."""
        self._index = index

    def forget(self) -> None:
        """Let go of the people read (their roster's database) once a pull is over."""
        self._index = None
        self.employee_numbers, self.person_ids = {}, set()

    # ------------------------------------------------------------------ values

    @staticmethod
    def text(get: Getter, name: str, required: bool = False) -> str | None:
        value = get(name)
        text = "" if value is None else str(value).strip()
        if not text:
            if required:
                raise RowError(f"{name.replace('_', ' ')} is empty")
            return None
        return text

    def date(self, get: Getter, name: str, required: bool = False) -> date | None:
        value = get(name)
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        return parse_date(self.text(get, name, required), self.date_format, name.replace("_", " "))

    def number(self, get: Getter, name: str, required: bool = False) -> float | None:
        value = get(name)
        if isinstance(value, bool):
            raise RowError(f"{name} is not a number")
        if isinstance(value, int | float):
            # JSON and SQL hand over typed numbers: 1e999, NaN or a 400-digit integer from an
            # outside system must reject the row like the same text would, not fail the feed.
            try:
                number = float(value)
            except OverflowError:
                raise RowError(f"{name} is too large a number") from None
            if not math.isfinite(number):
                raise RowError(f"{name} {value} is not a finite number")
            return number
        return parse_number(self.text(get, name, required), self.decimal, name)

    def person_id(self, get: Getter) -> str:
        if self._index is not None:
            self.employee_numbers, self.person_ids = self._index()
            self._index = None
        ref = self.text(get, "person", required=True) or ""
        if ref in self.employee_numbers:
            return self.employee_numbers[ref]
        if ref in self.person_ids or not self.person_ids:
            return ref
        raise RowError(f"no person with employee number or HR id '{ref}' in this feed")

    # ------------------------------------------------------------------ records

    def person(self, get: Getter) -> Person:
        active = get("active")
        return Person(
            person_id=self.text(get, "person_id", required=True) or "",
            employee_number=self.text(get, "employee_number"),
            first_name=self.text(get, "first_name") or "",
            last_name=self.text(get, "last_name") or "",
            email=(self.text(get, "email") or "").lower() or None,
            manager_id=self.text(get, "manager"),  # a reference, resolved in a second pass
            department=self.text(get, "department"),
            job_title=self.text(get, "job_title"),
            location=self.text(get, "location"),
            timezone=self.text(get, "timezone"),
            locale=self.text(get, "locale"),
            start_date=self.date(get, "start_date"),
            active=active if isinstance(active, bool) else parse_bool(self.text(get, "active"), "active"),
            source=self.source,
        )

    def measurement(self, get: Getter) -> Measurement:
        start, end = self.date(get, "period_start", True), self.date(get, "period_end", True)
        assert start is not None and end is not None
        if end < start:
            raise RowError(f"period end {end} is before period start {start}")
        value = self.number(get, "value", required=True)
        assert value is not None
        metric = (self.text(get, "metric", required=True) or "").lower()
        return Measurement(self.person_id(get), metric, value, start, end, self.source)

    def review(self, get: Getter) -> ReviewRating:
        rating = self.text(get, "rating", required=True) or ""
        value: float | None
        label: str | None = rating
        if rating.casefold() in {u.casefold() for u in self.scale.unrated}:
            value = None
        elif rating.casefold() in (labels := [x.casefold() for x in self.scale.labels]):
            value = float(labels.index(rating.casefold()) + 1)
        else:
            value = parse_number(rating, self.decimal, "rating")
            label = None
            assert value is not None
            if not self.scale.min <= value <= self.scale.max:
                raise RowError(f"rating {rating} is outside the scale {self.scale.min:g}-{self.scale.max:g}")
        rater = (self.text(get, "rater") or "official").casefold()
        if rater not in {r.value for r in RaterType}:
            raise RowError(f"rater '{rater}' is not one of self, manager, official, peer")
        start, end = self.date(get, "period_start", True), self.date(get, "period_end", True)
        assert start is not None and end is not None
        return ReviewRating(
            person_id=self.person_id(get),
            competency=self.text(get, "competency") or "overall",
            rater_type=RaterType(rater),
            value=value,
            period_start=start,
            period_end=end,
            scale_min=self.scale.min,
            scale_max=self.scale.max,
            label=label,
            source=self.source,
        )

    def goal(self, get: Getter) -> Goal:
        return Goal(
            person_id=self.person_id(get),
            goal_id=self.text(get, "goal_id", required=True) or "",
            title=self.text(get, "title", required=True) or "",
            progress=self.number(get, "progress"),
            due_date=self.date(get, "due_date"),
            source=self.source,
        )


def known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def dotted(data: Any, path: str) -> Any:
    """``a.b.0.c`` into nested JSON; None when any step is missing."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdecimal() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current
