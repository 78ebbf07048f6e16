"""The index tasks: SoS with ExSoS and SoCP counts, daily SoCP and SoH, SoL."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from services.analytics import exsos as exsos_mod
from services.analytics import forecast as fc
from services.analytics import socp as socp_mod
from services.analytics import soh as soh_mod
from services.analytics import tables as st
from services.analytics.bookkeeping import (
    CHUNK_S,
    SOS_BUCKET_S,
    WINDOW_S,
    TaskContext,
    floor_to,
    local_midnight,
    next_midnight,
    resume_from,
    set_state,
    timed,
)
from services.analytics.inputs import read_rack, read_rollup_means_sums
from services.analytics.sos import (
    FACTOR_NAMES,
    INPUT_NAMES,
    RACK_INPUT_COLUMNS,
    bucket_minimum,
    compute_sos,
    sos_parameters,
)
from services.analytics.writes import clean, frame_records, replace_rows
from services.protection.maps import load_protection_map

# ----- 1. SoS, SoS per minute, ExSoS -----------------------------------------------------

def _sos_chunk(ctx: TaskContext, params: Any, a: int, b: int) -> int:
    """One pass over the chunk's rack rows: SoS, its minute means, ExSoS, and the SoCP
    counts added to each local day's totals (the only read of raw rows the job makes)."""
    frame = read_rack(ctx.store, a, b, {**RACK_INPUT_COLUMNS, **socp_mod.RACK_COLUMNS})
    scores = compute_sos({n: frame[n].to_numpy() for n in INPUT_NAMES}, params)
    full = pd.concat([frame, scores], axis=1)
    worst = _bucket_worst(full)
    worst = worst.assign(site_id=ctx.sid).rename(columns={n: f"in_{n}" for n in INPUT_NAMES})
    worst_rows = frame_records(worst, [c.name for c in st.sos.columns])
    minute = _minute_sos(full)
    minute_rows = frame_records(minute.assign(site_id=ctx.sid), [c.name for c in st.sos_minute.columns])
    ex_rows = _exsos_rows(ctx, params, frame)
    with ctx.engine.begin() as conn:
        for table, rows in ((st.sos, worst_rows), (st.sos_minute, minute_rows), (st.exsos, ex_rows)):
            replace_rows(conn, table, [table.c.site_id == ctx.sid, table.c.time >= a, table.c.time < b], rows)
        n_socp = _add_socp_counts(ctx, conn, frame)
        set_state(conn, ctx.sid, "sos", b, ctx.version("sos"))
    return len(worst_rows) + len(minute_rows) + len(ex_rows) + n_socp


SOCP_DAILY_VALUES = socp_mod.SUM_COLUMNS


def _add_socp_counts(ctx: TaskContext, conn: sa.Connection, frame: pd.DataFrame) -> int:
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
        rows = frame_records(counts.assign(site_id=ctx.sid, time=int(day)), [c.name for c in t.columns])
        replace_rows(conn, t, [t.c.site_id == ctx.sid, t.c.time == int(day)], rows)
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


def _exsos_rows(ctx: TaskContext, params: Any, frame: pd.DataFrame) -> list[dict[str, Any]]:
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
                "integrated_safety": clean(r["integrated_safety"]),
                "membership_degree": clean({c: r[c] for c in exsos_mod.CLASSES}),
                "membership_degree_detail": clean(_detail(r)),
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


def run_sos(ctx: TaskContext, newest: int) -> int:
    """Returns the watermark reached (end of the last complete 10 minutes)."""
    params = sos_parameters(load_protection_map(ctx.site))
    with timed(ctx, "sos") as rep:
        mark = resume_from(ctx, "sos")
        first = ctx.first
        if first is None:
            return 0
        a = mark if mark is not None else floor_to(max(first, ctx.start or first), WINDOW_S)
        horizon = floor_to(newest + 1, WINDOW_S)
        if ctx.end is not None:
            horizon = min(horizon, floor_to(ctx.end, WINDOW_S))
        chunks = [(t, min(t + CHUNK_S, horizon)) for t in range(a, horizon, CHUNK_S)]
        ctx.bar.reset(total=len(chunks))
        ctx.bar.set_description(f"site {ctx.sid} SoS/ExSoS")
        for lo, hi in chunks:
            rep.rows += _sos_chunk(ctx, params, lo, hi)
            rep.units += 1
            ctx.bar.update(1)
        return max(a, horizon)


# ----- 2. SoCP and SoH per day -----------------------------------------------------------

def _days(ctx: TaskContext, task: str, horizon: int) -> tuple[list[int], int | None]:
    """Complete local days (midnights) not yet done by `task`, whose end <= horizon."""
    mark = resume_from(ctx, task)
    first = ctx.first
    if first is None:
        return [], mark
    lo = mark if mark is not None else local_midnight(max(first, ctx.start or first), ctx.tz)
    starts = fc.local_day_starts(lo, horizon, ctx.tz)
    return [d for d in starts if d >= lo and next_midnight(d, ctx.tz) <= horizon], mark


def run_daily(ctx: TaskContext, horizon: int) -> int:
    """SoCP and SoH for every complete new day; returns the number of days done."""
    with timed(ctx, "daily") as rep:
        days, _ = _days(ctx, "daily", horizon)
        ctx.bar.reset(total=len(days))
        ctx.bar.set_description(f"site {ctx.sid} SoCP/SoH")
        for d0 in days:
            d1 = next_midnight(d0, ctx.tz)
            rep.rows += _daily(ctx, d0, d1)
            rep.units += 1
            ctx.bar.update(1)
        return len(days)


def _daily(ctx: TaskContext, d0: int, d1: int) -> int:
    """SoCP rows for the 1/7/30 days ending with the day (sums of the per-day totals the
    SoS pass keeps) and the day's mean SoH per rack and bank (from the rollups)."""
    version = socp_mod.FORMULA_VERSION
    soh_rows = _soh_rows(ctx, d0, d1)
    with ctx.engine.begin() as conn:
        socp_rows = []
        for period in socp_mod.PERIODS:
            first_day = local_midnight(d0 - (period - 1) * 86_400 + 7200, ctx.tz) if period > 1 else d0
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
                                  "entropy": clean(r["entropy"]), "bound": int(r["bound"]),
                                  "flagged": r["flagged"], "value": r["value"], "version": version})
        replace_rows(conn, st.socp, [st.socp.c.site_id == ctx.sid, st.socp.c.time == d0], socp_rows)
        day = pd.Timestamp(d0, unit="s", tz="UTC").tz_convert(ctx.tz).date()
        replace_rows(conn, st.soh, [st.soh.c.site_id == ctx.sid, st.soh.c.date == day], soh_rows)
        set_state(conn, ctx.sid, "daily", d1, ctx.version("daily"))
    return len(socp_rows) + len(soh_rows)


def _soh_rows(ctx: TaskContext, d0: int, d1: int) -> list[dict[str, Any]]:
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


# ----- 3. SoL ----------------------------------------------------------------------------

def run_sol(ctx: TaskContext, new_days: int) -> None:
    with timed(ctx, "sol") as rep:
        version = ctx.version("sol")
        mark = resume_from(ctx, "sol")
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
            rows = frame_records(result.rows.assign(site_id=ctx.sid, bank_id=int(bank_id)),
                                    [c.name for c in st.sol.columns])
            with ctx.engine.begin() as conn:
                replace_rows(conn, st.sol, [st.sol.c.site_id == ctx.sid, st.sol.c.bank_id == int(bank_id)], rows)
                conn.execute(sa.delete(st.sol_fit).where(st.sol_fit.c.site_id == ctx.sid,
                                                         st.sol_fit.c.bank_id == int(bank_id)))
                conn.execute(sa.insert(st.sol_fit).values(
                    site_id=ctx.sid, bank_id=int(bank_id), fitted_days=result.fitted_days,
                    first_date=result.first_date, last_date=result.last_date,
                    end_of_life_date=result.end_of_life_date, trend_sol_per_year=clean(result.trend_sol_per_year),
                    model=result.model, note=result.note, version=version))
            rep.rows += len(rows)
            rep.units += 1
            ctx.bar.update(1)
        with ctx.engine.begin() as conn:
            set_state(conn, ctx.sid, "sol", newest, version)
