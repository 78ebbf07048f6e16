"""Chart series with server-side downsampling: at most `max_points` buckets per field at
any range, each bucket carrying min, max and mean, so a one-second spike is still drawn
at 30 days. Ranges short enough to show every sample come back raw.

Buckets come from `services.stats.bucket_stats` (per-minute rollups for whole-minute
widths, raw rows below a minute); the widths are round numbers (1 s ... 1 day) so the
chart's resolution is easy to state. Also: a row and size estimate for downloads, read
from the same rollups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.core.errors import InvalidQuery, NotFound
from services.storage.dialect import to_epoch
from services.storage.schema import is_key_column, time_column
from services.telemetry.export import open_csv_stream
from services.telemetry.rows import Selector, count_rows, fetch_all, fetch_latest, fetch_oldest, resolve_columns
from services.telemetry.stats import StatsQuery, bucket_stats
from services.telemetry.timerange import TimeRange

MAX_POINTS = 1500
NICE_WIDTHS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                 2 * 86400, 7 * 86400)
MAX_CHART_FIELDS = 8


@dataclass(frozen=True)
class FieldSeries:
    """One field over the range: `value` is the sample (raw) or the bucket mean;
    `low`/`high` are the bucket min/max (None when raw). Times are site-local wall
    times without offset (`2022-09-01T10:00:00`), as Plotly draws them."""

    name: str
    time: list[str]
    value: list[float | None]
    low: list[float | None] | None = None
    high: list[float | None] | None = None


@dataclass(frozen=True)
class Series:
    tr: TimeRange
    width_s: int  # 1 = every sample
    fields: list[FieldSeries] = field(default_factory=list)

    @property
    def raw(self) -> bool:
        return self.width_s <= 1

    @property
    def points(self) -> int:
        return max((len(f.time) for f in self.fields), default=0)


def choose_width(seconds: int, max_points: int = MAX_POINTS) -> int:
    """The smallest round bucket width giving at most `max_points` buckets."""
    if seconds <= 0:
        raise InvalidQuery("the range is empty", code="empty_range")
    for width in NICE_WIDTHS_S:
        if math.ceil(seconds / width) <= max_points:
            return width
    return math.ceil(seconds / max_points / 86400) * 86400


def align_range(tr: TimeRange, width_s: int) -> TimeRange:
    """Widen to whole minutes when the width is whole minutes: the rollups' span, for
    estimates only (charts ask bucket_stats for the range itself)."""
    if width_s % 60:
        return tr
    start = to_epoch(tr.start) // 60 * 60
    end = -(-to_epoch(tr.end) // 60) * 60
    return TimeRange(tr.start - timedelta(seconds=to_epoch(tr.start) - start),
                     tr.end + timedelta(seconds=end - to_epoch(tr.end)))


def _wall(iso: str) -> str:
    return iso[:19]


def _raw_series(sel: Selector, tr: TimeRange, columns: Sequence[sa.Column[Any]]) -> list[FieldSeries]:
    ts = time_column(sel.store.table(sel.component))
    rows = fetch_all(sel, tr, [ts, *columns], limit=MAX_POINTS * 4)
    key = ts.name.lower()
    times = [_wall(r[key]) for r in rows]
    return [FieldSeries(c.name.lower(), times, [r[c.name.lower()] for r in rows]) for c in columns]


def _with_gaps(rows: list[dict[str, Any]], width_s: int) -> list[dict[str, Any] | None]:
    """Rows with a None between two buckets that are more than one width apart, so a
    gap in the data is drawn as a gap, not as a straight line across it."""
    out: list[dict[str, Any] | None] = []
    prev: datetime | None = None
    for row in rows:
        t = datetime.fromisoformat(row["time"])
        if prev is not None and (t - prev).total_seconds() > width_s * 1.5:
            out.append({"time": (prev + timedelta(seconds=width_s)).isoformat()})
        out.append(row)
        prev = t
    return out


def _bucket_series(sel: Selector, tr: TimeRange, columns: Sequence[sa.Column[Any]],
                   width_s: int) -> list[FieldSeries]:
    rows = bucket_stats(StatsQuery(sel, tr, width_s, tuple(columns), ("min", "max", "avg")))
    gapped = [r for r in _with_gaps(rows, width_s) if r is not None]
    times = [_wall(r["time"]) for r in gapped]
    out = []
    for c in columns:
        name = c.name.lower()
        out.append(FieldSeries(name, times, [r.get(f"avg_{name}") for r in gapped],
                               [r.get(f"min_{name}") for r in gapped], [r.get(f"max_{name}") for r in gapped]))
    return out


def get_series(sel: Selector, tr: TimeRange, fields: Sequence[str], max_points: int = MAX_POINTS) -> Series:
    """Each field over the range, raw when it fits in `max_points` samples, else as
    min/max/mean buckets of a round width. InvalidQuery for unknown, non-numeric or too
    many fields."""
    if not fields:
        raise InvalidQuery("choose at least one field to chart", code="no_fields",
                           invalid_params=[{"name": "fields", "reason": "empty"}])
    if len(fields) > MAX_CHART_FIELDS:
        raise InvalidQuery(f"at most {MAX_CHART_FIELDS} fields per chart", code="too_many_fields",
                           invalid_params=[{"name": "fields", "reason": f"over {MAX_CHART_FIELDS}"}])
    columns = resolve_columns(sel, ",".join(fields))
    width = choose_width(tr.seconds, max_points)
    if width <= 1:
        return Series(tr, 1, _raw_series(sel, tr, columns))
    return Series(tr, width, _bucket_series(sel, tr, columns, width))


def get_newest_time(sel: Selector) -> datetime:
    """Time of the newest row of the selection (aware, UTC); NotFound when empty."""
    ts = time_column(sel.store.table(sel.component))
    row = fetch_latest(sel, [ts])
    return datetime.fromisoformat(row[ts.name.lower()])


def get_oldest_time(sel: Selector) -> datetime:
    """Time of the oldest row of the selection (aware, UTC); NotFound when empty."""
    ts = next(c for c in sel.store.table(sel.component).columns if c.name.upper() == "TIMESTAMP")
    row = fetch_oldest(sel, [ts])
    return datetime.fromisoformat(row[ts.name.lower()])


@dataclass(frozen=True)
class DownloadEstimate:
    rows: int
    bytes: int
    exact: bool


def estimate_download(sel: Selector, tr: TimeRange, sample_s: int = 60) -> DownloadEstimate:
    """Rows and CSV bytes of a download before it starts: rows from the per-minute
    rollups (the sample count of the first numeric field; exact count on short ranges),
    bytes from the CSV size of the first `sample_s` seconds that hold rows."""
    table = sel.store.table(sel.component)
    numeric = [c for c in table.columns if not is_key_column(c)
               and isinstance(c.type, (sa.Integer, sa.Float)) and not isinstance(c.type, sa.JSON)]
    exact = tr.seconds <= 6 * 3600 or not numeric
    if exact:
        rows = count_rows(sel, tr)
    else:
        span = align_range(tr, 60)
        width = -(-span.seconds // 86400) * 86400 + 86400
        stats = bucket_stats(StatsQuery(sel, span, width, (numeric[0],), ("count",)))
        rows = sum(int(r[f"count_{numeric[0].name.lower()}"] or 0) for r in stats)
    if rows == 0:
        return DownloadEstimate(0, 0, exact)
    try:
        last = min(tr.end, get_newest_time(sel) + timedelta(seconds=1))
    except NotFound:
        last = tr.end
    first = max(tr.start, last - timedelta(seconds=sample_s))
    sample_tr = TimeRange(first, last) if first < last else TimeRange(tr.start, tr.start + timedelta(seconds=sample_s))
    columns = list(table.columns)
    body = b"".join(open_csv_stream(sel, sample_tr, columns))
    lines = body.count(b"\n") - 1
    header = body.index(b"\n") + 1 if b"\n" in body else len(body)
    per_row = (len(body) - header) / lines if lines > 0 else 8 * len(columns)
    return DownloadEstimate(rows, int(header + per_row * rows), exact)
