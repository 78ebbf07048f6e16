"""Column mapping: one simulated day turned into the catalogue columns of each component and variant."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd

from services.core import catalogue
from services.core.registry import Site
from services.demo.model import LIMITS, NOMINAL_CELL_V, PCS_EFFICIENCY, Day, lowpass, modules_per_rack

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


def _rack_flags(day: Day) -> dict[str, np.ndarray]:
    """BMS flags of every rack second (R, N), from the reported values and the limits of
    the original's threshold table, strictly beyond the limit."""
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


def _rack_columns(day: Day, variant: str, fields: tuple[catalogue.Field, ...]) -> _Columns:
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
    c["RACK_MODULE_FAULT"] = np.array(_json_flags("module", range(1, modules_per_rack(day.site) + 1)), dtype=object)
    return c


def _bank_slices(site: Site) -> list[tuple[int, slice, tuple[int, ...]]]:
    out, start = [], 0
    for bank in site.banks:
        out.append((bank.id, slice(start, start + len(bank.racks)), bank.racks))
        start += len(bank.racks)
    return out


def _bank_aggregates(day: Day) -> dict[str, np.ndarray]:
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


def _bank_columns(day: Day, variant: str, fields: tuple[catalogue.Field, ...]) -> _Columns:
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


def _pcs_values(day: Day) -> dict[str, Any]:
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


def _pcs_columns(day: Day, variant: str, fields: tuple[catalogue.Field, ...]) -> _Columns:
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


def _etc_columns(day: Day, variant: str, fields: tuple[catalogue.Field, ...]) -> _Columns:
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
    # only the HIGH word of the meter's Wh counter is stored (as the original does): it steps every 65.536 kWh
    c["ACTIVE_ENERGY_TOTAL_HIGH"] = _split_words(energy_kwh * 1000.0)[0]
    return c


BUILDERS: dict[str, Callable[[Day, str, tuple[catalogue.Field, ...]], _Columns]] = {
    "bank": _bank_columns, "rack": _rack_columns, "pcs": _pcs_columns, "etc": _etc_columns,
}


def make_frame(day: Day, component: str, variant: str) -> pd.DataFrame:
    """The component's frame in catalogue order and kinds (float64, int64, JSON text); a
    catalogue column the generator has no model for is 0 (see `unmapped_columns`). The
    rack frame holds the duplicated second: a copy of each rack's row whose RACK_VOLTAGE
    reads 0.3 V higher, then the clean row (the store keeps the last one)."""
    fields = catalogue.get_fields(component, variant)
    cols = BUILDERS[component](day, variant, fields)
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
