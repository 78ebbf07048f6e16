"""Judging rows (pure: frames in, events out)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from services.protection.codes import (
    BANK_CODE,
    CHECKS,
    ERROR_CODES,
    EVENT_COLUMNS,
    LEVEL_WORDS,
    MASTER_COMM,
    MEASURES,
    RACK_FLAGS,
    RACK_TO_MASTER,
    per_rack_comm_rack,
)
from services.protection.maps import Limit

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


def sides_of(limit: Limit, side: str) -> tuple[float | None, float | None]:
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
        warning, fault = sides_of(limit, check.side)
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


def racks_of_json(texts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
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
    columns = sorted(c for c in frame.columns if per_rack_comm_rack(c) is not None)
    if not columns:
        return np.full(len(frame), "", dtype=object), np.zeros(len(frame), dtype=np.int64)
    numbers = [int(per_rack_comm_rack(c) or 0) for c in columns]
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
            json_names, json_counts = racks_of_json(master.astype(object).where(master.notna(), None))
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
    word_ko, word_en = LEVEL_WORDS[level]
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
