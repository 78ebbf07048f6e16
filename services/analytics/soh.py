"""SoH, SoL and the SoL forecast.

* Daily mean SoH per bank and rack: the mean of the BMS's SoH over the samples of each
  local day (from the per-minute rollups: exact sums and counts).
* SoL = 5 (SoH - 80) %: SoH 100 ↦ 100, SoH 80 (end of life) ↦ 0.
* SoL forecast per bank: Prophet with a linear trend on the daily SoL series (yearly
  seasonality once two years of history exist), daily for HORIZON_DAYS, its 80 %
  uncertainty interval as top/bottom limits; the end-of-life date is the first forecast
  day with SoL <= 0. With fewer than MIN_TREND_DAYS days of history a trend cannot be
  told from noise: the interval is then widened to at least the band between no fade at
  all and a fast fade of PRIOR_MAX_FADE_SOH_PER_YEAR (typical Li-ion ESS fade is 1-3 SoH
  %/year), and the summary says how many days the fit saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from services.analytics.prophet_model import fit_predict

FORMULA_VERSION = "sol-1.0"
EOL_SOH = 80.0
HORIZON_DAYS = 3653  # ten years
MIN_TREND_DAYS = 90
PRIOR_MAX_FADE_SOH_PER_YEAR = 4.0
INTERVAL_WIDTH = 0.8
SOH_DECIMALS = 6
UNCERTAINTY_SAMPLES = 200


def sol_from_soh(soh_pct: np.ndarray | float) -> np.ndarray:
    """SoL % of SoH %: 5 (SoH - 80)."""
    return 5.0 * (np.asarray(soh_pct, dtype=float) - EOL_SOH)


def end_of_life_date(dates: list[date] | pd.Index, sol_pct: np.ndarray) -> date | None:
    """First date whose SoL is at or below 0, None if there is none."""
    hit = np.flatnonzero(np.asarray(sol_pct, dtype=float) <= 0.0)
    return None if hit.size == 0 else pd.Timestamp(list(dates)[int(hit[0])]).date()


@dataclass(frozen=True)
class SolForecast:
    rows: pd.DataFrame  # date, value, top_limit_value, bottom_limit_value, observed
    fitted_days: int
    first_date: date
    last_date: date
    end_of_life_date: date | None
    trend_sol_per_year: float | None
    model: str
    note: str


def forecast_sol(daily_soh: pd.Series, horizon_days: int = HORIZON_DAYS) -> SolForecast:
    """Observed SoL days followed by the forecast (see the module docstring).

    `daily_soh` is indexed by date (one value per local day, gaps allowed)."""
    s = daily_soh.dropna().sort_index()
    if s.empty:
        raise ValueError("no SoH days to forecast from")
    dates = [pd.Timestamp(d).date() for d in s.index]
    sol = sol_from_soh(s.to_numpy())
    last = dates[-1]
    future = [last + timedelta(days=k) for k in range(1, horizon_days + 1)]
    ahead = np.arange(1, horizon_days + 1, dtype=float)
    n = len(dates)
    if n >= 2:
        fc = fit_predict(pd.to_datetime(dates), sol, pd.to_datetime(future), yearly=n >= 730,
                         interval_width=INTERVAL_WIDTH, uncertainty_samples=UNCERTAINTY_SAMPLES)
        value, top, bottom = (fc[c].to_numpy() for c in ("yhat", "yhat_upper", "yhat_lower"))
        model = "prophet"
    else:
        value = np.full(horizon_days, sol[-1])
        top, bottom = value.copy(), value.copy()
        model = "flat"
    note = f"fitted on {n} day(s) of SoH from {dates[0]} to {last}"
    if n < MIN_TREND_DAYS:
        fade = 5.0 * PRIOR_MAX_FADE_SOH_PER_YEAR / 365.25
        top = np.maximum(top, sol[-1])
        bottom = np.minimum(bottom, sol[-1] - fade * ahead)
        note += (f"; fewer than {MIN_TREND_DAYS} days: the trend is not identifiable, the interval is widened to "
                 f"the band between no fade and {PRIOR_MAX_FADE_SOH_PER_YEAR} SoH-%/year")
    observed = pd.DataFrame({"date": dates, "value": sol, "top_limit_value": np.nan, "bottom_limit_value": np.nan,
                             "observed": True})
    forecast = pd.DataFrame({"date": future, "value": value, "top_limit_value": top, "bottom_limit_value": bottom,
                             "observed": False})
    slope = float((value[min(364, horizon_days - 1)] - value[0]) * 365.0 / min(364, horizon_days - 1)) \
        if horizon_days > 1 else None
    return SolForecast(pd.concat([observed, forecast], ignore_index=True), n, dates[0], last,
                       end_of_life_date(future, value), slope, model, note)


def daily_means(minutes: pd.DataFrame, tz: str, value_column: str = "sum", count_column: str = "cnt",
                keys: tuple[str, ...] = ("bank_id", "rack_id")) -> pd.DataFrame:
    """Daily means per key from per-minute sums and counts (`bucket` in epoch seconds):
    columns *keys, date, value, samples. Days are local days of `tz`."""
    if minutes.empty:
        return pd.DataFrame(columns=[*keys, "date", "value", "samples"])
    local = pd.to_datetime(minutes["bucket"].to_numpy(), unit="s", utc=True).tz_convert(tz)
    f = minutes.assign(date=local.date)
    g = f.groupby([*keys, "date"], sort=True).agg(total=(value_column, "sum"), samples=(count_column, "sum"))
    g = g.loc[g["samples"] > 0]
    g["value"] = (g["total"] / g["samples"]).round(SOH_DECIMALS)  # sums of sums differ in the last bits
    return g.reset_index()[[*keys, "date", "value", "samples"]]
