"""HTTP caching for the JSON API: `ETag`/`Cache-Control` on every 200, and a shared
response cache (flask-caching: in-process by default, Redis with ESS_CACHE_URL).

Responses over closed past ranges are cached for ESS_CACHE_DEFAULT_S; anything that
touches the present (live ranges, `latest`, snapshots, discovery) for ESS_CACHE_LIVE_S.
Adapters state the range they served with `note_range(tr)`.

Redis is an accelerator, never a dependency: keys carry ESS_CACHE_PREFIX (several portals
can share one Redis); any Redis error is a cache miss, logged at most once a minute, and
for RETRY_S seconds after an error the cache is not asked at all, so a dead Redis costs
no request more than one short timeout; then it is used again by itself.

With access control on (ESS_AUTH=on), responses are `Cache-Control: private` with
`Vary: Authorization, Cookie`, and the shared cache is partitioned by scope: api/auth.py
authorises every request for its path before the cache is asked, so a cached body is only
served to a caller whose scope may see it (all `raw` callers share one entry per URL).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_caching import Cache

from services.core.settings import Settings
from services.telemetry.timerange import TimeRange

log = logging.getLogger(__name__)

LIVE_MARGIN = timedelta(minutes=5)  # rows may still arrive this long after their time
REDIS_TIMEOUT_S = 1.0  # connect and read timeout of a cache call: a slow cache is a miss
RETRY_S = 5.0  # after a cache error, how long requests skip the cache
LOG_EVERY_S = 60.0  # at most one cache-error line per this many seconds


def make_cache(app: Flask, settings: Settings) -> Cache:
    """The response cache: Redis when ESS_CACHE_URL is set, else in-process."""
    if settings.cache_url:
        config: dict[str, Any] = {
            "CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": settings.cache_url,
            "CACHE_KEY_PREFIX": settings.cache_prefix,
            "CACHE_OPTIONS": {"socket_connect_timeout": REDIS_TIMEOUT_S, "socket_timeout": REDIS_TIMEOUT_S,
                              "health_check_interval": 30},
        }
    else:
        config = {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 2000}
    config["CACHE_DEFAULT_TIMEOUT"] = settings.cache_default_s
    return Cache(app, config=config)


class SafeCache:
    """get/set on the response cache that never raise: an error is a miss (see module doc)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._logged_at = -LOG_EVERY_S
        self.errors = 0

    def get(self, key: str) -> Any:
        if time.monotonic() < self._skip_until:
            return None
        try:
            return self.cache.get(key)
        except Exception as exc:  # redis ConnectionError, TimeoutError, ResponseError, a bad pickle...
            self._failed(exc)
            return None

    def set(self, key: str, value: Any, timeout: int) -> None:
        if time.monotonic() < self._skip_until:
            return
        try:
            self.cache.set(key, value, timeout=timeout)
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self.errors += 1
            self._skip_until = now + RETRY_S
            if now - self._logged_at < LOG_EVERY_S:
                return
            self._logged_at = now
        log.warning("response cache unavailable (%s: %s); serving without it, retrying in %.0f s "
                    "(logged at most once a minute)", type(exc).__name__, exc, RETRY_S)


def note_range(tr: TimeRange) -> None:
    """Record the time range a response covers (decides its cache lifetime)."""
    g.ess_range_end = tr.end


def _max_age(settings: Settings) -> int:
    end: datetime | None = g.get("ess_range_end")
    if end is not None and end < datetime.now(UTC) - LIVE_MARGIN:
        return settings.cache_default_s
    return settings.cache_live_s


def _key(auth: bool) -> str:
    if not auth:
        return "resp:" + request.full_path
    # api/auth.py has already authorised this request for this path (it runs first) and a
    # response depends only on the path and the caller's scope, so callers of one scope share
    # entries; a request without a principal never reaches a cached body.
    principal = g.get("ess_principal")
    return f"resp:{principal.scope if principal is not None else '-'}:{request.full_path}"


def _cacheable() -> bool:
    return request.method == "GET" and request.path.startswith("/api/") and "download" not in request.path


def install_caching(app: Flask, settings: Settings) -> None:
    """Serve cached JSON for repeated GETs under /api and add validators to responses."""
    cache = SafeCache(make_cache(app, settings))
    app.extensions["ess_cache"] = cache
    auth = settings.auth

    @app.before_request
    def _from_cache() -> Response | None:
        if not _cacheable():
            return None
        hit = cache.get(_key(auth))
        if hit is None:
            return None
        body, mimetype, max_age, *etag = hit  # entries written before the ETag was stored have 3 items
        resp = current_app.response_class(body, mimetype=mimetype)
        resp.headers["X-Cache"] = "hit"
        if etag:  # SHA-1 of a 1.6 MB page: ~1 ms CPU per hit; computed once, when the entry is stored
            resp.set_etag(etag[0])
        return _validators(resp, max_age, auth)

    @app.after_request
    def _to_cache(resp: Response) -> Response:
        if (not _cacheable() or resp.status_code != 200 or resp.is_streamed or resp.mimetype != "application/json"
                or resp.headers.get("X-Cache")):
            return resp
        max_age = _max_age(settings)
        resp.add_etag()
        cache.set(_key(auth), (resp.get_data(), resp.mimetype, max_age, resp.get_etag()[0]), timeout=max_age)
        return _validators(resp, max_age, auth)


def _validators(resp: Response, max_age: int, auth: bool) -> Response:
    if auth:  # a shared proxy must not hand one user's answer to another
        resp.headers["Cache-Control"] = f"private, max-age={max_age}"
        resp.vary.update(("Authorization", "Cookie"))
    else:
        resp.headers["Cache-Control"] = f"public, max-age={max_age}"
    resp.add_etag()
    resp.make_conditional(request)  # in place: 304 with an empty body when the ETag matches
    return resp
