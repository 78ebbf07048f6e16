"""The analytics tables of the app database and the write path the job uses.

Times are integer epoch seconds (UTC) on both databases: exact, dialect-neutral and
cheap to bucket; the API renders them in the site's offset. Every table is keyed by
site, then bank and rack, then time, which is how the API reads them. Writes replace a
range (delete, then insert) inside one transaction, so re-running a job is idempotent.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.analytics.sos import FACTOR_NAMES, INPUT_NAMES
from services.core.appdb import metadata


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

SITE_TABLES: tuple[sa.Table, ...] = (sos, sos_minute, exsos, socp_daily, socp, soh, sol, sol_fit, forecast,
                                     forecast_day, model_cache, state)


