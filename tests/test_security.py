"""Security tests on both databases: SQL injection through every parameter that reaches a
query, path traversal in routes and in the file-related CLI, CSV formula injection,
oversized requests, and tokens leaking into logs. Every refusal is an exact problem
(status and `code`), never a 5xx, and the databases are unchanged afterwards."""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from services.core.errors import ConfigError
from services.core.i18n import LANGS, normalize_lang
from services.core.registry import Site, load_registry
from services.storage.sitestore import SiteStore
from tests.conftest import PG_ADMIN_URL
from tests.small_env import PG_SITE, SQLITE_SITE, SmallEnv, build_small_env, make_small_app

R = "start-time=2022-09-01T10:00:00&end-time=2022-09-01T10:01:00"
LONG = "x' OR 'a'='a" * 80  # 960 characters: long, but under the URL caps
PAYLOADS = ["' OR 1=1--", "1; DROP TABLE canary", '"); DELETE FROM rack; --', "1 UNION SELECT * FROM canary",
            "\x00", "ʹ OR ʹ1ʹ=ʹ1", "%' OR '%'='", LONG]
NOTE = "RACK_NOTE"  # a text column added to the rack table (reflected: the API serves it)
NOTES = ["=1+2", "+1", "-1", "@SUM(A1)", "\tTAB", "\rCR", "plain", "a=b", "-"]
NOTE_AT = datetime.fromisoformat("2022-09-01T11:00:00+09:00")  # their rows: outside the generated 10:00-10:03


# ----- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sec_env(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> SmallEnv:
    env = build_small_env(tmp_path_factory.mktemp("security"), pg_url, minutes=3)
    for site in env.sites.values():
        _add_note_rows(site)
        with SiteStore(site).engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {_qualified(site, 'canary')} (x integer)"))
            conn.execute(sa.text(f"INSERT INTO {_qualified(site, 'canary')} VALUES (1)"))
    return env


@pytest.fixture(scope="module")
def app_db_pg() -> Iterator[str]:
    """A PostgreSQL database of its own for an app database (events searched on PostgreSQL)."""
    name = f"ess_sec_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def sec_app(sec_env: SmallEnv) -> Any:
    return _settle(make_small_app(sec_env))


@pytest.fixture(scope="module")
def sec_app_pg(sec_env: SmallEnv, app_db_pg: str) -> Any:
    """The same sites with the app database (events, tokens) on PostgreSQL."""
    return _settle(make_small_app(sec_env, ESS_APP_DB_URL=app_db_pg))


def _qualified(site: Site, table: str) -> str:
    return f'"{site.schema}".{table}' if site.schema else table


def _settle(app: Any) -> Any:
    """A canary in the app database; the protection events judged and the de-identification
    secret made, which the routes write on first use and would otherwise count as a change."""
    with app.extensions["ess"].app_db.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS canary (x integer)"))
        conn.execute(sa.text("INSERT INTO canary VALUES (1)"))
    client = app.test_client()
    for s in (SQLITE_SITE, PG_SITE):
        assert client.get(f"/api/ess-feature/protectionmap/operating-sites/{s}/").status_code == 200
    assert client.get(f"/api/ess/di/operating-sites/{SQLITE_SITE}/pcs/?{R}").status_code == 200  # the HMAC secret
    return app


def _add_note_rows(site: Site) -> None:
    """A text column and one rack row per formula-like value, rack current -12.5 A."""
    store = SiteStore(site)
    rack = _qualified(site, "rack")
    with store.engine.begin() as conn:
        conn.execute(sa.text(f'ALTER TABLE {rack} ADD COLUMN "{NOTE}" varchar(40)'))
        for i, note in enumerate(NOTES):
            at = NOTE_AT + timedelta(seconds=i)
            ts = int(at.timestamp()) if not site.schema else at
            conn.execute(sa.text(f'INSERT INTO {rack} ("TIMESTAMP", "BANK_ID", "RACK_ID", "RACK_CURRENT", "{NOTE}") '
                                 "VALUES (:ts, 1, 1, -12.5, :note)"), {"ts": ts, "note": note})


def _snapshot(engine: sa.Engine, schema: str | None) -> dict[str, int]:
    """Row count of every table (the canary included)."""
    names = sa.inspect(engine).get_table_names(schema=schema or None)
    with engine.connect() as conn:
        return {n: int(conn.execute(sa.text(f'SELECT count(*) FROM {f"{schema}." if schema else ""}"{n}"'))
                       .scalar() or 0) for n in names}


def _all_counts(app: Any, env: SmallEnv) -> dict[str, dict[str, int]]:
    counts = {f"site{s.id}": _snapshot(SiteStore(s).engine, s.schema) for s in env.sites.values()}
    counts["app"] = _snapshot(app.extensions["ess"].app_db, None)
    return counts


def _changes(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, Any]:
    """{database.table: (before, after)} of every count that differs."""
    return {f"{db}.{t}": (before[db].get(t), after[db].get(t)) for db in after
            for t in set(before[db]) | set(after[db]) if before[db].get(t) != after[db].get(t)}


def _site(backend: str) -> int:
    return SQLITE_SITE if backend == "sqlite" else PG_SITE


def _problem(resp: Any) -> tuple[int, str | None]:
    """(status, code) of a response; code None unless it is problem+json."""
    if resp.mimetype != "application/problem+json":
        return resp.status_code, None
    return resp.status_code, resp.get_json()["code"]


# ----- SQL injection ------------------------------------------------------------------------

def _injection_cases(s: int, p: str) -> list[tuple[str, str, int, str]]:
    """(parameter, url, status, code) for payload p (URL-encoded here) on site s."""
    q = quote(p, safe="")
    b, pm, st = f"/api/ess/operating-sites/{s}", f"/api/ess-feature/protectionmap/operating-sites/{s}", "/api/ess/stats"
    return [
        ("fields", f"{b}/banks/1/racks/1/?{R}&fields={q}", 400, "unknown_field"),
        ("omit", f"{b}/banks/1/racks/?{R}&omit={q}", 400, "unknown_field"),
        ("start-time", f"{b}/banks/1/?start-time={q}&end-time=2022-09-01T10:01:00", 400, "invalid_parameter"),
        ("end-time", f"{b}/pcs/?start-time=2022-09-01T10:00:00&end-time={q}", 400, "invalid_parameter"),
        ("date", f"{b}/etc/?date={q}", 400, "invalid_parameter"),
        ("page", f"{b}/banks/1/?{R}&page={q}", 400, "invalid_parameter"),
        ("page_size", f"{b}/banks/1/?{R}&page_size={q}", 400, "invalid_parameter"),
        ("cursor", f"{b}/banks/1/racks/?{R}&cursor={q}", 400, "invalid_cursor"),
        ("latest fields", f"{b}/banks/1/racks/1/latest/?fields={q}", 400, "unknown_field"),
        ("site id", f"/api/ess/operating-sites/{q}/", 404, "no_route"),
        ("bank id", f"{b}/banks/{q}/?{R}", 404, "no_route"),
        ("rack id", f"{b}/banks/1/racks/{q}/?{R}", 404, "no_route"),
        ("data_type", f"/api/ess/download/operating-sites/{s}/{q}/?{R}", 404, "unknown_data_type"),
        ("bank-id", f"/api/ess/download/operating-sites/{s}/rack/?{R}&bank-id={q}", 400, "invalid_parameter"),
        ("rack-id", f"/api/ess/download/operating-sites/{s}/rack/?{R}&bank-id=1&rack-id={q}", 400,
         "invalid_parameter"),
        ("download fields", f"/api/ess/download/operating-sites/{s}/bank/?{R}&fields={q}", 400, "unknown_field"),
        ("di fields", f"/api/ess/di/operating-sites/{s}/banks/1/?{R}&fields={q}", 400, "unknown_field"),
        ("di download fields", f"/api/ess/download/di/operating-sites/{s}/rack/?{R}&fields={q}", 400,
         "unknown_field"),
        ("time-bucket-width", f"{b}/banks/1/stats/?fields=bank_soc&{R}&time-bucket-width={q}", 400,
         "invalid_parameter"),
        ("avg time-bucket-width", f"{b}/banks/1/racks/1/stats/avg-rack-soc/?{R}&time-bucket-width={q}", 400,
         "invalid_parameter"),
        ("agg", f"{b}/banks/1/stats/?fields=bank_soc&{R}&time-bucket-width=1min&agg={q}", 400, "unknown_aggregate"),
        ("stats fields", f"{b}/pcs/stats/?fields={q}&{R}&time-bucket-width=1min", 400, "unknown_field"),
        ("level", f"{pm}/?level={q}", 400, "invalid_parameter"),
        ("error_code", f"{pm}/?error_code={q}", 400, "invalid_parameter"),
        ("bank_id", f"{pm}/?bank_id={q}", 400, "invalid_parameter"),
        ("rack_id", f"{pm}/episodes/?rack_id={q}", 400, "invalid_parameter"),
        ("source", f"{pm}/?source={q}", 400, "unknown_source"),
        ("time", f"{pm}/?time={q}", 400, "invalid_parameter"),
        ("event cursor", f"{pm}/?cursor={q}", 400, "invalid_cursor"),
        ("event page", f"/api/ess-feature/protectionmap/?page={q}", 400, "invalid_parameter"),
        ("count", f"{pm}/stats/log-level-count/?time-bucket-width=1hour&date=2022-09-01&count={q}", 400,
         "invalid_parameter"),
        ("count width", f"{pm}/stats/log-level-count/?time-bucket-width={q}&date=2022-09-01", 400,
         "invalid_parameter"),
        ("open", f"{pm}/episodes/?open={q}", 400, "invalid_parameter"),
        ("target", f"{st}/forecast-accuracy/operating-sites/{s}/banks/1/racks/?target={q}", 400, "invalid_parameter"),
        ("resolution", f"{st}/sos/operating-sites/{s}/banks/1/racks/1/?resolution={q}", 400, "invalid_parameter"),
        ("start-date", f"{st}/avg-soh/operating-sites/{s}/banks/?start-date={q}", 400, "invalid_parameter"),
        ("analytics start-time", f"{st}/ex-sos/operating-sites/{s}/banks/?start-time={q}", 400,
         "invalid_parameter"),
        ("mode", f"{st}/ex-sos/operating-sites/{s}/banks/?mode={q}", 400, "invalid_parameter"),
        ("period", f"{st}/socp/operating-sites/{s}/banks/1/racks/?period={q}", 400, "invalid_parameter"),
        ("operating_site", f"{st}/static-chart-data/?operating_site={q}", 400, "invalid_parameter"),
    ]


def test_sql_injection_is_refused_and_changes_nothing(sec_app: Any, sec_env: SmallEnv, backend: str) -> None:
    client, s = sec_app.test_client(), _site(backend)
    before = _all_counts(sec_app, sec_env)
    wrong = []
    for p in PAYLOADS:
        for param, url, status, code in _injection_cases(s, p):
            got = _problem(client.get(url))
            if got != (status, code):
                wrong.append((param, p[:20], got))
    assert wrong == []
    assert _changes(before, _all_counts(sec_app, sec_env)) == {}
    assert before[f"site{s}"]["canary"] == before["app"]["canary"] == 1


@pytest.mark.parametrize("app_db", ["sqlite", "postgresql"])
def test_message_search_is_literal(request: pytest.FixtureRequest, sec_env: SmallEnv, app_db: str) -> None:
    """`message` is a substring, LIKE wildcards and quotes included; NUL (PostgreSQL text
    cannot hold it) and over 200 characters are 400s."""
    app = request.getfixturevalue("sec_app" if app_db == "sqlite" else "sec_app_pg")
    client = app.test_client()
    before = _all_counts(app, sec_env)
    for s in (SQLITE_SITE, PG_SITE):
        base = f"/api/ess-feature/protectionmap/operating-sites/{s}"
        for p in PAYLOADS:
            for path in ("/?", "/episodes/?", "/stats/log-level-count/?time-bucket-width=1hour&date=2022-09-01&"):
                url = base + path + "message=" + quote(p, safe="")
                resp = client.get(url)
                if p == "\x00" or len(p) > 200:
                    assert _problem(resp) == (400, "invalid_parameter"), (url, p)
                else:
                    assert resp.status_code == 200, (url, resp.get_data()[:200])
                    body = resp.get_json()
                    assert (body == []) if isinstance(body, list) else (body["count"] == 0), (url, body)
    assert _changes(before, _all_counts(app, sec_env)) == {}


def test_lang_is_normalised(sec_app: Any) -> None:
    for p in PAYLOADS:
        assert normalize_lang(p) in LANGS
        assert sec_app.test_client().get("/?lang=" + quote(p, safe="")).status_code == 200


# ----- inputs the fuzzing and the probes above turned into 500s (regressions) ---------------

@pytest.mark.parametrize("url,status,code", [
    # years out of datetime's range after the UTC conversion or one day / second later
    ("/api/ess/operating-sites/{s}/banks/1/?start-time=0001-01-01T00:00:00%2B14:00&end-time=2022-09-01", 400,
     "invalid_parameter"),
    ("/api/ess/operating-sites/{s}/banks/1/?start-time=2022-09-01&end-time=9999-12-31T23:59:59-12:00", 400,
     "invalid_parameter"),
    ("/api/ess/operating-sites/{s}/banks/1/?date=9999-12-31", 400, "invalid_parameter"),
    ("/api/ess/operating-sites/{s}/banks/1/?date=0001-01-01", 400, "invalid_parameter"),
    ("/api/ess/operating-sites/{s}/banks/1/stats/?fields=bank_soc&time-bucket-width=1hour&date=9999-12-31", 400,
     "invalid_parameter"),
    ("/api/ess/stats/forecasting-sol/operating-sites/{s}/banks/?end-date=0001-01-01", 400, "invalid_parameter"),
    ("/api/ess/stats/avg-soh/operating-sites/{s}/banks/?end-date=9999-12-31", 400, "invalid_parameter"),
    ("/api/ess/stats/ex-sos/operating-sites/{s}/banks/?date=9999-12-31", 400, "invalid_parameter"),
    ("/api/ess/stats/ex-sos/operating-sites/{s}/banks/?start-time=0001-01-01T00:00:00%2B14:00", 400,
     "invalid_parameter"),
    ("/api/ess-feature/protectionmap/operating-sites/{s}/?time=9999-12-31T23:59:59-12:00", 400,
     "invalid_parameter"),
    # numbers int() cannot read (over 4,300 digits, superscripts) or that overflow later
    ("/api/ess/operating-sites/{s}/banks/1/stats/avg-bank-soc/?time-bucket-width=" + "9" * 5000 + "s&" + R, 400,
     "invalid_parameter"),
    ("/api/ess/operating-sites/{s}/banks/1/stats/?fields=bank_soc&time-bucket-width=PT" + "9" * 5000 + "S&" + R,
     400, "invalid_parameter"),
    ("/api/ess/stats/sos/operating-sites/{s}/banks/1/racks/1/?resolution=%C2%B2", 400, "invalid_parameter"),
    ("/api/ess/stats/sos/operating-sites/{s}/banks/1/racks/1/?resolution=" + "9" * 5000, 400, "invalid_parameter"),
    ("/api/ess/stats/sos/operating-sites/{s}/banks/1/racks/1/?resolution=999999999", 400, "invalid_parameter"),
    ("/api/ess/stats/static-chart-data/?operating_site=%C2%B2", 400, "invalid_parameter"),
    ("/api/ess/stats/static-chart-data/?operating_site=" + "9" * 5000, 400, "invalid_parameter"),
    # cursor tokens whose numbers overflow a datetime, a 64-bit integer or are not finite
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?" + R + "&cursor={c_inf}", 400, "invalid_cursor"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?" + R + "&cursor={c_time}", 400, "invalid_cursor"),
    ("/api/ess/operating-sites/{s}/banks/1/racks/1/?" + R + "&cursor={c_bank}", 400, "invalid_cursor"),
    ("/api/ess-feature/protectionmap/operating-sites/{s}/?cursor={c_event}", 400, "invalid_cursor"),
    # a library's own refusal of an asset path
    ("/_dash-component-suites/dash/../../../app.py", 404, None),
    ("/_dash-component-suites/nosuchlib/x.js", 404, None),
])
def test_former_server_errors_are_problems(sec_app: Any, backend: str, url: str, status: int,
                                           code: str | None) -> None:
    def token(text: str) -> str:
        import base64

        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    tokens = {"c_inf": token('{"k":[Infinity,1,1],"n":5,"p":2}'),
              "c_time": token('{"k":[' + "9" * 30 + ',1,1],"n":5,"p":2}'),
              "c_bank": token('{"k":[1662000000,' + "9" * 30 + ',1],"n":5,"p":2}'),
              "c_event": token('{"k":[1662000000,' + "9" * 30 + '],"n":5,"p":2}')}
    resp = sec_app.test_client().get(url.format(s=_site(backend), **tokens))
    assert _problem(resp) == (status, code)


# ----- path traversal -----------------------------------------------------------------------

@pytest.mark.parametrize("url,problem_code", [
    ("/api/docs/../../app.py", "no_route"),
    ("/api/docs/..%2f..%2fapp.py", "no_route"),
    ("/api/static/../../app.py", "not_found"),
    ("/api/static/..%2f..%2fapp.py", "not_found"),
    ("/api/static/swagger/%2e%2e/%2e%2e/spec.py", "not_found"),
    ("/api/ess/download/operating-sites/1/..%2F..%2Fapp.py/?date=2022-09-01", "no_route"),
    ("/api/ess/download/operating-sites/1/%2e%2e/?date=2022-09-01", "unknown_data_type"),
    ("/api/ess/download/di/operating-sites/1/..%2F..%2Fsites.toml/?date=2022-09-01", "no_route"),
    ("/assets/../app.py", None),
    ("/assets/..%2f..%2fapp.py", None),
    ("/assets/%2e%2e/%2e%2e/app.py", None),
    ("/assets/..%5c..%5capp.py", None),
    ("/_dash-component-suites/dash/..%2f..%2f..%2fapp.py", None),
])
def test_path_traversal_routes_are_404(sec_app: Any, url: str, problem_code: str | None) -> None:
    resp = sec_app.test_client().get(url)
    assert _problem(resp) == (404, problem_code)
    assert b"create_app" not in resp.get_data() and b"[[site]]" not in resp.get_data()


@pytest.fixture
def ingest_setup(sec_app: Any, sec_env: SmallEnv, tmp_path: Path) -> dict[str, Any]:
    """A rack CSV of two rows (one unreadable SoC) exported by the API itself."""
    body = sec_app.test_client().get(f"/api/ess/download/operating-sites/{SQLITE_SITE}/rack/?bank-id=1&rack-id=2"
                                     "&start-time=2022-09-01T10:00:00&end-time=2022-09-01T10:00:02"
                                     "&fields=timestamp,bank_id,rack_id,rack_soc").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body)))
    for row in rows[1:]:  # a minute with no rows yet
        row[0] = row[0].replace("T10:00:", "T12:00:")
    rows[2][3] = "not-a-number"
    good = tmp_path / "in" / "20220901_rack.csv"
    good.parent.mkdir()
    with good.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return {"runner": sec_app.test_cli_runner(), "csv": good, "tmp": tmp_path}


def _ingest(setup: dict[str, Any], *args: str) -> Any:
    return setup["runner"].invoke(args=["ess", "ingest", "--site", str(SQLITE_SITE), *args])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_ingest_refuses_bad_paths_and_writes_nothing(ingest_setup: dict[str, Any], sec_app: Any,
                                                     sec_env: SmallEnv) -> None:
    tmp, good = ingest_setup["tmp"], ingest_setup["csv"]
    (tmp / "adir").mkdir()
    (tmp / "link_dir").symlink_to(tmp / "adir")
    (tmp / "link_passwd.csv").symlink_to("/etc/passwd")
    original = good.read_bytes()
    before, files = _all_counts(sec_app, sec_env), _files(tmp)
    cases = [
        ((str(tmp / "adir"),), 2, "is a directory"),
        ((str(tmp / "link_dir"),), 2, "is a directory"),
        ((str(tmp / "missing.csv"),), 2, "does not exist"),
        ((str(tmp / "in" / ".." / "missing.csv"),), 2, "does not exist"),
        ((str(tmp / "in" / ".." / "in" / ".." / "adir"),), 2, "is a directory"),
        (("--component", "rack", str(tmp / "link_passwd.csv")), 1, str(tmp / "link_passwd.csv")),
        (("--component", "rack", str(tmp / "in" / ".." / "link_passwd.csv")), 1, "link_passwd.csv"),
        (("--skip-bad-rows", "--reject-file", str(tmp / "nowhere" / "rejects.csv"), str(good)), 1,
         f"{tmp / 'nowhere' / 'rejects.csv'}: cannot write the reject file there"),
        (("--skip-bad-rows", "--reject-file", str(tmp / "adir"), str(good)), 2, "is a directory"),
        (("--skip-bad-rows", "--reject-file", str(good), str(good)), 1,
         f"{good}: the reject file is the input file {good}; it would be overwritten"),
        (("--skip-bad-rows", "--reject-file", str(tmp / "in" / ".." / "in" / good.name), str(good)), 1,
         "the reject file is the input file"),
    ]
    for args, exit_code, message in cases:
        result = _ingest(ingest_setup, *args)
        assert (result.exit_code, message in result.output) == (exit_code, True), (args, result.output)
        assert "Traceback" not in result.output
    assert good.read_bytes() == original
    assert _files(tmp) == files
    assert _changes(before, _all_counts(sec_app, sec_env)) == {}


def test_ingest_with_a_good_reject_file_still_works(ingest_setup: dict[str, Any]) -> None:
    rejects = ingest_setup["tmp"] / "rejects.csv"
    result = _ingest(ingest_setup, "--skip-bad-rows", "--reject-file", str(rejects), str(ingest_setup["csv"]))
    assert result.exit_code == 0, result.output
    assert "not-a-number" in rejects.read_text()


def test_registry_path_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    for path, text in [(tmp_path, "cannot read the registry file"), (tmp_path / "none.toml", "not found"),
                       (tmp_path / "binary.toml", "not UTF-8 text")]:
        with pytest.raises(ConfigError) as info:
            load_registry(path)
        assert str(path) in info.value.detail and text in info.value.detail


# ----- CSV formula injection ----------------------------------------------------------------

def test_csv_cells_that_start_a_formula_are_neutralised(sec_app: Any, backend: str) -> None:
    """Text cells starting with = + - @ tab or CR get a leading apostrophe; numbers (also
    negative) and other text are unchanged; the same rule on the raw and de-identified CSV."""
    s = _site(backend)
    query = ("?bank-id=1&rack-id=1&start-time=2022-09-01T11:00:00&end-time=2022-09-01T11:01:00"
             "&fields=timestamp,rack_current,rack_note")
    expected = (b"timestamp,rack_current,rack_note\n"
                b"2022-09-01T11:00:00+09:00,-12.5,'=1+2\n"
                b"2022-09-01T11:00:01+09:00,-12.5,'+1\n"
                b"2022-09-01T11:00:02+09:00,-12.5,'-1\n"
                b"2022-09-01T11:00:03+09:00,-12.5,'@SUM(A1)\n"
                b"2022-09-01T11:00:04+09:00,-12.5,'\tTAB\n"
                b'2022-09-01T11:00:05+09:00,-12.5,"\'\rCR"\n'
                b"2022-09-01T11:00:06+09:00,-12.5,plain\n"
                b"2022-09-01T11:00:07+09:00,-12.5,a=b\n"
                b"2022-09-01T11:00:08+09:00,-12.5,'-\n")
    client = sec_app.test_client()
    for path in (f"/api/ess/download/operating-sites/{s}/rack/", f"/api/ess/download/di/operating-sites/{s}/rack/"):
        resp = client.get(path + query)
        assert resp.status_code == 200 and resp.mimetype == "text/csv"
        assert resp.get_data() == expected
    # JSON keeps the values as they are
    rows = client.get(f"/api/ess/operating-sites/{s}/banks/1/racks/1/{query}&no_page").get_json()
    assert [r["rack_note"] for r in rows] == NOTES


def test_csv_headers_never_start_a_formula(sec_app: Any, backend: str) -> None:
    s = _site(backend)
    for path in (f"/api/ess/download/operating-sites/{s}/rack/", f"/api/ess/download/di/operating-sites/{s}/rack/"):
        header = sec_app.test_client().get(path + "?" + R).get_data(as_text=True).split("\n", 1)[0].split(",")
        assert header and all(re.fullmatch(r"[a-z][a-z0-9_]*", h) for h in header), header


# ----- oversized requests -------------------------------------------------------------------

def test_oversized_requests_are_refused_early(sec_app: Any) -> None:
    client = sec_app.test_client()
    base = f"/api/ess/operating-sites/{SQLITE_SITE}/banks/1/?{R}"
    assert _problem(client.get(base + "&x=" + "a" * 100_000)) == (414, "request_uri_too_long")
    assert _problem(client.get("/api/ess/operating-sites/" + "1/" * 1500)) == (414, "request_uri_too_long")
    assert _problem(client.get(base + "&fields=" + ",".join(["a"] * 2000))) == (400, "too_many_fields")
    assert _problem(client.get(base + "&omit=" + ",".join(["x"] * 1001))) == (400, "too_many_fields")
    assert _problem(client.get(f"/api/ess/di/operating-sites/{SQLITE_SITE}/banks/1/?{R}&fields="
                               + ",".join(["a"] * 2000))) == (400, "too_many_fields")
    assert _problem(client.get(base + "&fields=" + ",".join(f"f{i}" for i in range(10_000)))) == \
        (414, "request_uri_too_long")
    assert _problem(client.get(base + "&page_size=1000000000")) == (400, "invalid_parameter")
    assert _problem(client.get(base + "&page=" + "9" * 5000)) == (400, "invalid_parameter")
    big = b"x" * (5 * 1024 * 1024)
    assert _problem(client.post("/api/ess/operating-sites/", data=big)) == (413, "request_entity_too_large")
    assert _problem(client.put(base, data=big)) == (413, "request_entity_too_large")
    assert client.post("/_dash-update-component", data=big, content_type="application/json").status_code == 413
    assert _problem(client.post("/api/ess/operating-sites/", data=b"{}")) == (405, "method_not_allowed")


def test_the_openapi_document_names_the_limits(sec_app: Any) -> None:
    doc = sec_app.test_client().get("/api/openapi.json").get_json()
    for path, item in doc["paths"].items():
        assert {"413", "414"} <= set(item["get"]["responses"]), path


# ----- tokens in logs -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def auth_app(sec_env: SmallEnv, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_small_app(sec_env, ESS_AUTH="on", ESS_APP_DB_URL=f"sqlite:///{tmp_path_factory.mktemp('auth')}/a.db")


def test_tokens_never_reach_the_logs(auth_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    from services.tokens import create_token

    token = create_token(auth_app.extensions["ess"].app_db, "log-test", "raw")
    wrong = token[:-4] + "abcd"
    caplog.set_level(logging.DEBUG)
    server = make_server("127.0.0.1", 0, auth_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    statuses = []
    try:
        root = f"http://127.0.0.1:{server.server_port}"
        bank = f"/api/ess/operating-sites/{SQLITE_SITE}/banks/1/?{R}&page_size=1"
        for path, headers in [(bank, {"Authorization": f"Bearer {token}"}),
                              (bank, {"Authorization": f"Bearer {wrong}"}),
                              (bank + f"&access_token={token}", {}), (bank + f"&token={token}", {}),
                              (f"/api/ess/operating-sites/?api_key={token}", {"Authorization": f"Bearer {token}"}),
                              (f"/nosuchpage?access_token={token}", {})]:
            req = urllib.request.Request(root + path, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    statuses.append(resp.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert statuses[:4] == [200, 401, 400, 400] and statuses[4] == 400
    client = auth_app.test_client()  # a failed sign-in with a token-like text
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    assert client.post("/login", data={"csrf": csrf.group(1), "token": wrong}).status_code == 401
    assert client.post("/login", data={"csrf": "forged", "token": token}).status_code == 400
    access = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert sum("access_token=" in line or "token=" in line for line in access) >= 3, access  # captured, redacted
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        assert token not in text and wrong not in text and token[4:24] not in text, text
    assert token not in caplog.text and wrong not in caplog.text

