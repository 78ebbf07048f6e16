"""The forecast tasks: 10-minute and 1-day forecasts with their observed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from services.analytics import forecast as fc
from services.analytics import tables as st
from services.analytics.bookkeeping import (
    FORECAST_BLOCK_DAYS,
    TaskContext,
    ceil_to,
    floor_to,
    json_value,
    local_midnight,
    next_midnight,
    resume_from,
    set_state,
    timed,
)
from services.analytics.inputs import read_rollup_means
from services.analytics.writes import clean, replace_rows

# ----- 4./5. forecasts -------------------------------------------------------------------

GRID_FIELDS = {**{t: c for t, c in fc.TARGET_COLUMNS.items()}, **fc.EXOG_COLUMNS}


def read_minute_grid(ctx: TaskContext, lo: int, hi: int) -> dict[tuple[int, int], fc.Grid]:
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


def _prophet_day(ctx: TaskContext, key: tuple[int, int], target: str, day: int, grid: fc.Grid,
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
        payload = json_value(row[0])
        values = None if payload.get("values") is None else np.array(
            [np.nan if v is None else v for v in payload["values"]], dtype=float)
    else:
        values = fc.prophet_day_curve(grid, target, day, ctx.tz)
        with ctx.engine.begin() as conn:
            conn.execute(sa.delete(m).where(*where, m.c.day <= day))  # earlier days' fits are no longer needed
            conn.execute(sa.insert(m).values(site_id=ctx.sid, bank_id=key[0], rack_id=key[1], target=target,
                                             model="prophet", day=day,
                                             payload=clean({"values": None if values is None else values})))
    cache[ck] = values
    return values


def _history(ctx: TaskContext, target: str, key: tuple[int, int], lo: int, hi: int) -> pd.DataFrame:
    """Stored 10-minute forecast rows of a rack with issue time in [lo, hi)."""
    f = st.forecast
    with ctx.engine.connect() as conn:
        got = conn.execute(sa.select(f.c.time, f.c.target_time, f.c.observed, f.c["values"]).where(
            f.c.site_id == ctx.sid, f.c.target == target, f.c.bank_id == key[0], f.c.rack_id == key[1],
            f.c.time >= lo, f.c.time < hi).order_by(f.c.time)).all()
    rows = []
    for t, tt, obs, values in got:
        v = json_value(values)
        rows.append({"time": int(t), "target_time": int(tt), "observed": np.nan if obs is None else float(obs),
                     **{m: np.nan if v.get(m) is None else float(v[m]) for m in fc.MODELS}})
    return pd.DataFrame(rows, columns=["time", "target_time", "observed", *fc.MODELS])


def run_forecast(ctx: TaskContext, horizon: int) -> None:
    """10-minute forecasts for issue times in (watermark, horizon]."""
    with timed(ctx, "forecast") as rep:
        version = ctx.version("forecast")
        mark = resume_from(ctx, "forecast")
        first = ctx.first
        if first is None:
            return
        begin = mark + fc.ISSUE_EVERY_S if mark is not None else ceil_to(max(first, ctx.start or first) + 60,
                                                                          fc.ISSUE_EVERY_S)
        if ctx.end is not None:
            horizon = min(horizon, ctx.end)
        issue_days = [d for d in fc.local_day_starts(begin, horizon + 1, ctx.tz)]
        ctx.bar.reset(total=len(issue_days))
        ctx.bar.set_description(f"site {ctx.sid} forecasts")
        for i in range(0, len(issue_days), FORECAST_BLOCK_DAYS):
            block = issue_days[i:i + FORECAST_BLOCK_DAYS]
            lo = max(floor_to(first, 60), block[0] - fc.HISTORY_DAYS * fc.DAY_S)
            hi = floor_to(horizon, 60)
            grids = read_minute_grid(ctx, lo, hi)
            for day in block:
                day_end = next_midnight(day, ctx.tz)
                origins = np.arange(max(begin, ceil_to(day, fc.ISSUE_EVERY_S)), min(day_end, horizon + 1),
                                    fc.ISSUE_EVERY_S, dtype=np.int64)
                if origins.size:
                    rep.rows += _forecast_day(ctx, grids, day, origins, horizon)
                    with ctx.engine.begin() as conn:
                        set_state(conn, ctx.sid, "forecast", int(origins[-1]), version)
                rep.units += 1
                ctx.bar.update(1)


def _forecast_day(ctx: TaskContext, grids: dict[tuple[int, int], fc.Grid], day: int, origins: np.ndarray,
                  horizon: int) -> int:
    written = 0
    version = ctx.version("forecast")
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
                             "observed": clean(new["observed"].iat[j]), "values": clean(values),
                             "intervals": clean(intervals), "default_model": str(default[i]),
                             "version": version})
            f = st.forecast
            with ctx.engine.begin() as conn:
                replace_rows(conn, f, [f.c.site_id == ctx.sid, f.c.target == target, f.c.bank_id == key[0],
                                       f.c.rack_id == key[1], f.c.time >= int(origins[0]),
                                       f.c.time <= int(origins[-1])], rows)
            written += len(rows)
    return written


def _update_observed(ctx: TaskContext, target: str, key: tuple[int, int], rows: pd.DataFrame) -> None:
    if rows.empty:
        return
    f = st.forecast
    stmt = (sa.update(f).where(f.c.site_id == ctx.sid, f.c.target == target, f.c.bank_id == key[0],
                               f.c.rack_id == key[1], f.c.time == sa.bindparam("t"))
            .values(observed=sa.bindparam("obs")))
    with ctx.engine.begin() as conn:
        conn.execute(stmt, [{"t": int(t), "obs": float(o)} for t, o in zip(rows["time"], rows["observed"],
                                                                         strict=True)])


def run_forecast_1d(ctx: TaskContext, horizon: int) -> None:
    """1-day forecasts issued at each local midnight <= horizon after a complete day."""
    with timed(ctx, "forecast_1d") as rep:
        version = ctx.version("forecast_1d")
        mark = resume_from(ctx, "forecast_1d")
        first = ctx.first
        if first is None:
            return
        if ctx.end is not None:
            horizon = min(horizon, ctx.end)
        first_day = next_midnight(local_midnight(max(first, ctx.start or first), ctx.tz), ctx.tz)
        if first > local_midnight(first, ctx.tz):  # the first day is partial: need one complete day before
            first_day = next_midnight(first_day, ctx.tz)
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
        lo = max(floor_to(first, 60), todo[0] - (fc.PROFILE_DAYS + 1) * fc.DAY_S)
        grids = read_minute_grid(ctx, lo, floor_to(horizon, 60))
        for day in todo:
            rep.rows += _forecast_1d_day(ctx, grids, day, horizon, refresh_only=day in redo and day not in days)
            rep.units += 1
            ctx.bar.update(1)
        if days:
            with ctx.engine.begin() as conn:
                set_state(conn, ctx.sid, "forecast_1d", days[-1] + 1, version)


def _forecast_1d_day(ctx: TaskContext, grids: dict[tuple[int, int], fc.Grid], day: int, horizon: int,
                     refresh_only: bool) -> int:
    f = st.forecast_day
    steps = fc.step_times(day)
    n = 0
    version = ctx.version("forecast_1d")
    for key, grid in grids.items():
        observed = fc.ten_minute_means(grid, fc.TARGET_1D, day, fc.STEPS_1D)
        observed = np.where(steps + fc.ISSUE_EVERY_S <= horizon, observed, np.nan)
        where = [f.c.site_id == ctx.sid, f.c.target == fc.TARGET_1D, f.c.bank_id == key[0], f.c.rack_id == key[1],
                 f.c.time == day]
        if refresh_only:
            with ctx.engine.begin() as conn:
                conn.execute(sa.update(f).where(*where).values(observed=clean(observed)))
            continue
        values = fc.forecast_1day(grid, day, ctx.tz, with_prophet=ctx.with_prophet)
        default, lower, upper = _default_1d(ctx, key, day, values)
        row = {"site_id": ctx.sid, "target": fc.TARGET_1D, "bank_id": key[0], "rack_id": key[1], "time": day,
               "values": clean({"time": [int(s) for s in steps], **values}), "observed": clean(observed),
               "lower": clean(lower), "upper": clean(upper), "default_model": default, "version": version}
        with ctx.engine.begin() as conn:
            replace_rows(conn, f, where, [row])
        n += 1
    return n


def _default_1d(ctx: TaskContext, key: tuple[int, int], day: int, values: dict[str, np.ndarray]
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
        v, o = json_value(vals), json_value(obs)
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
