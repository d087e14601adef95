"""Shared value conversions: durations and times as errand's API wants them."""

from __future__ import annotations

import datetime as _dt
from typing import Union

#: A duration: seconds (int/float), a timedelta, or text such as "30s", "1h30m".
Duration = Union[int, float, _dt.timedelta, str]


def duration(value: Duration) -> Union[float, int, str]:
    """Encode a duration for a request body or query."""
    if isinstance(value, bool):
        raise TypeError("a duration cannot be a bool")
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float, str)):
        return value
    raise TypeError(f"a duration must be seconds, a timedelta or a string, got {value!r}")


def seconds(value: Duration) -> float:
    """A duration as seconds, for local timing (strings: s, ms, m, h forms)."""
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return _parse_text(value)
    raise TypeError(f"not a duration: {value!r}")


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _parse_text(text: str) -> float:
    rest = text.strip()
    try:
        return float(rest)
    except ValueError:
        pass
    total, number = 0.0, ""
    i = 0
    while i < len(rest):
        c = rest[i]
        if c.isdigit() or c == ".":
            number += c
            i += 1
            continue
        unit = "ms" if rest.startswith("ms", i) else c
        if not number or unit not in _UNITS:
            raise ValueError(f"not a duration: {text!r}")
        total += float(number) * _UNITS[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError(f"not a duration (missing unit): {text!r}")
    return total


def timestamp(value: Union[_dt.datetime, str]) -> str:
    """Encode a time as RFC 3339 UTC (naive datetimes are taken as UTC)."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
