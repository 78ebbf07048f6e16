"""UI pieces without a browser or a database: URL state, downsampling widths, figure and
table builders (pure functions), translations."""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import plotly.io as pio
import pytest

from components.alarms import make_counts_figure, make_episode_rows, make_event_rows
from components.alerts import make_error_alert, make_problems_alert
from components.charts import describe_width, make_series_figure
from components.downloads import format_bytes
from components.forecasts import (
    make_accuracy_table,
    make_backtest_note,
    make_day_ahead_figure,
    make_forecast_figure,
    model_label,
)
from components.layout import make_nav_href
from components.links import make_download_url, make_rows_url, make_stats_url
from components.live import judge, make_rack_grid, newest_time
from components.safety import make_socp_heatmap, make_sos_figure, make_sos_gauge, sos_level
from components.sites import format_age
from components.urlstate import (
    ViewState,
    apply_changes,
    get_time_range,
    make_quick_range,
    normalize_time_text,
    parse_view_state,
    parse_zoom,
)
from services.core.catalogue import get_fields
from services.core.errors import InvalidQuery
from services.core.i18n import LANGS, MESSAGES, get_translator, normalize_lang, translate
from services.core.registry import Bank, Registry, demo_sites
from services.protection.maps import Limit
from services.telemetry.series import MAX_POINTS, FieldSeries, Series, align_range, choose_width
from services.telemetry.timerange import TimeRange

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def registry() -> Registry:
    one, two, three = demo_sites()
    two = two.__class__(**{**two.__dict__, "banks": (Bank(1, (1, 2)), Bank(2, (1,)))})
    return Registry((one, two, three))


# ----- URL state -------------------------------------------------------------------------

def test_a_full_url_round_trips(registry: Registry) -> None:
    query = {"site": "2", "bank": "2", "rack": "1", "component": "rack", "fields": "rack_soc,rack_current",
             "start": "2022-09-01T10:00", "end": "2022-09-01T11:00"}
    state, problems = parse_view_state(query, registry)
    assert problems == []
    assert (state.site, state.bank, state.rack, state.fields) == (2, 2, 1, ("rack_soc", "rack_current"))
    assert state.to_query() == query
    assert ViewState.from_store(json.loads(json.dumps(state.to_store()))) == state
    assert state.to_search() == ("?site=2&bank=2&rack=1&component=rack&fields=rack_soc,rack_current"
                                 "&start=2022-09-01T10:00&end=2022-09-01T11:00")


@pytest.mark.parametrize("query,param,key", [
    ({"site": "99"}, "site", "problem_site"), ({"site": "x"}, "site", "problem_site"),
    ({"site": "1", "bank": "3"}, "bank", "problem_bank"), ({"site": "2", "bank": "2", "rack": "2"}, "rack",
                                                          "problem_rack"),
    ({"component": "battery"}, "component", "problem_component"),
    ({"start": "yesterday", "end": "2022-09-01"}, "start", "problem_time"),
    ({"start": "2022-09-01"}, "end", "problem_half_range"),
    ({"start": "2022-09-02", "end": "2022-09-01"}, "end", "problem_order"),
])
def test_a_bad_parameter_is_reported_and_defaulted(registry: Registry, query: dict[str, str], param: str,
                                                  key: str) -> None:
    state, problems = parse_view_state(query, registry)
    assert [(p.param, p.key) for p in problems] == [(param, key)]
    assert state.site in registry.site_ids and state.bank is not None and state.rack is not None
    if param in ("start", "end"):
        assert (state.start, state.end) == (None, None)


def test_pickers_cascade(registry: Registry) -> None:
    state, _ = parse_view_state({"site": "2", "bank": "1", "rack": "2", "fields": "rack_soc",
                                 "start": "2022-09-01T00:00", "end": "2022-09-02T00:00"}, registry)
    to_bank2 = apply_changes(state, registry, bank="2")
    assert (to_bank2.bank, to_bank2.rack) == (2, 1)  # bank 2 has only rack 1
    to_site1 = apply_changes(state, registry, site="1", bank="1", rack="2")
    assert (to_site1.site, to_site1.bank, to_site1.rack, to_site1.fields) == (1, 1, 1, ())  # new site: defaults
    assert (to_site1.start, to_site1.end) == (state.start, state.end)  # the range is kept
    same_site = apply_changes(state, registry, rack="1", fields=["rack_soc", "rack_soh"])
    assert (same_site.rack, same_site.fields) == (1, ("rack_soc", "rack_soh"))
    typed = apply_changes(state, registry, start="2022-09-01 10:00:00", end="nonsense")
    assert (typed.start, typed.end) == ("2022-09-01T10:00", "nonsense")  # the page reports the bad one


def test_optional_ids_mean_all(registry: Registry) -> None:
    state, problems = parse_view_state({"site": "2"}, registry, optional_ids=True)
    assert (state.bank, state.rack, problems) == (None, None, [])
    assert apply_changes(state, registry, bank="2").bank == 2
    assert apply_changes(state.with_extra(level="2"), registry, bank="").get("level") == "2"


def test_zoom_and_quick_ranges(registry: Registry) -> None:
    assert parse_zoom({"xaxis.range[0]": "2022-09-01 10:00:00.5", "xaxis.range[1]": "2022-09-01 10:30:12"}) == (
        "2022-09-01T10:00", "2022-09-01T10:30:12")
    assert parse_zoom({"xaxis2.range": ["2022-09-01 10:00", "2022-09-01 11:00"]}) == ("2022-09-01T10:00",
                                                                                      "2022-09-01T11:00")
    assert parse_zoom({"xaxis.autorange": True}) is None and parse_zoom(None) is None
    site = registry.sites[0]
    newest = datetime(2022, 9, 1, 14, 59, 59, tzinfo=UTC)  # 23:59:59 in Seoul
    assert make_quick_range("24h", newest, site) == ("2022-09-01T00:00", "2022-09-02T00:00")
    assert make_quick_range("1h", newest, site) == ("2022-09-01T23:00", "2022-09-02T00:00")
    tr = get_time_range(ViewState(1, start="2022-09-01T00:00", end="2022-09-02T00:00"), site)
    assert tr is not None and tr.seconds == 86400 and tr.start == datetime(2022, 8, 31, 15, tzinfo=UTC)
    assert normalize_time_text(" 2022-09-01 10:00:00 ") == "2022-09-01T10:00"


def test_nav_links_carry_the_selection() -> None:
    assert make_nav_href("/live", "?site=2&bank=1&fields=x&start=2022-09-01T00:00") == (
        "/live?site=2&bank=1&start=2022-09-01T00:00")
    assert make_nav_href("/", None) == "/"


def test_api_and_download_urls_say_exactly_what_is_shown() -> None:
    state = ViewState(2, 1, 2, "rack", ("rack_soc",), "2022-09-01T10:00", "2022-09-01T11:00")
    assert make_download_url(state, state.fields) == (
        "/api/ess/download/operating-sites/2/rack/?start-time=2022-09-01T10:00&end-time=2022-09-01T11:00"
        "&fields=timestamp,rack_soc&bank-id=1&rack-id=2")
    assert make_download_url(state, deidentified=True).startswith("/api/ess/download/di/operating-sites/2/rack/?")
    assert make_rows_url(state, state.fields) == ("/api/ess/operating-sites/2/banks/1/racks/2/?fields=timestamp,"
                                                  "rack_soc&start-time=2022-09-01T10:00&end-time=2022-09-01T11:00")
    assert make_stats_url(state, state.fields, 60).startswith(
        "/api/ess/operating-sites/2/banks/1/racks/2/stats/?fields=rack_soc&agg=min,max,avg&time-bucket-width=60s")
    etc = ViewState(2, 1, 2, "etc", (), "2022-09-01", "2022-09-02")
    assert make_download_url(etc, component="etc") == (
        "/api/ess/download/operating-sites/2/etc/?start-time=2022-09-01&end-time=2022-09-02")


# ----- downsampling ----------------------------------------------------------------------

@pytest.mark.parametrize("seconds,width", [(1200, 1), (MAX_POINTS, 1), (3600, 5), (86400, 60), (7 * 86400, 600),
                                           (30 * 86400, 1800), (365 * 86400, 21600)])
def test_round_widths_keep_at_most_max_points(seconds: int, width: int) -> None:
    assert choose_width(seconds) == width
    assert -(-seconds // width) <= MAX_POINTS


def test_whole_minute_widths_align_to_minutes() -> None:
    start = datetime(2022, 9, 1, 1, 0, 30, tzinfo=UTC)
    aligned = align_range(TimeRange(start, start + timedelta(hours=3)), 600)
    assert (aligned.start.second, aligned.end.second, aligned.seconds) == (0, 0, 3 * 3600 + 60)
    assert align_range(TimeRange(start, start + timedelta(hours=1)), 5).start == start
    with pytest.raises(InvalidQuery):
        choose_width(0)


def _bucketed(n: int, spike_at: int) -> Series:
    times = [(datetime(2022, 9, 1) + timedelta(minutes=i)).isoformat() for i in range(n)]
    mean = [3.6 + 0.001 * (i % 7) for i in range(n)]
    high = [m + 0.002 for m in mean]
    high[spike_at] = 4.2  # a one-second spike inside a one-minute bucket
    low = [m - 0.002 for m in mean]
    low[3] = None  # type: ignore[call-overload]
    tr = TimeRange(datetime(2022, 8, 31, 15, tzinfo=UTC), datetime(2022, 9, 1, 15, tzinfo=UTC))
    return Series(tr, 60, [FieldSeries("rack_max_cell_voltage", times, mean, low, high),  # type: ignore[arg-type]
                           FieldSeries("rack_soc", times, [50.0] * n, [49.0] * n, [51.0] * n)])


def test_series_figure_keeps_every_spike_and_stays_small() -> None:
    meta = {f.api_name: f for f in get_fields("rack", "site23")}
    fig = make_series_figure(_bucketed(MAX_POINTS, 700), meta, "en", x_range=("2022-09-01T00:00", "2022-09-02T00:00"))
    assert [t.name for t in fig.data] == ["rack_max_cell_voltage max", "rack_max_cell_voltage min–max",
                                          "rack_max_cell_voltage (V)", "rack_soc max", "rack_soc min–max",
                                          "rack_soc (%)"]
    assert max(fig.data[0].y) == 4.2  # the band's top carries the spike
    assert fig.data[1].fill == "tonexty"
    assert fig.layout.yaxis.title.text == "V" and fig.layout.yaxis2.title.text == "%"  # a row per unit
    assert list(fig.layout.xaxis.range) == ["2022-09-01T00:00", "2022-09-02T00:00"]
    per_field = len(pio.to_json(fig).encode()) / 2
    assert per_field < 300_000


def test_raw_series_is_one_line_per_field() -> None:
    tr = TimeRange(datetime(2022, 9, 1, tzinfo=UTC), datetime(2022, 9, 1, 0, 0, 3, tzinfo=UTC))
    series = Series(tr, 1, [FieldSeries("rack_soc", ["2022-09-01T09:00:00", "2022-09-01T09:00:01"], [1.0, None])])
    fig = make_series_figure(series, {}, "ko")
    assert len(fig.data) == 1 and series.raw and series.points == 2


def test_widths_are_described_in_both_languages() -> None:
    assert [describe_width(w, "en") for w in (5, 60, 1800, 7200, 86400)] == ["5 s", "1 min", "30 min", "2 h", "1 d"]
    assert [describe_width(w, "ko") for w in (5, 600)] == ["5초", "10분"]
    assert format_age(3 * 86400 + 5, "en") == "3 d" and format_age(400 * 86400, "ko") == "1.1년"
    assert [format_bytes(n) for n in (812, 4_700, 135_300_000, 2_100_000_000)] == ["812 B", "4.7 kB", "135 MB",
                                                                                   "2.1 GB"]


# ----- live grid -------------------------------------------------------------------------

def _snapshot() -> dict[str, Any]:
    def rack(rack_id: int, ts: str, **values: float) -> dict[str, Any]:
        return {"timestamp": ts, "bank_id": 1, "rack_id": rack_id, "rack_soc": 50.0,
                "rack_max_cell_voltage": 3.9, "rack_current": 10.0, **values}
    return {"banks": [{"timestamp": "2022-09-01T10:00:00+09:00", "bank_id": 1, "bank_soc": 50.0}],
            "racks": [rack(1, "2022-09-01T10:00:00+09:00", rack_max_cell_voltage=4.06),
                      rack(2, "2022-09-01T10:00:00+09:00", rack_current=-121.0),
                      rack(3, "2022-09-01T09:58:00+09:00")],
            "pcs": None, "etc": None}


def test_rack_grid_colours_cells_by_the_protection_map() -> None:
    limits = {"RACK_MAX_CELL_VOLTAGE": Limit("RACK_MAX_CELL_VOLTAGE", warning_above=4.05, fault_above=4.10),
              "RACK_CURRENT": Limit("RACK_CURRENT", warning_above=100, fault_above=120, absolute=True)}
    grid = str(make_rack_grid(_snapshot(), limits, {"rack_max_cell_voltage": "V"}, "en").to_plotly_json())
    rows = {m.group(1): m.group(0) for m in re.finditer(r"live-rack-1-(\d)", grid)}
    assert set(rows) == {"1", "2", "3"}
    assert judge(4.06, limits["RACK_MAX_CELL_VOLTAGE"]) == "warning"
    assert judge(4.11, limits["RACK_MAX_CELL_VOLTAGE"]) == "fault"
    assert judge(-121.0, limits["RACK_CURRENT"]) == "fault"  # the absolute current
    assert judge(None, None) == "nodata" and judge(50.0, None) == "neutral"
    assert grid.count("lvl-cell lvl-fault") == 1 and grid.count("lvl-cell lvl-warning") == 1
    assert grid.count("lvl-cell lvl-nodata") == 3  # rack 3 is two minutes behind: stale
    assert newest_time(_snapshot()) == "2022-09-01T10:00:00+09:00"



def text_of(component: object) -> str:
    """Every string of a Dash component tree, as JSON."""
    return json.dumps(component, default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


# ----- safety, forecasts, alarms -----------------------------------------------------------

def test_safety_builders() -> None:
    assert [sos_level(v) for v in (0.9, 0.8, 0.5, 0.4096, 0.4, None)] == ["safe", "safe", "warning", "warning",
                                                                          "unsafe", "nodata"]
    gauge = make_sos_gauge(0.5, "ko", lowest=0.04)
    assert gauge.data[0].value == 0.5 and gauge.data[0].gauge.threshold.value == 0.04  # now, and the worst mark
    assert gauge.data[0].gauge.threshold.line.color == "#e03131"  # the worst is unsafe: red
    assert make_sos_gauge(0.9, "en").data[0].gauge.threshold.value is None
    rows = [{"time": "2022-09-01T10:00:00+09:00", "sos_score": 0.9, "over_voltage": 1.0, "under_voltage": 0.95}]
    fig = make_sos_figure(rows, "en")
    assert len(fig.data) == 8 and fig.data[0].y == (0.9,)
    heat = make_socp_heatmap({0: {1: 5, 3: 2}, 9: {3: 40}}, 4, [3], "en")
    assert heat.data[0].z[9][2] == 40 and heat.data[0].z[0][0] == 5 and list(heat.data[1].x) == [3]


def test_forecasts_show_the_backtest_honestly() -> None:
    rows = [{"time": "2022-09-01T10:00:00+09:00", "target_time": "2022-09-01T10:10:00+09:00",
             "values": {"observed": 3.9, "persistence": 3.88, "drift": 3.905}, "intervals": {"drift": [3.9, 3.91]}}]
    accuracy = {"drift": {"mae": 0.0012, "rmse": 0.0021, "mase": 0.4, "count": 37},
                "persistence": {"mae": 0.003, "rmse": 0.004, "mase": 1.0, "count": 37}}
    assert model_label("drift", "drift") == "drift ★"
    fig = make_forecast_figure(rows, accuracy, "drift", "Max cell voltage", "V", "en")
    names = [t.name for t in fig.data]
    assert "drift ★" in names and names[-1] == "observed"
    horizon = fig.layout.shapes[0]  # the newest forecast's horizon is shaded, issue time to target time
    assert (horizon.x0, horizon.x1, horizon.name) == ("2022-09-01T10:00:00", "2022-09-01T10:10:00", "forecast-horizon")
    table = text_of(make_accuracy_table(accuracy, "drift", "V", "en"))
    assert all(s in table for s in ('"MAE (V)"', '"RMSE (V)"', '"MASE"', '"0.40"', '"0.0012"', '"37"', "drift ★"))
    period = ("2022-09-01T09:00", "2022-09-01T15:06")
    assert "Backtest: 37 issue times, 2022-09-01 09:00 – 2022-09-01 15:06" in text_of(make_backtest_note(
        accuracy, period, "en"))
    assert "No model beats persistence" not in text_of(make_backtest_note(accuracy, period, "en"))
    sos = {"ridge": {"mae": 0.0114, "mase": 0.9999, "count": 5},
           "persistence": {"mae": 0.0114, "mase": 1.0, "count": 5}, "drift": {"mae": 0.02, "mase": 1.7, "count": 5}}
    assert "No model beats persistence here" in text_of(make_backtest_note(sos, period, "en"))
    day = make_day_ahead_figure({"values": {"time": ["2022-09-02T00:00:00+09:00"], "observed": [3.4], "ridge": [3.41],
                                            "daily_profile": [3.42], "lower": [3.3], "upper": [3.5]},
                                 "default_model": "daily_profile"}, "V", "en")
    assert [t.name for t in day.data][2:] == ["daily_profile ★", "ridge", "observed"]


def test_alarm_builders() -> None:
    counts = make_counts_figure([{"time": "2022-09-01T10:00:00+09:00", "level": 1, "level_count": 3},
                                 {"time": "2022-09-01T10:00:00+09:00", "level": 2, "level_count": 1}], "en")
    assert [list(t.y) for t in counts.data] == [[3], [1]] and counts.layout.barmode == "stack"
    event = {"timestamp": "2022-09-01T13:35:02+09:00", "error_code": {"id": 6, "description": "과전압"},
             "level": {"id": 2, "description": "고장"}, "bank_id": 1, "rack_id": 3, "source": "threshold",
             "value": 4.11, "description": "랙 과전압 고장", "description_eng": "rack over-voltage fault"}
    assert make_event_rows([event], "en")[0] | {} == {
        "time": "2022-09-01 13:35:02", "level": "fault", "level_id": 2, "code": 6, "bank": 1, "rack": 3,
        "source": "threshold", "value": "4.110 V", "description": "rack over-voltage fault"}
    ko = make_event_rows([event], "ko")[0]
    assert (ko["description"], ko["source"], ko["value"]) == ("랙 과전압 고장", "임계값", "4.110 V")
    episode = {"start": "2022-09-01T13:34:00+09:00", "end": "2022-09-01T13:35:48+09:00", "duration_s": 108,
               "peak_value": 4.11, "sample_count": 108, "bank_id": 1, "rack_id": 3, "open": False,
               "error_code": {"id": 6, "description": "과전압", "description_eng": "over-voltage"},
               "level": {"id": 1}}
    row = make_episode_rows(1, [episode], "en")[0]
    assert (row["duration"], row["peak"], row["description"]) == ("1 min", "4.110 V", "over-voltage")
    assert row["explore"] == ("[open in Explorer](/explorer?site=1&component=rack&bank=1&rack=3"
                              "&fields=rack_max_cell_voltage&start=2022-09-01T13:24&end=2022-09-01T13:46)")
    both = make_episode_rows(1, [episode | {"source": ["threshold", "bms"]}], "ko")[0]
    assert both["source"] == "임계값 + BMS 플래그"


# ----- alerts and translations --------------------------------------------------------------

def test_alerts_say_what_happened_and_what_to_do(registry: Registry) -> None:
    alert = str(make_error_alert(InvalidQuery("the range holds 9 rows", code="too_many_rows"), "ko").to_plotly_json())
    assert "요청을 처리할 수 없습니다" in alert and "the range holds 9 rows" in alert and "CSV" in alert
    _, problems = parse_view_state({"site": "99"}, registry)
    assert "site=99" in str(make_problems_alert(problems, "en").to_plotly_json())
    assert make_problems_alert([], "en") is None


def test_every_message_has_both_languages_with_the_same_placeholders() -> None:
    assert LANGS == ("en", "ko") and normalize_lang("ko-KR") == "ko" and normalize_lang(None) == "en"
    for key, (en, ko) in MESSAGES.items():
        assert en.strip() and ko.strip(), key
        assert set(re.findall(r"{(\w+)", en)) == set(re.findall(r"{(\w+)", ko)), key
    assert translate("bank_n", "ko", n=2) == "뱅크 2" and get_translator("en")("rack_n", n=3) == "Rack 3"


def _used_keys() -> set[str]:
    """Literal message keys passed to t(...) or translate(...) in pages/ and components/."""
    keys: set[str] = set()
    for path in [*ROOT.glob("pages/*.py"), *ROOT.glob("components/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("t", "translate") \
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                keys.add(node.args[0].value)
    return keys


def test_every_key_the_ui_uses_exists() -> None:
    used = _used_keys()
    assert len(used) > 100
    assert used - set(MESSAGES) == set()
    built = {f"level_{lv}" for lv in ("ok", "warning", "fault", "nodata")} | {
        f"component_{c}" for c in ("bank", "rack", "pcs", "etc")} | {f"quick_{s}" for s in ("1h", "24h", "7d", "all")}
    assert built - set(MESSAGES) == set()


def test_url_writers_leave_the_address_alone_when_nothing_changed(registry: Registry) -> None:
    import dash

    from pages._selection import search_or_no_update

    state, _ = parse_view_state({"site": "2", "start": "2022-09-01T00:00", "end": "2022-09-02T00:00"}, registry)
    same = apply_changes(state, registry, site="2", bank="1", rack="1", start="2022-09-01 00:00",
                         end="2022-09-02 00:00")
    assert search_or_no_update(same, state) is dash.no_update  # a re-render re-fires the pickers
    moved = apply_changes(state, registry, rack="2")
    assert search_or_no_update(moved, state) == moved.to_search() and "rack=2" in moved.to_search()


def test_sos_figure_shades_the_safety_bands() -> None:
    fig = make_sos_figure([{"time": "2022-09-01T10:00:00+09:00", "sos_score": 0.9}], "en")
    assert [(round(s.y0, 4), round(s.y1, 4)) for s in fig.layout.shapes] == [(0, 0.4096), (0.4096, 0.8), (0.8, 1.0)]
