"""The bridge's notion of "now", so tests and replays can run at a chosen time.

``LMSBRIDGE_NOW`` (an ISO-8601 timestamp) pins the clock for a whole process; tests use
:func:`set_now`. Everything that decides by time asks here, never ``datetime.now()``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

_fixed: datetime | None = None


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
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)
