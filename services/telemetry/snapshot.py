"""The site snapshot: the newest row of every bank, rack, PCS and ETC in one call
(live views poll this instead of one request per rack)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.core.errors import NotFound, site_unavailable
from services.storage.sitestore import SiteStore
from services.telemetry.rows import fetch_latest, make_selector, resolve_columns


def get_snapshot(store: SiteStore) -> dict[str, Any]:
    """{"banks": [...], "racks": [...], "pcs": row|None, "etc": row|None}; every entry
    is the newest row of its bank or rack (None where there is none yet). All queries run
    on one pooled connection (one checkout and pre-ping instead of one per rack)."""
    site = store.site
    try:
        with store.engine.connect() as conn:

            def latest(component: str, bank: int | None = None, rack: int | None = None) -> dict[str, Any] | None:
                try:
                    sel = make_selector(store, component, bank, rack)
                    return fetch_latest(sel, resolve_columns(sel), conn)
                except NotFound:
                    return None

            return {
                "operating_site": site.id,
                "banks": [latest("bank", b.id) for b in site.banks],
                "racks": [latest("rack", b, r) for b, r in site.rack_keys],
                "pcs": latest("pcs") if "pcs" in site.tables else None,
                "etc": latest("etc") if "etc" in site.tables else None,
            }
    except sa.exc.OperationalError as exc:
        raise site_unavailable(site.id) from exc
