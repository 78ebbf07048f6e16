"""A small portal for the fuzz and security tests: site 1 on SQLite and site 101 on
PostgreSQL, each with a few minutes of generated data and its rollups, and an app on them.

Seconds to build, where the session's `demo_env` takes minutes."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from services.core.registry import Bank, Site, demo_sites, format_registry
from services.demo.writer import fill_site

DAY = date(2022, 9, 1)
START = time(10, 0)  # local time of the first row
MINUTES = 10
SQLITE_SITE, PG_SITE = 1, 101


@dataclasses.dataclass
class SmallEnv:
    data_dir: Path
    registry_path: Path
    sites: dict[int, Site]


def build_small_env(data_dir: Path, pg_url: str, minutes: int = MINUTES) -> SmallEnv:
    """Site 1 (SQLite) and site 101 (PostgreSQL, its own schema): bank 1 with racks 1 and 2,
    `minutes` of 1 Hz data from 2022-09-01 10:00 local time, rollups up to date."""
    base = dataclasses.replace(demo_sites()[0], banks=(Bank(1, (1, 2)),), demo_anchor=DAY)
    lite = dataclasses.replace(base, id=SQLITE_SITE, database_url=f"sqlite:///{data_dir / 'site1.sqlite'}")
    pg = dataclasses.replace(base, id=PG_SITE, database_url=pg_url, schema=f"small{secrets.token_hex(3)}")
    sites = {}
    for site in (lite, pg):
        start = datetime.combine(DAY, START, tzinfo=site.tz)
        fill_site(site, start, start + timedelta(minutes=minutes))
        sites[site.id] = site
    registry = data_dir / "sites.toml"
    registry.write_text(format_registry(list(sites.values())), encoding="utf-8")
    return SmallEnv(data_dir, registry, sites)


def make_small_app(env: SmallEnv, **overrides: Any) -> Any:
    """An app on the small registry (its own app database under data_dir)."""
    from app import create_app

    return create_app(ESS_DATA_DIR=str(env.data_dir), ESS_REGISTRY=str(env.registry_path), **overrides)
