"""Grouping events into alarm episodes (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.protection.codes import EPISODE_KEY, ERROR_CODES

# ----- episodes (pure) ---------------------------------------------------------------------------

@dataclass
class EpisodeChanges:
    """What a batch of events does to the episodes: rows to insert, open ones to extend."""

    inserts: pd.DataFrame
    updates: pd.DataFrame  # id, end_time, peak_value, sample_count


LOW_PEAK_CODES = frozenset(c.id for c in ERROR_CODES.values() if c.peak == "min")


def _peak(values: pd.Series, codes: pd.Series) -> pd.Series:
    """Values signed so that the peak is always the maximum (negated for under-limit codes)."""
    return values.where(~codes.isin(LOW_PEAK_CODES), -values)


def group_episodes(events: pd.DataFrame, open_episodes: pd.DataFrame, gap_s: int) -> EpisodeChanges:
    """Group events into episodes, continuing the open ones.

    `events` has EPISODE_KEY, timestamp and value; `open_episodes` has id, EPISODE_KEY,
    start_time, end_time, peak_value and sample_count (at most one per key). An event joins
    the episode of its key when it follows the previous event of that key by at most gap_s.
    """
    ev = events[[*EPISODE_KEY, "timestamp", "value"]].copy()
    ev["seed"] = np.nan
    seeds = open_episodes.rename(columns={"end_time": "timestamp"})
    seeds = seeds.assign(value=np.nan, seed=seeds["id"].astype(float))[[*EPISODE_KEY, "timestamp", "value", "seed"]]
    rows = pd.concat([seeds, ev], ignore_index=True) if len(seeds) else ev
    rows = rows.sort_values([*EPISODE_KEY, "timestamp", "seed"], kind="stable", na_position="last",
                            ignore_index=True)
    same_key = np.ones(len(rows), dtype=bool)
    for column in EPISODE_KEY:
        values = rows[column].to_numpy()
        same_key[1:] &= values[1:] == values[:-1]
    same_key[0] = False
    ts = rows["timestamp"].to_numpy(dtype=np.int64)
    starts = ~same_key
    starts[1:] |= (ts[1:] - ts[:-1]) > gap_s
    rows["episode"] = np.cumsum(starts)
    rows["signed"] = _peak(rows["value"], rows["error_code"])
    rows["is_event"] = rows["seed"].isna()
    grouped = rows.groupby("episode", sort=False)
    agg = grouped.agg(**{c: (c, "first") for c in EPISODE_KEY}, start_time=("timestamp", "min"),
                      end_time=("timestamp", "max"), signed=("signed", "max"), sample_count=("is_event", "sum"),
                      seed=("seed", "first"))
    agg = agg[agg["sample_count"] > 0]
    agg["peak_value"] = _peak(agg["signed"], agg["error_code"])
    fresh = agg[agg["seed"].isna()]
    inserts = fresh[[*EPISODE_KEY, "start_time", "end_time", "peak_value", "sample_count"]].reset_index(drop=True)
    seeded = agg[agg["seed"].notna()]
    if not len(seeded):
        return EpisodeChanges(inserts, pd.DataFrame(columns=["id", "end_time", "peak_value", "sample_count"]))
    old = open_episodes[["id", "peak_value", "sample_count"]].assign(seed=open_episodes["id"].astype(float))
    extended = seeded.merge(old, on="seed", suffixes=("", "_old"))
    updates = pd.DataFrame({
        "id": extended["id"].astype(np.int64),
        "end_time": extended["end_time"],
        "peak_value": _combine_peaks(extended),
        "sample_count": extended["sample_count"] + extended["sample_count_old"],
    })
    return EpisodeChanges(inserts, updates)


def _combine_peaks(extended: pd.DataFrame) -> pd.Series:
    old, new = extended["peak_value_old"], extended["peak_value"]
    both = pd.concat([old, new], axis=1)
    return both.min(axis=1).where(extended["error_code"].isin(LOW_PEAK_CODES), both.max(axis=1))
