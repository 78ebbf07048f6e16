"""State of Cell Position (SoCP), our definition.

For a rack, a look-back period (1, 7 or 30 days ending with the row's day), a state
(charge, discharge, rest: the sample's current against the ExSoS dead band) and a 10 % SoC
band (lower bound 0..90; SoC 100 counts in 90): for each cell position, the number of
samples in which it was the extreme cell (the max-voltage position while charging or
resting, the min-voltage position while discharging), with the mean of that extreme cell
voltage, of the rack's max cell temperature and of the rack current at those samples.

Per row also: the normalised entropy H(p) / ln(cells per rack) of the counts (1 = every
position equally often, 0 = always the same cell) and the cells whose count exceeds the
99.9 % upper bound of Binomial(samples, 1 / cells per rack), i.e. more often extreme than
uniform balancing would make them with probability 0.999. Each cell is tested on its
own (no correction for testing every position), as the definition says.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from services.analytics.exsos import CHARGE, DISCHARGE, REST, states

FORMULA_VERSION = "socp-1.0"
PERIODS: tuple[int, ...] = (1, 7, 30)
CHARGE_STATUSES: tuple[int, ...] = (CHARGE, DISCHARGE, REST)
BAND_PCT = 10
FLAG_QUANTILE = 0.999
VOLT_SCALE, TEMP_SCALE, CURRENT_SCALE = 1e6, 1e3, 1e3  # sums kept in µV, m°C and mA
SUM_COLUMNS = ["count", "sum_voltage_uv", "sum_temp_mc", "sum_current_ma"]
COUNT_KEYS = ["bank_id", "rack_id", "charge_status", "soc_range", "cell"]
ROW_KEYS = ["bank_id", "rack_id", "charge_status", "soc_range"]

RACK_COLUMNS: dict[str, str] = {
    "soc": "RACK_SOC",
    "current": "RACK_CURRENT",
    "max_cell_voltage": "RACK_MAX_CELL_VOLTAGE",
    "max_cell_voltage_position": "RACK_MAX_CELL_VOLTAGE_POSITION",
    "min_cell_voltage": "RACK_MIN_CELL_VOLTAGE",
    "min_cell_voltage_position": "RACK_MIN_CELL_VOLTAGE_POSITION",
    "max_cell_temperature": "RACK_MAX_CELL_TEMPERATURE",
}


def soc_bands(soc_pct: np.ndarray) -> np.ndarray:
    """Lower bound of the 10 % band of each SoC (0..90; SoC 100 and above in 90)."""
    s = np.asarray(soc_pct, dtype=float)
    return np.clip(np.floor(s / BAND_PCT) * BAND_PCT, 0, 100 - BAND_PCT)


def count_positions(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (bank_id, rack_id, charge_status, soc_range, cell): `count` and the integer
    sums `sum_voltage_uv`, `sum_temp_mc`, `sum_current_ma` (µV, m°C, mA) over per-sample
    rows (columns as RACK_COLUMNS keys). Integer sums add up exactly in any order, so
    counts kept chunk by chunk equal counts made in one go. Samples lacking SoC, current,
    position, voltage or temperature are left out."""
    st = states(frame["current"].to_numpy())
    discharge = st == DISCHARGE
    cell = np.where(discharge, frame["min_cell_voltage_position"].to_numpy(dtype=float),
                    frame["max_cell_voltage_position"].to_numpy(dtype=float))
    volt = np.where(discharge, frame["min_cell_voltage"].to_numpy(dtype=float),
                    frame["max_cell_voltage"].to_numpy(dtype=float))
    temp = frame["max_cell_temperature"].to_numpy(dtype=float)
    soc = frame["soc"].to_numpy(dtype=float)
    cur = frame["current"].to_numpy(dtype=float)
    ok = ~(np.isnan(soc) | np.isnan(cur) | np.isnan(cell) | np.isnan(volt) | np.isnan(temp))
    f = pd.DataFrame({
        "bank_id": frame["bank_id"].to_numpy()[ok], "rack_id": frame["rack_id"].to_numpy()[ok],
        "charge_status": st[ok], "soc_range": soc_bands(soc[ok]).astype(int), "cell": cell[ok].astype(int),
        "count": 1, "sum_voltage_uv": np.rint(volt[ok] * VOLT_SCALE).astype(np.int64),
        "sum_temp_mc": np.rint(temp[ok] * TEMP_SCALE).astype(np.int64),
        "sum_current_ma": np.rint(cur[ok] * CURRENT_SCALE).astype(np.int64),
    })
    return f.groupby(COUNT_KEYS, sort=True).sum().reset_index()


def add_counts(*parts: pd.DataFrame) -> pd.DataFrame:
    """Counts and sums of several days (or chunks) added up."""
    nonempty = [p for p in parts if len(p)]
    if not nonempty:
        return parts[0] if parts else pd.DataFrame(columns=[*COUNT_KEYS, "count"])
    return pd.concat(nonempty).groupby(COUNT_KEYS, sort=True).sum().reset_index()


def binomial_upper_bound(n: int, p: float, q: float = FLAG_QUANTILE) -> int:
    """Smallest k with P(X <= k) >= q for X ~ Binomial(n, p) (exact, in log space)."""
    if n <= 0:
        return 0
    if p >= 1.0:
        return n
    sd = math.sqrt(n * p * (1.0 - p))
    kmax = int(min(n, math.ceil(n * p + 12.0 * sd + 30.0)))
    k = np.arange(kmax)
    steps = np.log(n - k) - np.log(k + 1.0) + math.log(p / (1.0 - p))
    logpmf = np.concatenate([[n * math.log1p(-p)], n * math.log1p(-p) + np.cumsum(steps)])
    cdf = np.cumsum(np.exp(logpmf))
    hit = int(np.searchsorted(cdf, q - 1e-12))
    return min(hit, n)


def summarise(counts: pd.DataFrame, cells_per_rack: int) -> pd.DataFrame:
    """One row per (bank_id, rack_id, charge_status, soc_range): `samples`, `entropy`,
    `flagged` (cell numbers, ascending), `bound` (the binomial bound) and `value` in the
    API shape {cell: {count, voltage, temp, current}}."""
    if counts.empty:
        return pd.DataFrame(columns=[*ROW_KEYS, "samples", "entropy", "flagged", "bound", "value"])
    c = counts.sort_values(COUNT_KEYS, kind="mergesort").reset_index(drop=True)
    n = c.groupby(ROW_KEYS, sort=True)["count"].transform("sum").to_numpy(dtype=float)
    p = c["count"].to_numpy(dtype=float) / n
    c["plogp"] = np.where(p > 0, -p * np.log(p), 0.0)
    rows = c.groupby(ROW_KEYS, sort=True).agg(samples=("count", "sum"), h=("plogp", "sum")).reset_index()
    norm = math.log(cells_per_rack) if cells_per_rack > 1 else float("nan")
    rows["entropy"] = rows["h"] / norm
    rows = rows.drop(columns="h")
    bounds = {int(s): binomial_upper_bound(int(s), 1.0 / cells_per_rack) for s in rows["samples"].unique()}
    rows["bound"] = rows["samples"].map(bounds).astype(int)
    c = c.merge(rows[[*ROW_KEYS, "bound"]], on=ROW_KEYS)
    c["mean_voltage"] = c["sum_voltage_uv"] / c["count"] / VOLT_SCALE
    c["mean_temp"] = c["sum_temp_mc"] / c["count"] / TEMP_SCALE
    c["mean_current"] = c["sum_current_ma"] / c["count"] / CURRENT_SCALE
    values: list[dict[str, dict[str, float | int | None]]] = []
    flagged: list[list[int]] = []
    for _, g in c.groupby(ROW_KEYS, sort=True):  # one small loop per output row, not per sample
        values.append({str(int(cell)): {"count": int(k), "voltage": _num(v), "temp": _num(t), "current": _num(i)}
                       for cell, k, v, t, i in zip(g["cell"], g["count"], g["mean_voltage"], g["mean_temp"],
                                                   g["mean_current"], strict=True)})
        flagged.append([int(x) for x in g.loc[g["count"] > g["bound"], "cell"]])
    rows["value"] = values
    rows["flagged"] = flagged
    return rows


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

