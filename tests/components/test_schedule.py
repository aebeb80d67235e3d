"""schedule.cron: expression and time zone validation, next fire times."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from components.builtin.schedule import CronTrigger, ScheduleInputs, next_fire_times


@pytest.mark.parametrize(
    ("cron", "normalised"),
    [
        ("*/15 * * * *", "*/15 * * * *"),
        ("  0   9 * *   MON-FRI ", "0 9 * * MON-FRI"),
        ("0 0 1 1,7 *", "0 0 1 1,7 *"),
        ("0 0 29 2 *", "0 0 29 2 *"),
        ("@Daily", "@daily"),
        ("@hourly", "@hourly"),
    ],
)
def test_good_expressions(cron: str, normalised: str) -> None:
    inputs = ScheduleInputs(cron=cron)
    assert inputs.cron == normalised
    assert inputs.timezone == "UTC"


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("", "empty"),
        ("* * * *", "has 4 fields, not 5"),
        ("0 * * * * *", "has 6 fields, not 5"),
        ("61 * * * *", "'61 \\* \\* \\* \\*' is not a valid cron expression"),
        ("* * * * 8", "not a valid cron expression"),
        ("H * * * *", "not a valid cron expression"),
        ("0 0 31 2 *", "not a valid cron expression"),
        ("every day", "fields"),
        ("@reboot", "not a known cron shortcut"),
    ],
)
def test_bad_expressions_say_how_to_write_one(cron: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        ScheduleInputs(cron=cron)
    assert "*/15 * * * *" in str(info.value)


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "UTC"])
def test_good_timezones(tz: str) -> None:
    assert ScheduleInputs(cron="* * * * *", timezone=tz).timezone == tz


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "../etc/passwd", "Europe/"])
def test_bad_timezones(tz: str) -> None:
    with pytest.raises(ValidationError, match="Unknown time zone"):
        ScheduleInputs(cron="* * * * *", timezone=tz)


def test_next_fire_times_weekdays_in_zone() -> None:
    after = datetime(2025, 1, 3, 12, 0, tzinfo=UTC)  # a Friday
    times = next_fire_times("0 9 * * MON-FRI", "Europe/Berlin", after, 3)
    berlin = ZoneInfo("Europe/Berlin")
    assert times == [
        datetime(2025, 1, 6, 9, 0, tzinfo=berlin),
        datetime(2025, 1, 7, 9, 0, tzinfo=berlin),
        datetime(2025, 1, 8, 9, 0, tzinfo=berlin),
    ]
    assert times[0].utcoffset() is not None
    assert times[0].astimezone(UTC).hour == 8


def test_next_fire_times_are_strictly_after() -> None:
    after = datetime(2025, 1, 1, 0, 15, tzinfo=UTC)
    assert next_fire_times("*/15 * * * *", "UTC", after, 2) == [
        datetime(2025, 1, 1, 0, 30, tzinfo=UTC),
        datetime(2025, 1, 1, 0, 45, tzinfo=UTC),
    ]


def test_next_fire_times_naive_after_is_utc() -> None:
    [first] = next_fire_times("0 * * * *", "UTC", datetime(2025, 1, 1, 10, 30), 1)
    assert first == datetime(2025, 1, 1, 11, 0, tzinfo=UTC)


def test_next_fire_times_follow_dst() -> None:
    # Berlin springs forward at 02:00 on 2025-03-30: 09:00 stays 09:00 local, the UTC hour moves.
    after = datetime(2025, 3, 29, 0, 0, tzinfo=UTC)
    times = next_fire_times("0 9 * * *", "Europe/Berlin", after, 2)
    assert [t.astimezone(UTC).hour for t in times] == [8, 7]


@pytest.mark.parametrize(
    ("cron", "tz", "count", "message"),
    [
        ("bad", "UTC", 1, "fields"),
        ("* * * * *", "Nowhere/City", 1, "Unknown time zone"),
        ("* * * * *", "UTC", 0, "between 1 and 1000"),
        ("* * * * *", "UTC", 1001, "between 1 and 1000"),
    ],
)
def test_next_fire_times_refuses_bad_arguments(
    cron: str, tz: str, count: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        next_fire_times(cron, tz, datetime(2025, 1, 1, tzinfo=UTC), count)


def test_trigger_metadata() -> None:
    assert CronTrigger.kind == "schedule"
    assert CronTrigger.Inputs is ScheduleInputs
