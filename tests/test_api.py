"""The operating-data API on both databases: exact bodies against the generator's own
rows, paging, CSV, statistics, caching and every kind of bad input."""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest

from services.core.registry import Site
from services.demo.writer import generate_day
from services.telemetry.rows import make_selector, resolve_columns
from services.telemetry.stats import StatsQuery, bucket_stats
from services.telemetry.timerange import parse_range
from tests.conftest import DEMO_DAY, DemoEnv, site_id_for

DAY = pd.Timestamp(DEMO_DAY).date()


_FRAMES: dict[int, dict[str, pd.DataFrame]] = {}


def frames_of(site: Site) -> dict[str, pd.DataFrame]:
    """What the database holds: the generator's day with duplicated keys collapsed."""
    if site.id in _FRAMES:
        return _FRAMES[site.id]
    out = {}
    for comp, frame in generate_day(site, DAY, seed=7, anchor=DAY).items():
        key = [c for c in ("TIMESTAMP", "BANK_ID", "RACK_ID") if c in frame.columns and (c != "RACK_ID"
                                                                                          or comp == "rack")]
        out[comp] = frame.drop_duplicates(key, keep="last").sort_values(key).reset_index(drop=True)
    _FRAMES[site.id] = out
    return out


def expected_rows(site: Site, comp: str, start: str, end: str, fields: list[str], bank: int | None = None,
                  rack: int | None = None) -> list[dict[str, Any]]:
    frame = frames_of(site)[comp]
    t0 = pd.Timestamp(start, tz=site.timezone)
    t1 = pd.Timestamp(end, tz=site.timezone)
    mask = (frame.TIMESTAMP >= t0) & (frame.TIMESTAMP < t1)
    if bank is not None:
        mask &= frame.BANK_ID == bank
    if rack is not None:
        mask &= frame.RACK_ID == rack
    rows = []
    by_lower = {c.lower(): c for c in frame.columns}
    for rec in frame.loc[mask, [by_lower[f.lower()] for f in fields]].to_dict("records"):
        out = {}
        for k, v in rec.items():
            if isinstance(v, pd.Timestamp):
                v = v.tz_convert(site.timezone).isoformat()
            elif isinstance(v, str) and v.startswith("{"):
                v = json.loads(v)
            elif hasattr(v, "item"):
                v = v.item()
            out[k.lower()] = v
        rows.append(out)
    return rows


@pytest.fixture
def sid(backend: str) -> Any:
    return lambda base: site_id_for(backend, base)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def test_discovery_lists_every_site_with_its_span(client: Any, demo_env: DemoEnv) -> None:
    body = client.get("/api/ess/operating-sites/").get_json()
    assert [s["id"] for s in body] == [1, 101, 2, 102, 3, 103]
    two = next(s for s in body if s["id"] == 2)
    assert two["banks"] == [{"id": 1, "racks": [1, 2]}, {"id": 2, "racks": [1]}]
    assert (two["cells_per_rack"], two["temperature_sensors_per_rack"], two["timezone"]) == (240, 40, "Asia/Seoul")
    assert two["components"]["rack"]["first_timestamp"] == "2022-09-01T00:00:00+09:00"
    assert two["components"]["rack"]["last_timestamp"] == "2022-09-01T23:59:59+09:00"
    one = client.get("/api/ess/operating-sites/101").get_json()
    rack_fields = {f["name"]: f for f in one["components"]["rack"]["fields"]}
    assert rack_fields["rack_max_cell_voltage"]["unit"] == "V"
    assert rack_fields["rack_over_voltage_protection_warning"]["sensitive"] is True
    assert rack_fields["rack_soc"]["sensitive"] is False
    assert len(rack_fields) == 48


def test_seed_example_url(client: Any, demo_env: DemoEnv, sid: Any) -> None:
    site = demo_env.sites[sid(1)]
    url = (f"/api/ess/operating-sites/{site.id}/banks/1/racks/1/?fields=timestamp,rack_soc"
           "&start-time=2022-09-01T10:00:00&end-time=2022-09-01T12:00:00&page=1")
    body = client.get(url).get_json()
    expected = expected_rows(site, "rack", "2022-09-01T10:00:00", "2022-09-01T12:00:00", ["timestamp", "rack_soc"],
                             1, 1)
    assert body["count"] == 7200 == len(expected)
    assert body["previous"] is None
    assert body["results"] == expected[:1000]
    assert body["results"][0] == {"timestamp": "2022-09-01T10:00:00+09:00", "rack_soc": expected[0]["rack_soc"]}


@pytest.mark.parametrize("comp_path,comp,bank,rack", [
    ("banks/1/", "bank", 1, None), ("banks/2/racks/", "rack", 2, None), ("banks/1/racks/2/", "rack", 1, 2),
    ("pcs/", "pcs", None, None), ("etc/", "etc", None, None)])
def test_every_component_route_matches_the_rows(client: Any, demo_env: DemoEnv, sid: Any, comp_path: str,
                                                comp: str, bank: int | None, rack: int | None) -> None:
    site = demo_env.sites[sid(2)]
    url = f"/api/ess/operating-sites/{site.id}/{comp_path}?start-time=2022-09-01T13:00:00&end-time=2022-09-01T13:00:03"
    body = client.get(url).get_json()
    frame_cols = [c.lower() for c in frames_of(site)[comp].columns]
    expected = expected_rows(site, comp, "2022-09-01T13:00:00", "2022-09-01T13:00:03", frame_cols, bank, rack)
    assert body == {"count": len(expected), "next": None, "previous": None, "results": expected}
    assert len(expected) == 3
    assert list(body["results"][0]) == frame_cols


def test_rack_list_of_a_bank_orders_by_time_then_rack(client: Any, sid: Any) -> None:
    url = (f"/api/ess/operating-sites/{sid(2)}/banks/1/racks/?fields=timestamp,bank_id,rack_id"
           "&start-time=2022-09-01T13:00:00&end-time=2022-09-01T13:00:02&no_page")
    assert client.get(url).get_json() == [
        {"timestamp": f"2022-09-01T13:00:0{s}+09:00", "bank_id": 1, "rack_id": r} for s in (0, 1) for r in (1, 2)]


def test_time_forms_and_half_open_ranges(client: Any, sid: Any) -> None:
    base = f"/api/ess/operating-sites/{sid(3)}/banks/1/racks/1/?fields=timestamp&no_page"
    local = client.get(base + "&start-time=2022-09-01T10:00:00&end-time=2022-09-01T10:00:03").get_json()
    utc = client.get(base + "&start-time=2022-09-01T01:00:00Z&end-time=2022-09-01T01:00:03%2B00:00").get_json()
    fraction = client.get(base + "&start-time=2022-09-01T10:00:00.000&end-time=2022-09-01T10:00:02.5").get_json()
    minutes = client.get(base + "&start-time=2022-09-01T10:00&end-time=2022-09-01T10:01").get_json()
    assert local == utc == [{"timestamp": f"2022-09-01T10:00:0{s}+09:00"} for s in range(3)]
    assert fraction == local
    assert len(minutes) == 60
    whole = client.get(f"/api/ess/operating-sites/{sid(3)}/pcs/?date=2022-09-01&page_size=1").get_json()
    assert whole["count"] == 86400 - 10  # ten missing seconds at 03:00:00-03:00:09
    dated = client.get(f"/api/ess/operating-sites/{sid(3)}/pcs/?start-time=2022-09-01&end-time=2022-09-02"
                       "&page_size=1").get_json()
    assert dated["count"] == whole["count"]


def test_following_next_visits_every_row_once(client: Any, demo_env: DemoEnv, sid: Any) -> None:
    site = demo_env.sites[sid(2)]
    url = (f"/api/ess/operating-sites/{site.id}/banks/1/racks/?fields=timestamp,bank_id,rack_id,rack_soc"
           "&start-time=2022-09-01T10:00:00&end-time=2022-09-01T10:20:00&page_size=700")
    seen: list[dict[str, Any]] = []
    pages = 0
    while url:
        body = client.get(url).get_json()
        assert body["count"] == 2400
        seen += body["results"]
        pages += 1
        by_number = client.get(url.split("&cursor=")[0].split("?")[0] + "?" + "&".join(
            p for p in urlsplit(url).query.split("&") if not p.startswith(("cursor=", "page="))) + f"&page={pages}")
        assert by_number.get_json()["results"] == body["results"]
        if pages > 1:
            assert body["previous"] is not None
        url = path_of(body["next"]) if body["next"] else ""
    assert pages == 4
    expected = expected_rows(site, "rack", "2022-09-01T10:00:00", "2022-09-01T10:20:00",
                             ["timestamp", "bank_id", "rack_id", "rack_soc"], 1)
    assert seen == expected


def test_csv_download_equals_json_rows(client: Any, demo_env: DemoEnv, sid: Any) -> None:
    site = demo_env.sites[sid(2)]
    query = "start-time=2022-09-01T13:59:58&end-time=2022-09-01T14:00:02"
    resp = client.get(f"/api/ess/download/operating-sites/{site.id}/rack/?{query}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="site{site.id}_rack_20220901T135958_20220901T140002.csv"')
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    one = client.get(f"/api/ess/download/operating-sites/{site.id}/rack/?{query}&bank-id=1&rack-id=2")
    assert one.headers["Content-Disposition"] == (  # one rack's file says which
        f'attachment; filename="site{site.id}_rack_bank1_rack2_20220901T135958_20220901T140002.csv"')
    json_rows = client.get(f"/api/ess/operating-sites/{site.id}/banks/1/racks/?{query}&no_page").get_json()
    json_rows += client.get(f"/api/ess/operating-sites/{site.id}/banks/2/racks/?{query}&no_page").get_json()
    json_rows.sort(key=lambda r: (r["timestamp"], r["bank_id"], r["rack_id"]))
    assert len(rows) == len(json_rows) == 4 * 3
    assert list(rows[0]) == list(json_rows[0])
    for got, want in zip(rows, json_rows, strict=True):
        for key, value in want.items():
            if isinstance(value, dict):
                assert json.loads(got[key]) == value
            elif isinstance(value, (int, float)):
                assert float(got[key]) == float(value), key
            else:
                assert got[key] == value, key


def test_csv_filters_and_empty_range(client: Any, sid: Any) -> None:
    base = f"/api/ess/download/operating-sites/{sid(1)}/rack/"
    one = client.get(base + "?start-time=2022-09-01T12:00:00&end-time=2022-09-01T12:00:02"
                            "&fields=timestamp,rack_id,rack_soc&rack-id=2")
    text = one.get_data(as_text=True)
    lines = text.splitlines()
    assert lines[0] == "timestamp,rack_id,rack_soc"
    assert [ln.split(",")[:2] for ln in lines[1:]] == [["2022-09-01T12:00:00+09:00", "2"],
                                                       ["2022-09-01T12:00:01+09:00", "2"]]
    empty = client.get(base + "?start-time=2030-01-01T00:00:00&end-time=2030-01-02T00:00:00&fields=timestamp")
    assert empty.status_code == 200
    assert empty.get_data(as_text=True) == "timestamp\n"


def test_latest_and_snapshot(client: Any, demo_env: DemoEnv, sid: Any) -> None:
    site = demo_env.sites[sid(2)]
    latest = client.get(f"/api/ess/operating-sites/{site.id}/banks/2/racks/1/latest/?fields=timestamp,rack_soc")
    frame = frames_of(site)["rack"]
    last = frame[(frame.BANK_ID == 2) & (frame.RACK_ID == 1)].iloc[-1]
    assert latest.get_json() == {"timestamp": "2022-09-01T23:59:59+09:00", "rack_soc": float(last.RACK_SOC)}
    snap = client.get(f"/api/ess/operating-sites/{site.id}/snapshot/").get_json()
    assert [(r["bank_id"], r["rack_id"]) for r in snap["racks"]] == [(1, 1), (1, 2), (2, 1)]
    assert [b["bank_id"] for b in snap["banks"]] == [1, 2]
    assert snap["pcs"]["timestamp"] == snap["etc"]["timestamp"] == "2022-09-01T23:59:59+09:00"
    for path in ("banks/1/latest", "pcs/latest/", "etc/latest"):
        assert client.get(f"/api/ess/operating-sites/{site.id}/{path}").status_code == 200


def hourly_means(site: Site, comp: str, field: str, bank: int, rack: int | None) -> list[dict[str, Any]]:
    frame = frames_of(site)[comp]
    mask = frame.BANK_ID == bank
    if rack is not None:
        mask &= frame.RACK_ID == rack
    series = frame.loc[mask].set_index("TIMESTAMP")[field.upper()].tz_convert(site.timezone)
    means = series.resample("1h").mean().dropna()
    return [{"time": t.isoformat(), f"avg_{field}": v} for t, v in means.items()]


@pytest.mark.parametrize("route,comp,field,rack", [
    ("banks/1/stats/avg-bank-soc", "bank", "bank_soc", None), ("banks/1/stats/avg-bank-soh", "bank", "bank_soh", None),
    ("banks/1/stats/avg-bank-power", "bank", "bank_power", None),
    ("banks/1/racks/2/stats/avg-rack-soc", "rack", "rack_soc", 2),
    ("banks/1/racks/2/stats/avg-rack-soh", "rack", "rack_soh", 2)])
def test_avg_routes_match_pandas(client: Any, demo_env: DemoEnv, sid: Any, route: str, comp: str, field: str,
                                 rack: int | None) -> None:
    site = demo_env.sites[sid(1)]
    got = client.get(f"/api/ess/operating-sites/{site.id}/{route}/?time-bucket-width=1hour"
                     "&start-time=2022-09-01T00:00:00&end-time=2022-09-02T00:00:00").get_json()
    want = hourly_means(site, comp, field, 1, rack)
    assert [g["time"] for g in got] == [w["time"] for w in want]
    assert len(got) == 24
    key = f"avg_{field}"
    assert [g[key] for g in got] == pytest.approx([w[key] for w in want], rel=1e-12, abs=1e-9)


def test_rollups_and_raw_rows_agree(client: Any, demo_env: DemoEnv, sid: Any) -> None:
    site = demo_env.sites[sid(2)]
    store = client.application.extensions["ess"].store(site.id)
    sel = make_selector(store, "rack", 1)
    tr = parse_range({"start-time": "2022-09-01T10:00", "end-time": "2022-09-01T12:00"}, site.tz)
    assert tr is not None
    fields = tuple(resolve_columns(sel, "rack_soc,rack_max_cell_voltage"))
    aggs = ("avg", "min", "max", "count", "first", "last", "sum")
    rolled = bucket_stats(StatsQuery(sel, tr, 900, fields, aggs))
    raw = bucket_stats(StatsQuery(sel, tr, 900, fields, aggs, use_rollups=False))
    assert len(rolled) == len(raw) == 8
    for x, y in zip(rolled, raw, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            if k.startswith(("avg_", "sum_")):
                assert x[k] == pytest.approx(y[k], rel=1e-12)
            else:
                assert x[k] == y[k], k
    assert rolled[0]["count_rack_soc"] == 1800
    over_http = client.get(f"/api/ess/operating-sites/{site.id}/banks/1/racks/stats/?fields=rack_soc,"
                           "rack_max_cell_voltage&agg=avg,min,max,count,first,last,sum&time-bucket-width=PT15M"
                           "&start-time=2022-09-01T10:00&end-time=2022-09-01T12:00").get_json()
    assert over_http == rolled


@pytest.mark.parametrize("width,expected", [("1hour", 24), ("1 hour", 24), ("1days", 1), ("10min", 144),
                                            ("PT30M", 48), ("1 minute", 1440), ("P1D", 1)])
def test_bucket_width_spellings(client: Any, sid: Any, width: str, expected: int) -> None:
    body = client.get(f"/api/ess/operating-sites/{sid(3)}/banks/1/stats/avg-bank-soc/?time-bucket-width={width}"
                      "&start-time=2022-09-01&end-time=2022-09-02").get_json()
    assert len(body) == expected
    assert body[0]["time"] == "2022-09-01T00:00:00+09:00"


PROBLEMS = [
    ("/api/ess/operating-sites/9/banks/1/", 404, "site_not_found", None),
    ("/api/ess/operating-sites/{s}/banks/5/?date=2022-09-01", 404, "bank_not_found", None),
    ("/api/ess/operating-sites/{s}/banks/1/racks/9/?date=2022-09-01", 404, "rack_not_found", None),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/", 400, "missing_parameter", "start-time"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?start-time=2022-09-01T10:00:00", 400, "missing_parameter",
     "end-time"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?start-time=yesterday&end-time=2022-09-01", 400,
     "invalid_parameter", "start-time"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?start-time=2022-09-02&end-time=2022-09-01", 400,
     "invalid_parameter", "end-time"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?date=2022-09-01&start-time=2022-09-01", 400,
     "invalid_parameter", "date"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?date=2022-13-01", 400, "invalid_parameter", "date"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?date=2022-09-01&fields=rack_soc,nope", 400, "unknown_field",
     "fields"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?date=2022-09-01&omit=nope", 400, "unknown_field", "omit"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?date=2022-09-01&page=999", 404, "page_out_of_range", None),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?date=2022-09-01&page=0", 400, "invalid_parameter", "page"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?date=2022-09-01&page_size=10001", 400, "invalid_parameter",
     "page_size"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?date=2022-09-01&cursor=garbage", 400, "invalid_cursor",
     "cursor"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/?date=2022-09-01&no_page", 400, "too_many_rows", "no_page"),
    ("/api/ess/operating-sites/{s}/banks/1/stats/avg-bank-soc/?start-time=2022-09-01&end-time=2022-09-02", 400,
     "missing_parameter", "time-bucket-width"),
    ("/api/ess/operating-sites/{s}/banks/1/stats/avg-bank-soc/?time-bucket-width=1fortnight"
     "&start-time=2022-09-01&end-time=2022-09-02", 400, "invalid_parameter", "time-bucket-width"),
    ("/api/ess/operating-sites/{s}/banks/1/stats/avg-bank-soc/?time-bucket-width=32days"
     "&start-time=2022-09-01&end-time=2022-09-02", 400, "invalid_parameter", "time-bucket-width"),
    ("/api/ess/operating-sites/{s}/banks/1/stats/avg-bank-soc/?time-bucket-width=1s"
     "&start-time=2022-09-01&end-time=2022-09-03", 400, "too_many_buckets", "time-bucket-width"),
    ("/api/ess/operating-sites/{s}/banks/1/stats/?time-bucket-width=1h&date=2022-09-01&fields=bank_soc&agg=median",
     400, "unknown_aggregate", "agg"),
    ("/api/ess/operating-sites/{s}/banks/1/stats/?time-bucket-width=1h&date=2022-09-01&fields=timestamp", 400,
     "not_numeric", "fields"),
    ("/api/ess/download/operating-sites/{s}/shelf/?date=2022-09-01", 404, "unknown_data_type", None),
    ("/api/ess/download/operating-sites/{s}/rack/", 400, "missing_parameter", "start-time"),
    ("/api/ess/download/operating-sites/{s}/rack/?date=2022-09-01&fields=nope", 400, "unknown_field", "fields"),
    ("/api/ess/download/operating-sites/{s}/rack/?date=2022-09-01&rack-id=x", 400, "invalid_parameter", "rack-id"),
    ("/api/ess/operating-sites/{s}/banks/x/", 404, "no_route", None),
    ("/api/nothing/here", 404, "no_route", None),
]


@pytest.mark.parametrize("url,status,code,param", PROBLEMS)
def test_bad_input_is_a_problem(client: Any, sid: Any, url: str, status: int, code: str, param: str | None) -> None:
    resp = client.get(url.format(s=sid(1)))
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.get_json(force=True)
    assert body["code"] == code
    if param:
        assert param in [p["name"] for p in body["invalid_params"]]


def test_problem_shape_is_pinned(client: Any) -> None:
    resp = client.get("/api/ess/operating-sites/1/banks/1/racks/1/?start-time=2022-09-02&end-time=2022-09-01")
    assert resp.get_json(force=True) == {
        "type": "https://ess-portal.invalid/problems/invalid_parameter",
        "title": "Invalid query",
        "status": 400,
        "detail": "end-time (2022-09-01) must be later than start-time (2022-09-02)",
        "instance": "/api/ess/operating-sites/1/banks/1/racks/1/",
        "code": "invalid_parameter",
        "invalid_params": [{"name": "end-time", "reason": "must be later than start-time"}],
    }


def test_trailing_slash_optional(client: Any) -> None:
    for url in ("/api/ess/operating-sites", "/api/ess/operating-sites/", "/api/ess/operating-sites/1",
                "/api/ess/operating-sites/1/banks/1/latest", "/api/ess/operating-sites/1/banks/1/latest/"):
        assert client.get(url).status_code == 200, url


def test_every_api_route_is_in_openapi(app: Any, client: Any) -> None:
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    documented = set(doc["paths"])
    import re

    for rule in app.url_map.iter_rules():
        path = str(rule.rule)
        if not (path.startswith("/api/") or path in ("/healthz", "/readyz")):
            continue
        if path.startswith("/api/static") or path == "/api/<path:rest>":
            continue
        as_openapi = re.sub(r"<(?:int:)?(\w+)>", r"{\1}", path)
        assert as_openapi in documented, path
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui-bundle.js" in docs.data
    assert client.get("/api/static/swagger/swagger-ui-bundle.js").status_code == 200


def test_cache_headers_and_etag(client: Any, sid: Any) -> None:
    url = (f"/api/ess/operating-sites/{sid(1)}/banks/1/racks/1/?fields=timestamp,rack_soc"
           "&start-time=2022-09-01T10:00:00&end-time=2022-09-01T10:00:05")
    first = client.get(url)
    assert first.headers["Cache-Control"] == "public, max-age=300"
    etag = first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    documented = client.get("/api/openapi.json").get_json()["paths"]
    assert "304" in documented["/api/ess/operating-sites/{site}/banks/{bank}/racks/{rack}/"]["get"]["responses"]
    assert "304" not in documented["/api/ess/download/operating-sites/{site}/{data_type}/"]["get"]["responses"]
    live = client.get(f"/api/ess/operating-sites/{sid(1)}/snapshot/")
    assert live.headers["Cache-Control"] == "public, max-age=2"


def test_health(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready"
    assert ready["databases"] == ["app", "site1", "site101", "site2", "site102", "site3", "site103"]
