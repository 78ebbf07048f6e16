"""Operating-data queries: one data path for JSON pages, `latest`, snapshots, CSV
downloads and the UI. Rows are ordered by time, then bank, then rack; ranges are
half-open [start, end)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from services.core.errors import InvalidQuery, NotFound, site_unavailable
from services.core.registry import Site
from services.storage.dialect import from_epoch, to_epoch
from services.storage.schema import KEY_NAMES, find_column, time_column
from services.storage.sitestore import SiteStore
from services.telemetry.timerange import TimeRange

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
MAX_UNPAGED_ROWS = 100_000
MAX_FIELD_NAMES = 1000  # names in one `fields`/`omit` list (the widest table has a few hundred columns)
CURSOR_INT_LIMIT = 2**53  # every number in a cursor token (ids, counts, page numbers) stays below this
CURSOR_EPOCH_LIMIT = 10**11  # and its time key within +-3,000 years of 1970 (a datetime can hold it)


@dataclass(frozen=True)
class Selector:
    """Which rows: a component of a site, optionally one bank and one rack."""

    store: SiteStore
    component: str
    bank_id: int | None = None
    rack_id: int | None = None

    @property
    def site(self) -> Site:
        return self.store.site


def make_selector(store: SiteStore, component: str, bank_id: int | None = None,
                  rack_id: int | None = None) -> Selector:
    """Validate ids against the registry (NotFound names what is missing)."""
    if bank_id is not None:
        store.site.get_bank(bank_id)
    if rack_id is not None and bank_id is not None:
        store.site.check_rack(bank_id, rack_id)
    store.table(component)
    return Selector(store, component, bank_id, rack_id)


def key_order(table: sa.Table) -> list[sa.Column[Any]]:
    """Columns of the row order: time, then bank and rack where the table has them."""
    return [c for c in (find_column(table, n) for n in KEY_NAMES) if c is not None]


def resolve_columns(sel: Selector, fields: str | None = None, omit: str | None = None) -> list[sa.Column[Any]]:
    """The columns asked for by `fields`/`omit` (comma lists, case-insensitive), in
    table order; an unknown name is a 400 listing the valid ones."""
    table = sel.store.table(sel.component)
    by_name = {c.name.lower(): c for c in table.columns}

    def parse(param: str, value: str | None) -> list[str] | None:
        if value is None:
            return None
        names = split_field_names(param, value)
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise InvalidQuery(
                f"unknown field(s) {', '.join(unknown)} for {sel.component}; valid: {', '.join(by_name)}",
                code="unknown_field", invalid_params=[{"name": param, "reason": f"unknown field {n!r}"}
                                                      for n in unknown])
        return names

    wanted, dropped = parse("fields", fields), parse("omit", omit)
    cols = [c for name, c in by_name.items() if (wanted is None or name in wanted)
            and (dropped is None or name not in dropped)]
    if not cols:
        raise InvalidQuery("no fields left to return", code="no_fields",
                           invalid_params=[{"name": "fields", "reason": "selects nothing"}])
    return cols


def split_field_names(param: str, value: str) -> list[str]:
    """The lower-case names of a `fields`/`omit` comma list; more than MAX_FIELD_NAMES is a 400
    (an error listing thousands of unknown names would be a response as large as the request)."""
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    if len(names) > MAX_FIELD_NAMES:
        raise InvalidQuery(f"{param} names {len(names):,} fields; at most {MAX_FIELD_NAMES:,}",
                           code="too_many_fields",
                           invalid_params=[{"name": param, "reason": f"over {MAX_FIELD_NAMES} names"}])
    return names


def where_clause(sel: Selector, table: sa.Table, tr: TimeRange | None) -> list[Any]:
    conds: list[Any] = []
    ts = time_column(table)
    if tr is not None:
        conds += [ts >= tr.start, ts < tr.end]
    bank, rack = find_column(table, "BANK_ID"), find_column(table, "RACK_ID")
    if sel.bank_id is not None and bank is not None:
        conds.append(bank == sel.bank_id)
    if sel.rack_id is not None and rack is not None:
        conds.append(rack == sel.rack_id)
    return conds


def build_select(sel: Selector, tr: TimeRange | None, columns: Sequence[sa.Column[Any]]) -> sa.Select[Any]:
    """SELECT columns (+ hidden key columns) WHERE range and ids ORDER BY key."""
    table = sel.store.table(sel.component)
    order = key_order(table)
    return sa.select(*columns).where(*where_clause(sel, table, tr)).order_by(*order)


def _run(sel: Selector, stmt: sa.Executable, conn: sa.Connection | None = None) -> list[sa.Row[Any]]:
    """The statement's rows, on `conn` when given (several statements, one checkout) or on a
    pooled connection of its own."""
    try:
        if conn is not None:
            return list(conn.execute(stmt).all())
        with sel.store.engine.connect() as own:
            return list(own.execute(stmt).all())
    except sa.exc.OperationalError as exc:
        raise site_unavailable(sel.site.id) from exc


def count_rows(sel: Selector, tr: TimeRange) -> int:
    """Rows in the range (exact)."""
    table = sel.store.table(sel.component)
    stmt = sa.select(sa.func.count()).select_from(table).where(*where_clause(sel, table, tr))
    return int(_run(sel, stmt)[0][0])


# ----- keyset cursors ----------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """Position after the last row of a page, plus what the envelope needs."""

    key: tuple[int, ...]  # epoch seconds, then bank and rack ids as the order has them
    count: int
    page: int  # number of the page this cursor leads to

    def encode(self) -> str:
        raw = json.dumps({"k": list(self.key), "n": self.count, "p": self.page}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def decode(token: str) -> Cursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            key = tuple(int(v) for v in data["k"])
            count, page = int(data["n"]), int(data["p"])
            if not key or count < 0 or page < 2 or abs(key[0]) > CURSOR_EPOCH_LIMIT \
                    or any(abs(v) >= CURSOR_INT_LIMIT for v in (*key, count, page)):
                raise ValueError
        except (ValueError, KeyError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
            raise InvalidQuery("cursor is not a token this server issued; follow the `next` link",
                               code="invalid_cursor", invalid_params=[{"name": "cursor", "reason": "malformed"}]
                               ) from None
        return Cursor(key, count, page)


def after_key(order: Sequence[sa.Column[Any]], key: Sequence[Any]) -> Any:
    """Rows strictly after `key` in `order`, written so that any index that starts with the
    time column (or has it after equality-filtered ids) serves it: `ts >= t AND (ts > t OR
    (bank, rack) > (b, r))`. A row-value comparison on all three would defeat the
    per-rack index on PostgreSQL."""
    ts, rest = order[0], list(order[1:])
    t = sa.literal(key[0], type_=ts.type)
    if not rest:
        return ts > t
    tail = sa.tuple_(*rest) > sa.tuple_(*[sa.literal(v, type_=c.type) for v, c in zip(key[1:], rest, strict=True)])
    return sa.and_(ts >= t, sa.or_(ts > t, tail))


def _key_of(row: sa.Row[Any], n_keys: int) -> tuple[int, ...]:
    values = tuple(row[-n_keys:])
    return (to_epoch(values[0]), *(int(v) for v in values[1:]))


@dataclass
class Page:
    rows: list[dict[str, Any]]
    count: int
    page: int
    next_cursor: Cursor | None


def fetch_page(sel: Selector, tr: TimeRange, columns: Sequence[sa.Column[Any]], *, page_size: int,
               page: int = 1, cursor: Cursor | None = None) -> Page:
    """One page of rows: by keyset when a cursor is given (cost independent of depth),
    else by page number (compatibility). NotFound for a page past the end."""
    table = sel.store.table(sel.component)
    order = key_order(table)
    count = cursor.count if cursor else count_rows(sel, tr)
    page_no = cursor.page if cursor else page
    if page_no > 1 and (page_no - 1) * page_size >= count:
        raise NotFound(f"page {page_no} is past the last page ({max(1, -(-count // page_size))})",
                       code="page_out_of_range")
    stmt = sa.select(*columns, *order).where(*where_clause(sel, table, tr)).order_by(*order).limit(page_size)
    if cursor:
        if len(cursor.key) != len(order):
            raise InvalidQuery("cursor belongs to another route; follow the `next` link", code="invalid_cursor",
                               invalid_params=[{"name": "cursor", "reason": "issued for another route"}])
        bound = (from_epoch(cursor.key[0]), *cursor.key[1:])
        stmt = stmt.where(after_key(order, bound))
    else:
        stmt = stmt.offset((page - 1) * page_size)
    rows = _run(sel, stmt)
    rendered = render_rows(rows, columns, sel.site)
    has_more = page_no * page_size < count and len(rows) == page_size
    nxt = Cursor(_key_of(rows[-1], len(order)), count, page_no + 1) if has_more else None
    return Page(rendered, count, page_no, nxt)


def fetch_all(sel: Selector, tr: TimeRange, columns: Sequence[sa.Column[Any]],
              limit: int = MAX_UNPAGED_ROWS) -> list[dict[str, Any]]:
    """The whole range as one list, refused above `limit` rows (use paging or CSV)."""
    count = count_rows(sel, tr)
    if count > limit:
        raise InvalidQuery(f"the range holds {count:,} rows; no_page allows at most {limit:,}: "
                           "page through it (page_size up to 10000) or download the CSV",
                           code="too_many_rows", invalid_params=[{"name": "no_page", "reason": f"over {limit} rows"}])
    return render_rows(_run(sel, build_select(sel, tr, columns)), columns, sel.site)


def fetch_latest(sel: Selector, columns: Sequence[sa.Column[Any]], conn: sa.Connection | None = None
                 ) -> dict[str, Any]:
    """The newest row (NotFound when the table has none for this selection)."""
    table = sel.store.table(sel.component)
    order = key_order(table)
    stmt = sa.select(*columns).where(*where_clause(sel, table, None)).order_by(*[c.desc() for c in order]).limit(1)
    rows = _run(sel, stmt, conn)
    if not rows:
        raise NotFound(f"site {sel.site.id} has no {sel.component} rows yet", code="no_data")
    return render_row(rows[0], columns, sel.site)


def fetch_oldest(sel: Selector, columns: Sequence[sa.Column[Any]]) -> dict[str, Any]:
    """The oldest row (NotFound when the table has none for this selection)."""
    table = sel.store.table(sel.component)
    stmt = sa.select(*columns).where(*where_clause(sel, table, None)).order_by(*key_order(table)).limit(1)
    rows = _run(sel, stmt, None)
    if not rows:
        raise NotFound(f"site {sel.site.id} has no {sel.component} rows yet", code="no_data")
    return render_row(rows[0], columns, sel.site)


def render_row(row: sa.Row[Any], columns: Sequence[sa.Column[Any]], site: Site) -> dict[str, Any]:
    """A row as the API shows it: lower-case names, site-local ISO times, nested JSON."""
    return render_rows([row], columns, site)[0]


def render_rows(rows: Sequence[sa.Row[Any]], columns: Sequence[sa.Column[Any]], site: Site) -> list[dict[str, Any]]:
    """Rows as the API shows them; conversions are decided once per column, not per value."""
    names = [c.name.lower() for c in columns]
    tz = site.tz
    converters: list[tuple[int, Any]] = []
    for i, col in enumerate(columns):
        if col.name.upper() == "TIMESTAMP":
            converters.append((i, lambda v: v.astimezone(tz).isoformat() if isinstance(v, datetime) else v))
        elif isinstance(col.type, sa.JSON):
            converters.append((i, lambda v: json.loads(v) if isinstance(v, str) else v))
    out = []
    n = len(names)
    for row in rows:
        values = list(row[:n])
        for i, fn in converters:
            values[i] = fn(values[i])
        out.append(dict(zip(names, values, strict=True)))
    return out


def iter_rows(sel: Selector, tr: TimeRange, columns: Sequence[sa.Column[Any]],
              chunk_rows: int = 20_000) -> Iterator[list[sa.Row[Any]]]:
    """Rows of the range in chunks, read by keyset so memory stays constant."""
    table = sel.store.table(sel.component)
    order = key_order(table)
    base = sa.select(*columns, *order).where(*where_clause(sel, table, tr)).order_by(*order).limit(chunk_rows)
    after: tuple[Any, ...] | None = None
    while True:
        stmt = base if after is None else base.where(after_key(order, after))
        rows = _run(sel, stmt)
        if not rows:
            return
        yield rows
        if len(rows) < chunk_rows:
            return
        after = tuple(rows[-1][-len(order):])
