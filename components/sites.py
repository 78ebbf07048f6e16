"""Builders for site cards (overview page)."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import html


def make_site_card(site: dict[str, Any]) -> dbc.Card:
    """One card: name, topology and data freshness of a site (from services.sites)."""
    racks = sum(len(b["racks"]) for b in site["banks"])
    topology = " + ".join(f"bank {b['id']}: {len(b['racks'])} racks" for b in site["banks"])
    rack = site["components"].get("rack", {})
    last = rack.get("last_timestamp") or "no data"
    return dbc.Card(
        dbc.CardBody([
            html.H5(f"{site['id']} · {site['name']}", className="card-title"),
            html.Div(site.get("name_ko", ""), className="text-muted small"),
            html.P([f"{len(site['banks'])} bank(s), {racks} racks ({topology}); ",
                    f"{site['cells_per_rack']} cells per rack"], className="mb-1"),
            html.P(["Data from ", html.Code(rack.get("first_timestamp") or "—"), " to ", html.Code(last)],
                   className="mb-1 small"),
            html.A("JSON", href=f"/api/ess/operating-sites/{site['id']}/", className="card-link"),
        ]),
        className="h-100", id=f"site-card-{site['id']}",
    )


def make_site_grid(sites: list[dict[str, Any]]) -> dbc.Row:
    """A responsive grid of site cards."""
    return dbc.Row([dbc.Col(make_site_card(s), md=6, xl=4, className="mb-3") for s in sites])
