"""Time input of every route: ISO 8601 dates and date-times, site-local when naive,
half-open ranges, and the bucket widths of the statistics routes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.core.errors import InvalidQuery

MIN_BUCKET_S = 1
MAX_BUCKET_S = 31 * 86400
# Times outside these years are refused with a 400: far enough from datetime's year 1 and
# 9999 that converting to UTC, adding a day or a bucket can never overflow.
MIN_YEAR, MAX_YEAR = 1900, 9000


@dataclass(frozen=True)
class TimeRange:
    """Half-open [start, end) in UTC."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


def _bad(name: str, reason: str, detail: str | None = None) -> InvalidQuery:
    return InvalidQuery(detail or f"{name}: {reason}", code="invalid_parameter",
                        invalid_params=[{"name": name, "reason": reason}])


def parse_time(value: str, tz: ZoneInfo, name: str = "start-time") -> datetime:
    """An ISO 8601 date or date-time (fractions, `Z`, `±hh:mm` allowed) as aware UTC.

    Without an offset the value is the site's local time; a bare date is its midnight.
    Raises InvalidQuery naming the parameter.
    """
    text = value.strip()
    if not text:
        raise _bad(name, "must not be empty")
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            parsed = datetime.combine(date.fromisoformat(text), time(0))
        else:
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if " " in text[:11] else text)
    except ValueError:
        raise _bad(name, f"{value!r} is not an ISO 8601 date or date-time "
                         "(e.g. 2022-09-01, 2022-09-01T10:00:00, 2022-09-01T10:00:00+09:00)") from None
    _check_year(name, value, parsed)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def _check_year(name: str, value: str, parsed: date) -> None:
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise _bad(name, f"{value!r} is outside the years {MIN_YEAR} to {MAX_YEAR}")


def _ceil_second(value: datetime) -> datetime:
    """Rows sit on whole seconds, so [a, b) with fractional bounds holds the same rows as
    [ceil(a), ceil(b)); rounding here keeps both databases exact."""
    return value if value.microsecond == 0 else value.replace(microsecond=0) + timedelta(seconds=1)


def parse_date(value: str, name: str) -> date:
    """A calendar date YYYY-MM-DD."""
    try:
        parsed = date.fromisoformat(value.strip())
    except ValueError:
        raise _bad(name, f"{value!r} is not a date YYYY-MM-DD") from None
    _check_year(name, value, parsed)
    return parsed


def local_day(day: date, tz: ZoneInfo) -> TimeRange:
    """The whole local day as a UTC range."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return TimeRange(start.astimezone(UTC), end.astimezone(UTC))


@dataclass(frozen=True)
class Bounds:
    """[start, end) in UTC where either side may be open (None)."""

    start: datetime | None
    end: datetime | None


RANGE_NAMES = ("start-time", "end-time")


def parse_bounds(args: Mapping[str, str], tz: ZoneInfo, *, date: bool = True, instant: bool = False,
                 names: tuple[str, str] = RANGE_NAMES) -> Bounds:
    """The one range parser: `time` (one second, with `instant`), `date` (a whole local day,
    with `date`), or `start-time` and/or `end-time`. Bounds are rounded up to the whole
    second (rows sit on whole seconds, so the same rows, exactly, on both databases).

    Two forms together or start >= end are 400s; a side not given stays open.
    """
    first, last = names
    has_start, has_end = first in args, last in args
    if instant and "time" in args:
        if has_start or has_end or "date" in args:
            raise InvalidQuery(f"use either time or {first}/{last}, not both", code="invalid_parameter",
                               invalid_params=[{"name": "time", "reason": f"not with {first}/{last}"}])
        at = parse_time(args["time"], tz, "time").replace(microsecond=0)
        return Bounds(at, at + timedelta(seconds=1))
    if date and "date" in args:
        if has_start or has_end:
            raise _bad("date", f"use either date or {first}/{last}, not both")
        day = local_day(parse_date(args["date"], "date"), tz)
        return Bounds(day.start, day.end)
    start = _ceil_second(parse_time(args[first], tz, first)) if has_start else None
    end = _ceil_second(parse_time(args[last], tz, last)) if has_end else None
    if start is not None and end is not None and start >= end:
        raise _bad(last, f"must be later than {first}", f"{last} ({args[last]}) must be later than {first} "
                                                        f"({args[first]})")
    return Bounds(start, end)


def parse_range(args: Mapping[str, str], tz: ZoneInfo, *, required: bool = True, date: bool = True,
                instant: bool = False, names: tuple[str, str] = RANGE_NAMES) -> TimeRange | None:
    """A closed [start, end) from `parse_bounds`: both bounds, or none (None, or a 400 when
    `required`); one bound without the other is a 400."""
    first, last = names
    if not (instant and "time" in args) and not (date and "date" in args):
        if first not in args and last not in args:
            if not required:
                return None
            need = f"date or {first} and {last}" if date else f"{first} and {last}"
            raise InvalidQuery(f"a time range is required: give {need}", code="missing_parameter",
                               invalid_params=[{"name": first, "reason": "required"},
                                               {"name": last, "reason": "required"}])
        for name, other in ((first, last), (last, first)):
            if name not in args:
                raise InvalidQuery(f"{name} is required with {other}", code="missing_parameter",
                                   invalid_params=[{"name": name, "reason": "required"}])
    bounds = parse_bounds(args, tz, date=date, instant=instant, names=names)
    assert bounds.start is not None and bounds.end is not None
    return TimeRange(bounds.start, bounds.end)


_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}
# at most 9 digits per number (31 days is 2,678,400 s): int() of thousands of digits fails
_ISO_DURATION = re.compile(r"P(?:(?P<w>\d{1,9})W)?(?:(?P<d>\d{1,9})D)?"
                           r"(?:T(?:(?P<h>\d{1,9})H)?(?:(?P<m>\d{1,9})M)?(?:(?P<s>\d{1,9})S)?)?", re.ASCII)


def parse_bucket_width(value: str, name: str = "time-bucket-width") -> int:
    """Seconds of a bucket width: the original's spellings (`1hour`, `1 hour`, `1days`,
    `10min`) or an ISO 8601 duration (`PT1H`), from 1 second to 31 days."""
    text = value.strip()
    seconds: int | None = None
    m = re.fullmatch(r"(\d{1,9})\s*([A-Za-z]+)", text, re.ASCII)
    if m and m.group(2).lower() in _UNITS:
        seconds = int(m.group(1)) * _UNITS[m.group(2).lower()]
    elif (iso := _ISO_DURATION.fullmatch(text.upper())) and any(iso.groupdict().values()):
        g = {k: int(v or 0) for k, v in iso.groupdict().items()}
        seconds = g["w"] * 604800 + g["d"] * 86400 + g["h"] * 3600 + g["m"] * 60 + g["s"]
    if seconds is None:
        raise _bad(name, f"{value!r} is not a bucket width (e.g. 1hour, 10min, 1 day, PT15M)")
    if not MIN_BUCKET_S <= seconds <= MAX_BUCKET_S:
        raise _bad(name, f"{value!r} is outside 1 second to 31 days")
    return seconds


def local_midnight_epoch(tr: TimeRange, tz: ZoneInfo) -> int:
    """Epoch seconds of the local midnight on or before the range start (bucket origin)."""
    local = tr.start.astimezone(tz)
    midnight = datetime.combine(local.date(), time(0), tzinfo=tz)
    return int(midnight.timestamp())
