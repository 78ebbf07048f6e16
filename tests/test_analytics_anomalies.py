"""The generator's labelled anomalies move the indices the way an operator would expect:
the weak-cell rack's voltage-unbalance factor drops and SoCP flags the injected cell, the
hot afternoon lowers the over-temperature factor and ExSoS. Computed on the generator's
frames directly (day offset 1 of a reduced site 2)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from services.analytics import exsos, socp
from services.analytics.sos import RACK_INPUT_COLUMNS, compute_sos, sos_parameters
from services.core.registry import Bank, Site, demo_sites
from services.demo.anomalies import list_anomalies
from services.demo.writer import generate_day
from services.protection.maps import load_protection_map

ANCHOR = date(2022, 9, 1)
DAY1 = date(2022, 9, 2)
SITE2 = dataclasses.replace(demo_sites()[1], banks=(Bank(1, (1, 2, 3)),), demo_anchor=ANCHOR)
PARAMS = sos_parameters(load_protection_map(SITE2))


def rack_frame(site: Site, day: date) -> pd.DataFrame:
    """The day's rack rows with `t`, ids, the SoS inputs and SoCP columns, and the SoS."""
    return _rack_frame(site.id, day)


@lru_cache(maxsize=4)
def _rack_frame(site_id: int, day: date) -> pd.DataFrame:
    assert site_id == SITE2.id
    raw = generate_day(SITE2, day, seed=7, anchor=ANCHOR)["rack"]
    raw = raw.drop_duplicates(["TIMESTAMP", "BANK_ID", "RACK_ID"], keep="last").reset_index(drop=True)
    frame = pd.DataFrame({"t": raw["TIMESTAMP"].astype("int64").to_numpy() // 10**9,
                          "bank_id": raw["BANK_ID"].to_numpy(), "rack_id": raw["RACK_ID"].to_numpy()})
    for key, col in {**RACK_INPUT_COLUMNS, **socp.RACK_COLUMNS}.items():
        frame[key] = raw[col].to_numpy(dtype=float)
    return pd.concat([frame, compute_sos(frame, PARAMS)], axis=1)


def _local(day: date, hh: int, mm: int = 0) -> int:
    return int(datetime.combine(day, time(hh, mm), tzinfo=SITE2.tz).timestamp())


def test_the_anomalies_are_where_the_generator_says() -> None:
    kinds = {(a.anomaly.kind, a.rack_id, a.anomaly.position) for a in list_anomalies(
        SITE2, ANCHOR, datetime.combine(DAY1, time(0), tzinfo=SITE2.tz),
        datetime.combine(DAY1, time(23, 59), tzinfo=SITE2.tz))}
    assert ("weak_cell", 3, 203) in kinds and ("over_temperature", 2, 27) in kinds


def test_weak_cell_lowers_the_voltage_unbalance_factor_from_day_one() -> None:
    day1 = rack_frame(SITE2, DAY1)
    worst = day1.groupby("rack_id")["voltage_unbalance"].min()
    assert worst[3] < 0.8  # the gap crosses the 0.3 V warning limit
    assert worst[1] == 1.0 and worst[2] == 1.0
    at_worst = day1.loc[day1["voltage_unbalance"].idxmin()]
    assert at_worst["rack_id"] == 3 and at_worst["cell_voltage_gap"] > 0.3
    assert at_worst["max_cell_voltage_position"] == 203
    day0 = rack_frame(SITE2, ANCHOR)
    assert day0.loc[day0["rack_id"] == 3, "voltage_unbalance"].min() > 0.8  # below 0.3 V on the anchor day


def test_socp_flags_the_weak_cell() -> None:
    day1 = rack_frame(SITE2, DAY1)
    rows = socp.summarise(socp.count_positions(day1), SITE2.cells_per_rack)
    rest80 = rows.loc[(rows["charge_status"] == socp.REST) & (rows["soc_range"] == 80)].set_index("rack_id")
    weak = rest80.loc[3]
    counts = {int(c): v["count"] for c, v in weak["value"].items()}
    assert max(counts, key=counts.get) == 203  # after the charge the weak cell is the max-voltage cell
    assert 203 in weak["flagged"]
    assert weak["entropy"] < 0.1
    for rack in (1, 2):  # cell 203 is nothing special elsewhere
        assert 203 not in rest80.loc[rack, "flagged"]
    charge = rows.loc[(rows["rack_id"] == 3) & (rows["charge_status"] == socp.CHARGE) & (rows["soc_range"] == 80)]
    assert 203 in charge.iloc[0]["flagged"]  # and it is the max-voltage cell at the end of the charge


def test_hot_afternoon_lowers_the_over_temperature_factor_and_exsos() -> None:
    day1 = rack_frame(SITE2, DAY1)
    hot = day1.loc[(day1["t"] >= _local(DAY1, 14)) & (day1["t"] < _local(DAY1, 16))]
    worst = hot.groupby("rack_id")["over_temperature"].min()
    assert worst[2] < 0.8  # above the 50 °C warning limit
    assert worst[1] == 1.0 and worst[3] == 1.0
    morning = day1.loc[(day1["t"] >= _local(DAY1, 6)) & (day1["t"] < _local(DAY1, 9)) & (day1["rack_id"] == 2)]
    assert morning["over_temperature"].min() == 1.0

    inputs = [i.column for i in exsos.INPUTS]
    windows = exsos.window_means(day1, ["current", *inputs])
    assessed = pd.concat([windows, exsos.assess(windows, PARAMS)], axis=1)
    afternoon = assessed.loc[(assessed["time"] >= _local(DAY1, 14, 30)) & (assessed["time"] < _local(DAY1, 15, 30))]
    by_rack = afternoon.groupby("rack_id")["integrated_safety"].min()
    assert by_rack[2] < 0.95
    assert by_rack[1] == 1.0 and by_rack[3] == 1.0
    worst_window = afternoon.loc[afternoon["integrated_safety"].idxmin()]
    assert worst_window["state"] == exsos.REST and worst_window["Marginal"] > 0  # the temperature gap widened
    mode1 = exsos.worst_rack(afternoon)
    assert set(mode1.loc[mode1["integrated_safety"] < 1.0, "rack_id"]) == {2}
    day0 = rack_frame(SITE2, ANCHOR)
    assert day0.loc[day0["rack_id"] == 2, "over_temperature"].min() == 1.0  # the anchor day is normal


def test_weak_cell_overcharge_reaches_exsos_catastrophic() -> None:
    day1 = rack_frame(SITE2, DAY1)
    inputs = [i.column for i in exsos.INPUTS]
    windows = exsos.window_means(day1, ["current", *inputs])
    assessed = pd.concat([windows, exsos.assess(windows, PARAMS)], axis=1)
    weak = assessed.loc[assessed["rack_id"] == 3]
    row = weak.loc[weak["Catastrophic"].idxmax()]
    assert row["state"] == exsos.CHARGE and row["Catastrophic"] == pytest.approx(1.0)
    assert row["max_cell_voltage"] > 4.1
    assert np.isclose(row["integrated_safety"], 0.5)  # max-aggregation: Negligible temperature, Catastrophic voltage
