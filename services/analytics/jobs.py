"""The analytics job: brings the stored indices and forecasts of each site up to date,
incrementally (`flask --app app ess analyze`, the demo command, and the app's optional
scheduler all call `analyze`).

Per site and in this order (each task keeps a watermark in `analytics_state`; a task whose
formula or protection-map version changed is recomputed from the start):

1. `sos`    the one pass over raw rack rows, in chunks of CHUNK_S up to the last complete
            10 minutes: SoS per sample → 10-s worst moments and 1-minute means, ExSoS per
            10 minutes, and the SoCP counts added to each day's totals.
2. `daily`  SoCP rows (1/7/30 days) and daily mean SoH per rack and bank (from the
            rollups), per complete local day.
3. `sol`    the SoL forecast per bank, refitted when a new day of SoH arrived.
4. `forecast`    10-minute forecasts issued every 10 minutes (after `sos`, which feeds the
                 SoS target), plus the observed values of earlier issues as they arrive.
5. `forecast_1d` the 1-day max-cell-voltage forecast, issued at each local midnight.

Nothing here fits a model inside a request: the API only reads what this job stored.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from tqdm import tqdm

from services.analytics import exsos as exsos_mod
from services.analytics import forecast as fc
from services.analytics import socp as socp_mod
from services.analytics import soh as soh_mod
from services.analytics import store as st
from services.analytics.sos import (
    FACTOR_NAMES,
    INPUT_NAMES,
    RACK_INPUT_COLUMNS,
    bucket_minimum,
    compute_sos,
    sos_parameters,
)
from services.dialect import epoch_expr, from_epoch, to_epoch
from services.errors import ConfigError, EssError
from services.portal import Portal
from services.protection_map import load_protection_map
from services.registry import Site
from services.rollups import catch_up
from services.storage import SiteStore

log = logging.getLogger(__name__)

SOS_BUCKET_S = 10
WINDOW_S = exsos_mod.WINDOW_S
CHUNK_S = 3 * 3600
FORECAST_BLOCK_DAYS = 7  # issue days per grid read
TASKS = ("sos", "daily", "sol", "forecast", "forecast_1d")


@dataclass
class TaskReport:
    site_id: int
    task: str
    units: int = 0  # chunks, days or issue days processed
    rows: int = 0
    seconds: float = 0.0
    note: str = ""
    failed: bool = False


@dataclass
class _Ctx:
    engine: Engine
    store: SiteStore
    site: Site
    start: int | None
    end: int | None
    bar: Any
    versions: dict[str, str]
    first: int | None  # epoch s of the site's first rack row
    with_prophet: bool = True
    reports: list[TaskReport] = field(default_factory=list)

    @property
    def sid(self) -> int:
        return self.site.id

    @property
    def tz(self) -> str:
        return self.site.timezone


# ----- reading site data -----------------------------------------------------------------

def _columns(table: sa.Table, wanted: Sequence[str]) -> dict[str, sa.Column[Any]]:
    by_upper = {c.name.upper(): c for c in table.columns}
    missing = [w for w in wanted if w not in by_upper]
    if missing:
        raise ConfigError(f"table {table.name} lacks {', '.join(missing)}, which the analytics need")
    return {w: by_upper[w] for w in wanted}


def read_rack(store: SiteStore, start_s: int, end_s: int, columns: dict[str, str]) -> pd.DataFrame:
    """Rack rows with TIMESTAMP in [start_s, end_s): `t` (epoch s), bank_id, rack_id and
    one float column per key of `columns` (rack column names as values)."""
    table = store.table("rack")
    cols = _columns(table, ["TIMESTAMP", "BANK_ID", "RACK_ID", *columns.values()])
    ts = cols["TIMESTAMP"]
    stmt = (sa.select(epoch_expr(ts, store.dialect), cols["BANK_ID"], cols["RACK_ID"],
                      *(cols[v] for v in columns.values()))
            .where(ts >= from_epoch(start_s), ts < from_epoch(end_s)))
    with store.engine.connect() as conn:
        rows = _fetch_plain(conn, stmt)
    names = ["t", "bank_id", "rack_id", *columns]
    if not rows:
        return pd.DataFrame({n: pd.Series(dtype="int64" if n in names[:3] else "float64") for n in names})
    arr = _float_array(rows)
    frame = pd.DataFrame(arr, columns=names)
    for n in names[:3]:
        frame[n] = frame[n].astype(np.int64)
    return frame.sort_values(["t", "bank_id", "rack_id"], kind="mergesort").reset_index(drop=True)


def _fetch_plain(conn: sa.Connection, stmt: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Rows as the driver's plain tuples (the selected columns are numbers, which need no
    result processing): wrapping 10^6 rows in SQLAlchemy Row objects costs seconds."""
    result = conn.execute(stmt)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _float_array(rows: Sequence[Any]) -> np.ndarray:
    """Result rows as a float array (None becomes NaN)."""
    return np.array(rows, dtype=float)


def _raw_span(store: SiteStore, component: str = "rack") -> tuple[int, int] | None:
    """Epoch seconds of the first and the last row of a component."""
    table = store.table(component)
    ts = _columns(table, ["TIMESTAMP"])["TIMESTAMP"]
    with store.engine.connect() as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(epoch_expr(ts, store.dialect)),
                                        sa.func.max(epoch_expr(ts, store.dialect)))).one()
    return None if lo is None else (int(lo), int(hi))


def _rollup_bound(store: SiteStore, epoch_s: int) -> Any:
    return epoch_s if store.dialect == "sqlite" else from_epoch(epoch_s)


def read_rollup_means(store: SiteStore, component: str, start_s: int, end_s: int,
                      fields: dict[str, str]) -> pd.DataFrame:
    """Per-minute means (sum / count) from the rollups: `bucket` (minute start, epoch s),
    bank_id, rack_id (component rack) and one column per key of `fields`."""
    rollup = catch_up(store, component, create=True)
    assert rollup is not None
    raw = store.table(component)
    names = {c.name.upper(): c.name for c in raw.columns}
    ids = [n for n in ("BANK_ID", "RACK_ID") if n in names]
    if store.dialect == "sqlite":
        bucket: Any = rollup.c.bucket
    else:
        bucket = sa.cast(sa.func.extract("epoch", rollup.c.bucket), sa.BigInteger)
    means = []
    for key, field_name in fields.items():
        col = names[field_name]
        cnt = rollup.c[f"{col}__cnt"]
        means.append((rollup.c[f"{col}__sum"] / sa.func.nullif(cnt, 0)).label(key))
    stmt = (sa.select(bucket.label("bucket"), *(rollup.c[names[i]].label(i.lower()) for i in ids), *means)
            .where(rollup.c.bucket >= _rollup_bound(store, start_s), rollup.c.bucket < _rollup_bound(store, end_s)))
    with store.engine.connect() as conn:
        rows = _fetch_plain(conn, stmt)
    cols = ["bucket", *(i.lower() for i in ids), *fields]
    frame = pd.DataFrame(_float_array(rows) if rows else np.empty((0, len(cols))), columns=cols)
    for c in ["bucket", *(i.lower() for i in ids)]:
        frame[c] = frame[c].astype(np.int64)
    return frame


# ----- task bookkeeping ------------------------------------------------------------------

TASK_TABLES: dict[str, tuple[sa.Table, ...]] = {
    "sos": (st.sos, st.sos_minute, st.exsos, st.socp_daily),
    "daily": (st.socp, st.soh),
    "sol": (st.sol, st.sol_fit),
    "forecast": (st.forecast, st.model_cache),
    "forecast_1d": (st.forecast_day,),
}


def task_versions(site: Site) -> dict[str, str]:
    """Each task's version; a task's version includes those of the tasks it reads from,
    so that recomputing one recomputes what depends on it (the SoS parameters come from
    the site's protection map: a new map means new SoS, ExSoS, SoCP and SoS forecasts)."""
    params = sos_parameters(load_protection_map(site))
    sos = f"{params.version};{exsos_mod.version(params)};{socp_mod.FORMULA_VERSION}"
    daily = f"{socp_mod.FORMULA_VERSION};{soh_mod.FORMULA_VERSION};{sos}"
    return {
        "sos": sos,
        "daily": daily,
        "sol": f"{soh_mod.FORMULA_VERSION};{daily}",
        "forecast": f"{fc.version()};{sos}",
        "forecast_1d": fc.version(),
    }


def _resume(ctx: _Ctx, task: str, version: str) -> int | None:
    """The task's watermark, or None after wiping its rows when it has none or its
    version changed (everything is then recomputed)."""
    saved = st.get_state(ctx.engine, ctx.sid, task)
    if saved is not None and saved[1] == version:
        return saved[0]
    if saved is not None:
        log.info("site %s %s: version %s -> %s, recomputing", ctx.sid, task, saved[1], version)
    with ctx.engine.begin() as conn:
        for table in TASK_TABLES[task]:
            conn.execute(sa.delete(table).where(table.c.site_id == ctx.sid))
        conn.execute(sa.delete(st.state).where(st.state.c.site_id == ctx.sid, st.state.c.task == task))
    return None


@contextmanager
def _timed(ctx: _Ctx, task: str) -> Iterator[TaskReport]:
    report = TaskReport(ctx.sid, task)
    t0 = time.perf_counter()
    try:
        yield report
    finally:
        report.seconds = time.perf_counter() - t0
        ctx.reports.append(report)


def _json(value: Any) -> Any:
    """A JSON column's value (drivers return text on SQLite, objects on PostgreSQL)."""
    return json.loads(value) if isinstance(value, str) else value


def _floor(x: int, step: int) -> int:
    return x - x % step


def _ceil(x: int, step: int) -> int:
    return -(-x // step) * step


def _local_midnight(epoch_s: int, tz: str) -> int:
    return fc.local_day_starts(epoch_s, epoch_s + 1, tz)[0]


def _next_midnight(day_start: int, tz: str) -> int:
    """The local midnight after `day_start` (a local midnight): 23, 24 or 25 hours later."""
    return _local_midnight(day_start + 26 * 3600, tz)


# ----- 1. SoS, SoS per minute, ExSoS -----------------------------------------------------

def _sos_chunk(ctx: _Ctx, params: Any, a: int, b: int) -> int:
    """One pass over the chunk's rack rows: SoS, its minute means, ExSoS, and the SoCP
    counts added to each local day's totals (the only read of raw rows the job makes)."""
    frame = read_rack(ctx.store, a, b, {**RACK_INPUT_COLUMNS, **socp_mod.RACK_COLUMNS})
    scores = compute_sos({n: frame[n].to_numpy() for n in INPUT_NAMES}, params)
    full = pd.concat([frame, scores], axis=1)
    worst = _bucket_worst(full)
    worst = worst.assign(site_id=ctx.sid).rename(columns={n: f"in_{n}" for n in INPUT_NAMES})
    worst_rows = st.frame_records(worst, [c.name for c in st.sos.columns])
    minute = _minute_sos(full)
    minute_rows = st.frame_records(minute.assign(site_id=ctx.sid), [c.name for c in st.sos_minute.columns])
    ex_rows = _exsos_rows(ctx, params, frame)
    with ctx.engine.begin() as conn:
        for table, rows in ((st.sos, worst_rows), (st.sos_minute, minute_rows), (st.exsos, ex_rows)):
            conn.execute(sa.delete(table).where(table.c.site_id == ctx.sid, table.c.time >= a, table.c.time < b))
            st.insert_rows(conn, table, rows)
        n_socp = _add_socp_counts(ctx, conn, frame)
        st.set_state(conn, ctx.sid, "sos", b, ctx_version(ctx, "sos"))
    return len(worst_rows) + len(minute_rows) + len(ex_rows) + n_socp


SOCP_DAILY_VALUES = socp_mod.SUM_COLUMNS


def _add_socp_counts(ctx: _Ctx, conn: sa.Connection, frame: pd.DataFrame) -> int:
    """Add a chunk's SoCP counts and sums to the per-day totals (a chunk is processed
    once: the `sos` watermark moves in the same transaction)."""
    if frame.empty:
        return 0
    local = pd.to_datetime(frame["t"].to_numpy(), unit="s", utc=True).tz_convert(ctx.tz)
    days = local.normalize().as_unit("s").asi8  # local midnight of each sample
    t = st.socp_daily
    written = 0
    for day in np.unique(days):
        counts = socp_mod.count_positions(frame.loc[days == day])
        old = conn.execute(sa.select(*(t.c[k] for k in socp_mod.COUNT_KEYS), *(t.c[v] for v in SOCP_DAILY_VALUES))
                           .where(t.c.site_id == ctx.sid, t.c.time == int(day))).all()
        if old:
            counts = socp_mod.add_counts(pd.DataFrame(old, columns=[*socp_mod.COUNT_KEYS, *SOCP_DAILY_VALUES]),
                                         counts)
        conn.execute(sa.delete(t).where(t.c.site_id == ctx.sid, t.c.time == int(day)))
        rows = st.frame_records(counts.assign(site_id=ctx.sid, time=int(day)), [c.name for c in t.columns])
        st.insert_rows(conn, t, rows)
        written += len(rows)
    return written


def _bucket_worst(full: pd.DataFrame) -> pd.DataFrame:
    worst = bucket_minimum(full, SOS_BUCKET_S)
    return worst[["bank_id", "rack_id", "time", "sample_time", *FACTOR_NAMES, "sos_score", "level", *INPUT_NAMES]]


def _minute_sos(full: pd.DataFrame) -> pd.DataFrame:
    f = full.loc[full["sos_score"].notna(), ["t", "bank_id", "rack_id", "sos_score"]]
    f = f.assign(time=f["t"] // 60 * 60)
    g = f.groupby(["bank_id", "rack_id", "time"], sort=True)["sos_score"]
    return g.agg(sos_mean="mean", sos_min="min", samples="size").reset_index()


def _exsos_rows(ctx: _Ctx, params: Any, frame: pd.DataFrame) -> list[dict[str, Any]]:
    inputs = [i.column for i in exsos_mod.INPUTS]
    windows = exsos_mod.window_means(frame, ["current", *inputs], WINDOW_S)
    if windows.empty:
        return []
    assessed = pd.concat([windows, exsos_mod.assess(windows, params)], axis=1)
    version = exsos_mod.version(params)
    out: list[dict[str, Any]] = []
    for mode, rows in ((2, assessed), (1, exsos_mod.worst_rack(assessed))):
        records = rows.to_dict("records")
        for r in records:
            out.append({
                "site_id": ctx.sid, "mode": mode, "bank_id": int(r["bank_id"]), "rack_id": int(r["rack_id"]),
                "time": int(r["time"]), "state": int(r["state"]),
                "integrated_safety": st.clean(r["integrated_safety"]),
                "membership_degree": st.clean({c: r[c] for c in exsos_mod.CLASSES}),
                "membership_degree_detail": st.clean(_detail(r)),
                "samples": int(r["samples"]), "version": version,
            })
    return out


def _detail(r: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = {"status": int(r["state"]), "state": exsos_mod.STATE_NAMES[int(r["state"])],
                              "current": r["current"]}
    for inp in exsos_mod.INPUTS:
        detail[inp.key] = r[inp.column]
    detail["inputs"] = {inp.key: dict(zip(exsos_mod.CLASSES, r[f"deg__{inp.key}"], strict=True))
                        for inp in exsos_mod.INPUTS if inp.state == int(r["state"])}
    return detail


def ctx_version(ctx: _Ctx, task: str) -> str:
    return ctx.versions[task]


def _run_sos(ctx: _Ctx, newest: int) -> int:
    """Returns the watermark reached (end of the last complete 10 minutes)."""
    params = sos_parameters(load_protection_map(ctx.site))
    with _timed(ctx, "sos") as rep:
        mark = _resume(ctx, "sos", ctx_version(ctx, "sos"))
        first = _first_raw(ctx)
        if first is None:
            return 0
        a = mark if mark is not None else _floor(max(first, ctx.start or first), WINDOW_S)
        horizon = _floor(newest + 1, WINDOW_S)
        if ctx.end is not None:
            horizon = min(horizon, _floor(ctx.end, WINDOW_S))
        chunks = [(t, min(t + CHUNK_S, horizon)) for t in range(a, horizon, CHUNK_S)]
        ctx.bar.reset(total=len(chunks))
        ctx.bar.set_description(f"site {ctx.sid} SoS/ExSoS")
        for lo, hi in chunks:
            rep.rows += _sos_chunk(ctx, params, lo, hi)
            rep.units += 1
            ctx.bar.update(1)
        return max(a, horizon)


def _first_raw(ctx: _Ctx) -> int | None:
    return ctx.first


# ----- 2. SoCP and SoH per day -----------------------------------------------------------

def _days(ctx: _Ctx, task: str, horizon: int) -> tuple[list[int], int | None]:
    """Complete local days (midnights) not yet done by `task`, whose end <= horizon."""
    mark = _resume(ctx, task, ctx_version(ctx, task))
    first = _first_raw(ctx)
    if first is None:
        return [], mark
    lo = mark if mark is not None else _local_midnight(max(first, ctx.start or first), ctx.tz)
    starts = fc.local_day_starts(lo, horizon, ctx.tz)
    return [d for d in starts if d >= lo and _next_midnight(d, ctx.tz) <= horizon], mark


def _run_daily(ctx: _Ctx, horizon: int) -> int:
    """SoCP and SoH for every complete new day; returns the number of days done."""
    with _timed(ctx, "daily") as rep:
        days, _ = _days(ctx, "daily", horizon)
        ctx.bar.reset(total=len(days))
        ctx.bar.set_description(f"site {ctx.sid} SoCP/SoH")
        for d0 in days:
            d1 = _next_midnight(d0, ctx.tz)
            rep.rows += _daily(ctx, d0, d1)
            rep.units += 1
            ctx.bar.update(1)
        return len(days)


def _daily(ctx: _Ctx, d0: int, d1: int) -> int:
    """SoCP rows for the 1/7/30 days ending with the day (sums of the per-day totals the
    SoS pass keeps) and the day's mean SoH per rack and bank (from the rollups)."""
    version = socp_mod.FORMULA_VERSION
    soh_rows = _soh_rows(ctx, d0, d1)
    with ctx.engine.begin() as conn:
        socp_rows = []
        for period in socp_mod.PERIODS:
            first_day = _local_midnight(d0 - (period - 1) * 86_400 + 7200, ctx.tz) if period > 1 else d0
            t = st.socp_daily
            got = conn.execute(sa.select(*(t.c[k] for k in socp_mod.COUNT_KEYS),
                                         *(t.c[v] for v in socp_mod.SUM_COLUMNS))
                               .where(t.c.site_id == ctx.sid, t.c.time >= first_day, t.c.time <= d0)).all()
            counts = pd.DataFrame(got, columns=[*socp_mod.COUNT_KEYS, *socp_mod.SUM_COLUMNS])
            counts = socp_mod.add_counts(counts)
            summary = socp_mod.summarise(counts, ctx.site.cells_per_rack)
            for r in summary.to_dict("records"):
                socp_rows.append({"site_id": ctx.sid, "bank_id": int(r["bank_id"]), "rack_id": int(r["rack_id"]),
                                  "time": d0, "period": period, "charge_status": int(r["charge_status"]),
                                  "soc_range": int(r["soc_range"]), "samples": int(r["samples"]),
                                  "entropy": st.clean(r["entropy"]), "bound": int(r["bound"]),
                                  "flagged": r["flagged"], "value": r["value"], "version": version})
        conn.execute(sa.delete(st.socp).where(st.socp.c.site_id == ctx.sid, st.socp.c.time == d0))
        st.insert_rows(conn, st.socp, socp_rows)
        day = pd.Timestamp(d0, unit="s", tz="UTC").tz_convert(ctx.tz).date()
        conn.execute(sa.delete(st.soh).where(st.soh.c.site_id == ctx.sid, st.soh.c.date == day))
        st.insert_rows(conn, st.soh, soh_rows)
        st.set_state(conn, ctx.sid, "daily", d1, ctx_version(ctx, "daily"))
    return len(socp_rows) + len(soh_rows)


def _soh_rows(ctx: _Ctx, d0: int, d1: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    racks = read_rollup_means_sums(ctx.store, "rack", d0, d1, "RACK_SOH")
    for r in soh_mod.daily_means(racks, ctx.tz).to_dict("records"):
        rows.append({"site_id": ctx.sid, "bank_id": int(r["bank_id"]), "rack_id": int(r["rack_id"]),
                     "date": r["date"], "value": float(r["value"]), "samples": int(r["samples"])})
    if "bank" in ctx.site.column_sets:
        banks = read_rollup_means_sums(ctx.store, "bank", d0, d1, "BANK_SOH")
        for r in soh_mod.daily_means(banks, ctx.tz, keys=("bank_id",)).to_dict("records"):
            rows.append({"site_id": ctx.sid, "bank_id": int(r["bank_id"]), "rack_id": 0,
                         "date": r["date"], "value": float(r["value"]), "samples": int(r["samples"])})
    return rows


def read_rollup_means_sums(store: SiteStore, component: str, start_s: int, end_s: int, field_name: str
                           ) -> pd.DataFrame:
    """Per-minute `sum` and `cnt` of one field from the rollups (bucket, ids, sum, cnt)."""
    rollup = catch_up(store, component, create=True)
    assert rollup is not None
    raw = store.table(component)
    names = {c.name.upper(): c.name for c in raw.columns}
    ids = [n for n in ("BANK_ID", "RACK_ID") if n in names and (n != "RACK_ID" or component == "rack")]
    bucket: Any = rollup.c.bucket if store.dialect == "sqlite" else sa.cast(
        sa.func.extract("epoch", rollup.c.bucket), sa.BigInteger)
    col = names[field_name]
    stmt = (sa.select(bucket, *(rollup.c[names[i]] for i in ids), rollup.c[f"{col}__sum"], rollup.c[f"{col}__cnt"])
            .where(rollup.c.bucket >= _rollup_bound(store, start_s), rollup.c.bucket < _rollup_bound(store, end_s)))
    with store.engine.connect() as conn:
        rows = _fetch_plain(conn, stmt)
    cols = ["bucket", *(i.lower() for i in ids), "sum", "cnt"]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.astype({"bucket": np.int64, "cnt": float, "sum": float})


# ----- 3. SoL ----------------------------------------------------------------------------

def _run_sol(ctx: _Ctx, new_days: int) -> None:
    with _timed(ctx, "sol") as rep:
        version = ctx_version(ctx, "sol")
        mark = _resume(ctx, "sol", version)
        with ctx.engine.connect() as conn:
            got = conn.execute(sa.select(st.soh.c.bank_id, st.soh.c.date, st.soh.c.value)
                               .where(st.soh.c.site_id == ctx.sid, st.soh.c.rack_id == 0)
                               .order_by(st.soh.c.bank_id, st.soh.c.date)).all()
        if not got:
            return
        soh = pd.DataFrame(got, columns=["bank_id", "date", "value"])
        newest = int(pd.Timestamp(max(soh["date"])).value // 10**9)
        if mark is not None and mark >= newest and not new_days:
            return
        ctx.bar.reset(total=soh["bank_id"].nunique())
        ctx.bar.set_description(f"site {ctx.sid} SoL")
        for bank_id, part in soh.groupby("bank_id"):
            result = soh_mod.forecast_sol(part.set_index("date")["value"])
            rows = st.frame_records(result.rows.assign(site_id=ctx.sid, bank_id=int(bank_id)),
                                    [c.name for c in st.sol.columns])
            with ctx.engine.begin() as conn:
                conn.execute(sa.delete(st.sol).where(st.sol.c.site_id == ctx.sid, st.sol.c.bank_id == int(bank_id)))
                st.insert_rows(conn, st.sol, rows)
                conn.execute(sa.delete(st.sol_fit).where(st.sol_fit.c.site_id == ctx.sid,
                                                         st.sol_fit.c.bank_id == int(bank_id)))
                conn.execute(sa.insert(st.sol_fit).values(
                    site_id=ctx.sid, bank_id=int(bank_id), fitted_days=result.fitted_days,
                    first_date=result.first_date, last_date=result.last_date,
                    end_of_life_date=result.end_of_life_date, trend_sol_per_year=st.clean(result.trend_sol_per_year),
                    model=result.model, note=result.note, version=version))
            rep.rows += len(rows)
            rep.units += 1
            ctx.bar.update(1)
        with ctx.engine.begin() as conn:
            st.set_state(conn, ctx.sid, "sol", newest, version)


# ----- 4./5. forecasts -------------------------------------------------------------------

GRID_FIELDS = {**{t: c for t, c in fc.TARGET_COLUMNS.items()}, **fc.EXOG_COLUMNS}


def read_minute_grid(ctx: _Ctx, lo: int, hi: int) -> dict[tuple[int, int], fc.Grid]:
    """Per rack the 1-minute grid with labels in (lo, hi] (minute starts in [lo, hi))."""
    minutes = read_rollup_means(ctx.store, "rack", lo, hi, GRID_FIELDS)
    with ctx.engine.connect() as conn:
        got = conn.execute(sa.select(st.sos_minute.c.time, st.sos_minute.c.bank_id, st.sos_minute.c.rack_id,
                                     st.sos_minute.c.sos_mean)
                           .where(st.sos_minute.c.site_id == ctx.sid, st.sos_minute.c.time >= lo,
                                  st.sos_minute.c.time < hi)).all()
    sos = pd.DataFrame(got, columns=["bucket", "bank_id", "rack_id", "sos"])
    minutes = minutes.merge(sos.astype({"bucket": np.int64}), on=["bucket", "bank_id", "rack_id"], how="left")
    grids = {}
    for (bank_id, rack_id), part in minutes.groupby(["bank_id", "rack_id"]):
        grids[(int(bank_id), int(rack_id))] = fc.make_grid(part.drop(columns=["bank_id", "rack_id"]), lo + 60, hi,
                                                           ctx.tz)
    return grids


def _prophet_day(ctx: _Ctx, key: tuple[int, int], target: str, day: int, grid: fc.Grid,
                 cache: dict[tuple[int, int, str], np.ndarray | None]) -> np.ndarray | None:
    """Prophet's curve over the day's issue times (`prophet_day_curve`): from the cache
    table, else fitted now and cached, so incremental runs fit once per rack, target and
    day."""
    ck = (key[0], key[1], target)
    if not ctx.with_prophet:
        return None
    if ck in cache:
        return cache[ck]
    m = st.model_cache
    where = [m.c.site_id == ctx.sid, m.c.bank_id == key[0], m.c.rack_id == key[1], m.c.target == target,
             m.c.model == "prophet"]
    with ctx.engine.connect() as conn:
        row = conn.execute(sa.select(m.c.payload).where(*where, m.c.day == day)).first()
    if row is not None:
        payload = _json(row[0])
        values = None if payload.get("values") is None else np.array(
            [np.nan if v is None else v for v in payload["values"]], dtype=float)
    else:
        values = fc.prophet_day_curve(grid, target, day, ctx.tz)
        with ctx.engine.begin() as conn:
            conn.execute(sa.delete(m).where(*where, m.c.day <= day))  # earlier days' fits are no longer needed
            conn.execute(sa.insert(m).values(site_id=ctx.sid, bank_id=key[0], rack_id=key[1], target=target,
                                             model="prophet", day=day,
                                             payload=st.clean({"values": None if values is None else values})))
    cache[ck] = values
    return values


def _history(ctx: _Ctx, target: str, key: tuple[int, int], lo: int, hi: int) -> pd.DataFrame:
    """Stored 10-minute forecast rows of a rack with issue time in [lo, hi)."""
    f = st.forecast
    with ctx.engine.connect() as conn:
        got = conn.execute(sa.select(f.c.time, f.c.target_time, f.c.observed, f.c["values"]).where(
            f.c.site_id == ctx.sid, f.c.target == target, f.c.bank_id == key[0], f.c.rack_id == key[1],
            f.c.time >= lo, f.c.time < hi).order_by(f.c.time)).all()
    rows = []
    for t, tt, obs, values in got:
        v = _json(values)
        rows.append({"time": int(t), "target_time": int(tt), "observed": np.nan if obs is None else float(obs),
                     **{m: np.nan if v.get(m) is None else float(v[m]) for m in fc.MODELS}})
    return pd.DataFrame(rows, columns=["time", "target_time", "observed", *fc.MODELS])


def _run_forecast(ctx: _Ctx, horizon: int) -> None:
    """10-minute forecasts for issue times in (watermark, horizon]."""
    with _timed(ctx, "forecast") as rep:
        version = ctx_version(ctx, "forecast")
        mark = _resume(ctx, "forecast", version)
        first = _first_raw(ctx)
        if first is None:
            return
        begin = mark + fc.ISSUE_EVERY_S if mark is not None else _ceil(max(first, ctx.start or first) + 60,
                                                                          fc.ISSUE_EVERY_S)
        if ctx.end is not None:
            horizon = min(horizon, ctx.end)
        issue_days = [d for d in fc.local_day_starts(begin, horizon + 1, ctx.tz)]
        ctx.bar.reset(total=len(issue_days))
        ctx.bar.set_description(f"site {ctx.sid} forecasts")
        for i in range(0, len(issue_days), FORECAST_BLOCK_DAYS):
            block = issue_days[i:i + FORECAST_BLOCK_DAYS]
            lo = max(_floor(first, 60), block[0] - fc.HISTORY_DAYS * fc.DAY_S)
            hi = _floor(horizon, 60)
            grids = read_minute_grid(ctx, lo, hi)
            for day in block:
                day_end = _next_midnight(day, ctx.tz)
                origins = np.arange(max(begin, _ceil(day, fc.ISSUE_EVERY_S)), min(day_end, horizon + 1),
                                    fc.ISSUE_EVERY_S, dtype=np.int64)
                if origins.size:
                    rep.rows += _forecast_day(ctx, grids, day, origins, horizon)
                    with ctx.engine.begin() as conn:
                        st.set_state(conn, ctx.sid, "forecast", int(origins[-1]), version)
                rep.units += 1
                ctx.bar.update(1)


def _forecast_day(ctx: _Ctx, grids: dict[tuple[int, int], fc.Grid], day: int, origins: np.ndarray,
                  horizon: int) -> int:
    written = 0
    version = ctx_version(ctx, "forecast")
    cache: dict[tuple[int, int, str], np.ndarray | None] = {}
    for key, grid in grids.items():
        for target in fc.TARGETS:
            if target not in grid.columns:
                continue
            ridge = fc.train_ridge(grid, target, day)
            curve = _prophet_day(ctx, key, target, day, grid, cache)
            issued = fc.forecast_10min(grid, target, origins, day, curve, ridge)
            observed_ok = origins + fc.HORIZON_S <= horizon
            new = pd.DataFrame({"time": origins, "target_time": origins + fc.HORIZON_S,
                                "observed": np.where(observed_ok, issued.observed, np.nan), **issued.values})
            hist = _history(ctx, target, key, int(origins[0]) - fc.DEFAULT_WINDOW * fc.ISSUE_EVERY_S,
                            int(origins[0]))
            fill = hist["observed"].isna() & (hist["target_time"] <= horizon)
            if fill.any():
                labels = hist.loc[fill, "target_time"].to_numpy(dtype=np.int64)
                hist.loc[fill, "observed"] = fc._take(grid.columns[target], grid.pos(labels))
                _update_observed(ctx, target, key, hist.loc[fill & hist["observed"].notna()])
            both = pd.concat([hist, new], ignore_index=True) if len(hist) else new
            lower, upper, default = fc.intervals_and_default(both)
            n_hist = len(hist)
            rows = []
            for j in range(len(new)):
                i = n_hist + j
                values = {m: new[m].iat[j] for m in fc.MODELS}
                intervals = {m: [lower[m][i], upper[m][i]] for m in fc.MODELS
                             if np.isfinite(lower[m][i]) and np.isfinite(upper[m][i])}
                rows.append({"site_id": ctx.sid, "target": target, "bank_id": key[0], "rack_id": key[1],
                             "time": int(new["time"].iat[j]), "target_time": int(new["target_time"].iat[j]),
                             "observed": st.clean(new["observed"].iat[j]), "values": st.clean(values),
                             "intervals": st.clean(intervals), "default_model": str(default[i]),
                             "version": version})
            f = st.forecast
            with ctx.engine.begin() as conn:
                conn.execute(sa.delete(f).where(f.c.site_id == ctx.sid, f.c.target == target,
                                                f.c.bank_id == key[0], f.c.rack_id == key[1],
                                                f.c.time >= int(origins[0]), f.c.time <= int(origins[-1])))
                st.insert_rows(conn, f, rows)
            written += len(rows)
    return written


def _update_observed(ctx: _Ctx, target: str, key: tuple[int, int], rows: pd.DataFrame) -> None:
    if rows.empty:
        return
    f = st.forecast
    stmt = (sa.update(f).where(f.c.site_id == ctx.sid, f.c.target == target, f.c.bank_id == key[0],
                               f.c.rack_id == key[1], f.c.time == sa.bindparam("t"))
            .values(observed=sa.bindparam("obs")))
    with ctx.engine.begin() as conn:
        conn.execute(stmt, [{"t": int(t), "obs": float(o)} for t, o in zip(rows["time"], rows["observed"],
                                                                         strict=True)])


def _run_forecast_1d(ctx: _Ctx, horizon: int) -> None:
    """1-day forecasts issued at each local midnight <= horizon after a complete day."""
    with _timed(ctx, "forecast_1d") as rep:
        version = ctx_version(ctx, "forecast_1d")
        mark = _resume(ctx, "forecast_1d", version)
        first = _first_raw(ctx)
        if first is None:
            return
        if ctx.end is not None:
            horizon = min(horizon, ctx.end)
        first_day = _next_midnight(_local_midnight(max(first, ctx.start or first), ctx.tz), ctx.tz)
        if first > _local_midnight(first, ctx.tz):  # the first day is partial: need one complete day before
            first_day = _next_midnight(first_day, ctx.tz)
        begin = first_day if mark is None else mark
        days = [d for d in fc.local_day_starts(begin, horizon + 1, ctx.tz) if d >= begin]
        # observed arrays of earlier issues that were still incomplete are refreshed too
        redo = [] if mark is None else [d for d in fc.local_day_starts(mark - 2 * fc.DAY_S, mark, ctx.tz)
                                        if d >= first_day]
        ctx.bar.reset(total=len(days) + len(redo))
        ctx.bar.set_description(f"site {ctx.sid} 1-day forecasts")
        todo = sorted(set(redo) | set(days))
        if not todo:
            return
        lo = max(_floor(first, 60), todo[0] - (fc.PROFILE_DAYS + 1) * fc.DAY_S)
        grids = read_minute_grid(ctx, lo, _floor(horizon, 60))
        for day in todo:
            rep.rows += _forecast_1d_day(ctx, grids, day, horizon, refresh_only=day in redo and day not in days)
            rep.units += 1
            ctx.bar.update(1)
        if days:
            with ctx.engine.begin() as conn:
                st.set_state(conn, ctx.sid, "forecast_1d", days[-1] + 1, version)


def _forecast_1d_day(ctx: _Ctx, grids: dict[tuple[int, int], fc.Grid], day: int, horizon: int,
                     refresh_only: bool) -> int:
    f = st.forecast_day
    steps = fc.step_times(day)
    n = 0
    version = ctx_version(ctx, "forecast_1d")
    for key, grid in grids.items():
        observed = fc.ten_minute_means(grid, fc.TARGET_1D, day, fc.STEPS_1D)
        observed = np.where(steps + fc.ISSUE_EVERY_S <= horizon, observed, np.nan)
        where = [f.c.site_id == ctx.sid, f.c.target == fc.TARGET_1D, f.c.bank_id == key[0], f.c.rack_id == key[1],
                 f.c.time == day]
        if refresh_only:
            with ctx.engine.begin() as conn:
                conn.execute(sa.update(f).where(*where).values(observed=st.clean(observed)))
            continue
        values = fc.forecast_1day(grid, day, ctx.tz, with_prophet=ctx.with_prophet)
        default, lower, upper = _default_1d(ctx, key, day, values)
        row = {"site_id": ctx.sid, "target": fc.TARGET_1D, "bank_id": key[0], "rack_id": key[1], "time": day,
               "values": st.clean({"time": [int(s) for s in steps], **values}), "observed": st.clean(observed),
               "lower": st.clean(lower), "upper": st.clean(upper), "default_model": default, "version": version}
        with ctx.engine.begin() as conn:
            conn.execute(sa.delete(f).where(*where))
            conn.execute(sa.insert(f).values(**row))
        n += 1
    return n


def _default_1d(ctx: _Ctx, key: tuple[int, int], day: int, values: dict[str, np.ndarray]
                ) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """Default model (best MASE over the stored issues of the last RESIDUAL_DAYS_1D days)
    and its 80 % interval from its own past errors; no interval without history."""
    f = st.forecast_day
    with ctx.engine.connect() as conn:
        got = conn.execute(sa.select(f.c["values"], f.c.observed).where(
            f.c.site_id == ctx.sid, f.c.target == fc.TARGET_1D, f.c.bank_id == key[0], f.c.rack_id == key[1],
            f.c.time < day, f.c.time >= day - fc.RESIDUAL_DAYS_1D * fc.DAY_S)).all()
    if not got:
        return "persistence", None, None
    obs_parts: list[np.ndarray] = []
    model_parts: dict[str, list[np.ndarray]] = {m: [] for m in fc.MODELS_1D}
    for vals, obs in got:
        v, o = _json(vals), _json(obs)
        obs_parts.append(np.array([np.nan if x is None else x for x in o], dtype=float))
        for m in fc.MODELS_1D:
            model_parts[m].append(np.array([np.nan if x is None else x for x in v.get(m, [None] * len(o))],
                                           dtype=float))
    obs_all = np.concatenate(obs_parts)
    preds = {m: np.concatenate(p) for m, p in model_parts.items()}
    default = fc.best_model(fc.accuracy(obs_all, preds), fc.MODELS_1D)
    resid = obs_all - preds[default]
    resid = resid[~np.isnan(resid)]
    if resid.size < fc.MIN_RESIDUALS or np.isnan(values[default]).all():
        return default, None, None
    q_lo, q_hi = np.quantile(resid, fc.INTERVAL_Q)
    point = values[default]
    return default, point + min(q_lo, 0.0), point + max(q_hi, 0.0)


# ----- the entry points ------------------------------------------------------------------

def analyze_site(engine: Engine, store: SiteStore, *, start: datetime | None = None, end: datetime | None = None,
                 progress: bool = False, rebuild: bool = False, with_prophet: bool = True) -> list[TaskReport]:
    """Bring every analytics task of one site up to date (see the module docstring).

    `start`/`end` limit the data analysed (naive datetimes are the site's local time);
    `with_prophet=False` leaves the Prophet forecasts out (tests, quick runs)."""
    site = store.site
    start = start.replace(tzinfo=site.tz) if start is not None and start.tzinfo is None else start
    end = end.replace(tzinfo=site.tz) if end is not None and end.tzinfo is None else end
    if rebuild:
        st.drop_site(engine, site.id)
    span = _raw_span(store)
    with tqdm(total=0, disable=not progress, unit="step", leave=False) as bar:
        ctx = _Ctx(engine, store, site, None if start is None else to_epoch(start),
                   None if end is None else to_epoch(end), bar, task_versions(site),
                   None if span is None else span[0], with_prophet)
        if span is None:
            ctx.reports.append(TaskReport(site.id, "sos", note="no rack data"))
            return ctx.reports
        catch_up(store, "rack", create=True)
        if "bank" in site.column_sets:
            catch_up(store, "bank", create=True)
        done_to = _run_sos(ctx, span[1])
        new_days = _run_daily(ctx, done_to)
        _run_sol(ctx, new_days)
        _run_forecast(ctx, done_to)
        _run_forecast_1d(ctx, done_to)
    return ctx.reports


def analyze(portal: Portal, site_ids: Sequence[int] | None = None, *, start: datetime | None = None,
            end: datetime | None = None, progress: bool = False, rebuild: bool = False, with_prophet: bool = True,
            on_site: Callable[[int, list[TaskReport]], None] | None = None) -> list[TaskReport]:
    """`analyze_site` for each site (default: every registered site). A site whose data
    cannot be analysed (EssError: missing columns, unreachable database, bad protection
    map; or any other error, logged with its trace) gets one report with `failed` set and
    the others still run. Every step commits its results with its watermark in one
    transaction, so a failure keeps what earlier steps stored and the next run resumes."""
    ids = list(site_ids) if site_ids else list(portal.registry.site_ids)
    reports: list[TaskReport] = []
    for sid in ids:
        try:
            part = analyze_site(portal.app_db, portal.store(sid), start=start, end=end, progress=progress,
                                rebuild=rebuild, with_prophet=with_prophet)
        except EssError as exc:
            log.error("analytics of site %s: %s", sid, exc.detail)
            part = [TaskReport(sid, "all", note=f"failed: {exc.detail}", failed=True)]
        except sa.exc.SQLAlchemyError as exc:
            log.error("analytics of site %s: a database is unreachable or refused a write: %s", sid,
                      str(exc).splitlines()[0])
            part = [TaskReport(sid, "all", note=f"failed: {type(exc).__name__}", failed=True)]
        except Exception as exc:  # a model bug must not stop the other sites; the trace is logged
            log.exception("analytics of site %s failed", sid)
            part = [TaskReport(sid, "all", note=f"failed: {type(exc).__name__}: {exc}", failed=True)]
        if on_site:
            on_site(sid, part)
        reports += part
    return reports


# ----- the app's scheduler ---------------------------------------------------------------

LEASE_TASK = "_lease"


def _acquire(engine: Engine, owner: str, seconds: int) -> bool:
    """A lease in the app database, so that one process of many runs the job."""
    now = int(time.time())
    try:
        with engine.begin() as conn:
            row = conn.execute(sa.select(st.state.c.watermark).where(st.state.c.site_id == 0,
                                                                     st.state.c.task == LEASE_TASK)).first()
            if row is not None and int(row[0]) > now:
                return False
            conn.execute(sa.delete(st.state).where(st.state.c.site_id == 0, st.state.c.task == LEASE_TASK))
            conn.execute(sa.insert(st.state).values(site_id=0, task=LEASE_TASK, watermark=now + seconds,
                                                    version=owner, updated=now))
        return True
    except sa.exc.IntegrityError:
        return False


def _release(engine: Engine, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(st.state).where(st.state.c.site_id == 0, st.state.c.task == LEASE_TASK,
                                               st.state.c.version == owner))


def run_scheduled_jobs(portal: Portal) -> None:
    """One scheduled round: protection-map evaluation of every site's new rows (a site that
    fails is logged and skipped), then `analyze` (which reports failed sites itself)."""
    from services.protection import evaluate_site

    for site_id in portal.registry.site_ids:
        try:
            evaluate_site(portal, portal.store(site_id))
        except Exception:  # a site database away, a bad row: the other sites still run
            log.exception("protection evaluation of site %s failed", site_id)
    analyze(portal)


def start_scheduler(portal: Portal, interval_s: int, stop: threading.Event | None = None) -> threading.Thread:
    """Run `run_scheduled_jobs` (evaluation, then analytics) every `interval_s` seconds in a
    daemon thread (ESS_JOBS_INTERVAL_S); a lease lets one process of many run a round."""
    stop = stop or threading.Event()
    owner = f"{os.getpid()}-{threading.get_ident()}-{time.time_ns()}"

    def loop() -> None:
        while not stop.wait(interval_s):
            if not portal.has_registry() or not _acquire(portal.app_db, owner, max(3600, 2 * interval_s)):
                continue
            try:
                run_scheduled_jobs(portal)
            except EssError as exc:
                log.error("analytics job: %s", exc.detail)
            except Exception:  # keep the scheduler alive; the error is logged with its trace
                log.exception("analytics job failed")
            finally:
                _release(portal.app_db, owner)

    thread = threading.Thread(target=loop, name="ess-analytics", daemon=True)
    thread.start()
    return thread


def summarise_reports(reports: Sequence[TaskReport]) -> list[str]:
    """One line per site and task for the CLI."""
    return [f"site {r.site_id} {r.task:<12} {r.units:>5} step(s) {r.rows:>9,} row(s) {r.seconds:8.1f} s"
            + (f"  ({r.note})" if r.note else "") for r in reports]

