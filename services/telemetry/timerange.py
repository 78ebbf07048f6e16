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


def resolve_range(args: Mapping[str, str], tz: ZoneInfo, *, allow_date: bool = True,
                  required: bool = True) -> TimeRange | None:
    """The [start, end) asked for by `date` or `start-time` + `end-time`.

    Both forms together, one bound without the other, or start >= end are 400s.
    """
    has_date = "date" in args and allow_date
    has_start, has_end = "start-time" in args, "end-time" in args
    if has_date and (has_start or has_end):
        raise _bad("date", "use either date or start-time/end-time, not both")
    if has_date:
        return local_day(parse_date(args["date"], "date"), tz)
    if not has_start and not has_end:
        if not required:
            return None
        need = "date or start-time and end-time" if allow_date else "start-time and end-time"
        raise InvalidQuery(f"a time range is required: give {need}", code="missing_parameter",
                           invalid_params=[{"name": "start-time", "reason": "required"},
                                           {"name": "end-time", "reason": "required"}])
    for name, present in (("start-time", has_start), ("end-time", has_end)):
        if not present:
            raise InvalidQuery(f"{name} is required with {'end-time' if name == 'start-time' else 'start-time'}",
                               code="missing_parameter", invalid_params=[{"name": name, "reason": "required"}])
    start = _ceil_second(parse_time(args["start-time"], tz, "start-time"))
    end = _ceil_second(parse_time(args["end-time"], tz, "end-time"))
    if start >= end:
        raise _bad("end-time", "must be later than start-time",
                   f"end-time ({args['end-time']}) must be later than start-time ({args['start-time']})")
    return TimeRange(start, end)


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
