"""Deployment pieces: `ess create-schema` creates a missing PostgreSQL database, the
TimescaleDB continuous-aggregate SQL, engine pooling options, gunicorn.conf.py (read by
gunicorn itself, and a real 2-worker boot), ProxyFix, and the example proxy config."""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.core.errors import ConfigError
from services.core.registry import Bank, demo_sites, format_registry
from services.storage.engines import engine_options, ensure_database, get_engine
from services.storage.rollups import timescale_rollup_sql
from tests.conftest import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2022, 9, 1)


@pytest.fixture
def admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _exists(admin: sa.Engine, name: str) -> bool:
    with admin.connect() as conn:
        return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None


def test_create_schema_creates_the_database(admin: sa.Engine, tmp_path: Path) -> None:
    from app import create_app

    name = f"ess_deploy_{secrets.token_hex(3)}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    site = dataclasses.replace(demo_sites()[0], banks=(Bank(1, (1,)),), database_url=url, schema="plant")
    registry = tmp_path / "sites.toml"
    registry.write_text(format_registry([site]), encoding="utf-8")
    app = create_app(ESS_DATA_DIR=str(tmp_path), ESS_REGISTRY=str(registry))
    runner = app.test_cli_runner()
    try:
        assert not _exists(admin, name)
        result = runner.invoke(args=["ess", "create-schema"])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines() == ["site 1: database created", "site 1: tables ready"]
        assert _exists(admin, name)
        tables = set(sa.inspect(get_engine(url)).get_table_names(schema="plant"))
        assert set(site.tables.values()) <= tables
        again = runner.invoke(args=["ess", "create-schema"])  # idempotent
        assert again.exit_code == 0 and again.output.splitlines() == ["site 1: tables ready"]
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_ensure_database_without_the_right_is_a_clear_error(admin: sa.Engine) -> None:
    role, name = f"ess_nocreate_{secrets.token_hex(3)}", f"ess_deny_{secrets.token_hex(3)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN NOCREATEDB'))
    try:
        base = sa.engine.make_url(PG_ADMIN_URL).set(username=role, database=name)
        with pytest.raises(ConfigError) as info:
            ensure_database(base.render_as_string(hide_password=False))
        assert str(info.value).startswith(f"cannot create database '{name}' on 127.0.0.1: permission denied")
        assert f"CREATE DATABASE {name} OWNER {role}" in str(info.value)
        assert not _exists(admin, name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))


def test_ensure_database_leaves_sqlite_and_existing_databases_alone(tmp_path: Path) -> None:
    assert ensure_database(f"sqlite:///{tmp_path / 'x.sqlite'}") is False
    assert ensure_database(PG_ADMIN_URL) is False  # `postgres` exists


def test_timescale_continuous_aggregate_sql() -> None:
    """The SQL is pinned exactly: it is not executed here (no TimescaleDB available)."""
    create, policy = timescale_rollup_sql("site1", "rack", "TIMESTAMP", ["BANK_ID", "RACK_ID"], ["RACK_SOC"])
    assert create == (
        'CREATE MATERIALIZED VIEW IF NOT EXISTS "site1"."rack_rollup_1m" '
        "WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS "
        "SELECT time_bucket(INTERVAL '1 minute', \"TIMESTAMP\") AS bucket, \"BANK_ID\", \"RACK_ID\", count(*) AS n, "
        'sum("RACK_SOC") AS "RACK_SOC__sum", count("RACK_SOC") AS "RACK_SOC__cnt", '
        'min("RACK_SOC") AS "RACK_SOC__min", max("RACK_SOC") AS "RACK_SOC__max", '
        'first("RACK_SOC", "TIMESTAMP") AS "RACK_SOC__first", last("RACK_SOC", "TIMESTAMP") AS "RACK_SOC__last" '
        'FROM "site1"."rack" GROUP BY bucket, "BANK_ID", "RACK_ID" WITH NO DATA')
    assert policy == (
        "SELECT add_continuous_aggregate_policy('\"site1\".\"rack_rollup_1m\"', start_offset => INTERVAL '7 days', "
        "end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => true)")
    plain, _ = timescale_rollup_sql(None, "pcs", "TIMESTAMP", [], ["PCS_POWER"])
    assert plain.startswith('CREATE MATERIALIZED VIEW IF NOT EXISTS "pcs_rollup_1m" ')
    assert 'FROM "pcs" GROUP BY bucket WITH NO DATA' in plain


def test_rollup_columns_match_the_plain_table(pg_url: str) -> None:
    """The continuous aggregate has the plain rollup table's columns, in order."""
    from services.storage.rollups import build_rollup_table, numeric_columns
    from services.storage.sitestore import SiteStore

    site = dataclasses.replace(demo_sites()[0], banks=(Bank(1, (1,)),), database_url=pg_url,
                               schema=f"ts{secrets.token_hex(3)}")
    store = SiteStore(site)
    store.create_schema()
    assert store.uses_timescaledb() is False  # not installable here: plain tables
    table = build_rollup_table(store, "rack", sa.MetaData())
    raw = store.table("rack")
    fields = [c.name for c in numeric_columns(store, "rack")]
    create, _ = timescale_rollup_sql(site.schema, raw.name, "TIMESTAMP", ["BANK_ID", "RACK_ID"], fields)
    select = create.split(" AS SELECT ", 1)[1].split(" FROM ", 1)[0]
    parts = re.split(r",\s*(?![^()]*\))", select)  # commas outside parentheses
    aliases = [part.rsplit(" AS ", 1)[1].strip('"') if " AS " in part else part.strip('"') for part in parts]
    assert aliases == [c.name for c in table.columns]


def test_engine_options_fail_fast() -> None:
    opts = engine_options("postgresql+psycopg2://ess@db/ess", pool_size=5)
    assert opts["pool_pre_ping"] is True and opts["pool_timeout"] <= 10 and opts["pool_recycle"] == 1800
    assert opts["connect_args"]["connect_timeout"] == 5
    assert "connect_args" not in engine_options("mysql://x@y/z")


def test_dead_host_fails_within_the_connect_timeout() -> None:
    """A port where nothing listens fails at once; the engine names the database it came from."""
    url = "postgresql+psycopg2://postgres@127.0.0.1:1/nothing"
    t0 = time.monotonic()
    with pytest.raises(sa.exc.OperationalError) as info:
        with get_engine(url).connect():
            pass
    assert time.monotonic() - t0 < 6
    assert getattr(info.value, "ess_database_url", None) == url
    get_engine(url).dispose()


def _gunicorn_config(env: dict[str, str]) -> Any:
    from gunicorn.config import Config

    code = (
        "import json, sys\n"
        "from gunicorn.app.base import Application\n"
        "class A(Application):\n"
        "    def init(self, *a): return {}\n"
        "    def load(self): return None\n"
        "sys.argv = ['gunicorn', '-c', 'gunicorn.conf.py', 'app:create_app()']\n"
        "c = A().cfg\n"
        "print(json.dumps({k: str(c.settings[k].get()) for k in ('bind', 'workers', 'threads', 'worker_class',"
        " 'timeout', 'graceful_timeout', 'keepalive')}))\n"
        "print(callable(c.post_fork))\n"
    )
    del Config
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=60, check=True).stdout.splitlines()
    import json

    return json.loads(out[0]), out[1] == "True"


def test_gunicorn_conf_is_read_by_gunicorn() -> None:
    settings, has_post_fork = _gunicorn_config({"ESS_HOST": "0.0.0.0", "ESS_PORT": "9000", "GUNICORN_WORKERS": ""})
    assert settings["bind"] == "['0.0.0.0:9000']"
    assert 1 <= int(settings["workers"]) <= 8
    assert settings["worker_class"] == "gthread" and int(settings["threads"]) >= 2
    assert settings["timeout"] == "300" and settings["graceful_timeout"] == "60" and settings["keepalive"] == "5"
    assert has_post_fork
    bound, _ = _gunicorn_config({"GUNICORN_BIND": "unix:/run/ess.sock", "GUNICORN_WORKERS": "3"})
    assert bound["bind"] == "['unix:/run/ess.sock']" and bound["workers"] == "3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_gunicorn_serves_with_two_workers(tmp_path: Path) -> None:
    """A real boot: gunicorn -c gunicorn.conf.py with 2 workers answers health, readiness
    and a streamed download."""
    from services.demo.writer import write_demo

    site = dataclasses.replace(demo_sites()[0], banks=(Bank(1, (1,)),),
                               database_url=f"sqlite:///{tmp_path / 'site1.sqlite'}", demo_anchor=DAY)
    start = datetime.combine(DAY, dtime(10), tzinfo=site.tz)
    write_demo(site, start, start + timedelta(minutes=5), seed=7, anchor=DAY, progress=False)
    (tmp_path / "sites.toml").write_text(format_registry([site]), encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "ESS_DATA_DIR": str(tmp_path), "GUNICORN_BIND": f"127.0.0.1:{port}",
           "GUNICORN_WORKERS": "2", "GUNICORN_ACCESSLOG": "", "ESS_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("gunicorn did not start: " + (proc.stderr.read() if proc.poll() is not None else ""))
                time.sleep(0.5)
        with urllib.request.urlopen(base + "/readyz", timeout=10) as resp:
            assert resp.status == 200
        url = (f"{base}/api/ess/download/operating-sites/1/rack/"
               "?start-time=2022-09-01T10:00:00&end-time=2022-09-01T10:05:00")
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = resp.read()
        assert body.startswith(b"timestamp,") and len(body.splitlines()) == 1 + 300
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_proxy_fix_is_off_by_default_and_trusts_n_proxies(tmp_path: Path) -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    from app import create_app

    app = create_app(ESS_DATA_DIR=str(tmp_path), ESS_PROXY_FIX=1)
    assert isinstance(app.wsgi_app, ProxyFix) and app.wsgi_app.x_for == 1 and app.wsgi_app.x_proto == 1
    seen: dict[str, Any] = {}

    @app.get("/_probe")
    def probe() -> str:
        from flask import request

        seen.update(addr=request.remote_addr, scheme=request.scheme, host=request.host)
        return "ok"

    app.test_client().get("/_probe", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                                              "X-Forwarded-Host": "ess.example.org"})
    assert seen == {"addr": "203.0.113.9", "scheme": "https", "host": "ess.example.org"}
    plain = create_app(ESS_DATA_DIR=str(tmp_path))
    assert not isinstance(plain.wsgi_app, ProxyFix)


def test_nginx_example_does_not_buffer_downloads() -> None:
    text = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    block = text.split("location /api/ess/download/ {", 1)[1].split("}", 1)[0]
    assert "proxy_buffering off;" in block and "proxy_read_timeout 300s;" in block
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
        assert f"proxy_set_header {header}" in text
    unit = (ROOT / "deploy" / "ess-portal.service").read_text(encoding="utf-8")
    assert 'gunicorn -c /opt/ess-portal/gunicorn.conf.py "app:create_app()"' in unit
