"""Dash component ids, page-prefixed, in one place."""

from __future__ import annotations

from dataclasses import dataclass

# Dash Pages' own dcc.Location inside dash.page_container (refresh="callback-nav"): pages
# write their state into its `search`, so the URL is the one source of page state.
PAGES_LOCATION = "_pages_location"

# ----- shell ------------------------------------------------------------------------
NAV = "nav"
NAV_LINK = "nav-link"  # pattern {"type": NAV_LINK, "page": <path>}
BRAND = "shell-brand"
LANG = "shell-lang"
USER = "shell-user"  # signed-in token and sign-out link (ESS_AUTH=on)


@dataclass(frozen=True)
class SelectionIds:
    """Ids of the selection bar of one page: `<page>-site`, `<page>-bank`, ..."""

    page: str

    def _id(self, name: str) -> str:
        return f"{self.page}-{name}"

    @property
    def state(self) -> str:  # dcc.Store holding the page's parsed URL state
        return self._id("state")

    @property
    def alert(self) -> str:
        return self._id("alert")

    @property
    def site(self) -> str:
        return self._id("site")

    @property
    def bank(self) -> str:
        return self._id("bank")

    @property
    def rack(self) -> str:
        return self._id("rack")

    @property
    def component(self) -> str:
        return self._id("component")

    @property
    def fields(self) -> str:
        return self._id("fields")

    @property
    def start(self) -> str:
        return self._id("start")

    @property
    def end(self) -> str:
        return self._id("end")

    @property
    def quick(self) -> str:  # pattern {"type": quick, "span": "24h"}
        return self._id("quick")

    @property
    def title(self) -> str:
        return self._id("title")

    @property
    def refresh(self) -> str:  # the auto-refresh switch (remembered per page in the browser)
        return self._id("refresh")

    @property
    def interval(self) -> str:  # the auto-refresh timer, enabled by the switch
        return self._id("interval")


# ----- overview ---------------------------------------------------------------------
OVERVIEW = SelectionIds("overview")
OVERVIEW_CARDS = "overview-cards"
OVERVIEW_ALERT = "overview-alert"
NOT_FOUND_TITLE = "not-found-title"
OVERVIEW_INTERVAL = "overview-interval"  # the cards refresh on it

# ----- live monitoring --------------------------------------------------------------
LIVE = SelectionIds("live")
LIVE_INTERVAL = "live-interval"
LIVE_UPDATED = "live-updated"
LIVE_BANKS = "live-banks"
LIVE_GRID = "live-grid"
LIVE_ROOM = "live-room"
LIVE_EVENTS = "live-events"
LIVE_DATA_ALERT = "live-data-alert"
LIVE_TREND = "live-trend"  # the last minutes of one rack field across the racks, with its limits
LIVE_TREND_FIELD = "live-trend-field"

# ----- explorer ---------------------------------------------------------------------
EXPLORER = SelectionIds("explorer")
EXPLORER_GRAPH = "explorer-graph"
EXPLORER_CAPTION = "explorer-caption"
EXPLORER_COMPARE = "explorer-compare"  # other racks (or banks) overlaid in the chart
EXPLORER_CHART_BOX = "explorer-chart-box"  # the chart's card: its height follows the figure
EXPLORER_DATA_ALERT = "explorer-data-alert"
EXPLORER_TABLE = "explorer-table"
EXPLORER_TABLE_ALERT = "explorer-table-alert"
EXPLORER_DOWNLOAD = "explorer-download"
EXPLORER_DOWNLOAD_DI = "explorer-download-di"
EXPLORER_SCOPE_NOTE = "explorer-scope-note"
DOWNLOADS_SCOPE_NOTE = "downloads-scope-note"
EXPLORER_API_URL = "explorer-api-url"
EXPLORER_ROWS_URL = "explorer-rows-url"

# ----- safety -----------------------------------------------------------------------
SAFETY = SelectionIds("safety")
SAFETY_SOS = "safety-sos"
SAFETY_EXSOS = "safety-exsos"
SAFETY_SOC_SOH = "safety-soc-soh"
SAFETY_SOL = "safety-sol"
SAFETY_SOCP = "safety-socp"
SAFETY_PERIOD = "safety-period"
SAFETY_STATUS = "safety-status"

# ----- forecasts --------------------------------------------------------------------
FORECASTS = SelectionIds("forecasts")
FORECASTS_TARGETS = "forecasts-targets"
FORECASTS_DAY = "forecasts-day"

# ----- alarms -----------------------------------------------------------------------
ALARMS = SelectionIds("alarms")
ALARMS_LEVEL = "alarms-level"
ALARMS_CODE = "alarms-code"
ALARMS_TEXT = "alarms-text"
ALARMS_TABLE = "alarms-table"
ALARMS_COUNTS = "alarms-counts"
ALARMS_EPISODES = "alarms-episodes"
ALARMS_EPISODES_ALERT = "alarms-episodes-alert"
ALARMS_BODY = "alarms-body"

# ----- downloads --------------------------------------------------------------------
DOWNLOADS = SelectionIds("downloads")
DOWNLOADS_TYPES = "downloads-types"
DOWNLOADS_MODE = "downloads-mode"
DOWNLOADS_ESTIMATE = "downloads-estimate"

# ----- api --------------------------------------------------------------------------
API = SelectionIds("api")
API_EXAMPLES = "api-examples"
