"""Forecasts on 1-minute grids: no look-ahead (a forecast issued at t is unchanged when
every value after t is perturbed), exact horizons and steps, intervals that contain the
forecast, and backtest metrics recomputed independently."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from services.analytics import forecast as fc
from services.analytics.sos import RACK_INPUT_COLUMNS, compute_sos, sos_parameters
from services.core.registry import Bank, demo_sites
from services.demo.writer import generate_day
from services.protection.maps import load_protection_map

ANCHOR = date(2022, 9, 1)
SITE = dataclasses.replace(demo_sites()[0], banks=(Bank(1, (1,)),), demo_anchor=ANCHOR)
TZ = SITE.timezone
DAYS = 3


def midnight(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=SITE.tz).timestamp())


@lru_cache(maxsize=1)
def minutes() -> pd.DataFrame:
    """1-minute means of the forecast targets and inputs of one rack over DAYS days."""
    params = sos_parameters(load_protection_map(SITE))
    parts = []
    for k in range(DAYS):
        raw = generate_day(SITE, ANCHOR + timedelta(days=k), seed=7, anchor=ANCHOR)["rack"]
        raw = raw.drop_duplicates(["TIMESTAMP", "BANK_ID", "RACK_ID"], keep="last")
        t = raw["TIMESTAMP"].astype("int64").to_numpy() // 10**9
        sos = compute_sos({n: raw[c].to_numpy(dtype=float) for n, c in RACK_INPUT_COLUMNS.items()}, params)
        frame = pd.DataFrame({"bucket": t // 60 * 60, "sos": sos["sos_score"].to_numpy()})
        for target, col in {**fc.TARGET_COLUMNS, **fc.EXOG_COLUMNS}.items():
            frame[target] = raw[col].to_numpy(dtype=float)
        parts.append(frame.groupby("bucket").mean().reset_index())
    return pd.concat(parts, ignore_index=True)


def grid() -> fc.Grid:
    m = minutes()
    return fc.make_grid(m, int(m["bucket"].min()) + 60, int(m["bucket"].max()) + 60, TZ)


def perturbed_after(g: fc.Grid, t: int) -> fc.Grid:
    """The same grid with every value labelled after t replaced by garbage or gaps."""
    rng = np.random.default_rng(1)
    later = g.labels > t
    cols = {}
    for name, values in g.columns.items():
        v = values.copy()
        v[later] = np.where(rng.random(later.sum()) < 0.2, np.nan, v[later] * 1.5 + 100.0)
        cols[name] = v
    return fc.Grid(g.labels, cols, g.tod)


def test_grid_labels_are_minute_ends_and_gaps_stay_gaps() -> None:
    g = grid()
    m = minutes()
    assert (np.diff(g.labels) == 60).all()
    assert g.labels[0] == midnight(ANCHOR) + 60  # the mean over [00:00, 00:01) is labelled 00:01
    three = midnight(ANCHOR) + 3 * 3600 + 60  # 03:00:00-03:00:09 are missing: the minute is still there
    assert g.columns["max_cell_voltage"][g.pos(three)] == m.loc[m["bucket"] == three - 60, "max_cell_voltage"].iloc[0]
    assert g.tod[g.pos(midnight(ANCHOR) + 10 * 3600 + 60)] == 600


def test_horizon_is_exactly_ten_minutes_and_baselines_read_the_right_minutes() -> None:
    g = grid()
    day = midnight(ANCHOR + timedelta(days=2))
    origins = np.arange(day, day + 86_400, fc.ISSUE_EVERY_S, dtype=np.int64)
    issued = fc.forecast_10min(g, "max_cell_voltage", origins, day)
    y = g.columns["max_cell_voltage"]
    p = g.pos(origins)
    ok = p + 10 < y.size
    assert np.array_equal(issued.observed[ok], y[p[ok] + 10], equal_nan=True)  # the value labelled t + 10 min
    assert np.array_equal(issued.values["persistence"], pd.Series(y).ffill(limit=5).to_numpy()[p], equal_nan=True)
    assert np.array_equal(issued.values["seasonal_naive"], y[p + 10 - 1440], equal_nan=True)
    profile = (y[p + 10 - 1440] + y[p + 10 - 2880]) / 2  # two earlier days
    assert np.allclose(issued.values["daily_profile"], profile, equal_nan=True)
    t = origins[60]  # drift: the least-squares slope over the 11 minutes up to t, times 10
    window = y[g.pos(t) - 10:g.pos(t) + 1]
    slope = np.polyfit(np.arange(-10, 1), window, 1)[0]
    assert issued.values["drift"][60] == pytest.approx(window[-1] + 10 * slope, abs=1e-9)


def test_a_forecast_issued_at_t_uses_no_sample_after_t() -> None:
    g = grid()
    day = midnight(ANCHOR + timedelta(days=2))
    origins = day + fc.ISSUE_EVERY_S * np.array([6, 61, 80, 100, 143], dtype=np.int64)
    for target in ("max_cell_voltage", "max_cell_temperature", "sos"):
        ridge = fc.train_ridge(g, target, day)
        assert ridge is not None
        curve = fc.prophet_day_curve(g, target, day, TZ) if target != "sos" else None
        for t in origins:
            bad = perturbed_after(g, int(t))
            if curve is not None and t == origins[0]:  # fitted before the day: later data cannot reach it
                again = fc.prophet_day_curve(bad, target, day, TZ)
                assert again is not None and np.array_equal(curve, again) and curve.shape == (145,)
            ref = fc.forecast_10min(g, target, np.array([t]), day, curve, ridge)
            got = fc.forecast_10min(bad, target, np.array([t]), day, curve, fc.train_ridge(bad, target, day))
            for model in fc.MODELS:
                assert np.array_equal(ref.values[model], got.values[model], equal_nan=True), (target, t, model)
            assert not np.isnan(ref.values["ridge"]).any()
            assert curve is None or not np.isnan(ref.values["prophet"]).any()


def test_the_day_ahead_forecast_uses_no_sample_of_its_day() -> None:
    g = grid()
    day = midnight(ANCHOR + timedelta(days=2))
    ref = fc.forecast_1day(g, day, TZ)
    got = fc.forecast_1day(perturbed_after(g, day), day, TZ)
    for model in fc.MODELS_1D:
        assert ref[model].shape == (fc.STEPS_1D,)
        assert np.array_equal(ref[model], got[model], equal_nan=True), model
    steps = fc.step_times(day)
    assert steps[0] == day and (np.diff(steps) == 600).all() and steps.size == 144
    y = g.columns["max_cell_voltage"]
    means = fc.ten_minute_means(g, "max_cell_voltage", day - 86_400, 144)  # yesterday's 10-minute means
    assert np.allclose(ref["seasonal_naive"], means, equal_nan=True)
    first = g.pos(day - 86_400 + 60)
    assert means[0] == pytest.approx(np.mean(y[first:first + 10]), abs=1e-12)  # minutes 00:01 ... 00:10
    assert (ref["persistence"] == means[-1] * 0 + fc.ten_minute_means(g, "max_cell_voltage", day - 600, 1)[0]).all()


def _history(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    obs = np.cumsum(rng.normal(0, 1, n))
    frame = pd.DataFrame({"time": 600 * np.arange(n, dtype=np.int64), "observed": obs})
    frame["persistence"] = np.concatenate([[np.nan], obs[:-1]])
    for m, noise in (("drift", 0.5), ("seasonal_naive", 3.0), ("daily_profile", 2.0), ("prophet", 5.0),
                     ("ridge", 0.3)):
        frame[m] = obs + rng.normal(0, noise, n)
    frame.loc[frame.index[::17], "ridge"] = np.nan
    return frame


def test_intervals_contain_the_forecast_and_use_only_known_errors() -> None:
    hist = _history(400)
    lower, upper, default = fc.intervals_and_default(hist)
    for m in fc.MODELS:
        ok = ~np.isnan(lower[m])
        assert ok.sum() > 300
        assert (lower[m][ok] <= hist[m].to_numpy()[ok]).all() and (hist[m].to_numpy()[ok] <= upper[m][ok]).all()
        assert np.isnan(lower[m][:fc.MIN_RESIDUALS]).all()  # no interval before MIN_RESIDUALS errors are known
    # row i uses the errors of issues before it only: perturbing the later rows changes nothing up to i
    i = 250
    bad = hist.copy()
    bad.loc[i:, ["observed", *fc.MODELS]] += 1000.0
    lower2, upper2, default2 = fc.intervals_and_default(bad)
    for m in fc.MODELS:  # the offsets from the forecast are the same (up to rounding at +1000)
        for ref, got in ((lower, lower2), (upper, upper2)):
            assert np.allclose(ref[m][:i + 1] - hist[m].to_numpy()[:i + 1],
                               got[m][:i + 1] - bad[m].to_numpy()[:i + 1], atol=1e-9, equal_nan=True)
    assert list(default[:i + 1]) == list(default2[:i + 1])
    # the interval of row i: its forecast plus the 10 % / 90 % quantiles of the previous RESIDUAL_WINDOW errors
    resid = (hist["observed"] - hist["drift"]).to_numpy()[max(0, i - fc.RESIDUAL_WINDOW):i]
    assert lower["drift"][i] == pytest.approx(hist["drift"].iat[i] + min(np.quantile(resid, 0.1), 0), abs=1e-12)
    assert upper["drift"][i] == pytest.approx(hist["drift"].iat[i] + max(np.quantile(resid, 0.9), 0), abs=1e-12)
    # the default is persistence until a model has MIN_DEFAULT_RESIDUALS errors, then the best one
    assert set(default[:fc.MIN_DEFAULT_RESIDUALS]) == {"persistence"}
    assert default[-1] == "ridge" or (default[-1] == "drift" and np.isnan(hist["ridge"].iat[-1]))


def _metrics_by_hand(obs: list[float], pred: list[float], base: list[float]) -> tuple[float, float, float]:
    pairs = [(o, p) for o, p in zip(obs, pred, strict=True) if not (math.isnan(o) or math.isnan(p))]
    mae = sum(abs(p - o) for o, p in pairs) / len(pairs)
    rmse = math.sqrt(sum((p - o) ** 2 for o, p in pairs) / len(pairs))
    common = [(o, p, b) for o, p, b in zip(obs, pred, base, strict=True) if not any(map(math.isnan, (o, p, b)))]
    mase = sum(abs(p - o) for o, p, _ in common) / sum(abs(b - o) for o, _, b in common)
    return mae, rmse, mase


def test_accuracy_metrics_match_a_hand_computation() -> None:
    hist = _history(300, seed=9)
    rows = {r["model"]: r for r in fc.accuracy(hist["observed"].to_numpy(),
                                               {m: hist[m].to_numpy() for m in fc.MODELS})}
    obs = hist["observed"].tolist()
    for m in fc.MODELS:
        mae, rmse, mase = _metrics_by_hand(obs, hist[m].tolist(), hist["persistence"].tolist())
        assert rows[m]["mae"] == pytest.approx(mae, rel=1e-12)
        assert rows[m]["rmse"] == pytest.approx(rmse, rel=1e-12)
        assert rows[m]["mase"] == pytest.approx(mase, rel=1e-12)
    assert rows["persistence"]["mase"] == 1.0 and rows["ridge"]["count"] == 300 - len(range(0, 300, 17))
    assert fc.best_model(list(rows.values())) == "ridge"
    flat = fc.accuracy(np.ones(5), {"persistence": np.ones(5), "drift": np.ones(5) * 1.1})
    assert [r["mase"] for r in flat] == [1.0, None]  # no skill ratio when persistence is perfect
    assert fc.best_model(flat) == "persistence"


def test_ridge_is_trained_on_earlier_days_only() -> None:
    g = grid()
    first_day = midnight(ANCHOR)
    assert fc.train_ridge(g, "max_cell_voltage", first_day) is None  # nothing before the first day
    day = midnight(ANCHOR + timedelta(days=2))
    model = fc.train_ridge(g, "max_cell_voltage", day)
    assert model is not None and model.rows <= 2 * 1440 and model.lam in fc.RIDGE_LAMBDAS
    assert model.coef.shape == (len(fc.FEATURES),)
    same = fc.train_ridge(perturbed_after(g, day), "max_cell_voltage", day)
    assert same is not None and np.array_equal(model.coef, same.coef)
