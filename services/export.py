"""Streaming CSV export in constant memory.

PostgreSQL: `COPY (SELECT ...) TO STDOUT WITH CSV HEADER` read by a worker thread into
a bounded queue (psycopg2's copy_expert writes into a file-like sink). SQLite: one
SELECT read with fetchmany and written with the C csv writer. On both, formatting that
would cost Python time per value (local ISO timestamps, integral floats, formula
neutralising) is done in SQL, so both paths run near the database's own export speed.

The query is compiled and checked before the first byte; a failure after it ends the
body with a line starting `#error`.
"""

from __future__ import annotations

import csv
import io
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from services.errors import Unavailable
from services.registry import Site
from services.telemetry import Selector, key_order, where_clause
from services.timeparse import TimeRange

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
FORMULA_PREFIXES = ("=", "+", "-", "@")


def csv_filename(site: Site, component: str, tr: TimeRange, prefix: str = "") -> str:
    """`site1_rack_20220901T100000_20220901T120000.csv` (site-local times)."""
    fmt = "%Y%m%dT%H%M%S"
    start, end = tr.start.astimezone(site.tz).strftime(fmt), tr.end.astimezone(site.tz).strftime(fmt)
    return f"{prefix}site{site.id}_{component}_{start}_{end}.csv"


def fixed_offset(tz: ZoneInfo, tr: TimeRange) -> timedelta | None:
    """The zone's UTC offset if it is the same over the whole range (no DST change)."""
    first, last = tr.start.astimezone(tz).utcoffset(), (tr.end - timedelta(seconds=1)).astimezone(tz).utcoffset()
    probe = tr.start
    while probe < tr.end and first == last:  # a change and a change back inside the range
        if probe.astimezone(tz).utcoffset() != first:
            return None
        probe += timedelta(days=30)
    return first if first == last else None


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _is_text(col: sa.Column[Any]) -> bool:
    return isinstance(col.type, sa.String) and not isinstance(col.type, sa.JSON)


def _csv_columns(sel: Selector, columns: Sequence[sa.Column[Any]], tr: TimeRange,
                 names: Sequence[str]) -> list[sa.ColumnElement[Any]]:
    """SQL expressions producing the CSV text of each column."""
    dialect = sel.store.dialect
    offset = fixed_offset(sel.site.tz, tr)
    out: list[sa.ColumnElement[Any]] = []
    for col, name in zip(columns, names, strict=True):
        expr: sa.ColumnElement[Any]
        if col.name.upper() == "TIMESTAMP":
            if dialect == "postgresql":
                expr = sa.func.to_char(col, 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM')
            elif offset is not None:
                raw = sa.type_coerce(col, sa.BigInteger) + int(offset.total_seconds())
                expr = sa.func.strftime("%Y-%m-%dT%H:%M:%S", raw, "unixepoch") + _offset_text(offset)
            else:
                expr = sa.type_coerce(col, sa.BigInteger)  # formatted in Python (DST zone)
        elif isinstance(col.type, sa.Float) and dialect == "sqlite":
            # integral floats as integers, as PostgreSQL prints them
            expr = sa.case((col == sa.cast(col, sa.Integer), sa.cast(col, sa.Integer)), else_=col)
        elif _is_text(col):
            expr = sa.case((sa.func.substr(col, 1, 1).in_(FORMULA_PREFIXES), "'" + col), else_=col)
        else:
            expr = col
        out.append(expr.label(name))
    return out


def build_csv_select(sel: Selector, tr: TimeRange, columns: Sequence[sa.Column[Any]],
                     names: Sequence[str]) -> sa.Select[Any]:
    table = sel.store.table(sel.component)
    return (sa.select(*_csv_columns(sel, columns, tr, names)).where(*where_clause(sel, table, tr))
            .order_by(*key_order(table)))


def open_csv_stream(sel: Selector, tr: TimeRange, columns: Sequence[sa.Column[Any]],
                    names: Sequence[str] | None = None) -> Iterator[bytes]:
    """CSV bytes of the range: a header of `names` (default: lower-case column names),
    then rows ordered by time, bank, rack.

    The query runs and its first chunk is read before this returns, so a failure that
    happens before the first byte raises here (and becomes a problem response); later
    failures end the body with an `#error` line.
    """
    header = list(names) if names is not None else [c.name.lower() for c in columns]
    stmt = build_csv_select(sel, tr, columns, header)
    chunks = _iter_copy(sel, stmt) if sel.store.dialect == "postgresql" else _iter_sqlite(sel, stmt, header, tr)
    try:
        first = next(chunks)
    except StopIteration:
        first = b""
    except sa.exc.OperationalError as exc:
        raise Unavailable(f"site {sel.site.id} database is unreachable", code="database_unavailable") from exc
    return _guarded(first, chunks, sel)


def _guarded(first: bytes, chunks: Iterator[bytes], sel: Selector) -> Iterator[bytes]:
    """End the body with `#error ...` when the stream fails after the first byte."""
    try:
        yield first
        yield from chunks
    except GeneratorExit:
        raise
    except Exception as exc:  # the status line is already sent: say it in the body
        log.exception("CSV export of site %s %s failed mid-stream", sel.site.id, sel.component)
        yield f"\n#error export failed after the first byte: {type(exc).__name__}; the file is incomplete\n".encode()


def _iter_sqlite(sel: Selector, stmt: sa.Select[Any], header: list[str], tr: TimeRange) -> Iterator[bytes]:
    compiled = stmt.compile(dialect=sel.store.engine.dialect)
    params = [compiled.params[p] for p in (compiled.positiontup or [])]
    params = [int(p.timestamp()) if isinstance(p, datetime) else p for p in params]
    python_time = fixed_offset(sel.site.tz, tr) is None
    ts_index = next((i for i, c in enumerate(stmt.selected_columns) if c.name == header[0] and python_time), None)
    conn = sel.store.engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute(str(compiled), params)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        while True:
            rows = cur.fetchmany(5000)
            if not rows:
                break
            if python_time and ts_index is not None:
                rows = [_with_local_time(r, ts_index, sel.site.tz) for r in rows]
            writer.writerows(rows)
            if buf.tell() >= CHUNK_BYTES:
                yield buf.getvalue().encode()
                buf.seek(0)
                buf.truncate()
        if buf.tell():
            yield buf.getvalue().encode()
        cur.close()
    finally:
        conn.close()


def _with_local_time(row: tuple[Any, ...], i: int, tz: ZoneInfo) -> tuple[Any, ...]:
    value = row[i]
    if isinstance(value, int):
        value = datetime.fromtimestamp(value, UTC).astimezone(tz).isoformat()
    return (*row[:i], value, *row[i + 1:])


class _QueueSink:
    """File-like sink for copy_expert: buffers to CHUNK_BYTES and hands chunks over."""

    def __init__(self, q: queue.Queue[bytes | BaseException | None], stop: threading.Event) -> None:
        self.q, self.stop, self.parts, self.size = q, stop, [], 0

    def write(self, data: bytes | str) -> int:
        if self.stop.is_set():
            raise InterruptedError("client went away")
        chunk = data.encode() if isinstance(data, str) else bytes(data)
        self.parts.append(chunk)
        self.size += len(chunk)
        if self.size >= CHUNK_BYTES:
            self.flush()
        return len(chunk)

    def flush(self) -> None:
        if self.parts:
            self.q.put(b"".join(self.parts))
            self.parts, self.size = [], 0


def _iter_copy(sel: Selector, stmt: sa.Select[Any]) -> Iterator[bytes]:
    conn = sel.store.engine.raw_connection()
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()
    cur = conn.cursor()
    compiled = stmt.compile(dialect=sel.store.engine.dialect)
    copy_sql = f"COPY ({cur.mogrify(str(compiled), compiled.params).decode()}) TO STDOUT WITH (FORMAT csv, HEADER true)"

    def work() -> None:
        sink = _QueueSink(q, stop)
        try:
            cur.execute("SET LOCAL TIME ZONE %s", (sel.site.timezone,))
            cur.copy_expert(copy_sql, sink)
            sink.flush()
            q.put(None)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=work, name="ess-copy", daemon=True)
    try:
        thread.start()
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the client went away or the copy ended: release the connection
        while thread.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        try:
            conn.rollback()
        finally:
            conn.close()
