"""Per-minute rollups of every numeric field, per bank/rack, kept in the site database
beside the raw table (`<table>_rollup_1m`), so statistics over wide ranges read ~60x
fewer rows. Each rollup row holds, per field, sum, non-null count, min, max, first and
last, which answer avg (sum/count, exact), min, max, count, first and last for any
bucket of whole minutes.

Maintenance is incremental: `refresh_rollups` recomputes the minutes a write touched
(inside the database, one DELETE + INSERT ... SELECT in one transaction), and `catch_up`
extends them from the recorded watermark to the newest raw row (live appends).

With TimescaleDB the rollup is a continuous aggregate of the same name and columns
(`timescale_rollup_sql`), refreshed by a policy and by `refresh_rollups`; readers cannot
tell the two apart. That path is untested against a real TimescaleDB (not installable in
the development environment); only the SQL text it generates is tested.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.selectable import NamedFromClause

from services.core import catalogue
from services.storage.dialect import from_epoch, minute_expr, stored_time, time_type, to_epoch
from services.storage.schema import BANK, RACK, is_key_column, time_column
from services.storage.sitestore import SiteStore

ROLLUP_AGGS = ("sum", "cnt", "min", "max", "first", "last")
STATE_TABLE = "_ess_rollup_state"


def numeric_columns(store: SiteStore, component: str) -> list[sa.Column[Any]]:
    """Columns rolled up: the physical measurements (float columns with a unit in the
    catalogue, or float columns the catalogue does not know). Flags and counters are
    aggregated from the raw rows when asked for."""
    raw = store.table(component)
    variant = store.site.column_sets.get(component, "")
    out = []
    for c in raw.columns:
        if is_key_column(c) or not isinstance(c.type, sa.Float):
            continue
        field = catalogue.describe(component, variant, c.name)
        if field.unit or field.description == "(not in the catalogue)":
            out.append(c)
    return out


def rollup_name(raw: sa.Table) -> str:
    return f"{raw.name}_rollup_1m"


def build_rollup_table(store: SiteStore, component: str, metadata: sa.MetaData) -> sa.Table:
    """The rollup table's definition for a component's raw table."""
    raw = store.table(component)
    bucket_type = time_type(store.dialect)
    cols: list[sa.Column[Any]] = [sa.Column("bucket", bucket_type, nullable=False)]
    keys = [c for c in raw.columns if c.name.upper() in (BANK, RACK)]
    cols += [sa.Column(c.name, sa.Integer(), nullable=False) for c in keys]
    cols.append(sa.Column("n", sa.Integer(), nullable=False))
    for c in numeric_columns(store, component):
        for agg in ROLLUP_AGGS:
            cols.append(sa.Column(f"{c.name}__{agg}", sa.Integer() if agg == "cnt" else sa.Double()))
    table = sa.Table(rollup_name(raw), metadata, *cols, schema=store.schema)
    sa.Index(f"{table.name}_key", table.c.bucket, *[table.c[k.name] for k in keys], unique=True)
    return table


def _state_table(metadata: sa.MetaData, schema: str | None) -> sa.Table:
    return sa.Table(STATE_TABLE, metadata, sa.Column("table_name", sa.String(200), primary_key=True),
                    sa.Column("seen_epoch", sa.BigInteger, nullable=False), schema=schema)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def timescale_rollup_sql(schema: str | None, raw_name: str, ts_name: str, key_names: list[str],
                         field_names: list[str], policy_start: str = "7 days") -> list[str]:
    """The statements that make `<raw>_rollup_1m` a TimescaleDB continuous aggregate with
    the plain rollup table's columns (bucket, keys, n, per field sum/cnt/min/max/first/last)
    and a refresh policy. Identifiers come from the reflected table, never a request."""
    def qualified(name: str) -> str:
        return f"{_quote(schema)}.{_quote(name)}" if schema else _quote(name)

    view = qualified(f"{raw_name}_rollup_1m")
    ts = _quote(ts_name)
    keys = [_quote(k) for k in key_names]
    cols = [f"time_bucket(INTERVAL '1 minute', {ts}) AS bucket", *keys, "count(*) AS n"]
    for f in field_names:
        q = _quote(f)
        cols += [f"sum({q}) AS {_quote(f + '__sum')}", f"count({q}) AS {_quote(f + '__cnt')}",
                 f"min({q}) AS {_quote(f + '__min')}", f"max({q}) AS {_quote(f + '__max')}",
                 f"first({q}, {ts}) AS {_quote(f + '__first')}", f"last({q}, {ts}) AS {_quote(f + '__last')}"]
    create = (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} "
              "WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS "
              f"SELECT {', '.join(cols)} FROM {qualified(raw_name)} GROUP BY {', '.join(['bucket', *keys])} "
              "WITH NO DATA")
    policy = (f"SELECT add_continuous_aggregate_policy('{view.replace(chr(39), chr(39) * 2)}', "
              f"start_offset => INTERVAL '{policy_start}', end_offset => INTERVAL '1 minute', "
              "schedule_interval => INTERVAL '1 minute', if_not_exists => true)")
    return [create, policy]


def ensure_rollups(store: SiteStore, component: str) -> sa.Table:
    """Create the rollup and state tables if absent; return the rollup table (a
    continuous aggregate instead of the table when TimescaleDB is installed)."""
    md = sa.MetaData()
    table = build_rollup_table(store, component, md)
    state = _state_table(md, store.schema)
    if store.uses_timescaledb():
        state.create(store.engine, checkfirst=True)
        if not sa.inspect(store.engine).has_table(table.name, schema=store.schema):
            raw = store.table(component)
            ts = time_column(raw)
            keys = [c.name for c in raw.columns if c.name.upper() in (BANK, RACK)]
            with store.engine.begin() as conn:
                for stmt in timescale_rollup_sql(store.schema, raw.name, ts.name, keys,
                                                 [c.name for c in numeric_columns(store, component)]):
                    conn.execute(sa.text(stmt))
        return table
    md.create_all(store.engine)
    return table


def _refresh_continuous(store: SiteStore, rollup: sa.Table, lo: datetime, hi: datetime) -> None:
    """CALL refresh_continuous_aggregate (it refuses to run inside a transaction)."""
    name = f"{_quote(store.schema)}.{_quote(rollup.name)}" if store.schema else _quote(rollup.name)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("CALL refresh_continuous_aggregate(CAST(:v AS regclass), :lo, :hi)"),
                     {"v": name, "lo": lo, "hi": hi})


def get_rollup_table(store: SiteStore, component: str) -> sa.Table | None:
    """The rollup table if it exists (reflected definition), else None."""
    raw = store.table(component)
    if not sa.inspect(store.engine).has_table(rollup_name(raw), schema=store.schema):
        return None
    return build_rollup_table(store, component, sa.MetaData())


def _minute_floor(epoch: int) -> int:
    return epoch - epoch % 60


def refresh_rollups(store: SiteStore, component: str, start: datetime, end: datetime) -> None:
    """Recompute the rollup minutes overlapping [start, end) from the raw rows."""
    rollup = ensure_rollups(store, component)
    raw = store.table(component)
    ts = time_column(raw)
    keys = [c for c in raw.columns if c.name.upper() in (BANK, RACK)]
    lo = from_epoch(_minute_floor(to_epoch(start)))
    hi = from_epoch(_minute_floor(to_epoch(end) + 59))
    if store.uses_timescaledb():
        _refresh_continuous(store, rollup, lo, hi)
        return
    fields = numeric_columns(store, component)
    bucket = minute_expr(ts, store.dialect).label("bucket")
    aggs: list[Any] = [bucket, *keys, sa.func.count().label("n"), sa.func.min(ts).label("t0"),
                       sa.func.max(ts).label("t1")]
    for c in fields:
        aggs += [sa.func.sum(c).label(f"{c.name}__sum"), sa.func.count(c).label(f"{c.name}__cnt"),
                 sa.func.min(c).label(f"{c.name}__min"), sa.func.max(c).label(f"{c.name}__max")]
    g = sa.select(*aggs).where(ts >= lo, ts < hi).group_by(bucket, *keys).subquery("g")
    first, last = raw.alias("f"), raw.alias("l")

    def join_on(alias: NamedFromClause, t: str) -> Any:
        return sa.and_(alias.c[ts.name] == g.c[t], *[alias.c[k.name] == g.c[k.name] for k in keys])

    cols: list[Any] = [g.c.bucket, *[g.c[k.name] for k in keys], g.c.n]
    names = ["bucket", *[k.name for k in keys], "n"]
    for c in fields:
        cols += [g.c[f"{c.name}__sum"], g.c[f"{c.name}__cnt"], g.c[f"{c.name}__min"], g.c[f"{c.name}__max"],
                 first.c[c.name], last.c[c.name]]
        names += [f"{c.name}__{a}" for a in ROLLUP_AGGS]
    select = (sa.select(*cols).select_from(g.join(first, join_on(first, "t0")).join(last, join_on(last, "t1")))
              .where(sa.true()))
    # the bucket column is epoch seconds on SQLite: bind the bounds in the column's own type
    b_lo, b_hi = stored_time(lo, store.dialect), stored_time(hi, store.dialect)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(rollup).where(rollup.c.bucket >= b_lo, rollup.c.bucket < b_hi))
        conn.execute(sa.insert(rollup).from_select(names, select))


def refresh_range(store: SiteStore, component: str, start: datetime, end: datetime,
                  step: timedelta = timedelta(hours=6)) -> None:
    """`refresh_rollups` in steps, so each transaction stays small."""
    t = start
    while t < end:
        refresh_rollups(store, component, t, min(t + step, end))
        t += step


def catch_up(store: SiteStore, component: str, create: bool = False) -> sa.Table | None:
    """Bring the rollups up to the newest raw row (only the minutes after the last
    catch-up are recomputed). Returns the rollup table, or None when the site has none
    and `create` is false (statistics then read the raw table)."""
    rollup = ensure_rollups(store, component) if create else get_rollup_table(store, component)
    if rollup is None:
        return None
    raw = store.table(component)
    ts = time_column(raw)
    state = _state_table(sa.MetaData(), store.schema)
    with store.engine.connect() as conn:
        seen = conn.execute(sa.select(state.c.seen_epoch).where(state.c.table_name == raw.name)).scalar()
        newest = conn.execute(sa.select(ts).order_by(ts.desc()).limit(1)).scalar()
        oldest = None if seen is not None else conn.execute(sa.select(ts).order_by(ts.asc()).limit(1)).scalar()
    if newest is None or (seen is not None and to_epoch(newest) <= seen):
        return rollup
    start = oldest if seen is None else from_epoch(_minute_floor(seen))
    assert start is not None  # the table has a newest row, so an oldest one
    refresh_range(store, component, start, newest + timedelta(seconds=1))
    with store.engine.begin() as conn:
        conn.execute(sa.delete(state).where(state.c.table_name == raw.name))
        conn.execute(sa.insert(state).values(table_name=raw.name, seen_epoch=to_epoch(newest)))
    return rollup
