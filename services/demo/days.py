"""The demo's days: checks of an aware range, the local days it covers and the rows of a
day's frame inside it (shared by the writer, the live loop and the anomaly list)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from services.core.errors import InvalidQuery
from services.core.registry import Site


def check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidQuery("start and end must be aware datetimes (with a time zone)", code="naive_datetime")
    if start >= end:
        raise InvalidQuery(f"start {start.isoformat()} is not before end {end.isoformat()}", code="empty_range")


def local_days(site: Site, start: datetime, end: datetime) -> list[date]:
    first = start.astimezone(site.tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(site.tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def slice_range(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows with start <= TIMESTAMP < end (frames are sorted by time)."""
    ts = frame["TIMESTAMP"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    lo = int(np.searchsorted(ts, pd.Timestamp(start).value, side="left"))
    hi = int(np.searchsorted(ts, pd.Timestamp(end).value, side="left"))
    if lo == 0 and hi == len(frame):
        return frame
    return frame.iloc[lo:hi].reset_index(drop=True)
