"""bridge.incremental: a stream's cursor is read in one place, stepped back by its look-back,
follows what the pull reads and never passes now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.incremental import (
    EPOCH,
    EPOCH_SECONDS,
    ISO_TIME,
    CursorFormat,
    Incremental,
    UnreadableCursor,
    refresh_due,
    refreshed,
    time_cursor,
)
from bridge.ports import PullContext, PullScope

NOW = datetime(2026, 11, 3, 10, 30, 15, 250_000, tzinfo=UTC)
TIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from([UTC])
)
LATER_TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
LOOKBACKS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30))
FORMATS = st.sampled_from([ISO_TIME, EPOCH_SECONDS])


def ctx(
    cursors: dict[str, str | None] | None = None, *, now: datetime = NOW, full: bool = False
) -> PullContext:
    return PullContext(cursors=cursors or {}, scope=PullScope(), now=now, full=full)


@given(stored=LATER_TIMES, seen=st.lists(TIMES, max_size=5), now=LATER_TIMES, fmt=FORMATS, lookback=LOOKBACKS)
def test_a_time_cursor_never_passes_now(
    stored: datetime, seen: list[datetime], now: datetime, fmt: CursorFormat[datetime], lookback: timedelta
) -> None:
    cursor = time_cursor(ctx({"s": fmt.format(stored)}, now=now), "site 'x'", "s", fmt, lookback)
    for value in seen:
        cursor.seen(value)
    assert fmt.parse(cursor.cursor) <= now
    assert cursor.since <= now


@given(value=TIMES)
def test_an_iso_cursor_round_trips_at_full_precision(value: datetime) -> None:
    assert ISO_TIME.parse(ISO_TIME.format(value)) == value


@given(value=LATER_TIMES)
def test_an_epoch_cursor_round_trips_to_the_second_below(value: datetime) -> None:
    assert EPOCH_SECONDS.parse(EPOCH_SECONDS.format(value)) == value.replace(microsecond=0)


@given(stored=LATER_TIMES, now=LATER_TIMES, lookback=LOOKBACKS)
def test_the_look_back_steps_back_from_the_stored_cursor_and_no_further_than_1970(
    stored: datetime, now: datetime, lookback: timedelta
) -> None:
    cursor = time_cursor(ctx({"s": ISO_TIME.format(stored)}, now=now), "site 'x'", "s", ISO_TIME, lookback)
    position = min(stored, now)
    assert cursor.since == max(EPOCH, position - lookback)
    if position - lookback >= EPOCH:
        assert cursor.since + lookback == position
    assert cursor.cursor == ISO_TIME.format(position)  # nothing read: the cursor stays where it was


def test_a_first_or_full_pull_starts_in_1970_and_reads_no_stored_cursor() -> None:
    for pull in (ctx(), ctx({"s": "not a time"}, full=True)):
        cursor = time_cursor(pull, "site 'x'", "s", EPOCH_SECONDS, timedelta(days=1))
        assert cursor.started and cursor.since == EPOCH and cursor.cursor == "0"
        cursor.seen(datetime(2026, 10, 1, tzinfo=UTC))
        assert cursor.cursor == str(int(datetime(2026, 10, 1, tzinfo=UTC).timestamp()))


def test_a_row_stamped_in_the_future_holds_the_cursor_at_now() -> None:
    cursor = time_cursor(ctx({"s": "2026-11-01T00:00:00+00:00"}), "feed 'dw'", "s")
    cursor.seen(NOW + timedelta(days=3))  # a local time read as UTC, a clock ahead
    assert cursor.cursor == NOW.isoformat()
    cursor.seen(NOW - timedelta(hours=1))  # an older row read after it takes nothing back
    assert cursor.cursor == NOW.isoformat()


def test_a_stored_cursor_in_the_future_is_read_from_now() -> None:
    cursor = time_cursor(
        ctx({"s": "2027-06-01T00:00:00+00:00"}), "feed 'dw'", "s", lookback=timedelta(hours=1)
    )
    assert cursor.since == NOW - timedelta(hours=1) and cursor.cursor == NOW.isoformat()


@pytest.mark.parametrize(
    ("fmt", "stored", "expected"),
    [
        (ISO_TIME, "yesterday", "an ISO 8601 time with its UTC offset"),
        (ISO_TIME, "2026-11-01T00:00:00", "an ISO 8601 time with its UTC offset"),  # no offset
        (EPOCH_SECONDS, "2026-11-01", "whole seconds since 1970"),
        (EPOCH_SECONDS, "9" * 30, "whole seconds since 1970"),
    ],
)
def test_an_unreadable_stored_cursor_is_an_error_naming_source_and_stream(
    fmt: CursorFormat[datetime], stored: str, expected: str
) -> None:
    with pytest.raises(UnreadableCursor) as caught:
        time_cursor(ctx({"ratings": stored}), "Totara site 'learn'", "ratings", fmt)
    message = str(caught.value)
    assert message.startswith("Totara site 'learn': the stored cursor of stream 'ratings' cannot be read")
    assert expected in message and "--full" in message


def test_an_id_cursor_follows_the_highest_id_without_a_ceiling() -> None:
    ids = CursorFormat[int]("a whole number", int, str)
    cursor = Incremental("site 'm'", "changes", "41", ids, origin=0)
    assert cursor.since == 41 and not cursor.started
    for change in (44, 42, 50):
        cursor.seen(change)
    assert cursor.cursor == "50"
    with pytest.raises(UnreadableCursor, match="expected a whole number"):
        Incremental("site 'm'", "changes", "x41", ids, origin=0)


def test_a_refresh_is_due_after_its_interval_at_once_when_stamped_ahead_and_when_unreadable() -> None:
    every = timedelta(hours=1)
    assert refresh_due(ctx(), "users", every)
    assert not refresh_due(ctx({"users": refreshed(ctx(now=NOW - timedelta(minutes=59)))}), "users", every)
    assert refresh_due(ctx({"users": refreshed(ctx(now=NOW - every))}), "users", every)
    assert refresh_due(ctx({"users": refreshed(ctx(now=NOW + timedelta(days=30)))}), "users", every)
    assert refresh_due(ctx({"users": "garbled"}), "users", every)  # the refresh writes a good one
    assert refresh_due(ctx({"users": refreshed(ctx())}, full=True), "users", every)
    assert refreshed(ctx()) == "2026-11-03T10:30:15+00:00"
