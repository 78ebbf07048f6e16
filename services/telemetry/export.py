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
import time
from collections.abc import Generator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from services.core.errors import site_unavailable
from services.core.registry import Site
from services.telemetry.rows import Selector, key_order, where_clause
from services.telemetry.timerange import TimeRange

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
CANCEL_WAIT_S = 5.0  # how long a cancelled COPY may take to stop before its connection is closed
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection: tab and CR start formulas too


def csv_filename(site: Site, component: str, tr: TimeRange, prefix: str = "", bank: int | None = None,
                 rack: int | None = None) -> str:
    """`site1_rack_20220901T100000_20220901T120000.csv` (site-local times), with the bank
    and rack when the download is of one: `site1_rack_bank1_rack3_....csv`."""
    fmt = "%Y%m%dT%H%M%S"
    start, end = tr.start.astimezone(site.tz).strftime(fmt), tr.end.astimezone(site.tz).strftime(fmt)
    ids = (f"_bank{bank}" if bank is not None else "") + (f"_rack{rack}" if rack is not None else "")
    return f"{prefix}site{site.id}_{component}{ids}_{start}_{end}.csv"


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
            # an OR of equalities, not IN: an IN list is an expanding parameter, which the
            # hand-compiled COPY and SQLite statements below do not render
            first = sa.func.substr(col, 1, 1)
            expr = sa.case((sa.or_(*[first == c for c in FORMULA_PREFIXES]), "'" + col), else_=col)
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
                    names: Sequence[str] | None = None) -> CsvBody:
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
        raise site_unavailable(sel.site.id) from exc
    return CsvBody(first, chunks, sel)


class CsvBody:
    """The response body: yields the chunks and ends with `#error ...` when the stream
    fails after the first byte. `close()` (the WSGI server calls it when the client goes
    away, or after the last chunk) closes the producer at once, which releases its
    cursor and connection, even when iteration never started."""

    def __init__(self, first: bytes, chunks: Iterator[bytes], sel: Selector) -> None:
        self._first, self._chunks, self._sel = first, chunks, sel
        self._body = self._iterate()

    def __iter__(self) -> Iterator[bytes]:
        return self._body

    def _iterate(self) -> Generator[bytes, None, None]:
        try:
            yield self._first
            yield from self._chunks
        except GeneratorExit:
            raise
        except Exception as exc:  # the status line is already sent: say it in the body
            log.exception("CSV export of site %s %s failed mid-stream", self._sel.site.id, self._sel.component)
            yield (f"\n#error export failed after the first byte: {type(exc).__name__}; "
                   "the file is incomplete\n").encode()

    def close(self) -> None:
        self._body.close()
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def _iter_sqlite(sel: Selector, stmt: sa.Select[Any], header: list[str], tr: TimeRange) -> Iterator[bytes]:
    compiled = stmt.compile(dialect=sel.store.engine.dialect)
    params = [compiled.params[p] for p in (compiled.positiontup or [])]
    params = [int(p.timestamp()) if isinstance(p, datetime) else p for p in params]
    python_time = fixed_offset(sel.site.tz, tr) is None
    ts_index = next((i for i, c in enumerate(stmt.selected_columns) if c.name == header[0] and python_time), None)
    text_index = [i for i, c in enumerate(stmt.selected_columns) if isinstance(c.type, sa.String)]
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
            if text_index:
                _write_rows_quoting_cr(writer, buf, rows, text_index)
            else:
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


def _write_rows_quoting_cr(writer: Any, buf: io.StringIO, rows: Sequence[Any], text_index: list[int]) -> None:
    """csv.writer quotes a field holding a line break only if the break is in its
    lineterminator ("\n"): a bare CR would go out unquoted, and a spreadsheet reads it as
    a new row, whose first cell may be a formula. Such rows are written as COPY writes
    them: quoted, then ended with "\n"."""
    one = io.StringIO()
    cr_writer = csv.writer(one, lineterminator="\r\n")
    for row in rows:
        if any(isinstance(row[i], str) and "\r" in row[i] for i in text_index):
            one.seek(0)
            one.truncate()
            cr_writer.writerow(row)
            buf.write(one.getvalue()[:-2] + "\n")
        else:
            writer.writerow(row)


def _with_local_time(row: tuple[Any, ...], i: int, tz: ZoneInfo) -> tuple[Any, ...]:
    value = row[i]
    if isinstance(value, int):
        value = datetime.fromtimestamp(value, UTC).astimezone(tz).isoformat()
    return (*row[:i], value, *row[i + 1:])


class _QueueSink:
    """File-like sink for copy_expert: buffers to CHUNK_BYTES and hands chunks over."""

    def __init__(self, q: queue.Queue[bytes | BaseException | None], stop: threading.Event) -> None:
        self.q, self.stop, self.size = q, stop, 0
        self.parts: list[bytes] = []

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
    finished = False
    try:
        thread.start()
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
        finished = True
    finally:
        _stop_copy(conn, thread, q, stop, finished)


def _stop_copy(conn: Any, thread: threading.Thread, q: queue.Queue[Any], stop: threading.Event,
               finished: bool) -> None:
    """Release the COPY's connection. After a complete COPY it goes back to the pool; after
    a client disconnect or an error the COPY is cancelled on the server and the connection
    discarded (its protocol state is unknown), so the pool never hands it out again.

    Never blocks the request thread for long: the cancel request (which opens a socket of
    its own) is sent from a helper thread, and a producer that does not stop within
    CANCEL_WAIT_S (a host gone silent) is left to a helper that releases the connection
    once TCP keepalive has ended the COPY."""
    stop.set()
    helpers = [thread]
    if not finished and thread.is_alive():
        canceller = threading.Thread(target=_cancel_quietly, args=(conn,), name="ess-copy-cancel", daemon=True)
        canceller.start()
        helpers.append(canceller)  # the connection must not be closed while cancel() uses it
    deadline = time.monotonic() + CANCEL_WAIT_S
    _drain_until_stopped(thread, q, deadline)
    for helper in helpers[1:]:
        helper.join(max(0.0, deadline - time.monotonic()))
    if any(h.is_alive() for h in helpers):
        log.warning("a cancelled COPY did not stop within %s s; its connection is released when it does",
                    CANCEL_WAIT_S)
        threading.Thread(target=_release_later, args=(conn, helpers, q), name="ess-copy-release",
                         daemon=True).start()
        return
    _release(conn, finished)


def _cancel_quietly(conn: Any) -> None:
    try:
        conn.driver_connection.cancel()  # the COPY may be busy on the server: stop it there
    except Exception:  # the connection may already be gone
        log.debug("cancelling a COPY failed", exc_info=True)


def _drain_until_stopped(thread: threading.Thread, q: queue.Queue[Any], deadline: float) -> None:
    while thread.is_alive() and time.monotonic() < deadline:
        try:  # unblock a producer waiting on the full queue
            q.get(timeout=0.05)
        except queue.Empty:
            pass


def _release_later(conn: Any, helpers: list[threading.Thread], q: queue.Queue[Any]) -> None:
    _drain_until_stopped(helpers[0], q, float("inf"))
    for helper in helpers[1:]:
        helper.join()
    _release(conn, finished=False)


def _release(conn: Any, finished: bool) -> None:
    try:
        if finished:
            conn.rollback()
        else:
            conn.invalidate()
    except Exception:
        conn.invalidate()
    finally:
        conn.close()
