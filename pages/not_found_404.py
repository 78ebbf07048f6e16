"""The page for an unknown address (Dash Pages uses the module named `not_found_404`):
what happened and a link to every page, in the chosen language."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import html

from components import ids
from services.core.i18n import get_translator

dash.register_page(__name__, path="/404", title="404 · ESS portal")


def layout(lang: str | None = None, **_query: str) -> html.Div:
    """Title, explanation and the pages' links (nav labels), in `lang`."""
    t = get_translator(lang or "en")
    pages = sorted((p for p in dash.page_registry.values() if p.get("nav_key")), key=lambda p: p.get("order") or 0)
    links = [dbc.ListGroupItem(t(p["nav_key"]), href=p["relative_path"], action=True) for p in pages]
    return html.Div([
        html.H2(t("not_found_title"), id=ids.NOT_FOUND_TITLE, className="h4"),
        html.P(t("not_found_body"), className="text-muted"),
        dbc.ListGroup(links, className="mb-3 ess-not-found-links", style={"maxWidth": "24rem"}),
        html.P(t("not_found_api"), className="small text-muted"),
    ], className="ess-not-found")
