"""The demo-data generator: physics, flags, anomalies, determinism and the write path.

Physics tests generate reduced topologies in memory (bank 1 with racks 1-3, which holds
every anomaly rack); storage tests write through `place_site` on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from services.core import catalogue
from services.core.errors import InvalidQuery
from services.core.registry import Bank, Site, demo_sites
from services.demo.anomalies import ANOMALIES, Anomaly, list_anomalies
from services.demo.columns import RACK_FAULT_FLAGS, RACK_WARNING_FLAGS
from services.demo.live import live_rows, newest_timestamp, run_live
from services.demo.model import _day_plan, lowpass, rack_capacity_ah
from services.demo.writer import generate_day, iter_frames, unmapped_columns, write_demo
from services.storage.sitestore import SiteStore

ANCHOR = date(2022, 9, 1)
SITES = {s.id: s for s in demo_sites()}
TZ = SITES[1].tz
THRESHOLD_FLAGS = {  # flag -> (column, comparison, limit): reference §3.2, strictly beyond
    "RACK_OVER_VOLTAGE_PROTECTION_WARNING": ("RACK_MAX_CELL_VOLTAGE", ">", 4.05),
    "RACK_OVER_VOLTAGE_PROTECTION_FAULT": ("RACK_MAX_CELL_VOLTAGE", ">", 4.10),
    "RACK_UNDER_VOLTAGE_PROTECTION_WARNING": ("RACK_MIN_CELL_VOLTAGE", "<", 3.20),
    "RACK_UNDER_VOLTAGE_PROTECTION_FAULT": ("RACK_MIN_CELL_VOLTAGE", "<", 3.00),
    "RACK_VOLTAGE_IMBALANCE_WARNING": ("RACK_CELL_VOLTAGE_GAP", ">", 0.3),
    "RACK_VOLTAGE_IMBALANCE_FAULT": ("RACK_CELL_VOLTAGE_GAP", ">", 0.5),
    "RACK_OVER_CURRENT_CHARGE_FAULT": ("RACK_CURRENT", ">", 120.0),
    "RACK_OVER_CURRENT_DISCHARGE_FAULT": ("RACK_CURRENT", "<", -120.0),
    "RACK_OVER_TEMPERATURE_WARNING": ("RACK_MAX_CELL_TEMPERATURE", ">", 50.0),
    "RACK_OVER_TEMPERATURE_FAULT": ("RACK_MAX_CELL_TEMPERATURE", ">", 55.0),
    "RACK_UNDER_TEMPERATURE_WARNING": ("RACK_MIN_CELL_TEMPERATURE", "<", 0.0),
    "RACK_UNDER_TEMPERATURE_FAULT": ("RACK_MIN_CELL_TEMPERATURE", "<", -10.0),
    "RACK_TEMPERATURE_IMBALANCE_WARNING": ("RACK_CELL_TEMPERATURE_GAP", ">", 20.0),
    "RACK_TEMPERATURE_IMBALANCE_FAULT": ("RACK_CELL_TEMPERATURE_GAP", ">", 25.0),
}
WARNINGS = list(RACK_WARNING_FLAGS)
NORMAL_RACK = {1: 1, 2: 1, 3: 3}  # a rack without anomalies in each site's bank 1
FAULTS = list(RACK_FAULT_FLAGS)


def small(site_id: int, banks: tuple[Bank, ...] = (Bank(1, (1, 2, 3)),)) -> Site:
    """A demo site cut down to bank 1, racks 1-3 (every anomaly rack is among them)."""
    return dataclasses.replace(SITES[site_id], banks=banks)


@cache
def day_frames(site_id: int, offset: int, seed: int = 7) -> dict[str, pd.DataFrame]:
    return generate_day(small(site_id), ANCHOR + timedelta(days=offset), seed=seed, anchor=ANCHOR)


def frames(site_id: int, offset: int) -> dict[str, pd.DataFrame]:
    """Copies, so a test cannot change the cached frames."""
    return {c: f.copy() for c, f in day_frames(site_id, offset).items()}


def clock_seconds(frame: pd.DataFrame) -> np.ndarray:
    """Local seconds of day of each row (Asia/Seoul has no daylight saving: a fixed offset)."""
    epoch = frame["TIMESTAMP"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    return (epoch + 9 * 3600) % 86_400


def secs(hh: int, mm: int, ss: int = 0) -> int:
    return hh * 3600 + mm * 60 + ss


def dedup(rack: pd.DataFrame) -> pd.DataFrame:
    return rack.drop_duplicates(["TIMESTAMP", "BANK_ID", "RACK_ID"], keep="last").reset_index(drop=True)


def compare(values: pd.Series, op: str, limit: float) -> pd.Series:
    return values > limit if op == ">" else values < limit


def anomaly(kind: str, site_id: int) -> Anomaly:
    return next(a for a in ANOMALIES if a.kind == kind and a.site_id in (site_id, 0))


# ----- shape of the frames --------------------------------------------------------------

@pytest.mark.parametrize("site_id", [1, 2, 3])
def test_columns_are_the_catalogue_columns_in_order(site_id: int) -> None:
    site = small(site_id)
    got = frames(site_id, 1)
    assert list(got) == ["bank", "rack", "pcs", "etc"]
    for comp, frame in got.items():
        fields = catalogue.get_fields(comp, site.column_sets[comp])
        assert list(frame.columns) == [f.name for f in fields]
        assert str(frame["TIMESTAMP"].dtype) == "datetime64[ns, UTC]"
        assert (frame["TIMESTAMP"].astype("int64") % 10**9 == 0).all()
        for f in fields:
            kind = frame[f.name].dtype.kind
            assert kind == {"timestamp": "M", "int": "i", "float": "f", "json": "O"}[f.kind], f.name
    assert unmapped_columns(small(site_id, (Bank(1, (1,)),))) == {"bank": [], "rack": [], "pcs": [], "etc": []}


def test_one_row_per_second_per_entity_on_an_ordinary_day() -> None:
    got = frames(2, 1)
    assert len(got["rack"]) == 86_400 * 3 and len(got["bank"]) == len(got["pcs"]) == len(got["etc"]) == 86_400
    first = got["rack"]["TIMESTAMP"].iloc[0]
    assert first == pd.Timestamp(datetime(2022, 9, 2, tzinfo=TZ))


def test_rack_rows_are_ordered_by_time_then_bank_then_rack() -> None:
    site = small(2, (Bank(1, (1, 2)), Bank(2, (1, 3))))
    got = generate_day(site, ANCHOR + timedelta(days=1), anchor=ANCHOR)
    rack = got["rack"]
    head = rack.head(8)
    assert head[["BANK_ID", "RACK_ID"]].to_numpy().tolist() == [[1, 1], [1, 2], [2, 1], [2, 3]] * 2
    assert head["TIMESTAMP"].nunique() == 2
    keys = rack[["TIMESTAMP", "BANK_ID", "RACK_ID"]]
    assert keys.equals(keys.sort_values(["TIMESTAMP", "BANK_ID", "RACK_ID"]).reset_index(drop=True))
    bank = got["bank"]
    assert bank["BANK_ID"].head(4).tolist() == [1, 2, 1, 2]


def test_json_columns_are_json_text() -> None:
    site2 = frames(2, 1)
    assert site2["bank"]["MASTER_RACK_COMMUNICATION_FAULT"].iloc[0] == '{"rack1": 0, "rack2": 0, "rack3": 0}'
    modules = json.loads(site2["rack"]["RACK_MODULE_FAULT"].iloc[0])
    assert modules == {f"module{i}": 0 for i in range(1, 21)}  # 240 cells = 20 modules of 12
    assert json.loads(frames(3, 1)["rack"]["RACK_MODULE_FAULT"].iloc[0]) == {f"module{i}": 0 for i in range(1, 18)}
    assert frames(1, 1)["bank"]["MASTER_RACK_COMMUNICATION_FAULT"].dtype.kind == "i"  # site 1: one 0/1 flag


# ----- physics --------------------------------------------------------------------------

@pytest.mark.parametrize("site_id", [1, 2, 3])
def test_rack_voltage_is_cells_times_mean_cell_voltage(site_id: int) -> None:
    rack = frames(site_id, 0)["rack"]
    cells = SITES[site_id].cells_per_rack
    expected = cells * rack["RACK_CELL_VOLTAGE_AVERAGE"]
    assert ((rack["RACK_VOLTAGE"] - expected).abs() / expected).max() < 0.01
    assert ((rack["RACK_VOLTAGE"] - expected).abs()).max() < 0.5  # in fact within rounding (0.1 V, 1 mV x cells)


@pytest.mark.parametrize("site_id", [1, 2, 3])
def test_soc_is_coulomb_counting_of_the_reported_current(site_id: int) -> None:
    rack = dedup(frames(site_id, 0)["rack"])
    ah = rack_capacity_ah(SITES[site_id])
    assert ah == (228.6 if site_id == 2 else 246.0)
    for _, one in rack.groupby("RACK_ID"):
        capacity = ah * one["RACK_SOH"].iloc[0] / 100.0
        expected = np.clip(one["RACK_CURRENT"].cumsum() / 3600.0 / capacity * 100.0, 0, 100)
        assert (one["RACK_SOC"] - expected).abs().max() <= 0.05 + 1e-9  # 0.1 % resolution: exact up to rounding
        assert one["RACK_SOC"].iloc[0] == 0.0 and one["RACK_SOC"].iloc[-1] == 0.0


def test_pv_shifting_profile() -> None:
    rack = dedup(frames(2, 1)["rack"])
    t = clock_seconds(rack)
    current = rack["RACK_CURRENT"]
    assert (current[(t >= secs(0, 0)) & (t < secs(9, 50))] == 0).all()  # idle at night
    assert (current[(t >= secs(10, 10)) & (t < secs(13, 30))] > 40).all()  # charge about 0.24 C
    assert (current[(t >= secs(14, 0)) & (t < secs(15, 50))] == 0).all()  # rest
    assert (current[(t >= secs(16, 10)) & (t < secs(22, 0))] < -5).all()  # discharge
    assert current.min() > -0.17 * 228.6 and current.max() < 0.25 * 228.6
    assert (current[(t >= secs(22, 40))] == 0).all()
    soc = rack["RACK_SOC"]
    assert soc.max() <= 90.0 and soc.max() >= 88.0  # clear day: up to SoC 90 %
    assert soc[(t >= secs(14, 0)) & (t < secs(15, 50))].min() >= 88.0
    night_cell = rack.loc[t < secs(9, 0), "RACK_CELL_VOLTAGE_AVERAGE"]
    assert night_cell.between(3.37, 3.40).all()  # about 3.38 V per cell at SoC 0


def test_cloudy_days_reach_a_lower_soc() -> None:
    site = small(1, (Bank(1, (1,)),))
    plans = [_day_plan(7, 1, ANCHOR + timedelta(days=d), ANCHOR) for d in range(2, 40)]
    cloudy = [d for d, p in zip(range(2, 40), plans, strict=True) if p.cloudy]
    assert 4 <= len(cloudy) <= 18  # about one day in four
    assert not any(_day_plan(7, 1, ANCHOR + timedelta(d), ANCHOR).cloudy for d in (0, 1))  # anomaly days
    got = generate_day(site, ANCHOR + timedelta(days=cloudy[0]), anchor=ANCHOR)
    assert 30.0 <= got["rack"]["RACK_SOC"].max() <= 66.0
    etc_cloudy = got["etc"]["INV1_ACTIVE_POWER"].sum()
    etc_clear = generate_day(site, ANCHOR, anchor=ANCHOR)["etc"]["INV1_ACTIVE_POWER"].sum()
    assert etc_cloudy < 0.7 * etc_clear


@pytest.mark.parametrize("site_id", [1, 2, 3])
def test_cell_extremes_positions_and_resolution(site_id: int) -> None:
    site = SITES[site_id]
    rack = frames(site_id, 0)["rack"]
    assert (rack["RACK_MAX_CELL_VOLTAGE"] >= rack["RACK_CELL_VOLTAGE_AVERAGE"]).all()
    assert (rack["RACK_CELL_VOLTAGE_AVERAGE"] >= rack["RACK_MIN_CELL_VOLTAGE"]).all()
    assert (rack["RACK_MAX_CELL_TEMPERATURE"] >= rack["RACK_MIN_CELL_TEMPERATURE"]).all()
    assert np.allclose(rack["RACK_CELL_VOLTAGE_GAP"], rack["RACK_MAX_CELL_VOLTAGE"] - rack["RACK_MIN_CELL_VOLTAGE"],
                       atol=1e-9)
    assert np.allclose(rack["RACK_MAX_CELL_VOLTAGE"], rack["RACK_MAX_CELL_VOLTAGE"].round(3), atol=1e-12)
    assert np.allclose(rack["RACK_MAX_CELL_TEMPERATURE"], rack["RACK_MAX_CELL_TEMPERATURE"].round(1), atol=1e-12)
    assert np.allclose(rack["RACK_SOC"], rack["RACK_SOC"].round(1), atol=1e-12)
    for column, top in (("RACK_MAX_CELL_VOLTAGE_POSITION", site.cells_per_rack),
                        ("RACK_MIN_CELL_VOLTAGE_POSITION", site.cells_per_rack),
                        ("RACK_MAX_CELL_TEMPERATURE_POSITION", site.temperature_sensors_per_rack),
                        ("RACK_MIN_CELL_TEMPERATURE_POSITION", site.temperature_sensors_per_rack)):
        pos = rack[column]
        assert pos.between(1, top).all() and (pos == pos.round()).all(), column
    if site_id != 1:
        modules = site.cells_per_rack // 12
        for column in ("RACK_MAX_MODULE_TEMPERATURE_POSITION", "RACK_MIN_MODULE_HUMIDITY_POSITION"):
            assert rack[column].between(1, modules).all()
        assert (rack["RACK_MAX_MODULE_TEMPERATURE"] >= rack["RACK_MIN_MODULE_TEMPERATURE"]).all()
    # the extreme positions are stable-ish: a few cells take most of the day
    normal = rack[rack["RACK_ID"] == NORMAL_RACK[site_id]]
    assert normal["RACK_MAX_CELL_VOLTAGE_POSITION"].value_counts().iloc[:3].sum() > 0.8 * len(normal)
    assert normal["RACK_MAX_CELL_VOLTAGE_POSITION"].nunique() > 1


def test_normal_racks_spread_and_temperatures() -> None:
    rack = frames(2, 0)["rack"]
    normal = rack[rack["RACK_ID"] == NORMAL_RACK[2]]
    assert 0.015 <= normal["RACK_CELL_VOLTAGE_GAP"].median() <= 0.035
    assert normal["RACK_CELL_VOLTAGE_GAP"].max() < 0.08
    assert 4.0 <= normal["RACK_CELL_TEMPERATURE_GAP"].median() <= 10.0
    assert normal["RACK_MAX_CELL_VOLTAGE"].max() < 4.05 and normal["RACK_MIN_CELL_VOLTAGE"].min() > 3.2
    assert 15.0 < normal["RACK_MIN_CELL_TEMPERATURE"].min() and normal["RACK_MAX_CELL_TEMPERATURE"].max() < 45.0
    t = clock_seconds(normal)
    night = normal.loc[t < secs(9, 0), "RACK_MAX_CELL_TEMPERATURE"].mean()
    after_charge = normal.loc[(t >= secs(13, 30)) & (t < secs(13, 45)), "RACK_MAX_CELL_TEMPERATURE"].mean()
    assert after_charge > night + 3.0  # I^2 R heating


def test_soh_decreases_about_two_percent_a_year() -> None:
    site = small(2, (Bank(1, (1,)),))
    first = generate_day(site, date(2022, 3, 1), anchor=ANCHOR)["rack"]["RACK_SOH"].iloc[0]
    later = generate_day(site, date(2024, 3, 1), anchor=ANCHOR)["rack"]["RACK_SOH"].iloc[0]
    assert 3.0 <= first - later <= 5.0
    assert first <= 100.0 and first == round(first, 1)
    sohs = frames(2, 0)["rack"].groupby("RACK_ID")["RACK_SOH"].first()
    assert sohs.nunique() > 1  # differs slightly per rack


# ----- flags ----------------------------------------------------------------------------

@pytest.mark.parametrize("site_id", [1, 2, 3])
@pytest.mark.parametrize("offset", [0, 1])
def test_rack_flags_follow_values_and_limits(site_id: int, offset: int) -> None:
    rack = frames(site_id, offset)["rack"]
    for flag, (column, op, limit) in THRESHOLD_FLAGS.items():
        assert (rack[flag] == compare(rack[column], op, limit).astype(int)).all(), flag
    assert (rack["RACK_CURRENT_SENSOR_CHARGE"] == (rack["RACK_CURRENT"] > 0.5)).all()
    assert (rack["RACK_CURRENT_SENSOR_DISCHARGE"] == (rack["RACK_CURRENT"] < -0.5)).all()
    assert (rack["RACK_STATUS_FOR_RUN"] == 1).all() and (rack["RACK_CHARGE_RELAY_PLUS_STATUS"] == 1).all()
    assert (rack["RACK_STATUS_FOR_WARNING"] == rack[WARNINGS].max(axis=1)).all()
    assert (rack["RACK_STATUS_FOR_FAULT"] == rack[FAULTS].max(axis=1)).all()


@pytest.mark.parametrize("site_id", [1, 2, 3])
def test_bank_is_the_aggregate_of_its_racks(site_id: int) -> None:
    got = frames(site_id, 0)
    rack = dedup(got["rack"])
    bank = got["bank"].set_index("TIMESTAMP")
    per_second = rack.groupby("TIMESTAMP")
    assert np.allclose(bank["BANK_DC_CURRENT"], per_second["RACK_CURRENT"].sum().round(1), atol=1e-9)
    assert np.allclose(bank["BANK_SOC"], per_second["RACK_SOC"].mean().round(1), atol=1e-9)
    assert np.allclose(bank["BANK_DC_VOLT"], per_second["RACK_VOLTAGE"].mean(), atol=0.051)
    assert np.allclose(bank["BANK_POWER"], (bank["BANK_DC_VOLT"] * bank["BANK_DC_CURRENT"] / 1000).round(1), atol=1e-9)
    assert (bank["MAX_CELL_VOLTAGE_OF_BANK"] == per_second["RACK_MAX_CELL_VOLTAGE"].max()).all()
    assert (bank["MIN_CELL_TEMPERATURE_OF_BANK"] == per_second["RACK_MIN_CELL_TEMPERATURE"].min()).all()
    for flag in (*WARNINGS, *FAULTS):
        assert (bank[flag] == per_second[flag].max()).all(), flag
    i = bank["BANK_DC_CURRENT"]
    if site_id == 1:  # tri-state 1 charge, 2 discharge, 3 standby
        expected = np.where(i > 0.5, 1, np.where(i < -0.5, 2, 3))
        assert (bank["BATTERY_STATUS_FOR_CHARGE"] == expected).all()
        assert set(bank["BATTERY_STATUS_FOR_CHARGE"]) == {1, 2, 3}
    else:
        assert (bank["BATTERY_STATUS_FOR_CHARGE"] == (i > 0.5)).all()
        assert (bank["BATTERY_STATUS_FOR_DISCHARGE"] == (i < -0.5)).all()
        assert (bank["BATTERY_STATUS_FOR_STANDBY"] == ((i >= -0.5) & (i <= 0.5))).all()
    assert (bank["BATTERY_STATUS_FOR_WARNING"] == bank[WARNINGS].max(axis=1)).all()
    assert (bank["BATTERY_STATUS_FOR_RUN"] == 1).all()


@pytest.mark.parametrize("site_id", [1, 2, 3])
def test_pcs_matches_the_banks(site_id: int) -> None:
    got = frames(site_id, 1)
    bank, pcs = got["bank"], got["pcs"]
    names = {1: ("DC_VOLTAGE_1", "DC_CURRENT", "DC_POWER", "AC_ACTIVE_POWER", "AC_L1_VOLTAGE", "AC_FREQUENCY",
                 "AC_POWER_FACTOR"),
             2: ("AI_VDC", "AI_IDC", "AI_PDC", "AI_PAC", "AI_VAB_RMS", "AI_FREQ", "AI_PF"),
             3: ("VOLTAGE", "CURRENT", "POWER", "AC_POWER", "AC_VU", "AC_FREQ", "PF")}[site_id]
    v, i, p, p_ac, v_ac, f, pf = (pcs[n] for n in names)
    assert np.allclose(i, bank["BANK_DC_CURRENT"], atol=1e-9)
    assert np.allclose(v, bank["BANK_DC_VOLT"], atol=1e-9)
    assert np.allclose(p, v * i / 1000.0, atol=0.051)
    assert v_ac.between(380, 440).all() and f.between(59.9, 60.1).all()
    running = i.abs() > 0.5
    assert (pf[p_ac.abs() > 20] >= 0.98).all()
    assert ((p_ac > 0) == (p > 0))[running].all() and (p_ac[~running] == 0).all()
    if site_id == 1:
        assert (pcs["PCS_STATUS_5"] == (i > 0.5)).all() and (pcs["PCS_STATUS_6"] == (i < -0.5)).all()
        assert (pcs["PCS_STATUS_1"] == running).all() and (pcs["PCS_STATUS_4"] == ~running).all()
        assert (pcs["SET_POWER"] == (-pcs["AC_ACTIVE_POWER"]).round(0)).all()  # + = discharge on this device
    elif site_id == 2:
        assert (pcs["ST_CHARGE"] == (i > 0.5)).all() and (pcs["ST_RUN"] == running).all()
    else:
        assert (pcs["STATE_OF_PCS"] == np.where(i > 0.5, 2, np.where(i < -0.5, 3, 1))).all()


def _counter(pcs: pd.DataFrame, site_id: int) -> pd.Series:
    if site_id == 1:
        return pcs["AC_ACCUMULATED_CHARGE_ENERGY_HIGH"] * 65536 + pcs["AC_ACCUMULATED_CHARGE_ENERGY_LOW"]
    if site_id == 2:
        return pcs["AI_D_KWH_ACH"] * 65536 + pcs["AI_D_KWH_ACL"]
    return pcs["C_KWH"]


@pytest.mark.parametrize("site_id", [1, 2, 3])
def test_energy_counters_rise_across_midnight(site_id: int) -> None:
    pcs = pd.concat([frames(site_id, 0)["pcs"], frames(site_id, 1)["pcs"]], ignore_index=True)
    etc = pd.concat([frames(site_id, 0)["etc"], frames(site_id, 1)["etc"]], ignore_index=True)
    counter = _counter(pcs, site_id)
    assert (counter.diff().dropna() >= 0).all() and counter.iloc[-1] > counter.iloc[0]
    pv_total = etc["INV1_CUMLUATIVE_POWER_GENERATION" if site_id == 1 else "ACTIVE_ENERGY_TOTAL_HIGH"]
    assert (pv_total.diff().dropna() >= 0).all() and pv_total.iloc[-1] > pv_total.iloc[0]


def test_pv_follows_the_sun_and_rooms_have_sensors() -> None:
    etc = frames(2, 1)["etc"]
    t = clock_seconds(etc)
    power_w = etc["ACTIVE_POWER_TOTAL"]
    assert (power_w[(t < secs(5, 0)) | (t >= secs(20, 0))] == 0).all()
    assert (power_w[(t >= secs(11, 0)) & (t < secs(14, 0))] > 0.5 * power_w.max()).all()
    assert power_w.idxmax() in etc.index[(t >= secs(11, 0)) & (t < secs(14, 0))]
    for column in ("SENSOR1_TEMPERATURE", "SENSOR2_TEMPERATURE"):
        assert etc[column].between(18, 32).all()
    assert etc["SENSOR1_HUMIDITY"].between(25, 75).all()


# ----- determinism ----------------------------------------------------------------------

def test_same_seed_same_frames_and_another_seed_differs() -> None:
    site = small(3)
    again = generate_day(site, ANCHOR, seed=7, anchor=ANCHOR)
    for comp, frame in day_frames(3, 0).items():
        pd.testing.assert_frame_equal(again[comp], frame)
    other = generate_day(site, ANCHOR, seed=8, anchor=ANCHOR)
    assert not other["rack"]["RACK_MAX_CELL_VOLTAGE"].equals(again["rack"]["RACK_MAX_CELL_VOLTAGE"])
    assert not other["etc"]["SENSOR1_TEMPERATURE"].equals(again["etc"]["SENSOR1_TEMPERATURE"])


def test_a_day_alone_equals_the_same_day_inside_a_range() -> None:
    site = small(1)
    start = datetime.combine(ANCHOR, time(0), tzinfo=TZ)
    parts: dict[str, list[pd.DataFrame]] = {}
    for comp, frame in iter_frames(site, start, start + timedelta(days=2), anchor=ANCHOR):
        parts.setdefault(comp, []).append(frame)
    assert sorted(parts) == ["bank", "etc", "pcs", "rack"] and all(len(p) == 2 for p in parts.values())
    for comp, (day0, day1) in parts.items():
        pd.testing.assert_frame_equal(day0, day_frames(1, 0)[comp])
        pd.testing.assert_frame_equal(day1, day_frames(1, 1)[comp])


def test_a_rack_does_not_depend_on_the_other_racks() -> None:
    alone = generate_day(small(2, (Bank(1, (2,)),)), ANCHOR + timedelta(days=1), anchor=ANCHOR)["rack"]
    among = day_frames(2, 1)["rack"]
    pd.testing.assert_frame_equal(alone, among[among["RACK_ID"] == 2].reset_index(drop=True))


def test_iter_frames_slices_half_open_ranges_and_rejects_bad_ones() -> None:
    site = small(3)
    start = datetime(2022, 9, 1, 23, 59, 58, tzinfo=TZ)
    banks = [f for comp, f in iter_frames(site, start, start + timedelta(seconds=4), anchor=ANCHOR)
             if comp == "bank"]
    assert len(banks) == 2 and [len(b) for b in banks] == [2, 2]
    assert [ts.isoformat() for ts in pd.concat(banks)["TIMESTAMP"].dt.tz_convert(TZ)] == [
        "2022-09-01T23:59:58+09:00", "2022-09-01T23:59:59+09:00", "2022-09-02T00:00:00+09:00",
        "2022-09-02T00:00:01+09:00"]
    with pytest.raises(InvalidQuery):
        list(iter_frames(site, datetime(2022, 9, 1), datetime(2022, 9, 2)))
    with pytest.raises(InvalidQuery):
        list(iter_frames(site, start, start))


def test_lowpass_is_the_exact_first_order_recursion() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2000))
    for tau, y0 in ((0.7, 0.0), (30.0, 1.5), (900.0, -2.0)):
        a = np.exp(-1.0 / tau)
        expected = np.empty_like(x)
        y = np.full(3, y0)
        for n in range(x.shape[1]):
            y = a * y + (1 - a) * x[:, n]
            expected[:, n] = y
        assert np.allclose(lowpass(x, tau, y0), expected, atol=1e-12)


# ----- anomalies ------------------------------------------------------------------------

@pytest.mark.parametrize("site_id", [1, 2, 3])
def test_weak_cell_gap_crosses_the_warning_at_the_end_of_the_charge_on_day_one(site_id: int) -> None:
    a = anomaly("weak_cell", site_id)
    day0, day1 = (dedup(frames(site_id, d)["rack"]) for d in (0, 1))
    weak0, weak1 = (d[d["RACK_ID"] == a.rack_id].reset_index(drop=True) for d in (day0, day1))
    assert 0.25 < weak0["RACK_CELL_VOLTAGE_GAP"].max() <= 0.3  # close, but not yet
    over = weak1.index[weak1["RACK_CELL_VOLTAGE_GAP"] > 0.3]
    assert len(over) > 0
    t = clock_seconds(weak1)
    first = over[0]
    assert secs(a.start.hour, a.start.minute) <= t[first] < secs(a.end.hour, a.end.minute)
    last_charge = weak1.index[weak1["RACK_CURRENT"] > 0.5].max()
    assert 0 <= last_charge - first < 300  # the last minutes of the charge
    assert weak1.loc[first, "RACK_MAX_CELL_VOLTAGE_POSITION"] == a.position
    assert weak1.loc[last_charge, "RACK_MAX_CELL_VOLTAGE_POSITION"] == a.position
    last_discharge = weak1.index[weak1["RACK_CURRENT"] < -0.5].max()
    assert weak1.loc[last_discharge, "RACK_MIN_CELL_VOLTAGE_POSITION"] == a.position
    assert (weak1["RACK_CELL_VOLTAGE_GAP"] <= 0.5).all()
    for day in (day0, day1):  # no other rack comes near (site 1 rack 3's over-voltage spike reaches 0.15 V)
        assert day.loc[day["RACK_ID"] != a.rack_id, "RACK_CELL_VOLTAGE_GAP"].max() < 0.2


def test_weak_cell_gap_keeps_growing_to_the_fault_level() -> None:
    site = small(2, (Bank(1, (3,)),))
    peaks = {d: generate_day(site, ANCHOR + timedelta(days=d), anchor=ANCHOR)["rack"]["RACK_CELL_VOLTAGE_GAP"].max()
             for d in (3, 6)}
    assert 0.3 < peaks[3] < 0.5 < peaks[6]


def test_hot_afternoon_crosses_the_over_temperature_warning_inside_its_window_only() -> None:
    a = anomaly("over_temperature", 2)
    day1 = frames(2, 1)["rack"]
    hot = day1[day1["RACK_ID"] == a.rack_id]
    over = hot[hot["RACK_MAX_CELL_TEMPERATURE"] > 50.0]
    t = clock_seconds(over)
    assert len(over) > 600 and ((t >= secs(14, 0)) & (t < secs(16, 0))).all()
    assert hot["RACK_MAX_CELL_TEMPERATURE"].max() == 52.0
    assert (over["RACK_MAX_CELL_TEMPERATURE_POSITION"] == a.position).all()
    assert (over["RACK_OVER_TEMPERATURE_WARNING"] == 1).all() and hot["RACK_OVER_TEMPERATURE_FAULT"].sum() == 0
    assert hot["RACK_TEMPERATURE_IMBALANCE_WARNING"].sum() == 0
    assert day1.loc[day1["RACK_ID"] != a.rack_id, "RACK_MAX_CELL_TEMPERATURE"].max() < 50.0
    for site_id in (1, 2, 3):
        for offset in (0, 1):
            if (site_id, offset) != (2, 1):
                assert frames(site_id, offset)["rack"]["RACK_MAX_CELL_TEMPERATURE"].max() < 50.0


def test_short_over_voltage_near_the_end_of_the_charge() -> None:
    a = anomaly("over_voltage", 1)
    rack = frames(1, 0)["rack"]
    ov = rack[rack["RACK_ID"] == a.rack_id]
    t = clock_seconds(ov)
    window = (t >= secs(13, 34)) & (t < secs(13, 36))
    warned = ov["RACK_MAX_CELL_VOLTAGE"] > 4.05
    assert not warned[~window].any() and 90 <= warned[window].sum() <= 120
    faulted = ov[ov["RACK_MAX_CELL_VOLTAGE"] > 4.10]
    assert clock_seconds(faulted).tolist() == [secs(13, 35, s) for s in range(2, 7)]
    assert (faulted["RACK_OVER_VOLTAGE_PROTECTION_FAULT"] == 1).all()
    assert (ov.loc[warned.to_numpy(), "RACK_MAX_CELL_VOLTAGE_POSITION"] == a.position).all()
    assert (ov.loc[window, "RACK_CURRENT"] > 40).all()  # during the charge ...
    assert (ov.loc[t >= secs(13, 36), "RACK_CURRENT"] > 0.5).sum() > 60  # ... which ends minutes later
    assert frames(1, 1)["rack"].query("RACK_ID == @a.rack_id")["RACK_MAX_CELL_VOLTAGE"].max() < 4.05


def test_communication_fault_burst() -> None:
    a = anomaly("communication_fault", 3)
    got = frames(3, 0)
    bank, rack = got["bank"], got["rack"]
    window = (clock_seconds(bank) >= secs(18, 0)) & (clock_seconds(bank) < secs(18, 2))
    assert window.sum() == 120
    assert (bank.loc[window, "MASTER_RACK_COMMUNICATION_FAULT"] == '{"rack1": 0, "rack2": 1, "rack3": 0}').all()
    assert (bank.loc[~window, "MASTER_RACK_COMMUNICATION_FAULT"] == '{"rack1": 0, "rack2": 0, "rack3": 0}').all()
    for column in ("RACK_TO_MASTER_BMS_COMMUNICATION_STATUS", "RACK_TRAY_RACK_COMMUNICATION_FAULT"):
        assert (bank[column] == window).all(), column
    assert (bank.loc[window, "BATTERY_STATUS_FOR_FAULT"] == 1).all()
    comm = rack["RACK_TRAY_RACK_COMMUNICATION_FAULT"] == 1
    assert set(rack.loc[comm, "RACK_ID"]) == {a.rack_id} and comm.sum() == 120
    assert (rack.loc[comm, "RACK_STATUS_FOR_FAULT"] == 1).all()
    assert frames(3, 1)["rack"]["RACK_TRAY_RACK_COMMUNICATION_FAULT"].sum() == 0


@pytest.mark.parametrize("site_id", [1, 2, 3])
def test_missing_seconds_and_the_duplicated_second(site_id: int) -> None:
    got = frames(site_id, 0)
    for comp, frame in got.items():
        t = clock_seconds(frame)
        assert not ((t >= secs(3, 0)) & (t < secs(3, 0, 10))).any(), comp
        assert (t == secs(3, 0, 10)).any() and (t == secs(2, 59, 59)).any()
        per_second = 3 if comp == "rack" else 1
        assert len(frame) == (86_400 - 10) * per_second + (3 if comp == "rack" else 0)
    rack = got["rack"]
    at = rack[clock_seconds(rack) == secs(4, 0)]
    assert at["RACK_ID"].tolist() == [1, 1, 2, 2, 3, 3]
    first, second = at.iloc[0::2].reset_index(drop=True), at.iloc[1::2].reset_index(drop=True)
    assert np.allclose(first["RACK_VOLTAGE"] - second["RACK_VOLTAGE"], 0.3)
    assert first.drop(columns="RACK_VOLTAGE").equals(second.drop(columns="RACK_VOLTAGE"))
    assert len(frames(site_id, 1)["rack"]) == 86_400 * 3  # only on the anchor day


def test_list_anomalies_gives_absolute_windows_and_a_two_day_demo_holds_them_all() -> None:
    start = datetime.combine(ANCHOR, time(0), tzinfo=TZ)
    found: set[Anomaly] = set()
    for site in SITES.values():
        windows = list_anomalies(site, ANCHOR, start, start + timedelta(days=2))
        found |= {w.anomaly for w in windows}
        for w in windows:
            assert w.site_id == site.id and w.start.tzinfo is not None and w.start < w.end
            assert w.start.date() == ANCHOR + timedelta(days=w.anomaly.day_offset)
    assert found == set(ANOMALIES)
    comm = list_anomalies(SITES[3], ANCHOR, start, start + timedelta(days=1))
    burst = next(w for w in comm if w.anomaly.kind == "communication_fault")
    assert (burst.bank_id, burst.rack_id) == (1, 2)
    assert burst.start == datetime(2022, 9, 1, 18, 0, tzinfo=TZ) and burst.end == datetime(2022, 9, 1, 18, 2, tzinfo=TZ)
    assert list_anomalies(SITES[1], ANCHOR, start - timedelta(days=3), start) == []
    assert {w.anomaly.kind for w in list_anomalies(small(1, (Bank(1, (1,)),)), ANCHOR, start,
                                                       start + timedelta(days=2))} == {"missing_seconds",
                                                                                      "duplicated_second"}


def test_anomaly_table_is_complete() -> None:
    kinds = {(a.kind, a.site_id) for a in ANOMALIES}
    assert {("weak_cell", 1), ("weak_cell", 2), ("weak_cell", 3), ("over_temperature", 2), ("over_voltage", 1),
            ("communication_fault", 3), ("missing_seconds", 0), ("duplicated_second", 0)} == kinds
    for a in ANOMALIES:
        assert a.columns and a.outcome and a.start < a.end and a.day_offset in (0, 1)
        assert a.rack_id in (0, 1, 2, 3) and a.bank_id in (0, 1)  # inside the reduced test topology


# ----- live mode ------------------------------------------------------------------------

def test_live_rows_are_the_generated_rows_of_one_second() -> None:
    site = small(2)
    at = datetime(2022, 9, 2, 12, 0, 0, 400_000, tzinfo=TZ)
    rows = live_rows(site, at, anchor=ANCHOR)
    rack = day_frames(2, 1)["rack"]
    expected = rack[rack["TIMESTAMP"] == pd.Timestamp(at.replace(microsecond=0))].reset_index(drop=True)
    pd.testing.assert_frame_equal(rows["rack"], expected)
    assert [len(rows[c]) for c in ("bank", "rack", "pcs", "etc")] == [1, 3, 1, 1]
    gap = live_rows(site, datetime(2022, 9, 1, 3, 0, 5, tzinfo=TZ), anchor=ANCHOR)
    assert all(len(f) == 0 for f in gap.values())
    assert len(live_rows(site, datetime(2022, 9, 1, 4, 0, tzinfo=TZ), anchor=ANCHOR)["rack"]) == 6


def test_run_live_writes_every_new_second_with_an_injected_clock() -> None:
    site = small(1)
    now = [datetime(2022, 9, 2, 11, 0, 5, 300_000, tzinfo=TZ)]
    written: list[tuple[str, pd.DataFrame]] = []
    stop = threading.Event()

    def clock() -> datetime:
        return now[0]

    def write(s: Site, comp: str, frame: pd.DataFrame) -> None:
        written.append((comp, frame))
        if comp == "etc":
            now[0] += timedelta(seconds=2)

    total = run_live([site], stop, anchor=ANCHOR, write=write, clock=clock, interval_s=0, max_iterations=3,
                         start_at={1: datetime(2022, 9, 2, 11, 0, 2, tzinfo=TZ)})
    seconds = sorted({ts for comp, f in written if comp == "bank" for ts in f["TIMESTAMP"]})
    assert [s.tz_convert(TZ).strftime("%H:%M:%S") for s in seconds] == [f"11:00:{s:02d}" for s in range(3, 10)]
    assert total == 7 * (3 + 1 + 1 + 1)
    stop.set()
    assert run_live([site], stop, write=write, clock=clock, start_at={1: now[0]}) == 0


# ----- the write path (SQLite and PostgreSQL) -------------------------------------------

def test_write_demo_collapses_the_duplicate_and_keeps_the_gap(place_site: Callable[[Site], Site]) -> None:
    site = place_site(small(3))
    start = datetime(2022, 9, 1, 2, 59, 50, tzinfo=TZ)
    end = datetime(2022, 9, 1, 4, 0, 5, tzinfo=TZ)
    results = write_demo(site, start, end, anchor=ANCHOR, progress=False)
    seconds = int((end - start).total_seconds()) - 10
    assert results["rack"].rows_in == seconds * 3 + 3 and results["rack"].duplicates == 3
    assert results["rack"].written == seconds * 3
    assert results["bank"].written == results["pcs"].written == results["etc"].written == seconds
    assert results["bank"].duplicates == 0
    store = SiteStore(site)
    rack = store.table("rack")
    ts = rack.c.TIMESTAMP
    with store.engine.connect() as conn:
        at_four = conn.execute(sa.select(rack.c.RACK_ID, rack.c.RACK_VOLTAGE)
                               .where(ts == datetime(2022, 9, 1, 4, 0, tzinfo=TZ)).order_by(rack.c.RACK_ID)).all()
        in_gap = conn.execute(sa.select(sa.func.count()).select_from(rack).where(
            ts >= datetime(2022, 9, 1, 3, 0, tzinfo=TZ), ts < datetime(2022, 9, 1, 3, 0, 10, tzinfo=TZ))).scalar()
        total = conn.execute(sa.select(sa.func.count()).select_from(rack)).scalar()
        bank = store.table("bank")
        comm = conn.execute(sa.select(bank.c.MASTER_RACK_COMMUNICATION_FAULT).limit(1)).scalar()
    clean = day_frames(3, 0)["rack"]
    clean = clean[clean["TIMESTAMP"] == pd.Timestamp(datetime(2022, 9, 1, 4, 0, tzinfo=TZ))].iloc[1::2]
    assert [r[0] for r in at_four] == [1, 2, 3]
    assert [r[1] for r in at_four] == clean["RACK_VOLTAGE"].tolist()  # the clean row won
    assert in_gap == 0 and total == seconds * 3
    assert (json.loads(comm) if isinstance(comm, str) else comm) == {"rack1": 0, "rack2": 0, "rack3": 0}


def test_run_live_appends_after_the_newest_stored_second(place_site: Callable[[Site], Site]) -> None:
    site = place_site(small(2, (Bank(1, (1,)),)))
    start = datetime(2022, 9, 2, 9, 0, tzinfo=TZ)
    write_demo(site, start, start + timedelta(seconds=30), anchor=ANCHOR, progress=False)
    assert newest_timestamp(site) == start + timedelta(seconds=29)
    now = start + timedelta(seconds=33, microseconds=250_000)
    written = run_live([site], threading.Event(), anchor=ANCHOR, clock=lambda: now, interval_s=0,
                           max_iterations=2)
    assert written == 4 * 4  # seconds 30..33: one bank, one rack, the PCS and the ETC row each
    assert newest_timestamp(site) == (start + timedelta(seconds=33)).astimezone(UTC)
    store = SiteStore(site)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.table("pcs"))).scalar() == 34
