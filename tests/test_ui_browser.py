"""The portal in headless Chromium (dash_duo) on the session's demo app: every page loads
without console errors, pickers cascade and land in the URL (back button included), the
range and zoom change the chart, the CSV button gives the API's rows, the language switch,
alerts for a bad URL, and the live page following new rows."""

from __future__ import annotations

import csv
import io
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import requests
import sqlalchemy as sa
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from components import ids
from services.core.i18n import MESSAGES
from tests.conftest import DemoEnv

pytestmark = pytest.mark.browser

PAGES = [("/", ids.OVERVIEW_CARDS, "#site-card-1"), ("/live?site=1", ids.LIVE_GRID, "#live-rack-1-1"),
         ("/explorer?site=1", ids.EXPLORER_GRAPH, "#explorer-graph .main-svg"),
         ("/safety?site=1", ids.SAFETY_SOC_SOH, "#safety-soc-soh .main-svg"),
         ("/forecasts?site=1", ids.FORECASTS_TARGETS, "#forecasts-targets > *"),
         ("/alarms?site=1", ids.ALARMS_COUNTS, "#alarms-counts > *"),
         ("/downloads?site=1", ids.DOWNLOADS_ESTIMATE, "#downloads-estimate table"),
         ("/api-guide?site=1", ids.API_EXAMPLES, "#api-example-0")]
DAY_RANGE = "start=2022-09-01T00:00&end=2022-09-02T00:00"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def duo(dash_duo: Any, app: Any) -> Any:
    """dash_duo serving the session's one Dash app on a free port."""
    # Open the app database before the browser fires callbacks in parallel: Portal.app_db is
    # created lazily without a lock, and two first uses at once race on CREATE TABLE.
    assert app.extensions["ess"].app_db is not None
    dash_duo.start_server(app.extensions["dash"], port=free_port())
    return dash_duo


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # stale elements while Dash re-renders the page
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}: {last!r}")


def query(duo: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(duo.driver.current_url).query).items()}


def css(duo: Any, selector: str) -> Any:
    return duo.driver.find_element(By.CSS_SELECTOR, selector)


def options(duo: Any, selector: str) -> list[str]:
    """Values of a dbc.Select's options (without its hidden empty placeholder)."""
    return [v for v in (o.get_attribute("value") for o in Select(css(duo, selector)).options) if v]


def test_every_page_loads_without_console_errors(duo: Any) -> None:
    for path, _container, ready in PAGES:
        duo.driver.get(duo.server_url + path)
        duo.wait_for_element(ready, timeout=20)
    assert duo.get_logs() == []


def test_pickers_cascade_into_the_url_and_back_works(duo: Any) -> None:
    duo.driver.get(duo.server_url + f"/explorer?site=1&{DAY_RANGE}")
    duo.wait_for_element("#explorer-graph .main-svg", timeout=20)
    assert options(duo, "#explorer-bank") == ["1"]
    Select(css(duo, "#explorer-site")).select_by_value("2")
    wait_until(lambda: query(duo).get("site") == "2", what="site=2 in the URL")
    wait_until(lambda: options(duo, "#explorer-bank") == ["1", "2"], what="site 2's banks")
    assert options(duo, "#explorer-rack") == ["1", "2"]
    Select(css(duo, "#explorer-bank")).select_by_value("2")
    wait_until(lambda: (query(duo).get("bank"), query(duo).get("rack")) == ("2", "1"), what="bank 2, rack 1")
    wait_until(lambda: options(duo, "#explorer-rack") == ["1"], what="bank 2's racks")
    assert query(duo)["start"] == "2022-09-01T00:00"  # the range is kept
    duo.driver.back()
    wait_until(lambda: query(duo).get("bank") == "1", what="back to bank 1")
    assert query(duo)["site"] == "2"  # one history entry per change, none from re-rendering
    wait_until(lambda: Select(css(duo, "#explorer-bank")).first_selected_option.get_attribute("value") == "1",
               what="the bank picker follows the back button")
    assert duo.get_logs() == []


def test_range_quick_buttons_and_zoom_change_the_chart(duo: Any) -> None:
    duo.driver.get(duo.server_url + f"/explorer?site=1&bank=1&rack=1&fields=rack_soc&{DAY_RANGE}")
    duo.wait_for_text_to_equal(f"#{ids.EXPLORER_CAPTION}",
                               "1440 buckets of 1 min: line = mean, band = min to max, so every spike stays visible.",
                               timeout=20)
    duo.driver.find_element(By.XPATH, "//button[normalize-space()='1 h']").click()
    wait_until(lambda: query(duo).get("range") == "1h" and "start" not in query(duo),
               what="the last hour, relative, in the URL")
    duo.wait_for_contains_text(f"#{ids.EXPLORER_CAPTION}", "720 buckets of 5 s", timeout=20)
    wait_until(lambda: css(duo, "#explorer-start").get_attribute("value") == "2022-09-01 23:00",
               what="the resolved start in its box")
    box = wait_until(lambda: css(duo, "#explorer-start"))
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("2022-09-01 23:50", Keys.ENTER)
    wait_until(lambda: query(duo).get("start") == "2022-09-01T23:50", what="a typed start")
    duo.wait_for_contains_text(f"#{ids.EXPLORER_CAPTION}", "600 samples, every second shown", timeout=20)
    graph = "document.querySelector('#explorer-graph .js-plotly-plot')"
    wait_until(lambda: duo.driver.execute_script(f"var g = {graph}; return g && g.layout && g.layout.xaxis.range[0]")
               == "2022-09-01T23:50", what="the chart of the typed range")
    zoomed = ("2022-09-01T23:52", "2022-09-01T23:55")
    for _attempt in range(4):  # a zoom as the mouse makes it; again if Dash was still re-rendering the page
        duo.driver.execute_script(
            f"Plotly.relayout({graph}, {{'xaxis.range': ['2022-09-01 23:52:00', '2022-09-01 23:55:00']}});")
        try:
            wait_until(lambda: (query(duo).get("start"), query(duo).get("end")) == zoomed, timeout=4)
            break
        except AssertionError:
            continue
    assert (query(duo).get("start"), query(duo).get("end")) == zoomed
    duo.wait_for_contains_text(f"#{ids.EXPLORER_CAPTION}", "180 samples", timeout=20)
    assert duo.get_logs() == []


def test_csv_button_gives_the_api_rows(duo: Any) -> None:
    window = "start=2022-09-01T13:30&end=2022-09-01T13:35"
    for site in (2, 102):  # SQLite and PostgreSQL
        duo.driver.get(duo.server_url + f"/explorer?site={site}&bank=1&rack=2&fields=rack_soc,rack_max_cell_voltage"
                                        f"&{window}")
        def href(s: int = site) -> str | None:
            value = css(duo, f"#{ids.EXPLORER_DOWNLOAD}").get_attribute("href") or ""
            return value if f"/operating-sites/{s}/" in value else None

        link = wait_until(href, timeout=20, what="the download button")
        body = requests.get(link, timeout=30)
        assert body.status_code == 200 and body.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(body.text)))
        api = requests.get(duo.server_url + f"/api/ess/operating-sites/{site}/banks/1/racks/2/?fields=timestamp,"
                           "rack_soc,rack_max_cell_voltage&start-time=2022-09-01T13:30&end-time=2022-09-01T13:35"
                           "&no_page", timeout=30).json()
        assert len(rows) == len(api) == 300
        assert [(r["timestamp"], float(r["rack_soc"]), float(r["rack_max_cell_voltage"])) for r in rows] == [
            (a["timestamp"], a["rack_soc"], a["rack_max_cell_voltage"]) for a in api]
    assert duo.get_logs() == []


def test_language_switch_translates_the_page(duo: Any) -> None:
    duo.driver.get(duo.server_url + "/explorer?site=1")
    duo.wait_for_text_to_equal(f"#{ids.EXPLORER.title}", "Explorer", timeout=20)
    duo.driver.find_element(By.XPATH, f"//*[@id='{ids.LANG}']//label[normalize-space()='한국어']").click()
    duo.wait_for_text_to_equal(f"#{ids.EXPLORER.title}", "데이터 탐색", timeout=20)
    duo.wait_for_text_to_equal(f"#{ids.BRAND}", "ESS 포털")
    nav = [a.text for a in duo.driver.find_elements(By.CSS_SELECTOR, f"#{ids.NAV} a")]
    assert nav[:3] == ["개요", "실시간", "데이터 탐색"]
    duo.wait_for_contains_text(f"#{ids.EXPLORER_CAPTION}", "구간", timeout=20)
    duo.driver.get(duo.server_url + "/live?site=1")  # the choice is remembered
    duo.wait_for_text_to_equal(f"#{ids.LIVE.title}", "실시간 모니터링", timeout=20)
    assert duo.get_logs() == []


def test_an_invalid_url_parameter_shows_an_alert(duo: Any) -> None:
    duo.driver.get(duo.server_url + "/explorer?site=99&start=yesterday&end=2022-09-02")
    alert = duo.wait_for_element(".code-invalid_url", timeout=20)
    assert "site=99" in alert.text and "start=yesterday" in alert.text
    duo.wait_for_element("#explorer-graph .main-svg", timeout=20)  # the defaults are shown meanwhile
    assert duo.get_logs() == []


@pytest.fixture
def appended_rows(app: Any, demo_env: DemoEnv) -> Iterator[Callable[[int], str]]:
    """Append copies of site 3's newest rows a few seconds later (as the live generator
    writes), then remove them and forget their protection events."""
    portal = app.extensions["ess"]
    store = portal.store(3)
    tables = {c: store.table(c) for c in ("bank", "rack", "pcs", "etc") if c in store.site.tables}
    ts = {c: next(col for col in t.columns if col.name.upper() == "TIMESTAMP") for c, t in tables.items()}
    with store.engine.connect() as conn:
        newest = {c: conn.execute(sa.select(sa.func.max(ts[c]))).scalar() for c in tables}
    first = min(newest.values())

    def append(seconds: int) -> str:
        at = None
        for c, table in tables.items():
            with store.engine.connect() as conn:
                rows = conn.execute(sa.select(table).where(ts[c] == newest[c])).mappings().all()
            frame = pd.DataFrame([dict(r) for r in rows])
            at = newest[c] + timedelta(seconds=seconds)
            # datetime64[ns]: SiteStore._prepare turns the time into epoch seconds assuming ns
            frame[ts[c].name] = pd.Series(pd.Timestamp(at), index=frame.index).astype("datetime64[ns, UTC]")
            store.write_frame(c, frame)
        assert at is not None
        return at.astimezone(store.site.tz).strftime("%Y-%m-%d %H:%M:%S")

    yield append
    with store.engine.begin() as conn:
        for c, table in tables.items():
            conn.execute(sa.delete(table).where(ts[c] > newest[c]))
    try:
        from services.protection.evaluation import rewind_site
    except ImportError:
        return
    rewind_site(portal.app_db, store.site, first + timedelta(seconds=1))


def test_live_page_follows_new_rows(duo: Any, appended_rows: Callable[[int], str]) -> None:
    duo.driver.get(duo.server_url + "/live?site=3")
    duo.wait_for_contains_text(f"#{ids.LIVE_UPDATED}", "2022-09-01 23:59:59", timeout=20)
    newer = appended_rows(5)
    assert newer == "2022-09-02 00:00:04"
    duo.wait_for_contains_text(f"#{ids.LIVE_UPDATED}", newer, timeout=12)  # the next refresh (every 3 s)
    assert duo.find_element("#live-rack-1-2")
    assert duo.get_logs() == []



# ----- the operator's view (issue 16): the overview tells the truth, charts carry context -----

@pytest.fixture(scope="module")
def judged(app: Any) -> Any:
    """Protection events and analytics of demo site 3 (SQLite), whose rack 2 has a
    communication-fault burst at 18:00 (a fault episode within the last 24 h of its data)."""
    from services.analytics.jobs import analyze
    from services.protection.evaluation import evaluate_sites

    portal = app.extensions["ess"]
    evaluate_sites(portal, [3])
    analyze(portal, [3], with_prophet=False)
    return portal


def test_overview_shows_a_recent_fault_episode_with_its_sos(duo: Any, judged: Any) -> None:
    from services.analytics.summaries import get_lowest_sos_during, get_safety_overview
    from services.protection.reads import get_episode_summary
    from services.storage.dialect import to_epoch

    site = judged.registry.get_site(3)
    end = to_epoch(pd.Timestamp("2022-09-02T00:00:00+09:00").to_pydatetime())
    summary = get_episode_summary(judged, 3, end)
    fault = next(e for e in summary.recent if e["level"]["id"] == 2 and e["rack_id"])
    low = get_lowest_sos_during(judged.app_db, site, fault["bank_id"], fault["rack_id"],
                                to_epoch(pd.Timestamp(fault["start"]).to_pydatetime()),
                                to_epoch(pd.Timestamp(fault["end"]).to_pydatetime()))
    worst = get_safety_overview(judged.app_db, site).worst
    assert low is not None and worst is not None and fault["start"].startswith("2022-09-01T18:0")
    duo.driver.get(duo.server_url + "/")
    card = duo.wait_for_element("#overview-episodes-3 .ess-episode", timeout=30)
    text = css(duo, "#overview-episodes-3").text.replace(" ", "")  # inline spans: spacing is CSS margin
    assert f"fault09-01{fault['start'][11:16]}" in text and f"SoS{low:.3f}" in text
    assert f"rack{fault['rack_id']}" in text
    sos_line = css(duo, "#site-card-3 .ess-sos-line").text
    assert f"Worst SoS, last 24 h: {worst.value:.3f}" in sos_line and worst.time[:16].replace("T", " ") in sos_line
    links = [a.get_attribute("href") for a in duo.driver.find_elements(By.CSS_SELECTOR, "#overview-episodes-3 a")]
    assert any(f"/explorer?site=3&component=rack&bank=1&rack={fault['rack_id']}&" in link
               and "&start=2022-09-01T17:5" in link for link in links), links  # the Explorer at that moment
    assert card.is_displayed()
    assert duo.get_logs() == []


def test_explorer_chart_survives_a_resize_and_carries_limits_and_episodes(duo: Any, judged: Any) -> None:
    duo.driver.set_window_size(1400, 1000)
    duo.driver.get(duo.server_url + "/explorer?site=3&bank=1&rack=2&fields=rack_max_cell_voltage"
                                    "&start=2022-09-01T17:00&end=2022-09-01T19:00")
    graph = "document.querySelector('#explorer-graph .js-plotly-plot')"
    names = wait_until(lambda: duo.driver.execute_script(
        f"var g = {graph}; return g && g.layout && (g.layout.shapes || []).map(s => s.name)"), timeout=30,
        what="the chart's shapes")
    assert {"limit-warning", "limit-fault"} <= set(names) and "episode-fault" in names
    geometry = ("var g = document.querySelector('#explorer-graph').getBoundingClientRect();"
                "var b = document.querySelector('#explorer-download').getBoundingClientRect();"
                "return [g.height, g.bottom, b.top, g.width];")
    before = duo.driver.execute_script(geometry)
    duo.driver.set_window_size(820, 1000)
    wait_until(lambda: duo.driver.execute_script(geometry)[3] < before[3] - 200, what="the chart following the width")
    time.sleep(1)  # let Plotly finish its resize
    height, bottom, buttons_top, _width = duo.driver.execute_script(geometry)
    assert height > 250 and bottom <= buttons_top, (before, height, bottom, buttons_top)
    duo.driver.set_window_size(1400, 1000)
    assert duo.get_logs() == []


def english_fragments() -> set[str]:
    """The English texts of the i18n table that differ from their Korean ones, cut at the
    placeholders, that are long enough to be unambiguous (a word of 6+ letters or several
    words): none of them may appear on a Korean page."""
    out = set()
    for en, ko in MESSAGES.values():
        if en == ko:
            continue
        for part in re.split(r"\{[^}]*\}", en):
            part = part.strip(" .,:;()·—–-!?'\"`/★")
            letters = len(re.findall(r"[A-Za-z]", part))
            if letters >= 6 and not re.fullmatch(r"[A-Z_0-9]+", part):
                out.add(part)
    return out


def settled_text(duo: Any, ready: str) -> str:
    """The page's visible text and its charts' SVG text once callbacks have stopped."""
    duo.wait_for_element(ready, timeout=30)
    quiet = 0
    deadline = time.monotonic() + 30
    while quiet < 6 and time.monotonic() < deadline:
        busy = duo.driver.find_elements(By.CSS_SELECTOR, "._dash-loading-callback, .dash-default-spinner")
        quiet = 0 if busy else quiet + 1
        time.sleep(0.25)
    return str(duo.driver.execute_script(
        "return document.body.innerText + '\\n' + Array.from(document.querySelectorAll('svg text'))"
        ".map(e => e.textContent).join('\\n');"))


def test_korean_pages_hold_no_english_ui_strings(duo: Any, judged: Any) -> None:
    fragments = english_fragments()
    assert len(fragments) > 150 and "Newest row" in fragments and "Worst SoS, last 24 h" in fragments
    duo.driver.get(duo.server_url + "/")
    duo.driver.execute_script("localStorage.setItem('_dash_persistence.shell-lang.value.true', "
                              "JSON.stringify(['ko', 'en']));")
    rng = "site=3&bank=1&rack=2&start=2022-09-01T12:00&end=2022-09-02T00:00"
    pages = [("/", "#overview-episodes-3"), ("/live?site=3", "#live-rack-1-2"),
             (f"/explorer?{rng}&fields=rack_max_cell_voltage", "#explorer-graph .main-svg"),
             (f"/safety?{rng}", "#safety-gauge-2"), (f"/forecasts?{rng}", "#forecasts-targets > *"),
             (f"/alarms?{rng}", "#alarms-episodes"), (f"/downloads?{rng}", "#downloads-estimate table"),
             ("/api-guide?site=3", "#api-example-0"), ("/no-such-page", f"#{ids.NOT_FOUND_TITLE}")]
    found = {}
    for path, ready in pages:
        duo.driver.get(duo.server_url + path)
        duo.wait_for_text_to_equal(f"#{ids.BRAND}", "ESS 포털", timeout=20)
        text = settled_text(duo, ready)
        found[path] = sorted(f for f in fragments if re.search(rf"(?<![A-Za-z_]){re.escape(f)}(?![A-Za-z_])", text))
    assert found == {path: [] for path, _ in pages}
    assert "페이지를 찾을 수 없습니다" in css(duo, f"#{ids.NOT_FOUND_TITLE}").text
    assert [a.text for a in duo.driver.find_elements(By.CSS_SELECTOR, ".ess-not-found-links a")][:3] == [
        "개요", "실시간", "데이터 탐색"]
    duo.driver.execute_script("localStorage.removeItem('_dash_persistence.shell-lang.value.true');")
    assert duo.get_logs() == []
