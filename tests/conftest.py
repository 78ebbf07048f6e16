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
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.core.registry import Bank, Site, demo_sites, format_registry
from services.demo.writer import fill_site
from services.storage.engines import dispose_engines

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


# ----- one demo portal for the whole session: SQLite sites 1-3, PostgreSQL sites 101-103 --
DEMO_DAY = "2022-09-01"
PG_OFFSET = 100


def small_demo_sites() -> list[Site]:
    """The three demo sites with fewer racks (same column sets), for fast fixtures."""
    one, two, three = demo_sites()
    return [
        dataclasses.replace(one, banks=(Bank(1, (1, 2)),)),
        dataclasses.replace(two, banks=(Bank(1, (1, 2)), Bank(2, (1,)))),
        dataclasses.replace(three, banks=(Bank(1, (1, 2)),)),
    ]


@dataclasses.dataclass
class DemoEnv:
    data_dir: Path
    registry_path: Path
    sites: dict[int, Site]


def site_id_for(backend: str, base_id: int) -> int:
    """Site id of a demo site on a backend (PostgreSQL copies are numbered +100)."""
    return base_id + (PG_OFFSET if backend == "postgresql" else 0)


@pytest.fixture(scope="session")
def demo_env(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> DemoEnv:
    """Generated demo data for one local day on both databases, and its registry."""
    data_dir = tmp_path_factory.mktemp("demo")
    day = date.fromisoformat(DEMO_DAY)
    sites: dict[int, Site] = {}
    for base in small_demo_sites():
        lite = dataclasses.replace(base, database_url=f"sqlite:///{data_dir / f'site{base.id}.sqlite'}",
                                   demo_anchor=day)
        pg = dataclasses.replace(base, id=base.id + PG_OFFSET, database_url=pg_url, schema=f"site{base.id}",
                                 demo_anchor=day)
        for site in (lite, pg):
            start = datetime.combine(day, time(0), tzinfo=site.tz)
            fill_site(site, start, start + timedelta(days=1))
            sites[site.id] = site
    registry = data_dir / "sites.toml"
    registry.write_text(format_registry(list(sites.values())), encoding="utf-8")
    return DemoEnv(data_dir, registry, sites)


@pytest.fixture(scope="session")
def app(demo_env: DemoEnv) -> Any:
    """The one Flask + Dash app of the session, on the demo registry."""
    from app import create_app

    return create_app(ESS_DATA_DIR=str(demo_env.data_dir), ESS_REGISTRY=str(demo_env.registry_path))


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()
