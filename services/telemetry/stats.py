"""Time-bucketed statistics: the original's avg-* routes and the general
`stats/?fields=&agg=` query behind the UI's charts. Buckets are aligned to the site's
local midnight and computed in SQL over exactly [start, end): the buckets of whole minutes
from the per-minute rollups (exact: averages from sums and counts), a first or last bucket
that starts or ends inside a minute, and every bucket of a sub-minute width, from the raw
rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from services.core.errors import InvalidQuery, site_unavailable
from services.storage.dialect import bucket_epoch_expr, from_epoch, stored_time, to_epoch
from services.storage.rollups import catch_up
from services.storage.schema import is_key_column, time_column
from services.telemetry.rows import Selector, where_clause
from services.telemetry.timerange import TimeRange, local_midnight_epoch

AGGS = ("avg", "min", "max", "count", "sum", "first", "last")
RAW_AGGS: dict[str, Callable[[sa.ColumnElement[Any]], sa.ColumnElement[Any]]] = {
    "avg": sa.func.avg, "min": sa.func.min, "max": sa.func.max, "count": sa.func.count, "sum": sa.func.sum}
MAX_BUCKETS = 100_000
AVG_DECIMALS = 9  # sums of sums and sums of rows differ in the last bits; this hides it


@dataclass(frozen=True)
class StatsQuery:
    sel: Selector
    tr: TimeRange
    width_s: int
    fields: tuple[sa.Column[Any], ...]
    aggs: tuple[str, ...]
    use_rollups: bool = True  # False forces the raw rows (tests compare both paths)


def parse_aggs(value: str | None) -> tuple[str, ...]:
    """`agg=avg,min,max` (default avg); unknown names are a 400 listing the valid ones."""
    names = tuple(a.strip().lower() for a in (value or "avg").split(",") if a.strip())
    bad = [a for a in names if a not in AGGS]
    if bad or not names:
        raise InvalidQuery(f"unknown aggregate(s) {', '.join(bad) or '(none)'}; valid: {', '.join(AGGS)}",
                           code="unknown_aggregate", invalid_params=[{"name": "agg", "reason": f"unknown {a!r}"}
                                                                     for a in bad or ["(empty)"]])
    return names


def check_bucket_count(tr: TimeRange, width_s: int) -> None:
    """More than MAX_BUCKETS buckets over the range is a 400 naming the cap."""
    n = math.ceil(tr.seconds / width_s)
    if n > MAX_BUCKETS:
        raise InvalidQuery(f"{n:,} buckets of {width_s} s over the range; at most {MAX_BUCKETS:,}: "
                           "use a wider time-bucket-width or a shorter range", code="too_many_buckets",
                           invalid_params=[{"name": "time-bucket-width", "reason": f"over {MAX_BUCKETS} buckets"}])


def numeric_fields(q_fields: Sequence[sa.Column[Any]]) -> None:
    bad = [c.name.lower() for c in q_fields if not isinstance(c.type, (sa.Integer, sa.Float, sa.Numeric))
           or isinstance(c.type, sa.JSON) or is_key_column(c)]
    if bad:
        raise InvalidQuery(f"field(s) {', '.join(bad)} cannot be aggregated (not numeric measurements)",
                           code="not_numeric", invalid_params=[{"name": "fields", "reason": f"{b} is not numeric"}
                                                               for b in bad])


def bucket_stats(q: StatsQuery) -> list[dict[str, Any]]:
    """One row per non-empty bucket, ascending: {"time": local ISO, "<agg>_<field>": v}.

    Every bucket covers exactly its part of [start, end), wherever the range starts: the
    buckets the per-minute rollups can serve exactly come from them, the first and last
    bucket of a range that does not start or end on a whole minute from the raw rows. So a
    chart and the API link it shows return the same numbers."""
    numeric_fields(q.fields)
    check_bucket_count(q.tr, q.width_s)
    origin = local_midnight_epoch(q.tr, q.sel.site.tz)
    try:
        rollup = catch_up(q.sel.store, q.sel.component) if q.use_rollups and q.width_s % 60 == 0 else None
        if rollup is not None and any(f"{f.name}__sum" not in rollup.c for f in q.fields):
            rollup = None  # a flag or counter: not rolled up, read the raw rows
        rows: list[Any] = []
        with q.sel.store.engine.connect() as conn:
            for lo, hi, rolled in _spans(to_epoch(q.tr.start), to_epoch(q.tr.end), origin, q.width_s,
                                         rollup is not None):
                part = TimeRange(from_epoch(lo), from_epoch(hi))
                rows += conn.execute(_select(q, part, origin, rollup if rolled else None)).all()
    except sa.exc.OperationalError as exc:
        raise site_unavailable(q.sel.site.id) from exc
    tz = q.sel.site.tz
    out = []
    for row in rows:
        item: dict[str, Any] = {"time": from_epoch(row[0]).astimezone(tz).isoformat()}
        for (agg, field), value in zip(_labels(q), row[1:], strict=True):
            if agg == "avg" and value is not None:
                value = round(float(value), AVG_DECIMALS)
            elif agg in ("count",) and value is not None:
                value = int(value)
            item[f"{agg}_{field.name.lower()}"] = value
        out.append(item)
    return out


def _spans(start: int, end: int, origin: int, width_s: int, rollups: bool) -> list[tuple[int, int, bool]]:
    """[lo, hi, from rollups] parts of [start, end), split only at bucket edges so that no
    bucket mixes the two sources: whole minutes from the rollups, an edge bucket that
    starts or ends inside a minute from the raw rows."""
    if not rollups or origin % 60:
        return [(start, end, False)]
    first_edge = origin + -(-(start - origin) // width_s) * width_s  # bucket edges are whole minutes here
    last_edge = origin + (end - origin) // width_s * width_s
    lo = start if start % 60 == 0 else first_edge
    hi = end if end % 60 == 0 else last_edge
    if lo >= hi:
        return [(start, end, False)]
    return [s for s in ((start, lo, False), (lo, hi, True), (hi, end, False)) if s[0] < s[1]]


def _labels(q: StatsQuery) -> list[tuple[str, sa.Column[Any]]]:
    return [(a, f) for f in q.fields for a in q.aggs]


def _select(q: StatsQuery, tr: TimeRange, origin: int, rollup: sa.Table | None) -> sa.Select[Any]:
    """SELECT bucket, aggregates ... GROUP BY bucket over `tr`, from rollups or raw rows."""
    store, dialect = q.sel.store, q.sel.store.dialect
    raw = store.table(q.sel.component)
    if rollup is not None:
        time_col = rollup.c.bucket
        conds = [time_col >= stored_time(tr.start, dialect), time_col < stored_time(tr.end, dialect)]
        conds += [rollup.c[c.name] == v for c, v in _id_filters(q.sel, raw)]
        source: Any = rollup
    else:
        time_col = time_column(raw)
        conds = where_clause(q.sel, raw, tr)
        source = raw
    bucket = bucket_epoch_expr(time_col, dialect, q.width_s, origin).label("b")
    needs_window = any(a in ("first", "last") for a in q.aggs)
    if needs_window:
        return _windowed(q, source, time_col, bucket, conds, rollup is not None)
    cols = [_agg(a, f, source, rollup is not None) for a, f in _labels(q)]
    return sa.select(bucket, *cols).where(*conds).group_by(bucket).order_by(bucket)


def _id_filters(sel: Selector, raw: sa.Table) -> list[tuple[sa.Column[Any], int]]:
    out = []
    for c in raw.columns:
        if c.name.upper() == "BANK_ID" and sel.bank_id is not None:
            out.append((c, sel.bank_id))
        if c.name.upper() == "RACK_ID" and sel.rack_id is not None:
            out.append((c, sel.rack_id))
    return out


def _agg(agg: str, field: sa.Column[Any], source: Any, rolled: bool) -> sa.ColumnElement[Any]:
    if not rolled:
        return RAW_AGGS[agg](source.c[field.name])
    c = source.c
    if agg == "avg":
        return sa.func.sum(c[f"{field.name}__sum"]) * 1.0 / sa.func.nullif(sa.func.sum(c[f"{field.name}__cnt"]), 0)
    if agg == "count":
        return sa.func.coalesce(sa.func.sum(c[f"{field.name}__cnt"]), 0)
    return RAW_AGGS[agg](c[f"{field.name}__{agg}"])  # min, max, sum of the minutes' min, max, sum


def _windowed(q: StatsQuery, source: Any, time_col: Any, bucket: Any, conds: list[Any],
              rolled: bool) -> sa.Select[Any]:
    """first/last need the row order inside each bucket: row_number() over the bucket."""
    ids = [c for c in source.c if c.name.upper() in ("BANK_ID", "RACK_ID")]
    inner_cols: list[Any] = [bucket]
    for f in q.fields:
        names = {f"{f.name}__{x}" for x in ("sum", "cnt", "min", "max", "first", "last")} if rolled else {f.name}
        inner_cols += [source.c[n] for n in sorted(names)]
    order = [time_col, *ids]
    inner_cols += [sa.func.row_number().over(partition_by=bucket, order_by=order).label("rn_first"),
                   sa.func.row_number().over(partition_by=bucket, order_by=[o.desc() for o in order]).label("rn_last")]
    sub = sa.select(*inner_cols).where(*conds).subquery("w")
    cols: list[Any] = []
    for agg, f in _labels(q):
        if agg in ("first", "last"):
            name = f"{f.name}__{agg}" if rolled else f.name
            cols.append(sa.func.max(sa.case((sub.c[f"rn_{agg}"] == 1, sub.c[name]))))
        else:
            cols.append(_agg(agg, f, sub, rolled))
    return sa.select(sub.c.b, *cols).group_by(sub.c.b).order_by(sub.c.b)
