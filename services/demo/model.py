"""Deterministic, vectorised generator of realistic 1 Hz ESS operating data.

It is the embedded demo's data source and the project's fixture factory: same seed, same
rows, on any machine. Every local day is generated on its own, in numpy over the whole day
(no Python loop over seconds; racks one after another, each vectorised over its day and its
candidate cells, which bounds memory): the day's random streams are seeded from (seed, site
id, day ordinal[, bank, rack]) and its state starts at local midnight from fixed initial
conditions (idle, SoC 0, temperatures at room temperature), so one day generated alone is
identical to the same day inside a longer range.

The model (after the real sites' data, as the original system stores it):

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
  the original's threshold table, strictly beyond the limit, so a flag is 1 exactly when the map says so.
* Labelled anomalies relative to the demo's anchor day: see ANOMALIES. The anchor day and
  the next one are always clear days, so that every anomaly shows in a 2-day demo.

Energy counters must rise across midnight without generating earlier days: each day adds an
estimate of that day's energy computed from per-day scalars (hash-seeded), spread over the
day in proportion to the actual power flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from services.core.registry import Site
from services.demo.anomalies import (
    HOT_PEAK_C,
    WEAK_GAP_AT_ANCHOR,
    WEAK_GAP_MAX,
    WEAK_GAP_PER_DAY,
    Anomaly,
    site_anomalies,
)

DAY_S = 86_400

# ----- battery model constants ------------------------------------------------------------

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
COMMISSIONING = {1: date(2021, 9, 27), 2: date(2022, 2, 21), 3: date(2023, 1, 4)}  # the real sites' commissioning dates
DEFAULT_COMMISSIONING = date(2022, 1, 1)
SOH_LOSS_PER_YEAR = 2.0
ROOM_BASE_C = 23.0


@dataclass(frozen=True)
class ProtectionLimits:
    """The original's threshold table; every comparison is strict (beyond the limit)."""

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
    """Nominal rack capacity: 228.6 Ah for 240S racks (Panri), 246 Ah otherwise."""
    return 228.6 if site.cells_per_rack >= 240 else 246.0


def modules_per_rack(site: Site) -> int:
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
    cells, sensors, modules = site.cells_per_rack, site.temperature_sensors_per_rack, modules_per_rack(site)
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
    for a in site_anomalies(site):
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
class Day:
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


def simulate(site: Site, day: date, seed: int, anchor: date) -> Day:
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
    windows = {a.kind: a for a in site_anomalies(site) if a.day_offset == offset}
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
    return Day(site, day, anchor, ts_s, tod, keep, dup_index, racks, rack_static, site_series, counters, sizes)
