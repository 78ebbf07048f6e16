"""Extended SoS (ExSoS), our fuzzy definition:

1. every 10-minute window of a rack is charge, discharge or rest by its mean current
   (dead band ±STATE_DEADBAND_A);
2. the inputs are the window means of, by state: charge → max cell voltage and max cell
   temperature; discharge → min cell voltage and min cell temperature; rest → cell voltage
   gap and cell temperature gap;
3. each input gets degrees of five classes from membership curves placed on the
   protection map: on the input's abuse axis, c0 = h_m (SoS's boundary of full safety),
   c2 = the warning limit, c4 = the fault limit, c1 and c3 the midpoints. Negligible is 1
   up to c0 and falls to 0 at c1; Marginal, Neutral and Critical are triangles peaking at
   c1, c2 and c3; Catastrophic rises from c3 to 1 at c4 and stays 1 beyond. The degrees
   of one input add up to 1;
4. the rack's class degrees are the maximum over its inputs per class (the worst input
   dominates) and the integrated safety is their centroid on Negligible = 1,
   Marginal = 0.75, Neutral = 0.5, Critical = 0.25, Catastrophic = 0. For one input this
   is piecewise linear: 1 at h_m, 0.5 at the warning limit, 0 at the fault limit;
5. mode 1 (bank) is the bank's worst rack in the window (lowest integrated safety, the
   lower rack id on ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.analytics.sos import FactorParams, SosParameters

FORMULA_VERSION = "exsos-1.0"
WINDOW_S = 600
STATE_DEADBAND_A = 2.0  # |mean current| at or below this is rest (≈ 0.01 C for a 230 Ah rack)
CHARGE, DISCHARGE, REST = 0, 1, 2
STATE_NAMES = {CHARGE: "charge", DISCHARGE: "discharge", REST: "rest"}
CLASSES: tuple[str, ...] = ("Negligible", "Marginal", "Neutral", "Critical", "Catastrophic")
CLASS_SAFETY = np.array([1.0, 0.75, 0.5, 0.25, 0.0])


@dataclass(frozen=True)
class ExsosInput:
    key: str  # key in membership_degree_detail (the original's names)
    factor: str  # SoS factor whose limits place the curve
    column: str  # window-mean column in the frames this module reads
    chart: str  # static-chart-data name
    state: int


INPUTS: tuple[ExsosInput, ...] = (
    ExsosInput("max_voltage", "over_voltage", "max_cell_voltage", "over_voltage_safety", CHARGE),
    ExsosInput("max_temperature", "over_temperature", "max_cell_temperature", "over_temperature_safety", CHARGE),
    ExsosInput("min_voltage", "under_voltage", "min_cell_voltage", "under_voltage_safety", DISCHARGE),
    ExsosInput("min_temperature", "under_temperature", "min_cell_temperature", "under_temperature_safety",
               DISCHARGE),
    ExsosInput("voltage_gap", "voltage_unbalance", "cell_voltage_gap", "voltage_imbalance_safety", REST),
    ExsosInput("temperature_gap", "temperature_unbalance", "cell_temperature_gap", "temperature_imbalance_safety",
               REST),
)


def version(params: SosParameters) -> str:
    return f"{FORMULA_VERSION}+map:{params.map_version}"


def breakpoints(p: FactorParams) -> np.ndarray:
    """c0..c4 in input units (decreasing for lower-limit inputs)."""
    c0, c2, c4 = p.h_m, p.h_zeta, p.h_fault
    return np.array([c0, (c0 + c2) / 2.0, c2, (c2 + c4) / 2.0, c4])


def degrees(values: np.ndarray, p: FactorParams) -> np.ndarray:
    """(n, 5) class degrees of each input value (rows of NaN for NaN inputs)."""
    x = np.asarray(values, dtype=float)
    c = breakpoints(p)
    if not p.upper:  # work on the abuse axis, where larger is worse
        x, c = -x, -c
    out = np.column_stack([
        np.interp(x, c[0:2], [1.0, 0.0]),
        np.interp(x, c[0:3], [0.0, 1.0, 0.0]),
        np.interp(x, c[1:4], [0.0, 1.0, 0.0]),
        np.interp(x, c[2:5], [0.0, 1.0, 0.0]),
        np.interp(x, c[3:5], [0.0, 1.0]),
    ])
    out[np.isnan(x)] = np.nan
    return out


def centroid(class_degrees: np.ndarray) -> np.ndarray:
    """Integrated safety of (n, 5) class degrees."""
    d = np.asarray(class_degrees, dtype=float)
    total = d.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, d @ CLASS_SAFETY / total, np.nan)


def states(mean_current_a: np.ndarray) -> np.ndarray:
    i = np.asarray(mean_current_a, dtype=float)
    return np.where(i > STATE_DEADBAND_A, CHARGE, np.where(i < -STATE_DEADBAND_A, DISCHARGE, REST))


def assess(windows: pd.DataFrame, params: SosParameters) -> pd.DataFrame:
    """Mode-2 assessment of window means.

    `windows` has `current` and the six input columns (window means). Returns, per row:
    `state`, `integrated_safety`, the five class degrees (columns named as CLASSES) and
    per input `deg__<key>` (n, 5) arrays flattened as lists in `input_degrees`."""
    st = states(windows["current"].to_numpy())
    per_input = {inp.key: degrees(windows[inp.column].to_numpy(), params.factor(inp.factor)) for inp in INPUTS}
    combined = np.full((len(windows), len(CLASSES)), np.nan)
    for state in (CHARGE, DISCHARGE, REST):
        rows = st == state
        used = [per_input[i.key][rows] for i in INPUTS if i.state == state]
        combined[rows] = np.fmax(used[0], used[1])  # a missing input leaves the other one
    out = pd.DataFrame(combined, columns=list(CLASSES), index=windows.index)
    out.insert(0, "state", st)
    out.insert(1, "integrated_safety", centroid(combined))
    for inp in INPUTS:
        out[f"deg__{inp.key}"] = list(per_input[inp.key])
    return out


def window_means(frame: pd.DataFrame, columns: list[str], width_s: int = WINDOW_S) -> pd.DataFrame:
    """Means per (bank_id, rack_id, window start) of per-sample rows (`t` in epoch s)."""
    f = frame[["t", "bank_id", "rack_id", *columns]].copy()
    f["time"] = f["t"] // width_s * width_s
    g = f.groupby(["bank_id", "rack_id", "time"], sort=True)
    means = g[columns].mean()
    means["samples"] = g.size()
    return means.reset_index()


def worst_rack(rows: pd.DataFrame) -> pd.DataFrame:
    """Mode 1: per (bank_id, time) the row of the rack with the lowest integrated safety."""
    f = rows.loc[rows["integrated_safety"].notna()]
    f = f.sort_values(["bank_id", "time", "integrated_safety", "rack_id"], kind="mergesort")
    return f.drop_duplicates(["bank_id", "time"], keep="first").reset_index(drop=True)


def chart_data(params: SosParameters, points: int = 0) -> list[dict[str, object]]:
    """The six membership curves in the original's static_chart_data shape: per curve
    `values` = list of points {negligible_x, negligible_y, ..., catastrophic_y}; each
    class is drawn through the breakpoints, extended by one interval on each side."""
    out = []
    for n, inp in enumerate(INPUTS, start=1):
        p = params.factor(inp.factor)
        c = breakpoints(p)
        step = c[1] - c[0]
        xs = np.sort(np.concatenate([[c[0] - step], c, [c[4] + step]]))
        if points:
            xs = np.linspace(xs[0], xs[-1], points)
        deg = degrees(xs, p)
        values = []
        for k, x in enumerate(xs):
            point: dict[str, float] = {}
            for j, cls in enumerate(CLASSES):
                point[f"{cls.lower()}_x"] = float(x)
                point[f"{cls.lower()}_y"] = float(deg[k, j])
            values.append(point)
        out.append({"id": n, "name": inp.chart, "chart_type": "ExSoS", "input": inp.key,
                    "unit": "V" if "voltage" in inp.key else "°C", "state": STATE_NAMES[inp.state],
                    "breakpoints": [float(v) for v in c], "version": version(params), "values": values})
    return out
