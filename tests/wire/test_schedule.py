"""``Period`` and ``Cron``: validation at decoration, and when they fire next."""

from __future__ import annotations

import datetime as dt

import pytest

import coldsnap
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions
from coldsnap.wire.schedule import Cron, Period, schedule_from_dict

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("expression, after, expected", [
    ("*/5 * * * *", "2025-01-01T00:01:30", "2025-01-01T00:05:00"),
    ("*/5 * * * *", "2025-01-01T00:05:00", "2025-01-01T00:10:00"),  # strictly after
    ("0 9 * * mon-fri", "2025-01-03T10:00:00", "2025-01-06T09:00:00"),  # Fri -> Mon
    ("30 2 1 * *", "2025-01-15T00:00:00", "2025-02-01T02:30:00"),
    ("0 0 29 feb *", "2025-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("0 12 * * 7", "2025-01-01T00:00:00", "2025-01-05T12:00:00"),  # 7 is Sunday
    ("0 0 13 * fri", "2025-01-01T00:00:00", "2025-01-03T00:00:00"),  # either day field
    ("@hourly", "2025-01-01T10:59:00", "2025-01-01T11:00:00"),
    ("0-10/5,59 1 * dec *", "2025-01-01T00:00:00", "2025-12-01T01:00:00"),
])
def test_cron_fires_next_when_cron_would(expression: str, after: str, expected: str) -> None:
    assert Cron(expression).next_after(at(after)) == at(expected)


def test_cron_counts_in_its_time_zone() -> None:
    berlin = Cron("0 9 * * *", timezone="Europe/Berlin")
    assert berlin.next_after(at("2025-01-01T00:00:00")) == at("2025-01-01T08:00:00")
    assert berlin.next_after(at("2025-07-01T00:00:00")) == at("2025-07-01T07:00:00")


@pytest.mark.parametrize("expression, message", [
    ("* * * *", "has 4 fields; cron takes 5"),
    ("61 * * * *", "the minute 61 is out of range 0-59"),
    ("* * * foo *", "'foo' is not a valid month"),
    ("5-1 * * * *", "the minute range '5-1' runs backwards"),
    ("0 0 30 feb *", "never fires"),
    ("*/0 * * * *", "out of range"),
])
def test_a_bad_cron_fails_at_once_with_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        Cron(expression)


def test_a_bad_time_zone_or_period_fails_at_once() -> None:
    with pytest.raises(InvalidError, match="unknown time zone"):
        Cron("* * * * *", timezone="Mars/Olympus")
    with pytest.raises(InvalidError, match="shorter than a second"):
        Period(seconds=0.5)
    with pytest.raises(InvalidError, match="must be a number >= 0"):
        Period(minutes=-1)


def test_period_adds_its_length() -> None:
    period = Period(hours=1, minutes=30, seconds=5)
    assert period.next_after(at("2025-01-01T00:00:00")) == at("2025-01-01T01:30:05")


def test_schedules_round_trip_through_the_options_json() -> None:
    for schedule in (Period(seconds=2), Cron("0 9 * * 1", timezone="Asia/Tokyo")):
        options = FunctionOptions.create("@app.function()", schedule=schedule)
        data = options.to_dict()
        assert schedule_from_dict(data["schedule"]) == schedule
        assert FunctionOptions.from_dict(data).schedule == schedule
        assert FunctionOptions.from_dict(data, validate=False).schedule == schedule


def test_decorators_check_the_schedule() -> None:
    app = coldsnap.App("sched")
    with pytest.raises(InvalidError, match="schedule must be coldsnap.Period"):
        app.function(schedule="*/5 * * * *")
    with pytest.raises(InvalidError, match="@app.cls\\(\\) takes no schedule="):
        app.cls(schedule=coldsnap.Period(minutes=1))
    with pytest.raises(InvalidError, match="out of range"):
        app.function(schedule=coldsnap.Cron("* 24 * * *"))
