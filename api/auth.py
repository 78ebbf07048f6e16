"""Access control for the API and the UI (adapter over services/tokens.py and services/core/access.py).

`install_auth(app, settings)` adds one before_request hook, installed before the response
cache so a cached body is never served to a caller who may not see it:

- always (even with ESS_AUTH=off): a credential in the query string (`token`,
  `access_token`, `api_key`, `apikey`, `key`, `bearer`) is refused with 400, never used;
- ESS_AUTH=on, under /api: `Authorization: Bearer <token>` whose scope includes the
  route's (api.spec: RouteSpec.scope); a GET may instead carry the UI's signed session
  cookie (so the UI's download links work). Missing/invalid -> 401 with
  `WWW-Authenticate: Bearer`, insufficient scope -> 403, both problem+json. Open: the API
  description (/api/openapi.json, /api/docs/, /api/static/), /healthz, /readyz;
- ESS_AUTH=on, the UI: without a signed-in session every page redirects to /login and
  Dash's XHRs (/_dash-update-component, layout, dependencies) get 401.

The login page keeps the token's name in Flask's signed session cookie (HttpOnly,
SameSite=Lax, Secure with ESS_SESSION_SECURE=on); every request re-checks the name against
the token store (cached, services.tokens.CACHE_TTL_S), so revoking a token ends its sessions.
Failed logins are counted per client address in the shared flask-caching cache
(LOGIN_MAX_FAILURES per LOGIN_WINDOW_S, then 429 with Retry-After).

Tokens never reach a log: nothing here logs a header or a form, and `RedactTokens` rewrites
token-like query parameters and `ess_...` strings in log records (werkzeug's and
gunicorn's access logs print the request line with its query string).
"""

from __future__ import annotations

import hmac
import html
import logging
import re
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, jsonify, redirect, request, session
from flask.sessions import NullSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response as BaseResponse

from api.errors import problem_response
from api.spec import ROUTES, route
from services.core.access import sensitive_fields
from services.core.i18n import LANGS, get_translator, normalize_lang
from services.core.portal import Portal
from services.core.settings import Settings
from services.tokens import Principal, get_principal, list_tokens, verify_token

log = logging.getLogger(__name__)

QUERY_TOKEN_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "key", "bearer"})
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/api/openapi.json", "/api/docs", "/api/docs/", "/login", "/logout",
                        "/_favicon.ico", "/favicon.ico"})
OPEN_PREFIXES = ("/api/static/", "/assets/")
XHR_PREFIXES = ("/_dash-update-component", "/_dash-layout", "/_dash-dependencies", "/_reload-hash")
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_S = 300
SESSION_LIFETIME = timedelta(hours=12)
SESSION_KEY = "ess_token_name"
CSRF_KEY = "ess_login_csrf"
UNKNOWN_ROUTE_SCOPE = "deidentified"  # /api paths without a route: any valid token, then 404

bp = Blueprint("ess_auth", __name__)


def _portal() -> Portal:
    portal: Portal = current_app.extensions["ess"]
    return portal


# ----- who is calling --------------------------------------------------------------------

def _session_principal() -> Principal | None:
    """The principal of the signed-in UI session (None, and the session dropped, when its
    token has been revoked)."""
    name = session.get(SESSION_KEY)
    if not isinstance(name, str) or not name:
        return None
    principal = get_principal(_portal().app_db, name)
    if principal is None:
        session.clear()  # the token was revoked: the session goes with it
    return principal


def current_principal() -> Principal | None:
    """The caller of this request: set by the hook, else read from the session (callbacks
    called as functions in tests run without the hook)."""
    if not has_request_context():
        return None
    if "ess_principal" not in g:
        g.ess_principal = _session_principal() if _portal().settings.auth else None
    principal: Principal | None = g.ess_principal
    return principal


# ----- the hook ----------------------------------------------------------------------------

def _unauthorized(detail: str, error: str | None = None) -> Response:
    resp = problem_response(401, "Unauthorized", detail, "unauthorized")
    resp.headers["WWW-Authenticate"] = 'Bearer realm="ess"' + (f', error="{error}"' if error else "")
    return resp


def _forbidden(detail: str) -> Response:
    return problem_response(403, "Forbidden", detail, "forbidden")


def _route_scopes() -> dict[str, tuple[str | None, str]]:
    """operationId (the endpoint without its blueprint) -> (scope, tag) of every route."""
    return {r.operation_id: (r.scope, r.tag) for r in ROUTES}


def _required(scopes: dict[str, tuple[str | None, str]]) -> tuple[str | None, str]:
    endpoint = (request.endpoint or "").rsplit(".", 1)[-1]
    return scopes.get(endpoint, (UNKNOWN_ROUTE_SCOPE, ""))


def _refuse_query_token() -> Response | None:
    refused = sorted({k for k in request.args if k.lower() in QUERY_TOKEN_PARAMS})
    if not refused:
        return None
    return problem_response(400, "Credentials in the query string",
                            f"credentials are never accepted in a query string ({', '.join(refused)}); send "
                            "'Authorization: Bearer <token>' instead, and revoke a token that was put in a URL",
                            "token_in_query", [{"name": k, "reason": "credentials are not accepted here"}
                                               for k in refused])


def _check_api(scopes: dict[str, tuple[str | None, str]]) -> Response | None:
    scope, tag = _required(scopes)
    if scope is None:
        return None
    header = request.headers.get("Authorization")
    if header is not None:
        kind, _, token = header.strip().partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return _unauthorized("the Authorization header must be 'Bearer <token>'", "invalid_request")
        principal = verify_token(_portal().app_db, token.strip())
        if principal is None:
            return _unauthorized("the token is not valid or has been revoked", "invalid_token")
    else:
        principal = _session_principal() if request.method in ("GET", "HEAD") else None
        if principal is None:
            return _unauthorized(f"this route needs a token with scope {scope!r}: send 'Authorization: Bearer "
                                 "<token>' (tokens are made with `flask --app app ess token create`)")
    g.ess_principal = principal
    if not principal.allows(scope):
        return _forbidden(f"this route needs scope {scope!r}; token {principal.name!r} has scope "
                          f"{principal.scope!r}")
    if tag == "statistics" and not principal.allows("raw"):
        sensitive = sensitive_fields(request.args.get("fields") or "")
        if sensitive:  # aggregates of a sensitive column under its real name would undo de-identification
            return _forbidden(f"statistics of sensitive fields need scope 'raw' ({len(sensitive)} requested); "
                              "use the de-identified routes under /api/ess/di/")
    return None


def _check_ui() -> BaseResponse | None:
    principal = _session_principal()
    if principal is not None:
        g.ess_principal = principal
        return None
    if request.method != "GET" or request.path.startswith(XHR_PREFIXES):
        return problem_response(401, "Unauthorized", "sign in at /login first", "unauthorized")
    target = request.full_path.rstrip("?")
    return redirect("/login?" + _urlencode_next(target))


def _urlencode_next(target: str) -> str:
    return urlencode({"next": target})


def install_auth(app: Flask, settings: Settings) -> None:
    """Session cookie settings, the access hook, the login/logout pages, the admin route
    and the log redaction. Call before install_caching."""
    app.session_interface = _LazyKeySessionInterface()
    app.config.update(SESSION_COOKIE_NAME="ess_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=settings.session_secure,
                      PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME)
    install_log_redaction()
    scopes: dict[str, tuple[str | None, str]] = {}

    @app.before_request
    def _check_access() -> BaseResponse | None:
        refused = _refuse_query_token()
        if refused is not None or not settings.auth:
            return refused
        path = request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        if not scopes:
            scopes.update(_route_scopes())
        if path == "/api" or path.startswith("/api/"):
            return _check_api(scopes)
        return _check_ui()

    app.register_blueprint(bp)


class _LazyKeySessionInterface(SecureCookieSessionInterface):
    """The signing key is ESS_SECRET_KEY, or a secret kept in the app database, read on
    the first request (not at import or start-up). With ESS_AUTH=off there are no
    sessions, and while the app database cannot be read there is none either (the caller
    is signed out; /healthz and Bearer requests are unaffected)."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            portal: Portal = app.extensions["ess"]
            if not portal.settings.auth:
                return None
            try:
                app.secret_key = portal.secret("session")
            except SQLAlchemyError as exc:
                log.warning("session key unavailable (%s); serving without sessions", type(exc).__name__)
                return None
        return super().get_signing_serializer(app)


# ----- routes ------------------------------------------------------------------------------

@route(bp, "/api/admin/tokens/", summary="Every access token: name, scope, created, last used, revoked "
       "(never the token or its hash).", tag="admin")
def admin_tokens() -> Response:
    return jsonify(list_tokens(_portal().app_db))


def _safe_next(value: str | None) -> str:
    """A local path to return to after signing in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or value.startswith(
            "/login"):
        return "/"
    return value


def _client_key() -> str:
    window = int(time.time() // LOGIN_WINDOW_S)
    return f"authfail:{request.remote_addr or '-'}:{window}"


def _retry_after() -> int:
    return LOGIN_WINDOW_S - int(time.time()) % LOGIN_WINDOW_S


def _counter_cache() -> Any:
    """The flask-caching Cache behind current_app.extensions["ess_cache"] (shared by the
    workers when it is Redis; api/caching.py may wrap it)."""
    cache = current_app.extensions["ess_cache"]
    while not hasattr(cache, "inc"):  # SafeCache -> flask_caching.Cache -> the cachelib backend (has inc/add)
        cache = cache.cache
    return cache


def _failures() -> int:
    """Failed sign-ins of this address in this window (0 when the cache is down: the
    limit is defence in depth, a 256-bit token cannot be guessed anyway)."""
    try:
        return int(_counter_cache().get(_client_key()) or 0)
    except Exception as exc:  # redis ConnectionError and friends
        log.warning("sign-in failure counter unavailable (%s)", type(exc).__name__)
        return 0


def _count_failure() -> None:
    key = _client_key()
    try:
        cache = _counter_cache()
        if not cache.add(key, 1, timeout=LOGIN_WINDOW_S * 2):  # the first failure of a window sets its expiry
            cache.inc(key)
    except Exception as exc:
        log.warning("sign-in failure counter unavailable (%s)", type(exc).__name__)


LOGIN_HTML = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · ESS portal</title><link rel="stylesheet" href="/assets/vendor/bootstrap.min.css"></head>
<body class="bg-light"><main class="container" style="max-width: 28rem; margin-top: 12vh">
<h1 class="h4 mb-3">{brand} · {title}</h1>
<p class="text-muted small">{lead}</p>{alert}
<form method="post" action="/login" autocomplete="off">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="next" value="{next}">
<input type="hidden" name="lang" value="{lang}">
<label class="form-label small" for="token">{label}</label>
<input class="form-control mb-3" type="password" id="token" name="token" required autofocus spellcheck="false">
<button class="btn btn-primary" type="submit">{submit}</button>
<span class="ms-3 small">{other_lang}</span>
</form></main></body></html>"""


def _csrf_value() -> str:
    """The session's form token (made on first use) for the sign-in and sign-out forms."""
    csrf = session.get(CSRF_KEY)
    if not isinstance(csrf, str):
        csrf = session[CSRF_KEY] = secrets.token_urlsafe(16)
    return csrf


def _csrf_ok() -> bool:
    """True when the posted form carries the session's form token."""
    expected = session.get(CSRF_KEY)
    return isinstance(expected, str) and hmac.compare_digest(expected, str(request.form.get("csrf", "")))


def _login_page(lang: str, nxt: str, error: str | None, status: int, headers: dict[str, str] | None = None
                ) -> Response:
    t = get_translator(lang)
    csrf = _csrf_value()
    other = "ko" if lang == "en" else "en"
    body = LOGIN_HTML.format(
        lang=lang, title=html.escape(t("login_title")), brand=html.escape(t("brand")),
        lead=html.escape(t("login_lead")),
        alert=f'<div class="alert alert-danger py-2 small" role="alert">{html.escape(error)}</div>' if error else "",
        csrf=html.escape(csrf), next=html.escape(nxt), label=html.escape(t("login_token")),
        submit=html.escape(t("login_submit")),
        other_lang=f'<a href="/login?lang={other}&amp;next={html.escape(_urlencode_next(nxt)[5:])}">'
                   f'{"한국어" if other == "ko" else "English"}</a>')
    resp = Response(body, status=status, mimetype="text/html", headers=headers or {})
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The sign-in form (paste a token); on success the session names the token."""
    if not _portal().settings.auth:
        return redirect("/")
    lang = normalize_lang(request.values.get("lang") or request.accept_languages.best_match(LANGS))
    nxt = _safe_next(request.values.get("next"))
    t = get_translator(lang)
    if isinstance(session, NullSession):  # the session key is in the app database, which cannot be read
        return problem_response(503, "Service unavailable", "sign-in is unavailable while the app database "
                                "cannot be read; try again shortly", "auth_unavailable")
    if request.method == "GET":
        return _login_page(lang, nxt, None, 200)
    if _failures() >= LOGIN_MAX_FAILURES:
        wait = _retry_after()
        return _login_page(lang, nxt, t("login_throttled", seconds=wait), 429, {"Retry-After": str(wait)})
    if not _csrf_ok():
        return _login_page(lang, nxt, t("login_expired"), 400)
    principal = verify_token(_portal().app_db, request.form.get("token", "").strip())
    if principal is None:
        _count_failure()
        log.warning("failed sign-in from %s", request.remote_addr)
        return _login_page(lang, nxt, t("login_failed"), 401)
    session.clear()
    session[SESSION_KEY] = principal.name
    session.permanent = True
    log.info("signed in: token %s (%s) from %s", principal.name, principal.scope, request.remote_addr)
    return redirect(nxt)


LOGOUT_HTML = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · ESS portal</title><link rel="stylesheet" href="/assets/vendor/bootstrap.min.css"></head>
<body class="bg-light"><main class="container" style="max-width: 28rem; margin-top: 12vh">
<h1 class="h4 mb-3">{brand} · {title}</h1><p class="small">{question}</p>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}">
<button class="btn btn-primary" type="submit">{title}</button> <a class="ms-3 small" href="/">{back}</a>
</form></main></body></html>"""


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    """GET asks (a link on another site must not sign anyone out); POST with the form's
    CSRF value forgets the session and goes back to the sign-in page."""
    if not _portal().settings.auth:
        return redirect("/")
    if isinstance(session, NullSession):  # no session at all while the app database is down
        return redirect("/login")
    if SESSION_KEY not in session:
        return redirect("/login")
    if request.method == "POST":
        if not _csrf_ok():
            return problem_response(400, "Bad request", "the sign-out form expired or came from another site; "
                                    "open /logout and sign out again", "csrf_failed")
        session.clear()
        return redirect("/login")
    lang = normalize_lang(request.args.get("lang") or request.accept_languages.best_match(LANGS))
    t = get_translator(lang)
    body = LOGOUT_HTML.format(lang=lang, title=html.escape(t("logout")),
                              brand=html.escape(t("brand")), question=html.escape(t("logout_confirm")),
                              csrf=html.escape(_csrf_value()), back=html.escape(t("logout_back")))
    resp = Response(body, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


# ----- logs ---------------------------------------------------------------------------------

_QUERY_SECRET = re.compile(r"(?i)([?&;](?:" + "|".join(sorted(QUERY_TOKEN_PARAMS, key=len, reverse=True))
                           + r")=)[^&\s\"']*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_TOKEN_TEXT = re.compile(r"ess_[A-Za-z0-9_-]{20,}")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with token-like query parameters, Bearer credentials and ess_ tokens replaced."""
    text = _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _TOKEN_TEXT.sub("ess_" + REDACTED, text)


class RedactTokens(logging.Filter):
    """Rewrites a record whose message carries a credential (the access log's request line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactTokens()
REDACTED_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")  # filters do not reach child loggers


def install_log_redaction() -> None:
    """Attach RedactTokens to the loggers that print request lines and to the root
    logger's handlers (records from any logger pass through those)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
