"""Report Builder dates under a forced site time zone (issue 13, item 8): detected, refused, corrected.

The report answers are real Moodle 5.0 answers (tests/data/moodle/5.0): the same three
completions with *Force timezone* = Europe/Berlin and without it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.errors import SourceError
from bridge.ports import PullContext, PullScope, SiteIndex
from bridge.records import Completion
from connectors.moodle.feeds import (
    ReportColumns,
    ReportFeed,
    forced_zone_candidates,
    parse_report_date,
    report_offset,
)

REFERENCE = Path(__file__).parent / "data" / "moodle" / "5.0"
# The exact completion times behind the report rows (seconds are what the report's minutes hide).
EXACT = {
    ("E1018", "SAFE101"): datetime(2026, 12, 2, 4, 35, 41, tzinfo=UTC),
    ("E1016", "SAFE101"): datetime(2026, 12, 2, 4, 31, 7, tzinfo=UTC),
    ("E1007", "GDPR201"): datetime(2026, 12, 2, 4, 26, 30, tzinfo=UTC),
}
USERS = {"E1018": 18, "E1016": 16, "E1007": 7}
COURSES = {"SAFE101": 3, "GDPR201": 4}


class Site:
    """Answers as the real site gave them; completion status from the exact times."""

    def __init__(self, report: str) -> None:
        self.report = json.loads((REFERENCE / report).read_text())
        self.calls: list[str] = []

    def call(self, function: str, params: dict[str, Any], **_: Any) -> Any:
        self.calls.append(function)
        if function == "core_reportbuilder_retrieve_report":
            return self.report
        assert function == "core_completion_get_course_completion_status"
        number = next(k for k, v in USERS.items() if v == params["userid"])
        course = next(k for k, v in COURSES.items() if v == params["courseid"])
        when = int(EXACT[(number, course)].timestamp())
        return {"completionstatus": {"completed": True, "completions": [{"timecompleted": when}]}}


class View:
    def index(self) -> SiteIndex:
        return SiteIndex(users_by_idnumber=USERS, users_by_email={}, courses_by_shortname=COURSES)

    def linked_users(self) -> dict[int, str]:
        return {}


def feed(site: Site, zone: str = "UTC") -> ReportFeed:
    columns = ReportColumns("ID number", "Email address", "Course short name", "Time completed")
    return ReportFeed("moodle", site, 1, columns, timedelta(days=1), zone=ZoneInfo(zone))  # type: ignore[arg-type]


def pull(report_feed: ReportFeed) -> list[Completion]:
    ctx = PullContext({}, PullScope(), datetime(2026, 12, 2, 12, tzinfo=UTC), view=View())  # type: ignore[arg-type]
    return [r for b in report_feed.pull(ctx, None) for r in b.records if isinstance(r, Completion)]


def test_a_utc_report_is_checked_once_and_read_to_the_minute() -> None:
    site = Site("core_reportbuilder_retrieve_report__utc.json")
    report_feed = feed(site)
    got = {(r.user_id, r.item_id): r.completed_at for r in pull(report_feed)}
    assert got[(18, 3)] == datetime(2026, 12, 2, 4, 35, tzinfo=UTC)
    assert report_feed.times_checked is not None and "agree" in report_feed.times_checked
    checks = site.calls.count("core_completion_get_course_completion_status")
    pull(report_feed)
    assert site.calls.count("core_completion_get_course_completion_status") == checks == 2


def test_a_forced_time_zone_stops_the_pull_with_the_fix() -> None:
    with pytest.raises(SourceError) as raised:
        pull(feed(Site("core_reportbuilder_retrieve_report__forcetimezone_berlin.json")))
    message = str(raised.value)
    assert "+1 h" in message and "Force timezone" in message and "report_timezone" in message


def test_the_configured_forced_zone_gives_the_exact_utc_times() -> None:
    report_feed = feed(Site("core_reportbuilder_retrieve_report__forcetimezone_berlin.json"), "Europe/Berlin")
    got = {(r.user_id, r.item_id): r.completed_at for r in pull(report_feed)}
    assert got[(18, 3)] == datetime(2026, 12, 2, 4, 35, tzinfo=UTC)
    assert got[(7, 4)] == datetime(2026, 12, 2, 4, 26, tzinfo=UTC)


def test_summer_time_is_applied_per_date() -> None:
    summer = parse_report_date("Monday, 6 July 2026, 2:00 PM", ZoneInfo("Europe/Berlin"))
    winter = parse_report_date("Wednesday, 2 December 2026, 2:00 PM", ZoneInfo("Europe/Berlin"))
    assert (summer.hour, winter.hour) == (12, 13)


def test_offsets_are_whole_quarter_hours_or_none() -> None:
    exact = datetime(2026, 12, 2, 4, 35, 41, tzinfo=UTC)
    assert report_offset(datetime(2026, 12, 2, 4, 35, tzinfo=UTC), exact) == timedelta(0)
    assert report_offset(datetime(2026, 12, 2, 5, 35, tzinfo=UTC), exact) == timedelta(hours=1)
    assert report_offset(datetime(2026, 12, 2, 10, 5, tzinfo=UTC), exact) == timedelta(hours=5, minutes=30)
    assert report_offset(datetime(2026, 12, 2, 4, 52, tzinfo=UTC), exact) is None  # a late write


class NewYorkSite(Site):
    """A site forcing America/New_York, as measured on a real Moodle 5.0.6+: two completions either
    side of the November clock change are shown 4 h and 5 h off UTC."""

    ROWS = {
        ("E1018", "SAFE101"): datetime(2026, 5, 10, 3, 15, 22, tzinfo=UTC),
        ("E1016", "SAFE101"): datetime(2026, 11, 20, 14, 2, 9, tzinfo=UTC),
    }

    def __init__(self) -> None:
        self.calls = []
        rows = []
        for (number, course), exact in self.ROWS.items():
            shown = exact.astimezone(ZoneInfo("America/New_York"))
            text = f"{shown:%A}, {shown.day} {shown:%B %Y}, {shown:%I:%M %p}".replace(", 0", ", ")
            rows.append({"columns": [number, f"{number}@example.com", course, text]})
        headers = ["ID number", "Email address", "Course short name", "Time completed"]
        self.report = {"data": {"headers": headers, "rows": rows, "totalrowcount": len(rows)}}

    def call(self, function: str, params: dict[str, Any], **_: Any) -> Any:
        if function != "core_completion_get_course_completion_status":
            return super().call(function, params)
        self.calls.append(function)
        number = next(k for k, v in USERS.items() if v == params["userid"])
        course = next(k for k, v in COURSES.items() if v == params["courseid"])
        when = int(self.ROWS[(number, course)].timestamp())
        return {"completionstatus": {"completed": True, "completions": [{"timecompleted": when}]}}


def test_a_forced_zone_with_summer_time_is_recognised_whatever_the_offsets() -> None:
    with pytest.raises(SourceError) as raised:
        pull(feed(NewYorkSite()))
    message = str(raised.value)
    assert "-4 h, -5 h" in message and "America/New_York" in message and "report_timezone" in message
    wrong = [(exact, timedelta(hours=-4 if exact.month == 5 else -5)) for exact in NewYorkSite.ROWS.values()]
    fitting = forced_zone_candidates(wrong, UTC)
    assert (
        "America/New_York" in fitting and "Europe/Berlin" not in fitting and "America/Chicago" not in fitting
    )
    got = {(r.user_id, r.item_id): r.completed_at for r in pull(feed(NewYorkSite(), "America/New_York"))}
    assert got[(18, 3)] == datetime(2026, 5, 10, 3, 15, tzinfo=UTC)
    assert got[(16, 3)] == datetime(2026, 11, 20, 14, 2, tzinfo=UTC)
