"""A stream's incremental cursor: where the last pull got to, and where the next one starts.

Sources keep one string per stream in the store (:class:`~bridge.ports.PullContext` ``cursors``),
committed in the same transaction as the records it covers (``Batch(stream, records, cursor=)``).
:class:`Incremental` is that string read once: parsed in one place (an unreadable one is an error
naming the source and stream, not a crash or a silent re-read), stepped back by a look-back
window for rows written late, and advanced by the values the pull sees — never past a ceiling,
for time cursors ``ctx.now``. A row stamped in the future (a clock ahead, a local time read as
UTC) would otherwise hold the cursor there and every change until then would be skipped; capped,
it is read again until the clock reaches it.

Streams refreshed whole every so often (users daily, courses hourly) keep the time of the last
refresh instead: :func:`refresh_due` and :func:`refreshed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from bridge.errors import Remedy, SourceError
from bridge.ports import PullContext

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


T = TypeVar("T", bound="SupportsRichComparison")  # a time, an id: anything ordered


@dataclass(frozen=True)
class CursorFormat(Generic[T]):
    """How one kind of cursor value is written as the stored string, and read back."""

    expected: str  # what a readable cursor looks like, for the error
    parse: Callable[[str], T]
    format: Callable[[T], str]


def _parse_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("no UTC offset")
    return value.astimezone(UTC)


def _parse_epoch(text: str) -> datetime:
    return datetime.fromtimestamp(int(text), UTC)


# Full precision: a time cursor cut to the second would keep selecting the newest change for ever.
ISO_TIME = CursorFormat[datetime](
    "an ISO 8601 time with its UTC offset", _parse_iso, lambda t: t.astimezone(UTC).isoformat()
)
# Totara's own columns (timecompleted, timemodified, ...) are whole seconds since 1970.
EPOCH_SECONDS = CursorFormat[datetime](
    "whole seconds since 1970", _parse_epoch, lambda t: str((t - EPOCH) // timedelta(seconds=1))
)


class UnreadableCursor(SourceError):
    def __init__(self, where: str, stream: str, stored: str, expected: str) -> None:
        super().__init__(
            f"{where}: the stored cursor of stream '{stream}' cannot be read ({stored[:40]!r}; "
            f"expected {expected}); a full pull (lmsbridge sync --once --full) replaces it",
            Remedy.FIX_CONFIG,
        )


def read_cursor(where: str, stream: str, stored: str | None, fmt: CursorFormat[T]) -> T | None:
    """The stored cursor's value (None when there is none), or an error naming source and stream."""
    if not stored:
        return None
    try:
        return fmt.parse(stored)
    except (ValueError, OverflowError, OSError):  # OSError: a timestamp the platform cannot hold
        raise UnreadableCursor(where, stream, stored, fmt.expected) from None


class Incremental(Generic[T]):
    """One stream's high-water mark for one pull.

    ``stored`` is the cursor as the store holds it (None: never pulled, or a full pull). The read
    starts at :attr:`since`; every value the pull reads goes through :meth:`seen`; :attr:`cursor`
    is what to commit with the records read so far. ``origin`` is where a stream with no cursor
    starts; ``ceiling`` the value no cursor passes; ``lookback`` steps a stored position back.
    """

    def __init__(
        self,
        where: str,
        stream: str,
        stored: str | None,
        fmt: CursorFormat[T],
        *,
        origin: T,
        ceiling: T | None = None,
        lookback: Callable[[T], T] | None = None,
    ) -> None:
        self.fmt = fmt
        self.ceiling = ceiling
        last = read_cursor(where, stream, stored, fmt)
        self.started = last is None  # a first (or full) pull: from the origin, nothing stepped back
        position = self._capped(origin if last is None else last)
        since = position if last is None or lookback is None else lookback(position)
        self.since = max(origin, since)
        self.high = position

    def _capped(self, value: T) -> T:
        return value if self.ceiling is None else min(value, self.ceiling)

    def seen(self, value: T) -> None:
        """A value the pull read (a row's time or id): the cursor follows it, up to the ceiling."""
        self.high = max(self.high, self._capped(value))

    @property
    def cursor(self) -> str:
        return self.fmt.format(self.high)


def time_cursor(
    ctx: PullContext,
    where: str,
    stream: str,
    fmt: CursorFormat[datetime] = ISO_TIME,
    lookback: timedelta = timedelta(0),
) -> Incremental[datetime]:
    """A time cursor for ``stream``: from 1970 on a first or full pull, else ``lookback`` behind
    the stored one, never past ``ctx.now``."""
    return Incremental(
        where,
        stream,
        None if ctx.full else ctx.cursors.get(stream),
        fmt,
        origin=EPOCH,
        ceiling=ctx.now,
        lookback=(lambda t: EPOCH + max(t - EPOCH - lookback, timedelta(0))) if lookback else None,
    )


def refresh_due(ctx: PullContext, stream: str, every: timedelta) -> bool:
    """Whether a stream refreshed whole is due: on a full pull, when it never was, ``every``
    after the last refresh, and at once when that refresh is stamped in the future (a clock
    that had jumped ahead, then was put right) instead of weeks later.

    Unlike a high-water mark, an unreadable refresh time is no error: the refresh it makes due
    reads the stream whole and writes a good one.
    """
    stored = None if ctx.full else ctx.cursors.get(stream)
    try:
        last = ISO_TIME.parse(stored) if stored else None
    except (ValueError, OverflowError):
        return True
    if last is None:
        return True
    elapsed = ctx.now - last
    return elapsed >= every or elapsed < timedelta(0)


def refreshed(ctx: PullContext) -> str:
    """The cursor of a stream refreshed whole by this pull (to the second: it needs no more)."""
    return ISO_TIME.format(ctx.now.replace(microsecond=0))
