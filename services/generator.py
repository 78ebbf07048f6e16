"""Deterministic, vectorised generator of realistic 1 Hz ESS operating data.

It is the embedded demo's data source and the project's fixture factory: same seed, same
rows, on any machine. Every local day is generated on its own, in numpy over the whole day
(no Python loop over seconds; racks one after another, each vectorised over its day and its
candidate cells, which bounds memory): the day's random streams are seeded from (seed, site
id, day ordinal[, bank, rack]) and its state starts at local midnight from fixed initial
conditions (idle, SoC 0, temperatures at room temperature), so one day generated alone is
identical to the same day inside a longer range.

The model (docs: spec/DATA.md "The generator"; reference study §8):

* PV shifting: idle overnight at SoC 0 (about 3.38 V per cell), charge from about 10:00 at
  0.24 C to SoC 90 % (about 13:45), rest, discharge from about 16:00 ramping from 0.05 C to
  0.16 C until SoC 0 (about 22:20). About one day in four is cloudy: the charge follows the
  clouds and reaches 35-65 %. SoC is coulomb counting of the reported rack current.
* Cell voltage: OCV(SoC) from the 21-point OCV_CELL table + R0*I + a first-order RC term
  (tau 180 s, exact exponential filter). The BMS SoC window 0-90 % maps onto cell SoC
  5-88 %. Max/min cells come from a few candidate cells per rack (static offsets, capacity
  and resistance mismatch, slow drift), so the same positions tend to be extreme.
* Temperatures: room temperature (daily and weather cycles, continuous in absolute time)
  + I^2 R heating through a 30-minute thermal filter; candidate sensors for max/min.
* Bank = aggregate of its racks; PCS = DC side of all banks, AC side 3-phase ~400 V 60 Hz;
  ETC = room sensors and a PV inverter following a clear-sky or cloudy curve.
* BMS flags are computed from the reported (rounded) values with the protection limits of
  reference §3.2, strictly beyond the limit, so a flag is 1 exactly when the map says so.
* Labelled anomalies relative to the demo's anchor day: see ANOMALIES. The anchor day and
  the next one are always clear days, so that every anomaly shows in a 2-day demo.

Energy counters must rise across midnight without generating earlier days: each day adds an
estimate of that day's energy computed from per-day scalars (hash-seeded), spread over the
day in proportion to the actual power flow.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from tqdm import tqdm

from services import catalogue
from services.errors import EssError, InvalidQuery
from services.registry import COMPONENTS, Site
from services.storage import SiteStore, WriteResult

log = logging.getLogger(__name__)

DAY_S = 86_400

# ----- battery model constants (reference study §8) --------------------------------------

OCV_SOC_PCT = np.arange(0.0, 101.0, 5.0)
OCV_CELL_V = np.array([3.1044, 3.3888, 3.4283, 3.4599, 3.5146, 3.5535, 3.5808, 3.5970, 3.6118, 3.6274, 3.6453,
                       3.6680, 3.7135, 3.7662, 3.8072, 3.8498, 3.8916, 3.9324, 3.9818, 4.0365, 4.0818])
CELL_SOC_AT_BMS_0 = 5.0  # the BMS's SoC 0 % sits at cell SoC 5 % (3.389 V) ...
CELL_SOC_PER_BMS_PCT = 0.925  # ... and its 90 % at cell SoC 88.25 %
R0_OHM = 0.0005  # ohmic resistance of one series cell group (60 cells in parallel, ~0.03 ohm each)
R1_OHM = 0.0003  # RC branch resistance of one cell group
TAU_RC_S = 180.0  # RC time constant
TAU_THERMAL_S = 1800.0  # thermal time constant of a rack
HEAT_RISE_C = 7.0  # steady-state cell temperature rise at 0.24 C
C_CHARGE = 0.24  # charge C-rate (1/h)
C_DISCHARGE_START, C_DISCHARGE_END = 0.05, 0.16  # discharge C-rate ramp over DISCHARGE_RAMP_S
DISCHARGE_RAMP_S = 7200
CLEAR_TARGET_SOC = 90.0
CLOUDY_WINDOW_S = 16_200  # a cloudy day's charge window (4.5 h)
CLOUDY_DAY_PROBABILITY = 0.25
NOMINAL_CELL_V = 3.7
PCS_EFFICIENCY = 0.975
COUNTER_EPOCH = date(2020, 1, 1)  # energy counters count from here
COMMISSIONING = {1: date(2021, 9, 27), 2: date(2022, 2, 21), 3: date(2023, 1, 4)}  # reference §2.1
DEFAULT_COMMISSIONING = date(2022, 1, 1)
SOH_LOSS_PER_YEAR = 2.0
ROOM_BASE_C = 23.0


@dataclass(frozen=True)
class ProtectionLimits:
    """Reference §3.2 thresholds; every comparison is strict (beyond the limit)."""

    over_voltage_warning_v: float = 4.05
    over_voltage_fault_v: float = 4.10
    under_voltage_warning_v: float = 3.20
    under_voltage_fault_v: float = 3.00
    voltage_gap_warning_v: float = 0.3
    voltage_gap_fault_v: float = 0.5
    over_current_fault_a: float = 120.0
    over_temperature_warning_c: float = 50.0
    over_temperature_fault_c: float = 55.0
    under_temperature_warning_c: float = 0.0
    under_temperature_fault_c: float = -10.0
    temperature_gap_warning_c: float = 20.0
    temperature_gap_fault_c: float = 25.0


LIMITS = ProtectionLimits()


# ----- labelled anomalies ----------------------------------------------------------------

@dataclass(frozen=True)
class Anomaly:
    """One injected anomaly, placed relative to the demo's anchor day.

    `start`/`end` are local wall-clock times of day `anchor + day_offset`, half-open
    [start, end). `site_id` 0 means every site; `rack_id` 0 means bank level (or every rack
    of the site for the data-quality kinds). `position` is the cell (voltage) or sensor
    (temperature) number involved, 0 if none.
    """

    site_id: int
    bank_id: int
    rack_id: int
    kind: str
    day_offset: int
    start: time
    end: time
    columns: tuple[str, ...]
    outcome: str
    position: int = 0
    description: str = ""


@dataclass(frozen=True)
class AnomalyWindow:
    """An anomaly at absolute times for one site: [start, end), aware in the site's zone."""

    anomaly: Anomaly
    site_id: int
    bank_id: int
    rack_id: int
    start: datetime
    end: datetime


_VOLTAGE_COLS = ("RACK_MAX_CELL_VOLTAGE", "RACK_MAX_CELL_VOLTAGE_POSITION", "RACK_MIN_CELL_VOLTAGE",
                 "RACK_MIN_CELL_VOLTAGE_POSITION", "RACK_CELL_VOLTAGE_GAP")

ANOMALIES: tuple[Anomaly, ...] = (
    *(Anomaly(
        site_id=s, bank_id=1, rack_id=r, kind="weak_cell", day_offset=1, start=time(13, 30), end=time(14, 0),
        position=p, columns=(*_VOLTAGE_COLS, "RACK_VOLTAGE_IMBALANCE_WARNING", "RACK_OVER_VOLTAGE_PROTECTION_WARNING",
                              "RACK_OVER_VOLTAGE_PROTECTION_FAULT", "RACK_STATUS_FOR_WARNING", "RACK_STATUS_FOR_FAULT"),
        outcome="RACK_CELL_VOLTAGE_GAP > 0.3 V: voltage-imbalance warning (first at the end of the charge on day 1; "
                "the overcharged weak cell also exceeds 4.05/4.10 V: over-voltage warning and fault)",
        description=f"Weak cell {p} (lost parallel cells): the cell-voltage gap grows about 0.045 V a day; the cell "
                    "is the max-voltage cell at the end of each charge and the min-voltage cell at the end of each "
                    "discharge; the gap exceeds 0.5 V (imbalance fault) from about day 6 (clear days; cloudy "
                    "days stay lower), and from about day 2 the cell also dips below 3.20 V at the end of "
                    "the discharge (under-voltage warning).")
      for s, r, p in ((1, 2, 117), (2, 3, 203), (3, 1, 45))),
    Anomaly(site_id=1, bank_id=1, rack_id=3, kind="over_voltage", day_offset=0, start=time(13, 34), end=time(13, 36),
            position=58, columns=("RACK_MAX_CELL_VOLTAGE", "RACK_MAX_CELL_VOLTAGE_POSITION",
                                  "RACK_OVER_VOLTAGE_PROTECTION_WARNING", "RACK_OVER_VOLTAGE_PROTECTION_FAULT",
                                  "RACK_STATUS_FOR_WARNING", "RACK_STATUS_FOR_FAULT"),
            outcome="RACK_MAX_CELL_VOLTAGE > 4.05 V for about 108 s: over-voltage warning; > 4.10 V for 5 s "
                    "(13:35:02-13:35:06): over-voltage fault",
            description="Short over-voltage of cell 58 near the end of the charge."),
    Anomaly(site_id=2, bank_id=1, rack_id=2, kind="over_temperature", day_offset=1, start=time(14, 0),
            end=time(16, 0), position=27,
            columns=("RACK_MAX_CELL_TEMPERATURE", "RACK_MAX_CELL_TEMPERATURE_POSITION", "RACK_CELL_TEMPERATURE_GAP",
                     "RACK_OVER_TEMPERATURE_WARNING", "RACK_STATUS_FOR_WARNING"),
            outcome="RACK_MAX_CELL_TEMPERATURE > 50 °C for about 25 minutes around 15:00 (peak 52.0 °C): "
                    "over-temperature warning, no fault",
            description="Hot afternoon: the rack's cooling fails; sensor 27 peaks at 52 °C, the rest of the rack "
                        "follows at about half the rise."),
    Anomaly(site_id=3, bank_id=1, rack_id=2, kind="communication_fault", day_offset=0, start=time(18, 0),
            end=time(18, 2),
            columns=("MASTER_RACK_COMMUNICATION_FAULT", "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS",
                     "RACK_TRAY_RACK_COMMUNICATION_FAULT", "RACK_STATUS_FOR_FAULT", "BATTERY_STATUS_FOR_FAULT"),
            outcome='MASTER_RACK_COMMUNICATION_FAULT {"rack2": 1} and RACK_TRAY_RACK_COMMUNICATION_FAULT = 1: '
                    "communication faults (error codes 13 and 14)",
            description="Communication-fault burst between the master BMS and rack 2 (2 minutes)."),
    Anomaly(site_id=0, bank_id=0, rack_id=0, kind="missing_seconds", day_offset=0, start=time(3, 0),
            end=time(3, 0, 10), columns=("TIMESTAMP",),
            outcome="no rows for 10 seconds in every component (data-loss counters see 10 s)",
            description="A collection gap: every component of every site misses 03:00:00-03:00:09."),
    Anomaly(site_id=0, bank_id=0, rack_id=0, kind="duplicated_second", day_offset=0, start=time(4, 0),
            end=time(4, 0, 1), columns=("TIMESTAMP", "RACK_VOLTAGE"),
            outcome="the rack frame holds 04:00:00 twice per rack (RACK_VOLTAGE differs by 0.3 V); the store "
                    "keeps one row per rack and counts one duplicate per rack",
            description="A duplicated second in the rack data, as real collectors produce."),
)

# the weak cell's extra voltage at the end of a charge: WEAK_GAP_AT_ANCHOR + WEAK_GAP_PER_DAY * days since
# the anchor's midnight (continuous in time, so there is no jump at midnight), capped at WEAK_GAP_MAX
WEAK_GAP_AT_ANCHOR = 0.276
WEAK_GAP_PER_DAY = 0.045
WEAK_GAP_MAX = 0.6
HOT_PEAK_C = 52.0


def list_anomalies(site: Site, anchor: date, start: datetime, end: datetime) -> list[AnomalyWindow]:
    """The anomalies of `site` whose window overlaps [start, end), at absolute times.

    Anomalies whose rack is not in the site's topology are left out. Raises InvalidQuery
    for naive or reversed bounds.
    """
    _check_range(start, end)
    tz = site.tz
    out: list[AnomalyWindow] = []
    for a in ANOMALIES:
        if a.site_id not in (0, site.id):
            continue
        if a.rack_id and (a.bank_id, a.rack_id) not in site.rack_keys:
            continue
        if a.bank_id and a.bank_id not in site.bank_ids:
            continue
        day = anchor + timedelta(days=a.day_offset)
        a_start = datetime.combine(day, a.start, tzinfo=tz)
        a_end = datetime.combine(day, a.end, tzinfo=tz)
        if a_start < end and a_end > start:
            out.append(AnomalyWindow(a, site.id, a.bank_id, a.rack_id, a_start, a_end))
    return out


def _site_anomalies(site: Site) -> list[Anomaly]:
    return [a for a in ANOMALIES if a.site_id in (0, site.id)]


# ----- small numerical helpers -----------------------------------------------------------

def lowpass(x: np.ndarray, tau: float, y0: float = 0.0) -> np.ndarray:
    """Exact first-order filter y[n] = a*y[n-1] + (1-a)*x[n], a = exp(-1/tau), y[-1] = y0,
    along the last axis (tau in samples).

    O(N) and vectorised: within blocks of L samples the response is a cumulative sum of
    x*a^-k (bounded by a^-L <= e^5, so no precision loss), and only the block-end states
    are carried in a short Python loop (N/L steps).
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    a = math.exp(-1.0 / tau)
    block = int(min(256, max(2, 5 * tau)))
    nb = -(-n // block)
    lead = x.shape[:-1]
    xp = np.zeros((*lead, nb * block))
    xp[..., :n] = x
    xb = xp.reshape(*lead, nb, block)
    k = np.arange(block)
    inner = np.cumsum(xb * a ** (-k), axis=-1)
    inner *= (1.0 - a) * a ** k
    a_block = a ** block
    ends = inner[..., -1]
    enter = np.empty((*lead, nb))
    state = np.full(lead, float(y0))
    for j in range(nb):
        enter[..., j] = state
        state = a_block * state + ends[..., j]
    inner += enter[..., None] * a ** (k + 1)
    return inner.reshape(*lead, nb * block)[..., :n]


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _day_uniforms(seed: int, site_id: int, ordinals: np.ndarray, streams: int) -> np.ndarray:
    """Uniform [0, 1) numbers per (day, stream), a pure function of (seed, site, ordinal):
    vectorised over many days, so energy counters can sum over years of days cheaply."""
    ords = np.atleast_1d(np.asarray(ordinals, dtype=np.int64)).astype(np.uint64)
    key = _mix64(_mix64(np.array([seed & (2**63 - 1)], dtype=np.uint64)) ^ np.uint64(site_id))
    key = _mix64(key ^ ords)
    out = np.empty((ords.size, streams))
    for s in range(streams):
        z = _mix64(key + np.uint64(((s + 1) * 0x632BE59BD9B4E019) & (2**64 - 1)))
        out[:, s] = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return out


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], tod: np.ndarray, knot_s: float,
                  tau_knots: float) -> np.ndarray:
    """Unit-variance noise correlated over ~tau_knots*knot_s seconds, sampled at `tod`
    (local seconds of day): AR(1) on knots, linearly interpolated."""
    n_knots = int(tod.max() // knot_s) + 2
    z = rng.standard_normal((*shape, n_knots))
    a = math.exp(-1.0 / tau_knots)
    y = lowpass(z, tau_knots) / math.sqrt((1 - a) / (1 + a))
    step = int(knot_s)
    if step == knot_s and tod.size <= (n_knots - 1) * step and tod[0] == 0 and tod[-1] == tod.size - 1:
        # the usual day (no clock change): every knot interval holds `step` seconds, so
        # interpolate by broadcasting instead of gathering
        frac = np.arange(step) / step
        dense = y[..., :-1, None] + (y[..., 1:] - y[..., :-1])[..., None] * frac
        return dense.reshape(*shape, -1)[..., :tod.size]
    pos = tod / knot_s
    i0 = pos.astype(np.int64)
    w = pos - i0
    return y[..., i0] * (1.0 - w) + y[..., i0 + 1] * w


def _drift(ts_s: np.ndarray, periods: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Slow unit-variance wander of K candidates: three sinusoids each, functions of absolute
    time (so continuous across midnight while every day is generated alone)."""
    t = (ts_s - ts_s[0]).astype(float)
    start = float(ts_s[0])
    out = np.zeros((periods.shape[0], t.size))
    for j in range(periods.shape[1]):
        w = 2 * np.pi / periods[:, j:j + 1]
        out += np.sin(w * t + (w[:, 0] * start + phases[:, j])[:, None])
    return out * math.sqrt(2.0 / periods.shape[1])


# ----- per-site, per-rack and per-day parameters -----------------------------------------

def rack_capacity_ah(site: Site) -> float:
    """Nominal rack capacity: 228.6 Ah for 240S racks (Panri), 246 Ah otherwise (reference §8.3)."""
    return 228.6 if site.cells_per_rack >= 240 else 246.0


def _modules_per_rack(site: Site) -> int:
    return max(1, site.cells_per_rack // 12)


@dataclass
class _RackModel:
    bank_id: int
    rack_id: int
    share: float  # current share: this rack's current / (C-rate * its capacity); <= 1
    soh_loss_factor: float
    soh_offset: float
    r0_ohm: float
    temp_offset_c: float
    v_pos: np.ndarray  # (K,) candidate cell positions
    v_off: np.ndarray  # (K,) static offsets, V
    v_kappa: np.ndarray  # (K,) capacity mismatch (SoC excursion factor)
    v_rho: np.ndarray  # (K,) resistance mismatch (fraction)
    t_pos: np.ndarray  # (KT,) candidate temperature sensors
    t_off: np.ndarray
    t_heat: np.ndarray
    m_pos: np.ndarray  # (KM,) candidate modules
    m_off_t: np.ndarray
    m_off_h: np.ndarray
    drift: dict[str, tuple[np.ndarray, np.ndarray]]  # per candidate group: (periods s, phases), (K, 3) each
    weak_position: int = 0
    over_voltage_position: int = 0
    hot_position: int = 0


_V_OFFSETS_V = np.array([0.011, 0.009, 0.007, 0.005, -0.005, -0.007, -0.009, -0.011])
_T_OFFSETS_C = np.array([4.0, 3.0, 2.0, -1.5, -2.5, -3.2])
_T_HEAT = np.array([0.15, 0.10, 0.05, -0.05, -0.08, -0.10])
_M_OFFSETS_C = np.array([1.5, 0.5, -0.5, -1.5])
_M_OFFSETS_H = np.array([-3.0, -1.0, 1.0, 3.0])


def _place(positions: np.ndarray, index: int, value: int) -> None:
    """Put `value` at `index`, swapping if it is already elsewhere (positions stay distinct)."""
    hit = np.flatnonzero(positions == value)
    if hit.size:
        positions[hit[0]] = positions[index]
    positions[index] = value


def _rack_model(site: Site, seed: int, bank_id: int, rack_id: int) -> _RackModel:
    """Static parameters of one rack: a pure function of (seed, site, bank, rack), so a rack
    looks the same whatever other racks the topology lists."""
    rng = np.random.default_rng([seed, site.id, bank_id, rack_id, 11])
    k, kt, km = len(_V_OFFSETS_V), len(_T_OFFSETS_C), len(_M_OFFSETS_C)
    cells, sensors, modules = site.cells_per_rack, site.temperature_sensors_per_rack, _modules_per_rack(site)
    model = _RackModel(
        bank_id=bank_id, rack_id=rack_id,
        share=1.0 - 0.02 * rng.random(),
        soh_loss_factor=rng.uniform(0.9, 1.1),
        soh_offset=rng.uniform(0.0, 0.6),
        r0_ohm=R0_OHM * rng.uniform(0.95, 1.08),
        temp_offset_c=rng.uniform(0.3, 1.5),
        v_pos=rng.choice(cells, size=min(k, cells), replace=False) + 1,
        v_off=_V_OFFSETS_V + rng.uniform(-0.0015, 0.0015, k),
        v_kappa=np.clip(rng.normal(0.0, 0.005, k), -0.01, 0.01),
        v_rho=rng.normal(0.0, 0.05, k),
        t_pos=rng.choice(sensors, size=min(kt, sensors), replace=False) + 1,
        t_off=_T_OFFSETS_C + rng.uniform(-0.4, 0.4, kt),
        t_heat=_T_HEAT.copy(),
        m_pos=rng.choice(modules, size=min(km, modules), replace=False) + 1,
        m_off_t=_M_OFFSETS_C + rng.uniform(-0.3, 0.3, km),
        m_off_h=_M_OFFSETS_H + rng.uniform(-0.5, 0.5, km),
        drift={name: (rng.uniform(lo, hi, (size, 3)), rng.uniform(0.0, 2 * np.pi, (size, 3)))
               for name, size, lo, hi in (("v", k, 1200.0, 10_800.0), ("t", kt, 1800.0, 14_400.0),
                                          ("m", km, 3600.0, 21_600.0))},
    )
    for a in _site_anomalies(site):
        if (a.bank_id, a.rack_id) != (bank_id, rack_id):
            continue
        if a.kind == "weak_cell":
            model.weak_position = min(a.position, cells)
            _place(model.v_pos, 0, model.weak_position)
            model.v_off[0], model.v_kappa[0], model.v_rho[0] = 0.0, 0.0, 0.0
            model.soh_offset += 0.3
        elif a.kind == "over_voltage":
            model.over_voltage_position = min(a.position, cells)
            _place(model.v_pos, 1, model.over_voltage_position)
        elif a.kind == "over_temperature":
            model.hot_position = min(a.position, sensors)
            _place(model.t_pos, 0, model.hot_position)
    return model


@dataclass(frozen=True)
class _DayPlan:
    cloudy: bool
    target_soc: float  # reference rack's SoC at the end of the charge, %
    cloud_level: float  # PV energy as a fraction of clear sky
    charge_start_s: float  # local seconds of day
    discharge_start_s: float


def _plan_arrays(seed: int, site_id: int, ordinals: np.ndarray, anchor_ordinal: int) -> dict[str, np.ndarray]:
    """Per-day scalars for many days at once (vectorised; see _DayPlan)."""
    u = _day_uniforms(seed, site_id, ordinals, 5)
    offset = np.asarray(ordinals) - anchor_ordinal
    cloudy = (u[:, 0] < CLOUDY_DAY_PROBABILITY) & ~np.isin(offset, (0, 1))  # the anchor day and the next are clear
    return {
        "cloudy": cloudy,
        "target_soc": np.where(cloudy, 35.0 + 30.0 * u[:, 1], CLEAR_TARGET_SOC),
        "cloud_level": np.where(cloudy, 0.3 + 0.3 * u[:, 2], 0.95 + 0.04 * u[:, 2]),
        "charge_start_s": 36_000.0 + np.round((u[:, 3] - 0.5) * 480.0),
        "discharge_start_s": 57_600.0 + np.round((u[:, 4] - 0.5) * 600.0),
    }


def _day_plan(seed: int, site_id: int, day: date, anchor: date) -> _DayPlan:
    p = _plan_arrays(seed, site_id, np.array([day.toordinal()]), anchor.toordinal())
    return _DayPlan(bool(p["cloudy"][0]), float(p["target_soc"][0]), float(p["cloud_level"][0]),
                    float(p["charge_start_s"][0]), float(p["discharge_start_s"][0]))


def _commissioning(site: Site) -> date:
    return COMMISSIONING.get(site.id, DEFAULT_COMMISSIONING)


def _soh(site: Site, model: _RackModel, day: date) -> float:
    years = max(0.0, (day - _commissioning(site)).days / 365.25)
    return round(min(100.0, 100.0 - SOH_LOSS_PER_YEAR * model.soh_loss_factor * years - model.soh_offset), 1)


def _clear_day_length_h(doy: np.ndarray | float) -> Any:
    return 12.0 + 2.4 * np.sin(2 * np.pi * (np.asarray(doy) - 80) / 365.0)


def _pv_amplitude(doy: np.ndarray | float) -> Any:
    return 0.85 + 0.15 * np.sin(2 * np.pi * (np.asarray(doy) - 80) / 365.0)


_SIN15_MEAN = float(np.mean(np.sin(np.pi * (np.arange(100_000) + 0.5) / 100_000) ** 1.5))


def _pv_clear(tod: np.ndarray, doy: int) -> np.ndarray:
    """Clear-sky PV output as a fraction of the plant's peak (solar noon 12:30 local)."""
    length = float(_clear_day_length_h(doy))
    x = (tod / 3600.0 - (12.5 - length / 2.0)) / length
    inside = (x > 0) & (x < 1)
    return np.where(inside, float(_pv_amplitude(doy)) * np.sin(np.pi * np.clip(x, 0, 1)) ** 1.5, 0.0)


@dataclass(frozen=True)
class _SiteSizes:
    ah_nominal: float
    energy_kwh: float  # nominal battery energy of the site
    pv_peak_kw: float
    pcs_rated_kw: float


def _site_sizes(site: Site) -> _SiteSizes:
    ah = rack_capacity_ah(site)
    energy = len(site.rack_keys) * ah * site.cells_per_rack * NOMINAL_CELL_V / 1000.0
    return _SiteSizes(ah, energy, round(0.35 * energy, 0), round(0.5 * energy, 0))


def _counter_bases(seed: int, site: Site, day: date, anchor: date, sizes: _SiteSizes) -> dict[str, float]:
    """Energy counters at the day's local midnight and the day's increments (kWh): sums of
    per-day estimates from COUNTER_EPOCH, so counters rise across midnight without
    generating earlier days."""
    first, this = COUNTER_EPOCH.toordinal(), day.toordinal()
    ords = np.arange(first, this + 1)
    if ords.size == 0:
        ords = np.array([this])
    p = _plan_arrays(seed, site.id, ords, anchor.toordinal())
    charge_dc = p["target_soc"] / 100.0 * sizes.energy_kwh
    dates_doy = (ords - date(2000, 1, 1).toordinal()) % 365.25 + 1
    pv = sizes.pv_peak_kw * _clear_day_length_h(dates_doy) * _pv_amplitude(dates_doy) * _SIN15_MEAN * p["cloud_level"]
    series = {
        "charge_dc": charge_dc,
        "discharge_dc": charge_dc * 0.95,
        "charge_ac": charge_dc / PCS_EFFICIENCY,
        "discharge_ac": charge_dc * 0.95 * PCS_EFFICIENCY,
        "pv": pv,
    }
    before = ords < this
    out: dict[str, float] = {}
    for name, values in series.items():
        out[name + "_base"] = float(values[before].sum()) if this >= first else 0.0
        out[name + "_day"] = float(values[-1]) if this >= first else 0.0
    return out


# ----- the day simulation ----------------------------------------------------------------

@dataclass
class _Day:
    site: Site
    day: date
    anchor: date
    ts_s: np.ndarray  # (N,) epoch seconds
    tod: np.ndarray  # (N,) local wall-clock seconds of day
    keep: np.ndarray  # (N,) False for the missing seconds
    dup_index: int  # index of the duplicated second, -1 if none
    racks: dict[str, np.ndarray]  # (N, R) arrays, time-major like the frames
    rack_static: dict[str, np.ndarray]  # (R,) arrays
    site_series: dict[str, np.ndarray]  # (N,) arrays
    counters: dict[str, float]
    sizes: _SiteSizes
    cache: dict[str, Any] = field(default_factory=dict)  # derived arrays shared by the frames


def _local_seconds(site: Site, day: date) -> tuple[np.ndarray, np.ndarray]:
    tz = site.tz
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    start_s = int(start.timestamp())
    n = int(end.timestamp()) - start_s
    ts_s = start_s + np.arange(n, dtype=np.int64)
    if start.utcoffset() == (end - timedelta(seconds=1)).utcoffset():
        tod = np.arange(n, dtype=float)
    else:  # a daylight-saving change inside the day: wall-clock time of each second
        local = pd.to_datetime(ts_s, unit="s", utc=True).tz_convert(tz)
        tod = (local.hour * 3600 + local.minute * 60 + local.second).to_numpy(dtype=float)
    return ts_s, tod


def _truncate_to(rate_abs: np.ndarray, soc_pct: float) -> tuple[np.ndarray, int]:
    """Cut a C-rate profile (1/h, >= 0) once it has moved `soc_pct` % of charge; the last
    second is partial, so the total is exact. Returns the profile and the end index."""
    cum = np.cumsum(rate_abs) / 36.0
    i = int(np.searchsorted(cum, soc_pct))
    out = rate_abs.copy()
    if i >= out.size:
        return out, out.size
    out[i] = (soc_pct - (cum[i - 1] if i else 0.0)) * 36.0
    out[i + 1:] = 0.0
    return out, i + 1


def _c_rate_profile(plan: _DayPlan, tod: np.ndarray, cloud: np.ndarray) -> np.ndarray:
    """The reference rack's C-rate over the day (1/h; + charge, - discharge)."""
    c0 = plan.charge_start_s
    since = tod - c0
    ramp_up = np.clip((since + 1.0) / 120.0, 0.0, 1.0) * (since >= 0)
    if not plan.cloudy:
        down = C_CHARGE * (1.0 - (np.arange(60) + 1.0) / 60.0)
        charge, end = _truncate_to(C_CHARGE * ramp_up, plan.target_soc - down.sum() / 36.0)
        tail = min(60, charge.size - end)
        charge[end:end + tail] = down[:tail]
        charge_pct = charge.sum() / 36.0
    else:
        env = ramp_up * np.clip((c0 + CLOUDY_WINDOW_S - tod) / 120.0, 0.0, 1.0)
        lo, hi = 0.0, 50.0
        for _ in range(50):  # the cloud multiplier that moves exactly target_soc
            mid = 0.5 * (lo + hi)
            if (C_CHARGE * np.minimum(1.0, mid * cloud) * env).sum() / 36.0 < plan.target_soc:
                lo = mid
            else:
                hi = mid
        charge = C_CHARGE * np.minimum(1.0, hi * cloud) * env
        charge *= plan.target_soc / max(charge.sum() / 36.0, 1e-9)
        charge_pct = plan.target_soc
    d0 = plan.discharge_start_s
    since_d = tod - d0
    ramp = C_DISCHARGE_START + (C_DISCHARGE_END - C_DISCHARGE_START) * np.clip(since_d / DISCHARGE_RAMP_S, 0, 1)
    discharge = ramp * np.clip((since_d + 1.0) / 60.0, 0.0, 1.0) * (since_d >= 0)
    discharge, _ = _truncate_to(discharge, charge_pct)
    return charge - discharge


def _room(site: Site, seed: int, ts_s: np.ndarray, tod: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Room temperature (°C) and humidity (%): smooth functions of absolute time (seasonal,
    daily and multi-day weather terms), so they are continuous across midnight."""
    rng = np.random.default_rng([seed, site.id, 3])
    phases = rng.uniform(0, 2 * np.pi, 6)
    days = ts_s / DAY_S
    doy = (days - 10_957.0) % 365.25  # days since 2000-01-01, modulo a year
    hour = tod / 3600.0
    weather_t = (0.8 * np.sin(2 * np.pi * days / 2.7 + phases[0]) + 0.6 * np.sin(2 * np.pi * days / 4.3 + phases[1])
                 + 0.5 * np.sin(2 * np.pi * days / 9.1 + phases[2]))
    temp = (ROOM_BASE_C + 2.0 * np.sin(2 * np.pi * (doy - 110) / 365.25) + 2.0 * np.cos(2 * np.pi * (hour - 15) / 24)
            + weather_t + 0.3 * (site.id % 3))
    weather_h = (3.0 * np.sin(2 * np.pi * days / 3.1 + phases[3]) + 2.0 * np.sin(2 * np.pi * days / 5.9 + phases[4]))
    hum = 45.0 + 6.0 * np.sin(2 * np.pi * (doy - 150) / 365.25) + 7.0 * np.cos(2 * np.pi * (hour - 5) / 24) + weather_h
    return temp, hum


def _window_mask(tod: np.ndarray, start: time, end: time) -> np.ndarray:
    s = start.hour * 3600 + start.minute * 60 + start.second
    e = end.hour * 3600 + end.minute * 60 + end.second
    return (tod >= s) & (tod < e)


def _over_voltage_target(n: int) -> np.ndarray:
    """Max-cell voltage of the over-voltage anomaly, one value per second of its window:
    a ramp, a plateau at 4.06-4.08 V and a 5-second spike above 4.10 V (seconds 62-66)."""
    s = np.arange(n, dtype=float)
    target = 4.062 + 0.010 * np.sin(np.pi * np.clip(s - 10, 0, 100) / 100) + 0.002 * np.sin(1.7 * s)
    target = np.where(s < 10, 4.040 + 0.0018 * s, target)
    target = np.where(s >= n - 10, 4.058 - 0.0018 * (s - (n - 10)), target)
    spike = np.array([4.104, 4.108, 4.112, 4.109, 4.103])
    if n >= 67:
        target[62:67] = spike
    return target


@dataclass(frozen=True)
class _DayContext:
    """What every rack of a site-day shares."""

    site: Site
    seed: int
    day: date
    ts_s: np.ndarray
    tod: np.ndarray
    rate: np.ndarray  # reference C-rate, 1/h
    room_t: np.ndarray
    room_h: np.ndarray
    tau_days: np.ndarray  # days since the anchor's local midnight
    windows: dict[str, Anomaly]  # this day's anomalies by kind
    ah_nominal: float


def _extremes(values: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Max, its position, min, its position over the candidate axis 0 of (K, N) values."""
    imax, imin = values.argmax(axis=0), values.argmin(axis=0)
    cols = np.arange(values.shape[1])
    return values[imax, cols], positions[imax].astype(float), values[imin, cols], positions[imin].astype(float)


def _hot_shape(ctx: _DayContext) -> np.ndarray | None:
    hot = ctx.windows.get("over_temperature")
    if hot is None:
        return None
    start_s = hot.start.hour * 3600 + hot.start.minute * 60 + hot.start.second
    length = hot.end.hour * 3600 + hot.end.minute * 60 + hot.end.second - start_s
    return np.where(_window_mask(ctx.tod, hot.start, hot.end), np.sin(np.pi * (ctx.tod - start_s) / length) ** 2, 0.0)


def _simulate_rack(ctx: _DayContext, m: _RackModel, soh: float) -> dict[str, np.ndarray]:
    """One rack over the day, vectorised over the day's seconds and the candidate cells.
    Its random stream is seeded from (seed, site, day, bank, rack): a rack's data does not
    depend on which other racks the topology lists."""
    rng = np.random.default_rng([ctx.seed, ctx.site.id, ctx.day.toordinal(), m.bank_id, m.rack_id])
    n, tod, cells = ctx.ts_s.size, ctx.tod, ctx.site.cells_per_rack
    k = m.v_pos.size
    i_noise = rng.standard_normal(n) * 0.15
    v_white = rng.standard_normal((k, n), dtype=np.float32)
    v_drift, t_drift, m_drift = (_drift(ctx.ts_s, *m.drift[name]) for name in ("v", "t", "m"))

    # current (0.1 A) and coulomb-counted SoC from the reported current
    ah_eff = ctx.ah_nominal * soh / 100.0
    operating = ctx.rate != 0.0
    current = np.where(operating, np.round(m.share * ah_eff * ctx.rate + i_noise, 1), 0.0)
    soc_true = np.clip(np.cumsum(current) / 3600.0 / ah_eff * 100.0, 0.0, 100.0)

    # mean cell voltage OCV + R0*I + RC, and the candidate cells
    cell_soc = CELL_SOC_AT_BMS_0 + CELL_SOC_PER_BMS_PCT * soc_true
    i_rc = lowpass(current, TAU_RC_S)  # the RC branch's current
    v_mean = np.interp(cell_soc, OCV_SOC_PCT, OCV_CELL_V) + m.r0_ohm * current + R1_OHM * i_rc
    cand = np.interp(cell_soc + m.v_kappa[:, None] * (cell_soc - 47.5), OCV_SOC_PCT, OCV_CELL_V)
    cand += (m.r0_ohm * (1.0 + m.v_rho))[:, None] * current + R1_OHM * i_rc + m.v_off[:, None]
    cand += np.clip(0.002 * v_drift, -0.005, 0.005) + 0.0007 * v_white
    if m.weak_position:  # candidate 0: overcharged at the top, over-discharged at the bottom
        g = np.clip(WEAK_GAP_AT_ANCHOR + WEAK_GAP_PER_DAY * ctx.tau_days, 0.0, WEAK_GAP_MAX)
        i_fast = lowpass(current, 30.0)
        soc_ref = soc_true / m.share  # 90 at the end of every clear charge, whatever the rack's share
        up = np.exp((soc_ref - CLEAR_TARGET_SOC) / 2.0) * (0.1 + 0.9 * np.clip(i_fast / (C_CHARGE * ah_eff), 0, 1))
        down = 0.4 * np.exp(-soc_ref / 2.0) * (0.4 + 0.6 * np.clip(-i_fast / (C_DISCHARGE_END * ah_eff), 0, 1))
        cand[0] += g * (up - down)
    ov = ctx.windows.get("over_voltage")
    if ov is not None and m.over_voltage_position:  # candidate 1
        mask = _window_mask(tod, ov.start, ov.end)
        cand[1, mask] = np.maximum(cand[1, mask], _over_voltage_target(int(mask.sum())))
    v_avg = v_mean + (cand - v_mean).sum(axis=0) / cells
    vmax, vmax_pos, vmin, vmin_pos = _extremes(cand, m.v_pos)
    vmax = np.round(np.maximum(vmax, v_avg + 0.001), 3)
    vmin = np.round(np.minimum(vmin, v_avg - 0.001), 3)
    v_avg = np.clip(np.round(v_avg, 3), vmin, vmax)

    # temperatures: room + I^2 R heating through the thermal filter; sensors and modules
    heat = lowpass(HEAT_RISE_C / (C_CHARGE * ctx.ah_nominal) ** 2 * current**2, TAU_THERMAL_S)
    t_mean = ctx.room_t + m.temp_offset_c + heat
    tc = t_mean + m.t_off[:, None] + m.t_heat[:, None] * heat + 0.3 * t_drift
    module_t = ctx.room_t + 0.55 * (t_mean - ctx.room_t) + m.m_off_t[:, None] + 0.2 * m_drift
    shape = _hot_shape(ctx)
    if shape is not None and m.hot_position:  # sensor 0 rises to HOT_PEAK_C, the rest of the rack half as much
        core = shape > 0.5
        rise = float(np.min((HOT_PEAK_C - tc[0, core]) / shape[core]))
        tc[0] += rise * shape
        tc[1:] += 0.5 * rise * shape
        t_mean = t_mean + 0.55 * rise * shape
        module_t += 0.4 * rise * shape
    tmax, tmax_pos, tmin, tmin_pos = _extremes(tc, m.t_pos)
    tmax, tmin = np.round(tmax, 1), np.round(tmin, 1)
    module_h = np.clip(ctx.room_h - 1.2 * (module_t - ctx.room_t) + m.m_off_h[:, None], 5.0, 95.0)
    mt_max, mt_max_pos, mt_min, mt_min_pos = _extremes(module_t, m.m_pos)
    mh_max, mh_max_pos, mh_min, mh_min_pos = _extremes(module_h, m.m_pos)

    comm = np.zeros(n, dtype=bool)
    burst = ctx.windows.get("communication_fault")
    if burst is not None and (burst.bank_id, burst.rack_id) == (m.bank_id, m.rack_id):
        comm = _window_mask(tod, burst.start, burst.end)
    return {
        "soc": np.round(soc_true, 1) + 0.0, "current": current,
        "voltage": np.round(cells * v_avg + 0.05 * i_noise, 1),
        "vmax": vmax, "vmax_pos": vmax_pos, "vmin": vmin, "vmin_pos": vmin_pos,
        "vgap": np.round(vmax - vmin, 3), "vavg": v_avg,
        "tmax": tmax, "tmax_pos": tmax_pos, "tmin": tmin, "tmin_pos": tmin_pos,
        "tgap": np.round(tmax - tmin, 1), "tavg": np.clip(np.round(t_mean, 1), tmin, tmax),
        "mt_max": np.round(mt_max, 1), "mt_max_pos": mt_max_pos, "mt_min": np.round(mt_min, 1),
        "mt_min_pos": mt_min_pos, "mh_max": np.round(mh_max, 1), "mh_max_pos": mh_max_pos,
        "mh_min": np.round(mh_min, 1), "mh_min_pos": mh_min_pos,
        "comm": comm,
    }


def _simulate(site: Site, day: date, seed: int, anchor: date) -> _Day:
    ts_s, tod = _local_seconds(site, day)
    n = ts_s.size
    offset = (day - anchor).days
    plan = _day_plan(seed, site.id, day, anchor)
    sizes = _site_sizes(site)
    day_rng = np.random.default_rng([seed, site.id, day.toordinal()])

    # clouds, PV and the battery's C-rate profile (site level)
    if plan.cloudy:
        cloud = np.clip(plan.cloud_level + 0.22 * _smooth_noise(day_rng, (), tod, 300.0, 3.0)
                        + 0.10 * _smooth_noise(day_rng, (), tod, 60.0, 1.0), 0.05, 1.0)
    else:
        cloud = np.clip(plan.cloud_level + 0.02 * _smooth_noise(day_rng, (), tod, 300.0, 3.0), 0.85, 1.0)
    pv_kw = sizes.pv_peak_kw * _pv_clear(tod, day.timetuple().tm_yday) * cloud
    rate = _c_rate_profile(plan, tod, cloud)
    room_t, room_h = _room(site, seed, ts_s, tod)
    windows = {a.kind: a for a in _site_anomalies(site) if a.day_offset == offset}
    anchor_midnight = datetime.combine(anchor, time(0), tzinfo=site.tz).timestamp()
    ctx = _DayContext(site, seed, day, ts_s, tod, rate, room_t, room_h, (ts_s - anchor_midnight) / DAY_S, windows,
                      sizes.ah_nominal)

    keys = site.rack_keys
    models = [_rack_model(site, seed, b, r) for b, r in keys]
    soh = np.array([_soh(site, m, day) for m in models])
    per_rack = [_simulate_rack(ctx, m, float(s)) for m, s in zip(models, soh, strict=True)]
    racks = {name: np.stack([r[name] for r in per_rack], axis=1) for name in per_rack[0]}  # (N, R): time-major
    del per_rack

    keep = np.ones(n, dtype=bool)
    if "missing_seconds" in windows:
        keep &= ~_window_mask(tod, windows["missing_seconds"].start, windows["missing_seconds"].end)
    dup_index = -1
    if "duplicated_second" in windows:
        hits = np.flatnonzero(_window_mask(tod, windows["duplicated_second"].start, windows["duplicated_second"].end))
        dup_index = int(hits[0]) if hits.size else -1

    rack_static = {
        "bank_id": np.array([b for b, _ in keys], dtype=np.int64),
        "rack_id": np.array([r for _, r in keys], dtype=np.int64),
        "soh": soh,
    }
    grid = _smooth_noise(day_rng, (4,), tod, 120.0, 10.0)
    site_series = {
        "rate": rate, "pv_kw": pv_kw, "room_t": room_t, "room_h": room_h,
        "grid_v": 400.0 + 6.0 * np.cos(2 * np.pi * (tod / 3600.0 - 3.0) / 24.0) + 1.5 * grid[0],
        "grid_f": 60.0 + 0.012 * grid[1] + 0.003 * day_rng.standard_normal(n),
        "phase_v": grid[2], "q_noise": grid[3],
        "room2_dt": 0.6 + 0.3 * _smooth_noise(day_rng, (), tod, 600.0, 3.0),
    }
    counters = _counter_bases(seed, site, day, anchor, sizes)
    return _Day(site, day, anchor, ts_s, tod, keep, dup_index, racks, rack_static, site_series, counters, sizes)


# ----- frames ----------------------------------------------------------------------------

# the BMS's 8 warnings and 13 faults, shared by the rack and bank tables (bank = OR over its racks)
RACK_WARNING_FLAGS: tuple[str, ...] = (
    "RACK_TEMPERATURE_IMBALANCE_WARNING", "RACK_UNDER_TEMPERATURE_WARNING", "RACK_OVER_TEMPERATURE_WARNING",
    "RACK_VOLTAGE_IMBALANCE_WARNING", "RACK_UNDER_VOLTAGE_PROTECTION_WARNING", "RACK_OVER_VOLTAGE_PROTECTION_WARNING",
    "RACK_OVER_CURRENT_CHARGE_WARNING", "RACK_OVER_CURRENT_DISCHARGE_WARNING",
)
RACK_FAULT_FLAGS: tuple[str, ...] = (
    "RACK_TEMPERATURE_IMBALANCE_FAULT", "RACK_UNDER_TEMPERATURE_FAULT", "RACK_OVER_TEMPERATURE_FAULT",
    "RACK_VOLTAGE_IMBALANCE_FAULT", "RACK_UNDER_VOLTAGE_PROTECTION_FAULT", "RACK_OVER_VOLTAGE_PROTECTION_FAULT",
    "RACK_OVER_CURRENT_CHARGE_FAULT", "RACK_OVER_CURRENT_DISCHARGE_FAULT", "RACK_CHARGE_RELAY_PLUS_FAULT_STATUS",
    "RACK_DISCHARGE_RELAY_MINUS_FAULT_STATUS", "RACK_FUSE_MINUS_FAULT_STATUS", "RACK_FUSE_PLUS_FAULT_STATUS",
    "RACK_TRAY_RACK_COMMUNICATION_FAULT",
)
_WARNING_NAMES, _FAULT_NAMES = RACK_WARNING_FLAGS, RACK_FAULT_FLAGS


def _rack_flags(day: _Day) -> dict[str, np.ndarray]:
    """BMS flags of every rack second (R, N), from the reported values and the limits of
    reference §3.2, strictly beyond the limit."""
    if "flags" in day.cache:
        return day.cache["flags"]
    r, lim = day.racks, LIMITS
    i = r["current"]
    never = np.zeros(i.shape, dtype=bool)
    flags = {
        "RACK_TEMPERATURE_IMBALANCE_WARNING": r["tgap"] > lim.temperature_gap_warning_c,
        "RACK_UNDER_TEMPERATURE_WARNING": r["tmin"] < lim.under_temperature_warning_c,
        "RACK_OVER_TEMPERATURE_WARNING": r["tmax"] > lim.over_temperature_warning_c,
        "RACK_VOLTAGE_IMBALANCE_WARNING": r["vgap"] > lim.voltage_gap_warning_v,
        "RACK_UNDER_VOLTAGE_PROTECTION_WARNING": r["vmin"] < lim.under_voltage_warning_v,
        "RACK_OVER_VOLTAGE_PROTECTION_WARNING": r["vmax"] > lim.over_voltage_warning_v,
        "RACK_OVER_CURRENT_CHARGE_WARNING": never,  # the map has no over-current warning level
        "RACK_OVER_CURRENT_DISCHARGE_WARNING": never,
        "RACK_TEMPERATURE_IMBALANCE_FAULT": r["tgap"] > lim.temperature_gap_fault_c,
        "RACK_UNDER_TEMPERATURE_FAULT": r["tmin"] < lim.under_temperature_fault_c,
        "RACK_OVER_TEMPERATURE_FAULT": r["tmax"] > lim.over_temperature_fault_c,
        "RACK_VOLTAGE_IMBALANCE_FAULT": r["vgap"] > lim.voltage_gap_fault_v,
        "RACK_UNDER_VOLTAGE_PROTECTION_FAULT": r["vmin"] < lim.under_voltage_fault_v,
        "RACK_OVER_VOLTAGE_PROTECTION_FAULT": r["vmax"] > lim.over_voltage_fault_v,
        "RACK_OVER_CURRENT_CHARGE_FAULT": i > lim.over_current_fault_a,
        "RACK_OVER_CURRENT_DISCHARGE_FAULT": i < -lim.over_current_fault_a,
        "RACK_CHARGE_RELAY_PLUS_FAULT_STATUS": never,
        "RACK_DISCHARGE_RELAY_MINUS_FAULT_STATUS": never,
        "RACK_FUSE_MINUS_FAULT_STATUS": never,
        "RACK_FUSE_PLUS_FAULT_STATUS": never,
        "RACK_TRAY_RACK_COMMUNICATION_FAULT": r["comm"],
    }
    day.cache["flags"] = flags
    return flags


def _json_flags(prefix: str, ids: Iterable[int], set_ids: Iterable[int] = ()) -> str:
    on = set(set_ids)
    return json.dumps({f"{prefix}{i}": int(i in on) for i in ids})


class _Columns:
    """Values of one component's columns for E entities (banks, racks or one device), all
    time-major like the frames: (N, E) arrays, or (N,) for one entity; (1, E) per-entity
    constants; scalars.

    `flat` lays a value out as rows (time, then entity) in one pass: without the missing
    seconds and, when `dup_index` >= 0, with each entity's row of that second repeated
    (copy first, then the original). Without either it is a reshape."""

    def __init__(self, keep: np.ndarray, entities: int, dup_index: int = -1) -> None:
        self.entities = entities
        self.values: dict[str, Any] = {}
        n = keep.size
        if dup_index >= 0 and not keep[dup_index]:
            dup_index = -1
        # runs of kept seconds, each with how many times its rows appear (1, or 2 for the duplicate)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
        runs: list[tuple[int, int, int]] = []
        for lo, hi in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
            if lo <= dup_index < hi:
                runs += [(lo, dup_index, 1), (dup_index, dup_index + 1, 2), (dup_index + 1, hi, 1)]
            else:
                runs.append((lo, hi, 1))
        self.runs = [(lo, hi, times) for lo, hi, times in runs if hi > lo]
        self.n = n
        self.rows = sum((hi - lo) * times for lo, hi, times in self.runs) * entities
        self.copies = np.empty(0, dtype=np.int64)
        pos = 0
        for lo, hi, times in self.runs:
            if times == 2:
                self.copies = pos + 2 * np.arange(entities)
            pos += (hi - lo) * times * entities

    def __setitem__(self, name: str, value: Any) -> None:
        self.values[name] = value

    def flat(self, value: Any, dtype: Any) -> np.ndarray:
        a = np.asarray(value)
        if a.ndim == 0:
            return np.full(self.rows, a, dtype=dtype)
        if a.ndim == 1:
            a = a[:, None]
        a = np.broadcast_to(a, (self.n, self.entities))
        if self.runs == [(0, self.n, 1)] and a.dtype == np.dtype(dtype) and a.flags.c_contiguous:
            return a.reshape(-1)
        out = np.empty(self.rows, dtype=dtype)
        pos = 0
        for lo, hi, times in self.runs:
            size = (hi - lo) * self.entities
            if times == 1:
                out[pos:pos + size].reshape(hi - lo, self.entities)[...] = a[lo:hi]
            else:
                out[pos:pos + 2 * size].reshape(self.entities, 2)[...] = a[lo][:, None]
            pos += size * times
        return out


def _per_entity(values: Iterable[Any], dtype: Any = None) -> np.ndarray:
    return np.asarray(list(values), dtype=dtype)[None, :]


def _flag(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.int8)


def _rack_columns(day: _Day, variant: str, fields: tuple[catalogue.Field, ...]) -> _Columns:
    r, st = day.racks, day.rack_static
    c = _Columns(day.keep, st["rack_id"].size, day.dup_index)
    i = r["current"]
    charging, discharging = i > 0.5, i < -0.5
    flags = _rack_flags(day)
    c["BANK_ID"], c["RACK_ID"] = st["bank_id"][None, :], st["rack_id"][None, :]
    c["RACK_SOC"], c["RACK_SOH"], c["RACK_VOLTAGE"], c["RACK_CURRENT"] = r["soc"], st["soh"][None, :], r["voltage"], i
    c["RACK_MAX_CELL_VOLTAGE"], c["RACK_MAX_CELL_VOLTAGE_POSITION"] = r["vmax"], r["vmax_pos"]
    c["RACK_MIN_CELL_VOLTAGE"], c["RACK_MIN_CELL_VOLTAGE_POSITION"] = r["vmin"], r["vmin_pos"]
    c["RACK_CELL_VOLTAGE_GAP"], c["RACK_CELL_VOLTAGE_AVERAGE"] = r["vgap"], r["vavg"]
    c["RACK_MAX_CELL_TEMPERATURE"], c["RACK_MAX_CELL_TEMPERATURE_POSITION"] = r["tmax"], r["tmax_pos"]
    c["RACK_MIN_CELL_TEMPERATURE"], c["RACK_MIN_CELL_TEMPERATURE_POSITION"] = r["tmin"], r["tmin_pos"]
    c["RACK_CELL_TEMPERATURE_GAP"], c["RACK_CELL_TEMPERATURE_AVERAGE"] = r["tgap"], r["tavg"]
    for x, key in (("MAX", "max"), ("MIN", "min")):
        c[f"RACK_{x}_MODULE_TEMPERATURE"] = r[f"mt_{key}"]
        c[f"RACK_{x}_MODULE_TEMPERATURE_POSITION"] = r[f"mt_{key}_pos"]
        c[f"RACK_{x}_MODULE_HUMIDITY"] = r[f"mh_{key}"]
        c[f"RACK_{x}_MODULE_HUMIDITY_POSITION"] = r[f"mh_{key}_pos"]
    c["RACK_DISCHARGE_RELAY_MINUS_STATUS"] = c["RACK_CHARGE_RELAY_PLUS_STATUS"] = np.int8(1)
    c["RACK_CELL_BALANCE_STATUS"] = _flag(~charging & ~discharging & (r["soc"] >= 85.0))  # top balancing at rest
    c["RACK_CURRENT_SENSOR_DISCHARGE"], c["RACK_CURRENT_SENSOR_CHARGE"] = _flag(discharging), _flag(charging)
    c["RACK_STATUS_FOR_RUN"] = c["RACK_STATUS_FOR_Online"] = np.int8(1)
    c["RACK_STATUS_FOR_WARNING"] = _flag(np.logical_or.reduce([flags[n] for n in _WARNING_NAMES]))
    c["RACK_STATUS_FOR_FAULT"] = _flag(np.logical_or.reduce([flags[n] for n in _FAULT_NAMES]))
    c["RACK_TRAY_VOLATGE_IMBALANCE_WARNING"] = np.int8(0)
    for name, value in flags.items():
        c[name] = _flag(value)
    c["RACK_MODULE_FAULT"] = np.array(_json_flags("module", range(1, _modules_per_rack(day.site) + 1)), dtype=object)
    return c


def _bank_slices(site: Site) -> list[tuple[int, slice, tuple[int, ...]]]:
    out, start = [], 0
    for bank in site.banks:
        out.append((bank.id, slice(start, start + len(bank.racks)), bank.racks))
        start += len(bank.racks)
    return out


def _bank_aggregates(day: _Day) -> dict[str, np.ndarray]:
    """(B, N) bank quantities from their racks: means, sums, extremes and ORs of flags."""
    if "banks" in day.cache:
        return day.cache["banks"]
    r, st = day.racks, day.rack_static
    flags = _rack_flags(day)
    parts: dict[str, list[np.ndarray]] = {}
    for _, sl, _ in _bank_slices(day.site):
        v = np.round(r["voltage"][:, sl].mean(axis=1), 1)
        i = np.round(r["current"][:, sl].sum(axis=1), 1)
        values = {
            "soc": np.round(r["soc"][:, sl].mean(axis=1), 1),
            "soh": np.full(day.ts_s.size, round(float(st["soh"][sl].mean()), 1)),
            "v": v, "i": i, "p": np.round(v * i / 1000.0, 1),
            "vmax": r["vmax"][:, sl].max(axis=1), "vmin": r["vmin"][:, sl].min(axis=1),
            "tmax": r["tmax"][:, sl].max(axis=1), "tmin": r["tmin"][:, sl].min(axis=1),
            "mt_max": r["mt_max"][:, sl].max(axis=1), "mt_min": r["mt_min"][:, sl].min(axis=1),
            "mh_max": r["mh_max"][:, sl].max(axis=1), "mh_min": r["mh_min"][:, sl].min(axis=1),
            "comm_any": r["comm"][:, sl].any(axis=1),
            **{name: flag[:, sl].any(axis=1) for name, flag in flags.items()},
        }
        for name, value in values.items():
            parts.setdefault(name, []).append(value)
    out = {name: np.stack(values, axis=1) for name, values in parts.items()}  # (N, B)
    day.cache["banks"] = out
    return out


def _bank_columns(day: _Day, variant: str, fields: tuple[catalogue.Field, ...]) -> _Columns:
    names = {f.name for f in fields}
    slices = _bank_slices(day.site)
    b = _bank_aggregates(day)
    c = _Columns(day.keep, len(slices))
    i = b["i"]
    charging, discharging = i > 0.5, i < -0.5
    c["BANK_ID"] = _per_entity((bid for bid, _, _ in slices), np.int64)
    c["BANK_SOC"], c["BANK_SOH"], c["BANK_DC_VOLT"], c["BANK_DC_CURRENT"] = b["soc"], b["soh"], b["v"], i
    c["BANK_POWER"] = b["p"]
    c["MAX_CELL_VOLTAGE_OF_BANK"], c["MIN_CELL_VOLTAGE_OF_BANK"] = b["vmax"], b["vmin"]
    c["MAX_CELL_TEMPERATURE_OF_BANK"], c["MIN_CELL_TEMPERATURE_OF_BANK"] = b["tmax"], b["tmin"]
    c["MAX_MODULE_TEMPERATURE"], c["MIN_MODULE_TEMPERATURE"] = b["mt_max"], b["mt_min"]
    c["MAX_MODULE_HUMIDITY"], c["MIN_MODULE_HUMIDITY"] = b["mh_max"], b["mh_min"]
    for name in (*_WARNING_NAMES, *_FAULT_NAMES):
        c[name] = _flag(b[name])
    c["RACK_TRAY_VOLTAGE_IMBALANCE_WARNING"] = np.int8(0)
    # master BMS <-> rack communication: per rack (site 1), as JSON (sites 2/3), any rack
    comm = day.racks["comm"]
    n = day.ts_s.size
    for name in names:  # site 1: RACK_N001_... is the bank's first rack; 0 where the bank has no such rack
        if name.startswith("RACK_N") and name.endswith("_MASTER_RACK_COMMUNICATION_FAULT"):
            pos = int(name[6:9]) - 1
            c[name] = np.stack([_flag(comm[:, sl][:, pos]) if pos < len(racks) else np.zeros(n, np.int8)
                                for _, sl, racks in slices], axis=1)
    if any(f.name == "MASTER_RACK_COMMUNICATION_FAULT" and f.kind == "json" for f in fields):
        texts = np.empty((n, len(slices)), dtype=object)
        for j, (_, sl, racks) in enumerate(slices):
            texts[:, j] = _json_flags("rack", racks)
            bank_comm = comm[:, sl]
            for t in np.flatnonzero(bank_comm.any(axis=1)):
                texts[t, j] = _json_flags("rack", racks, np.asarray(racks)[bank_comm[t]].tolist())
        c["MASTER_RACK_COMMUNICATION_FAULT"] = texts
    else:
        c["MASTER_RACK_COMMUNICATION_FAULT"] = _flag(b["comm_any"])
    c["RACK_TO_MASTER_BMS_COMMUNICATION_STATUS"] = _flag(b["comm_any"])
    c["BATTERY_STATUS_FOR_RUN"] = np.int8(1)
    if "BATTERY_STATUS_FOR_STANDBY" in names:  # sites 2/3: separate 0/1 flags
        c["BATTERY_STATUS_FOR_CHARGE"], c["BATTERY_STATUS_FOR_DISCHARGE"] = _flag(charging), _flag(discharging)
        c["BATTERY_STATUS_FOR_STANDBY"] = _flag(~charging & ~discharging)
    else:  # site 1: tri-state 1 charge, 2 discharge, 3 standby
        c["BATTERY_STATUS_FOR_CHARGE"] = np.where(charging, 1, np.where(discharging, 2, 3)).astype(np.int8)
    c["BATTERY_STATUS_FOR_WARNING"] = _flag(np.logical_or.reduce([b[n] for n in _WARNING_NAMES]))
    c["BATTERY_STATUS_FOR_FAULT"] = _flag(np.logical_or.reduce([b[n] for n in _FAULT_NAMES] + [b["comm_any"]]))
    c["CHARGING_STOP_OF_STATUS"] = c["DISCHARGING_STOP_OF_STATUS"] = np.int8(0)
    c["EMERGENCY_STATUS"] = c["TVOC_STATUS"] = c["EMERGENCY_SOURCE"] = np.int8(0)
    c["ORDER_SOURCE"] = np.int8(1)
    return c


def _split_words(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) 16-bit words of a non-negative whole-number counter."""
    whole = np.floor(np.maximum(value, 0.0))
    high = np.floor(whole / 65536.0)
    return high, whole - high * 65536.0


def _spread(base: float, total: float, flow: np.ndarray) -> np.ndarray:
    """A counter over the day: base + total * (cumulative flow / the whole day's flow)."""
    cum = np.cumsum(np.maximum(flow, 0.0))
    return base + total * (cum / cum[-1] if cum[-1] > 0 else np.zeros_like(cum))


def _pcs_values(day: _Day) -> dict[str, Any]:
    """Physical quantities of the site's PCS (DC side = all banks), shared by the devices.
    Sign convention of DC and AC powers and currents: + = charge, as in the BMS tables."""
    b = _bank_aggregates(day)
    s = day.site_series
    v_dc = np.round(b["v"].mean(axis=1), 1)
    i_dc = np.round(b["i"].sum(axis=1), 1)
    p_dc = v_dc * i_dc / 1000.0
    running = np.abs(i_dc) > 0.5
    p_ac = np.where(p_dc > 0, p_dc / PCS_EFFICIENCY, p_dc * PCS_EFFICIENCY) * running
    q_ac = (0.015 * np.abs(p_ac) + 0.5 * s["q_noise"]) * np.clip(np.abs(p_ac) / 50.0, 0.0, 1.0)
    s_ac = np.hypot(p_ac, q_ac)
    pf = np.where(s_ac > 1.0, np.abs(p_ac) / np.maximum(s_ac, 1e-9), 1.0)
    v_ll = s["grid_v"]
    i_ac = s_ac * 1000.0 / (math.sqrt(3) * v_ll)
    load = np.abs(p_ac) / day.sizes.pcs_rated_kw
    cnt = day.counters
    return {
        "v_dc": v_dc, "i_dc": i_dc, "p_dc": np.round(p_dc, 1), "p_ac": np.round(p_ac, 1),
        "q_ac": np.round(q_ac, 1), "s_ac": np.round(s_ac, 1), "pf": np.round(pf, 3),
        "f": np.round(s["grid_f"], 2), "v_ll": np.round(v_ll, 1),
        "v_ph": [np.round(v_ll + d * (1.0 + 0.3 * s["phase_v"]), 1) for d in (0.8, -0.5, -0.3)],
        "i_ph": [np.round(i_ac * f, 1) for f in (1.004, 0.998, 0.998)], "i_ac": np.round(i_ac, 1),
        "running": running, "charging": i_dc > 0.5, "discharging": i_dc < -0.5,
        "thd": np.round(np.where(running, 1.8 + 1.5 * (1.0 - np.clip(load, 0, 1)) + 0.1 * s["q_noise"], 0.0), 1),
        "temp": np.round(s["room_t"] + 6.0 + 15.0 * lowpass(load, 900.0), 1),
        "c_ac": _spread(cnt["charge_ac_base"], cnt["charge_ac_day"], p_ac),
        "d_ac": _spread(cnt["discharge_ac_base"], cnt["discharge_ac_day"], -p_ac),
        "c_dc": _spread(cnt["charge_dc_base"], cnt["charge_dc_day"], p_dc),
        "d_dc": _spread(cnt["discharge_dc_base"], cnt["discharge_dc_day"], -p_dc),
    }


def _f(x: Any) -> Any:
    """A 0/1 flag as float (the site-1 and site-2 PCS tables store flags as float8)."""
    return np.asarray(x, dtype=float)


def _pcs_columns(day: _Day, variant: str, fields: tuple[catalogue.Field, ...]) -> _Columns:
    """The site's PCS; each device (site1, site2, site3 column sets) names things differently.
    An unknown device gets the generic names it shares with these (others default to 0)."""
    p = _pcs_values(day)
    cells = day.site.cells_per_rack
    ah_total = day.sizes.ah_nominal * len(day.site.rack_keys)
    c = _Columns(day.keep, 1)
    run, chg, dis = p["running"], p["charging"], p["discharging"]
    if variant == "site3":
        c["VOLTAGE"], c["CURRENT"], c["POWER"] = p["v_dc"], p["i_dc"], p["p_dc"]
        for n, ph in enumerate("UVW"):
            c[f"AC_V{ph}"], c[f"AC_I{ph}"] = p["v_ph"][n], p["i_ph"][n]
        c["AC_POWER"], c["AC_FREQ"], c["DC_V"] = p["p_ac"], p["f"], np.round(p["v_dc"] + 0.4, 1)
        c["C_KWH"], c["D_KWH"] = np.round(p["c_ac"], 1), np.round(p["d_ac"], 1)
        c["POWER_SETTING"] = np.round(p["p_ac"], 0)
        c["MAX_VOLTAGE"], c["MIN_VOLTAGE"] = round(cells * 4.15, 1), round(cells * 3.0, 1)
        c["CI_SETTING"], c["DI_SETTING"] = round(0.25 * ah_total, 0), round(0.2 * ah_total, 0)
        c["LQE_REF"], c["VDC_REF"], c["PF"] = 0.0, round(cells * NOMINAL_CELL_V, 1), p["pf"]
        c["STATE_OF_PCS"] = np.where(chg, 2, np.where(dis, 3, 1)).astype(np.int8)  # 1 standby, 2 charge, 3 discharge
        for f in fields:  # the fault and error bits: none of them trips in the demo
            if f.kind == "int" and f.name not in c.values:
                c[f.name] = np.int8(0)
        return c
    # site 1 (Sionyu device)
    c["BANK_ID"] = np.int64(1)
    for ph in ("L1", "L2", "L3"):
        c[f"PCS_AC_{ph}_THD"] = p["thd"]
    c["SYSTEM_TEMPERATURE_MAX"] = p["temp"]
    c["DC_VOLTAGE_1"], c["DC_VOLTAGE_2"] = p["v_dc"], np.round(p["v_dc"] + 0.4, 1)
    c["DC_CURRENT"], c["DC_POWER"] = p["i_dc"], p["p_dc"]
    c["AC_FREQUENCY"], c["AC_VOLTAGE"] = p["f"], p["v_ll"]
    c["AC_CURRENT_LOW"], c["AC_CURRENT_HIGH"] = p["i_ac"], 0.0
    c["AC_POWER"], c["AC_ACTIVE_POWER"], c["AC_REACTIVE_POWER"] = p["s_ac"], p["p_ac"], p["q_ac"]
    c["AC_POWER_FACTOR"] = np.round(p["pf"], 2)
    for n, ph in enumerate(("L1", "L2", "L3")):
        c[f"AC_{ph}_VOLTAGE"], c[f"AC_{ph}_CURRENT"] = p["v_ph"][n], p["i_ph"][n]
    for what, key in (("DISCHARGE", "d_ac"), ("CHARGE", "c_ac")):
        c[f"AC_ACCUMULATED_{what}_ENERGY_HIGH"], c[f"AC_ACCUMULATED_{what}_ENERGY_LOW"] = _split_words(p[key])
    status = {0: 1.0, 1: _f(run), 2: 0.0, 3: 0.0, 4: _f(~run), 5: _f(chg), 6: _f(dis), 7: 1.0, 8: 1.0, 9: 1.0,
              10: 0.0, 11: 1.0, 14: 0.0, 15: 0.0}
    for bit, value in status.items():
        c[f"PCS_STATUS_{bit}"] = value
    c["PCS_CONTROL_0"] = _f(run)
    c["SET_POWER"] = np.round(-p["p_ac"], 0)  # + = discharge on this device
    c["SET_SOC_LOW_TRIP_LEVEL"], c["SET_SOC_HIGH_TRIP_LEVEL"] = 0.0, 95.0
    c["SET_VBAT_LOW_TRIP_LEVEL"], c["SET_VBAT_HIGH_TRIP_LEVEL"] = round(cells * 3.0, 1), round(cells * 4.15, 1)
    # site 2 (Panri device)
    c["AI_VDC"], c["AI_IDC"], c["AI_PDC"], c["AI_FREQ"] = p["v_dc"], p["i_dc"], p["p_dc"], p["f"]
    for n, ph in enumerate(("AB", "BC", "CA")):
        c[f"AI_V{ph}_RMS"] = p["v_ph"][n]
    for n, ph in enumerate("ABC"):
        c[f"AI_I{ph}S_RMS"] = p["i_ph"][n]
    c["AI_SAC"], c["AI_PAC"], c["AI_QAC"], c["AI_PF"] = p["s_ac"], p["p_ac"], p["q_ac"], p["pf"]
    for side in ("AC", "DC"):
        for cd, key in (("C", "c"), ("D", "d")):
            c[f"AI_{cd}_KWH_{side}H"], c[f"AI_{cd}_KWH_{side}L"] = _split_words(p[f"{key}_{side.lower()}"])
    c["CMD_KW"], c["CMD_KVAR"], c["CMD_VDC_REF"] = np.round(p["p_ac"], 0), 0.0, round(cells * NOMINAL_CELL_V, 1)
    st = {"ST_RUN": _f(run), "ST_STOP": 0.0, "ST_READY": _f(~run), "ST_MODE_L_R": 1.0, "ST_MODE_CV": 0.0,
          "ST_FAULT": 0.0, "ST_CHARGE": _f(chg), "ST_DISCHARGE": _f(dis), "DI_DK": 1.0, "DI_AK": 1.0, "DI_CK": 0.0,
          "DI_TEMP": 0.0, "DI_SPD": 0.0, "DI_DS": 1.0, "DI_START": _f(run), "DI_ES": 0.0}
    for name, value in st.items():
        c[name] = value
    for f in fields:  # protection and trip bits: none of them trips in the demo
        if f.name.startswith(("PCS_PROTECTION_", "FLT_")):
            c[f.name] = 0.0
    return c


def _etc_columns(day: _Day, variant: str, fields: tuple[catalogue.Field, ...]) -> _Columns:
    s = day.site_series
    c = _Columns(day.keep, 1)
    units = {f.name: f.unit for f in fields}
    pv_kw = s["pv_kw"]
    energy_kwh = _spread(day.counters["pv_base"], day.counters["pv_day"], pv_kw)
    c["BANK_ID"] = np.int64(1)
    c["SENSOR1_TEMPERATURE"], c["SENSOR1_HUMIDITY"] = np.round(s["room_t"], 1), np.round(s["room_h"], 1)
    c["SENSOR2_TEMPERATURE"] = np.round(s["room_t"] + s["room2_dt"], 1)
    c["SENSOR2_HUMIDITY"] = np.round(s["room_h"] - 2.0 * s["room2_dt"], 1)
    for name in ("INV1_ACTIVE_POWER", "ACTIVE_POWER_TOTAL"):
        c[name] = np.round(pv_kw * (1000.0 if units.get(name) == "W" else 1.0), 3)
    c["INV1_CUMLUATIVE_POWER_GENERATION"] = np.round(energy_kwh, 1)
    # only the HIGH word of the meter's Wh counter is stored (reference §2.2): it steps every 65.536 kWh
    c["ACTIVE_ENERGY_TOTAL_HIGH"] = _split_words(energy_kwh * 1000.0)[0]
    return c


_BUILDERS: dict[str, Callable[[_Day, str, tuple[catalogue.Field, ...]], _Columns]] = {
    "bank": _bank_columns, "rack": _rack_columns, "pcs": _pcs_columns, "etc": _etc_columns,
}


def _frame(day: _Day, component: str, variant: str) -> pd.DataFrame:
    """The component's frame in catalogue order and kinds (float64, int64, JSON text); a
    catalogue column the generator has no model for is 0 (see `unmapped_columns`). The
    rack frame holds the duplicated second: a copy of each rack's row whose RACK_VOLTAGE
    reads 0.3 V higher, then the clean row (the store keeps the last one)."""
    fields = catalogue.get_fields(component, variant)
    cols = _BUILDERS[component](day, variant, fields)
    data: dict[str, Any] = {}
    for f in fields:
        value = cols.values.get(f.name)
        if f.kind == "timestamp":
            ns = cols.flat(day.ts_s * 1_000_000_000, np.int64)
            data[f.name] = pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize(UTC)
        elif f.kind == "json":
            data[f.name] = cols.flat(np.array("{}" if value is None else value, dtype=object), object)
        elif f.kind == "int":
            data[f.name] = cols.flat(0 if value is None else value, np.int64)
        else:
            data[f.name] = cols.flat(0.0 if value is None else value, np.float64)
            if f.name == "RACK_VOLTAGE" and cols.copies.size:
                data[f.name][cols.copies] = np.round(data[f.name][cols.copies] + 0.3, 1)
    return pd.DataFrame(data, copy=False)


# ----- public API ------------------------------------------------------------------------

def _resolve_anchor(site: Site, day: date, anchor: date | None) -> date:
    return anchor or site.demo_anchor or day


def generate_day(site: Site, day: date, *, seed: int = 7, anchor: date | None = None) -> dict[str, pd.DataFrame]:
    """Frames for the whole local day [00:00, 24:00) of `day` for each component of the site.

    Columns are exactly the catalogue columns of the site's variant, in order; TIMESTAMP is
    datetime64[ns, UTC]; rack rows are ordered by time, bank, rack. `anchor` (default:
    site.demo_anchor, else `day`) is the first day of the demo: anomalies are placed
    relative to it. Deterministic in (site, day, seed, anchor).
    """
    sim = _simulate(site, day, seed, _resolve_anchor(site, day, anchor))
    return {comp: _frame(sim, comp, site.column_sets[comp]) for comp in COMPONENTS if comp in site.column_sets}


def unmapped_columns(site: Site, day: date = date(2022, 9, 1)) -> dict[str, list[str]]:
    """Per component, the catalogue columns the generator has no model for (they are 0);
    empty for the demo sites' column sets."""
    sim = _simulate(site, day, 7, day)
    out: dict[str, list[str]] = {}
    for comp, variant in site.column_sets.items():
        fields = catalogue.get_fields(comp, variant)
        known = _BUILDERS[comp](sim, variant, fields).values
        out[comp] = [f.name for f in fields if f.kind != "timestamp" and f.name not in known]
    return out


def _check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidQuery("start and end must be aware datetimes (with a time zone)", code="naive_datetime")
    if start >= end:
        raise InvalidQuery(f"start {start.isoformat()} is not before end {end.isoformat()}", code="empty_range")


def _local_days(site: Site, start: datetime, end: datetime) -> list[date]:
    first = start.astimezone(site.tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(site.tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _slice(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows with start <= TIMESTAMP < end (frames are sorted by time)."""
    ts = frame["TIMESTAMP"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    lo = int(np.searchsorted(ts, pd.Timestamp(start).value, side="left"))
    hi = int(np.searchsorted(ts, pd.Timestamp(end).value, side="left"))
    if lo == 0 and hi == len(frame):
        return frame
    return frame.iloc[lo:hi].reset_index(drop=True)


def iter_frames(site: Site, start: datetime, end: datetime, *, seed: int = 7,
                anchor: date | None = None) -> Iterator[tuple[str, pd.DataFrame]]:
    """(component, frame) for each local day overlapping [start, end), sliced to the range.

    `anchor` defaults to site.demo_anchor, else the local date of `start`. Raises
    InvalidQuery for naive or empty ranges.
    """
    _check_range(start, end)
    anchor = anchor or site.demo_anchor or start.astimezone(site.tz).date()
    for day in _local_days(site, start, end):
        for comp, frame in generate_day(site, day, seed=seed, anchor=anchor).items():
            part = _slice(frame, start, end)
            if len(part):
                yield comp, part


def _expected_rows(site: Site, start: datetime, end: datetime) -> int:
    seconds = int((end - start).total_seconds())
    per_second = len(site.rack_keys) * ("rack" in site.column_sets) + len(site.banks) * ("bank" in site.column_sets)
    per_second += ("pcs" in site.column_sets) + ("etc" in site.column_sets)
    return seconds * per_second


def write_demo(site: Site, start: datetime, end: datetime, *, seed: int = 7, anchor: date | None = None,
               progress: bool = True) -> dict[str, WriteResult]:
    """Create the site's tables and write generated data for [start, end) through the
    storage write path (upserts; empty tables are bulk-loaded and indexed at the end);
    returns per-component totals. A tqdm bar counts rows (off with progress=False)."""
    _check_range(start, end)
    store = SiteStore(site)
    store.create_schema()
    results = {comp: WriteResult() for comp in COMPONENTS if comp in site.column_sets}
    with tqdm(total=_expected_rows(site, start, end), unit="rows", unit_scale=True, disable=not progress,
              desc=f"site {site.id}", leave=False) as bar, store.bulk_load():
        for comp, frame in iter_frames(site, start, end, seed=seed, anchor=anchor):
            results[comp].add(store.write_frame(comp, frame, progress=bar.update))
    return results


# ----- live mode -------------------------------------------------------------------------

_CACHE_PER_SITE = 2
_cache: dict[tuple[Any, ...], OrderedDict[tuple[Any, ...], dict[str, pd.DataFrame]]] = {}
_cache_lock = threading.Lock()


def _site_key(site: Site) -> tuple[Any, ...]:
    return (site.id, site.timezone, site.banks, site.cells_per_rack, site.temperature_sensors_per_rack,
            tuple(sorted(site.column_sets.items())), site.demo_anchor)


def _cached_day(site: Site, day: date, seed: int, anchor: date | None) -> dict[str, pd.DataFrame]:
    """generate_day through a small LRU (2 days per site): live mode slices it every second."""
    skey, dkey = _site_key(site), (day, seed, anchor)
    with _cache_lock:
        days = _cache.setdefault(skey, OrderedDict())
        if dkey in days:
            days.move_to_end(dkey)
            return days[dkey]
    frames = generate_day(site, day, seed=seed, anchor=anchor)
    with _cache_lock:
        days[dkey] = frames
        while len(days) > _CACHE_PER_SITE:
            days.popitem(last=False)
    return frames


def _evict_before(site: Site, day: date) -> None:
    """Drop cached days of `site` before `day` (live mode no longer needs them)."""
    with _cache_lock:
        days = _cache.get(_site_key(site))
        if days:
            for key in [k for k in days if k[0] < day]:
                del days[key]


def _floor_second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


def _cached_range(site: Site, start: datetime, end: datetime, seed: int,
                  anchor: date | None) -> Iterator[tuple[str, pd.DataFrame]]:
    for day in _local_days(site, start, end):
        for comp, frame in _cached_day(site, day, seed, anchor).items():
            part = _slice(frame, start, end)
            if len(part):
                yield comp, part.copy() if part is frame else part


def live_rows(site: Site, at: datetime, *, seed: int = 7, anchor: date | None = None) -> dict[str, pd.DataFrame]:
    """The generated rows of the one second holding `at` (aware), per component; empty
    frames during the missing seconds. Cheap after the first call of a day (cached)."""
    if at.tzinfo is None:
        raise InvalidQuery("`at` must be an aware datetime", code="naive_datetime")
    start = _floor_second(at)
    day = start.astimezone(site.tz).date()
    out: dict[str, pd.DataFrame] = {}
    for comp, frame in _cached_day(site, day, seed, anchor).items():
        out[comp] = _slice(frame, start, start + timedelta(seconds=1)).copy()
    return out


def newest_timestamp(site: Site) -> datetime | None:
    """Newest stored TIMESTAMP of the site's rack table (or its first component), aware."""
    store = SiteStore(site)
    comp = "rack" if "rack" in site.column_sets else next(iter(site.column_sets))
    table = store.table(comp)
    ts = next(col for col in table.columns if col.name.upper() == "TIMESTAMP")
    with store.engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(ts))).scalar()
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(int(value), tz=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _store_writer() -> Callable[[Site, str, pd.DataFrame], Any]:
    """Writes through each site's SiteStore, creating the tables on first use."""
    stores: dict[tuple[Any, ...], SiteStore] = {}

    def write(site: Site, component: str, frame: pd.DataFrame) -> Any:
        key = (site.id, site.database_url, site.schema)
        if key not in stores:
            store = SiteStore(site)
            store.create_schema()
            stores[key] = store
        return stores[key].write_frame(component, frame)

    return write


def run_live(sites: Iterable[Site], stop: threading.Event, *, seed: int = 7, anchor: date | None = None,
             write: Callable[[Site, str, pd.DataFrame], Any] | None = None,
             clock: Callable[[], datetime] | None = None, interval_s: float = 1.0,
             max_iterations: int | None = None, max_catchup_s: int = 3600,
             start_at: dict[int, datetime] | None = None) -> int:
    """Append generated rows every `interval_s` until `stop` is set (or `max_iterations`):
    each pass writes, for each site, every second after the last one written up to the
    clock's current second. The first pass starts after the newest stored timestamp (or
    `start_at[site.id]`), at most `max_catchup_s` back; otherwise at the current second.
    Write failures are logged and retried on the next pass. Returns the rows written."""
    clock = clock or (lambda: datetime.now(UTC))
    write = write or _store_writer()
    sites = list(sites)
    now = _floor_second(clock())
    last: dict[int, datetime] = {}
    for site in sites:
        newest = (start_at or {}).get(site.id)
        if newest is None:
            try:
                newest = newest_timestamp(site)
            except (EssError, sa.exc.SQLAlchemyError) as exc:
                log.warning("live: site %s has no readable data yet (%s)", site.id, exc)
        if newest is None or newest < now - timedelta(seconds=max_catchup_s):
            newest = now - timedelta(seconds=1)
        last[site.id] = _floor_second(newest)
    written = 0
    iterations = 0
    failing: set[int] = set()
    while not stop.is_set():
        now = _floor_second(clock())
        for site in sites:
            begin = last[site.id] + timedelta(seconds=1)
            if begin > now:
                continue
            try:
                for comp, frame in _cached_range(site, begin, now + timedelta(seconds=1), seed, anchor):
                    write(site, comp, frame)
                    written += len(frame)
                last[site.id] = now
                _evict_before(site, now.astimezone(site.tz).date())
            except (EssError, sa.exc.SQLAlchemyError) as exc:
                if site.id not in failing:  # once per failure streak, not every second
                    log.warning("live: writing site %s failed, retrying every second: %s", site.id, exc)
                failing.add(site.id)
            else:
                failing.discard(site.id)
        iterations += 1
        if max_iterations is not None and iterations >= max_iterations:
            break
        stop.wait(max(0.0, interval_s - (clock().microsecond / 1e6 if interval_s >= 1.0 else 0.0)))
    return written
