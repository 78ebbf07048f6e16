"""Page layouts and callbacks called as plain functions on the session's demo portal
(SQLite sites 1-3, PostgreSQL 101-103, one day 2022-09-01)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from typing import Any

import plotly.io as pio
import pytest

from components.links import make_stats_url
from components.urlstate import ViewState
from tests.conftest import DemoEnv, site_id_for

PAGES = ("overview", "live", "explorer", "safety", "forecasts", "alarms", "downloads", "api")
DAY = ("2022-09-01T00:00", "2022-09-02T00:00")


@pytest.fixture
def ctx(app: Any) -> Iterator[Any]:
    """A request context, as Dash gives callbacks and layouts."""
    with app.test_request_context("/_dash-update-component", method="POST"):
        yield app


def page(name: str) -> Any:
    """A page module (imported by Dash Pages when the session app was built)."""
    return importlib.import_module(f"pages.{name}")


def text_of(component: Any) -> str:
    return json.dumps(component.to_plotly_json() if hasattr(component, "to_plotly_json") else component,
                      default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def rack_state(site: int, fields: tuple[str, ...] = ("rack_max_cell_voltage",), start: str = DAY[0],
               end: str = DAY[1]) -> dict[str, Any]:
    return ViewState(site, 1, 2, "rack", fields, start, end).to_store()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_every_page_renders_and_its_skeleton_has_every_id(ctx: Any, lang: str) -> None:
    for name in PAGES:
        rendered = text_of(page(name).layout(lang=lang, site="2"))
        assert "code-invalid_url" not in rendered, name
        skeleton = text_of(page(name).layout())
        assert skeleton.count('"id"') >= 3, name
    assert "데이터 탐색" in text_of(page("explorer").layout(lang="ko")) or lang == "en"


def test_the_dash_app_validates_its_wiring(app: Any, client: Any) -> None:
    dash_app = app.extensions["dash"]
    assert client.get("/explorer").status_code == 200
    assert dash_app.validation_layout is not None
    assert not dash_app.config.suppress_callback_exceptions


def test_explorer_chart_is_downsampled_min_max_per_bucket(ctx: Any, backend: str) -> None:
    explorer = page("explorer")
    fig, _box, caption, alert = explorer.update_chart(rack_state(site_id_for(backend, 2)), "en")
    assert alert is None
    assert "1440 buckets of 1 min" in caption
    high, low, mean = fig.data[0], fig.data[1], fig.data[2]
    assert len(mean.x) == len(high.x) == 1440
    assert all(h >= m >= lo for h, m, lo in zip(high.y, mean.y, low.y, strict=True))
    assert len(pio.to_json(fig).encode()) < 300_000


def test_explorer_short_range_is_raw_and_the_table_matches_the_api(ctx: Any, client: Any, backend: str) -> None:
    explorer = page("explorer")
    sid = site_id_for(backend, 2)
    state = rack_state(sid, ("rack_soc", "rack_max_cell_voltage"), "2022-09-01T10:00", "2022-09-01T10:10")
    fig, _box, caption, alert = explorer.update_chart(state, "en")
    assert alert is None and "600 samples" in caption and len(fig.data) == 2
    data, columns, page_count, alert = explorer.update_table(state, 1, "en")
    assert alert is None and page_count == 24 and [c["id"] for c in columns] == ["timestamp", "rack_soc",
                                                                                 "rack_max_cell_voltage"]
    api = client.get(f"/api/ess/operating-sites/{sid}/banks/1/racks/2/?fields=timestamp,rack_soc,"
                     "rack_max_cell_voltage&start-time=2022-09-01T10:00&end-time=2022-09-01T10:10&page_size=25"
                     "&page=2").get_json()
    assert data == api["results"]


def test_explorer_chart_equals_the_api_link_it_shows(ctx: Any, client: Any, backend: str) -> None:
    """Issue 12: over a range that does not start on a bucket edge (05:00:13-19:59:47, 60 s
    buckets) the chart widened its range to whole minutes and its first bucket read
    3.400783333 while the stats link beside it read 3.400787234. Both are now the mean of
    exactly the requested seconds."""
    explorer = page("explorer")
    sid = site_id_for(backend, 1)
    view = ViewState(sid, 1, 1, "rack", ("rack_max_cell_voltage",), "2022-09-01T05:00:13", "2022-09-01T19:59:47")
    fig, _box, caption, alert = explorer.update_chart(view.to_store(), "en")
    assert alert is None and "900 buckets of 1 min" in caption
    link = make_stats_url(view, view.fields, 60)
    assert link in text_of(explorer.make_links(view, "en", False, ""))
    api = client.get(link).get_json()
    mean = fig.data[2]
    chart = dict(zip(mean.x, mean.y, strict=True))
    assert {r["time"][:19]: r["avg_rack_max_cell_voltage"] for r in api} == chart
    first = {1: 3.400787234, 101: 3.40193617}[sid]  # the mean of 05:00:13-05:00:59 (site 101: other seeds)
    assert api[0]["avg_rack_max_cell_voltage"] == chart["2022-09-01T05:00:00"] == first
    assert (api[0]["time"][:19], api[-1]["time"][:19]) == ("2022-09-01T05:00:00", "2022-09-01T19:59:00")


@pytest.mark.parametrize("state,code", [
    (rack_state(1, ("rack_nonsense",)), "unknown_field"),
    (rack_state(1, start="2022-08-01T00:00", end="2022-08-02T00:00"), "no_data"),
])
def test_explorer_problems_are_alerts_not_empty_charts(ctx: Any, state: dict[str, Any], code: str) -> None:
    fig, _box, _caption, alert = page("explorer").update_chart(state, "en")
    assert f"code-{code}" in text_of(alert)
    assert fig.layout.annotations[0].text == "Nothing to draw"
    if code == "no_data":
        assert "2022-09-01 23:59:59" in text_of(alert)


def test_a_bad_url_is_an_alert_with_the_defaults_shown(ctx: Any) -> None:
    rendered = text_of(page("explorer").layout(lang="en", site="99", start="yesterday", end="2022-09-01"))
    assert "code-invalid_url" in rendered and "site=99" in rendered and "start=yesterday" in rendered
    assert '"value": "1"' in rendered  # the first site is shown meanwhile
    ko = text_of(page("alarms").layout(lang="ko", site="2", level="7"))
    assert "level=7" in ko and "일부 URL 매개변수를 사용할 수 없습니다" in ko


def test_overview_has_a_card_per_site(ctx: Any, demo_env: DemoEnv) -> None:
    cards, alert = page("overview").update_cards({"visit": True}, 0, "en")
    rendered = text_of(cards)
    assert alert is None
    for sid in demo_env.sites:
        assert f"site-card-{sid}" in rendered
    assert "2022-09-01 23:59:59" in rendered


def test_live_refresh_reads_one_snapshot(ctx: Any, backend: str) -> None:
    sid = site_id_for(backend, 2)
    banks, grid, room, updated, alert = page("live").refresh(1, ViewState(sid).to_store(), "en")
    assert alert is None or "code-config_error" in text_of(alert)  # an unusable map: values without colours
    assert "2022-09-01 23:59:59" in text_of(updated)
    rendered = text_of(grid)
    assert all(f"live-rack-{b}-{r}" in rendered for b, r in ((1, 1), (1, 2), (2, 1)))
    assert "Bank 2" in text_of(banks) and "°C" in text_of(room)


def test_download_estimate_matches_the_rows(ctx: Any, backend: str, app: Any) -> None:
    from services.telemetry.rows import count_rows, make_selector
    from services.telemetry.timerange import local_day

    sid = site_id_for(backend, 3)
    state = ViewState(sid, start=DAY[0], end=DAY[1]).with_extra(types="rack,etc").to_store()
    rendered = text_of(page("downloads").update_estimate(state, "en"))
    store = app.extensions["ess"].store(sid)
    from datetime import date
    for comp in ("rack", "etc"):
        n = count_rows(make_selector(store, comp), local_day(date(2022, 9, 1), store.site.tz))
        assert f"about {n:,} rows" in rendered
    assert f"/api/ess/download/operating-sites/{sid}/etc/?start-time=2022-09-01T00:00" in rendered


def test_navigation_is_translated_and_keeps_the_selection(ctx: Any) -> None:
    from pages._shell import update_nav

    links = [{"type": "nav-link", "page": p} for p in ("/", "/live", "/explorer")]
    labels, hrefs, active, brand = update_nav("ko", "/explorer", "?site=2&fields=rack_soc", links)
    assert labels == ["개요", "실시간", "데이터 탐색"] and brand == "ESS 포털"
    assert hrefs == ["/?site=2", "/live?site=2", "/explorer?site=2"] and active == [False, False, True]


def _computed(app: Any, site_id: int, task: str) -> bool:
    from services.analytics.bookkeeping import get_state

    return get_state(app.extensions["ess"].app_db, site_id, task) is not None


def test_safety_and_forecasts_show_results_or_say_not_computed(ctx: Any, app: Any) -> None:
    state = rack_state(1)
    sos = text_of(page("safety").update_sos(state, "en"))
    forecasts = text_of(page("forecasts").update_targets(state, "en"))
    if _computed(app, 1, "sos"):
        assert "Gauge" in sos or "indicator" in sos
    else:
        assert "code-not_computed" in sos and "Not computed yet" in sos
    if not _computed(app, 1, "forecast"):
        assert "code-not_computed" in forecasts
    soc = page("safety").update_soc_soh(state, "en")  # from the BMS values: always there
    assert "rack_soc" in text_of(soc) and "code-" not in text_of(soc)


def test_alarms_show_events_or_say_not_computed(ctx: Any, app: Any) -> None:
    from services.protection.evaluation import get_watermark

    alarms = page("alarms")
    state = ViewState(3, start=DAY[0], end=DAY[1], optional_ids=True).to_store()
    data, columns, _pages, alert = alarms.update_events(state, 0, "en")
    with app.extensions["ess"].app_db.connect() as conn:
        evaluated = get_watermark(conn, 3, "rack") is not None
    if evaluated:
        assert alert is None or "code-no_events" in text_of(alert)
        assert all(set(row) >= {"time", "level", "code", "description"} for row in data)
    else:
        assert "code-not_computed" in text_of(alert) and data == []
    assert [c["id"] for c in columns][:3] == ["time", "level", "code"]
    bad = ViewState(3, start=DAY[0], end=DAY[1], optional_ids=True).with_extra(code="99").to_store()
    _, _, _, bad_alert = alarms.update_events(bad, 0, "en")
    assert "code-unknown_error_code" in text_of(bad_alert) or "code-not_computed" in text_of(bad_alert)
