"""The analytics routes on both databases (demo sites 1-3 on SQLite, 101-103 on
PostgreSQL), after the job has run once for every demo site: exact bodies against the
formulas applied to the generator's own rows, shapes, ordering, errors and caching."""

from __future__ import annotations

import math
from datetime import date, datetime, time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from services.analytics import exsos, socp
from services.analytics import forecast as fc
from services.analytics.jobs import analyze, summarise_reports
from services.analytics.sos import FACTOR_NAMES, RACK_INPUT_COLUMNS, bucket_minimum, compute_sos, sos_parameters
from services.core.registry import Site
from services.demo.writer import generate_day
from services.protection.maps import load_protection_map
from tests.conftest import DEMO_DAY, DemoEnv, site_id_for

DAY = date.fromisoformat(DEMO_DAY)
S = "/api/ess/stats"


@pytest.fixture(scope="module")
def analysed(app: Any, demo_env: DemoEnv) -> Any:
    """The analytics job run once over every demo site (Prophet off: one day of data)."""
    portal = app.extensions["ess"]
    reports = analyze(portal, sorted(demo_env.sites), with_prophet=False, rebuild=True)
    print("\n".join(summarise_reports(reports)))
    return portal


@pytest.fixture
def sid(backend: str) -> Any:
    return lambda base: site_id_for(backend, base)


_CACHE: dict[tuple[str, int], Any] = {}


def _frames(site: Site) -> dict[str, pd.DataFrame]:
    if ("frames", site.id) in _CACHE:
        return _CACHE[("frames", site.id)]  # type: ignore[no-any-return]
    out = {}
    for comp, frame in generate_day(site, DAY, seed=7, anchor=DAY).items():
        if comp in ("rack", "bank"):
            key = ["TIMESTAMP", "BANK_ID"] + (["RACK_ID"] if comp == "rack" else [])
            out[comp] = frame.drop_duplicates(key, keep="last").sort_values(key).reset_index(drop=True)
    _CACHE[("frames", site.id)] = out
    return out


def rack_rows(site: Site) -> pd.DataFrame:
    """What the job read: per-sample rack rows with the SoS, as the job computes it."""
    if ("rows", site.id) in _CACHE:
        return _CACHE[("rows", site.id)]  # type: ignore[no-any-return]
    raw = _frames(site)["rack"]
    frame = pd.DataFrame({"t": raw["TIMESTAMP"].astype("int64").to_numpy() // 10**9,
                          "bank_id": raw["BANK_ID"].to_numpy(), "rack_id": raw["RACK_ID"].to_numpy()})
    for key, col in {**RACK_INPUT_COLUMNS, **socp.RACK_COLUMNS}.items():
        frame[key] = raw[col].to_numpy(dtype=float)
    params = sos_parameters(load_protection_map(site))
    _CACHE[("rows", site.id)] = pd.concat([frame, compute_sos(frame, params)], axis=1)
    return _CACHE[("rows", site.id)]  # type: ignore[no-any-return]


def local(hh: int, mm: int = 0, ss: int = 0) -> int:
    return int(datetime.combine(DAY, time(hh, mm, ss), tzinfo=pd.Timestamp(0, tz="Asia/Seoul").tz).timestamp())


def iso(epoch: int) -> str:
    return pd.Timestamp(epoch, unit="s", tz="UTC").tz_convert("Asia/Seoul").isoformat()


def in_range(frame: pd.DataFrame, lo: int, hi: int, bank: int = 1, rack: int | None = None) -> pd.DataFrame:
    mask = (frame["t"] >= lo) & (frame["t"] < hi) & (frame["bank_id"] == bank)
    if rack is not None:
        mask &= frame["rack_id"] == rack
    return frame.loc[mask]


# ----- SoS -------------------------------------------------------------------------------

def test_sos_rows_are_the_formula_on_the_rows_at_10_seconds(client: Any, analysed: Any, demo_env: DemoEnv,
                                                           sid: Any) -> None:
    site = demo_env.sites[sid(1)]
    body = client.get(f"{S}/sos/operating-sites/{site.id}/banks/1/racks/1/"
                      "?start-time=2022-09-01T10:00:00&end-time=2022-09-01T10:01:00").get_json()
    worst = bucket_minimum(in_range(rack_rows(site), local(10), local(10, 1), rack=1), 10)
    assert [r["time"] for r in body] == [iso(local(10, 0, s)) for s in range(0, 60, 10)]
    for row, (_, exp) in zip(body, worst.iterrows(), strict=True):
        assert row["sample_time"] == iso(int(exp["sample_time"]))
        assert [row[n] for n in FACTOR_NAMES] == [exp[n] for n in FACTOR_NAMES]
        assert row["sos_score"] == exp["sos_score"]
        assert row["level"] == ("safe", "warning", "unsafe")[int(exp["level"])]
        assert row["inputs"]["max_cell_voltage"] == exp["max_cell_voltage"]
        assert (row["operating_site"], row["bank_id"], row["rack_id"]) == (site.id, 1, 1)
        assert row["version"] == "sos-1.0+map:" + load_protection_map(site).version
    assert list(body[0]) == ["time", "operating_site", "bank_id", "rack_id", *FACTOR_NAMES, "sos_score", "level",
                             "sample_time", "inputs", "version"]


def test_sos_at_a_coarser_resolution_keeps_the_worst_moment_of_each_bucket(client: Any, analysed: Any,
                                                                          demo_env: DemoEnv, sid: Any) -> None:
    site = demo_env.sites[sid(1)]
    body = client.get(f"{S}/sos/operating-sites/{site.id}/banks/1/racks/"
                      "?start-time=2022-09-01T13:00:00&end-time=2022-09-01T15:00:00&resolution=1hour").get_json()
    assert [(r["time"], r["rack_id"]) for r in body] == [(iso(local(h)), r) for h in (13, 14) for r in (1, 2)]
    frame = in_range(rack_rows(site), local(13), local(15))
    worst = bucket_minimum(frame, 3600, local(0))
    for row in body:
        exp = worst.loc[(worst["rack_id"] == row["rack_id"]) & (worst["time"].map(iso) == row["time"])].iloc[0]
        assert row["sos_score"] == exp["sos_score"] and row["sample_time"] == iso(int(exp["sample_time"]))
    same = client.get(f"{S}/sos/operating-sites/{site.id}/banks/1/racks/1?start-time=2022-09-01T13:00:00"
                      "&end-time=2022-09-01T15:00:00&resolution=3600").get_json()
    assert same == [r for r in body if r["rack_id"] == 1]  # without a trailing slash, seconds as a number


def test_site_1_rack_3_over_voltage_shows_as_unsafe_moments(client: Any, analysed: Any, sid: Any) -> None:
    body = client.get(f"{S}/sos/operating-sites/{sid(1)}/banks/1/racks/2/?date=2022-09-01&resolution=1day"
                      ).get_json()
    assert len(body) == 1 and body[0]["time"] == "2022-09-01T00:00:00+09:00"
    assert body[0]["over_voltage"] == body[0]["sos_score"] or body[0]["sos_score"] <= body[0]["over_voltage"]


def test_sos_parameters_route(client: Any, sid: Any) -> None:
    body = client.get(f"{S}/sos/operating-sites/{sid(2)}/parameters/").get_json()
    assert body["zeta"] == 0.8 and [f["name"] for f in body["factors"]] == list(FACTOR_NAMES)
    ov = body["factors"][0]
    assert (ov["h_zeta"], ov["h_fault"], ov["side"]) == (4.05, 4.1, "above")
    assert ov["h_m"] == pytest.approx(4.014315576770756, abs=1e-12)
    assert body["factors"][3]["absolute"] is True


# ----- SoH, SoL --------------------------------------------------------------------------

def test_daily_mean_soh_of_banks_and_racks(client: Any, analysed: Any, demo_env: DemoEnv, sid: Any) -> None:
    site = demo_env.sites[sid(2)]
    racks = client.get(f"{S}/avg-soh/operating-sites/{site.id}/banks/1/racks/").get_json()
    rack = _frames(site)["rack"]
    assert racks == [{"operating_site": site.id, "bank_id": 1, "rack_id": r, "date": DEMO_DAY,
                      "value": round(float(rack.loc[(rack.BANK_ID == 1) & (rack.RACK_ID == r), "RACK_SOH"].mean()), 6)}
                     for r in (1, 2)]
    bank = _frames(site)["bank"]
    banks = client.get(f"{S}/avg-soh/operating-sites/{site.id}/banks/").get_json()
    assert banks == [{"operating_site": site.id, "bank_id": b, "date": DEMO_DAY,
                      "value": round(float(bank.loc[bank.BANK_ID == b, "BANK_SOH"].mean()), 6)} for b in (1, 2)]
    one = client.get(f"{S}/avg-soh/operating-sites/{site.id}/banks/2/racks/1/?start-date=2022-09-01"
                     "&end-date=2022-09-02").get_json()
    assert [r["rack_id"] for r in one] == [1]
    assert client.get(f"{S}/avg-soh/operating-sites/{site.id}/banks/1/?start-date=2022-09-02").get_json() == []


def test_sol_is_observed_then_forecast_and_says_how_it_was_made(client: Any, analysed: Any, sid: Any) -> None:
    soh = client.get(f"{S}/avg-soh/operating-sites/{sid(3)}/banks/1/").get_json()[0]["value"]
    rows = client.get(f"{S}/forecasting-sol/operating-sites/{sid(3)}/banks/1/?end-date=2022-09-04").get_json()
    assert [r["date"] for r in rows] == ["2022-09-01", "2022-09-02", "2022-09-03"]
    assert rows[0] == {"operating_site": sid(3), "bank_id": 1, "date": DEMO_DAY, "value": pytest.approx(
        5 * (soh - 80), abs=1e-9), "top_limit_value": None, "bottom_limit_value": None, "observed": True}
    assert [r["observed"] for r in rows] == [True, False, False]
    assert all(r["bottom_limit_value"] <= r["value"] <= r["top_limit_value"] for r in rows[1:])
    summary = client.get(f"{S}/forecasting-sol/operating-sites/{sid(3)}/banks/1/summary").get_json()
    assert summary["fitted_days"] == 1 and summary["model"] == "flat"
    assert "fitted on 1 day(s)" in summary["note"]
    every = client.get(f"{S}/forecasting-sol/operating-sites/{sid(2)}/banks/?start-date=2022-09-01"
                       "&end-date=2022-09-02").get_json()
    assert [r["bank_id"] for r in every] == [1, 2]


# ----- ExSoS -----------------------------------------------------------------------------

def test_exsos_rows_match_the_fuzzy_assessment_of_the_window_means(client: Any, analysed: Any, demo_env: DemoEnv,
                                                                   sid: Any) -> None:
    site = demo_env.sites[sid(1)]
    body = client.get(f"{S}/ex-sos/operating-sites/{site.id}/banks/1/racks/2/"
                      "?start-time=2022-09-01T13:00:00&end-time=2022-09-01T14:00:00").get_json()
    frame = in_range(rack_rows(site), local(13), local(14), rack=2)
    windows = exsos.window_means(frame, ["current", *(i.column for i in exsos.INPUTS)])
    expected = pd.concat([windows, exsos.assess(windows, sos_parameters(load_protection_map(site)))], axis=1)
    assert [r["time"] for r in body] == [iso(local(13, m)) for m in range(0, 60, 10)]
    for row, (_, exp) in zip(body, expected.iterrows(), strict=True):
        assert row["mode"] == 2 and row["rack_id"] == 2
        assert row["integrated_safety"] == pytest.approx(exp["integrated_safety"], abs=1e-12)
        assert list(row["membership_degree"]) == list(exsos.CLASSES)
        detail = row["membership_degree_detail"]
        assert detail["status"] == exp["state"]
        assert detail["max_voltage"] == pytest.approx(exp["max_cell_voltage"], abs=1e-12)
        used = [i.key for i in exsos.INPUTS if i.state == exp["state"]]
        assert list(detail["inputs"]) == used
    banks = client.get(f"{S}/ex-sos/operating-sites/{site.id}/banks/1/?start-time=2022-09-01T13:00:00"
                       "&end-time=2022-09-01T14:00:00").get_json()
    racks = client.get(f"{S}/ex-sos/operating-sites/{site.id}/banks/1/?mode=2&start-time=2022-09-01T13:00:00"
                       "&end-time=2022-09-01T14:00:00").get_json()
    assert [r["mode"] for r in banks] == [1] * 6 and len(racks) == 12
    for b in banks:  # mode 1 is the worst rack of the window
        same = [r for r in racks if r["time"] == b["time"]]
        assert b["integrated_safety"] == min(r["integrated_safety"] for r in same)
    every = client.get(f"{S}/ex-sos/operating-sites/{site.id}/banks/?date=2022-09-01").get_json()
    assert len(every) == 144


def test_static_chart_data(client: Any) -> None:
    body = client.get(f"{S}/static-chart-data/").get_json()
    assert body["count"] == 6 and body["next"] is None and len(body["results"]) == 6
    one = client.get(f"{S}/static-chart-data/?name=voltage_imbalance_safety&chart_type=ExSoS").get_json()
    assert [c["name"] for c in one["results"]] == ["voltage_imbalance_safety"]
    assert one["results"][0]["breakpoints"][2] == 0.3 and one["results"][0]["breakpoints"][4] == 0.5
    assert client.get(f"{S}/static-chart-data/?chart_type=SoS").get_json()["count"] == 0
    assert client.get(f"{S}/static-chart-data/?operating_site=102").status_code == 200
    assert client.get(f"{S}/static-chart-data/?operating_site=999").status_code == 404


# ----- SoCP ------------------------------------------------------------------------------

def test_socp_counts_are_the_extreme_positions_of_the_rows(client: Any, analysed: Any, demo_env: DemoEnv,
                                                            sid: Any) -> None:
    site = demo_env.sites[sid(3)]
    body = client.get(f"{S}/socp/operating-sites/{site.id}/banks/1/racks/1/?period=1&date=2022-09-01").get_json()
    counts = socp.count_positions(in_range(rack_rows(site), local(0), local(0) + 86_400, rack=1))
    expected = socp.summarise(counts, site.cells_per_rack)
    assert [(r["charge_status"], r["soc_range"]) for r in body] == list(zip(expected["charge_status"],
                                                                             expected["soc_range"], strict=True))
    for row, (_, exp) in zip(body, expected.iterrows(), strict=True):
        assert row["time"] == "2022-09-01T00:00:00+09:00" and row["period"] == 1
        assert {c: v["count"] for c, v in row["value"].items()} == {c: v["count"] for c, v in exp["value"].items()}
        assert row["samples"] == exp["samples"] and row["flagged_cells"] == exp["flagged"]
        assert row["entropy"] == pytest.approx(exp["entropy"], abs=1e-12)
    assert sum(r["samples"] for r in body) == 86_400 - 10  # every sample counts once (10 seconds are missing)
    week = client.get(f"{S}/socp/operating-sites/{site.id}/banks/1/racks/1/?period=7&date=2022-09-01").get_json()
    assert [r["value"] for r in week] == [r["value"] for r in body]  # one day of data: the same counts
    charge = client.get(f"{S}/socp/operating-sites/{site.id}/banks/1/racks/?charge_status=0&soc_range=80"
                        "&date=2022-09-01").get_json()
    assert {(r["rack_id"], r["period"]) for r in charge} == {(r, p) for r in (1, 2) for p in (1, 7, 30)}


# ----- forecasts -------------------------------------------------------------------------

def _minute_mean(frame: pd.DataFrame, column: str, label: int) -> float:
    return float(frame.loc[(frame["t"] >= label - 60) & (frame["t"] < label), column].mean())


@pytest.mark.parametrize("route, column", [("forecasting-max-cell-voltage", "max_cell_voltage"),
                                           ("forecasting-min-cell-temperature", "min_cell_temperature"),
                                           ("forecasting-rack-sos", "sos_score")])
def test_forecast_rows_read_the_right_minutes(client: Any, analysed: Any, demo_env: DemoEnv, sid: Any,
                                              route: str, column: str) -> None:
    site = demo_env.sites[sid(2)]
    body = client.get(f"{S}/{route}/operating-sites/{site.id}/banks/2/racks/1/"
                      "?start-time=2022-09-01T10:00:00&end-time=2022-09-01T11:00:00").get_json()
    frame = in_range(rack_rows(site), local(0), local(0) + 86_400, bank=2, rack=1)
    assert [r["time"] for r in body] == [iso(local(10, m)) for m in range(0, 60, 10)]
    for row in body:
        t = int(pd.Timestamp(row["time"]).timestamp())
        assert row["target_time"] == iso(t + 600)
        values = row["values"]
        assert list(values) == ["observed", *fc.MODELS]
        assert values["persistence"] == pytest.approx(_minute_mean(frame, column, t), abs=1e-9)
        assert values["observed"] == pytest.approx(_minute_mean(frame, column, t + 600), abs=1e-9)
        assert values["seasonal_naive"] is None and values["prophet"] is None  # no earlier day, Prophet off
        for model, (low, high) in row["intervals"].items():
            assert low <= values[model] <= high
        assert row["default_model"] in fc.MODELS
    racks = client.get(f"{S}/{route}/operating-sites/{site.id}/banks/1/racks/?start-time=2022-09-01T10:00:00"
                       "&end-time=2022-09-01T10:20:00").get_json()
    assert [(r["time"], r["rack_id"]) for r in racks] == [(iso(local(10, m)), r) for m in (0, 10) for r in (1, 2)]


def test_forecast_accuracy_recomputed_from_the_forecast_rows(client: Any, analysed: Any, sid: Any) -> None:
    base = f"operating-sites/{sid(1)}/banks/1/racks/1/?start-time=2022-09-01T06:00:00&end-time=2022-09-01T20:00:00"
    rows = client.get(f"{S}/forecasting-max-cell-temperature/{base}").get_json()
    acc = client.get(f"{S}/forecast-accuracy/{base}&target=max_cell_temperature").get_json()
    assert [a["model"] for a in acc] == list(fc.MODELS)
    obs = [r["values"]["observed"] for r in rows]
    pers = [r["values"]["persistence"] for r in rows]
    for a in acc:
        pred = [r["values"][a["model"]] for r in rows]
        pairs = [(o, p) for o, p in zip(obs, pred, strict=True) if o is not None and p is not None]
        assert a["count"] == len(pairs) and a["target"] == "max_cell_temperature" and a["rack_id"] == 1
        if not pairs:
            assert a["mae"] is None and a["mase"] is None
            continue
        assert a["mae"] == pytest.approx(sum(abs(p - o) for o, p in pairs) / len(pairs), rel=1e-12)
        assert a["rmse"] == pytest.approx(math.sqrt(sum((p - o) ** 2 for o, p in pairs) / len(pairs)), rel=1e-12)
        triples = [(o, p, b) for o, p, b in zip(obs, pred, pers, strict=True) if None not in (o, p, b)]
        assert a["mase"] == pytest.approx(sum(abs(p - o) for o, p, _ in triples)
                                          / sum(abs(b - o) for o, _, b in triples), rel=1e-12)
    assert sum(a["default"] for a in acc) == 1
    best = next(a for a in acc if a["default"])
    assert best["mase"] == min(a["mase"] for a in acc if a["mase"] is not None)
    every = client.get(f"{S}/forecast-accuracy/operating-sites/{sid(1)}/banks/1/racks/?start-time=2022-09-01"
                       "&end-time=2022-09-03").get_json()
    assert {(a["rack_id"], a["target"]) for a in every} == {(r, t) for r in (1, 2)
                                                            for t in (*fc.TARGETS, "max_cell_voltage_1d")}
    day_ahead = [a for a in every if a["target"] == "max_cell_voltage_1d"]
    assert {a["model"] for a in day_ahead} == set(fc.MODELS_1D) and {a["count"] for a in day_ahead} == {0}


def test_day_ahead_forecast_is_issued_at_midnight_after_a_complete_day(client: Any, analysed: Any,
                                                                      sid: Any) -> None:
    url = f"{S}/multi-step-forecasting-max-cell-voltage/operating-sites/{sid(1)}/banks/1/racks/1/"
    body = client.get(url).get_json()
    assert [r["time"] for r in body] == ["2022-09-02T00:00:00+09:00"]  # for the day after the demo's one day
    values = body[0]["values"]
    assert values["time"] == [iso(local(0) + 86_400 + 600 * k) for k in range(144)]
    assert values["observed"] == [None] * 144  # that day has no data yet
    assert list(values) == ["time", "observed", *fc.MODELS_1D, "lower", "upper"]
    assert values["prophet"] == [None] * 144 and values["lower"] is None  # Prophet off; no past errors yet
    day = [m for m in ("seasonal_naive", "daily_profile", "persistence") if values[m] is not None]
    assert day == ["seasonal_naive", "daily_profile", "persistence"] and len(values["daily_profile"]) == 144
    assert values["seasonal_naive"] == values["daily_profile"]  # one earlier day: its profile is that day
    assert body[0]["default_model"] == "persistence"
    racks = client.get(url.replace("/racks/1/", "/racks/")).get_json()
    assert [r["rack_id"] for r in racks] == [1, 2]
    assert client.get(url + "?end-time=2022-09-02T00:00:00").get_json() == []


# ----- errors, caching, OpenAPI ------------------------------------------------------------

@pytest.mark.parametrize("url, status, code, param", [
    ("/sos/operating-sites/999/banks/1/racks/1/", 404, "site_not_found", None),
    ("/sos/operating-sites/1/banks/9/racks/1/", 404, "bank_not_found", None),
    ("/socp/operating-sites/1/banks/1/racks/9/", 404, "rack_not_found", None),
    ("/avg-soh/operating-sites/1/banks/9/", 404, "bank_not_found", None),
    ("/socp/operating-sites/1/banks/1/racks/1/?period=2", 400, "invalid_parameter", "period"),
    ("/socp/operating-sites/1/banks/1/racks/1/?charge_status=3", 400, "invalid_parameter", "charge_status"),
    ("/socp/operating-sites/1/banks/1/racks/1/?soc_range=15", 400, "invalid_parameter", "soc_range"),
    ("/ex-sos/operating-sites/1/banks/1/racks/1/?mode=1", 400, "invalid_parameter", "mode"),
    ("/ex-sos/operating-sites/1/banks/?mode=x", 400, "invalid_parameter", "mode"),
    ("/sos/operating-sites/1/banks/1/racks/1/?resolution=15", 400, "invalid_parameter", "resolution"),
    ("/sos/operating-sites/1/banks/1/racks/1/?resolution=fast", 400, "invalid_parameter", "resolution"),
    ("/forecast-accuracy/operating-sites/1/banks/1/racks/1/?target=voltage", 400, "invalid_parameter", "target"),
    ("/forecasting-max-cell-voltage/operating-sites/1/banks/1/racks/1/?start-time=2022-09-02&end-time=2022-09-01",
     400, "invalid_parameter", "end-time"),
    ("/forecasting-max-cell-voltage/operating-sites/1/banks/1/racks/1/?start-time=yesterday", 400,
     "invalid_parameter", "start-time"),
    ("/ex-sos/operating-sites/1/banks/1/?date=2022-09-01&start-time=2022-09-01", 400, "invalid_parameter", "date"),
    ("/avg-soh/operating-sites/1/banks/1/?start-date=2022-9-1", 400, "invalid_parameter", "start-date"),
    ("/forecasting-sol/operating-sites/1/banks/1/?start-date=2022-09-02&end-date=2022-09-02", 400,
     "invalid_parameter", "end-date"),
])
def test_bad_input_is_a_problem(client: Any, url: str, status: int, code: str, param: str | None) -> None:
    resp = client.get(S + url)
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["code"] == code and body["status"] == status and body["instance"] == S + url.split("?")[0]
    if param:
        assert [p["name"] for p in body["invalid_params"]] == [param]


def test_closed_ranges_are_cacheable(client: Any, analysed: Any, sid: Any) -> None:
    url = f"{S}/ex-sos/operating-sites/{sid(2)}/banks/2/racks/1/?start-time=2022-09-01T05:00:00" \
          "&end-time=2022-09-01T05:30:00"
    first = client.get(url)
    assert first.headers["Cache-Control"] == "public, max-age=300" and first.headers.get("ETag")
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    open_ended = client.get(f"{S}/avg-soh/operating-sites/{sid(2)}/banks/")
    assert open_ended.headers["Cache-Control"] == "public, max-age=2"


def test_every_analytics_route_is_documented(client: Any) -> None:
    paths = set(client.get("/api/openapi.json").get_json()["paths"])
    families = ["avg-soh", "forecasting-sol", "forecasting-max-cell-voltage", "forecasting-min-cell-voltage",
                "forecasting-max-cell-temperature", "forecasting-min-cell-temperature", "forecasting-rack-sos",
                "multi-step-forecasting-max-cell-voltage", "forecast-accuracy", "sos", "ex-sos", "socp"]
    for family in families:
        documented = [p for p in paths if p.startswith(f"{S}/{family}/operating-sites/{{site}}/banks")]
        assert any(p.endswith("/racks/{rack}/") or family in ("forecasting-sol",) for p in documented), family
    assert f"{S}/static-chart-data/" in paths and f"{S}/sos/operating-sites/{{site}}/parameters/" in paths
    assert f"{S}/forecasting-sol/operating-sites/{{site}}/banks/{{bank}}/summary/" in paths


def test_values_are_finite_json(client: Any, analysed: Any, sid: Any) -> None:
    body = client.get(f"{S}/forecasting-min-cell-voltage/operating-sites/{sid(3)}/banks/1/racks/2/"
                      "?date=2022-09-01").get_json()
    assert len(body) == 143  # 00:10 to 23:50: nothing is issued before the first minute of data
    for row in body:
        for v in row["values"].values():
            assert v is None or np.isfinite(v)
