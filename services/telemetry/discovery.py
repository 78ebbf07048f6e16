"""Discovery: what sites exist, how they are built and how fresh their data is."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from services.core.errors import NotFound, Unavailable, site_unavailable
from services.core.portal import Portal
from services.core.registry import COMPONENTS, Site
from services.storage.schema import time_column
from services.storage.sitestore import SiteStore


def get_time_span(store: SiteStore, component: str) -> tuple[datetime | None, datetime | None]:
    """First and last timestamp of a component table (aware, UTC); (None, None) if empty."""
    table = store.table(component)
    ts = time_column(table)
    try:
        with store.engine.connect() as conn:
            first = conn.execute(sa.select(ts).order_by(ts.asc()).limit(1)).scalar()
            last = conn.execute(sa.select(ts).order_by(ts.desc()).limit(1)).scalar()
    except sa.exc.OperationalError as exc:
        raise site_unavailable(store.site.id) from exc
    return first, last


def _local_iso(value: datetime | None, site: Site) -> str | None:
    return None if value is None else value.astimezone(site.tz).isoformat()


def describe_site(portal: Portal, site: Site, with_fields: bool = False) -> dict[str, Any]:
    """One site as the discovery API shows it."""
    store = portal.store(site.id)
    components: dict[str, Any] = {}
    for comp in COMPONENTS:
        if comp not in site.tables:
            continue
        try:
            first, last = get_time_span(store, comp)
        except NotFound:
            continue
        entry: dict[str, Any] = {"table": site.tables[comp], "first_timestamp": _local_iso(first, site),
                                 "last_timestamp": _local_iso(last, site)}
        if with_fields:
            entry["fields"] = [
                {"name": f.api_name, "type": f.kind, "unit": f.unit, "description": f.description,
                 "description_ko": f.description_ko, "sensitive": f.sensitive}
                for f in store.fields(comp)
            ]
        components[comp] = entry
    return {
        "id": site.id, "name": site.name, "name_ko": site.name_ko, "timezone": site.timezone,
        "cells_per_rack": site.cells_per_rack, "temperature_sensors_per_rack": site.temperature_sensors_per_rack,
        "banks": [{"id": b.id, "racks": list(b.racks)} for b in site.banks],
        "components": components,
    }


UNREACHABLE = "database unreachable"


def list_sites(portal: Portal) -> list[dict[str, Any]]:
    """Every registered site with topology and data freshness. A site whose database is
    unreachable is still listed (topology from the registry, no components) with
    `"unavailable": "database unreachable"`, so one lost site does not hide the others."""
    out = []
    for site in portal.registry.sites:
        try:
            out.append(describe_site(portal, site))
        except (Unavailable, sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError):
            out.append({"id": site.id, "name": site.name, "name_ko": site.name_ko, "timezone": site.timezone,
                        "cells_per_rack": site.cells_per_rack,
                        "temperature_sensors_per_rack": site.temperature_sensors_per_rack,
                        "banks": [{"id": b.id, "racks": list(b.racks)} for b in site.banks],
                        "components": {}, "unavailable": UNREACHABLE})
    return out
