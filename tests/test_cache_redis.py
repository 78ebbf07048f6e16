"""The shared response cache on a real Redis: two app instances (two gunicorn workers)
share entries under a per-session key prefix; entries expire; a dead Redis is a miss,
never an error. Keys of this session are deleted at the end.

Needs Redis at ESS_TEST_REDIS_URL (default redis://127.0.0.1:6379/15); skipped with the
reason when it does not answer.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DemoEnv

REDIS_URL = os.environ.get("ESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PAST = "/api/ess/operating-sites/{sid}/banks/1/racks/1/?start-time=2022-09-01T10:00:00&end-time=2022-09-01T10:01:00"


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix for this session; every key under it is deleted afterwards."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis does not answer at {REDIS_URL} ({exc}); start it with `make redis`")
    prefix = f"ess-test-{os.getpid()}-{secrets.token_hex(4)}:"
    yield prefix
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)
    assert not list(client.scan_iter(match=prefix + "*"))
    client.close()


def _make_app(demo_env: DemoEnv, **overrides: Any) -> Any:
    from app import create_app

    return create_app(ESS_DATA_DIR=str(demo_env.data_dir), ESS_REGISTRY=str(demo_env.registry_path), **overrides)


@pytest.fixture(scope="module")
def workers(demo_env: DemoEnv, redis_prefix: str) -> tuple[Any, Any]:
    """Two separate app instances on the same Redis and prefix, as two workers would be."""
    settings = {"ESS_CACHE_URL": REDIS_URL, "ESS_CACHE_PREFIX": redis_prefix, "ESS_CACHE_LIVE_S": 1}
    return _make_app(demo_env, **settings), _make_app(demo_env, **settings)


def _redis_keys(prefix: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return list(client.scan_iter(match=prefix + "*"))
    finally:
        client.close()


def test_one_worker_serves_what_the_other_computed(workers: tuple[Any, Any], redis_prefix: str) -> None:
    one, two = (w.test_client() for w in workers)
    url = PAST.format(sid=1) + "&page_size=7"
    first = one.get(url)
    assert first.status_code == 200 and "X-Cache" not in first.headers
    assert first.headers["Cache-Control"] == "public, max-age=300"
    second = two.get(url)
    assert second.status_code == 200 and second.headers["X-Cache"] == "hit"
    assert second.get_data() == first.get_data()
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Cache-Control"] == first.headers["Cache-Control"]
    assert any(k.decode().startswith(redis_prefix + "resp:") for k in _redis_keys(redis_prefix))
    again = two.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    fresh = one.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert fresh.status_code == 304


def test_entries_expire_with_their_lifetime(workers: tuple[Any, Any], redis_prefix: str) -> None:
    """A range that touches the present is cached for ESS_CACHE_LIVE_S (1 s here)."""
    one, two = (w.test_client() for w in workers)
    url = "/api/ess/operating-sites/1/banks/1/racks/1/latest/"
    first = one.get(url)
    assert first.status_code == 200 and first.headers["Cache-Control"] == "public, max-age=1"
    assert two.get(url).headers.get("X-Cache") == "hit"
    time.sleep(1.6)
    assert "X-Cache" not in two.get(url).headers  # expired in Redis: computed again


def test_dead_redis_is_a_miss_not_an_error(demo_env: DemoEnv, caplog: pytest.LogCaptureFixture) -> None:
    app = _make_app(demo_env, ESS_CACHE_URL="redis://127.0.0.1:1/0", ESS_CACHE_PREFIX="ess-dead:")
    client = app.test_client()
    url = PAST.format(sid=1)
    with caplog.at_level(logging.WARNING, logger="api.caching"):
        for _ in range(3):
            resp = client.get(url)
            assert resp.status_code == 200 and "X-Cache" not in resp.headers
            assert resp.headers["ETag"]
    warnings = [r for r in caplog.records if r.name == "api.caching"]
    assert len(warnings) == 1 and "response cache unavailable" in warnings[0].getMessage()


def test_cache_is_used_again_when_redis_returns(demo_env: DemoEnv, redis_prefix: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """After an error the cache is skipped for RETRY_S, then asked again by itself."""
    import api.caching

    monkeypatch.setattr(api.caching, "RETRY_S", 0.2)
    app = _make_app(demo_env, ESS_CACHE_URL=REDIS_URL, ESS_CACHE_PREFIX=redis_prefix)
    safe = app.extensions["ess_cache"]
    real = safe.cache
    safe.cache = _Broken()  # Redis "goes away" (the client raises as redis-py does)
    client = app.test_client()
    url = PAST.format(sid=2)
    assert client.get(url).status_code == 200
    safe.cache = real  # and comes back
    time.sleep(0.3)
    assert client.get(url).status_code == 200
    assert client.get(url).headers.get("X-Cache") == "hit"


class _Broken:
    def get(self, *_: Any) -> Any:
        import redis

        raise redis.exceptions.ConnectionError("Connection refused")

    set = get


def test_private_and_vary_under_auth(demo_env: DemoEnv, redis_prefix: str) -> None:
    """With access control on, shared proxies must not reuse a user's answer."""
    from flask import Flask, request

    from api.caching import install_caching
    from services.core.settings import load_settings

    settings = load_settings(env={}, ESS_AUTH="on", ESS_CACHE_URL=REDIS_URL, ESS_CACHE_PREFIX=redis_prefix)
    app = Flask(__name__)
    install_caching(app, settings)

    @app.get("/api/ess/thing/")
    def thing() -> Any:
        return {"n": 1}

    from flask import g

    from services.tokens import Principal

    scopes = {"Bearer alice": "raw", "Bearer carol": "raw", "Bearer bob": "deidentified"}

    @app.before_request
    def _principal() -> None:  # what api/auth.py sets, registered in the app before the cache
        header = request.headers.get("Authorization", "")
        if header in scopes:
            g.ess_principal = Principal(header.split()[1], scopes[header])

    app.before_request_funcs[None].insert(0, app.before_request_funcs[None].pop())
    client = app.test_client()
    alice = {"Authorization": "Bearer alice"}
    first = client.get("/api/ess/thing/", headers=alice)
    assert first.headers["Cache-Control"].startswith("private, max-age=")
    assert set(first.headers["Vary"].replace(" ", "").split(",")) >= {"Authorization", "Cookie"}
    assert client.get("/api/ess/thing/", headers=alice).headers["X-Cache"] == "hit"
    # a caller of another scope never gets alice's cached copy; one of the same scope shares it
    assert "X-Cache" not in client.get("/api/ess/thing/", headers={"Authorization": "Bearer bob"}).headers
    assert "X-Cache" not in client.get("/api/ess/thing/").headers
    assert client.get("/api/ess/thing/", headers={"Authorization": "Bearer carol"}).headers["X-Cache"] == "hit"
