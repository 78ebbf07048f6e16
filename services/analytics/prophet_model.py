"""Prophet behind one small function: quiet logs, a fixed seed for its sampled intervals,
and naive local datetimes (so daily seasonality follows the site's clock)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd


def _quiet() -> None:
    from cmdstanpy.utils import get_logger

    get_logger()  # cmdstanpy adds its INFO handler on first use: create it now, then quieten it
    for name in ("cmdstanpy", "prophet", "prophet.plot"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        logger.propagate = False
        for handler in logger.handlers:
            handler.setLevel(logging.ERROR)


def fit_predict(ds: pd.Series | pd.DatetimeIndex, y: np.ndarray, future: pd.Series | pd.DatetimeIndex, *,
                daily: bool = False, weekly: bool = False, yearly: bool = False, interval_width: float = 0.8,
                uncertainty_samples: int = 0, seed: int = 0, growth: str = "linear") -> pd.DataFrame:
    """Fit Prophet (trend `growth`: linear or flat) on (ds, y) and predict at `future`
    (naive datetimes).

    Returns `yhat` and, when uncertainty_samples > 0, `yhat_lower`/`yhat_upper`. The global
    numpy random state is restored afterwards, so the call is reproducible and side-effect
    free."""
    from prophet import Prophet

    _quiet()
    train = pd.DataFrame({"ds": pd.to_datetime(np.asarray(ds)), "y": np.asarray(y, dtype=float)}).dropna()
    kwargs: dict[str, Any] = {"growth": growth, "daily_seasonality": daily, "weekly_seasonality": weekly,
                              "yearly_seasonality": yearly, "interval_width": interval_width,
                              "uncertainty_samples": uncertainty_samples}
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        model = Prophet(**kwargs)
        model.fit(train)
        fc = model.predict(pd.DataFrame({"ds": pd.to_datetime(np.asarray(future))}))
    finally:
        np.random.set_state(state)
    cols = ["yhat", "yhat_lower", "yhat_upper"] if uncertainty_samples else ["yhat"]
    return fc[cols].reset_index(drop=True)
