"""Forecasts on regular per-rack grids, with rolling-origin backtests.

Grid: per rack, 1-minute means (from the per-minute rollups), one row per minute. A value
labelled T is the mean over [T - 1 min, T), so it is known at T. Gaps stay NaN; inputs
(not targets) are carried forward at most FFILL_LIMIT minutes, from the past only.

10 minutes ahead (targets max/min cell voltage, max/min cell temperature, SoS): issued at
every multiple of 10 minutes t, for the value labelled t + 10 min. A forecast issued at t
reads grid values labelled <= t only; the learned models are trained on earlier days only.

* persistence: y(t) (the last value);
* drift: y(t) + 10 x the least-squares slope of y over [t - 10 min, t];
* seasonal_naive: y(t + 10 min - 24 h);
* daily_profile: mean of y at t + 10 min - k days, k = 1..PROFILE_DAYS;
* prophet: fitted once per rack, target and local day on the trailing PROPHET_WINDOW_DAYS
  of 5-minute means before the day: daily seasonality on a flat trend, no regressors (a
  linear trend fitted on three days and carried a day ahead was off by up to a volt on
  generated data); its curve gives the change over the horizon, anchored on the last
  value: y(t) + P(t + 10 min) - P(t) (its level a day after the fit was 10x worse than
  persistence);
* ridge: closed-form ridge on the change y(t + 10) - y(t) with lags, slope, current,
  current², 10-minute mean current, SoC, time of day of the target, and the dispatch
  schedule as a known-future input: the typical current at the target time (per-minute
  median over earlier days), its change from now, and the daily-profile and
  seasonal-naive changes over the horizon; trained on up to TRAIN_DAYS earlier days, the
  penalty chosen on the last earlier day.

Prediction intervals (80 %): the forecast plus the 10 % and 90 % quantiles of the model's
own past errors (the last RESIDUAL_WINDOW issues whose target is already observed, at
least MIN_RESIDUALS), widened if needed to contain the forecast. The default model at
issue t is the one with the lowest error relative to persistence on the same origins
over the last DEFAULT_WINDOW issues with a known target (at least MIN_DEFAULT_RESIDUALS;
persistence until then, and on ties).

1 day ahead (max cell voltage): issued at each local midnight for the 144 10-minute means
of the day; persistence (last 10-minute mean), seasonal_naive (the previous day),
daily_profile (mean of up to PROFILE_DAYS earlier days) and prophet (trailing 7 days).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

FORMULA_VERSION = "forecast-1.1"
TARGETS: tuple[str, ...] = ("max_cell_voltage", "min_cell_voltage", "max_cell_temperature", "min_cell_temperature",
                            "sos")
TARGET_COLUMNS: dict[str, str] = {"max_cell_voltage": "RACK_MAX_CELL_VOLTAGE",
                                  "min_cell_voltage": "RACK_MIN_CELL_VOLTAGE",
                                  "max_cell_temperature": "RACK_MAX_CELL_TEMPERATURE",
                                  "min_cell_temperature": "RACK_MIN_CELL_TEMPERATURE"}
EXOG_COLUMNS: dict[str, str] = {"current": "RACK_CURRENT", "soc": "RACK_SOC"}
MODELS: tuple[str, ...] = ("persistence", "drift", "seasonal_naive", "daily_profile", "prophet", "ridge")
MODELS_1D: tuple[str, ...] = ("persistence", "seasonal_naive", "daily_profile", "prophet")
TARGET_1D = "max_cell_voltage"

STEP_S = 60
HORIZON_STEPS = 10
HORIZON_S = HORIZON_STEPS * STEP_S
ISSUE_EVERY_S = 600
DAY_S = 86_400
DAY_STEPS = DAY_S // STEP_S
STEPS_1D = DAY_S // ISSUE_EVERY_S
PROFILE_DAYS = 7
TRAIN_DAYS = 7
HISTORY_DAYS = PROFILE_DAYS + TRAIN_DAYS  # grid history a day's forecasts read
FFILL_LIMIT = 5
DRIFT_WINDOW = 10
MIN_DRIFT_POINTS = 6
PROPHET_WINDOW_DAYS = 3
PROPHET_RESAMPLE_S = 300
PROPHET_MIN_POINTS = 144  # 12 hours of 5-minute means
PROPHET_WINDOW_DAYS_1D = 7
INTERVAL_Q = (0.1, 0.9)
RESIDUAL_WINDOW = 288  # issues (two days at one per 10 minutes) whose errors set the intervals
MIN_RESIDUALS = 12
DEFAULT_WINDOW = 1008  # issues (seven days) over which the default model is chosen
MIN_DEFAULT_RESIDUALS = 144  # a model needs a day of errors before it can become the default
RESIDUAL_DAYS_1D = 7
RIDGE_LAMBDAS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
RIDGE_DEFAULT_LAMBDA = 1.0  # when there is no earlier day to choose it on: lean on the prior "no change"
RIDGE_CHANGE_MARGIN = 1.5  # predicted changes are clipped to this x the largest change seen in training
RIDGE_MIN_ROWS = 120
CLIP: dict[str, tuple[float, float]] = {"sos": (0.0, 1.0)}


def version() -> str:
    return FORMULA_VERSION


# ----- grids ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Grid:
    """One rack's regular 1-minute grid: `labels` (epoch s, step 60) and one array per
    column; `tod` is the local minute of day of each minute's start."""

    labels: np.ndarray
    columns: dict[str, np.ndarray]
    tod: np.ndarray

    @property
    def start(self) -> int:
        return int(self.labels[0])

    def pos(self, label: np.ndarray | int) -> np.ndarray:
        return (np.asarray(label, dtype=np.int64) - self.start) // STEP_S

    def with_column(self, name: str, values: np.ndarray) -> Grid:
        return Grid(self.labels, {**self.columns, name: values}, self.tod)


def local_minutes(epoch_s: np.ndarray, tz: ZoneInfo | str) -> np.ndarray:
    """Local minute of day (0..1439) of each epoch second."""
    local = pd.to_datetime(np.asarray(epoch_s, dtype=np.int64), unit="s", utc=True).tz_convert(tz)
    return (local.hour * 60 + local.minute).to_numpy(dtype=np.int64)


def make_grid(minutes: pd.DataFrame, first_label: int, last_label: int, tz: ZoneInfo | str) -> Grid:
    """A rack's grid from per-minute rows (`bucket` = minute start, epoch s, and one
    column per series), over labels first_label..last_label inclusive."""
    labels = np.arange(first_label, last_label + STEP_S, STEP_S, dtype=np.int64)
    frame = minutes.assign(label=minutes["bucket"].to_numpy(dtype=np.int64) + STEP_S).set_index("label")
    frame = frame.loc[~frame.index.duplicated(keep="last")].reindex(labels)
    cols = {c: frame[c].to_numpy(dtype=float) for c in minutes.columns if c not in ("bucket", "bank_id", "rack_id")}
    return Grid(labels, cols, local_minutes(labels - STEP_S, tz))


def _take(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """values[pos], NaN where pos is outside the array."""
    pos = np.asarray(pos, dtype=np.int64)
    ok = (pos >= 0) & (pos < values.size)
    out = np.full(pos.shape, np.nan)
    out[ok] = values[pos[ok]]
    return out


def _ffill(values: np.ndarray, limit: int = FFILL_LIMIT) -> np.ndarray:
    return pd.Series(values).ffill(limit=limit).to_numpy()


def _slope(y_in: np.ndarray, pos: np.ndarray, window: int = DRIFT_WINDOW) -> np.ndarray:
    """Least-squares slope (per step) of y over [pos - window, pos]; NaN with too few points."""
    x = np.arange(-window, 1, dtype=float)
    w = _take(y_in, pos[:, None] + x[None, :].astype(np.int64))
    m = ~np.isnan(w)
    n = m.sum(axis=1)
    xs = np.where(m, x[None, :], 0.0)
    ys = np.where(m, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = xs.sum(axis=1) / n
        ym = ys.sum(axis=1) / n
        dx = np.where(m, x[None, :] - xm[:, None], 0.0)
        slope = (dx * (ys - ym[:, None] * m)).sum(axis=1) / (dx * dx).sum(axis=1)
    return np.where(n >= MIN_DRIFT_POINTS, slope, np.nan)


def _lagged(values: np.ndarray, pos: np.ndarray, days: int, how: str = "mean") -> np.ndarray:
    """Mean (or median) of values at pos - k days, k = 1..days (NaN if none)."""
    stack = np.column_stack([_take(values, pos - k * DAY_STEPS) for k in range(1, days + 1)])
    return _nanmedian(stack, axis=1) if how == "median" else _nanmean(stack, axis=1)


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; NaN (without a warning) where a slice has no value."""
    n = (~np.isnan(a)).sum(axis=axis)
    total = np.nansum(a, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are meant to give NaN
        return np.asarray(np.nanmedian(a, axis=axis))


# ----- the 10-minute models ------------------------------------------------------------

def baseline_forecasts(grid: Grid, target: str, origins: np.ndarray) -> dict[str, np.ndarray]:
    """persistence, drift, seasonal_naive and daily_profile at the origins (epoch s)."""
    y = grid.columns[target]
    y_in = _ffill(y)
    p = grid.pos(origins)
    t = p + HORIZON_STEPS
    last = _take(y_in, p)
    return {
        "persistence": last,
        "drift": last + HORIZON_STEPS * _slope(y_in, p),
        "seasonal_naive": _take(y, t - DAY_STEPS),
        "daily_profile": _lagged(y, t, PROFILE_DAYS),
    }


BASE_FEATURES: tuple[str, ...] = (
    "level", "d1", "d5", "d10", "slope10", "current", "current2", "current_mean10", "current_d1", "soc",
    "tod_sin", "tod_cos", "tod_sin2", "tod_cos2", "sched_current", "sched_change", "sched_change2", "sched_now_gap",
    "profile_change", "seasonal_change", "mean30_gap")
STATE_NAMES_1M = ("charge", "discharge", "rest")
SOC_KNOTS = np.arange(0.0, 100.0, 10.0)
FEATURES: tuple[str, ...] = (
    *(f"{f}*{s}" for s in STATE_NAMES_1M for f in BASE_FEATURES), *STATE_NAMES_1M,
    "charge_end_in_horizon", "discharge_end_in_horizon", "charge_end*current", "discharge_end*current",
    *(f"soc_hat{int(k)}*current" for k in SOC_KNOTS))
STATE_DEADBAND_A = 2.0  # as ExSoS: |current| at or below this is rest
MIN_SOC_RATE = 0.05  # % per 10 minutes: slower than this, no end of charge/discharge is projected


def _base_features(grid: Grid, target: str, pos: np.ndarray) -> np.ndarray:
    """The BASE_FEATURES at origins `pos` (targets pos + 10)."""
    y = grid.columns[target]
    y_in = _ffill(y)
    cur = _ffill(grid.columns["current"])
    soc = _ffill(grid.columns["soc"])
    t = pos + HORIZON_STEPS
    level = _take(y_in, pos)
    i_now = _take(cur, pos)
    i_mean10 = _nanmean(np.column_stack([_take(cur, pos - k) for k in range(10)]), axis=1)
    tod_t = (grid.tod[0] + t) % DAY_STEPS if grid.tod.size else t % DAY_STEPS  # local minute of the target
    tod_t = tod_t.astype(float)
    ang = 2.0 * math.pi * tod_t / DAY_STEPS
    sched_t = _lagged(cur, t, PROFILE_DAYS, how="median")
    sched_p = _lagged(cur, pos, PROFILE_DAYS, how="median")
    sched_t = np.where(np.isnan(sched_t), i_now, sched_t)
    sched_p = np.where(np.isnan(sched_p), i_now, sched_p)
    prof_change = _lagged(y, t, PROFILE_DAYS) - _lagged(y, pos, PROFILE_DAYS)
    seas_change = _take(y, t - DAY_STEPS) - _take(y, pos - DAY_STEPS)
    return np.column_stack([
        level, level - _take(y_in, pos - 1), level - _take(y_in, pos - 5), level - _take(y_in, pos - 10),
        HORIZON_STEPS * _slope(y_in, pos), i_now, i_now * i_now, i_mean10, i_now - _take(cur, pos - 1),
        _take(soc, pos), np.sin(ang), np.cos(ang), np.sin(2 * ang), np.cos(2 * ang),
        sched_t, sched_t - i_now, sched_t * sched_t - i_now * i_now, sched_p - i_now,
        np.nan_to_num(prof_change, nan=0.0), np.nan_to_num(seas_change, nan=0.0),
        level - _take(pd.Series(y_in).rolling(30, min_periods=10).mean().to_numpy(), pos),
    ])


def ridge_features(grid: Grid, target: str, pos: np.ndarray) -> np.ndarray:
    """(n, len(FEATURES)) features at grid positions `pos` (origins), for targets pos+10.

    The base features (lags, drift slope, current, current², SoC, time of day of the
    target, the typical dispatch current at the target time and the profile changes) are
    interacted with the state now (charge/discharge/rest), so each regime gets its own
    linear model. Two schedule features project the end of the charge (discharge) from the
    SoC rate to the highest (lowest) SoC of the last 24 h, and SoC hat functions times the
    current stand in for the slope of the OCV curve. Without earlier days the schedule and
    profile features are imputed as "no change"."""
    base = _base_features(grid, target, pos)
    cur = _ffill(grid.columns["current"])
    soc = _ffill(grid.columns["soc"])
    i_now = _take(cur, pos)
    state = np.where(i_now > STATE_DEADBAND_A, 0, np.where(i_now < -STATE_DEADBAND_A, 1, 2))
    onehot = np.column_stack([(state == k).astype(float) for k in range(3)])
    s_now = _take(soc, pos)
    rate = s_now - _take(soc, pos - HORIZON_STEPS)
    series = pd.Series(soc)
    s_max = _take(series.rolling(DAY_STEPS, min_periods=60).max().to_numpy(), pos)
    s_min = _take(series.rolling(DAY_STEPS, min_periods=60).min().to_numpy(), pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        to_end_c = np.where((state == 0) & (rate > MIN_SOC_RATE), (s_max - s_now) / rate * HORIZON_STEPS, np.inf)
        to_end_d = np.where((state == 1) & (rate < -MIN_SOC_RATE), (s_now - s_min) / -rate * HORIZON_STEPS, np.inf)
    end_c = np.clip((HORIZON_STEPS - np.nan_to_num(to_end_c, nan=np.inf)) / HORIZON_STEPS, 0.0, 1.0)
    end_d = np.clip((HORIZON_STEPS - np.nan_to_num(to_end_d, nan=np.inf)) / HORIZON_STEPS, 0.0, 1.0)
    hats = np.clip(1.0 - np.abs(s_now[:, None] - SOC_KNOTS[None, :]) / 10.0, 0.0, 1.0)
    return np.column_stack([
        *(base * onehot[:, [k]] for k in range(3)), onehot,
        end_c, end_d, end_c * i_now, end_d * i_now, hats * i_now[:, None],
    ])


@dataclass(frozen=True)
class RidgeModel:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    lam: float
    rows: int
    max_change: float = np.inf

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The predicted change over the horizon, clipped to the range seen in training."""
        raw = np.asarray(((x - self.mean) / self.scale) @ self.coef + self.intercept)
        return np.clip(raw, -self.max_change, self.max_change)


def _solve(z: np.ndarray, y: np.ndarray, lams: tuple[float, ...]) -> list[tuple[np.ndarray, float]]:
    """(coef, intercept) on features `z` for each penalty (penalty x rows; intercept free):
    one Gram matrix, one small solve per penalty."""
    n = len(y)
    zm = z.mean(axis=0)
    ym = float(y.mean())
    zc = z - zm
    gram = np.einsum("ij,ik->jk", zc, zc) / n  # einsum, not BLAS: its threads thrash on a busy 2-core host
    rhs = np.einsum("ij,i->j", zc, y - ym) / n
    eye = np.eye(z.shape[1])
    out = []
    for lam in lams:
        coef = np.linalg.solve(gram + lam * eye, rhs)
        out.append((coef, ym - float(zm @ coef)))
    return out


def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float) -> RidgeModel:
    """Closed-form ridge on standardised features (penalty lam x rows; intercept free)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    (coef, intercept), = _solve((x - mean) / scale, y, (lam,))
    return RidgeModel(mean, scale, coef, intercept, lam, len(y), RIDGE_CHANGE_MARGIN * float(np.max(np.abs(y))))


def train_ridge(grid: Grid, target: str, day_start: int) -> RidgeModel | None:
    """Ridge trained on every minute origin of up to TRAIN_DAYS days before `day_start`
    whose target is observed by then; None with fewer than RIDGE_MIN_ROWS rows. The
    penalty is chosen on the last earlier day (fitted on the days before it) when both
    parts hold RIDGE_MIN_ROWS rows."""
    lo = max(grid.start, day_start - TRAIN_DAYS * DAY_S)
    origins = np.arange(lo, day_start - HORIZON_S + 1, STEP_S, dtype=np.int64)
    if origins.size == 0:
        return None
    pos = grid.pos(origins)
    x = ridge_features(grid, target, pos)
    y = grid.columns[target]
    d = _take(y, pos + HORIZON_STEPS) - _take(_ffill(y), pos)
    ok = ~np.isnan(x).any(axis=1) & ~np.isnan(d)
    x, d, origins = x[ok], d[ok], origins[ok]
    if len(d) < RIDGE_MIN_ROWS:
        return None
    lam = RIDGE_DEFAULT_LAMBDA
    valid = origins >= day_start - DAY_S
    if (~valid).sum() >= RIDGE_MIN_ROWS and valid.sum() >= RIDGE_MIN_ROWS:
        mean = x[~valid].mean(axis=0)
        scale = x[~valid].std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        fits = _solve((x[~valid] - mean) / scale, d[~valid], RIDGE_LAMBDAS)
        zv = (x[valid] - mean) / scale
        errors = [float(np.mean(np.abs(zv @ c + b - d[valid]))) for c, b in fits]
        lam = RIDGE_LAMBDAS[int(np.argmin(errors))]
    return fit_ridge(x, d, lam)


def ridge_forecasts(grid: Grid, target: str, origins: np.ndarray, model: RidgeModel | None) -> np.ndarray:
    if model is None:
        return np.full(origins.shape, np.nan)
    pos = grid.pos(origins)
    x = ridge_features(grid, target, pos)
    out = np.full(origins.shape, np.nan)
    ok = ~np.isnan(x).any(axis=1)
    out[ok] = _take(_ffill(grid.columns[target]), pos[ok]) + model.predict(x[ok])
    return out


def _naive_local(epoch_s: np.ndarray, tz: ZoneInfo | str) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(epoch_s, dtype=np.int64), unit="s", utc=True).tz_convert(tz).tz_localize(None)


def prophet_forecasts(grid: Grid, target: str, day_start: int, predict_at: np.ndarray, tz: ZoneInfo | str,
                      window_days: int = PROPHET_WINDOW_DAYS, resample_s: int = PROPHET_RESAMPLE_S
                      ) -> np.ndarray | None:
    """Prophet fitted on the trailing window of `resample_s` means before `day_start`,
    predicted at the instants `predict_at` (epoch s: the middle of each target's
    averaging interval); None when the window holds too little."""
    from services.analytics.prophet_model import fit_predict

    lo = max(grid.start, day_start - window_days * DAY_S)
    sel = (grid.labels > lo) & (grid.labels <= day_start)
    y = grid.columns[target][sel]
    labels = grid.labels[sel]
    if labels.size == 0:
        return None
    buckets = (labels - STEP_S) // resample_s * resample_s
    means = pd.Series(y).groupby(buckets).mean().dropna()
    if len(means) < PROPHET_MIN_POINTS * 300 // resample_s:
        return None
    if float(means.std()) < 1e-12:  # a constant series: Prophet adds nothing but cost
        return np.full(predict_at.shape, float(means.iloc[-1]))
    span_days = (means.index[-1] - means.index[0]) / DAY_S
    ds = _naive_local(means.index.to_numpy() + resample_s // 2, tz)  # centre of each bucket
    fc = fit_predict(ds, means.to_numpy(), _naive_local(predict_at, tz), daily=span_days >= 0.9, growth="flat")
    return fc["yhat"].to_numpy()


@dataclass
class IssuedForecasts:
    """Forecasts of one target for one rack at some origins."""

    origins: np.ndarray
    values: dict[str, np.ndarray]
    observed: np.ndarray
    fit_seconds: dict[str, float] = field(default_factory=dict)


def prophet_day_curve(grid: Grid, target: str, day_start: int, tz: ZoneInfo | str) -> np.ndarray | None:
    """Prophet (fitted before the day) at the labels day_start + 10 min x k, k = 0..144
    (each at the middle of its minute), for the day's 10-minute issues; None when the
    trailing window holds too little."""
    labels = day_start + ISSUE_EVERY_S * np.arange(STEPS_1D + 1, dtype=np.int64)
    return prophet_forecasts(grid, target, day_start, labels - STEP_S // 2, tz)


def forecast_10min(grid: Grid, target: str, origins: np.ndarray, day_start: int,
                   prophet_curve: np.ndarray | None = None, ridge: RidgeModel | None = None) -> IssuedForecasts:
    """Every model at `origins` (epoch s, 10-minute marks inside the local day starting at
    `day_start`).

    `prophet_curve` is `prophet_day_curve` of the day (fitted before it); `ridge` a model
    trained before the day."""
    values = baseline_forecasts(grid, target, origins)
    values["prophet"] = np.full(origins.shape, np.nan)
    if prophet_curve is not None:
        k = (np.asarray(origins, dtype=np.int64) - day_start) // ISSUE_EVERY_S
        values["prophet"] = values["persistence"] + prophet_curve[k + 1] - prophet_curve[k]
    values["ridge"] = ridge_forecasts(grid, target, origins, ridge)
    lo, hi = CLIP.get(target, (-np.inf, np.inf))
    values = {m: np.clip(values[m], lo, hi) for m in MODELS}
    observed = _take(grid.columns[target], grid.pos(origins) + HORIZON_STEPS)
    return IssuedForecasts(origins, values, observed)


# ----- intervals, default model, accuracy ----------------------------------------------

def _regular(frame: pd.DataFrame, step: int) -> pd.DataFrame:
    """Reindex on a regular `time` grid so that row shifts are time shifts."""
    times = frame["time"].to_numpy(dtype=np.int64)
    full = np.arange(times.min(), times.max() + step, step, dtype=np.int64)
    return frame.set_index("time").reindex(full)


def intervals_and_default(history: pd.DataFrame, models: tuple[str, ...] = MODELS, step: int = ISSUE_EVERY_S,
                          window: int = RESIDUAL_WINDOW, min_residuals: int = MIN_RESIDUALS,
                          default_window: int = DEFAULT_WINDOW, min_default: int = MIN_DEFAULT_RESIDUALS
                          ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Per row of `history` (columns time, observed and one per model, ascending time,
    one row per issue): interval bounds per model and the default model, from the
    errors of issues at least `step` earlier (their targets are observed by then).

    Returns (lower, upper, default) aligned with `history`'s rows."""
    reg = _regular(history, step)
    obs = reg["observed"]
    lower: dict[str, np.ndarray] = {}
    upper: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    err_p = (obs - reg["persistence"]).abs()
    for m in models:
        pred = reg[m]
        resid = obs - pred
        roll = resid.rolling(window, min_periods=min_residuals)
        q_lo = roll.quantile(INTERVAL_Q[0]).shift(1)
        q_hi = roll.quantile(INTERVAL_Q[1]).shift(1)
        lower[m] = (pred + np.minimum(q_lo, 0.0)).to_numpy()
        upper[m] = (pred + np.maximum(q_hi, 0.0)).to_numpy()
        common = (resid.notna() & err_p.notna()).astype(float)
        a = (resid.abs().fillna(0.0) * common).rolling(default_window, min_periods=1).sum().shift(1)
        b = (err_p.fillna(0.0) * common).rolling(default_window, min_periods=1).sum().shift(1)
        n = common.rolling(default_window, min_periods=1).sum().shift(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(b > 0, a / b, np.where(a > 0, np.inf, 1.0))
        score = np.where((n >= min_default) & pred.notna().to_numpy(), score, np.nan)
        scores[m] = score
    stack = np.column_stack([scores[m] for m in models])
    if "persistence" in models:
        stack[:, models.index("persistence")] = np.where(reg["persistence"].notna(), 1.0, np.nan)
    filled = np.where(np.isnan(stack), np.inf, stack)
    best = np.argmin(filled, axis=1)  # first minimum: models' order breaks ties
    default = np.where(np.isinf(filled.min(axis=1)), "persistence", np.asarray(models, dtype=object)[best])
    keep = np.isin(reg.index.to_numpy(), history["time"].to_numpy())
    return ({m: v[keep] for m, v in lower.items()}, {m: v[keep] for m, v in upper.items()}, default[keep])


def accuracy(observed: np.ndarray, values: dict[str, np.ndarray], baseline: str = "persistence",
             seasonal: str = "seasonal_naive") -> list[dict[str, object]]:
    """MAE, RMSE and count per model, MASE = MAE relative to the baseline on the origins
    where both forecast, and the same relative to seasonal-naive. Sorted by MASE."""
    obs = np.asarray(observed, dtype=float)
    out = []
    base = np.asarray(values.get(baseline, np.full(obs.shape, np.nan)), dtype=float)
    seas = np.asarray(values.get(seasonal, np.full(obs.shape, np.nan)), dtype=float)
    for m, pred in values.items():
        p = np.asarray(pred, dtype=float)
        ok = ~np.isnan(obs) & ~np.isnan(p)
        err = p[ok] - obs[ok]
        row: dict[str, object] = {"model": m, "count": int(ok.sum()),
                                  "mae": float(np.mean(np.abs(err))) if ok.any() else None,
                                  "rmse": float(np.sqrt(np.mean(err * err))) if ok.any() else None}
        row["mase"] = _relative(obs, p, base)
        row["relative_mae_seasonal_naive"] = _relative(obs, p, seas)
        out.append(row)
    return out


def _relative(obs: np.ndarray, pred: np.ndarray, base: np.ndarray) -> float | None:
    ok = ~np.isnan(obs) & ~np.isnan(pred) & ~np.isnan(base)
    if not ok.any():
        return None
    denom = float(np.abs(base[ok] - obs[ok]).sum())
    num = float(np.abs(pred[ok] - obs[ok]).sum())
    if denom == 0.0:
        return 1.0 if num == 0.0 else None
    return num / denom


def best_model(rows: list[dict[str, object]], order: tuple[str, ...] = MODELS) -> str:
    """The model with the lowest MASE (persistence on ties or when nothing is comparable)."""
    best, best_score = "persistence", 1.0
    for m in order:
        row = next((r for r in rows if r["model"] == m), None)
        score = row.get("mase") if row else None
        if isinstance(score, float) and score < best_score - 1e-12:
            best, best_score = m, score
    return best


# ----- 1 day ahead ---------------------------------------------------------------------

def ten_minute_means(grid: Grid, column: str, first_step: int, steps: int) -> np.ndarray:
    """Means over [s, s + 10 min) for s = first_step + 600 k, k < steps (NaN if empty)."""
    pos0 = grid.pos(first_step + STEP_S)  # the minute labelled s + 1 min is the first in the step
    idx = pos0 + np.arange(steps * 10, dtype=np.int64)
    return _nanmean(_take(grid.columns[column], idx).reshape(steps, 10), axis=1)


def forecast_1day(grid: Grid, day_start: int, tz: ZoneInfo | str, with_prophet: bool = True
                  ) -> dict[str, np.ndarray]:
    """The four 1-day models for the 144 ten-minute steps of the day starting at
    `day_start`, from grid values before it."""
    col = TARGET_1D
    prev = ten_minute_means(grid, col, day_start - DAY_S * PROFILE_DAYS, STEPS_1D * PROFILE_DAYS)
    days = prev.reshape(PROFILE_DAYS, STEPS_1D)  # oldest first
    last = ten_minute_means(grid, col, day_start - ISSUE_EVERY_S, 1)[0]
    profile = _nanmean(days, axis=0)
    out = {"persistence": np.full(STEPS_1D, last), "seasonal_naive": days[-1].copy(), "daily_profile": profile,
           "prophet": np.full(STEPS_1D, np.nan)}
    if with_prophet:
        steps = day_start + ISSUE_EVERY_S * np.arange(STEPS_1D, dtype=np.int64)
        pred = prophet_forecasts(grid, col, day_start, steps + ISSUE_EVERY_S // 2, tz,
                                 window_days=PROPHET_WINDOW_DAYS_1D, resample_s=ISSUE_EVERY_S)
        if pred is not None:
            out["prophet"] = pred
    return out


def step_times(day_start: int) -> np.ndarray:
    return day_start + ISSUE_EVERY_S * np.arange(STEPS_1D, dtype=np.int64)


def local_day_starts(start_s: int, end_s: int, tz: ZoneInfo | str) -> list[int]:
    """Epoch seconds of every local midnight m with start_s <= m < end_s, plus the
    midnight on or before start_s first."""
    zone = ZoneInfo(str(tz)) if not isinstance(tz, ZoneInfo) else tz
    first = datetime.fromtimestamp(start_s, zone).date()
    out = []
    day = first
    while True:
        m = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
        if m >= end_s:
            break
        out.append(m)
        day = day + timedelta(days=1)
    return out
