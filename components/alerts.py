"""Alerts: one rendering of every error a page can meet, with what to do about it."""

from __future__ import annotations

from collections.abc import Sequence

import dash_bootstrap_components as dbc
from dash import html

from components.urlstate import Problem
from services.core.errors import EssError, NotComputed
from services.core.i18n import MESSAGES, get_translator

_HINT_BY_CODE = {"too_many_rows": "hint_too_many_rows", "config_error": "hint_config_error"}


def make_error_alert(exc: EssError, lang: str) -> dbc.Alert:
    """A service error as an alert: translated title and hint, the service's detail; a
    result not computed yet says which and how to compute it."""
    if isinstance(exc, NotComputed):
        return make_not_computed_alert(f"what_{exc.what}", lang)
    t = get_translator(lang)
    status = exc.status if f"error_{exc.status}" in MESSAGES else (400 if 400 <= exc.status < 500 else 500)
    hint = _HINT_BY_CODE.get(exc.code, f"hint_{status}")
    colour = "warning" if 400 <= status < 500 else "danger"
    return dbc.Alert([html.H6(t(f"error_{status}"), className="alert-heading mb-1"),
                      html.Div(exc.detail, className="mb-1"), html.Div(t(hint), className="small")],
                     color=colour, className=f"mb-3 ess-alert code-{exc.code}")


def make_problems_alert(problems: Sequence[Problem], lang: str) -> dbc.Alert | None:
    """The URL parameters a page could not use, or None when there are none."""
    if not problems:
        return None
    t = get_translator(lang)
    items = [html.Li([html.Code(f"{p.param}={p.value}"), " — ", t(p.key, value=p.value)]) for p in problems]
    body = [html.H6(t("problem_title"), className="alert-heading mb-1"), html.Ul(items, className="mb-1"),
            html.Div(t("problem_hint"), className="small")]
    return dbc.Alert(body, color="warning", className="mb-3 ess-alert code-invalid_url")


def make_not_computed_alert(what_key: str, lang: str) -> dbc.Alert:
    """For indices and events whose job has not run yet for the site."""
    t = get_translator(lang)
    return dbc.Alert([html.H6(t("not_computed_title"), className="alert-heading mb-1"),
                      html.Div(t("not_computed_body", what=t(what_key)), className="mb-1"),
                      html.Div(t("not_computed_hint"), className="small")],
                     color="info", className="mb-3 ess-alert code-not_computed")


def make_no_data_alert(newest: str | None, lang: str) -> dbc.Alert:
    """An empty range: say where the data is."""
    t = get_translator(lang)
    body = t("no_data_hint", newest=newest) if newest else t("no_data_empty")
    return dbc.Alert([html.H6(t("no_data_title"), className="alert-heading mb-1"), html.Div(body, className="small")],
                     color="secondary", className="mb-3 ess-alert code-no_data")
