"""Protection-map monitoring: events, alarm episodes and their queries.

Two sources of events, one error-code table (reference study §3.3, codes 1-14):

* `threshold`: every rack sample judged against the site's protection map by the eight
  checks of reference §3.2 (over/under-voltage, voltage gap, charge and discharge
  over-current on the *absolute* current split by its sign, over/under-temperature,
  temperature gap). Level 1 = warning, 2 = fault; one rule everywhere: an event when the
  value is strictly beyond the limit. Each check carries the BMS code of the same
  condition (over-voltage -> 6, ...), so both sources share codes.
* `bms`: every BMS warning/fault flag that is set in a rack row (codes 1-13), and the
  master-rack communication fault of a bank row (code 14, rack_id 0), including the
  per-rack flags of site 1 and the JSON object of sites 2/3.

Events are grouped into episodes per (site, bank, rack, error code, level, source): an
episode starts at an event and goes on while the next event follows within the quiet gap
(ESS_EPISODE_GAP_S, default 60 s); it keeps start, end (time of its last event), peak
value and sample count. An episode is open while a later run may still extend it.

Evaluation is incremental: a watermark per (site, component) holds the newest TIMESTAMP
judged; a run reads only newer rows, in time windows of about CHUNK_ROWS rows, and commits
events, per-minute event counts, episodes and the watermark of each window in one
transaction (compare-and-set on the watermark, so two evaluators cannot judge the same rows
twice). The database filters each window with the least strict limit of every check and
"flag set" (set-based, in C), numpy assigns levels, codes and texts to the rows that pass;
nothing loops per sample in Python. Rows that arrive later with a TIMESTAMP at or before the
watermark are judged only after `rewind_site` (CLI: `ess evaluate --since`; the ingest
command does it for the files it loads). Routes call `refresh_site` to judge a small
backlog (live rows) before they read.

Not turned into events (no code in the original's table): the bank copies of the rack flags
(an OR over racks, which would double every rack event), RACK_MODULE_FAULT and the tray
voltage-imbalance warnings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from services.appdb import (
    protection_episode,
    protection_error_code,
    protection_event,
    protection_event_count,
    protection_level,
    protection_watermark,
)
from services.dialect import epoch_expr, from_epoch, to_epoch
from services.errors import EssError, InvalidQuery, NotFound, Unavailable
from services.protection_map import Limit, ProtectionMap, load_protection_map
from services.registry import Site
from services.stats import check_bucket_count
from services.storage import SiteStore
from services.telemetry import Cursor
from services.timeparse import TimeRange

if TYPE_CHECKING:
    from services.portal import Portal

log = logging.getLogger(__name__)

CHUNK_ROWS = 200_000  # rows per evaluation window (the window is this many seconds / entities)
READ_AHEAD = 2  # windows read concurrently with the judging of the previous one
ON_REQUEST_BACKLOG_S = 3600  # routes bring a site up to date themselves when it is at most this far behind
DEFAULT_GAP_S = 60
EVENT_PAGE_SIZE = 100
MAX_EVENT_PAGE_SIZE = 1000
MAX_MESSAGE_CHARS = 200

# ----- reference tables -------------------------------------------------------------------

LEVELS: dict[int, tuple[str, str]] = {1: ("경고", "warning"), 2: ("고장(보호)", "fault (protection)")}
_LEVEL_WORD = {1: ("경고", "warning"), 2: ("고장", "fault")}
SOURCES = ("threshold", "bms")


@dataclass(frozen=True)
class ErrorCode:
    id: int
    description: str  # Korean
    description_eng: str
    peak: str  # how an episode's peak is taken: "max", "min" or "" (no measured value)


ERROR_CODES: dict[int, ErrorCode] = {c.id: c for c in (
    ErrorCode(1, "랙 온도 불균형", "Rack temperature imbalance", "max"),
    ErrorCode(2, "랙 저온", "Rack under-temperature", "min"),
    ErrorCode(3, "랙 고온", "Rack over-temperature", "max"),
    ErrorCode(4, "랙 전압 불균형", "Rack voltage imbalance", "max"),
    ErrorCode(5, "랙 저전압", "Rack under-voltage", "min"),
    ErrorCode(6, "랙 과전압", "Rack over-voltage", "max"),
    ErrorCode(7, "랙 충전 과전류", "Rack charge over-current", "max"),
    ErrorCode(8, "랙 방전 과전류", "Rack discharge over-current", "min"),
    ErrorCode(9, "랙 충전 릴레이(+) 고장", "Rack charge relay (+) failure", ""),
    ErrorCode(10, "랙 방전 릴레이(-) 고장", "Rack discharge relay (-) failure", ""),
    ErrorCode(11, "랙 (-) 퓨즈 고장", "Rack fuse (-) failure", ""),
    ErrorCode(12, "랙 (+) 퓨즈 고장", "Rack fuse (+) failure", ""),
    ErrorCode(13, "트레이-랙 통신 이상", "Tray-rack communication error", ""),
    ErrorCode(14, "마스터 랙 BMS 통신 오류", "Master rack BMS communication error", "max"),
)}
BANK_CODE = 14  # the one bank-level code (rack_id 0)


@dataclass(frozen=True)
class Measure:
    """The measured value an event of a code carries, and where in the rack it was seen."""

    column: str
    unit: str
    decimals: int
    what_ko: str
    what_en: str
    positions: tuple[str, ...] = ()  # one position column, or (max position, min position) for a gap
    at_ko: str = ""
    at_en: str = ""


_VMAX_POS, _VMIN_POS = "RACK_MAX_CELL_VOLTAGE_POSITION", "RACK_MIN_CELL_VOLTAGE_POSITION"
_TMAX_POS, _TMIN_POS = "RACK_MAX_CELL_TEMPERATURE_POSITION", "RACK_MIN_CELL_TEMPERATURE_POSITION"
MEASURES: dict[int, Measure] = {
    1: Measure("RACK_CELL_TEMPERATURE_GAP", "°C", 1, "셀 온도 편차", "cell temperature gap", (_TMAX_POS, _TMIN_POS),
               "센서", "sensor"),
    2: Measure("RACK_MIN_CELL_TEMPERATURE", "°C", 1, "최저 셀 온도", "min cell temperature", (_TMIN_POS,), "센서",
               "sensor"),
    3: Measure("RACK_MAX_CELL_TEMPERATURE", "°C", 1, "최고 셀 온도", "max cell temperature", (_TMAX_POS,), "센서",
               "sensor"),
    4: Measure("RACK_CELL_VOLTAGE_GAP", "V", 3, "셀 전압 편차", "cell voltage gap", (_VMAX_POS, _VMIN_POS), "셀",
               "cell"),
    5: Measure("RACK_MIN_CELL_VOLTAGE", "V", 3, "최소 셀 전압", "min cell voltage", (_VMIN_POS,), "셀", "cell"),
    6: Measure("RACK_MAX_CELL_VOLTAGE", "V", 3, "최대 셀 전압", "max cell voltage", (_VMAX_POS,), "셀", "cell"),
    7: Measure("RACK_CURRENT", "A", 1, "랙 전류", "rack current"),
    8: Measure("RACK_CURRENT", "A", 1, "랙 전류", "rack current"),
}


@dataclass(frozen=True)
class Check:
    """One threshold check of reference §3.2: a map field judged on one side of its limits.
    `sign` restricts it to positive (+1, charge) or negative (-1, discharge) values."""

    code: int
    field: str
    side: str  # "above" or "below"
    sign: int = 0


CHECKS: tuple[Check, ...] = (
    Check(6, "RACK_MAX_CELL_VOLTAGE", "above"),
    Check(5, "RACK_MIN_CELL_VOLTAGE", "below"),
    Check(4, "RACK_CELL_VOLTAGE_GAP", "above"),
    Check(7, "RACK_CURRENT", "above", sign=+1),
    Check(8, "RACK_CURRENT", "above", sign=-1),
    Check(3, "RACK_MAX_CELL_TEMPERATURE", "above"),
    Check(2, "RACK_MIN_CELL_TEMPERATURE", "below"),
    Check(1, "RACK_CELL_TEMPERATURE_GAP", "above"),
)

# rack BMS flags: column -> (error code, level)
RACK_FLAGS: dict[str, tuple[int, int]] = {
    "RACK_TEMPERATURE_IMBALANCE_WARNING": (1, 1), "RACK_TEMPERATURE_IMBALANCE_FAULT": (1, 2),
    "RACK_UNDER_TEMPERATURE_WARNING": (2, 1), "RACK_UNDER_TEMPERATURE_FAULT": (2, 2),
    "RACK_OVER_TEMPERATURE_WARNING": (3, 1), "RACK_OVER_TEMPERATURE_FAULT": (3, 2),
    "RACK_VOLTAGE_IMBALANCE_WARNING": (4, 1), "RACK_VOLTAGE_IMBALANCE_FAULT": (4, 2),
    "RACK_UNDER_VOLTAGE_PROTECTION_WARNING": (5, 1), "RACK_UNDER_VOLTAGE_PROTECTION_FAULT": (5, 2),
    "RACK_OVER_VOLTAGE_PROTECTION_WARNING": (6, 1), "RACK_OVER_VOLTAGE_PROTECTION_FAULT": (6, 2),
    "RACK_OVER_CURRENT_CHARGE_WARNING": (7, 1), "RACK_OVER_CURRENT_CHARGE_FAULT": (7, 2),
    "RACK_OVER_CURRENT_DISCHARGE_WARNING": (8, 1), "RACK_OVER_CURRENT_DISCHARGE_FAULT": (8, 2),
    "RACK_CHARGE_RELAY_PLUS_FAULT_STATUS": (9, 2),
    "RACK_DISCHARGE_RELAY_MINUS_FAULT_STATUS": (10, 2),
    "RACK_FUSE_MINUS_FAULT_STATUS": (11, 2),
    "RACK_FUSE_PLUS_FAULT_STATUS": (12, 2),
    "RACK_TRAY_RACK_COMMUNICATION_FAULT": (13, 2),
}
# bank columns of the master-rack communication fault (code 14)
MASTER_COMM = "MASTER_RACK_COMMUNICATION_FAULT"  # int flag (site 1) or JSON {"rack1": 0/1, ...} (sites 2/3)
RACK_TO_MASTER = "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS"  # sites 2/3
PER_RACK_COMM_PREFIX, PER_RACK_COMM_SUFFIX = "RACK_N", "_MASTER_RACK_COMMUNICATION_FAULT"  # site 1: RACK_N001_...

EVENT_COLUMNS = ["timestamp", "bank_id", "rack_id", "error_code", "level", "source", "value", "description",
                 "description_eng"]
EPISODE_KEY = ["bank_id", "rack_id", "error_code", "level", "source"]


# ----- judging rows (pure: frames in, events out) ------------------------------------------------

def _epochs(values: pd.Series) -> np.ndarray:
    """Epoch seconds of a TIMESTAMP column given as integers or datetimes."""
    if values.dtype.kind in "iuf":
        return values.to_numpy(dtype=np.int64)
    stamps = pd.to_datetime(values, utc=True)
    return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64 (NULL -> NaN); all NaN when the frame lacks it."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return np.asarray(frame[column].to_numpy(), dtype=np.float64)


def _sides(limit: Limit, side: str) -> tuple[float | None, float | None]:
    """(warning, fault) limit of one side."""
    if side == "above":
        return limit.warning_above, limit.fault_above
    return limit.warning_below, limit.fault_below


def _beyond(x: np.ndarray, bound: float | None, side: str) -> np.ndarray:
    """Strictly beyond the limit (NaN never is)."""
    if bound is None:
        return np.zeros(x.shape, dtype=bool)
    return x > bound if side == "above" else x < bound


def _part(frame: pd.DataFrame, idx: np.ndarray, code: int, level: np.ndarray | int, source: str,
          limit: np.ndarray | float = np.nan, racks: np.ndarray | None = None) -> pd.DataFrame:
    """Events of the rows `idx` for one code: the row's ids, the measured value and what the
    description needs (limit, positions, racks named)."""
    measure = MEASURES.get(code)
    positions = measure.positions if measure else ()

    def pick(column: str | None) -> np.ndarray:  # the rows of idx only: no full-length copies
        if column is None or column not in frame.columns:
            return np.full(idx.size, np.nan)
        return np.asarray(frame[column].to_numpy()[idx], dtype=np.float64)

    part = pd.DataFrame({
        "timestamp": _epochs(frame["TIMESTAMP"].iloc[idx]),
        "bank_id": np.asarray(frame["BANK_ID"].to_numpy()[idx], dtype=np.int64),
        "rack_id": (np.asarray(frame["RACK_ID"].to_numpy()[idx], dtype=np.int64) if "RACK_ID" in frame.columns
                    else np.zeros(idx.size, dtype=np.int64)),
        "error_code": np.full(idx.size, code, dtype=np.int64),
        "level": np.broadcast_to(np.asarray(level, dtype=np.int64), idx.shape),
        "source": source,
        "value": pick(measure.column if measure else None),
        "limit": np.broadcast_to(np.asarray(limit, dtype=np.float64), idx.shape),
        "pos_a": pick(positions[0] if positions else None),
        "pos_b": pick(positions[1] if len(positions) > 1 else None),
    })
    part["racks"] = racks if racks is not None else ""
    return part


def judge_thresholds(frame: pd.DataFrame, limits: Mapping[str, Limit]) -> list[pd.DataFrame]:
    """Threshold events of rack rows: each check of CHECKS whose field has a limit on its side.
    One full-length comparison per check (with its least strict limit); levels, signs and
    limits are then worked out on the few rows beyond it."""
    parts = []
    for check in CHECKS:
        limit = limits.get(check.field)
        if limit is None or check.field not in frame.columns:
            continue
        warning, fault = _sides(limit, check.side)
        bounds = [b for b in (warning, fault) if b is not None]
        if not bounds:
            continue
        v = _floats(frame, check.field)
        x = np.abs(v) if limit.absolute else v
        idx = _rows(_beyond(x, min(bounds) if check.side == "above" else max(bounds), check.side))
        if check.sign and idx.size:
            idx = idx[np.sign(v[idx]) == check.sign]
        if idx.size:
            level = np.where(_beyond(x[idx], fault, check.side), 2, 1)
            bound = np.where(level == 2, np.nan if fault is None else fault, np.nan if warning is None else warning)
            parts.append(_part(frame, idx, check.code, level, "threshold", bound))
    return parts


def _rows(mask: np.ndarray) -> np.ndarray:
    """Indices of the true rows (usually none: `any` first is much cheaper than nonzero)."""
    return np.flatnonzero(mask) if mask.any() else np.empty(0, dtype=np.int64)


def _set_rows(values: pd.Series) -> np.ndarray:
    """Rows whose flag is set (non-zero, not NULL)."""
    x = values.to_numpy()
    if x.dtype.kind in "iub":
        return _rows(x != 0)
    x = np.asarray(x, dtype=np.float64)
    return _rows((x != 0) & ~np.isnan(x))


def judge_rack_flags(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """BMS events of rack rows: one per flag that is set."""
    parts = []
    for column, (code, level) in RACK_FLAGS.items():
        if column not in frame.columns:
            continue
        idx = _set_rows(frame[column])
        if idx.size:
            parts.append(_part(frame, idx, code, level, "bms"))
    return parts


def _racks_of_json(texts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row of JSON objects {"rack1": 0/1, ...}: the rack ids set, as text, and how many."""
    codes, uniques = pd.factorize(texts.fillna(""), sort=False)
    names, counts = [], []
    for text in uniques:
        try:
            data = json.loads(text) if text else {}
        except (TypeError, ValueError):
            data = {}
        ids = sorted(int(k[4:]) for k, v in (data.items() if isinstance(data, dict) else ())
                     if str(k).lower().startswith("rack") and str(k)[4:].isdigit() and v)
        names.append(", ".join(map(str, ids)))
        counts.append(len(ids))
    return np.asarray(names, dtype=object)[codes], np.asarray(counts, dtype=np.int64)[codes]


def _racks_of_flags(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row of site-1 per-rack flags RACK_N001_...: the rack numbers set, as text, and how many."""
    columns = sorted(c for c in frame.columns
                     if c.startswith(PER_RACK_COMM_PREFIX) and c.endswith(PER_RACK_COMM_SUFFIX))
    if not columns:
        return np.full(len(frame), "", dtype=object), np.zeros(len(frame), dtype=np.int64)
    numbers = [int(c[len(PER_RACK_COMM_PREFIX):-len(PER_RACK_COMM_SUFFIX)]) for c in columns]
    bits = np.stack([np.nan_to_num(_floats(frame, c)) != 0 for c in columns], axis=1)
    patterns, inverse = np.unique(bits, axis=0, return_inverse=True)
    texts = np.asarray([", ".join(str(n) for n, on in zip(numbers, p, strict=True) if on) for p in patterns],
                       dtype=object)
    return texts[inverse.reshape(-1)], bits.sum(axis=1)


def judge_bank_rows(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Code-14 events of bank rows (rack_id 0): the master-rack communication fault as an int
    flag, per-rack flags (site 1) or a JSON object per rack (sites 2/3), or the rack-to-master
    communication alarm. The value is the number of racks named (NaN when none is)."""
    n = len(frame)
    if n == 0:
        return []
    flag = np.nan_to_num(_floats(frame, RACK_TO_MASTER)) != 0
    names, counts = _racks_of_flags(frame)
    if MASTER_COMM in frame.columns:
        master = frame[MASTER_COMM]
        if master.dtype == object:
            json_names, json_counts = _racks_of_json(master.astype(object).where(master.notna(), None))
            names = np.where(json_counts > 0, json_names, names)
            counts = np.maximum(counts, json_counts)
        else:
            flag |= np.nan_to_num(_floats(frame, MASTER_COMM)) != 0
    flag |= counts > 0
    idx = np.flatnonzero(flag)
    if not idx.size:
        return []
    part = _part(frame, idx, BANK_CODE, 2, "bms", racks=names[idx])
    part["value"] = np.where(counts[idx] > 0, counts[idx], np.nan)
    return [part]


def _number(values: pd.Series, decimals: int) -> pd.Series:
    return values.map(lambda v: "n/a" if pd.isna(v) else f"{v:.{decimals}f}")


def _integer(values: pd.Series) -> pd.Series:
    return values.map(lambda v: "" if pd.isna(v) else str(int(v)))


def _describe_group(part: pd.DataFrame, code: int, level: int, source: str) -> tuple[pd.Series, pd.Series]:
    """Korean and English texts of events sharing code, level and source."""
    ec = ERROR_CODES[code]
    word_ko, word_en = _LEVEL_WORD[level]
    m = MEASURES.get(code)
    if m is None:  # flags without a measured value (codes 9-14)
        racks = part["racks"].astype(str)
        named = racks != ""
        many = racks.str.contains(",")
        en = pd.Series(f"{ec.description_eng} (BMS flag)", index=part.index)
        ko = pd.Series(f"{ec.description} (BMS 플래그)", index=part.index)
        en = en.where(~named, ec.description_eng + ": rack" + many.map({True: "s ", False: " "}) + racks
                      + " (BMS flag)")
        ko = ko.where(~named, ec.description + ": 랙 " + racks + " (BMS 플래그)")
        return ko, en
    value = _number(part["value"], m.decimals) + part["value"].notna().map({True: f" {m.unit}", False: ""})
    head_ko = f"{ec.description} {word_ko}: {m.what_ko} " + value
    head_en = f"{ec.description_eng} {word_en}: {m.what_en} " + value
    if len(m.positions) == 1:
        p = _integer(part["pos_a"])
        has = p != ""
        head_ko = head_ko + (f", {m.at_ko} " + p + "번").where(has, "")
        head_en = head_en + (f" at {m.at_en} " + p).where(has, "")
    elif len(m.positions) == 2:
        hi, lo = _integer(part["pos_a"]), _integer(part["pos_b"])
        has = (hi != "") & (lo != "")
        head_ko = head_ko + (f", 최대 {m.at_ko} " + hi + f"번, 최소 {m.at_ko} " + lo + "번").where(has, "")
        head_en = head_en + (f", max at {m.at_en} " + hi + f", min at {m.at_en} " + lo).where(has, "")
    if source == "threshold":
        bound = part["limit"].map(lambda v: f"{v:g}")
        return head_ko + " (기준 " + bound + f" {m.unit})", head_en + " (limit " + bound + f" {m.unit})"
    return head_ko + " (BMS 플래그)", head_en + " (BMS flag)"


def finish_events(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenated events in a stable order (time, bank, rack, code, level, source) with
    their Korean and English descriptions; EVENT_COLUMNS only."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    events = pd.concat(parts, ignore_index=True)
    events = events.sort_values(["timestamp", "bank_id", "rack_id", "error_code", "level", "source"],
                                kind="stable", ignore_index=True)
    events["description"] = ""
    events["description_eng"] = ""
    for (code, level, source), part in events.groupby(["error_code", "level", "source"], sort=False):
        ko, en = _describe_group(part, int(code), int(level), str(source))
        events.loc[part.index, "description"] = ko
        events.loc[part.index, "description_eng"] = en
    return events[EVENT_COLUMNS]


def judge_rack_rows(frame: pd.DataFrame, limits: Mapping[str, Limit]) -> pd.DataFrame:
    """Every threshold and BMS-flag event of rack rows (upper-case column names as in the
    site table; TIMESTAMP as epoch seconds or datetimes)."""
    return finish_events([*judge_thresholds(frame, limits), *judge_rack_flags(frame)])


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


# ----- reading site rows -------------------------------------------------------------------------

def _columns_by_upper(table: sa.Table) -> dict[str, sa.Column[Any]]:
    return {c.name.upper(): c for c in table.columns}


@dataclass(frozen=True)
class ReadPlan:
    """What one component contributes: the columns to read and the candidate-row predicate."""

    component: str
    table: sa.Table
    columns: dict[str, sa.ColumnElement[Any]]  # upper-case name -> expression to select
    candidate: sa.ColumnElement[bool] | None  # rows that may hold an event (None: every row)
    json_column: sa.Column[Any] | None = None  # sites 2/3 bank: filtered by its set values


def _rack_plan(table: sa.Table, pmap: ProtectionMap, dialect: str) -> ReadPlan:
    cols = _columns_by_upper(table)
    wanted = {"BANK_ID", "RACK_ID", *(m.column for m in MEASURES.values()),
              *(p for m in MEASURES.values() for p in m.positions), *RACK_FLAGS}
    select = {name: cols[name] for name in sorted(wanted) if name in cols}
    conditions: list[sa.ColumnElement[bool]] = []
    for check in CHECKS:  # the least strict limit of each check, same strict comparison
        limit = pmap.limit("rack", check.field)
        if limit is None or check.field not in cols:
            continue
        bounds = [b for b in _sides(limit, check.side) if b is not None]
        if not bounds:
            continue
        x = sa.func.abs(cols[check.field]) if limit.absolute else cols[check.field]
        conditions.append(x > min(bounds) if check.side == "above" else x < max(bounds))
    conditions += [cols[f] != 0 for f in RACK_FLAGS if f in cols]
    select["TIMESTAMP"] = epoch_expr(_ts(table), dialect)
    return ReadPlan("rack", table, select, sa.or_(*conditions) if conditions else sa.false())


def _bank_plan(table: sa.Table, dialect: str) -> ReadPlan:
    cols = _columns_by_upper(table)
    select: dict[str, sa.ColumnElement[Any]] = {"BANK_ID": cols["BANK_ID"]}
    conditions: list[sa.ColumnElement[bool]] = []
    json_column = None
    for name, col in cols.items():
        per_rack = name.startswith(PER_RACK_COMM_PREFIX) and name.endswith(PER_RACK_COMM_SUFFIX)
        if name == RACK_TO_MASTER or per_rack or (name == MASTER_COMM and not isinstance(col.type, sa.JSON)):
            select[name] = col
            conditions.append(col != 0)
        elif name == MASTER_COMM:
            select[name] = sa.cast(col, sa.Text)
            json_column = col
    select["TIMESTAMP"] = epoch_expr(_ts(table), dialect)
    return ReadPlan("bank", table, select, sa.or_(*conditions) if conditions else None, json_column)


def _ts(table: sa.Table) -> sa.Column[Any]:
    return _columns_by_upper(table)["TIMESTAMP"]


def _json_with_faults(conn: Connection, plan: ReadPlan, window: list[Any]) -> list[str]:
    """Distinct JSON texts of the window that name a rack in fault (parsed once each)."""
    assert plan.json_column is not None
    text = sa.cast(plan.json_column, sa.Text)
    distinct = conn.execute(sa.select(text).where(*window).distinct()).scalars().all()
    return [t for t in distinct if t is not None and _racks_of_json(pd.Series([t]))[1][0] > 0]


@contextmanager
def _reading(store: SiteStore) -> Iterator[Connection]:
    """A connection for the windowed reads. On PostgreSQL the planner is told to use the
    TIMESTAMP index: a table fresh from a bulk load has no statistics yet, and without them
    it plans a full scan for every window."""
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        yield conn


def read_candidates(store: SiteStore, plan: ReadPlan, start: int, end: int) -> pd.DataFrame:
    """Rows of [start, end) (epoch seconds) that may hold an event, with the plan's columns."""
    ts = _ts(plan.table)
    window = [ts >= from_epoch(start), ts < from_epoch(end)]
    names = list(plan.columns)
    with _reading(store) as conn:
        conditions = [] if plan.candidate is None else [plan.candidate]
        if plan.json_column is not None:
            faulty = _json_with_faults(conn, plan, window)
            if faulty:
                conditions.append(sa.cast(plan.json_column, sa.Text).in_(faulty))
        if not conditions:
            return pd.DataFrame({n: pd.Series(dtype=object) for n in names})
        stmt = sa.select(*[expr.label(n) for n, expr in plan.columns.items()]).where(*window, sa.or_(*conditions))
        rows = conn.execute(stmt).all()
    return pd.DataFrame.from_records(rows, columns=names, coerce_float=True)


@dataclass(frozen=True)
class Span:
    first: int
    last: int


def new_rows(store: SiteStore, table: sa.Table, after: int | None) -> Span | None:
    """First and last TIMESTAMP after `after` (epoch seconds), None when there is none.
    Bare min/max of the key column: index lookups whatever the table's statistics."""
    ts = _ts(table)
    with store.engine.connect() as conn:
        last = _epoch_of(conn.execute(sa.select(sa.func.max(ts))).scalar())
        if last is None or (after is not None and last <= after):
            return None
        first = _epoch_of(conn.execute(sa.select(sa.func.min(ts)).where(
            *([] if after is None else [ts > from_epoch(after)]))).scalar())
    return None if first is None else Span(first, last)


def count_after(store: SiteStore, table: sa.Table, after: int | None) -> int:
    """Rows with TIMESTAMP after `after` (all rows for None)."""
    ts = _ts(table)
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(
            *([] if after is None else [ts > from_epoch(after)]))).scalar() or 0)


def _epoch_of(value: Any) -> int | None:
    """Epoch seconds of a TIMESTAMP value as the driver returns it (datetime or integer)."""
    if value is None:
        return None
    return to_epoch(value) if isinstance(value, datetime) else int(value)


def iter_windows(store: SiteStore, table: sa.Table, first: int, last: int,
                 window_s: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, rows) windows [start, end) of a grid of `window_s` seconds from `first`,
    covering the rows up to `last`; empty windows are left out. One grouped count for the
    whole span (an index range scan), instead of queries per window."""
    ts = _ts(table)
    k = ((epoch_expr(ts, store.dialect) - first) // window_s).label("k")
    with _reading(store) as conn:
        counts = conn.execute(sa.select(k, sa.func.count()).where(ts >= from_epoch(first), ts <= from_epoch(last))
                              .group_by(k).order_by(k)).all()
    for index, rows in counts:
        start = first + int(index) * window_s
        yield start, min(start + window_s, last + 1), int(rows)


# ----- the app-database side ---------------------------------------------------------------------

_synced: weakref.WeakSet[Engine] = weakref.WeakSet()
_synced_lock = threading.Lock()


def sync_reference_tables(engine: Engine) -> None:
    """Make the error-code and level tables hold this module's rows (idempotent)."""
    with _synced_lock:
        if engine in _synced:
            return
        with engine.begin() as conn:
            for table, rows in ((protection_error_code, [
                    {"id": c.id, "description": c.description, "description_eng": c.description_eng}
                    for c in ERROR_CODES.values()]),
                    (protection_level, [{"id": i, "description": ko, "description_eng": en}
                                        for i, (ko, en) in LEVELS.items()])):
                have = {r.id: r for r in conn.execute(sa.select(table))}
                for row in rows:
                    if row["id"] not in have:
                        conn.execute(sa.insert(table).values(**row))
                    elif tuple(have[row["id"]])[1:] != (row["description"], row["description_eng"]):
                        conn.execute(sa.update(table).where(table.c.id == row["id"]).values(**row))
        _synced.add(engine)


class WatermarkMoved(EssError):
    """Another evaluator judged these rows first; this run stops without writing."""


def get_watermark(conn: Connection, site_id: int, component: str) -> int | None:
    w = protection_watermark.c
    return conn.execute(sa.select(w.last_timestamp).where(w.operating_site == site_id,
                                                          w.component == component)).scalar()


def _ensure_watermark(engine: Engine, site_id: int, component: str) -> int | None:
    with engine.begin() as conn:
        w = protection_watermark.c
        row = conn.execute(sa.select(w.last_timestamp).where(w.operating_site == site_id,
                                                             w.component == component)).first()
        if row is not None:
            return None if row[0] is None else int(row[0])
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(protection_watermark).values(
                    operating_site=site_id, component=component, last_timestamp=None, samples=0, events=0,
                    updated_at=int(time.time())))
        except sa.exc.IntegrityError:  # another evaluator created it
            pass
        value = get_watermark(conn, site_id, component)
        return None if value is None else int(value)


def _advance(conn: Connection, site_id: int, component: str, old: int | None, new: int, samples: int,
             events: int, map_version: str) -> None:
    w = protection_watermark.c
    same = w.last_timestamp.is_(None) if old is None else w.last_timestamp == old
    result = conn.execute(sa.update(protection_watermark).where(w.operating_site == site_id, w.component == component,
                                                                same).values(
        last_timestamp=new, samples=w.samples + samples, events=w.events + events, map_version=map_version,
        updated_at=int(time.time())))
    if result.rowcount != 1:
        raise WatermarkMoved(f"site {site_id} {component}: another evaluation advanced the watermark",
                             code="evaluation_conflict", status=409, title="Conflict")


def _codes_of(component: str) -> list[int]:
    return [BANK_CODE] if component == "bank" else [c for c in ERROR_CODES if c != BANK_CODE]


def _open_episodes(conn: Connection, site_id: int, component: str) -> pd.DataFrame:
    e = protection_episode.c
    rows = conn.execute(sa.select(e.id, e.bank_id, e.rack_id, e.error_code, e.level, e.source, e.start_time,
                                  e.end_time, e.peak_value, e.sample_count)
                        .where(e.operating_site == site_id, e.is_open.is_(True),
                               e.error_code.in_(_codes_of(component)))).all()
    columns = ["id", *EPISODE_KEY, "start_time", "end_time", "peak_value", "sample_count"]
    frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
    return frame.astype({"peak_value": float}) if len(frame) else frame


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Driver-ready dicts: native Python values, NaN as NULL."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def store_window(conn: Connection, site_id: int, component: str, events: pd.DataFrame, map_version: str,
                 gap_s: int, watermark: int) -> tuple[int, int]:
    """Insert events, extend or open episodes and close the ones the next run cannot extend
    (their last event is more than gap_s before the next second after `watermark`)."""
    if len(events):
        rows = events.assign(operating_site=site_id,
                             map_version=np.where(events["source"] == "threshold", map_version, None))
        conn.execute(sa.insert(protection_event), _records(rows))
        add_counts(conn, site_id, events)
        changes = group_episodes(events, _open_episodes(conn, site_id, component), gap_s)
        if len(changes.inserts):
            conn.execute(sa.insert(protection_episode),
                         _records(changes.inserts.assign(operating_site=site_id, is_open=True)))
        e = protection_episode.c
        for row in _records(changes.updates):
            conn.execute(sa.update(protection_episode).where(e.id == row["id"]).values(
                end_time=row["end_time"], peak_value=row["peak_value"], sample_count=row["sample_count"]))
        opened, extended = len(changes.inserts), len(changes.updates)
    else:
        opened = extended = 0
    e = protection_episode.c
    conn.execute(sa.update(protection_episode).where(
        e.operating_site == site_id, e.is_open.is_(True), e.error_code.in_(_codes_of(component)),
        e.end_time < watermark + 1 - gap_s).values(is_open=False))
    return opened, extended


COUNT_KEY = ["minute", "level", "error_code", "source", "bank_id", "rack_id"]


def add_counts(conn: Connection, site_id: int, events: pd.DataFrame) -> None:
    """Add events to the per-minute counts (upsert: a minute may span two windows)."""
    if not len(events):
        return
    counts = (events.assign(minute=events["timestamp"] // 60 * 60).groupby(COUNT_KEY).size()
              .rename("events").reset_index().assign(operating_site=site_id))
    insert = (sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert)(protection_event_count)
    stmt = insert.on_conflict_do_update(
        index_elements=["operating_site", *COUNT_KEY],
        set_={"events": protection_event_count.c.events + insert.excluded.events})
    conn.execute(stmt, _records(counts))


# ----- evaluation --------------------------------------------------------------------------------

@dataclass
class EvaluationSummary:
    site_id: int
    samples: dict[str, int] = field(default_factory=dict)  # component -> rows judged
    events: dict[str, int] = field(default_factory=lambda: {"threshold": 0, "bms": 0})
    episodes_opened: int = 0
    episodes_extended: int = 0
    watermarks: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0
    note: str = ""

    @property
    def total_events(self) -> int:
        return sum(self.events.values())

    def format_line(self) -> str:
        samples = ", ".join(f"{c} {n:,}" for c, n in self.samples.items()) or "nothing new"
        text = (f"site {self.site_id}: judged {samples} sample(s); {self.events['threshold']:,} threshold and "
                f"{self.events['bms']:,} BMS event(s); {self.episodes_opened:,} episode(s) opened, "
                f"{self.episodes_extended:,} extended ({self.seconds:.1f} s)")
        return text + (f" ({self.note})" if self.note else "")


def _engine_and_gap(target: Portal | Engine, gap_s: int | None) -> tuple[Engine, int]:
    """The app-database engine and the episode gap of a Portal or a bare Engine."""
    if isinstance(target, Engine):
        return target, DEFAULT_GAP_S if gap_s is None else gap_s
    return target.app_db, target.settings.episode_gap_s if gap_s is None else gap_s


def _plans(store: SiteStore, pmap: ProtectionMap) -> list[ReadPlan]:
    plans = []
    if "rack" in store.site.column_sets:
        plans.append(_rack_plan(store.table("rack"), pmap, store.dialect))
    if "bank" in store.site.column_sets:
        plans.append(_bank_plan(store.table("bank"), store.dialect))
    return plans


def _entities(site: Site, component: str) -> int:
    return len(site.rack_keys) if component == "rack" else len(site.banks)


def pending_samples(engine: Engine, store: SiteStore) -> int:
    """Rows the next evaluation of the site would judge (for progress bars)."""
    total = 0
    with engine.connect() as conn:
        marks = {c: get_watermark(conn, store.site.id, c) for c in ("rack", "bank")}
    for component in ("rack", "bank"):
        if component in store.site.column_sets:
            total += count_after(store, store.table(component), marks[component])
    return total


def evaluate_site(target: Portal | Engine, store: SiteStore, *, gap_s: int | None = None, chunk_rows: int = CHUNK_ROWS,
                  progress: Callable[[int], None] | None = None) -> EvaluationSummary:
    """Judge the site's rows newer than its watermarks and store events and episodes.

    `target` is a Portal (app database and ESS_EPISODE_GAP_S) or the app-database Engine.
    Each window commits on its own; a run interrupted half-way resumes where it stopped.
    Raises Unavailable when the site database is unreachable; stops early (with a note) when
    another evaluator advanced a watermark meanwhile.
    """
    engine, gap = _engine_and_gap(target, gap_s)
    began = time.perf_counter()
    site = store.site
    summary = EvaluationSummary(site.id)
    sync_reference_tables(engine)
    pmap = load_protection_map(site)
    try:
        for plan in _plans(store, pmap):
            _evaluate_component(engine, store, plan, pmap, gap, chunk_rows, summary, progress)
    except WatermarkMoved as exc:
        summary.note = exc.detail
    except sa.exc.OperationalError as exc:  # the site database or the app database
        raise Unavailable(f"evaluation of site {site.id} stopped: a database is unreachable or busy "
                          f"({type(exc.orig).__name__})", code="database_unavailable") from exc
    summary.seconds = time.perf_counter() - began
    return summary


def _evaluate_component(engine: Engine, store: SiteStore, plan: ReadPlan, pmap: ProtectionMap, gap: int,
                        chunk_rows: int, summary: EvaluationSummary,
                        progress: Callable[[int], None] | None) -> None:
    """Judge one component window by window; the next windows are read while this one is
    judged and stored (database reads release the GIL), the writes stay in order."""
    site, component = store.site, plan.component
    mark = _ensure_watermark(engine, site.id, component)
    summary.samples.setdefault(component, 0)
    span = new_rows(store, plan.table, mark)
    window_s = max(60, chunk_rows // max(1, _entities(site, component)))
    if span is not None:
        with ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="ess-evaluate") as pool:
            queued: deque[tuple[int, int, Future[pd.DataFrame]]] = deque()
            for start, end, rows in iter_windows(store, plan.table, span.first, span.last, window_s):
                queued.append((end, rows, pool.submit(read_candidates, store, plan, start, end)))
                if len(queued) >= READ_AHEAD:
                    mark = _store_next(engine, site.id, plan, pmap, gap, mark, queued.popleft(), summary, progress)
            while queued:
                mark = _store_next(engine, site.id, plan, pmap, gap, mark, queued.popleft(), summary, progress)
    summary.watermarks[component] = mark


def _store_next(engine: Engine, site_id: int, plan: ReadPlan, pmap: ProtectionMap, gap: int, mark: int | None,
                item: tuple[int, int, Future[pd.DataFrame]], summary: EvaluationSummary,
                progress: Callable[[int], None] | None) -> int:
    """Judge one window's candidate rows and commit its events, episodes and watermark."""
    end, rows, future = item
    frame = future.result()
    component = plan.component
    events = (judge_rack_rows(frame, pmap.limits.get("rack", {})) if component == "rack"
              else finish_events(judge_bank_rows(frame)))
    new_mark = end - 1
    with engine.begin() as conn:
        opened, extended = store_window(conn, site_id, component, events, pmap.version, gap, new_mark)
        _advance(conn, site_id, component, mark, new_mark, rows, len(events), pmap.version)
    summary.samples[component] += rows
    for source in SOURCES:
        summary.events[source] += int((events["source"] == source).sum()) if len(events) else 0
    summary.episodes_opened += opened
    summary.episodes_extended += extended
    if progress:
        progress(rows)
    return new_mark


def evaluate_sites(portal: Portal, site_ids: Sequence[int] | None = None,
                   progress: Callable[[int], None] | None = None) -> list[EvaluationSummary]:
    """`evaluate_site` for each site (default: every registered site); for schedulers."""
    ids = list(site_ids) if site_ids else list(portal.registry.site_ids)
    return [evaluate_site(portal, portal.store(sid), progress=progress) for sid in ids]


def rewind_site(engine: Engine, site: Site, since: datetime, gap_s: int = DEFAULT_GAP_S) -> None:
    """Forget what was judged from `since` on (events, episodes, watermarks), so that the
    next evaluation judges those rows again: after loading older rows, or a new map.
    Episodes that began before `since` are cut back to their events before it, and those
    that rows from `since` on could extend are open again."""
    cut = to_epoch(since)
    e, ev, w = protection_episode.c, protection_event.c, protection_watermark.c
    sync_reference_tables(engine)
    minute = cut // 60 * 60
    c = protection_event_count.c
    with engine.begin() as conn:
        conn.execute(sa.delete(protection_event).where(ev.operating_site == site.id, ev.timestamp >= cut))
        conn.execute(sa.delete(protection_event_count).where(c.operating_site == site.id, c.minute >= minute))
        kept = conn.execute(sa.select(ev.timestamp, *[ev[k] for k in COUNT_KEY[1:]]).where(
            ev.operating_site == site.id, ev.timestamp >= minute)).all()
        add_counts(conn, site.id, pd.DataFrame.from_records(kept, columns=["timestamp", *COUNT_KEY[1:]]))
        conn.execute(sa.delete(protection_episode).where(e.operating_site == site.id, e.start_time >= cut))
        straddling = conn.execute(sa.select(e.id, *[e[k] for k in EPISODE_KEY], e.start_time).where(
            e.operating_site == site.id, e.end_time >= cut)).all()
        for row in straddling:
            _recount_episode(conn, site.id, row, cut)
        conn.execute(sa.update(protection_episode).where(e.operating_site == site.id, e.end_time >= cut - gap_s)
                     .values(is_open=True))
        conn.execute(sa.update(protection_watermark).where(w.operating_site == site.id, w.last_timestamp >= cut)
                     .values(last_timestamp=cut - 1, updated_at=int(time.time())))


def _recount_episode(conn: Connection, site_id: int, row: sa.Row[Any], cut: int) -> None:
    ev = protection_event.c
    key = dict(zip(EPISODE_KEY, row[1:6], strict=True))
    peak = sa.func.min(ev.value) if ERROR_CODES[key["error_code"]].peak == "min" else sa.func.max(ev.value)
    n, last, top = conn.execute(sa.select(sa.func.count(), sa.func.max(ev.timestamp), peak).where(
        ev.operating_site == site_id, *[ev[k] == v for k, v in key.items()],
        ev.timestamp >= row.start_time, ev.timestamp < cut)).one()
    conn.execute(sa.update(protection_episode).where(protection_episode.c.id == row.id).values(
        end_time=last, sample_count=n, peak_value=top, is_open=True))


def refresh_site(portal: Portal, site_id: int, max_backlog_s: int = ON_REQUEST_BACKLOG_S) -> bool:
    """Bring a site's events up to date before a request reads them, when it is at most
    `max_backlog_s` seconds of data behind (larger backlogs are the CLI's or a job's).
    Failures are logged, never raised: stored events are served either way."""
    try:
        store = portal.store(site_id)
        engine = portal.app_db
        with engine.connect() as conn:
            marks = {c: get_watermark(conn, site_id, c) for c in ("rack", "bank") if c in store.site.column_sets}
        spans = {c: new_rows(store, store.table(c), mark) for c, mark in marks.items()}
        for component, span in spans.items():
            if span is not None and span.last - (marks[component] or span.first) > max_backlog_s:
                return False
        if any(spans.values()):
            evaluate_site(portal, store)
        return True
    except (EssError, sa.exc.SQLAlchemyError) as exc:
        log.warning("protection events of site %s not refreshed: %s", site_id, exc)
        return False


# ----- queries -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EventFilter:
    """Which events (or episodes): sites (None = all), half-open epoch range, exact ids,
    source and a case-insensitive substring of either description."""

    site_ids: tuple[int, ...] | None = None
    start: int | None = None
    end: int | None = None
    level: int | None = None
    error_code: int | None = None
    bank_id: int | None = None
    rack_id: int | None = None
    source: str | None = None
    message: str | None = None


def check_filter_values(level: int | None, error_code: int | None, source: str | None,
                        message: str | None) -> None:
    """400 problems for ids and values that do not exist."""
    if level is not None and level not in LEVELS:
        raise InvalidQuery(f"level={level} is not a level; valid: 1 (warning), 2 (fault)", code="unknown_level",
                           invalid_params=[{"name": "level", "reason": "must be 1 or 2"}])
    if error_code is not None and error_code not in ERROR_CODES:
        raise InvalidQuery(f"error_code={error_code} is not an error code; valid: 1 to {max(ERROR_CODES)}",
                           code="unknown_error_code",
                           invalid_params=[{"name": "error_code", "reason": f"must be 1 to {max(ERROR_CODES)}"}])
    if source is not None and source not in SOURCES:
        raise InvalidQuery(f"source={source!r} is not a source; valid: {', '.join(SOURCES)}", code="unknown_source",
                           invalid_params=[{"name": "source", "reason": "must be threshold or bms"}])
    if message is not None and len(message) > MAX_MESSAGE_CHARS:
        raise InvalidQuery(f"message is longer than {MAX_MESSAGE_CHARS} characters", code="invalid_parameter",
                           invalid_params=[{"name": "message", "reason": f"over {MAX_MESSAGE_CHARS} characters"}])
    if message is not None and "\x00" in message:  # PostgreSQL text cannot hold NUL: the driver would refuse it
        raise InvalidQuery("message must not contain NUL characters", code="invalid_parameter",
                           invalid_params=[{"name": "message", "reason": "contains NUL"}])


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern with ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(table: sa.Table, f: EventFilter, time_column: str) -> list[sa.ColumnElement[bool]]:
    c = table.c
    out: list[sa.ColumnElement[bool]] = []
    if f.site_ids is not None:
        out.append(c.operating_site == f.site_ids[0] if len(f.site_ids) == 1 else c.operating_site.in_(f.site_ids))
    if time_column == "timestamp":
        if f.start is not None:
            out.append(c.timestamp >= f.start)
        if f.end is not None:
            out.append(c.timestamp < f.end)
    else:  # episodes overlapping [start, end)
        if f.end is not None:
            out.append(c.start_time < f.end)
        if f.start is not None:
            out.append(c.end_time >= f.start)
    for name in ("level", "error_code", "bank_id", "rack_id", "source"):
        value = getattr(f, name)
        if value is not None:
            out.append(c[name] == value)
    if f.message:
        out.append(_message_matches(table, f.message))
    return out


def _message_matches(table: sa.Table, message: str) -> sa.ColumnElement[bool]:
    """Events whose Korean or English description holds `message` (case-insensitive, LIKE
    wildcards taken literally); for episodes: those holding such an event."""
    ev = protection_event.c
    pattern = "%" + escape_like(message) + "%"
    matches = sa.or_(ev.description.ilike(pattern, escape="\\"), ev.description_eng.ilike(pattern, escape="\\"))
    if table is protection_event:
        return matches
    e = table.c
    return sa.exists().where(ev.operating_site == e.operating_site, *[ev[k] == e[k] for k in EPISODE_KEY],
                             ev.timestamp >= e.start_time, ev.timestamp <= e.end_time, matches)


def _code_of(code: int) -> dict[str, Any]:
    ec = ERROR_CODES[code]
    return {"id": ec.id, "description": ec.description, "description_eng": ec.description_eng}


def _level_of(level: int) -> dict[str, Any]:
    return {"id": level, "description": LEVELS[level][0]}


def _iso(epoch: int, tz: ZoneInfo) -> str:
    return from_epoch(epoch).astimezone(tz).isoformat()


def render_event(row: sa.Row[Any], tz: ZoneInfo) -> dict[str, Any]:
    """An event in the original's shape plus `source` and `value`."""
    return {
        "timestamp": _iso(row.timestamp, tz),
        "error_code": _code_of(row.error_code),
        "level": _level_of(row.level),
        "bank_id": row.bank_id,
        "rack_id": row.rack_id,
        "operating_site": row.operating_site,
        "description": row.description,
        "description_eng": row.description_eng,
        "source": row.source,
        "value": row.value,
    }


def render_episode(row: sa.Row[Any], tz: ZoneInfo) -> dict[str, Any]:
    return {
        "start": _iso(row.start_time, tz),
        "end": _iso(row.end_time, tz),
        "duration_s": int(row.end_time - row.start_time),
        "peak_value": row.peak_value,
        "sample_count": int(row.sample_count),
        "operating_site": row.operating_site,
        "bank_id": row.bank_id,
        "rack_id": row.rack_id,
        "error_code": _code_of(row.error_code),
        "level": _level_of(row.level),
        "source": row.source,
        "open": bool(row.is_open),
    }


@dataclass
class EventPage:
    rows: list[dict[str, Any]]
    count: int
    page: int
    next_cursor: Cursor | None


def _page(engine: Engine, table: sa.Table, f: EventFilter, order: tuple[str, str], tz_of: Callable[[int], ZoneInfo],
          render: Callable[[sa.Row[Any], ZoneInfo], dict[str, Any]], page_size: int, page: int,
          cursor: Cursor | None, time_column: str, extra: Sequence[sa.ColumnElement[bool]] = ()) -> EventPage:
    """Newest first by (order[0], order[1]) descending; keyset when a cursor is given."""
    first, second = table.c[order[0]], table.c[order[1]]
    conds = [*_conditions(table, f, time_column), *extra]
    with engine.connect() as conn:
        count = cursor.count if cursor else int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                                              .where(*conds)).scalar() or 0)
        page_no = cursor.page if cursor else page
        if page_no > 1 and (page_no - 1) * page_size >= count:
            raise NotFound(f"page {page_no} is past the last page ({max(1, -(-count // page_size))})",
                           code="page_out_of_range")
        stmt = sa.select(table).where(*conds).order_by(first.desc(), second.desc()).limit(page_size)
        if cursor:
            if len(cursor.key) != 2:
                raise InvalidQuery("cursor belongs to another route; follow the `next` link", code="invalid_cursor",
                                   invalid_params=[{"name": "cursor", "reason": "issued for another route"}])
            k0, k1 = cursor.key
            stmt = stmt.where(sa.or_(first < k0, sa.and_(first == k0, second < k1)))
        else:
            stmt = stmt.offset((page - 1) * page_size)
        rows = conn.execute(stmt).all()
    rendered = [render(r, tz_of(r.operating_site)) for r in rows]
    more = page_no * page_size < count and len(rows) == page_size
    nxt = Cursor((int(getattr(rows[-1], order[0])), int(getattr(rows[-1], order[1]))), count, page_no + 1) \
        if more else None
    return EventPage(rendered, count, page_no, nxt)


def list_events(engine: Engine, f: EventFilter, tz_of: Callable[[int], ZoneInfo], *,
                page_size: int = EVENT_PAGE_SIZE, page: int = 1, cursor: Cursor | None = None) -> EventPage:
    """One page of events, newest first (time, then insertion order)."""
    return _page(engine, protection_event, f, ("timestamp", "id"), tz_of, render_event, page_size, page, cursor,
                 "timestamp")


def list_episodes(engine: Engine, f: EventFilter, tz_of: Callable[[int], ZoneInfo], *, is_open: bool | None = None,
                  page_size: int = EVENT_PAGE_SIZE, page: int = 1, cursor: Cursor | None = None) -> EventPage:
    """One page of episodes overlapping the range (optionally only open or closed ones),
    newest start first."""
    extra = [] if is_open is None else [protection_episode.c.is_open.is_(is_open)]
    return _page(engine, protection_episode, f, ("start_time", "id"), tz_of, render_episode, page_size, page, cursor,
                 "start_time", extra)


def count_levels(engine: Engine, site_id: int, start: int, end: int, width_s: int, origin: int, tz: ZoneInfo,
                 *, per: str = "samples", f: EventFilter | None = None, rollup: bool = True) -> list[dict[str, Any]]:
    """Events (per="samples") or episodes started (per="episodes") per bucket and level, over
    [start, end): [{"time", "operating_site", "level", "level_count"}], newest bucket first,
    level ascending, non-empty buckets only. Buckets are `width_s` wide from `origin`.

    Event counts come from the per-minute counts when buckets and range are whole minutes
    and no `message` filter applies (exact, and independent of the number of events);
    otherwise from the events themselves."""
    check_bucket_count(TimeRange(from_epoch(start), from_epoch(end)), width_s)
    rest = replace(f or EventFilter(), site_ids=None, start=None, end=None)  # site and range are bound below
    whole_minutes = all(v % 60 == 0 for v in (start, end, width_s, origin))
    if per == "episodes":
        table, column, total = protection_episode, protection_episode.c.start_time, sa.func.count()
    elif rollup and whole_minutes and not rest.message:
        table, column = protection_event_count, protection_event_count.c.minute
        total = sa.func.sum(protection_event_count.c.events)
    else:
        table, column, total = protection_event, protection_event.c.timestamp, sa.func.count()
    bucket = ((column - origin) // width_s * width_s + origin).label("bucket")
    stmt = (sa.select(bucket, table.c.level, total.label("n"))
            .where(table.c.operating_site == site_id, column >= start, column < end,
                   *_conditions(table, rest, "timestamp"))
            .group_by(bucket, table.c.level).order_by(bucket.desc(), table.c.level))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [{"time": _iso(int(b), tz), "operating_site": site_id, "level": int(level), "level_count": int(n)}
            for b, level, n in rows]


def describe_map(site: Site) -> dict[str, Any]:
    """The protection map in force for a site: version, comparison rule, the limits the
    checks use (lower-case field names, as the API names fields) and the map as written."""
    pmap = load_protection_map(site)
    limits = {comp: {name.lower(): {"warning_above": lim.warning_above, "fault_above": lim.fault_above,
                                    "warning_below": lim.warning_below, "fault_below": lim.fault_below,
                                    "absolute": lim.absolute} for name, lim in fields.items()}
              for comp, fields in pmap.limits.items()}
    checks = [{"error_code": c.code, "description_eng": ERROR_CODES[c.code].description_eng,
               "field": c.field.lower(), "side": c.side,
               "current_direction": {1: "charge", -1: "discharge"}.get(c.sign)}
              for c in CHECKS if pmap.limit("rack", c.field) is not None]
    return {"operating_site": site.id, "version": pmap.version,
            "comparison": "strictly beyond the limit: value > above, value < below; absolute limits judge |value|",
            "limits": limits, "checks": checks,
            "error_codes": [_code_of(c) for c in ERROR_CODES], "levels": [_level_of(lv) for lv in LEVELS],
            "map": pmap.components}
