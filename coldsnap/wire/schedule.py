"""Schedules: ``Period`` and ``Cron`` (Modal's names), as the SDK takes them and the
server runs them (``@app.function(schedule=...)``; docs/schedules.md).

Both sides agree here on their JSON form (``to_dict``/``schedule_from_dict``) and on
when they fire next (``next_after``). Cron is standard 5-field cron: minute, hour,
day of month, month, day of week; ``*``, ``a-b``, ``a,b``, ``*/n``, ``a-b/n``, month
and day names (``jan``, ``mon``), 7 for Sunday, ``@hourly`` and friends; when both
day fields are restricted a day matching either fires (as in Vixie cron). Example::

    Cron("*/5 * * * *").next_after(datetime(2025, 1, 1, 0, 1, tzinfo=timezone.utc))
    # -> 2025-01-01 00:05 UTC
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import Any

from coldsnap.wire.errors import InvalidError

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (name, lowest, highest, names for lowest.. in order)
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []), ("hour", 0, 23, []), ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}
_MAX_STEPS = 100_000  # more than four years of day-by-day steps: a Feb 29 cron fits
_MINUTE = dt.timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class Period:
    """Run every fixed period, counted from the deploy: ``Period(hours=1, minutes=30)``.
    Months count as 30 days and years as 365 (use Cron for calendar dates)."""

    years: float = 0
    months: float = 0
    weeks: float = 0
    days: float = 0
    hours: float = 0
    minutes: float = 0
    seconds: float = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidError(f"Period({field.name}={value!r}): each part must be a "
                                   "number >= 0")
        if self.total_seconds() < 1:
            raise InvalidError(f"{self!r} is shorter than a second: give a period of 1 s or "
                               "more, e.g. Period(seconds=30)")

    def total_seconds(self) -> float:
        return (self.seconds + 60 * self.minutes + 3600 * self.hours + 86400 * (
            self.days + 7 * self.weeks + 30 * self.months + 365 * self.years))

    def next_after(self, when: dt.datetime) -> dt.datetime:
        return when + dt.timedelta(seconds=self.total_seconds())

    def to_dict(self) -> dict[str, Any]:
        return {"period": {k: v for k, v in dataclasses.asdict(self).items() if v}}

    def describe(self) -> str:
        return f"every {self.total_seconds():g} s"


@dataclasses.dataclass(frozen=True)
class Cron:
    """Run at the times a cron expression names, in ``timezone`` (an IANA name):
    ``Cron("0 9 * * mon-fri", timezone="Europe/Berlin")``. A syntax error, an unknown
    time zone or an expression that never fires raises InvalidError at once."""

    cron_string: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        _parse(self.cron_string)
        self._zone()
        self.next_after(dt.datetime.now(dt.UTC))  # raises if it never fires

    def _zone(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidError(f"Cron({self.cron_string!r}, timezone={self.timezone!r}): "
                               "unknown time zone; use an IANA name like 'UTC' or "
                               "'America/New_York'") from None

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first time after ``when`` (timezone-aware) that the expression names."""
        minutes, hours, days, months, weekdays, either_day = _parse(self.cron_string)
        zone = self._zone()
        local = when.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) + _MINUTE
        for _ in range(_MAX_STEPS):
            day_ok = _day_matches(local, days, weekdays, either_day)
            if local.month not in months:
                first = local.replace(day=1, hour=0, minute=0)
                local = (first + dt.timedelta(days=32)).replace(day=1)
            elif not day_ok:
                local = local.replace(hour=0, minute=0) + dt.timedelta(days=1)
            elif local.hour not in hours:
                local = local.replace(minute=0) + dt.timedelta(hours=1)
            elif local.minute not in minutes:
                local += _MINUTE
            else:
                return local.replace(tzinfo=zone).astimezone(dt.UTC)
        raise InvalidError(f"Cron({self.cron_string!r}) never fires (no such date, e.g. "
                           "February 30th); fix the day and month fields")

    def to_dict(self) -> dict[str, Any]:
        return {"cron": self.cron_string, "timezone": self.timezone}

    def describe(self) -> str:
        return f"cron {self.cron_string!r} ({self.timezone})"


Schedule = Period | Cron


def schedule_from_dict(data: dict[str, Any]) -> Schedule:
    """``to_dict()``'s inverse."""
    if "period" in data:
        return Period(**data["period"])
    if "cron" in data:
        return Cron(str(data["cron"]), str(data.get("timezone", "UTC")))
    raise InvalidError(f"not a schedule: {data!r}")


def _day_matches(day: dt.datetime, days: frozenset[int], weekdays: frozenset[int],
                 either: bool) -> bool:
    weekday = (day.weekday() + 1) % 7  # cron counts from Sunday = 0
    if either:
        return day.day in days or weekday in weekdays
    return day.day in days and weekday in weekdays


def _parse(text: object) -> tuple[Any, ...]:
    """(minutes, hours, days, months, weekdays, either_day) as sets of ints."""
    if not isinstance(text, str):
        raise InvalidError(f"Cron() takes a string like '*/5 * * * *', not {text!r}")
    parts = _MACROS.get(text.strip().lower(), text).split()
    if len(parts) != 5:
        raise InvalidError(f"Cron({text!r}) has {len(parts)} fields; cron takes 5: minute "
                           "hour day-of-month month day-of-week, e.g. '*/5 * * * *'")
    sets = [_field(text, part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])  # 7 is Sunday too
    either = not parts[2].startswith("*") and not parts[4].startswith("*")
    return sets[0], sets[1], sets[2], sets[3], weekdays, either


def _field(text: str, part: str, name: str, low: int, high: int,
           names: list[str]) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        base, _, step_text = item.partition("/")
        step = _number(text, name, step_text, names=[], low=1, high=high) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            start, _, end = base.partition("-")
            first = _number(text, name, start, names, low, high)
            last = _number(text, name, end, names, low, high)
            if last < first:
                raise InvalidError(f"Cron({text!r}): the {name} range {base!r} runs backwards")
        else:
            first = _number(text, name, base, names, low, high)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _number(text: str, name: str, token: str, names: list[str], low: int, high: int) -> int:
    lowered = token.lower()
    if lowered in names:
        return names.index(lowered) + low
    if not token.isdigit():
        raise InvalidError(f"Cron({text!r}): {token!r} is not a valid {name}; use a number "
                           f"from {low} to {high}" + (f" or a name like {names[0]!r}"
                                                      if names else ""))
    value = int(token)
    if not low <= value <= high:
        raise InvalidError(f"Cron({text!r}): the {name} {value} is out of range "
                           f"{low}-{high}")
    return value
