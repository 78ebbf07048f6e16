"""Every analytics formula pinned on hand-computed values: SoS factors and levels, ExSoS
degrees and centroid, SoCP counts, the binomial bound, SoL and its end-of-life date."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from services.analytics import exsos, socp, soh
from services.analytics.sos import (
    FAULT_RATIO,
    LEVELS,
    bucket_minimum,
    compute_sos,
    level_codes,
    sos_parameters,
)
from services.core.errors import ConfigError
from services.core.registry import demo_sites
from services.protection.maps import load_protection_map, parse_protection_map

PARAMS = sos_parameters(load_protection_map(demo_sites()[0]))
SAFE = {"max_cell_voltage": 3.7, "min_cell_voltage": 3.6, "cell_voltage_gap": 0.02, "current": 10.0,
        "max_cell_temperature": 30.0, "min_cell_temperature": 20.0, "cell_temperature_gap": 5.0}


def test_fault_ratio_is_the_zeta4_rule() -> None:
    # (h_fault - h_m) / (h_zeta - h_m) = sqrt((ζ^-4 - 1) / (ζ^-1 - 1)) = sqrt(1.44140625 / 0.25)
    assert FAULT_RATIO == pytest.approx(math.sqrt(5.765625), abs=1e-15)
    assert FAULT_RATIO == pytest.approx(2.4011715890373, abs=1e-12)


@pytest.mark.parametrize("name, h_m, printed, tol", [
    ("over_voltage", 4.014315576770756, 4.014, 5e-4),
    ("under_voltage", 3.3427376929169763, 3.34, 3e-3),
    ("voltage_unbalance", 0.1572623070830239, 0.158, 1e-3),
    ("over_current", 85.72623070830238, 85.75, 0.03),
    ("over_temperature", 46.431557677075595, 47.3, 1.0),  # the original hand-tuned these three
    ("under_temperature", 7.136884645848801, 5.3, 2.0),
    ("temperature_unbalance", 16.4315576770756, 17.35, 1.0),
])
def test_h_m_from_the_protection_map_reproduces_the_original_constants(name: str, h_m: float, printed: float,
                                                                        tol: float) -> None:
    p = PARAMS.factor(name)
    assert p.h_m == pytest.approx(h_m, abs=1e-12)
    assert p.h_m == pytest.approx(printed, abs=tol)
    assert p.a == pytest.approx(0.25 / (p.h_zeta - p.h_m) ** 2, rel=1e-12)


@pytest.mark.parametrize("name", [f.name for f in PARAMS.factors])
def test_each_factor_is_1_at_h_m_zeta_at_warning_and_zeta4_at_fault(name: str) -> None:
    p = PARAMS.factor(name)
    safe_side = p.h_m - 1.0 if p.upper else p.h_m + 1.0
    values = p.evaluate(np.array([safe_side, p.h_m, p.h_zeta, p.h_fault, np.nan]))
    assert values[0] == 1.0
    assert values[1] == 1.0
    assert values[2] == pytest.approx(0.8, abs=1e-12)
    assert values[3] == pytest.approx(0.4096, abs=1e-12)
    assert math.isnan(values[4])


def test_hand_computed_factor_values_and_the_absolute_current() -> None:
    # over-voltage at 4.07 V: d = 4.07 - 4.0143156 = 0.0556844, a = 196.32818, 1 / (1 + a d^2) = 0.6215946
    assert PARAMS.factor("over_voltage").evaluate(np.array([4.07]))[0] == pytest.approx(0.6215945976160031, abs=1e-12)
    # under-temperature at -5 °C: halfway from the warning (0) to the fault (-10)
    assert PARAMS.factor("under_temperature").evaluate(np.array([-5.0]))[0] == pytest.approx(0.5803837227556, abs=1e-12)
    current = PARAMS.factor("over_current").evaluate(np.array([-110.0, 110.0, -100.0, 100.0, -120.0, 0.0]))
    assert current[0] == current[1] == pytest.approx(0.5803837227556, abs=1e-12)  # charge and discharge alike
    assert current[2] == current[3] == pytest.approx(0.8, abs=1e-12)
    assert current[4] == pytest.approx(0.4096, abs=1e-12)
    assert current[5] == 1.0


def test_sos_is_the_product_and_levels_follow_zeta_and_zeta4() -> None:
    rows = [dict(SAFE), dict(SAFE, max_cell_voltage=4.05), dict(SAFE, max_cell_voltage=4.05, cell_voltage_gap=0.3),
            dict(SAFE, current=-120.0), dict(SAFE, current=-120.0, max_cell_temperature=50.0),
            dict(SAFE, min_cell_voltage=np.nan)]
    frame = compute_sos(pd.DataFrame(rows), PARAMS)
    assert frame["sos_score"].iloc[0] == 1.0
    assert frame["sos_score"].iloc[1] == pytest.approx(0.8, abs=1e-12)
    assert frame["sos_score"].iloc[2] == pytest.approx(0.64, abs=1e-12)
    assert frame["voltage_unbalance"].iloc[2] == pytest.approx(0.8, abs=1e-12)
    assert frame["sos_score"].iloc[3] == pytest.approx(0.4096, abs=1e-12)
    assert frame["sos_score"].iloc[4] == pytest.approx(0.32768, abs=1e-12)
    assert math.isnan(frame["sos_score"].iloc[5])
    assert frame["level"].tolist() == [0, 0, 1, 1, 2, -1]
    assert level_codes(np.array([1.0, 0.8, 0.7999, 0.4096, 0.4095, 0.0])).tolist() == [0, 0, 1, 1, 2, 2]
    assert LEVELS == ("safe", "warning", "unsafe")


def test_bucket_minimum_keeps_the_worst_moment_with_its_factors() -> None:
    t0 = 1_661_990_400  # 2022-09-01T09:00:00+09:00, a multiple of 10
    rows = [dict(SAFE, max_cell_voltage=v) for v in (3.9, 4.07, 4.05, 4.09, 3.8, 3.8)]
    inputs = pd.DataFrame(rows)
    frame = pd.concat([pd.DataFrame({"t": [t0, t0 + 3, t0 + 9, t0 + 12, t0 + 15, t0 + 19], "bank_id": 1,
                                     "rack_id": 2}), inputs, compute_sos(inputs, PARAMS)], axis=1)
    worst = bucket_minimum(frame, 10)
    assert worst["time"].tolist() == [t0, t0 + 10]
    assert worst["sample_time"].tolist() == [t0 + 3, t0 + 12]
    assert worst["max_cell_voltage"].tolist() == [4.07, 4.09]
    assert worst["over_voltage"].iloc[0] == pytest.approx(0.6215945976160031, abs=1e-12)
    assert worst["sos_score"].tolist() == worst["over_voltage"].tolist()


def test_a_map_without_limits_is_refused_naming_the_field() -> None:
    pmap = parse_protection_map({"dataType": {"rack": {"RACK_MAX_CELL_VOLTAGE": {
        "type": "number", "value": "-", "warning": {"above": 4.05}, "fault": {"above": 4.1}}}}}, 1, "map.json")
    with pytest.raises(ConfigError, match="RACK_MIN_CELL_VOLTAGE"):
        sos_parameters(pmap)


def test_other_limits_give_consistent_factors() -> None:
    data = {"meta": {"version": "x1"}, "dataType": {"rack": {
        f: {"type": "number", "value": "-", "warning": {side: w}, "fault": {side: flt}, "absolute": f == "RACK_CURRENT"}
        for f, side, w, flt in [("RACK_MAX_CELL_VOLTAGE", "above", 3.65, 3.70), ("RACK_MIN_CELL_VOLTAGE", "below",
                                2.8, 2.5), ("RACK_CELL_VOLTAGE_GAP", "above", 0.2, 0.3),
                                ("RACK_CURRENT", "above", 200, 250), ("RACK_MAX_CELL_TEMPERATURE", "above", 45, 60),
                                ("RACK_MIN_CELL_TEMPERATURE", "below", 5, -20),
                                ("RACK_CELL_TEMPERATURE_GAP", "above", 10, 15)]}}}
    params = sos_parameters(parse_protection_map(data, 1, "lfp.json"))
    assert params.version == "sos-1.0+map:x1"
    for p in params.factors:
        assert p.evaluate(np.array([p.h_zeta, p.h_fault])) == pytest.approx([0.8, 0.4096], abs=1e-12)


# ----- ExSoS -----------------------------------------------------------------------------

def _degrees(name: str, x: float) -> list[float]:
    return exsos.degrees(np.array([x]), PARAMS.factor(name))[0].tolist()


def test_membership_curves_sit_on_the_protection_map() -> None:
    ov = PARAMS.factor("over_voltage")
    c = exsos.breakpoints(ov)
    assert c.tolist() == pytest.approx([ov.h_m, (ov.h_m + 4.05) / 2, 4.05, 4.075, 4.1], abs=1e-12)
    assert _degrees("over_voltage", 3.9) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert _degrees("over_voltage", 4.05) == pytest.approx([0.0, 0.0, 1.0, 0.0, 0.0], abs=1e-12)
    assert _degrees("over_voltage", 4.0875) == pytest.approx([0.0, 0.0, 0.0, 0.5, 0.5], abs=1e-12)
    assert _degrees("over_voltage", 4.2) == [0.0, 0.0, 0.0, 0.0, 1.0]
    # lower-limit inputs are mirrored: 3.1 V is halfway between the warning (3.2) and the fault (3.0)
    assert _degrees("under_voltage", 3.1) == pytest.approx([0.0, 0.0, 0.0, 1.0, 0.0], abs=1e-12)
    assert _degrees("under_voltage", 3.6) == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_centroid_of_one_input_is_piecewise_linear() -> None:
    ov = PARAMS.factor("over_voltage")
    c = exsos.breakpoints(ov)
    xs = np.array([ov.h_m, (c[0] + c[1]) / 2, 4.05, 4.1, 4.3])
    assert exsos.centroid(exsos.degrees(xs, ov)).tolist() == pytest.approx([1.0, 0.875, 0.5, 0.0, 0.0], abs=1e-12)


def test_exsos_one_input_per_state() -> None:
    ov = PARAMS.factor("over_voltage")
    c = exsos.breakpoints(ov)
    windows = pd.DataFrame([
        # charge: max voltage between Marginal and Neutral; temperature negligible
        dict(SAFE, current=50.0, max_cell_voltage=(c[1] + c[2]) / 2),
        # discharge: min temperature at the fault limit; min voltage negligible
        dict(SAFE, current=-30.0, min_cell_temperature=-10.0),
        # rest: voltage gap at the Critical peak, between warning 0.3 and fault 0.5
        dict(SAFE, current=0.0, cell_voltage_gap=0.4),
        # inside the dead band is rest; the charge inputs no longer count
        dict(SAFE, current=2.0, max_cell_voltage=4.2),
    ])
    out = exsos.assess(windows, PARAMS)
    assert out["state"].tolist() == [exsos.CHARGE, exsos.DISCHARGE, exsos.REST, exsos.REST]
    classes = list(exsos.CLASSES)
    assert out.loc[0, classes].tolist() == pytest.approx([1.0, 0.5, 0.5, 0.0, 0.0], abs=1e-12)
    assert out.loc[1, classes].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0, 1.0], abs=1e-12)
    assert out.loc[2, classes].tolist() == pytest.approx([1.0, 0.0, 0.0, 1.0, 0.0], abs=1e-12)
    assert out.loc[3, classes].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    # centroids on Negligible 1, Marginal 0.75, Neutral 0.5, Critical 0.25, Catastrophic 0
    assert out["integrated_safety"].tolist() == pytest.approx([(1 + 0.375 + 0.25) / 2, 0.5, 1.25 / 2, 1.0],
                                                              abs=1e-12)
    assert out.loc[0, "deg__max_voltage"].tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0, 0.0], abs=1e-12)


def test_worst_rack_is_mode_1() -> None:
    rows = pd.DataFrame({"bank_id": [1, 1, 1, 1], "rack_id": [1, 2, 3, 1], "time": [0, 0, 0, 600],
                         "integrated_safety": [0.9, 0.6, 0.6, 1.0]})
    worst = exsos.worst_rack(rows)
    assert worst[["time", "rack_id"]].values.tolist() == [[0, 2], [600, 1]]


def test_static_chart_data_has_the_original_shape() -> None:
    curves = exsos.chart_data(PARAMS)
    assert [c["name"] for c in curves] == ["over_voltage_safety", "over_temperature_safety", "under_voltage_safety",
                                          "under_temperature_safety", "voltage_imbalance_safety",
                                          "temperature_imbalance_safety"]
    point = curves[0]["values"][3]
    assert set(point) == {f"{c}_{a}" for c in ("negligible", "marginal", "neutral", "critical", "catastrophic")
                          for a in ("x", "y")}
    assert point["neutral_x"] == 4.05 and point["neutral_y"] == 1.0
    xs = [p["negligible_x"] for p in curves[2]["values"]]
    assert xs == sorted(xs)  # ascending even for lower-limit inputs


# ----- SoCP ------------------------------------------------------------------------------

def test_socp_counts_on_a_small_hand_made_rack() -> None:
    # 12 samples: charge (I > 2 A) counts the max-voltage position, discharge the min, rest the max
    frame = pd.DataFrame({
        "bank_id": 1, "rack_id": 4,
        "current": [50, 50, 50, 50, -30, -30, 0, 0, 0, 0, 0, 50],
        "soc": [10, 12, 15, 25, 80, 75, 50, 51, 52, 59, 95, 100],
        "max_cell_voltage_position": [5, 5, 7, 5, 1, 1, 9, 9, 9, 9, 9, 5],
        "min_cell_voltage_position": [2, 2, 2, 2, 3, 4, 2, 2, 2, 2, 2, 2],
        "max_cell_voltage": [3.50, 3.52, 3.55, 3.60, 3.9, 3.9, 3.70, 3.70, 3.71, 3.72, 4.00, 4.05],
        "min_cell_voltage": [3.4, 3.4, 3.4, 3.4, 3.80, 3.75, 3.6, 3.6, 3.6, 3.6, 3.9, 3.9],
        "max_cell_temperature": [30, 32, 31, 30, 28, 27, 25, 25, 25, 26, 25, 33],
    }, dtype=float)
    counts = socp.count_positions(frame)
    got = {(int(r.charge_status), int(r.soc_range), int(r.cell)): int(r.count) for r in counts.itertuples()}
    assert got == {(0, 10, 5): 2, (0, 10, 7): 1, (0, 20, 5): 1, (0, 90, 5): 1,
                   (1, 80, 3): 1, (1, 70, 4): 1,
                   (2, 50, 9): 4, (2, 90, 9): 1}
    rows = socp.summarise(counts, cells_per_rack=10)
    by_key = {(int(r.charge_status), int(r.soc_range)): r for r in rows.itertuples()}
    charge10 = by_key[(0, 10)]
    assert charge10.samples == 3
    assert charge10.value == {"5": {"count": 2, "voltage": pytest.approx(3.51), "temp": pytest.approx(31.0),
                                    "current": pytest.approx(50.0)},
                              "7": {"count": 1, "voltage": 3.55, "temp": 31.0, "current": 50.0}}
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(10)
    assert charge10.entropy == pytest.approx(h, abs=1e-12)
    assert charge10.bound == 2 and charge10.flagged == []  # P(X <= 2 | n=3, p=0.1) = 0.999
    rest50 = by_key[(2, 50)]
    assert rest50.entropy == 0.0  # always the same cell
    assert rest50.bound == 3 and rest50.flagged == [9]  # P(X <= 3 | n=4) = 0.9999 >= 0.999 and 4 > 3
    assert rest50.value["9"]["voltage"] == pytest.approx((3.70 + 3.70 + 3.71 + 3.72) / 4)
    discharge80 = by_key[(1, 80)]
    assert discharge80.value == {"3": {"count": 1, "voltage": 3.80, "temp": 28.0, "current": -30.0}}


def _binomial_bound_bruteforce(n: int, p: float, q: float) -> int:
    cdf = 0.0
    for k in range(n + 1):
        cdf += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if cdf >= q - 1e-12:
            return k
    return n


@pytest.mark.parametrize("n, cells", [(1, 10), (3, 10), (4, 10), (50, 10), (500, 240), (5000, 204), (0, 10)])
def test_binomial_bound_matches_the_exact_cdf(n: int, cells: int) -> None:
    assert socp.binomial_upper_bound(n, 1 / cells) == _binomial_bound_bruteforce(n, 1 / cells, 0.999)


def test_binomial_bound_for_long_periods_stays_near_the_normal_quantile() -> None:
    n, p = 30 * 86_400, 1 / 240  # a month of samples
    bound = socp.binomial_upper_bound(n, p)
    normal = n * p + 3.0902 * math.sqrt(n * p * (1 - p))
    assert abs(bound - normal) < 10


def test_soc_bands() -> None:
    assert socp.soc_bands(np.array([0, 9.9, 10, 55, 90, 99.9, 100, 104])).tolist() == [0, 0, 10, 50, 90, 90, 90, 90]


# ----- SoH, SoL ----------------------------------------------------------------------------

def test_sol_mapping() -> None:
    assert soh.sol_from_soh(np.array([100.0, 80.0, 90.0, 79.0, 98.4])).tolist() == pytest.approx(
        [100.0, 0.0, 50.0, -5.0, 92.0], abs=1e-12)


def test_end_of_life_is_the_first_day_at_or_below_zero() -> None:
    days = [date(2030, 1, 1) + timedelta(days=k) for k in range(4)]
    assert soh.end_of_life_date(days, np.array([3.0, 1.0, 0.0, -1.0])) == date(2030, 1, 3)
    assert soh.end_of_life_date(days, np.array([3.0, 2.0, 1.0, 0.5])) is None


def test_daily_means_from_minute_sums() -> None:
    t0 = 1_661_958_000  # 2022-09-01T00:00:00+09:00
    minutes = pd.DataFrame({"bucket": [t0 - 60, t0, t0 + 60, t0 + 86_400], "bank_id": 1, "rack_id": 2,
                            "sum": [60 * 98.0, 60 * 98.4, 30 * 98.2, 60 * 98.0], "cnt": [60, 60, 30, 60]})
    out = soh.daily_means(minutes, "Asia/Seoul")
    assert out["date"].tolist() == [date(2022, 8, 31), date(2022, 9, 1), date(2022, 9, 2)]
    assert out["value"].tolist() == [98.0, round((60 * 98.4 + 30 * 98.2) / 90, 6), 98.0]  # rounded to 1e-6 %
    assert out["samples"].tolist() == [60, 90, 60]


def test_sol_forecast_of_a_linear_soh_series_reaches_end_of_life_on_time() -> None:
    start = date(2022, 1, 1)
    days = [start + timedelta(days=k) for k in range(200)]
    series = pd.Series(100.0 - 0.01 * np.arange(200), index=days)  # SoL 100 - 0.05/day: 0 after 2000 days
    result = soh.forecast_sol(series)
    assert result.model == "prophet" and result.fitted_days == 200
    assert result.first_date == start and result.last_date == days[-1]
    expected = start + timedelta(days=2000)
    assert result.end_of_life_date is not None
    assert abs((result.end_of_life_date - expected).days) <= 3
    assert result.trend_sol_per_year == pytest.approx(-0.05 * 365, rel=0.02)
    rows = result.rows
    assert rows["observed"].sum() == 200 and len(rows) == 200 + soh.HORIZON_DAYS
    assert rows.loc[rows["observed"], "value"].tolist() == pytest.approx((100 - 0.05 * np.arange(200)).tolist())
    future = rows.loc[~rows["observed"]]
    assert (future["bottom_limit_value"] <= future["value"] + 1e-9).all()
    assert (future["top_limit_value"] >= future["value"] - 1e-9).all()
    assert "fewer than" not in result.note


def test_sol_forecast_from_a_few_days_is_honest() -> None:
    days = [date(2022, 9, 1) + timedelta(days=k) for k in range(3)]
    result = soh.forecast_sol(pd.Series([98.4, 98.4, 98.4], index=days))
    assert result.fitted_days == 3
    assert "fitted on 3 day(s)" in result.note and "fewer than 90 days" in result.note
    future = result.rows.loc[~result.rows["observed"]].reset_index(drop=True)
    year = future.iloc[364]
    assert year["top_limit_value"] >= 92.0 - 1e-6  # no fade at all stays inside
    assert year["bottom_limit_value"] <= 92.0 - 5 * 4.0 * 365 / 365.25 + 1e-6  # a 4 SoH-%/year fade too
    one = soh.forecast_sol(pd.Series([98.4], index=days[:1]))
    assert one.model == "flat" and one.end_of_life_date is None
