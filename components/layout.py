"""The page shell: navigation bar with the language switch, then the page container."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import dash
import dash_bootstrap_components as dbc
from dash import html

from components import ids
from services.core.i18n import DEFAULT_LANG, LANG_NAMES, get_translator

CARRIED_PARAMS = ("site", "bank", "rack", "start", "end", "range")  # kept when moving between pages


def make_lang_switch(value: str = DEFAULT_LANG) -> dbc.RadioItems:
    """English / 한국어, remembered in the browser (localStorage)."""
    return dbc.RadioItems(
        id=ids.LANG, options=[{"label": name, "value": code} for code, name in LANG_NAMES.items()], value=value,
        inline=True, persistence=True, persistence_type="local", className="btn-group ess-lang",
        inputClassName="btn-check", labelClassName="btn btn-outline-light btn-sm",
        labelCheckedClassName="active",
    )


def make_shell(pages: Iterable[dict[str, Any]]) -> html.Div:
    """Navbar with one link per registered page, then the page container."""
    t = get_translator(DEFAULT_LANG)
    links = [dbc.NavItem(dbc.NavLink(t(p["nav_key"]) if p.get("nav_key") else p["name"], href=p["relative_path"],
                                     id={"type": ids.NAV_LINK, "page": p["path"]}))
             for p in sorted(pages, key=lambda p: p.get("order") or 0) if p.get("nav_key")]  # not the 404 page
    navbar = dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand([html.Span("▮", className="ess-brand-mark me-2"), html.Span(t("brand"), id=ids.BRAND)],
                            href="/"),
            dbc.Nav(links, navbar=True, id=ids.NAV, className="me-auto flex-wrap"),
            make_lang_switch(),
            html.Div(id=ids.USER, className="ms-3 small text-light ess-user"),
        ], fluid=True, className="flex-wrap"),
        color="dark", dark=True, className="mb-3 ess-navbar",
    )
    return html.Div([navbar, dbc.Container(dash.page_container, fluid=True, className="ess-page pb-5")])


def make_nav_href(path: str, search: str | None) -> str:
    """A nav link that keeps the site, bank, rack and time range of the current page."""
    query = {k: v for k, v in parse_qsl((search or "").lstrip("?")) if k in CARRIED_PARAMS}
    return path + ("?" + urlencode(query, safe=",:") if query else "")


def make_nav_labels(nav_keys: Mapping[str, str], lang: str) -> dict[str, str]:
    """Translated label per page path."""
    t = get_translator(lang)
    return {path: t(key) for path, key in nav_keys.items()}


def make_user_box(name: str | None, scope: str | None, lang: str) -> list[Any]:
    """The signed-in token and a sign-out link (empty when access control is off)."""
    if not name:
        return []
    t = get_translator(lang)
    return [html.Span(t("signed_in_as", name=name, scope=scope or ""), className="me-2"),
            html.A(t("logout"), href="/logout", className="link-light")]
