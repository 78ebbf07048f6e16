"""Queries behind the event routes: filters, pages of events and episodes, counts, the map."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.core.errors import InvalidQuery, NotFound
from services.core.registry import Site
from services.protection.codes import CHECKS, EPISODE_KEY, ERROR_CODES, LEVELS, SOURCES
from services.protection.maps import load_protection_map
from services.protection.tables import protection_episode, protection_event, protection_event_count
from services.storage.dialect import from_epoch
from services.telemetry.rows import Cursor, Page
from services.telemetry.stats import check_bucket_count
from services.telemetry.timerange import TimeRange

EVENT_PAGE_SIZE = 100
MAX_EVENT_PAGE_SIZE = 1000
MAX_MESSAGE_CHARS = 200


# ----- queries -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EventFilter:
    """Which events (or episodes): sites (None = all), half-open epoch range, exact ids,
    source and a case-insensitive substring of either description."""

    site_ids: tuple[int, ...] | None = None
    start: int | None = None
    end: int | None = None
    level: int | None = None
    error_code: int | None = None
    bank_id: int | None = None
    rack_id: int | None = None
    source: str | None = None
    message: str | None = None


def check_filter_values(level: int | None, error_code: int | None, source: str | None,
                        message: str | None) -> None:
    """400 problems for ids and values that do not exist."""
    if level is not None and level not in LEVELS:
        raise InvalidQuery(f"level={level} is not a level; valid: 1 (warning), 2 (fault)", code="unknown_level",
                           invalid_params=[{"name": "level", "reason": "must be 1 or 2"}])
    if error_code is not None and error_code not in ERROR_CODES:
        raise InvalidQuery(f"error_code={error_code} is not an error code; valid: 1 to {max(ERROR_CODES)}",
                           code="unknown_error_code",
                           invalid_params=[{"name": "error_code", "reason": f"must be 1 to {max(ERROR_CODES)}"}])
    if source is not None and source not in SOURCES:
        raise InvalidQuery(f"source={source!r} is not a source; valid: {', '.join(SOURCES)}", code="unknown_source",
                           invalid_params=[{"name": "source", "reason": "must be threshold or bms"}])
    if message is not None and len(message) > MAX_MESSAGE_CHARS:
        raise InvalidQuery(f"message is longer than {MAX_MESSAGE_CHARS} characters", code="invalid_parameter",
                           invalid_params=[{"name": "message", "reason": f"over {MAX_MESSAGE_CHARS} characters"}])
    if message is not None and "\x00" in message:  # PostgreSQL text cannot hold NUL: the driver would refuse it
        raise InvalidQuery("message must not contain NUL characters", code="invalid_parameter",
                           invalid_params=[{"name": "message", "reason": "contains NUL"}])


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern with ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(table: sa.Table, f: EventFilter, time_column: str) -> list[sa.ColumnElement[bool]]:
    c = table.c
    out: list[sa.ColumnElement[bool]] = []
    if f.site_ids is not None:
        out.append(c.operating_site == f.site_ids[0] if len(f.site_ids) == 1 else c.operating_site.in_(f.site_ids))
    if time_column == "timestamp":
        if f.start is not None:
            out.append(c.timestamp >= f.start)
        if f.end is not None:
            out.append(c.timestamp < f.end)
    else:  # episodes overlapping [start, end)
        if f.end is not None:
            out.append(c.start_time < f.end)
        if f.start is not None:
            out.append(c.end_time >= f.start)
    for name in ("level", "error_code", "bank_id", "rack_id", "source"):
        value = getattr(f, name)
        if value is not None:
            out.append(c[name] == value)
    if f.message:
        out.append(_message_matches(table, f.message))
    return out


def _message_matches(table: sa.Table, message: str) -> sa.ColumnElement[bool]:
    """Events whose Korean or English description holds `message` (case-insensitive, LIKE
    wildcards taken literally); for episodes: those holding such an event."""
    ev = protection_event.c
    pattern = "%" + escape_like(message) + "%"
    matches = sa.or_(ev.description.ilike(pattern, escape="\\"), ev.description_eng.ilike(pattern, escape="\\"))
    if table is protection_event:
        return matches
    e = table.c
    return sa.exists().where(ev.operating_site == e.operating_site, *[ev[k] == e[k] for k in EPISODE_KEY],
                             ev.timestamp >= e.start_time, ev.timestamp <= e.end_time, matches)


def _code_of(code: int) -> dict[str, Any]:
    ec = ERROR_CODES[code]
    return {"id": ec.id, "description": ec.description, "description_eng": ec.description_eng}


def _level_of(level: int) -> dict[str, Any]:
    return {"id": level, "description": LEVELS[level][0]}


def _iso(epoch: int, tz: ZoneInfo) -> str:
    return from_epoch(epoch).astimezone(tz).isoformat()


def render_event(row: sa.Row[Any], tz: ZoneInfo) -> dict[str, Any]:
    """An event in the original's shape plus `source` and `value`."""
    return {
        "timestamp": _iso(row.timestamp, tz),
        "error_code": _code_of(row.error_code),
        "level": _level_of(row.level),
        "bank_id": row.bank_id,
        "rack_id": row.rack_id,
        "operating_site": row.operating_site,
        "description": row.description,
        "description_eng": row.description_eng,
        "source": row.source,
        "value": row.value,
    }


def render_episode(row: sa.Row[Any], tz: ZoneInfo) -> dict[str, Any]:
    return {
        "start": _iso(row.start_time, tz),
        "end": _iso(row.end_time, tz),
        "duration_s": int(row.end_time - row.start_time),
        "peak_value": row.peak_value,
        "sample_count": int(row.sample_count),
        "operating_site": row.operating_site,
        "bank_id": row.bank_id,
        "rack_id": row.rack_id,
        "error_code": _code_of(row.error_code),
        "level": _level_of(row.level),
        "source": row.source,
        "open": bool(row.is_open),
    }


def _page(engine: Engine, table: sa.Table, f: EventFilter, order: tuple[str, str], tz_of: Callable[[int], ZoneInfo],
          render: Callable[[sa.Row[Any], ZoneInfo], dict[str, Any]], page_size: int, page: int,
          cursor: Cursor | None, time_column: str, extra: Sequence[sa.ColumnElement[bool]] = ()) -> Page:
    """Newest first by (order[0], order[1]) descending; keyset when a cursor is given."""
    first, second = table.c[order[0]], table.c[order[1]]
    conds = [*_conditions(table, f, time_column), *extra]
    with engine.connect() as conn:
        count = cursor.count if cursor else int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                                              .where(*conds)).scalar() or 0)
        page_no = cursor.page if cursor else page
        if page_no > 1 and (page_no - 1) * page_size >= count:
            raise NotFound(f"page {page_no} is past the last page ({max(1, -(-count // page_size))})",
                           code="page_out_of_range")
        stmt = sa.select(table).where(*conds).order_by(first.desc(), second.desc()).limit(page_size)
        if cursor:
            if len(cursor.key) != 2:
                raise InvalidQuery("cursor belongs to another route; follow the `next` link", code="invalid_cursor",
                                   invalid_params=[{"name": "cursor", "reason": "issued for another route"}])
            k0, k1 = cursor.key
            stmt = stmt.where(sa.or_(first < k0, sa.and_(first == k0, second < k1)))
        else:
            stmt = stmt.offset((page - 1) * page_size)
        rows = conn.execute(stmt).all()
    rendered = [render(r, tz_of(r.operating_site)) for r in rows]
    more = page_no * page_size < count and len(rows) == page_size
    nxt = Cursor((int(getattr(rows[-1], order[0])), int(getattr(rows[-1], order[1]))), count, page_no + 1) \
        if more else None
    return Page(rendered, count, page_no, nxt)


def list_events(engine: Engine, f: EventFilter, tz_of: Callable[[int], ZoneInfo], *,
                page_size: int = EVENT_PAGE_SIZE, page: int = 1, cursor: Cursor | None = None) -> Page:
    """One page of events, newest first (time, then insertion order)."""
    return _page(engine, protection_event, f, ("timestamp", "id"), tz_of, render_event, page_size, page, cursor,
                 "timestamp")


def list_episodes(engine: Engine, f: EventFilter, tz_of: Callable[[int], ZoneInfo], *, is_open: bool | None = None,
                  page_size: int = EVENT_PAGE_SIZE, page: int = 1, cursor: Cursor | None = None) -> Page:
    """One page of episodes overlapping the range (optionally only open or closed ones),
    newest start first."""
    extra = [] if is_open is None else [protection_episode.c.is_open.is_(is_open)]
    return _page(engine, protection_episode, f, ("start_time", "id"), tz_of, render_episode, page_size, page, cursor,
                 "start_time", extra)


def count_levels(engine: Engine, site_id: int, start: int, end: int, width_s: int, origin: int, tz: ZoneInfo,
                 *, per: str = "samples", f: EventFilter | None = None, rollup: bool = True) -> list[dict[str, Any]]:
    """Events (per="samples") or episodes started (per="episodes") per bucket and level, over
    [start, end): [{"time", "operating_site", "level", "level_count"}], newest bucket first,
    level ascending, non-empty buckets only. Buckets are `width_s` wide from `origin`.

    Event counts come from the per-minute counts when buckets and range are whole minutes
    and no `message` filter applies (exact, and independent of the number of events);
    otherwise from the events themselves."""
    check_bucket_count(TimeRange(from_epoch(start), from_epoch(end)), width_s)
    rest = replace(f or EventFilter(), site_ids=None, start=None, end=None)  # site and range are bound below
    whole_minutes = all(v % 60 == 0 for v in (start, end, width_s, origin))
    total: sa.ColumnElement[Any]
    if per == "episodes":
        table, column, total = protection_episode, protection_episode.c.start_time, sa.func.count()
    elif rollup and whole_minutes and not rest.message:
        table, column = protection_event_count, protection_event_count.c.minute
        total = sa.func.sum(protection_event_count.c.events)
    else:
        table, column, total = protection_event, protection_event.c.timestamp, sa.func.count()
    bucket = ((column - origin) // width_s * width_s + origin).label("bucket")
    stmt = (sa.select(bucket, table.c.level, total.label("n"))
            .where(table.c.operating_site == site_id, column >= start, column < end,
                   *_conditions(table, rest, "timestamp"))
            .group_by(bucket, table.c.level).order_by(bucket.desc(), table.c.level))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [{"time": _iso(int(b), tz), "operating_site": site_id, "level": int(level), "level_count": int(n)}
            for b, level, n in rows]


def describe_map(site: Site) -> dict[str, Any]:
    """The protection map in force for a site: version, comparison rule, the limits the
    checks use (lower-case field names, as the API names fields) and the map as written."""
    pmap = load_protection_map(site)
    limits = {comp: {name.lower(): {"warning_above": lim.warning_above, "fault_above": lim.fault_above,
                                    "warning_below": lim.warning_below, "fault_below": lim.fault_below,
                                    "absolute": lim.absolute} for name, lim in fields.items()}
              for comp, fields in pmap.limits.items()}
    checks = [{"error_code": c.code, "description_eng": ERROR_CODES[c.code].description_eng,
               "field": c.field.lower(), "side": c.side,
               "current_direction": {1: "charge", -1: "discharge"}.get(c.sign)}
              for c in CHECKS if pmap.limit("rack", c.field) is not None]
    return {"operating_site": site.id, "version": pmap.version,
            "comparison": "strictly beyond the limit: value > above, value < below; absolute limits judge |value|",
            "limits": limits, "checks": checks,
            "error_codes": [_code_of(c) for c in ERROR_CODES], "levels": [_level_of(lv) for lv in LEVELS],
            "map": pmap.components}
