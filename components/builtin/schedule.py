"""The schedule trigger: a flow starts on a cron schedule in a time zone.

The server's scheduler asks the trigger for its fire times (`CronTrigger.next_fires`, the contract
any schedule-kind trigger implements), which `next_fire_times` computes. Expressions have
the classic five fields (minute hour day-of-month month day-of-week) or one of the `@hourly`-style
shortcuts; six-field (seconds) and hashed (`H`) forms are refused so an expression means the same
everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, field_validator

from components.api import Component, Inputs, Trigger

__all__ = [
    "CronTrigger",
    "ScheduleInputs",
    "component",
    "next_fire_times",
    "validate_cron",
    "validate_timezone",
]

_SHORTCUTS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_FIELDS_HELP = (
    "Use five fields 'minute hour day-of-month month day-of-week', e.g. '*/15 * * * *' "
    "(every 15 minutes) or '0 9 * * MON-FRI' (9:00 on weekdays), or a shortcut such as '@daily'."
)
_MAX_COUNT = 1000


def validate_cron(expression: str) -> str:
    """Return the normalised expression, or raise `ValueError` saying what is wrong with it."""
    expr = " ".join(expression.split())
    if not expr:
        raise ValueError(f"The cron expression is empty. {_FIELDS_HELP}")
    if expr.startswith("@"):
        if expr.lower() not in _SHORTCUTS:
            raise ValueError(f"'{expr}' is not a known cron shortcut. {_FIELDS_HELP}")
        expr = expr.lower()
    elif len(expr.split(" ")) != 5:
        raise ValueError(f"'{expr}' has {len(expr.split(' '))} fields, not 5. {_FIELDS_HELP}")
    try:
        # Computing one fire time also catches dates that never exist, e.g. '0 0 31 2 *'.
        croniter(expr, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except Exception as exc:
        raise ValueError(
            f"'{expr}' is not a valid cron expression ({exc}). {_FIELDS_HELP}"
        ) from None
    return expr


def validate_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone known here, else raise `ValueError`."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"Unknown time zone '{name}'. Use an IANA name such as 'UTC', 'Europe/Berlin' or "
            "'America/New_York'."
        ) from None
    return name


class ScheduleInputs(Inputs):
    """When the flow runs."""

    cron: str = Field(
        title="Cron expression",
        description="minute hour day-of-month month day-of-week, e.g. `*/15 * * * *` or "
        "`0 9 * * MON-FRI`; shortcuts `@hourly`, `@daily`, `@weekly`, `@monthly` work too.",
    )
    timezone: str = Field(
        "UTC",
        title="Time zone",
        description="IANA time zone the expression is read in, e.g. `Europe/Berlin`; daylight "
        "saving changes are followed.",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return validate_timezone(value)


class CronTrigger(Trigger[ScheduleInputs]):
    key = "cron"
    title = "Schedule"
    description = (
        "Starts the flow on a cron schedule, e.g. every 15 minutes or at 9:00 on weekdays."
    )
    kind = "schedule"
    Inputs = ScheduleInputs
    sample_payload = {
        "body": {"scheduled_at": "2025-01-06T09:00:00+01:00", "cron": "0 9 * * MON-FRI"},
        "headers": {},
        "query": {},
    }

    def next_fires(self, inputs: ScheduleInputs, after: datetime, count: int) -> list[datetime]:
        return next_fire_times(inputs.cron, inputs.timezone, after, count)


def next_fire_times(cron: str, tz: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`, as aware datetimes in zone `tz`.

    A naive `after` is read as UTC. Raises `ValueError` (with a readable message) for a bad
    expression, an unknown zone or a `count` outside 1..1000.
    """
    expr = validate_cron(cron)
    zone = ZoneInfo(validate_timezone(tz))
    if not 1 <= count <= _MAX_COUNT:
        raise ValueError(f"count must be between 1 and {_MAX_COUNT}, not {count}")
    if after.tzinfo is None:
        after = after.replace(tzinfo=UTC)
    iterator = croniter(expr, after.astimezone(zone))
    return [iterator.get_next(datetime) for _ in range(count)]


component = Component(
    key="schedule",
    title="Schedule",
    category="Triggers",
    version="1.0.0",
    description="Start a flow on a cron schedule.",
    triggers=[CronTrigger],
)
