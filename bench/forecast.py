"""Forecast benchmark (issue #5). Prints:

(a) the rolling-origin backtest of every 10-minute model per target: MAE, RMSE and MASE
    (MAE relative to persistence on the same origins) pooled over the racks, on the
    forecasts the job stored for generated data (--days days of site --site, racks
    --racks), from the third day on (so every model has two earlier days), plus the
    served default model (each issue's `default_model`, chosen from earlier errors only);
(b) the 1-day max-cell-voltage forecast: MAE of each model and relative to the mean daily
    profile of earlier days;
(c) fit and predict time per rack and target (ridge, Prophet, the baselines);
(d) the time the job takes to bring one site-day of analytics up to date for a 17-rack
    site (site 2, --site-day; the day after one day of history), per task;
(e) when lightgbm is importable (it is not a dependency), the same backtest for a small
    gradient-boosted model on the ridge's features.

    .venv/bin/python bench/forecast.py [--site 1] [--racks 1,2,3,4] [--days 10] [--no-site-day]
                                       [--db-dir DIR]

Data go through the same path as the demo: generated frames written to SQLite (rack and
bank tables), per-minute rollups, then `analyze_site`. With --db-dir the databases are
kept and reused. Timings are wall-clock on the 2-core development box.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from services.analytics import forecast as fc  # noqa: E402
from services.analytics import results  # noqa: E402
from services.analytics.forecast_tasks import read_minute_grid  # noqa: E402
from services.analytics.jobs import analyze_site, summarise_reports  # noqa: E402
from services.core.appschema import open_app_db  # noqa: E402
from services.core.registry import Bank, Site, demo_sites  # noqa: E402
from services.demo.writer import generate_day  # noqa: E402
from services.storage.engines import dispose_engines  # noqa: E402
from services.storage.rollups import catch_up  # noqa: E402
from services.storage.sitestore import SiteStore  # noqa: E402

ANCHOR = date(2022, 9, 1)


def make_site(base_id: int, racks: tuple[int, ...] | None, path: Path) -> Site:
    base = {s.id: s for s in demo_sites()}[base_id]
    banks = base.banks if racks is None else (Bank(base.banks[0].id, racks),)
    return dataclasses.replace(base, banks=banks, database_url=f"sqlite:///{path}", demo_anchor=ANCHOR)


def write_days(site: Site, days: int) -> float:
    """Generated rack and bank rows for `days` days (skipped when already there)."""
    store = SiteStore(site)
    store.create_schema()
    t0 = time.perf_counter()
    for k in range(days):
        day = ANCHOR + timedelta(days=k)
        start = datetime.combine(day, datetime.min.time(), tzinfo=site.tz)
        if _has_rows(store, start):
            continue
        frames = generate_day(site, day, seed=7, anchor=ANCHOR)
        for component in ("rack", "bank"):
            store.write_frame(component, frames[component])
        print(f"  wrote {day} ({time.perf_counter() - t0:.0f} s)", flush=True)
    for component in ("rack", "bank"):
        catch_up(store, component, create=True)
    return time.perf_counter() - t0


def _has_rows(store: SiteStore, start: datetime) -> bool:
    import sqlalchemy as sa

    table = store.table("rack")
    ts = next(c for c in table.columns if c.name.upper() == "TIMESTAMP")
    with store.engine.connect() as conn:
        return conn.execute(sa.select(ts).where(ts >= start, ts < start + timedelta(hours=1)).limit(1)).first() \
            is not None


def local(site: Site, day_offset: int) -> int:
    return int(datetime.combine(ANCHOR + timedelta(days=day_offset), datetime.min.time(), tzinfo=site.tz).timestamp())


def backtest_table(app: Any, site: Site, days: int) -> list[dict[str, Any]]:
    """Pooled metrics per target and model over the stored forecasts issued from day 3 on."""
    window = results.Window(local(site, 2), local(site, days))
    out = []
    for target in fc.TARGETS:
        observed: list[float] = []
        values: dict[str, list[float]] = {m: [] for m in (*fc.MODELS, "served")}
        for bank in site.banks:
            rows = results.list_forecasts(app, results.Scope(site, bank.id), target, window)
            for r in rows:
                v = r["values"]
                observed.append(np.nan if v["observed"] is None else v["observed"])
                for m in fc.MODELS:
                    values[m].append(np.nan if v[m] is None else v[m])
                served = v[r["default_model"]]
                values["served"].append(np.nan if served is None else served)
        arrays = {m: np.array(x, dtype=float) for m, x in values.items()}
        for row in fc.accuracy(np.array(observed, dtype=float), arrays):
            out.append({"target": target, **row})
    return out


def day_ahead_table(app: Any, site: Site, days: int) -> list[dict[str, Any]]:
    window = results.Window(local(site, 2), local(site, days))
    observed: list[float] = []
    values: dict[str, list[float]] = {m: [] for m in fc.MODELS_1D}
    for bank in site.banks:
        for r in results.list_forecasts_1d(app, results.Scope(site, bank.id), window):
            v = r["values"]
            observed += [np.nan if x is None else x for x in v["observed"]]
            for m in fc.MODELS_1D:
                values[m] += [np.nan if x is None else x for x in v[m]]
    arrays = {m: np.array(x, dtype=float) for m, x in values.items()}
    obs = np.array(observed, dtype=float)
    rows = fc.accuracy(obs, arrays, baseline="daily_profile")
    return rows


def fit_times(app: Any, store: SiteStore, days: int) -> list[dict[str, Any]]:
    """Per target: seconds to train ridge, fit + predict Prophet, and compute the baselines
    for one rack-day (the last day), plus the 1-day forecast."""
    from services.analytics.bookkeeping import TaskContext, task_versions

    site = store.site
    ctx = TaskContext(app, store, site, None, None, None, task_versions(site), None)
    day = local(site, days - 1)
    grids = read_minute_grid(ctx, day - fc.HISTORY_DAYS * fc.DAY_S, day + fc.DAY_S)
    grid = grids[site.rack_keys[0]]
    origins = np.arange(day, day + fc.DAY_S, fc.ISSUE_EVERY_S, dtype=np.int64)
    out = []
    for target in fc.TARGETS:
        t0 = time.perf_counter()
        ridge = fc.train_ridge(grid, target, day)
        t1 = time.perf_counter()
        prophet = fc.prophet_day_curve(grid, target, day, site.timezone)
        t2 = time.perf_counter()
        fc.forecast_10min(grid, target, origins, day, prophet, ridge)
        t3 = time.perf_counter()
        out.append({"target": target, "ridge_fit_s": t1 - t0, "prophet_fit_predict_s": t2 - t1,
                    "all_models_predict_s": t3 - t2, "ridge_rows": ridge.rows if ridge else 0})
    t0 = time.perf_counter()
    fc.forecast_1day(grid, day, site.timezone)
    out.append({"target": "max_cell_voltage (1 day)", "ridge_fit_s": 0.0, "prophet_fit_predict_s": 0.0,
                "all_models_predict_s": time.perf_counter() - t0, "ridge_rows": 0})
    return out


def lightgbm_table(app: Any, store: SiteStore, days: int) -> list[dict[str, Any]] | None:
    """(e) what a small gradient-boosted model would add: LightGBM on the ridge's
    features and target (the 10-minute change), trained like the ridge on up to seven
    earlier days, evaluated on the same origins (day 3 on). None without lightgbm."""
    try:
        import lightgbm as lgb
    except ImportError:
        return None
    from services.analytics.bookkeeping import TaskContext, task_versions

    site = store.site
    ctx = TaskContext(app, store, site, None, None, None, task_versions(site), None)
    grids = read_minute_grid(ctx, local(site, 0), local(site, days))
    out = []
    for target in fc.TARGETS:
        obs_all, pers_all, ridge_all, boost_all = [], [], [], []
        fit_s = 0.0
        for grid in grids.values():
            for k in range(2, days):
                day = local(site, k)
                lo = max(grid.start, day - fc.TRAIN_DAYS * fc.DAY_S)
                train = np.arange(lo, day - fc.HORIZON_S + 1, fc.STEP_S, dtype=np.int64)
                pos = grid.pos(train)
                x = fc.ridge_features(grid, target, pos)
                y = grid.columns[target]
                d = fc._take(y, pos + fc.HORIZON_STEPS) - fc._take(fc._ffill(y), pos)
                ok = ~np.isnan(x).any(axis=1) & ~np.isnan(d)
                t0 = time.perf_counter()
                params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 40,
                          "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.8, "num_threads": 1,
                          "verbosity": -1, "seed": 7}
                model = lgb.train(params, lgb.Dataset(x[ok], d[ok]), num_boost_round=200)
                fit_s += time.perf_counter() - t0
                origins = np.arange(day, day + fc.DAY_S, fc.ISSUE_EVERY_S, dtype=np.int64)
                p = grid.pos(origins)
                xo = fc.ridge_features(grid, target, p)
                good = ~np.isnan(xo).any(axis=1)
                level = fc._take(fc._ffill(y), p)
                boost = np.full(origins.shape, np.nan)
                boost[good] = level[good] + model.predict(xo[good])
                issued = fc.forecast_10min(grid, target, origins, day, None, fc.train_ridge(grid, target, day))
                obs_all.append(issued.observed)
                pers_all.append(issued.values["persistence"])
                ridge_all.append(issued.values["ridge"])
                boost_all.append(boost)
        rows = fc.accuracy(np.concatenate(obs_all), {"persistence": np.concatenate(pers_all),
                                                     "ridge": np.concatenate(ridge_all),
                                                     "lightgbm": np.concatenate(boost_all)})
        for r in rows:
            out.append({"target": target, **r, "fit_s_per_rack_day": fit_s / (len(grids) * (days - 2))
                        if r["model"] == "lightgbm" else None})
    return out


def print_table(rows: list[dict[str, Any]], columns: list[str], fmt: dict[str, str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c), fmt.get(c, ""))) for r in rows)) for c in columns}
    print("| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(c), fmt.get(c, "")).ljust(widths[c]) for c in columns) + " |")


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return format(value, spec or ".4g")
    return str(value)


def site_day(folder: Path) -> None:
    """(d): the job for one day of a 17-rack site, after one day of history."""
    site = make_site(2, None, folder / "site2_full.sqlite")
    print(f"\n(d) one site-day for site 2 ({len(site.rack_keys)} racks): writing 2 days ...", flush=True)
    write_days(site, 2)
    app = open_app_db(f"sqlite:///{folder / 'app_site_day.sqlite'}")
    history_end = datetime.combine(ANCHOR + timedelta(days=1), datetime.min.time(), tzinfo=site.tz)
    t0 = time.perf_counter()
    analyze_site(app, SiteStore(site), end=history_end, rebuild=True)
    print(f"  day 1 (history): {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    reports = analyze_site(app, SiteStore(site))
    total = time.perf_counter() - t0
    print("  day 2, bringing everything up to date (includes the forecast issued at the next midnight, whose "
          "models are fitted then):")
    print("\n".join("    " + line for line in summarise_reports(reports)))
    print(f"  total {total:.1f} s for one site-day (target: 10-minute forecasts of a 17-rack site-day < 600 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=int, default=1)
    parser.add_argument("--racks", default="1,2,3,4", help="comma list of rack ids of bank 1 ('all' for every rack)")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--no-site-day", action="store_true", help="skip (d)")
    parser.add_argument("--db-dir", type=Path, help="keep the databases here and reuse them")
    args = parser.parse_args()
    folder = args.db_dir or Path(tempfile.mkdtemp(prefix="ess-bench-forecast-"))
    folder.mkdir(parents=True, exist_ok=True)
    racks = None if args.racks == "all" else tuple(int(r) for r in args.racks.split(","))
    site = make_site(args.site, racks, folder / f"site{args.site}_{args.racks.replace(',', '-')}.sqlite")
    try:
        print(f"site {site.id}, racks {[r for _, r in site.rack_keys]}, {args.days} days from {ANCHOR} "
              f"(generated, seed 7); folder {folder}", flush=True)
        write_days(site, args.days)
        app = open_app_db(f"sqlite:///{folder / 'app_backtest.sqlite'}")
        t0 = time.perf_counter()
        reports = analyze_site(app, SiteStore(site), rebuild=True)
        elapsed = time.perf_counter() - t0
        print("\n".join("  " + line for line in summarise_reports(reports)))
        rack_days = len(site.rack_keys) * args.days
        print(f"  job: {elapsed:.1f} s for {rack_days} rack-days ({elapsed / rack_days:.2f} s per rack-day)")

        print(f"\n(a) 10 minutes ahead on 1-minute means, issues from day 3 to day {args.days} "
              "(MASE = MAE / persistence MAE on the same origins; 'served' = each issue's default model)")
        table = backtest_table(app, site, args.days)
        print_table(table, ["target", "model", "count", "mae", "rmse", "mase", "relative_mae_seasonal_naive"],
                    {"mase": ".3f", "relative_mae_seasonal_naive": ".3f"})

        print("\n(b) 1 day ahead, max cell voltage, 10-minute means (relative = MAE / daily-profile MAE)")
        print_table(day_ahead_table(app, site, args.days), ["model", "count", "mae", "rmse", "mase"],
                    {"mase": ".3f"})

        print("\n(c) fit and predict time for one rack-day (seconds)")
        print_table(fit_times(app, SiteStore(site), args.days),
                    ["target", "ridge_rows", "ridge_fit_s", "prophet_fit_predict_s", "all_models_predict_s"],
                    {"ridge_fit_s": ".3f", "prophet_fit_predict_s": ".3f", "all_models_predict_s": ".3f"})
        boosted = lightgbm_table(app, SiteStore(site), args.days)
        if boosted is None:
            print("\n(e) lightgbm is not installed: no gradient-boosted comparison")
        else:
            print("\n(e) a small LightGBM (200 trees, 15 leaves) on the ridge's features, same origins")
            print_table(boosted, ["target", "model", "count", "mae", "mase", "fit_s_per_rack_day"],
                        {"mase": ".3f", "fit_s_per_rack_day": ".2f"})
        if not args.no_site_day:
            site_day(folder)
    finally:
        dispose_engines()
        if args.db_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
