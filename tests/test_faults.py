"""Faults on a real PostgreSQL: a site database that goes away (503 on its routes, the
other site keeps working, /readyz names it, recovery without a restart), and downloads
interrupted by the client (the COPY or cursor is released at once).

Two sites live in two databases of their own, created here and dropped at the end.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.core.registry import Site, format_registry
from services.demo.writer import fill_site, write_demo
from services.storage.engines import dispose_engines, get_engine
from services.storage.sitestore import SiteStore
from tests.conftest import PG_ADMIN_URL, small_demo_sites

DAY = date(2022, 9, 1)
MINUTES = 20
HOURS_SITE1 = 6  # site 1 holds enough rows (~7 MB of rack CSV) that a COPY outlives the socket buffers


@dataclasses.dataclass
class FaultEnv:
    app: Any
    sites: dict[int, Site]  # 1: database "a" (goes away), 2: database "b"
    databases: dict[int, str]
    admin: sa.Engine


def _admin_sql(admin: sa.Engine, sql: str, **params: Any) -> list[Any]:
    with admin.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        return list(result) if result.returns_rows else []


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultEnv]:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",  # fail rather than hang the suite
                             connect_args={"options": "-c statement_timeout=60000", "connect_timeout": 5})
    token = secrets.token_hex(3)
    databases = {1: f"ess_fault_{token}_a", 2: f"ess_fault_{token}_b"}
    for name in databases.values():
        _admin_sql(admin, f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    one, two, _ = small_demo_sites()
    sites = {1: dataclasses.replace(one, database_url=f"{base}/{databases[1]}", schema="", demo_anchor=DAY),
             2: dataclasses.replace(two, database_url=f"{base}/{databases[2]}", schema="", demo_anchor=DAY)}
    for sid, site in sites.items():
        start = datetime.combine(DAY, dtime(10), tzinfo=site.tz)
        span = timedelta(hours=HOURS_SITE1) if sid == 1 else timedelta(minutes=MINUTES)
        fill_site(site, start, start + span)
    data_dir = tmp_path_factory.mktemp("faults")
    registry = data_dir / "sites.toml"
    registry.write_text(format_registry(list(sites.values())), encoding="utf-8")
    from app import create_app

    app = create_app(ESS_DATA_DIR=str(data_dir), ESS_REGISTRY=str(registry))
    env = FaultEnv(app, sites, databases, admin)
    try:
        yield env
    finally:
        for name in databases.values():
            _admin_sql(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        dispose_engines()
        for name in databases.values():
            _admin_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _take_down(env: FaultEnv, sid: int) -> None:
    """The database refuses new connections and every open one is terminated."""
    name = env.databases[sid]
    _admin_sql(env.admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    _admin_sql(env.admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n", n=name)


def _bring_back(env: FaultEnv, sid: int) -> None:
    _admin_sql(env.admin, f'ALTER DATABASE "{env.databases[sid]}" ALLOW_CONNECTIONS true')


def _site_routes(sid: int) -> list[str]:
    day = DAY.isoformat()
    return [
        f"/api/ess/operating-sites/{sid}/",
        f"/api/ess/operating-sites/{sid}/banks/1/racks/1/?start-time={day}T10:00:00&end-time={day}T10:05:00"
        "&page_size=5",
        f"/api/ess/operating-sites/{sid}/banks/1/racks/1/latest/",
        f"/api/ess/operating-sites/{sid}/banks/1/stats/avg-bank-soc/?time-bucket-width=10min"
        f"&start-time={day}T10:00:00&end-time={day}T11:00:00",
        f"/api/ess/download/operating-sites/{sid}/rack/?start-time={day}T10:00:00&end-time={day}T10:02:00",
    ]


def _text(component: Any) -> str:
    """A Dash component tree as JSON text."""
    return json.dumps(component, default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def _get(client: Any, url: str) -> Any:
    return client.get(url, headers={"Cache-Control": "no-cache"})


def test_site_database_goes_away_and_comes_back(faults: FaultEnv) -> None:
    client = faults.app.test_client()
    faults.app.extensions["ess_cache"].cache.clear()
    for sid in (1, 2):  # warm: connections pooled, tables reflected
        for url in _site_routes(sid):
            assert _get(client, url).status_code == 200, url
    faults.app.extensions["ess_cache"].cache.clear()
    _take_down(faults, 1)
    try:
        for url in _site_routes(1):
            resp = _get(client, url)
            assert resp.status_code == 503, url
            assert resp.mimetype == "application/problem+json"
            assert resp.headers["Retry-After"] == "5"
            path = url.split("?", 1)[0]
            assert resp.get_json() == {
                "type": "https://ess-portal.invalid/problems/database_unavailable",
                "title": "Service unavailable", "status": 503, "detail": "site 1 database is unreachable",
                "instance": path, "code": "database_unavailable",
            }, url
        for url in _site_routes(2):
            assert _get(client, url).status_code == 200, url
        listing = _get(client, "/api/ess/operating-sites/")  # the lost site is listed as such, the other in full
        assert listing.status_code == 200
        by_id = {s["id"]: s for s in listing.get_json()}
        assert by_id[1]["unavailable"] == "database unreachable" and by_id[1]["components"] == {}
        assert by_id[1]["banks"] == [{"id": b.id, "racks": list(b.racks)} for b in faults.sites[1].banks]
        assert "unavailable" not in by_id[2] and by_id[2]["components"]["rack"]["last_timestamp"]
        with faults.app.test_request_context("/"):  # the Overview: a card per site, the lost one says so
            overview = importlib.import_module("pages.overview")  # as Dash Pages registered it
            cards, alert = overview.update_cards({"visit": True}, 0, "en")
        rendered, said = _text(cards), _text(alert)
        assert "site-card-1" in rendered and "site-card-2" in rendered
        assert rendered.count("A database is unreachable") == 1 and "A database is unreachable" in said
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["detail"] == "unreachable: site1"
        assert ready.get_json()["invalid_params"] == [{"name": "site1", "reason": "unreachable"}]
        assert ready.headers["Retry-After"] == "5"
    finally:
        _bring_back(faults, 1)
    for url in _site_routes(1) + _site_routes(2):  # no restart: the pool reconnects by itself
        assert _get(client, url).status_code == 200, url
    assert client.get("/readyz").status_code == 200


def test_download_loses_database_mid_stream(faults: FaultEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once bytes are sent the status cannot change: the body ends with an #error line."""
    monkeypatch.setattr("services.telemetry.export.CHUNK_BYTES", 8192)  # the COPY thread blocks early on the full queue
    client = faults.app.test_client()
    url = f"/api/ess/download/operating-sites/1/rack/?date={DAY.isoformat()}"
    resp = client.get(url, buffered=False)
    try:
        assert resp.status_code == 200
        chunks = iter(resp.response)
        first = next(chunks)
        assert first.startswith(b"timestamp,")
        _take_down(faults, 1)
        rest = b"".join(chunks)
    finally:
        resp.close()
        _bring_back(faults, 1)
    body = first + rest
    if b"#error" not in body:  # the whole body fitted in what the COPY had already sent
        pytest.skip("the COPY finished before the database went away")
    assert body.rstrip().splitlines()[-1].startswith(b"#error export failed after the first byte")


def _active_copies(admin: sa.Engine, database: str) -> list[Any]:
    return _admin_sql(admin, "SELECT pid, state, query FROM pg_stat_activity WHERE datname = :n "
                             "AND query ILIKE 'COPY%' AND state <> 'idle'", n=database)


def _wait_for(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_interrupted_download_releases_the_copy(faults: FaultEnv) -> None:
    client = faults.app.test_client()
    engine = get_engine(faults.sites[1].database_url)
    before = engine.pool.checkedout()
    day = DAY.isoformat()
    url = f"/api/ess/download/operating-sites/1/rack/?date={day}"  # ~7 MB: the COPY is still running
    resp = client.get(url, buffered=False)
    assert resp.status_code == 200
    first = next(iter(resp.response))
    assert first.startswith(b"timestamp,")
    assert engine.pool.checkedout() == before + 1  # the COPY holds its connection
    assert _wait_for(lambda: bool(_active_copies(faults.admin, faults.databases[1])))  # and runs on the server
    resp.close()  # the client goes away
    assert _wait_for(lambda: engine.pool.checkedout() == before), engine.pool.status()
    assert _wait_for(lambda: not _active_copies(faults.admin, faults.databases[1]))
    assert client.get(url).status_code == 200  # the pool still serves


def test_interrupted_download_releases_the_sqlite_cursor(tmp_path: Path) -> None:
    one = small_demo_sites()[0]
    site = dataclasses.replace(one, database_url=f"sqlite:///{tmp_path / 'one.sqlite'}", schema="", demo_anchor=DAY)
    start = datetime.combine(DAY, dtime(10), tzinfo=site.tz)
    write_demo(site, start, start + timedelta(minutes=MINUTES), seed=7, anchor=DAY, progress=False)
    from services.telemetry.export import open_csv_stream
    from services.telemetry.rows import make_selector, resolve_columns
    from services.telemetry.timerange import TimeRange

    store = SiteStore(site)
    sel = make_selector(store, "rack", None, None)
    tr = TimeRange(start, start + timedelta(minutes=MINUTES))
    before = store.engine.pool.checkedout()
    body = open_csv_stream(sel, tr, resolve_columns(sel, None, None))
    first = next(iter(body))
    assert first.startswith(b"timestamp,") and store.engine.pool.checkedout() == before + 1
    body.close()  # type: ignore[attr-defined]
    assert store.engine.pool.checkedout() == before
    never_started = open_csv_stream(sel, tr, resolve_columns(sel, None, None))
    never_started.close()  # type: ignore[attr-defined]  # closed before the first chunk was taken
    assert store.engine.pool.checkedout() == before


def test_app_database_unavailable_names_it(faults: FaultEnv) -> None:
    """Errors from the app database (events, analytics) are 503 app_database_unavailable."""
    app = faults.app
    portal = app.extensions["ess"]
    exc = sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
    exc.ess_database_url = portal.settings.app_db_url  # type: ignore[attr-defined]
    from api.errors import unavailable_problem

    with app.test_request_context("/api/ess/events/"):
        resp = unavailable_problem(exc)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    body = json.loads(resp.get_data())
    assert body["code"] == "app_database_unavailable" and body["detail"] == "the app database is unreachable"


# ----- a failed analytics job -------------------------------------------------------------

def _dump_results(engine: sa.Engine, site_id: int) -> list[str]:
    """Every stored analytics row and job state of a site, as text (byte-for-byte compare)."""
    from services.analytics import tables as st

    out = []
    with engine.connect() as conn:
        for table in st.SITE_TABLES:
            rows = conn.execute(sa.select(table).where(table.c.site_id == site_id)
                                .order_by(*table.primary_key.columns)).all()
            out += [f"{table.name}: {tuple(row)!r}" for row in rows]
    return out


def test_failed_analytics_job_keeps_previous_results(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture,
                                                     request: pytest.FixtureRequest) -> None:
    """A model that raises inside a step's transaction (after that step's deletes and
    inserts ran) leaves every stored row and watermark exactly as it was; the failure is
    logged and reported, and the next run completes."""
    from services.analytics import jobs
    from services.analytics import socp as socp_mod
    from services.core.portal import Portal
    from services.core.registry import Bank, demo_sites
    from services.core.settings import load_settings

    base = dataclasses.replace(demo_sites()[0], id=1, banks=(Bank(1, (1,)),), demo_anchor=DAY)
    if backend == "sqlite":
        site = dataclasses.replace(base, database_url=f"sqlite:///{tmp_path / 'site1.sqlite'}", schema="")
        app_url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
        schema = f"jobfail{secrets.token_hex(3)}"
        site = dataclasses.replace(base, database_url=url, schema=schema)
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}_app"'))
        app_url = f"{url}?options=-csearch_path%3D{schema}_app"
    start = datetime.combine(DAY, dtime(0), tzinfo=site.tz)
    write_demo(site, start, start + timedelta(hours=9), seed=7, anchor=DAY, progress=False)
    registry = tmp_path / "sites.toml"
    registry.write_text(format_registry([site]), encoding="utf-8")
    portal = Portal(load_settings(env={}, ESS_DATA_DIR=str(tmp_path), ESS_REGISTRY=str(registry),
                                  ESS_APP_DB_URL=app_url))
    first = jobs.analyze(portal, [1], end=start + timedelta(hours=4), with_prophet=False)
    assert not any(r.failed for r in first)
    before = _dump_results(portal.app_db, 1)
    assert any(line.startswith("analytics_socp_daily:") for line in before)  # the day's totals exist

    def exploding(make_frame: Any) -> Any:
        raise RuntimeError("model exploded")

    monkeypatch.setattr(socp_mod, "count_positions", exploding)
    with caplog.at_level(logging.ERROR, logger="services.analytics.jobs"):
        failed = jobs.analyze(portal, [1], with_prophet=False)
    assert [(r.task, r.failed, r.note) for r in failed] == [("all", True, "failed: RuntimeError: model exploded")]
    assert any("analytics of site 1 failed" in r.getMessage() for r in caplog.records)
    assert _dump_results(portal.app_db, 1) == before  # byte for byte, watermarks included

    monkeypatch.undo()
    again = jobs.analyze(portal, [1], with_prophet=False)
    assert not any(r.failed for r in again)
    after = _dump_results(portal.app_db, 1)
    assert len(after) > len(before)
