"""Schemathesis against /api/openapi.json, in process over WSGI: every operation with a
small, reproducible number of generated requests (valid and invalid), and every response
must be no 5xx, a documented status, a documented content type and match its schema.

Part of the time the path ids and the time range are swapped for real ones,
so requests reach both databases rather than stopping at a 404 or a 400."""

from __future__ import annotations

import importlib
import pkgutil
import zlib
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import api
from api.spec import make_openapi
from tests.small_env import PG_SITE, SQLITE_SITE, SmallEnv, build_small_env, make_small_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
REAL_IDS = {"site": (SQLITE_SITE, PG_SITE), "bank": (1,), "rack": (1, 2)}
DATA_TYPES = ("bank", "rack", "pcs", "etc")
REAL_RANGE = {"start-time": "2022-09-01T10:02:00", "end-time": "2022-09-01T10:04:00"}


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> SmallEnv:
    return build_small_env(Path(tmp_path_factory.mktemp("fuzz")), pg_url)


def _pick(value: Any, choices: tuple[Any, ...]) -> Any:
    """A real value two times in three, chosen by the generated one (deterministic)."""
    n = zlib.crc32(repr(value).encode())
    return value if n % 3 == 0 else choices[n % len(choices)]


def _real_path_ids(path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not path_parameters:
        return path_parameters
    out = dict(path_parameters)
    for name, value in path_parameters.items():
        if name in REAL_IDS:
            out[name] = _pick(value, REAL_IDS[name])
        elif name == "data_type":
            out[name] = _pick(value, DATA_TYPES)
    return out


def _real_range(query: dict[str, Any] | None) -> dict[str, Any] | None:
    """Half of the requests that ask for a range ask for one that holds rows."""
    if not isinstance(query, dict) or not any(k in query for k in ("date", "start-time", "end-time")):
        return query
    if zlib.crc32(repr(sorted(query.items(), key=str)).encode()) % 2:
        return query
    out = {k: v for k, v in query.items() if k not in ("date", "time")}
    out.update(REAL_RANGE)
    return out


def _document(auth: bool = False) -> dict[str, Any]:
    """The document the app serves (ESS_AUTH off or on): the route records of every API module."""
    for module in pkgutil.iter_modules(api.__path__):
        importlib.import_module(f"api.{module.name}")
    return make_openapi(auth=auth)


@pytest.fixture(scope="module")
def fuzz_app(fuzz_env: SmallEnv) -> Any:
    return make_small_app(fuzz_env)


# Built at collection from the same route records the app serves (schemathesis' lazy
# from_fixture loader does not run under pytest 9); the test below pins that the app
# serves exactly this document.
schema = schemathesis.openapi.from_dict(_document())


def test_the_fuzzed_document_is_the_served_one(fuzz_app: Any) -> None:
    assert fuzz_app.test_client().get("/api/openapi.json").get_json() == schema.raw_schema


@schema.parametrize()
@settings(max_examples=15, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi_document(case: Any, fuzz_app: Any) -> None:
    # in every phase (the coverage phase does not run schemathesis' map_* hooks)
    case.path_parameters = _real_path_ids(case.path_parameters)
    case.query = _real_range(case.query)
    case.call_and_validate(app=fuzz_app, checks=CHECKS)


# ----- the same with ESS_AUTH=on: no token, or a token of each scope ------------------------
schema_auth = schemathesis.openapi.from_dict(_document(auth=True))
CALLERS = (None, "deidentified", "raw", "admin")


@pytest.fixture(scope="module")
def fuzz_auth_app(fuzz_env: SmallEnv) -> tuple[Any, dict[str, str]]:
    from services.tokens import create_token

    app = make_small_app(fuzz_env, ESS_AUTH="on")
    engine = app.extensions["ess"].app_db
    return app, {scope: create_token(engine, f"fuzz-{scope}", scope) for scope in CALLERS if scope}


def test_the_fuzzed_auth_document_is_the_served_one(fuzz_auth_app: tuple[Any, dict[str, str]]) -> None:
    app, _ = fuzz_auth_app
    assert app.test_client().get("/api/openapi.json").get_json() == schema_auth.raw_schema


@schema_auth.parametrize()
@settings(max_examples=4, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_with_access_control_matches_its_document(case: Any, fuzz_auth_app: tuple[Any, dict[str, str]]
                                                       ) -> None:
    """401 and 403 are documented problems too; every caller gets a documented answer."""
    app, tokens = fuzz_auth_app
    case.path_parameters = _real_path_ids(case.path_parameters)
    case.query = _real_range(case.query)
    caller = CALLERS[zlib.crc32(repr((case.path_parameters, case.query)).encode()) % len(CALLERS)]
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if caller:
        headers["Authorization"] = f"Bearer {tokens[caller]}"
    case.headers = headers
    case.call_and_validate(app=app, checks=CHECKS)
