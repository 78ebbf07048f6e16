"""The analytics tables of the app database and the write path the job uses.

Times are integer epoch seconds (UTC) on both databases: exact, dialect-neutral and
cheap to bucket; the API renders them in the site's offset. Every table is keyed by
site, then bank and rack, then time, which is how the API reads them. Writes replace a
range (delete, then insert) inside one transaction, so re-running a job is idempotent.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.analytics.sos import FACTOR_NAMES, INPUT_NAMES
from services.appdb import metadata


def _ids(*extra: sa.Column[Any]) -> list[sa.Column[Any]]:
    return [sa.Column("site_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("bank_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("rack_id", sa.Integer, primary_key=True, autoincrement=False), *extra]


state = sa.Table(
    "analytics_state", metadata,
    sa.Column("site_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("task", sa.String(40), primary_key=True),
    sa.Column("watermark", sa.BigInteger, nullable=False),  # epoch s: everything before it is done
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
)

sos = sa.Table(
    "analytics_sos", metadata,
    *_ids(sa.Column("time", sa.BigInteger, primary_key=True, autoincrement=False)),  # 10-s bucket start
    sa.Column("sample_time", sa.BigInteger, nullable=False),  # the worst sample of the bucket
    *(sa.Column(n, sa.Double) for n in FACTOR_NAMES),
    sa.Column("sos_score", sa.Double, nullable=False),
    sa.Column("level", sa.SmallInteger, nullable=False),
    *(sa.Column(f"in_{n}", sa.Double) for n in INPUT_NAMES),
)

sos_minute = sa.Table(
    "analytics_sos_1m", metadata,
    *_ids(sa.Column("time", sa.BigInteger, primary_key=True, autoincrement=False)),  # minute start
    sa.Column("sos_mean", sa.Double), sa.Column("sos_min", sa.Double), sa.Column("samples", sa.Integer),
)

exsos = sa.Table(
    "analytics_exsos", metadata,
    sa.Column("site_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("mode", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("bank_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rack_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("time", sa.BigInteger, primary_key=True, autoincrement=False),  # 10-minute window start
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("integrated_safety", sa.Double),
    sa.Column("membership_degree", sa.JSON, nullable=False),
    sa.Column("membership_degree_detail", sa.JSON, nullable=False),
    sa.Column("samples", sa.Integer, nullable=False),
    sa.Column("version", sa.String(120), nullable=False),
)

socp_daily = sa.Table(  # one day's counts and sums: period rows are sums of these
    "analytics_socp_daily", metadata,
    *_ids(sa.Column("time", sa.BigInteger, primary_key=True, autoincrement=False),
          sa.Column("charge_status", sa.SmallInteger, primary_key=True, autoincrement=False),
          sa.Column("soc_range", sa.SmallInteger, primary_key=True, autoincrement=False),
          sa.Column("cell", sa.Integer, primary_key=True, autoincrement=False)),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("sum_voltage_uv", sa.BigInteger, nullable=False),  # exact integer sums: chunks add up in any order
    sa.Column("sum_temp_mc", sa.BigInteger, nullable=False),
    sa.Column("sum_current_ma", sa.BigInteger, nullable=False),
)

socp = sa.Table(
    "analytics_socp", metadata,
    *_ids(sa.Column("time", sa.BigInteger, primary_key=True, autoincrement=False),  # local midnight of the last day
          sa.Column("period", sa.SmallInteger, primary_key=True, autoincrement=False),
          sa.Column("charge_status", sa.SmallInteger, primary_key=True, autoincrement=False),
          sa.Column("soc_range", sa.SmallInteger, primary_key=True, autoincrement=False)),
    sa.Column("samples", sa.Integer, nullable=False),
    sa.Column("entropy", sa.Double),
    sa.Column("bound", sa.Integer, nullable=False),
    sa.Column("flagged", sa.JSON, nullable=False),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("version", sa.String(120), nullable=False),
)

soh = sa.Table(
    "analytics_soh", metadata,
    *_ids(sa.Column("date", sa.Date, primary_key=True)),  # rack_id 0: the bank's own SoH
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("samples", sa.Integer, nullable=False),
)

sol = sa.Table(
    "analytics_sol", metadata,
    sa.Column("site_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("bank_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("top_limit_value", sa.Double),
    sa.Column("bottom_limit_value", sa.Double),
    sa.Column("observed", sa.Boolean, nullable=False),
)

sol_fit = sa.Table(
    "analytics_sol_fit", metadata,
    sa.Column("site_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("bank_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("fitted_days", sa.Integer, nullable=False),
    sa.Column("first_date", sa.Date, nullable=False),
    sa.Column("last_date", sa.Date, nullable=False),
    sa.Column("end_of_life_date", sa.Date),
    sa.Column("trend_sol_per_year", sa.Double),
    sa.Column("model", sa.String(40), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("version", sa.String(120), nullable=False),
)

forecast = sa.Table(
    "analytics_forecast", metadata,
    sa.Column("site_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("target", sa.String(40), primary_key=True),
    sa.Column("bank_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rack_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("time", sa.BigInteger, primary_key=True, autoincrement=False),  # issue time
    sa.Column("target_time", sa.BigInteger, nullable=False),
    sa.Column("observed", sa.Double),
    sa.Column("values", sa.JSON, nullable=False),  # model -> forecast
    sa.Column("intervals", sa.JSON, nullable=False),  # model -> [low, high] (absent without history)
    sa.Column("default_model", sa.String(40), nullable=False),
    sa.Column("version", sa.String(120), nullable=False),
)

forecast_day = sa.Table(
    "analytics_forecast_1d", metadata,
    sa.Column("site_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("target", sa.String(40), primary_key=True),
    sa.Column("bank_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rack_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("time", sa.BigInteger, primary_key=True, autoincrement=False),  # issue time: local midnight
    sa.Column("values", sa.JSON, nullable=False),  # model -> [144 values]
    sa.Column("observed", sa.JSON, nullable=False),  # [144 values or null]
    sa.Column("lower", sa.JSON), sa.Column("upper", sa.JSON),  # of the default model
    sa.Column("default_model", sa.String(40), nullable=False),
    sa.Column("version", sa.String(120), nullable=False),
)

model_cache = sa.Table(  # Prophet's predictions for a day, so incremental runs fit once a day
    "analytics_model_cache", metadata,
    *_ids(sa.Column("target", sa.String(40), primary_key=True),
          sa.Column("model", sa.String(40), primary_key=True),
          sa.Column("day", sa.BigInteger, primary_key=True, autoincrement=False)),
    sa.Column("payload", sa.JSON, nullable=False),
)

RAW_INSERT_MIN_ROWS = 1000
SITE_TABLES: tuple[sa.Table, ...] = (sos, sos_minute, exsos, socp_daily, socp, soh, sol, sol_fit, forecast,
                                     forecast_day, model_cache, state)


# ----- values ----------------------------------------------------------------------------

def clean(value: Any) -> Any:
    """JSON- and driver-safe Python values: numpy scalars unwrapped, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def frame_records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of `frame` as driver-ready dicts (NaN as None), vectorised per column."""
    cols: dict[str, list[Any]] = {}
    for c in columns:
        s = frame[c]
        if s.dtype.kind == "f":
            arr = s.to_numpy(dtype=float)
            obj = arr.astype(object)
            obj[~np.isfinite(arr)] = None
            cols[c] = obj.tolist()
        elif s.dtype.kind in "iu":
            cols[c] = s.astype(np.int64).tolist()
        elif s.dtype.kind == "b":
            cols[c] = s.astype(bool).tolist()
        else:
            cols[c] = [clean(v) for v in s.tolist()]
    return [dict(zip(columns, row, strict=True)) for row in zip(*(cols[c] for c in columns), strict=True)]


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], chunk: int = 20_000) -> None:
    """Insert dict rows: through SQLAlchemy for a few, through the driver's own batch
    path (sqlite3 executemany, psycopg2 execute_values) for many, which is ~10x faster.
    Identifiers come from the table definition, values are bound, never interpolated."""
    if len(rows) < RAW_INSERT_MIN_ROWS or conn.dialect.name not in ("sqlite", "postgresql"):
        for i in range(0, len(rows), chunk):
            conn.execute(sa.insert(table), rows[i:i + chunk])
        return
    names = list(rows[0])
    json_cols = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    prep = conn.dialect.identifier_preparer
    head = f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.quote(n) for n in names)}) VALUES "
    tuples = [tuple(json.dumps(r[n], separators=(",", ":")) if n in json_cols and r[n] is not None else r[n]
                    for n in names) for r in rows]
    raw = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        raw.executemany(head + "(" + ", ".join("?" for _ in names) + ")", tuples)  # type: ignore[union-attr]
    else:
        from psycopg2.extras import execute_values

        with raw.cursor() as cur:  # type: ignore[union-attr]
            execute_values(cur, head + "%s", tuples, page_size=5000)


def replace_range(engine: Engine, table: sa.Table, where: Iterable[Any], rows: list[dict[str, Any]]) -> None:
    """Delete the rows matching `where` and insert `rows`, in one transaction."""
    with engine.begin() as conn:
        conn.execute(sa.delete(table).where(*where))
        insert_rows(conn, table, rows)


# ----- job state -------------------------------------------------------------------------

def get_state(engine: Engine, site_id: int, task: str) -> tuple[int, str] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(state.c.watermark, state.c.version)
                           .where(state.c.site_id == site_id, state.c.task == task)).first()
    return None if row is None else (int(row[0]), str(row[1]))


def set_state(conn: Connection, site_id: int, task: str, watermark: int, version: str) -> None:
    conn.execute(sa.delete(state).where(state.c.site_id == site_id, state.c.task == task))
    conn.execute(sa.insert(state).values(site_id=site_id, task=task, watermark=int(watermark), version=version,
                                         updated=int(time.time())))


def drop_site(engine: Engine, site_id: int) -> None:
    """Forget every stored analytics result and job state of a site."""
    with engine.begin() as conn:
        for table in SITE_TABLES:
            conn.execute(sa.delete(table).where(table.c.site_id == site_id))


def as_json(value: Mapping[str, Any] | Sequence[Any]) -> str:
    return json.dumps(clean(value), separators=(",", ":"))
