"""Dash component ids, page-prefixed, in one place."""

NAV = "nav"
OVERVIEW_CARDS = "overview-cards"
OVERVIEW_ALERT = "overview-alert"
