"""HTTP caching for the JSON API: `ETag`/`Cache-Control` on every 200, and a shared
response cache (flask-caching: in-process by default, Redis with ESS_CACHE_URL).

Responses over closed past ranges are cached for ESS_CACHE_DEFAULT_S; anything that
touches the present (live ranges, `latest`, snapshots, discovery) for ESS_CACHE_LIVE_S.
Adapters state the range they served with `note_range(tr)`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_caching import Cache

from services.settings import Settings
from services.timeparse import TimeRange

LIVE_MARGIN = timedelta(minutes=5)  # rows may still arrive this long after their time


def make_cache(app: Flask, settings: Settings) -> Cache:
    """The response cache: Redis when ESS_CACHE_URL is set, else in-process."""
    if settings.cache_url:
        config: dict[str, Any] = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": settings.cache_url,
                                  "CACHE_KEY_PREFIX": "ess:"}
    else:
        config = {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 2000}
    config["CACHE_DEFAULT_TIMEOUT"] = settings.cache_default_s
    return Cache(app, config=config)


def note_range(tr: TimeRange) -> None:
    """Record the time range a response covers (decides its cache lifetime)."""
    g.ess_range_end = tr.end


def _max_age(settings: Settings) -> int:
    end: datetime | None = g.get("ess_range_end")
    if end is not None and end < datetime.now(UTC) - LIVE_MARGIN:
        return settings.cache_default_s
    return settings.cache_live_s


def _key() -> str:
    return "resp:" + request.full_path


def install_caching(app: Flask, settings: Settings) -> None:
    """Serve cached JSON for repeated GETs under /api and add validators to responses."""
    cache = make_cache(app, settings)
    app.extensions["ess_cache"] = cache

    @app.before_request
    def _from_cache() -> Response | None:
        if request.method != "GET" or not request.path.startswith("/api/") or "download" in request.path:
            return None
        hit = cache.get(_key())
        if hit is None:
            return None
        body, mimetype, max_age = hit
        resp = current_app.response_class(body, mimetype=mimetype)
        resp.headers["X-Cache"] = "hit"
        return _validators(resp, max_age)

    @app.after_request
    def _to_cache(resp: Response) -> Response:
        if (request.method != "GET" or not request.path.startswith("/api/") or resp.status_code != 200
                or resp.is_streamed or resp.mimetype != "application/json" or resp.headers.get("X-Cache")):
            return resp
        max_age = _max_age(settings)
        cache.set(_key(), (resp.get_data(), resp.mimetype, max_age), timeout=max_age)
        return _validators(resp, max_age)


def _validators(resp: Response, max_age: int) -> Response:
    resp.headers["Cache-Control"] = f"public, max-age={max_age}"
    resp.add_etag()
    return resp.make_conditional(request)
