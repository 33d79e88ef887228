"""The bridge's notion of "now", so tests and replays can run at a chosen time.

``LMSBRIDGE_NOW`` (an ISO-8601 timestamp) pins the clock for a whole process; with
``LMSBRIDGE_CLOCK=running`` the clock starts there when the process starts and then runs on, as
a replay of a day does. Tests use :func:`set_now`. Everything that decides by time asks here,
never ``datetime.now()``.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

_fixed: datetime | None = None
_started = time.monotonic()  # where a running pinned clock starts from


def set_now(value: datetime | None) -> None:
    global _fixed  # noqa: PLW0603 - one process-wide clock is the point of this module
    if value is not None and value.tzinfo is None:
        raise ValueError("the clock needs an aware datetime")
    _fixed = value


def now() -> datetime:
    if _fixed is not None:
        return _fixed
    pinned = os.environ.get("LMSBRIDGE_NOW")
    if pinned:
        value = datetime.fromisoformat(pinned)
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        if os.environ.get("LMSBRIDGE_CLOCK") == "running":
            value += timedelta(seconds=time.monotonic() - _started)
        return value
    return datetime.now(UTC)
