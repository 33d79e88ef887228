from __future__ import annotations

from datetime import UTC, datetime, time

from bridge.timing import next_send_time, zone

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
NINE, FIVE = time(9), time(17)


def test_inside_the_window_sends_now() -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # Tuesday, 10:00 in London
    assert next_send_time(now, WEEKDAYS, NINE, FIVE, zone("Europe/London")) == now


def test_evening_defers_to_next_morning_local_time() -> None:
    now = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # Tuesday 15:00 in New York
    assert next_send_time(now, WEEKDAYS, NINE, FIVE, zone("America/New_York")) == now
    sydney = next_send_time(now, WEEKDAYS, NINE, FIVE, zone("Australia/Sydney"))  # Wed 07:00 there
    assert sydney == datetime(2026, 11, 24, 22, 0, tzinfo=UTC)  # Wed 09:00 AEDT


def test_weekend_defers_to_monday() -> None:
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert next_send_time(saturday, WEEKDAYS, NINE, FIVE, zone("UTC")) == datetime(
        2026, 11, 30, 9, 0, tzinfo=UTC
    )


def test_window_follows_daylight_saving_change() -> None:
    # Europe/London leaves summer time on Sunday 2026-10-25: 09:00 local is 08:00 UTC before, 09:00 after.
    friday_night = datetime(2026, 10, 23, 20, 0, tzinfo=UTC)
    monday = next_send_time(friday_night, WEEKDAYS, NINE, FIVE, zone("Europe/London"))
    assert monday == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)
    thursday_night = datetime(2026, 10, 22, 20, 0, tzinfo=UTC)
    friday = next_send_time(thursday_night, WEEKDAYS, NINE, FIVE, zone("Europe/London"))
    assert friday == datetime(2026, 10, 23, 8, 0, tzinfo=UTC)


def test_unknown_zone_falls_back_to_default() -> None:
    assert zone("Not/AZone", "Europe/Berlin").key == "Europe/Berlin"
    assert zone(None).key == "UTC"
