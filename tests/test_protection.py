"""Protection-map monitoring: each check at its limits on hand-made rows, both sources,
episodes, incremental evaluation on both databases, every injected anomaly of the
generator, and the routes with exact bodies and every kind of bad input."""

from __future__ import annotations

import dataclasses
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from services.core.appdb import metadata
from services.core.registry import Bank, Site, demo_sites
from services.demo.anomalies import ANOMALIES, list_anomalies
from services.demo.writer import generate_day
from services.protection.codes import ERROR_CODES
from services.protection.episodes import group_episodes
from services.protection.evaluation import evaluate_site, rewind_site
from services.protection.events import EventFilter, count_levels, list_events
from services.protection.judging import finish_events, judge_bank_rows, judge_rack_rows
from services.protection.maps import load_protection_map
from services.protection.tables import protection_episode, protection_event, protection_watermark
from services.storage.sitestore import SiteStore
from tests.conftest import DEMO_DAY, DemoEnv, site_id_for

SEOUL = ZoneInfo("Asia/Seoul")
DAY = date.fromisoformat(DEMO_DAY)
SITE1 = demo_sites()[0]
LIMITS = load_protection_map(SITE1).limits["rack"]
OPEN_COLUMNS = ["id", "bank_id", "rack_id", "error_code", "level", "source", "start_time", "end_time", "peak_value",
                "sample_count"]


def epoch(local: str) -> int:
    return int(datetime.fromisoformat(local).replace(tzinfo=SEOUL).timestamp())


def rack_rows(values: dict[str, list[Any]], start: int = 1_000_000_000, rack: int = 1) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    return pd.DataFrame({"TIMESTAMP": np.arange(start, start + n), "BANK_ID": 1, "RACK_ID": rack, **values})


def levels_of(events: pd.DataFrame, code: int, source: str = "threshold") -> dict[int, int]:
    """timestamp offset from the first row -> level, of one code and source."""
    part = events[(events.error_code == code) & (events.source == source)]
    return {int(t) - 1_000_000_000: int(lv) for t, lv in zip(part.timestamp, part.level, strict=True)}


# ----- each check at, just below and just above its limits ----------------------------------

@pytest.mark.parametrize("code,field,warning,fault,step,sign", [
    (6, "RACK_MAX_CELL_VOLTAGE", 4.05, 4.10, 0.001, 1),
    (5, "RACK_MIN_CELL_VOLTAGE", 3.20, 3.00, 0.001, -1),
    (4, "RACK_CELL_VOLTAGE_GAP", 0.3, 0.5, 0.001, 1),
    (7, "RACK_CURRENT", 100.0, 120.0, 0.1, 1),
    (8, "RACK_CURRENT", -100.0, -120.0, 0.1, -1),
    (3, "RACK_MAX_CELL_TEMPERATURE", 50.0, 55.0, 0.1, 1),
    (2, "RACK_MIN_CELL_TEMPERATURE", 0.0, -10.0, 0.1, -1),
    (1, "RACK_CELL_TEMPERATURE_GAP", 20.0, 25.0, 0.1, 1),
])
def test_each_check_is_strictly_beyond_its_limits(code: int, field: str, warning: float, fault: float, step: float,
                                                  sign: int) -> None:
    # just inside, at, just beyond the warning limit; just inside, at, just beyond the fault limit
    values = [round(v, 4) for v in (warning - sign * step, warning, warning + sign * step,
                                    fault - sign * step, fault, fault + sign * step)]
    events = judge_rack_rows(rack_rows({field: values}), LIMITS)
    assert levels_of(events, code) == {2: 1, 3: 1, 4: 1, 5: 2}
    assert set(events.error_code) == {code} and set(events.source) == {"threshold"}
    assert list(events.value) == values[2:]


def test_the_absolute_current_rule_splits_by_direction() -> None:
    events = judge_rack_rows(rack_rows({"RACK_CURRENT": [-121.0, 121.0, -100.0, -100.1, 0.0, None, 120.0, -120.0]}),
                             LIMITS)
    assert list(zip(events.timestamp - 1_000_000_000, events.error_code, events.level, events.value, strict=True)) == [
        (0, 8, 2, -121.0), (1, 7, 2, 121.0), (3, 8, 1, -100.1), (6, 7, 1, 120.0), (7, 8, 1, -120.0)]
    assert list(events.description_eng)[:2] == [
        "Rack discharge over-current fault: rack current -121.0 A (limit 120 A)",
        "Rack charge over-current fault: rack current 121.0 A (limit 120 A)"]
    assert events.description.iloc[0] == "랙 방전 과전류 고장: 랙 전류 -121.0 A (기준 120 A)"


def test_descriptions_carry_value_and_position_in_both_languages() -> None:
    frame = rack_rows({"RACK_MAX_CELL_VOLTAGE": [4.062, 4.112], "RACK_MAX_CELL_VOLTAGE_POSITION": [58.0, None],
                       "RACK_CELL_TEMPERATURE_GAP": [21.3, 1.0], "RACK_MAX_CELL_TEMPERATURE_POSITION": [12.0, 1.0],
                       "RACK_MIN_CELL_TEMPERATURE_POSITION": [3.0, 1.0]})
    events = judge_rack_rows(frame, LIMITS)
    assert list(events.description_eng) == [
        "Rack temperature imbalance warning: cell temperature gap 21.3 °C, max at sensor 12, min at sensor 3 "
        "(limit 20 °C)",
        "Rack over-voltage warning: max cell voltage 4.062 V at cell 58 (limit 4.05 V)",
        "Rack over-voltage fault: max cell voltage 4.112 V (limit 4.1 V)"]
    assert list(events.description) == [
        "랙 온도 불균형 경고: 셀 온도 편차 21.3 °C, 최대 센서 12번, 최소 센서 3번 (기준 20 °C)",
        "랙 과전압 경고: 최대 셀 전압 4.062 V, 셀 58번 (기준 4.05 V)",
        "랙 과전압 고장: 최대 셀 전압 4.112 V (기준 4.1 V)"]


def test_every_bms_flag_gives_its_code_and_level() -> None:
    from services.protection.codes import RACK_FLAGS

    names = list(RACK_FLAGS)
    frame = rack_rows({name: [1 if j == i else 0 for j in range(len(names))] for i, name in enumerate(names)})
    frame["RACK_MIN_CELL_VOLTAGE"] = 3.5
    frame["RACK_MIN_CELL_VOLTAGE_POSITION"] = 7.0
    events = judge_rack_rows(frame, {})
    assert list(zip(events.error_code, events.level, strict=True)) == list(RACK_FLAGS.values())
    assert set(events.source) == {"bms"} and set(events.rack_id) == {1}
    by_code = events.set_index(["error_code", "level"])
    assert by_code.loc[(5, 2), "description_eng"] == ("Rack under-voltage fault: min cell voltage 3.500 V at cell 7 "
                                                      "(BMS flag)")
    assert by_code.loc[(5, 1), "description"] == "랙 저전압 경고: 최소 셀 전압 3.500 V, 셀 7번 (BMS 플래그)"
    assert by_code.loc[(9, 2), "description_eng"] == "Rack charge relay (+) failure (BMS flag)"
    assert by_code.loc[(13, 2), "description"] == "트레이-랙 통신 이상 (BMS 플래그)"
    assert np.isnan(by_code.loc[(13, 2), "value"])


def test_no_flag_and_no_limit_means_no_event() -> None:
    frame = rack_rows({"RACK_MAX_CELL_VOLTAGE": [4.0, None], "RACK_OVER_VOLTAGE_PROTECTION_FAULT": [0, None],
                       "RACK_CURRENT": [50.0, -50.0]})
    assert judge_rack_rows(frame, LIMITS).empty


@pytest.mark.parametrize("columns,expected", [
    ({"MASTER_RACK_COMMUNICATION_FAULT": ['{"rack1": 0, "rack2": 1}', '{"rack1": 1, "rack2": 1}',
                                         '{"rack1": 0, "rack2": 0}', None],
      "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS": [1, 1, 0, 1]},
     [(0, 1.0, "Master rack BMS communication error: rack 2 (BMS flag)"),
      (1, 2.0, "Master rack BMS communication error: racks 1, 2 (BMS flag)"),
      (3, None, "Master rack BMS communication error (BMS flag)")]),
    ({"MASTER_RACK_COMMUNICATION_FAULT": [1, 0, 0, 1], "RACK_N001_MASTER_RACK_COMMUNICATION_FAULT": [0, 1, 0, 0],
      "RACK_N003_MASTER_RACK_COMMUNICATION_FAULT": [1, 0, 0, 0]},
     [(0, 1.0, "Master rack BMS communication error: rack 3 (BMS flag)"),
      (1, 1.0, "Master rack BMS communication error: rack 1 (BMS flag)"),
      (3, None, "Master rack BMS communication error (BMS flag)")]),
])
def test_bank_master_communication_fault_is_code_14_on_rack_0(columns: dict[str, list[Any]],
                                                              expected: list[tuple[int, Any, str]]) -> None:
    frame = pd.DataFrame({"TIMESTAMP": [10, 11, 12, 13], "BANK_ID": 2, **columns})
    events = finish_events(judge_bank_rows(frame))
    got = [(int(t) - 10, None if np.isnan(v) else v, d) for t, v, d in
           zip(events.timestamp, events.value, events.description_eng, strict=True)]
    assert got == expected
    assert set(events.error_code) == {14} and set(events.level) == {2} and set(events.rack_id) == {0}
    assert set(events.bank_id) == {2} and set(events.source) == {"bms"}
    assert events.description.iloc[0].startswith("마스터 랙 BMS 통신 오류: 랙 ")


# ----- episodes ------------------------------------------------------------------------------

def event_frame(times: list[int], values: list[float], code: int = 6, level: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": times, "bank_id": 1, "rack_id": 2, "error_code": code, "level": level,
                         "source": "threshold", "value": values})


@pytest.mark.parametrize("gap_s,expected", [
    (60, [(0, 64, 4.07, 4), (125, 125, 4.06, 1)]),  # 60 s later: same episode; 61 s later: a new one
    (30, [(0, 4, 4.06, 3), (64, 64, 4.07, 1), (125, 125, 4.06, 1)]),
])
def test_episodes_split_on_quiet_gaps_longer_than_the_setting(gap_s: int, expected: list[tuple[Any, ...]]) -> None:
    events = event_frame([0, 2, 4, 64, 125], [4.051, 4.06, 4.055, 4.07, 4.06])
    changes = group_episodes(events, pd.DataFrame(columns=OPEN_COLUMNS), gap_s)
    got = changes.inserts[["start_time", "end_time", "peak_value", "sample_count"]].itertuples(index=False)
    assert [tuple(r) for r in got] == expected
    assert changes.updates.empty


def test_episodes_keep_keys_apart_and_take_the_peak_by_direction() -> None:
    events = pd.concat([event_frame([0, 1], [3.15, 3.1], code=5), event_frame([0, 1], [3.15, 2.9], code=5, level=2),
                        event_frame([1], [4.2], code=6)], ignore_index=True)
    changes = group_episodes(events, pd.DataFrame(columns=OPEN_COLUMNS), 60)
    got = {(r.error_code, r.level): (r.peak_value, r.sample_count) for r in changes.inserts.itertuples()}
    assert got == {(5, 1): (3.1, 2), (5, 2): (2.9, 2), (6, 1): (4.2, 1)}


def test_open_episodes_are_extended_across_batches() -> None:
    open_eps = pd.DataFrame([[7, 1, 2, 6, 1, "threshold", 0, 4, 4.06, 3]], columns=OPEN_COLUMNS)
    changes = group_episodes(event_frame([50, 51, 200], [4.08, 4.05, 4.07]), open_eps, 60)
    assert changes.updates.to_dict("records") == [{"id": 7, "end_time": 51, "peak_value": 4.08, "sample_count": 5}]
    assert [tuple(r) for r in changes.inserts[["start_time", "end_time", "sample_count"]].itertuples(index=False)] \
        == [(200, 200, 1)]


# ----- incremental evaluation on both databases ------------------------------------------------

@pytest.fixture
def app_engine(backend: str, tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """A fresh, empty app database on the backend (a PostgreSQL schema of the session's database)."""
    if backend == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    else:
        url = request.getfixturevalue("pg_url")
        schema = f"app_{secrets.token_hex(4)}"
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def small_site(place_site: Callable[[Site], Site], base: Site, racks: tuple[int, ...]) -> SiteStore:
    store = SiteStore(place_site(dataclasses.replace(base, banks=(Bank(1, racks),))))
    store.create_schema()
    return store


def timed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(TIMESTAMP=pd.to_datetime(frame["TIMESTAMP"], unit="s", utc=True))


def stored(engine: sa.Engine, table: sa.Table, *columns: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*[table.c[c] for c in columns]).order_by(table.c.id)).all()
    return [tuple(r) for r in rows]


T0 = epoch("2022-09-01T13:00:00")


def test_evaluation_is_incremental(place_site: Callable[[Site], Site], app_engine: sa.Engine) -> None:
    store = small_site(place_site, SITE1, (1, 2))
    first = rack_rows({"RACK_MAX_CELL_VOLTAGE": [4.0, 4.06, 4.11, 4.0], "RACK_MAX_CELL_VOLTAGE_POSITION": [1.0] * 4,
                       "RACK_OVER_VOLTAGE_PROTECTION_WARNING": [0, 1, 1, 0]}, start=T0, rack=2)
    store.write_frame("rack", timed(first))
    one = evaluate_site(app_engine, store)
    assert (one.samples, one.events) == ({"rack": 4, "bank": 0}, {"threshold": 2, "bms": 2})
    assert one.watermarks == {"rack": T0 + 3, "bank": None}
    again = evaluate_site(app_engine, store)
    assert (again.samples, again.total_events, again.episodes_opened) == ({"rack": 0, "bank": 0}, 0, 0)
    assert len(stored(app_engine, protection_event, "id")) == 4

    # new rows: only their events are added; the open episodes of the same key are extended
    later = rack_rows({"RACK_MAX_CELL_VOLTAGE": [4.07, 4.0], "RACK_MAX_CELL_VOLTAGE_POSITION": [1.0, 1.0],
                       "RACK_OVER_VOLTAGE_PROTECTION_WARNING": [1, 0]}, start=T0 + 30, rack=2)
    store.write_frame("rack", timed(later))
    two = evaluate_site(app_engine, store)
    assert (two.samples["rack"], two.events, two.episodes_opened, two.episodes_extended) == (
        2, {"threshold": 1, "bms": 1}, 0, 2)
    assert stored(app_engine, protection_event, "timestamp", "error_code", "level", "source", "value") == [
        (T0 + 1, 6, 1, "bms", 4.06), (T0 + 1, 6, 1, "threshold", 4.06), (T0 + 2, 6, 1, "bms", 4.11),
        (T0 + 2, 6, 2, "threshold", 4.11), (T0 + 30, 6, 1, "bms", 4.07), (T0 + 30, 6, 1, "threshold", 4.07)]
    assert stored(app_engine, protection_episode, "level", "source", "start_time", "end_time", "peak_value",
                  "sample_count", "is_open") == [
        (1, "bms", T0 + 1, T0 + 30, 4.11, 3, True), (1, "threshold", T0 + 1, T0 + 30, 4.07, 2, True),
        (2, "threshold", T0 + 2, T0 + 2, 4.11, 1, True)]

    # a row more than the gap after the last events closes their episodes
    store.write_frame("rack", timed(rack_rows({"RACK_MAX_CELL_VOLTAGE": [4.0]}, start=T0 + 100, rack=1)))
    evaluate_site(app_engine, store)
    assert {r[0] for r in stored(app_engine, protection_episode, "is_open")} == {False}
    with app_engine.connect() as conn:
        mark = conn.execute(sa.select(protection_watermark.c.last_timestamp, protection_watermark.c.samples)
                            .where(protection_watermark.c.component == "rack")).one()
    assert tuple(mark) == (T0 + 100, 7)


def test_rewind_judges_again_from_a_time(place_site: Callable[[Site], Site], app_engine: sa.Engine) -> None:
    store = small_site(place_site, SITE1, (1,))
    store.write_frame("rack", timed(rack_rows({"RACK_MAX_CELL_VOLTAGE": [4.06] * 6}, start=T0)))
    evaluate_site(app_engine, store)
    rewind_site(app_engine, store.site, datetime.fromtimestamp(T0 + 3, SEOUL))
    assert stored(app_engine, protection_episode, "start_time", "end_time", "sample_count") == [(T0, T0 + 2, 3)]
    store.write_frame("rack", timed(rack_rows({"RACK_MAX_CELL_VOLTAGE": [4.0] * 3}, start=T0 + 3)))  # corrected rows
    again = evaluate_site(app_engine, store)
    assert (again.samples["rack"], again.total_events) == (3, 0)
    assert [r[0] for r in stored(app_engine, protection_event, "timestamp")] == [T0, T0 + 1, T0 + 2]
    assert count_levels(app_engine, 1, T0 - 3600, T0 + 3600, 60, T0 - 3600, SEOUL) == [
        {"time": "2022-09-01T13:00:00+09:00", "operating_site": 1, "level": 1, "level_count": 3}]


def test_bank_rows_give_code_14_incrementally(place_site: Callable[[Site], Site], app_engine: sa.Engine) -> None:
    three = demo_sites()[2]
    store = small_site(place_site, three, (1, 2))
    bank = pd.DataFrame({"TIMESTAMP": [T0, T0 + 1, T0 + 2], "BANK_ID": 1,
                         "MASTER_RACK_COMMUNICATION_FAULT": ['{"rack1": 0, "rack2": 1}'] * 2
                         + ['{"rack1": 0, "rack2": 0}'],
                         "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS": [1, 1, 0]})
    store.write_frame("bank", timed(bank))
    summary = evaluate_site(app_engine, store)
    assert (summary.samples, summary.events["bms"]) == ({"rack": 0, "bank": 3}, 2)
    assert stored(app_engine, protection_event, "timestamp", "bank_id", "rack_id", "error_code", "value") == [
        (T0, 1, 0, 14, 1.0), (T0 + 1, 1, 0, 14, 1.0)]
    assert stored(app_engine, protection_episode, "error_code", "start_time", "end_time", "sample_count") == [
        (14, T0, T0 + 1, 2)]


# ----- the generator's anomalies ---------------------------------------------------------------

COVERED_KINDS = {"weak_cell", "over_voltage", "over_temperature", "communication_fault", "missing_seconds",
                 "duplicated_second"}


def test_every_anomaly_kind_of_the_generator_is_covered() -> None:
    assert {a.kind for a in ANOMALIES} == COVERED_KINDS


def generated_store(place_site: Callable[[Site], Site], base: Site, rack: int, day: date, hours: tuple[int, int]
                    ) -> SiteStore:
    """A one-rack copy of a demo site holding the generator's rows of `hours` on `day`."""
    site = dataclasses.replace(base, banks=(Bank(1, (rack,)),), demo_anchor=DAY)
    store = small_site(place_site, site, (rack,))
    frames = generate_day(store.site, day, seed=7, anchor=DAY)
    lo = pd.Timestamp(datetime.combine(day, time(hours[0]), SEOUL))
    hi = pd.Timestamp(datetime.combine(day, time(hours[1]), SEOUL))
    for component in ("rack", "bank"):
        frame = frames[component]
        store.write_frame(component, frame[(frame.TIMESTAMP >= lo) & (frame.TIMESTAMP < hi)])
    return store


def events_of(engine: sa.Engine, site_id: int, code: int, level: int, source: str) -> list[tuple[int, float]]:
    e = protection_event.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(e.timestamp, e.value).where(  # type: ignore[misc]
            e.operating_site == site_id, e.error_code == code, e.level == level, e.source == source)
            .order_by(e.timestamp)).all()]


def window_of(site: Site, kind: str, day: date) -> tuple[int, int]:
    (w,) = [w for w in list_anomalies(site, DAY, datetime.combine(day, time(0), SEOUL),
                                      datetime.combine(day + timedelta(days=1), time(0), SEOUL))
            if w.anomaly.kind == kind]
    return int(w.start.timestamp()), int(w.end.timestamp())


def test_communication_fault_burst(place_site: Callable[[Site], Site], app_engine: sa.Engine) -> None:
    store = generated_store(place_site, demo_sites()[2], 2, DAY, (17, 19))
    evaluate_site(app_engine, store)
    lo, hi = window_of(store.site, "communication_fault", DAY)
    assert (lo, hi) == (epoch("2022-09-01T18:00:00"), epoch("2022-09-01T18:02:00"))
    assert events_of(app_engine, 3, 14, 2, "bms") == [(t, 1.0) for t in range(lo, hi)]  # one rack in fault
    assert [t for t, _ in events_of(app_engine, 3, 13, 2, "bms")] == list(range(lo, hi))
    e = protection_episode.c
    with app_engine.connect() as conn:
        rows = conn.execute(sa.select(e.error_code, e.bank_id, e.rack_id, e.start_time, e.end_time, e.sample_count,
                                      e.is_open).order_by(e.error_code)).all()
        text = conn.execute(sa.select(protection_event.c.description_eng).where(
            protection_event.c.error_code == 14)).scalars().first()
    assert [tuple(r) for r in rows] == [(13, 1, 2, lo, hi - 1, 120, False), (14, 1, 0, lo, hi - 1, 120, False)]
    assert text == "Master rack BMS communication error: rack 2 (BMS flag)"


def test_over_voltage_anomaly(place_site: Callable[[Site], Site], app_engine: sa.Engine) -> None:
    store = generated_store(place_site, SITE1, 3, DAY, (13, 14))
    evaluate_site(app_engine, store)
    lo, hi = window_of(store.site, "over_voltage", DAY)
    faults = events_of(app_engine, 1, 6, 2, "threshold")
    assert faults == [(epoch("2022-09-01T13:35:02") + i, v) for i, v in enumerate([4.104, 4.108, 4.112, 4.109,
                                                                                     4.103])]
    assert events_of(app_engine, 1, 6, 2, "bms") == faults
    warnings = events_of(app_engine, 1, 6, 1, "threshold")
    assert 100 <= len(warnings) + len(faults) <= 115 and all(lo <= t < hi and 4.05 < v <= 4.1 for t, v in warnings)
    assert len(events_of(app_engine, 1, 6, 1, "bms")) == len(warnings) + len(faults)  # the BMS keeps its warning
    with app_engine.connect() as conn:
        text = conn.execute(sa.select(protection_event.c.description_eng).where(
            protection_event.c.level == 2, protection_event.c.source == "threshold")).scalars().first()
        fault_episodes = conn.execute(sa.select(protection_episode.c.start_time, protection_episode.c.peak_value,
                                                protection_episode.c.sample_count).where(
            protection_episode.c.level == 2, protection_episode.c.source == "threshold")).all()
    assert text == "Rack over-voltage fault: max cell voltage 4.104 V at cell 58 (limit 4.1 V)"
    assert [tuple(r) for r in fault_episodes] == [(epoch("2022-09-01T13:35:02"), 4.112, 5)]


def test_weak_cell_anomaly_on_day_one(place_site: Callable[[Site], Site], app_engine: sa.Engine) -> None:
    day1 = DAY + timedelta(days=1)
    store = generated_store(place_site, SITE1, 2, day1, (13, 15))
    evaluate_site(app_engine, store)
    lo, hi = window_of(store.site, "weak_cell", day1)
    gaps = events_of(app_engine, 1, 4, 1, "threshold")
    assert gaps and lo <= gaps[0][0] < hi and all(0.3 < v <= 0.5 for _, v in gaps)
    assert events_of(app_engine, 1, 4, 1, "bms") == gaps
    assert events_of(app_engine, 1, 4, 2, "threshold") == []  # the imbalance fault comes days later
    assert events_of(app_engine, 1, 6, 2, "threshold")  # the overcharged weak cell also trips the fault limit


def test_over_temperature_anomaly_on_day_one(place_site: Callable[[Site], Site], app_engine: sa.Engine) -> None:
    day1 = DAY + timedelta(days=1)
    two = demo_sites()[1]
    store = generated_store(place_site, two, 2, day1, (14, 16))
    evaluate_site(app_engine, store)
    hot = events_of(app_engine, 2, 3, 1, "threshold")
    lo, hi = window_of(store.site, "over_temperature", day1)
    assert 20 * 60 <= len(hot) <= 30 * 60 and all(lo <= t < hi for t, _ in hot)
    assert max(v for _, v in hot) == 52.0 and events_of(app_engine, 2, 3, 2, "threshold") == []
    assert events_of(app_engine, 2, 3, 1, "bms") == hot
    with app_engine.connect() as conn:
        episodes = conn.execute(sa.select(protection_episode.c.error_code, protection_episode.c.peak_value)
                                .where(protection_episode.c.source == "threshold")).all()
    assert [tuple(r) for r in episodes] == [(3, 52.0)]


# ----- the demo portal: evaluated once per session ---------------------------------------------

@pytest.fixture(scope="session")
def evaluated(app: Any, demo_env: DemoEnv) -> dict[int, Any]:
    """Every demo site judged once into the session app's database."""
    portal = app.extensions["ess"]
    return {sid: evaluate_site(portal, portal.store(sid)) for sid in demo_env.sites}


_frames: dict[int, dict[str, pd.DataFrame]] = {}


def demo_frames(site: Site) -> dict[str, pd.DataFrame]:
    """The generated rack and bank rows of a demo_env site, as its store keeps them."""
    if site.id in _frames:
        return _frames[site.id]
    out = {}
    for comp, frame in generate_day(site, DAY, seed=7, anchor=DAY).items():
        if comp in ("rack", "bank"):
            key = ["TIMESTAMP", "BANK_ID"] + (["RACK_ID"] if comp == "rack" else [])
            out[comp] = frame.drop_duplicates(key, keep="last").reset_index(drop=True)
    _frames[site.id] = out
    return out


def plain_events(site: Site) -> Counter[tuple[int, int, str]]:
    """The events the reference tables predict, counted per (code, level, source), computed
    from the generated rows with plain pandas (independent of services.protection)."""
    rack, bank = demo_frames(site)["rack"], demo_frames(site)["bank"]
    out: Counter[tuple[int, int, str]] = Counter()
    checks = [(6, rack.RACK_MAX_CELL_VOLTAGE, 4.05, 4.10), (5, -rack.RACK_MIN_CELL_VOLTAGE, -3.2, -3.0),
              (4, rack.RACK_CELL_VOLTAGE_GAP, 0.3, 0.5), (7, rack.RACK_CURRENT.where(rack.RACK_CURRENT > 0), 100, 120),
              (8, -rack.RACK_CURRENT.where(rack.RACK_CURRENT < 0), 100, 120),
              (3, rack.RACK_MAX_CELL_TEMPERATURE, 50, 55), (2, -rack.RACK_MIN_CELL_TEMPERATURE, 0, 10),
              (1, rack.RACK_CELL_TEMPERATURE_GAP, 20, 25)]
    for code, x, warning, fault in checks:
        out[(code, 2, "threshold")] += int((x > fault).sum())
        out[(code, 1, "threshold")] += int(((x > warning) & ~(x > fault)).sum())
    from services.protection.codes import RACK_FLAGS

    for flag, (code, level) in RACK_FLAGS.items():
        out[(code, level, "bms")] += int((rack[flag] != 0).sum())
    master = bank.MASTER_RACK_COMMUNICATION_FAULT
    comm = master.str.contains(": 1") if master.dtype == object else master != 0
    for column in bank.columns:
        if column == "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS" or column.startswith("RACK_N0"):
            comm |= bank[column] != 0
    out[(14, 2, "bms")] += int(comm.sum())
    return +out


def site_counts(engine: sa.Engine, site_id: int) -> Counter[tuple[int, int, str]]:
    e = protection_event.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(e.error_code, e.level, e.source, sa.func.count()).where(
            e.operating_site == site_id).group_by(e.error_code, e.level, e.source)).all()
    return Counter({(c, lv, s): n for c, lv, s, n in rows})


@pytest.mark.parametrize("base", [1, 3])
def test_demo_events_equal_the_plain_computation(app: Any, evaluated: dict[int, Any], demo_env: DemoEnv,
                                                 backend: str, base: int) -> None:
    sid = site_id_for(backend, base)
    expected = plain_events(demo_env.sites[sid])
    assert site_counts(app.extensions["ess"].app_db, sid) == expected
    # the generator places anomalies by site id: the PostgreSQL copies (ids 101-103) have none
    assert sum(expected.values()) > 1000 or backend == "postgresql"


def test_missing_and_duplicated_seconds_are_judged_once(app: Any, evaluated: dict[int, Any], demo_env: DemoEnv,
                                                        backend: str) -> None:
    for base in (1, 2, 3):
        sid = site_id_for(backend, base)
        site = demo_env.sites[sid]
        assert evaluated[sid].samples == {"rack": 86_390 * len(site.rack_keys), "bank": 86_390 * len(site.banks)}
        lo, hi = window_of(site, "missing_seconds", DAY)
        f = EventFilter(site_ids=(sid,), start=lo - 600, end=hi + 600)
        assert list_events(app.extensions["ess"].app_db, f, lambda _: SEOUL).count == 0




def test_second_evaluation_of_the_demo_adds_nothing(app: Any, evaluated: dict[int, Any], backend: str) -> None:
    portal = app.extensions["ess"]
    sid = site_id_for(backend, 3)
    before = site_counts(portal.app_db, sid)
    again = evaluate_site(portal, portal.store(sid))
    assert (again.samples, again.total_events) == ({"rack": 0, "bank": 0}, 0)
    assert site_counts(portal.app_db, sid) == before


# ----- routes --------------------------------------------------------------------------------

BASE = "/api/ess-feature/protectionmap"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + "?" + parts.query


def test_site_events_are_newest_first_in_the_original_shape(client: Any, evaluated: dict[int, Any]) -> None:
    sid = 3
    body = client.get(f"{BASE}/operating-sites/{sid}/?start-time=2022-09-01T18:01:59&end-time=2022-09-01T18:02:00"
                      ).get_json()
    assert body == {"count": 2, "next": None, "previous": None, "results": [
        {"timestamp": "2022-09-01T18:01:59+09:00",
         "error_code": {"id": 14, "description": "마스터 랙 BMS 통신 오류",
                        "description_eng": "Master rack BMS communication error"},
         "level": {"id": 2, "description": "고장(보호)"}, "bank_id": 1, "rack_id": 0, "operating_site": sid,
         "description": "마스터 랙 BMS 통신 오류: 랙 2 (BMS 플래그)",
         "description_eng": "Master rack BMS communication error: rack 2 (BMS flag)", "source": "bms", "value": 1.0},
        {"timestamp": "2022-09-01T18:01:59+09:00",
         "error_code": {"id": 13, "description": "트레이-랙 통신 이상",
                        "description_eng": "Tray-rack communication error"},
         "level": {"id": 2, "description": "고장(보호)"}, "bank_id": 1, "rack_id": 2, "operating_site": sid,
         "description": "트레이-랙 통신 이상 (BMS 플래그)",
         "description_eng": "Tray-rack communication error (BMS flag)", "source": "bms", "value": None}]}
    assert client.get(f"{BASE}/operating-sites/{sid}/?time=2022-09-01T18:01:59").get_json() == body


def test_paging_follows_cursors_newest_first(client: Any, app: Any, evaluated: dict[int, Any]) -> None:
    sid = 1
    total = sum(site_counts(app.extensions["ess"].app_db, sid).values())
    first = client.get(f"{BASE}/operating-sites/{sid}/?date=2022-09-01").get_json()
    assert (first["count"], len(first["results"]), first["previous"]) == (total, 100, None)
    second = client.get(path_of(first["next"])).get_json()
    assert second["results"] == client.get(f"{BASE}/operating-sites/{sid}/?date=2022-09-01&page=2").get_json()[
        "results"]
    assert path_of(second["previous"]) == f"{BASE}/operating-sites/{sid}/?date=2022-09-01"
    stamps = [r["timestamp"] for r in first["results"] + second["results"]]
    assert stamps == sorted(stamps, reverse=True)
    small = client.get(f"{BASE}/operating-sites/{sid}/?date=2022-09-01&page_size=7").get_json()
    assert small["results"] == first["results"][:7]


def test_filters(client: Any, evaluated: dict[int, Any]) -> None:
    sid = 3
    url = f"{BASE}/operating-sites/{sid}/?date=2022-09-01&page_size=1000"

    def count(query: str) -> int:
        return int(client.get(url + query).get_json()["count"])

    assert count("&error_code=14") == count("&rack_id=0") == count("&error_code=14&bank_id=1&level=2") == 120
    assert count("&error_code=13&rack_id=2&source=bms") == 120
    assert count("&message=RACK 2") == count("&message=랙 2") == count("&error_code=14") + 0
    assert count("&message=(bms flag)&source=threshold") == 0
    assert count("&message=%25") == count("&message=_") == 0  # LIKE wildcards are literal characters
    assert count("&level=1") + count("&level=2") == count("")
    assert count("&source=bms") + count("&source=threshold") == count("")
    results = client.get(f"{BASE}/operating-sites/{sid}/?date=2022-09-01&error_code=6&level=2&source=threshold"
                         "&page_size=3").get_json()["results"]
    assert [(r["error_code"]["id"], r["level"]["id"], r["source"], r["rack_id"]) for r in results] == [
        (6, 2, "threshold", 1)] * 3


def test_all_sites_route(client: Any, app: Any, evaluated: dict[int, Any]) -> None:
    body = client.get(f"{BASE}/?start-time=2022-09-01T18:00:00&end-time=2022-09-01T18:00:01&error_code=14").get_json()
    assert [r["operating_site"] for r in body["results"]] == [3]
    assert {r["timestamp"] for r in body["results"]} == {"2022-09-01T18:00:00+09:00"}
    engine = app.extensions["ess"].app_db
    total = sum(sum(site_counts(engine, sid).values()) for sid in evaluated)
    assert client.get(f"{BASE}?date=2022-09-01").get_json()["count"] == total


def hourly(site_id: int, per_level: Counter[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"time": t, "operating_site": site_id, "level": lv, "level_count": n}
            for (t, lv), n in sorted(per_level.items(), key=lambda kv: (kv[0][0], -kv[0][1]), reverse=True)]


def test_log_level_count_per_sample_and_per_episode(client: Any, app: Any, evaluated: dict[int, Any]) -> None:
    sid = 3
    engine = app.extensions["ess"].app_db
    e = protection_event.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(e.timestamp, e.level).where(e.operating_site == sid)).all()
    per_sample: Counter[tuple[str, int]] = Counter(
        (datetime.fromtimestamp(t - t % 3600, SEOUL).isoformat(), lv) for t, lv in rows)
    url = f"{BASE}/operating-sites/{sid}/stats/log-level-count/?time-bucket-width=1hour&date=2022-09-01"
    body = client.get(url).get_json()
    assert body == hourly(sid, per_sample)
    assert {r["time"] for r in body} >= {"2022-09-01T18:00:00+09:00", "2022-09-01T13:00:00+09:00"}
    assert [r for r in body if r["time"] == "2022-09-01T18:00:00+09:00"] == [
        {"time": "2022-09-01T18:00:00+09:00", "operating_site": sid, "level": 2, "level_count": 240}]
    daily = client.get(url.replace("1hour", "1days")).get_json()
    assert [(r["level"], r["level_count"]) for r in daily] == sorted(Counter(lv for _, lv in rows).items())
    episodes = client.get(url + "&count=episodes").get_json()
    assert [r for r in episodes if r["time"] == "2022-09-01T18:00:00+09:00"] == [
        {"time": "2022-09-01T18:00:00+09:00", "operating_site": sid, "level": 2, "level_count": 2}]
    assert client.get(url + "&error_code=14").get_json() == [
        {"time": "2022-09-01T18:00:00+09:00", "operating_site": sid, "level": 2, "level_count": 120}]
    assert count_levels(engine, sid, epoch("2022-09-01T00:00:00"), epoch("2022-09-02T00:00:00"), 86400,
                        epoch("2022-09-01T00:00:00"), SEOUL) == daily


@pytest.mark.parametrize("width,query", [(3600, {}), (86400, {"level": 2}), (600, {"error_code": 6}),
                                         (60, {"source": "bms", "bank_id": 1, "rack_id": 1})])
def test_per_minute_counts_equal_counting_the_events(app: Any, evaluated: dict[int, Any], width: int,
                                                     query: dict[str, Any]) -> None:
    engine = app.extensions["ess"].app_db
    day = epoch("2022-09-01T00:00:00")
    f = EventFilter(**query)
    fast = count_levels(engine, 3, day, day + 86400, width, day, SEOUL, f=f)
    assert fast == count_levels(engine, 3, day, day + 86400, width, day, SEOUL, f=f, rollup=False)
    assert sum(r["level_count"] for r in fast) > 100


def test_episodes_route(client: Any, evaluated: dict[int, Any]) -> None:
    sid = 3
    body = client.get(f"{BASE}/operating-sites/{sid}/episodes/?date=2022-09-01&error_code=14").get_json()
    assert body == {"count": 1, "next": None, "previous": None, "results": [{
        "start": "2022-09-01T18:00:00+09:00", "end": "2022-09-01T18:01:59+09:00", "duration_s": 119,
        "peak_value": 1.0, "sample_count": 120, "operating_site": sid, "bank_id": 1, "rack_id": 0,
        "error_code": {"id": 14, "description": "마스터 랙 BMS 통신 오류",
                       "description_eng": "Master rack BMS communication error"},
        "level": {"id": 2, "description": "고장(보호)"}, "source": "bms", "open": False}]}
    all_eps = client.get(f"{BASE}/operating-sites/{sid}/episodes/").get_json()
    starts = [r["start"] for r in all_eps["results"]]
    assert starts == sorted(starts, reverse=True) and all_eps["count"] >= 4
    assert client.get(f"{BASE}/operating-sites/{sid}/episodes/?open=true").get_json()["count"] == 0
    by_text = client.get(f"{BASE}/operating-sites/{sid}/episodes/?message=RACK 2").get_json()["results"]
    assert by_text == body["results"]  # the episode holding events whose text matches
    counted = client.get(f"{BASE}/operating-sites/{sid}/stats/log-level-count/?time-bucket-width=1days"
                         "&date=2022-09-01&count=episodes&message=Over-Voltage").get_json()
    over = client.get(f"{BASE}/operating-sites/{sid}/episodes/?date=2022-09-01&error_code=6").get_json()["results"]
    assert [(r["level"], r["level_count"]) for r in counted] == sorted(Counter(e["level"]["id"] for e in over).items())
    assert len(over) >= 4
    overlap = client.get(f"{BASE}/operating-sites/{sid}/episodes/?start-time=2022-09-01T18:01:00"
                         "&end-time=2022-09-01T18:01:01").get_json()
    assert sorted(r["error_code"]["id"] for r in overlap["results"]) == [13, 14]


def test_map_route(client: Any, demo_env: DemoEnv) -> None:
    body = client.get(f"{BASE}/operating-sites/2/map/").get_json()
    assert (body["operating_site"], body["version"]) == (2, "4.1-portal.1")
    assert body["limits"]["rack"]["rack_current"] == {"warning_above": 100.0, "fault_above": 120.0,
                                                      "warning_below": None, "fault_below": None, "absolute": True}
    assert body["limits"]["rack"]["rack_min_cell_voltage"]["fault_below"] == 3.0
    assert [c["error_code"] for c in body["checks"]] == [6, 5, 4, 7, 8, 3, 2, 1]
    assert [c["id"] for c in body["error_codes"]] == list(ERROR_CODES)
    assert body["map"]["rack"]["RACK_MAX_CELL_VOLTAGE"]["fault"] == {"above": 4.1}


@pytest.mark.parametrize("query,status,code", [
    ("?level=3", 400, "unknown_level"),
    ("?level=warning", 400, "invalid_parameter"),
    ("?error_code=15", 400, "unknown_error_code"),
    ("?error_code=0", 400, "unknown_error_code"),
    ("?source=sensor", 400, "unknown_source"),
    ("?start-time=yesterday&end-time=2022-09-02", 400, "invalid_parameter"),
    ("?start-time=2022-09-02&end-time=2022-09-01", 400, "invalid_parameter"),
    ("?start-time=2022-09-01", 400, "missing_parameter"),
    ("?time=2022-09-01T10:00:00&start-time=2022-09-01&end-time=2022-09-02", 400, "invalid_parameter"),
    ("?time=noon", 400, "invalid_parameter"),
    ("?cursor=abc", 400, "invalid_cursor"),
    ("?page=99999", 404, "page_out_of_range"),
    ("?bank_id=5", 404, "bank_not_found"),
    ("?bank_id=1&rack_id=9", 404, "rack_not_found"),
    ("?rack_id=9", 404, "rack_not_found"),
    ("?page_size=1001", 400, "invalid_parameter"),
    ("?message=" + "x" * 201, 400, "invalid_parameter"),
])
def test_bad_event_queries_are_problems(client: Any, demo_env: DemoEnv, query: str, status: int, code: str) -> None:
    resp = client.get(f"{BASE}/operating-sites/3/{query}")
    assert resp.status_code == status and resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert (body["status"], body["code"]) == (status, code) and "Traceback" not in body["detail"]


@pytest.mark.parametrize("path,status,code", [
    ("/operating-sites/99/", 404, "site_not_found"),
    ("/operating-sites/99/episodes/", 404, "site_not_found"),
    ("/operating-sites/99/map/", 404, "site_not_found"),
    ("/operating-sites/99/stats/log-level-count/?time-bucket-width=1hour&date=2022-09-01", 404, "site_not_found"),
    ("/operating-sites/3/stats/log-level-count/?date=2022-09-01", 400, "missing_parameter"),
    ("/operating-sites/3/stats/log-level-count/?time-bucket-width=1fortnight&date=2022-09-01", 400,
     "invalid_parameter"),
    ("/operating-sites/3/stats/log-level-count/?time-bucket-width=1hour", 400, "missing_parameter"),
    ("/operating-sites/3/stats/log-level-count/?time-bucket-width=1hour&date=2022-09-01&count=racks", 400,
     "invalid_parameter"),
    ("/operating-sites/3/stats/log-level-count/?time-bucket-width=1s&start-time=2022-01-01&end-time=2022-09-01", 400,
     "too_many_buckets"),
    ("/operating-sites/3/episodes/?open=maybe", 400, "invalid_parameter"),
    ("/?level=9", 400, "unknown_level"),
])
def test_bad_routes_are_problems(client: Any, demo_env: DemoEnv, path: str, status: int, code: str) -> None:
    resp = client.get(BASE + path)
    assert (resp.status_code, resp.mimetype, resp.get_json()["code"]) == (status, "application/problem+json", code)


def test_routes_are_in_the_openapi_document(client: Any) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for suffix in ("/", "/operating-sites/{site}/", "/operating-sites/{site}/stats/log-level-count/",
                   "/operating-sites/{site}/episodes/", "/operating-sites/{site}/map/"):
        assert BASE + suffix in paths
    names = {p["name"] for p in paths[BASE + "/operating-sites/{site}/"]["get"]["parameters"]}
    assert {"time", "start-time", "end-time", "level", "error_code", "bank_id", "rack_id", "message", "source",
            "page", "page_size", "cursor"} <= names
