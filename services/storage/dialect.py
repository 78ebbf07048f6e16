"""The dialect-specific pieces, in one place.

* Time storage: PostgreSQL keeps `TIMESTAMP` as `timestamptz`; the embedded SQLite
  databases keep it as integer epoch seconds (UTC), which compares and buckets exactly
  and avoids SQLite's text-datetime pitfalls (see docs/ARCHITECTURE.md).
* Time bucketing: `date_bin` on PostgreSQL, integer arithmetic on epoch seconds on SQLite;
  whole minutes for the rollups (`date_trunc` / epoch arithmetic).
* Statements the two spell differently: the upsert, the drivers' batch insert, the
  planner hint of windowed reads, the TimescaleDB extension.

The site store's two bulk write paths (COPY on PostgreSQL, ADBC or executemany on SQLite)
and the CSV export's two readers stay with their modules: each is one whole path per
database, not a value or an expression.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch(value: datetime) -> int:
    """Whole epoch seconds of an aware datetime (naive values are refused)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: attach the site's time zone first")
    return int((value - EPOCH).total_seconds() // 1)


def from_epoch(value: int | float) -> datetime:
    """Aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(int(value), tz=UTC)


class EpochTime(TypeDecorator[datetime]):
    """Aware datetimes stored as integer epoch seconds (SQLite)."""

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None or isinstance(value, int):
            return value
        return to_epoch(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else from_epoch(value)


def time_type(dialect_name: str) -> sa.types.TypeEngine[Any]:
    """Column type for TIMESTAMP when we create a table."""
    return sa.BigInteger() if dialect_name == "sqlite" else sa.TIMESTAMP(timezone=True)


def stored_time(value: datetime, dialect_name: str) -> Any:
    """A time bound as a stored time column compares with it: epoch seconds on SQLite
    (columns read without EpochTime, e.g. the rollups' bucket), the datetime elsewhere."""
    return to_epoch(value) if dialect_name == "sqlite" else value


def adapt_reflected_time(column: sa.Column[Any], dialect_name: str) -> None:
    """A reflected SQLite TIMESTAMP (an integer) reads and binds aware datetimes."""
    if dialect_name == "sqlite" and isinstance(column.type, sa.Integer):
        column.type = EpochTime()


def minute_expr(column: ColumnElement[Any], dialect_name: str) -> ColumnElement[Any]:
    """The start of the minute holding each row, in the column's own type."""
    if dialect_name == "sqlite":
        raw = sa.type_coerce(column, sa.BigInteger)
        return raw - raw % 60
    return sa.func.date_trunc("minute", column)


def epoch_expr(column: ColumnElement[Any], dialect_name: str) -> ColumnElement[Any]:
    """Epoch seconds of a time column, as an SQL expression."""
    if dialect_name == "sqlite":
        return sa.type_coerce(column, sa.BigInteger)
    return sa.cast(sa.func.extract("epoch", column), sa.BigInteger)


def bucket_epoch_expr(column: ColumnElement[Any], dialect_name: str, width_s: int,
                      origin_epoch: int) -> ColumnElement[Any]:
    """Start of the `width_s`-second bucket holding each row, as epoch seconds.

    Buckets are aligned to `origin_epoch` (the caller passes a local midnight of the
    site, so day buckets start at local midnight).
    """
    if dialect_name == "sqlite":
        raw = sa.type_coerce(column, sa.BigInteger)
        shifted = raw - origin_epoch
        # integer division that floors for negatives too
        floored = sa.case((shifted >= 0, shifted // width_s), else_=(shifted - (width_s - 1)) // width_s)
        return floored * width_s + origin_epoch
    interval = sa.func.make_interval(0, 0, 0, 0, 0, 0, width_s)
    origin = sa.func.to_timestamp(origin_epoch)
    binned = sa.func.date_bin(interval, column, origin)
    return sa.cast(sa.func.extract("epoch", binned), sa.BigInteger)


def upsert(table: sa.Table, dialect_name: str) -> Any:
    """`INSERT ... ON CONFLICT` of the dialect (call `.on_conflict_do_update` on it)."""
    return (sqlite_insert if dialect_name == "sqlite" else postgresql_insert)(table)


def insert_tuples(conn: Connection, head: str, width: int, tuples: list[tuple[Any, ...]]) -> None:
    """`head` ("INSERT INTO t (a, b) VALUES ") with many rows through the driver's own batch
    path: sqlite3 executemany, psycopg2 execute_values (about 10x faster than one
    statement per row). Values are bound, never interpolated."""
    raw = conn.connection.driver_connection
    assert raw is not None
    if conn.dialect.name == "sqlite":
        raw.executemany(head + "(" + ", ".join("?" for _ in range(width)) + ")", tuples)
        return
    from psycopg2.extras import execute_values

    with raw.cursor() as cur:
        execute_values(cur, head + "%s", tuples, page_size=5000)


def prefer_index_scans(conn: Connection) -> None:
    """PostgreSQL: plan this transaction's reads with the indexes (a table fresh from a bulk
    load has no statistics yet, and without them the planner scans it whole)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))


def timescaledb_installed(conn: Connection) -> bool:
    """True when the TimescaleDB extension is installed in this database (read only)."""
    if conn.dialect.name != "postgresql":
        return False
    return conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first() is not None


def enable_timescaledb(conn: Connection) -> bool:
    """Install TimescaleDB when the server offers it (schema creation only); True when it is
    installed afterwards."""
    if conn.dialect.name != "postgresql":
        return False
    if conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).first() is None:
        return False
    conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    return True
