"""When a message may go out: the mapping's days and hours, in the recipient's own time zone.

A message due outside the window is deferred to the next opening, never dropped. Local times
are converted with zoneinfo, so a window stays at 09:00 local across daylight-saving changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def next_send_time(now: datetime, days: Sequence[str], start: time, end: time, tz: ZoneInfo) -> datetime:
    """The earliest moment at or after ``now`` inside the window, as an aware UTC datetime."""
    allowed = {WEEKDAYS.index(d) for d in days}
    if not allowed:
        return now
    local = now.astimezone(tz)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        if day.weekday() not in allowed:
            continue
        opens = datetime.combine(day, start, tzinfo=tz)
        closes = datetime.combine(day, end, tzinfo=tz)
        if offset == 0 and opens <= local < closes:
            return now
        if local < opens:
            # Round-trip through UTC so a window opening inside a DST gap lands on a real instant.
            return opens.astimezone(UTC)
    return now
