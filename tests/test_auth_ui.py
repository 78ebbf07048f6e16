"""Access control in the UI: the login page and its rate limit, the signed session cookie
(pages, Dash XHRs and API GETs), logout and revocation, and de-identified access in the
page callbacks (called as functions, as Dash calls them)."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask, session

import services.tokens as auth
from api.auth import LOGIN_MAX_FAILURES, LOGIN_WINDOW_S, SESSION_KEY, install_auth
from components.urlstate import ViewState
from services.core.catalogue import get_fields
from services.core.settings import load_settings
from tests.test_auth import DAY, END, START, AuthEnv, build_auth_env

SENSITIVE = sorted({f.api_name for c in ("bank", "rack", "pcs") for f in get_fields(c, "site1") if f.sensitive})
RACK_SENSITIVE = "rack_status_for_fault"
_addresses = iter(range(1, 250))


@pytest.fixture(scope="session")
def auth_env(pg_url: str) -> AuthEnv:
    """The portal of tests/test_auth.py (built once per process)."""
    return build_auth_env(pg_url)


def new_address() -> dict[str, str]:
    """A client address of its own (the failure counter is per address)."""
    return {"REMOTE_ADDR": f"10.9.8.{next(_addresses)}"}


def login(client: Any, token: str, env: dict[str, str] | None = None, nxt: str = "/") -> Any:
    env = env or new_address()
    page = client.get(f"/login?next={nxt}", environ_base=env)
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert csrf
    return client.post("/login", data={"token": token, "csrf": csrf.group(1), "next": nxt}, environ_base=env)


def text_of(component: Any) -> str:
    return json.dumps(component.to_plotly_json() if hasattr(component, "to_plotly_json") else component,
                      default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


# ----- pages need a session -------------------------------------------------------------------

def test_without_a_session_pages_redirect_and_xhrs_get_401(auth_env: AuthEnv) -> None:
    client = auth_env.on.test_client()
    for path in ("/", "/explorer?site=1", "/downloads", "/_dash-component-suites/dash/dash-renderer/build/x.js"):
        resp = client.get(path)
        assert resp.status_code == 302, path
        assert resp.headers["Location"].startswith("/login?next=%2F")
    assert client.get("/explorer?site=1").headers["Location"] == "/login?next=%2Fexplorer%3Fsite%3D1"
    for path in ("/_dash-layout", "/_dash-dependencies", "/_reload-hash"):
        assert client.get(path).status_code == 401, path
    assert client.post("/_dash-update-component", json={}).status_code == 401
    for path in ("/login", "/healthz", "/readyz", "/api/openapi.json", "/api/docs/", "/assets/portal.css"):
        assert client.get(path).status_code == 200, path


def test_login_sets_a_safe_session_cookie_and_opens_the_ui(auth_env: AuthEnv) -> None:
    client = auth_env.on.test_client()
    resp = login(client, auth_env.tokens["raw"], nxt="/explorer?site=1")
    assert resp.status_code == 302 and resp.headers["Location"] == "/explorer?site=1"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("ess_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie and auth_env.tokens["raw"] not in cookie
    assert client.get("/explorer?site=1").status_code == 200
    assert client.get("/_dash-layout").status_code == 200
    assert client.get("/_dash-dependencies").status_code == 200


def test_login_page_is_translated_and_refuses_bad_tokens(auth_env: AuthEnv) -> None:
    client = auth_env.on.test_client()
    ko = client.get("/login?lang=ko").get_data(as_text=True)
    assert "로그인" in ko and 'type="password"' in ko
    assert login(client, "ess_not-a-real-token").status_code == 401
    assert login(client, "").status_code == 401
    env = new_address()
    client.get("/login", environ_base=env)
    no_csrf = client.post("/login", data={"token": auth_env.tokens["raw"]}, environ_base=env)
    assert no_csrf.status_code == 400 and SESSION_KEY not in (client.get_cookie("ess_session").value
                                                              if client.get_cookie("ess_session") else "")


@pytest.mark.parametrize("nxt", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/login"])
def test_login_never_redirects_off_site(auth_env: AuthEnv, nxt: str) -> None:
    resp = login(auth_env.on.test_client(), auth_env.tokens["deidentified"], nxt=nxt)
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_failed_logins_are_rate_limited_per_address(auth_env: AuthEnv) -> None:
    client = auth_env.on.test_client()
    env = new_address()
    for _ in range(LOGIN_MAX_FAILURES):
        assert login(client, "ess_wrong", env).status_code == 401
    throttled = login(client, auth_env.tokens["admin"], env)  # even the right token: wait first
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["Retry-After"]) <= LOGIN_WINDOW_S
    assert "Too many failed attempts" in throttled.get_data(as_text=True)
    assert login(auth_env.on.test_client(), auth_env.tokens["admin"], new_address()).status_code == 302


def test_the_session_cookie_works_for_api_gets_only(auth_env: AuthEnv) -> None:
    client = auth_env.on.test_client()
    login(client, auth_env.tokens["deidentified"])
    di = f"/api/ess/di/operating-sites/1/banks/1/racks/2/?start-time={START}&end-time={END}&page_size=3"
    assert client.get(di).status_code == 200
    assert client.get(f"/api/ess/download/di/operating-sites/1/rack/?start-time={START}&end-time={END}"
                      ).status_code == 200
    raw = client.get(f"/api/ess/operating-sites/1/banks/1/?start-time={START}&end-time={END}")
    assert raw.status_code == 403 and raw.get_json()["code"] == "forbidden"
    assert client.post("/api/ess/operating-sites/").status_code == 401
    # a Bearer header wins over the cookie
    assert client.get(di, headers={"Authorization": "Bearer ess_wrong"}).status_code == 401


def test_logout_ends_the_session(auth_env: AuthEnv) -> None:
    client = auth_env.on.test_client()
    login(client, auth_env.tokens["raw"])
    assert client.get("/").status_code == 200
    asked = client.get("/logout")  # a GET (a link, perhaps on another site) only asks
    assert asked.status_code == 200 and b'method="post" action="/logout"' in asked.data
    assert client.get("/").status_code == 200
    forged = client.post("/logout", data={"csrf": "guess"})
    assert forged.status_code == 400 and forged.get_json()["code"] == "csrf_failed"
    assert client.get("/").status_code == 200
    csrf = re.search(rb'name="csrf" value="([^"]+)"', asked.data)
    assert csrf is not None
    resp = client.post("/logout", data={"csrf": csrf.group(1).decode()})
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert client.get("/").status_code == 302
    assert client.get("/api/ess/operating-sites/").status_code == 401


def test_a_revoked_token_loses_its_session(auth_env: AuthEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    engine = auth_env.on.extensions["ess"].app_db
    token = auth.create_token(engine, "ui-revoked", "raw")
    client = auth_env.on.test_client()
    login(client, token)
    assert client.get("/explorer").status_code == 200
    monkeypatch.setattr(auth, "CACHE_TTL_S", 0.2)
    with engine.begin() as conn:  # revoked by another process: this one's cache does not know yet
        import sqlalchemy as sa

        from services.tokens import api_token
        conn.execute(sa.update(api_token).where(api_token.c.name == "ui-revoked").values(revoked=1))
    time.sleep(0.25)
    assert client.get("/explorer").status_code == 302
    assert client.get(f"/api/ess/di/operating-sites/1/pcs/?date={DAY}").status_code == 401


def test_secure_cookie_setting() -> None:
    app = Flask("secure-probe")
    install_auth(app, load_settings(env={"ESS_SESSION_SECURE": "on", "ESS_AUTH": "on"}))
    assert app.config["SESSION_COOKIE_SECURE"] is True and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


# ----- what a de-identified user sees (callbacks as functions) --------------------------------------

@contextmanager
def signed_in(app: Any, name: str | None) -> Iterator[None]:
    """A Dash callback's request context with the session of token `name`."""
    with app.test_request_context("/_dash-update-component", method="POST"):
        if name:
            session[SESSION_KEY] = name
        yield


def page(name: str) -> Any:
    return importlib.import_module(f"pages.{name}")


def state(site: int = 1, fields: tuple[str, ...] = ("rack_soc", RACK_SENSITIVE), **extra: str) -> dict[str, Any]:
    view = ViewState(site, 1, 2, "rack", fields, START, END)
    return (view.with_extra(**extra) if extra else view).to_store()


def assert_no_sensitive_name(text: str) -> None:
    found = [n for n in SENSITIVE if n in text.lower()]
    assert not found, found[:5]


@pytest.mark.parametrize("site", [1, 101])
def test_explorer_deidentified(auth_env: AuthEnv, site: int) -> None:
    explorer = page("explorer")
    with signed_in(auth_env.on, "matrix-deidentified"):
        rendered = text_of(explorer.layout(lang="en", site=str(site), component="rack", bank="1", rack="2",
                                           start=START, end=END))
        assert_no_sensitive_name(rendered)
        assert f"/api/ess/download/di/operating-sites/{site}/rack/" in rendered
        assert f"/api/ess/download/operating-sites/{site}" not in rendered
        assert f"/api/ess/di/operating-sites/{site}/banks/1/racks/2/" in rendered
        assert "explorer-scope-note" in rendered
        _, columns, _, alert = explorer.update_table(state(site), 0, "en")
        assert alert is None and [c["id"] for c in columns] == ["timestamp", "rack_soc"]
        fig, _, _, alert = explorer.update_chart(state(site), "en")
        assert alert is None and RACK_SENSITIVE not in text_of(fig.to_plotly_json())
        state_alone = explorer.update_chart(state(site, (RACK_SENSITIVE,)), "en")
        assert RACK_SENSITIVE not in text_of(state_alone[0].to_plotly_json())
    with signed_in(auth_env.on, "matrix-raw"):
        rendered = text_of(explorer.layout(lang="en", site=str(site), component="rack", bank="1", rack="2",
                                           start=START, end=END))
        assert RACK_SENSITIVE in rendered and f"/api/ess/download/operating-sites/{site}/rack/" in rendered
        _, columns, _, _ = explorer.update_table(state(site), 0, "en")
        assert [c["id"] for c in columns] == ["timestamp", "rack_soc", RACK_SENSITIVE]


def test_downloads_deidentified_link_only_di_routes(auth_env: AuthEnv) -> None:
    downloads = page("downloads")
    with signed_in(auth_env.on, "matrix-deidentified"):
        rendered = text_of(downloads.layout(lang="en", site="1", types="rack,bank,pcs", mode="raw"))
        assert "downloads-scope-note" in rendered
        estimate = text_of(downloads.update_estimate(state(types="rack,bank,pcs", mode="raw"), "en"))
    hrefs = re.findall(r'"href": "([^"]+)"', estimate)
    assert len(hrefs) == 3 and all(h.startswith("/api/ess/download/di/") for h in hrefs), hrefs
    with signed_in(auth_env.on, "matrix-raw"):
        estimate = text_of(downloads.update_estimate(state(types="rack", mode="raw"), "en"))
    assert re.findall(r'"href": "([^"]+)"', estimate)[0].startswith("/api/ess/download/operating-sites/1/rack/")


@pytest.mark.parametrize("site", [1, 101])
def test_live_overview_and_api_pages_deidentified(auth_env: AuthEnv, site: int) -> None:
    with signed_in(auth_env.on, "matrix-deidentified"):
        live = page("live").refresh(0, ViewState(site).to_store(), "en")
        assert_no_sensitive_name(text_of(list(live)))
        cards, alert = page("overview").update_cards({"visit": True}, 0, "en")
        assert alert is None
        assert_no_sensitive_name(text_of(cards))
        guide = text_of(page("api").layout(lang="en", site=str(site)))
        assert "/snapshot/" not in guide and "/latest/" not in guide
        assert f"/api/ess/di/operating-sites/{site}/banks/1/racks/1/" in guide
        assert f"/api/ess/download/di/operating-sites/{site}/rack/" in guide


def test_navbar_shows_who_is_signed_in(auth_env: AuthEnv) -> None:
    shell = importlib.import_module("pages._shell")
    with signed_in(auth_env.on, "matrix-raw"):
        box = text_of(shell.update_user("en", "/"))
    assert "matrix-raw (raw)" in box and "/logout" in box
    with signed_in(auth_env.off, None):
        assert shell.update_user("en", "/") == []


# ----- in a browser -------------------------------------------------------------------------------

@pytest.mark.browser
def test_sign_in_then_explore_deidentified_in_a_browser(dash_duo: Any, auth_env: AuthEnv) -> None:
    """Headless Chromium: /explorer redirects to the sign-in page; after pasting a
    de-identified token the page's XHRs run on the session cookie, the navbar names the
    token, only the de-identified CSV is offered, and nothing is logged to the console."""
    import threading

    from selenium.webdriver.common.by import By
    from werkzeug.serving import make_server

    assert auth_env.on.extensions["ess"].app_db is not None
    server = make_server("127.0.0.1", 0, auth_env.on, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    driver = dash_duo.driver
    try:
        driver.get(f"{base}/explorer?site=1&bank=1&rack=2&start={START[:16]}&end={END[:16]}")
        dash_duo.wait_for_element("#token", timeout=20)
        assert "/login?next=" in driver.current_url
        driver.find_element(By.ID, "token").send_keys(auth_env.tokens["deidentified"])
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        dash_duo.wait_for_element("#explorer-graph .main-svg", timeout=30)
        dash_duo.wait_for_contains_text("#shell-user", "matrix-deidentified (deidentified)", timeout=20)
        assert driver.find_elements(By.ID, "explorer-download") == []
        di = driver.find_element(By.ID, "explorer-download-di").get_attribute("href") or ""
        assert "/api/ess/download/di/operating-sites/1/rack/" in di
        assert RACK_SENSITIVE not in driver.page_source
        assert dash_duo.get_logs() == []
        driver.find_element(By.LINK_TEXT, "Sign out").click()
        dash_duo.wait_for_element("form[action='/logout'] button", timeout=20).click()  # confirm (POST)
        dash_duo.wait_for_element("#token", timeout=20)
    finally:
        server.shutdown()
        thread.join(5)


def test_without_the_app_database_health_stays_up_and_sign_in_says_why(tmp_path: Any) -> None:
    """The session key lives in the app database: while it is unreachable there are no
    sessions (pages redirect, /login is a 503), and /healthz does not fail."""
    from api.errors import register_error_handlers
    from services.core.portal import Portal

    settings = load_settings(env={"ESS_AUTH": "on", "ESS_DATA_DIR": str(tmp_path),
                                  "ESS_APP_DB_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/nothing"})
    app = Flask("no-app-db")
    app.extensions["ess"] = Portal(settings)
    register_error_handlers(app)
    install_auth(app, settings)
    app.add_url_rule("/healthz", "healthz", lambda: "ok")
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/explorer").status_code == 302
    resp = client.get("/login")
    assert resp.status_code == 503 and resp.get_json()["code"] == "auth_unavailable"
