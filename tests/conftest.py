"""Shared fixtures: real SQLite files and a real PostgreSQL database per test session.

PostgreSQL: a database `ess_test_<pid>_<random>` is created on the server named by
ESS_TEST_PG_ADMIN_URL (default: the local cluster, user postgres, trust auth) and dropped
at the end of the session. Every test that takes `backend` runs on both databases.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.registry import Site
from services.storage import dispose_engines

PG_ADMIN_URL = os.environ.get("ESS_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this session (dropped afterwards)."""
    name = f"ess_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def place_site(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[Site], Site]:
    """Return a function that moves a Site onto a fresh, empty location on `backend`:
    a new SQLite file under tmp_path, or a new schema in the session's PostgreSQL database."""
    counter = iter(range(1000))

    def place(site: Site) -> Site:
        n = next(counter)
        if backend == "sqlite":
            return dataclasses.replace(site, database_url=f"sqlite:///{tmp_path / f'site{site.id}_{n}.sqlite'}",
                                       schema="")
        url = request.getfixturevalue("pg_url")
        schema = f"t{secrets.token_hex(4)}_s{site.id}"
        return dataclasses.replace(site, database_url=url, schema=schema)

    return place
