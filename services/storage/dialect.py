"""The dialect-specific pieces, in one place.

* Time storage: PostgreSQL keeps `TIMESTAMP` as `timestamptz`; the embedded SQLite
  databases keep it as integer epoch seconds (UTC), which compares and buckets exactly
  and avoids SQLite's text-datetime pitfalls (see docs/ARCHITECTURE.md).
* Time bucketing: `date_bin` on PostgreSQL (`time_bucket` when TimescaleDB is present),
  integer arithmetic on epoch seconds on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
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


def is_sqlite(dialect_or_engine: Any) -> bool:
    name = getattr(dialect_or_engine, "name", None) or dialect_or_engine.dialect.name
    return name == "sqlite"


def time_type(dialect_name: str) -> sa.types.TypeEngine[Any]:
    """Column type for TIMESTAMP when we create a table."""
    return sa.BigInteger() if dialect_name == "sqlite" else sa.TIMESTAMP(timezone=True)


def epoch_expr(column: ColumnElement[Any], dialect_name: str) -> ColumnElement[Any]:
    """Epoch seconds of a time column, as an SQL expression."""
    if dialect_name == "sqlite":
        return sa.type_coerce(column, sa.BigInteger)
    return sa.cast(sa.func.extract("epoch", column), sa.BigInteger)


def bucket_epoch_expr(column: ColumnElement[Any], dialect_name: str, width_s: int,
                      origin_epoch: int, timescale: bool = False) -> ColumnElement[Any]:
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
    fn = sa.func.time_bucket if timescale else sa.func.date_bin
    binned = fn(interval, column, origin)
    return sa.cast(sa.func.extract("epoch", binned), sa.BigInteger)
