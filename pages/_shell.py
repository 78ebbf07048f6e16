"""Callbacks of the shell (not a page: Dash Pages skips modules starting with `_`;
imported by app._create_dash): translated navigation that keeps the selection."""

from __future__ import annotations

from typing import Any

import dash
from dash import ALL, Input, Output, State, callback

from components import ids
from components.layout import make_nav_href, make_nav_labels, make_user_box
from pages._selection import get_portal
from services.core.access import current_principal
from services.core.i18n import get_translator


@callback(
    Output({"type": ids.NAV_LINK, "page": ALL}, "children"),
    Output({"type": ids.NAV_LINK, "page": ALL}, "href"),
    Output({"type": ids.NAV_LINK, "page": ALL}, "active"),
    Output(ids.BRAND, "children"),
    Input(ids.LANG, "value"),
    Input(ids.PAGES_LOCATION, "pathname"),
    Input(ids.PAGES_LOCATION, "search"),
    State({"type": ids.NAV_LINK, "page": ALL}, "id"),
)
def update_nav(lang: str, pathname: str | None, search: str | None,
               link_ids: list[dict[str, Any]]) -> tuple[list[str], list[str], list[bool], str]:
    """Labels in the chosen language; links carry site/bank/rack/range; the current page active."""
    keys = {p["path"]: p.get("nav_key", "") for p in dash.page_registry.values()}
    labels = make_nav_labels({k: v for k, v in keys.items() if v}, lang)
    paths = [i["page"] for i in link_ids]
    return ([labels.get(p, p) for p in paths], [make_nav_href(p, search) for p in paths],
            [p == (pathname or "/") for p in paths], get_translator(lang)("brand"))


@callback(Output(ids.USER, "children"), Input(ids.LANG, "value"), Input(ids.PAGES_LOCATION, "pathname"))
def update_user(lang: str, _pathname: str | None) -> list[Any]:
    """Who is signed in, with a sign-out link (nothing when ESS_AUTH=off)."""
    principal = current_principal(get_portal())
    return make_user_box(principal.name if principal else None, principal.scope if principal else None, lang)
