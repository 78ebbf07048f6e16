"""Access control: hashed tokens and their cache (services/tokens.py), the `ess token` CLI,
the scope matrix (every API route x no token / deidentified / raw / admin), query-string
tokens refused, the OpenAPI security description, and tokens kept out of the logs.

The portal here is small and its own: one SQLite site (1) and one PostgreSQL site (101)
with ten minutes of generated data, an app with ESS_AUTH=on and one with it off over the
same files (the "same URL with auth off" of the matrix)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import re
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import services.tokens as auth
from api.spec import ROUTES, RouteSpec
from services.core.appschema import open_app_db
from services.core.errors import InvalidQuery, NotFound, Unavailable
from services.tokens import api_token
from tests.small_env import build_small_env

DAY = "2022-09-01"
START, END = f"{DAY}T10:00:00", f"{DAY}T10:10:00"
TOKEN_RE = re.compile(r"^ess_[A-Za-z0-9_-]{43}$")
SCOPES = ("deidentified", "raw", "admin")


@dataclasses.dataclass
class AuthEnv:
    data_dir: Path
    on: Any  # the Flask app with ESS_AUTH=on
    off: Any  # the same data with ESS_AUTH=off
    tokens: dict[str, str]  # scope -> plaintext token (named "matrix-<scope>")
    site_ids: tuple[int, ...]


@functools.cache
def build_auth_env(pg_url: str) -> AuthEnv:
    """Built once per process (tests/test_auth_ui.py uses the same one)."""
    from app import create_app

    data_dir = Path(tempfile.mkdtemp(prefix="ess-auth-"))
    small = build_small_env(data_dir, pg_url)  # site 1 on SQLite, 101 on PostgreSQL, 10:00-10:10 of DAY
    common = {"ESS_DATA_DIR": str(data_dir), "ESS_REGISTRY": str(small.registry_path)}
    on = create_app(ESS_AUTH="on", **common)
    off = create_app(ESS_AUTH="off", **common)
    engine = on.extensions["ess"].app_db
    tokens = {scope: auth.create_token(engine, f"matrix-{scope}", scope) for scope in SCOPES}
    return AuthEnv(data_dir, on, off, tokens, tuple(small.sites))


@pytest.fixture(scope="session")
def auth_env(pg_url: str) -> AuthEnv:
    return build_auth_env(pg_url)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ----- services/tokens.py ----------------------------------------------------------------------

@pytest.fixture
def token_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """A fresh app database on `backend` (the whole app schema, as the portal makes it)."""
    if backend == "sqlite":
        engine = open_app_db(f"sqlite:///{tmp_path / 'app.sqlite'}")
        yield engine
        return
    url = request.getfixturevalue("pg_url")
    engine = open_app_db(url)
    with engine.begin() as conn:
        conn.execute(sa.delete(api_token))
    auth.clear_cache()
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.delete(api_token))
    auth.clear_cache()


def test_tokens_are_stored_hashed_and_verified(token_db: sa.Engine) -> None:
    token = auth.create_token(token_db, "ci", "raw")
    assert TOKEN_RE.match(token)
    with token_db.connect() as conn:
        rows = conn.execute(sa.select(api_token)).mappings().all()
    assert len(rows) == 1
    stored = dict(rows[0])
    assert token not in {str(v) for v in stored.values()}
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    principal = auth.verify_token(token_db, token)
    assert principal == auth.Principal("ci", "raw")
    assert principal.allows("deidentified") and principal.allows("raw") and not principal.allows("admin")
    assert principal.allows(None)
    for wrong in ("", token[:-1], token + "x", token.upper(), "ess_" + "A" * 43, "x" * 5000):
        assert auth.verify_token(token_db, wrong) is None


def test_list_tokens_never_shows_a_hash(token_db: sa.Engine) -> None:
    tokens = [auth.create_token(token_db, name, scope) for name, scope in (("b-raw", "raw"), ("a-di", "deidentified"))]
    auth.verify_token(token_db, tokens[0])
    listed = auth.list_tokens(token_db)
    assert [r["name"] for r in listed] == ["a-di", "b-raw"]
    assert set(listed[0]) == {"name", "scope", "created", "last_used", "revoked", "revoked_at"}
    assert listed[0]["last_used"] is None and listed[1]["last_used"] is not None  # verify wrote it
    text = repr(listed)
    for token in tokens:
        assert token not in text and hashlib.sha256(token.encode()).hexdigest() not in text


def test_revoke_takes_effect_at_once_in_this_process(token_db: sa.Engine) -> None:
    token = auth.create_token(token_db, "gone", "admin")
    assert auth.verify_token(token_db, token) is not None
    auth.revoke_token(token_db, "gone")
    assert auth.verify_token(token_db, token) is None
    assert auth.get_principal(token_db, "gone") is None
    auth.revoke_token(token_db, "gone")  # twice is harmless
    listed = auth.list_tokens(token_db)
    assert listed[0]["revoked"] is True and listed[0]["revoked_at"]
    with pytest.raises(NotFound, match="no token named 'nobody'"):
        auth.revoke_token(token_db, "nobody")


def test_bad_scope_name_and_duplicates_are_refused(token_db: sa.Engine) -> None:
    with pytest.raises(InvalidQuery, match="unknown scope 'root'; valid scopes: deidentified, raw, admin"):
        auth.create_token(token_db, "x", "root")
    for bad in ("", "has space", "-dash-first", "x" * 65, "semi;colon", "ünï"):
        with pytest.raises(InvalidQuery, match="invalid token name"):
            auth.create_token(token_db, bad, "raw")
    auth.create_token(token_db, "dup", "raw")
    with pytest.raises(InvalidQuery, match="already exists"):
        auth.create_token(token_db, "dup", "admin")
    assert [r["name"] for r in auth.list_tokens(token_db)] == ["dup"]


def test_revocation_elsewhere_is_seen_within_the_ttl(token_db: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker revokes (a plain UPDATE here): this process notices after CACHE_TTL_S."""
    import time as clock

    monkeypatch.setattr(auth, "CACHE_TTL_S", 0.3)
    token = auth.create_token(token_db, "elsewhere", "raw")
    assert auth.verify_token(token_db, token) is not None
    with token_db.begin() as conn:
        conn.execute(sa.update(api_token).where(api_token.c.name == "elsewhere").values(revoked=1))
    assert auth.verify_token(token_db, token) is not None  # still cached
    clock.sleep(0.35)
    assert auth.verify_token(token_db, token) is None


def test_known_tokens_survive_a_short_database_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time as clock

    path = tmp_path / "app.sqlite"
    engine = open_app_db(f"sqlite:///{path}")
    token = auth.create_token(engine, "known", "deidentified")
    other = auth.create_token(engine, "unknown", "deidentified")
    monkeypatch.setattr(auth, "CACHE_TTL_S", 0.05)
    assert auth.verify_token(engine, token) is not None
    engine.dispose()
    path.rename(tmp_path / "moved.sqlite")  # the next connection finds an empty database: reads fail
    clock.sleep(0.1)
    assert auth.verify_token(engine, token) == auth.Principal("known", "deidentified")
    with pytest.raises(Unavailable):
        auth.verify_token(engine, other)
    engine.dispose()


# ----- the CLI -----------------------------------------------------------------------------------

def test_cli_create_prints_only_the_token(auth_env: AuthEnv) -> None:
    runner = auth_env.on.test_cli_runner()
    result = runner.invoke(args=["ess", "token", "create", "cli-ci", "--scope", "raw"])
    assert result.exit_code == 0, result.output
    assert TOKEN_RE.match(result.stdout.strip()) and result.stdout.count("\n") == 1
    assert "shown once" in result.stderr
    assert auth.verify_token(auth_env.on.extensions["ess"].app_db, result.stdout.strip()) == auth.Principal(
        "cli-ci", "raw")

    listed = runner.invoke(args=["ess", "token", "list"])
    assert listed.exit_code == 0
    assert re.search(r"^cli-ci\s+raw\s+\d{4}-", listed.stdout, re.M)
    assert listed.stdout.splitlines()[0].split() == ["NAME", "SCOPE", "CREATED", "LAST", "USED", "REVOKED"]
    assert result.stdout.strip() not in listed.output

    revoked = runner.invoke(args=["ess", "token", "revoke", "cli-ci"])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert auth.verify_token(auth_env.on.extensions["ess"].app_db, result.stdout.strip()) is None


@pytest.mark.parametrize(("args", "code", "message"), [
    (["create", "x", "--scope", "root"], 2, "Invalid value for '--scope'"),
    (["create", "x"], 2, "Missing option '--scope'"),
    (["create", "bad name", "--scope", "raw"], 1, "error: invalid token name 'bad name'"),
    (["create", "matrix-raw", "--scope", "raw"], 1, "error: a token named 'matrix-raw' already exists"),
    (["revoke", "nobody"], 1, "error: no token named 'nobody'"),
])
def test_cli_errors_exit_non_zero_with_a_message(auth_env: AuthEnv, args: list[str], code: int,
                                                 message: str) -> None:
    result = auth_env.on.test_cli_runner().invoke(args=["ess", "token", *args])
    assert result.exit_code == code
    assert message in result.stderr and result.stdout == ""


# ----- the scope matrix ------------------------------------------------------------------------------

SAMPLE_FIELDS = {"banks/{bank}/stats/": "bank_soc", "racks/stats/": "rack_soc", "racks/{rack}/stats/": "rack_soc",
                 "pcs/stats/": "pcs_ac_l1_thd", "etc/stats/": "sensor1_temperature"}


def make_url(r: RouteSpec, site: int) -> str:
    """The route with a real site, bank 1, rack 2, data type rack and a query it accepts."""
    path = r.path.format(site=site, bank=1, rack=2, data_type="rack")
    names = {p.name for p in r.params if p.location == "query"}
    query: list[str] = []
    if "start-time" in names and "time-bucket-width" in names:
        query += [f"start-time={START}", f"end-time={END}", "time-bucket-width=1min"]
    elif "start-time" in names:
        query += [f"start-time={START}", f"end-time={END}"]
    elif "date" in names:
        query.append(f"date={DAY}")
    if "start-date" in names:
        query += [f"start-date={DAY}", "end-date=2022-09-02"]
    if "agg" in names:
        query.append("fields=" + next(v for k, v in SAMPLE_FIELDS.items() if r.path.endswith(k)))
    return path + ("?" + "&".join(query) if query else "")


def matrix_urls() -> list[tuple[RouteSpec, str]]:
    out = []
    for r in ROUTES:
        if "{site}" in r.path:
            out += [(r, make_url(r, site)) for site in (1, 101)]
        else:
            out.append((r, make_url(r, 1)))
    return out


def test_every_route_declares_a_scope() -> None:
    expected_open = {"/healthz", "/readyz", "/api/openapi.json", "/api/docs/"}
    assert {r.path for r in ROUTES if r.scope is None} == expected_open
    by_tag = {r.tag: set() for r in ROUTES}
    for r in ROUTES:
        by_tag[r.tag].add(r.scope)
    assert by_tag["operating data"] == {"raw"} and by_tag["downloads"] == {"raw"}
    assert by_tag["de-identified data"] == by_tag["statistics"] == by_tag["analytics"] == {"deidentified"}
    assert by_tag["protection map"] == by_tag["discovery"] == {"deidentified"}
    assert by_tag["admin"] == {"admin"}
    assert any(r.path.endswith("/snapshot/") and r.scope == "raw" for r in ROUTES)


def test_scope_matrix(auth_env: AuthEnv) -> None:
    """Every route x {no token, deidentified, raw, admin}: allowed -> the status of the same
    URL with auth off; not allowed -> 401 without a token, 403 with too small a scope."""
    on, off = auth_env.on.test_client(), auth_env.off.test_client()
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for r, url in matrix_urls():
        open_status = off.get(url).status_code
        statuses[open_status] = statuses.get(open_status, 0) + 1
        for who in (None, *SCOPES):
            resp = on.get(url, headers=bearer(auth_env.tokens[who]) if who else {})
            if r.scope is None or (who is not None and auth.SCOPES.index(who) >= auth.SCOPES.index(r.scope)):
                expected = open_status
            else:
                expected = 401 if who is None else 403
            if resp.status_code != expected:
                failures.append(f"{url} as {who}: {resp.status_code}, expected {expected}")
            if resp.status_code in (401, 403):
                assert resp.mimetype == "application/problem+json"
                assert resp.get_json()["status"] == resp.status_code
            if resp.status_code == 401:
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert not failures, "\n".join(failures[:30])
    assert statuses.get(200, 0) > len(ROUTES)  # the matrix mostly compares real answers, not errors
    assert not any(s >= 500 for s in statuses), statuses


def test_same_body_with_a_token_as_with_auth_off(auth_env: AuthEnv) -> None:
    url = f"/api/ess/operating-sites/101/banks/1/racks/2/?start-time={START}&end-time={END}&page_size=5"
    on = auth_env.on.test_client().get(url, headers=bearer(auth_env.tokens["raw"]))
    assert on.status_code == 200 and on.get_json() == auth_env.off.test_client().get(url).get_json()


def test_unknown_api_paths_need_a_token_first(auth_env: AuthEnv) -> None:
    client = auth_env.on.test_client()
    assert client.get("/api/nothing/here/").status_code == 401
    assert client.get("/api/nothing/here/", headers=bearer(auth_env.tokens["deidentified"])).status_code == 404


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "bearer ess_nope"])
def test_malformed_or_wrong_authorization_is_401(auth_env: AuthEnv, header: str) -> None:
    resp = auth_env.on.test_client().get("/api/ess/operating-sites/", headers={"Authorization": header})
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
    assert 'Bearer realm="ess"' in resp.headers["WWW-Authenticate"]


def test_a_cached_response_is_not_served_without_a_token(auth_env: AuthEnv) -> None:
    client = auth_env.on.test_client()
    url = f"/api/ess/operating-sites/1/banks/1/?date={DAY}&page_size=2"
    assert client.get(url, headers=bearer(auth_env.tokens["raw"])).status_code == 200
    assert client.get(url, headers=bearer(auth_env.tokens["raw"])).headers.get("X-Cache") == "hit"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=bearer(auth_env.tokens["deidentified"])).status_code == 403


def test_deidentified_statistics_refuse_sensitive_fields(auth_env: AuthEnv) -> None:
    client = auth_env.on.test_client()
    base = f"/api/ess/operating-sites/1/banks/1/racks/2/stats/?start-time={START}&end-time={END}" \
           "&time-bucket-width=1min&fields="
    assert client.get(base + "rack_soc", headers=bearer(auth_env.tokens["deidentified"])).status_code == 200
    refused = client.get(base + "rack_soc,rack_status_for_fault", headers=bearer(auth_env.tokens["deidentified"]))
    assert refused.status_code == 403 and "rack_status_for_fault" not in refused.get_data(as_text=True)
    assert client.get(base + "rack_status_for_fault", headers=bearer(auth_env.tokens["raw"])).status_code == 200


@pytest.mark.parametrize("sid", [1, 101])
def test_discovery_shows_deidentified_callers_published_names_only(auth_env: AuthEnv, sid: int) -> None:
    """The field catalogue must not tie published ids to cells or sensors for a
    `deidentified` caller; a `raw` caller sees the original names."""
    client = auth_env.on.test_client()
    url = f"/api/ess/operating-sites/{sid}/"
    raw = client.get(url, headers=bearer(auth_env.tokens["raw"])).get_json()
    di = client.get(url, headers=bearer(auth_env.tokens["deidentified"])).get_json()
    raw_rack, di_rack = raw["components"]["rack"]["fields"], di["components"]["rack"]["fields"]
    assert len(raw_rack) == len(di_rack)
    sensitive = [f["name"] for f in raw_rack if f["sensitive"]]
    assert "rack_status_for_fault" in sensitive
    di_text = json.dumps(di)
    assert not [n for n in sensitive if f'"{n}"' in di_text]
    rows = client.get(f"/api/ess/di/operating-sites/{sid}/banks/1/racks/1/?start-time={START}&end-time={END}"
                      "&page_size=1", headers=bearer(auth_env.tokens["deidentified"])).get_json()
    published = set(rows["results"][0])
    for before, after in zip(raw_rack, di_rack, strict=True):
        if before["sensitive"]:
            assert after["name"].startswith("rk_") and after["name"] in published
            assert after["description"] == after["description_ko"] == "(withheld)"
            assert (after["type"], after["unit"]) == (before["type"], before["unit"])
        else:
            assert after == before


def test_admin_route_lists_tokens_without_secrets(auth_env: AuthEnv) -> None:
    resp = auth_env.on.test_client().get("/api/admin/tokens/", headers=bearer(auth_env.tokens["admin"]))
    assert resp.status_code == 200
    names = {r["name"]: r for r in resp.get_json()}
    assert names["matrix-raw"]["scope"] == "raw" and "token_hash" not in names["matrix-raw"]
    text = resp.get_data(as_text=True)
    assert not any(t in text for t in auth_env.tokens.values())


# ----- tokens in query strings -----------------------------------------------------------------------

@pytest.mark.parametrize("param", ["token", "access_token", "api_key", "apikey", "key", "bearer", "Token"])
def test_a_token_in_the_query_string_is_refused_even_with_auth_off(auth_env: AuthEnv, param: str) -> None:
    token = auth_env.tokens["admin"]
    for app in (auth_env.on, auth_env.off):
        for path in ("/api/ess/operating-sites/", "/healthz", "/api/openapi.json", "/explorer"):
            resp = app.test_client().get(f"{path}?{param}={token}")
            assert resp.status_code == 400, (path, param)
            body = resp.get_json()
            assert body["code"] == "token_in_query" and body["invalid_params"][0]["name"] == param
            assert token not in resp.get_data(as_text=True)
    # even together with a valid header
    resp = auth_env.on.test_client().get(f"/api/ess/operating-sites/?{param}=x", headers=bearer(token))
    assert resp.status_code == 400


# ----- the OpenAPI document ---------------------------------------------------------------------------

def test_openapi_describes_the_security(auth_env: AuthEnv) -> None:
    doc = auth_env.on.test_client().get("/api/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "ess_ token",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"]}
    for path, item in doc["paths"].items():
        op = item["get"]
        if op["x-required-scope"] is None:
            assert op["security"] == [] and "401" not in op["responses"], path
        else:
            assert op["security"] == [{"bearer": []}], path
            assert op["x-required-scope"] in SCOPES
            assert {"401", "403"} <= set(op["responses"]), path
            assert op["responses"]["401"]["content"]["application/problem+json"]
    assert doc["paths"]["/api/admin/tokens/"]["get"]["x-required-scope"] == "admin"
    assert doc["paths"]["/api/ess/operating-sites/{site}/snapshot/"]["get"]["x-required-scope"] == "raw"
    off = auth_env.off.test_client().get("/api/openapi.json").get_json()  # nothing enforced: nothing required
    assert all(item["get"]["security"] == [] for item in off["paths"].values())


# ----- logs ------------------------------------------------------------------------------------------

def test_redact_replaces_credentials() -> None:
    from api.auth import redact

    token = "ess_" + "Ab1_-" * 9
    line = f'127.0.0.1 - - "GET /api/x/?a=1&token={token}&key=k&b=2 HTTP/1.1" 400 -'
    assert redact(line) == '127.0.0.1 - - "GET /api/x/?a=1&token=[redacted]&key=[redacted]&b=2 HTTP/1.1" 400 -'
    assert redact(f"Authorization: Bearer {token}") == "Authorization: Bearer [redacted]"
    assert redact(f"saw {token} here") == "saw ess_[redacted] here"


def test_no_token_reaches_the_logs(auth_env: AuthEnv, caplog: pytest.LogCaptureFixture) -> None:
    """A real server (werkzeug's access log) answering a Bearer request, a ?token= request
    and a failed sign-in: no token text in any record."""
    from werkzeug.serving import make_server

    token = auth_env.tokens["raw"]
    server = make_server("127.0.0.1", 0, auth_env.on, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    caplog.set_level(logging.DEBUG)
    try:
        for url, headers in ((f"{base}/api/ess/operating-sites/1/", bearer(token)),
                             (f"{base}/api/ess/operating-sites/1/?token={token}", {}),
                             (f"{base}/api/ess/operating-sites/1/?access_token={token}", bearer(token)),
                             (f"{base}/api/ess/operating-sites/1/", bearer(token + "x"))):
            try:
                urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10).read()
            except urllib.error.HTTPError as exc:
                exc.read()
    finally:
        server.shutdown()
        thread.join(5)
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "operating-sites/1/?token=[redacted]" in text  # the access log did log the request line
    assert token not in text and token[4:20] not in text


def test_with_auth_off_there_are_no_sessions(auth_env: AuthEnv) -> None:
    client = auth_env.off.test_client()
    assert client.get("/login").headers["Location"] == "/" and client.get("/logout").status_code == 302
    assert client.get("/api/ess/operating-sites/").status_code == 200
    assert auth_env.off.secret_key is None and "Set-Cookie" not in client.get("/healthz").headers
