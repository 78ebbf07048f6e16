"""De-identified routes: HMAC ids that are stable, equal in JSON and CSV, change with the
secret, cover the names the substring rule misses, and never let a sensitive original
column name out (bodies, headers, links, error messages)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
import io
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.core.catalogue import EXTRA_SENSITIVE, get_fields, is_sensitive
from services.core.errors import ConfigError
from services.telemetry.deid import deid_id, deid_name
from tests.conftest import DemoEnv, site_id_for

RANGE = "start-time=2022-09-01T13:00:00&end-time=2022-09-01T13:00:03"
COMPONENT_PATHS = {"bank": "banks/1/", "rack": "banks/1/racks/", "pcs": "pcs/", "etc": "etc/"}


def secret_of(app: Any) -> str:
    return str(app.extensions["ess"].secret("deid"))


def published(app: Any, site_id: int, component: str) -> list[str]:
    """The published names of a site's table, in table order, computed here with hmac."""
    secret = secret_of(app).encode()
    table = app.extensions["ess"].store(site_id).table(component)
    prefix = {"bank": "bk", "rack": "rk", "pcs": "ps", "etc": "ec"}[component]
    return [f"{prefix}_{hmac.new(secret, c.name.upper().encode(), hashlib.sha256).hexdigest()[:10]}"
            if is_sensitive(c.name) else c.name.lower() for c in table.columns]


def sensitive_names(app: Any, site_id: int) -> set[str]:
    """Every sensitive original column name of a site, lower case."""
    store = app.extensions["ess"].store(site_id)
    return {c.name.lower() for comp in store.site.column_sets for c in store.table(comp).columns
            if is_sensitive(c.name)}


def everything(resp: Any) -> str:
    """Status line, headers and body of a response as one lower-case text."""
    headers = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
    return f"{resp.status}\n{headers}\n{resp.get_data(as_text=True)}".lower()


@pytest.fixture
def sid(backend: str) -> Any:
    return lambda base: site_id_for(backend, base)


# ----- the names ---------------------------------------------------------------------------------

def test_ids_are_keyed_hmacs_of_the_upper_case_name() -> None:
    expected = hmac.new(b"s3cret", b"RACK_OVER_VOLTAGE_PROTECTION_FAULT", hashlib.sha256).hexdigest()[:10]
    assert deid_id("s3cret", "rack_over_voltage_protection_fault") == expected
    assert deid_name("rack", "RACK_OVER_VOLTAGE_PROTECTION_FAULT", "s3cret") == f"rk_{expected}"
    assert deid_name("bank", "RACK_OVER_VOLTAGE_PROTECTION_FAULT", "s3cret") == f"bk_{expected}"
    assert deid_name("rack", "RACK_SOC", "s3cret") == "rack_soc"
    assert deid_id("another", "RACK_OVER_VOLTAGE_PROTECTION_FAULT") != expected
    # the original's unsalted SHA-256 prefix is not what we publish
    assert not expected.startswith(hashlib.sha256(b"RACK_OVER_VOLTAGE_PROTECTION_FAULT").hexdigest()[:8])
    with pytest.raises(ConfigError):
        deid_id("", "RACK_SOC")


@pytest.mark.parametrize("component,variant,name", [
    ("pcs", "site2", "FLT_OVAR"), ("pcs", "site2", "FLT_RVET"), ("pcs", "site3", "GATE_ERR_A"),
    ("pcs", "site3", "OVERHEAT"), ("pcs", "site2", "ST_FAULT"), ("pcs", "site1", "PCS_STATUS_3"),
    ("bank", "site23", "EMERGENCY_STATUS")])
def test_names_the_substring_rule_misses_are_covered(component: str, variant: str, name: str) -> None:
    assert name in {f.name for f in get_fields(component, variant)} and name in EXTRA_SENSITIVE
    prefix = {"pcs": "ps", "bank": "bk"}[component]
    assert deid_name(component, name, "k") == f"{prefix}_{deid_id('k', name)}"


# ----- JSON and CSV ------------------------------------------------------------------------------

@pytest.mark.parametrize("component", ["bank", "rack", "pcs", "etc"])
def test_json_rows_are_the_raw_rows_under_published_names(client: Any, app: Any, demo_env: DemoEnv, sid: Any,
                                                          component: str) -> None:
    site_id = sid(2)
    raw = client.get(f"/api/ess/operating-sites/{site_id}/{COMPONENT_PATHS[component]}?{RANGE}").get_json()
    di = client.get(f"/api/ess/di/operating-sites/{site_id}/{COMPONENT_PATHS[component]}?{RANGE}").get_json()
    names = published(app, site_id, component)
    assert di["count"] == raw["count"] > 0
    assert [list(r) for r in di["results"]] == [names] * len(raw["results"])
    assert [list(r.values()) for r in di["results"]] == [list(r.values()) for r in raw["results"]]


def test_ids_cover_flt_gate_err_and_overheat(client: Any, app: Any, demo_env: DemoEnv) -> None:
    secret = secret_of(app)
    two = client.get(f"/api/ess/di/operating-sites/2/pcs/?{RANGE}&no_page").get_json()[0]
    three = client.get(f"/api/ess/di/operating-sites/3/pcs/?{RANGE}&no_page").get_json()[0]
    for name in ("FLT_OVAR", "FLT_OCDR", "ST_FAULT"):
        assert f"ps_{deid_id(secret, name)}" in two and name.lower() not in two
    for name in ("GATE_ERR_A", "GATE_ERR_C", "OVERHEAT", "E_STOP_FAULT"):
        assert f"ps_{deid_id(secret, name)}" in three and name.lower() not in three
    assert "ai_vdc" in two and "state_of_pcs" in three


def test_ids_are_stable_and_equal_in_json_and_csv(client: Any, app: Any, demo_env: DemoEnv, sid: Any) -> None:
    site_id = sid(2)
    first = client.get(f"/api/ess/di/operating-sites/{site_id}/banks/1/racks/?{RANGE}&no_page").get_json()
    again = client.get(f"/api/ess/di/operating-sites/{site_id}/banks/1/racks/?{RANGE}&page_size=5").get_json()
    assert list(first[0]) == list(again["results"][0]) == published(app, site_id, "rack")
    resp = client.get(f"/api/ess/download/di/operating-sites/{site_id}/rack/?{RANGE}&bank-id=1")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="di_site{site_id}_rack_bank1_20220901T130000_20220901T130003.csv"')
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == list(first[0])
    assert len(rows) == len(first) + 1
    raw = client.get(f"/api/ess/download/operating-sites/{site_id}/rack/?{RANGE}&bank-id=1").get_data(as_text=True)
    assert rows[1:] == list(csv.reader(io.StringIO(raw)))[1:]  # same values, only the header differs


def test_another_secret_gives_other_ids(client: Any, app: Any, demo_env: DemoEnv,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    before = client.get(f"/api/ess/di/operating-sites/1/banks/1/racks/1/?{RANGE}&page_size=2").get_json()
    portal = app.extensions["ess"]
    monkeypatch.setattr(portal, "settings", dataclasses.replace(portal.settings, deid_secret="another secret"))
    after = client.get(f"/api/ess/di/operating-sites/1/banks/1/racks/1/?{RANGE}&page_size=3").get_json()
    old, new = list(before["results"][0]), list(after["results"][0])
    originals = [c.name for c in portal.store(1).table("rack").columns]
    assert [a != b for a, b in zip(old, new, strict=True)] == [is_sensitive(n) for n in originals]
    assert f"rk_{deid_id('another secret', 'RACK_OVER_VOLTAGE_PROTECTION_FAULT')}" in new
    csv_header = client.get(f"/api/ess/download/di/operating-sites/1/rack/?{RANGE}&bank-id=1&rack-id=1"
                            ).get_data(as_text=True).splitlines()[0]
    assert csv_header.split(",") == new


# ----- fields and omit ---------------------------------------------------------------------------

def test_fields_and_omit_take_published_names(client: Any, app: Any, demo_env: DemoEnv, sid: Any) -> None:
    site_id = sid(1)
    fault = deid_name("rack", "RACK_OVER_VOLTAGE_PROTECTION_FAULT", secret_of(app))
    base = f"/api/ess/di/operating-sites/{site_id}/banks/1/racks/2/?{RANGE}"
    rows = client.get(f"{base}&fields=timestamp,{fault.upper()},rack_soc&no_page").get_json()
    assert [list(r) for r in rows] == [["timestamp", "rack_soc", fault]] * 3
    rows = client.get(f"{base}&omit={fault}&no_page").get_json()
    assert fault not in rows[0] and len(rows[0]) == len(published(app, site_id, "rack")) - 1
    csv_text = client.get(f"/api/ess/download/di/operating-sites/{site_id}/rack/?{RANGE}&bank-id=1&rack-id=2"
                          f"&fields=timestamp,{fault}").get_data(as_text=True)
    assert csv_text.splitlines()[0] == f"timestamp,{fault}"


@pytest.mark.parametrize("query", ["fields=timestamp,rack_over_voltage_protection_fault",
                                   "omit=RACK_OVER_VOLTAGE_PROTECTION_FAULT", "fields=rack_status_for_fault,nope"])
def test_original_sensitive_names_are_refused_without_echo(client: Any, app: Any, demo_env: DemoEnv,
                                                           query: str) -> None:
    for url in (f"/api/ess/di/operating-sites/1/banks/1/racks/?{RANGE}&{query}",
                f"/api/ess/download/di/operating-sites/1/rack/?{RANGE}&{query.replace('omit', 'fields')}"):
        resp = client.get(url)
        assert (resp.status_code, resp.mimetype, resp.get_json()["code"]) == (400, "application/problem+json",
                                                                              "unknown_field")
        text = everything(resp)
        assert not {n for n in sensitive_names(app, 1) if n in text}
        assert "(withheld)" in text and "rack_soc" in text  # the valid published names are listed


# ----- nothing sensitive leaves ------------------------------------------------------------------

def test_no_sensitive_name_in_any_de_identified_response(client: Any, app: Any, demo_env: DemoEnv, sid: Any) -> None:
    for base in (1, 2, 3):
        site_id = sid(base)
        names = sensitive_names(app, site_id)
        assert len(names) > 30
        responses = []
        for component, path in (*COMPONENT_PATHS.items(), ("rack", "banks/1/racks/1/")):
            url = f"/api/ess/di/operating-sites/{site_id}/{path}?{RANGE}"
            responses += [client.get(url + "&page_size=1"), client.get(url + "&no_page")]
            responses.append(client.get(f"/api/ess/download/di/operating-sites/{site_id}/{component}/?{RANGE}"))
        responses.append(client.get(f"/api/ess/di/operating-sites/{site_id}/banks/1/?{RANGE}&page_size=1&cursor=x"))
        for resp in responses:
            assert resp.status_code in (200, 400)
            text = everything(resp)
            leaked = {n for n in names if n in text}
            assert not leaked, f"{resp.request.url if hasattr(resp, 'request') else ''} leaks {sorted(leaked)[:3]}"
        paged = responses[0].get_json()
        assert paged["next"] and urlsplit(paged["next"]).path.startswith("/api/ess/di/")


# ----- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path,status,code", [
    (f"/api/ess/di/operating-sites/99/pcs/?{RANGE}", 404, "site_not_found"),
    (f"/api/ess/di/operating-sites/1/banks/7/?{RANGE}", 404, "bank_not_found"),
    (f"/api/ess/di/operating-sites/1/banks/1/racks/9/?{RANGE}", 404, "rack_not_found"),
    ("/api/ess/di/operating-sites/1/pcs/?start-time=noon&end-time=2022-09-02", 400, "invalid_parameter"),
    ("/api/ess/di/operating-sites/1/etc/", 400, "missing_parameter"),
    (f"/api/ess/download/di/operating-sites/1/module/?{RANGE}", 404, "unknown_data_type"),
    (f"/api/ess/download/di/operating-sites/99/rack/?{RANGE}", 404, "site_not_found"),
    ("/api/ess/download/di/operating-sites/1/rack/?date=2022-09-01&start-time=2022-09-01", 400, "invalid_parameter"),
    (f"/api/ess/download/di/operating-sites/2/rack/?{RANGE}&rack-id=1", 400, "missing_parameter"),
])
def test_bad_input_is_a_problem(client: Any, demo_env: DemoEnv, path: str, status: int, code: str) -> None:
    resp = client.get(path)
    assert (resp.status_code, resp.mimetype, resp.get_json()["code"]) == (status, "application/problem+json", code)


def test_routes_are_in_the_openapi_document(client: Any) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path in ("/api/ess/di/operating-sites/{site}/banks/{bank}/", "/api/ess/di/operating-sites/{site}/pcs/",
                 "/api/ess/di/operating-sites/{site}/banks/{bank}/racks/{rack}/",
                 "/api/ess/download/di/operating-sites/{site}/{data_type}/"):
        assert path in paths
