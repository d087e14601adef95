"""Value conversions that need no server: durations, times, sizes, handler arity."""

from __future__ import annotations

import datetime as dt

import pytest

from errand._types import duration, seconds, timestamp
from errand._worker import _takes_context, parse_size


def test_durations() -> None:
    assert seconds("1h30m") == 5400
    assert seconds("250ms") == 0.25
    assert seconds("1m30s") == 90
    assert seconds(2) == 2.0
    assert seconds(dt.timedelta(minutes=1)) == 60
    assert duration(dt.timedelta(milliseconds=500)) == 0.5
    assert duration("30s") == "30s"
    with pytest.raises(ValueError):
        seconds("soon")
    with pytest.raises(TypeError):
        duration(True)


def test_timestamps_are_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    assert timestamp(dt.datetime(2026, 12, 5, 15, 0, tzinfo=paris)) == "2026-12-05T14:00:00Z"
    assert timestamp(dt.datetime(2026, 12, 5, 14, 0)) == "2026-12-05T14:00:00Z"


def test_sizes() -> None:
    assert parse_size("256M") == 256 * 2**20
    assert parse_size("1GiB") == 2**30
    assert parse_size("1000") == 1000
    with pytest.raises(ValueError):
        parse_size("lots")


def test_handler_arity() -> None:
    assert not _takes_context(lambda payload: None)
    assert _takes_context(lambda payload, ctx: None)
    assert _takes_context(lambda *args: None)
