"""The page shell: navigation bar and the page container."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import html

from components import ids


def make_shell(pages: Iterable[dict[str, Any]]) -> html.Div:
    """Navbar with one link per registered page, then the page container."""
    links = [dbc.NavItem(dbc.NavLink(p["name"], href=p["relative_path"], active="exact"))
             for p in sorted(pages, key=lambda p: p.get("order") or 0)]
    navbar = dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand("ESS portal", href="/"),
            dbc.Nav(links, navbar=True, id=ids.NAV),
        ], fluid=True),
        color="dark", dark=True, className="mb-3",
    )
    return html.Div([navbar, dbc.Container(dash.page_container, fluid=True)])
