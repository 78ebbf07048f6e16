"""Overview: one card per site (the landing page)."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import html
from flask import current_app

from components import ids
from components.sites import make_site_grid
from services.errors import EssError
from services.sites import list_sites

dash.register_page(__name__, path="/", name="Overview", order=0)


def layout(**_query: str) -> html.Div:
    portal = current_app.extensions["ess"]
    try:
        sites = list_sites(portal)
    except EssError as exc:
        alert = dbc.Alert([html.Strong("No sites to show. "), str(exc)], color="warning", id=ids.OVERVIEW_ALERT)
        return html.Div([html.H2("Operating sites"), alert])
    return html.Div([html.H2("Operating sites"), html.Div(make_site_grid(sites), id=ids.OVERVIEW_CARDS)])
