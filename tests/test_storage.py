"""Storage on SQLite and PostgreSQL: schema from the catalogue, reflection, upsert."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from services.core import catalogue
from services.core.errors import ConfigError, NotFound, WriteError
from services.core.registry import Bank, Site, demo_sites
from services.storage import sitestore
from services.storage.dialect import EpochTime
from services.storage.schema import key_columns
from services.storage.sitestore import SiteStore

T0 = pd.Timestamp("2022-09-01 01:00:00", tz="UTC")


def small_site2() -> Site:
    return dataclasses.replace(demo_sites()[1], banks=(Bank(1, (1, 2)), Bank(2, (1,))))


def rack_frame(site: Site, seconds: int = 3, soc: float = 50.0) -> pd.DataFrame:
    """A rack frame with every catalogue column: zeros, plus recognisable values."""
    fields = catalogue.get_fields("rack", site.column_sets["rack"])
    rows = []
    for s in range(seconds):
        for bank, rack in site.rack_keys:
            row: dict[str, object] = {}
            for f in fields:
                row[f.name] = {"timestamp": None, "int": 0, "float": 0.0, "json": json.dumps({"module1": 0})}[f.kind]
            row.update(TIMESTAMP=T0 + pd.Timedelta(seconds=s), BANK_ID=bank, RACK_ID=rack,
                       RACK_SOC=soc + s + rack / 10, RACK_MAX_CELL_VOLTAGE=[3.901, 3.902][bank - 1])
            rows.append(row)
    frame = pd.DataFrame(rows, columns=[f.name for f in fields])
    frame["TIMESTAMP"] = pd.to_datetime(frame["TIMESTAMP"], utc=True)
    return frame


def read_rack(store: SiteStore) -> list[tuple[datetime, int, int, float, float]]:
    t = store.table("rack")
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.TIMESTAMP, t.c.BANK_ID, t.c.RACK_ID, t.c.RACK_SOC, t.c.RACK_MAX_CELL_VOLTAGE)
                            .order_by(t.c.TIMESTAMP, t.c.BANK_ID, t.c.RACK_ID)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_key_columns() -> None:
    assert key_columns("rack", ["TIMESTAMP", "BANK_ID", "RACK_ID", "X"]) == ("TIMESTAMP", "BANK_ID", "RACK_ID")
    assert key_columns("bank", ["TIMESTAMP", "BANK_ID"]) == ("TIMESTAMP", "BANK_ID")
    assert key_columns("pcs", ["TIMESTAMP", "AI_VDC"]) == ("TIMESTAMP",)
    assert key_columns("etc", ["TIMESTAMP", "BANK_ID", "SENSOR1_TEMPERATURE"]) == ("TIMESTAMP", "BANK_ID")


def test_schema_reflects_every_catalogue_column(place_site: Callable[[Site], Site], backend: str) -> None:
    for demo in demo_sites():
        store = SiteStore(place_site(demo))
        store.create_schema()
        store.create_schema()  # idempotent
        for comp, variant in demo.column_sets.items():
            table = store.table(comp)
            assert [c.name for c in table.columns] == [f.name for f in catalogue.get_fields(comp, variant)]
            ts_type = table.c.TIMESTAMP.type
            assert isinstance(ts_type, EpochTime) if backend == "sqlite" else isinstance(ts_type, sa.TIMESTAMP)
        indexes = {ix["name"]: ix for ix in sa.inspect(store.engine).get_indexes("rack", schema=store.schema)}
        assert indexes["rack_key"]["column_names"] == ["TIMESTAMP", "BANK_ID", "RACK_ID"]
        assert indexes["rack_key"]["unique"]
        assert indexes["rack_entity_time"]["column_names"] == ["BANK_ID", "RACK_ID", "TIMESTAMP"]


def test_write_read_upsert_and_duplicates(place_site: Callable[[Site], Site]) -> None:
    store = SiteStore(place_site(small_site2()))
    store.create_schema()
    frame = rack_frame(store.site)
    result = store.write_frame("rack", frame)
    assert (result.rows_in, result.written, result.duplicates) == (9, 9, 0)
    rows = read_rack(store)
    assert rows[0] == (datetime(2022, 9, 1, 1, 0, tzinfo=UTC), 1, 1, 50.1, 3.901)
    assert rows[-1] == (datetime(2022, 9, 1, 1, 0, 2, tzinfo=UTC), 2, 1, 52.1, 3.902)
    assert len(rows) == 9
    # the same rows again change nothing
    store.write_frame("rack", frame)
    assert read_rack(store) == rows
    # new values for existing keys replace the old ones; a key repeated in a frame: last wins
    again = pd.concat([rack_frame(store.site, 1, soc=10.0), rack_frame(store.site, 1, soc=20.0)])
    result = store.write_frame("rack", again)
    assert (result.rows_in, result.written, result.duplicates) == (6, 3, 3)
    updated = read_rack(store)
    assert updated[0] == (datetime(2022, 9, 1, 1, 0, tzinfo=UTC), 1, 1, 20.1, 3.901)
    assert updated[3:] == rows[3:]


def test_json_and_nan_round_trip(place_site: Callable[[Site], Site]) -> None:
    store = SiteStore(place_site(small_site2()))
    store.create_schema()
    frame = rack_frame(store.site, 1)
    frame.loc[0, "RACK_SOH"] = float("nan")
    frame.loc[0, "RACK_MODULE_FAULT"] = json.dumps({"module1": 1, "module2": 0})
    store.write_frame("rack", frame)
    t = store.table("rack")
    with store.engine.connect() as conn:
        soh, modules = conn.execute(sa.select(t.c.RACK_SOH, t.c.RACK_MODULE_FAULT).where(t.c.RACK_ID == 1,
                                                                                         t.c.BANK_ID == 1)).one()
    assert soh is None
    assert modules == {"module1": 1, "module2": 0}


def test_failed_write_leaves_table_unchanged(place_site: Callable[[Site], Site]) -> None:
    store = SiteStore(place_site(small_site2()))
    store.create_schema()
    store.write_frame("rack", rack_frame(store.site, 1))
    before = read_rack(store)
    bad = rack_frame(store.site, 2, soc=70.0)
    bad["NOT_A_COLUMN"] = 1
    with pytest.raises(ConfigError, match="NOT_A_COLUMN"):
        store.write_frame("rack", bad)
    broken = rack_frame(store.site, 2, soc=70.0)
    broken.loc[len(broken) - 1, "BANK_ID"] = None  # NOT NULL violated in the last chunk
    with pytest.raises(WriteError, match="nothing was written"):
        store.write_frame("rack", broken, chunk_rows=2)
    assert read_rack(store) == before


def test_missing_table_is_not_found(place_site: Callable[[Site], Site]) -> None:
    store = SiteStore(place_site(small_site2()))
    with pytest.raises(NotFound, match="table 'rack' does not exist"):
        store.table("rack")
    with pytest.raises(NotFound, match="unknown component"):
        store.table("shelf")


@pytest.fixture(params=["small", "bulk"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through the executemany path and the Arrow bulk path (SQLite)."""
    if request.param == "bulk":
        monkeypatch.setattr(sitestore, "BULK_MIN_ROWS", 1)
    return str(request.param)


def test_both_sqlite_write_paths_upsert_alike(tmp_path: Path, write_path: str) -> None:
    site = dataclasses.replace(small_site2(), database_url=f"sqlite:///{tmp_path / 's.sqlite'}")
    store = SiteStore(site)
    store.create_schema()
    store.write_frame("rack", rack_frame(site, 2))
    again = pd.concat([rack_frame(site, 1, soc=10.0), rack_frame(site, 1, soc=20.0)])
    assert store.write_frame("rack", again).duplicates == 3
    rows = read_rack(store)
    assert [r[3] for r in rows] == [20.1, 20.2, 20.1, 51.1, 51.2, 51.1]
    broken = rack_frame(site, 3, soc=70.0)
    broken.loc[len(broken) - 1, "BANK_ID"] = None
    with pytest.raises(WriteError):
        store.write_frame("rack", broken, chunk_rows=2)
    assert read_rack(store) == rows


def test_bulk_load_rebuilds_indexes(place_site: Callable[[Site], Site], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitestore, "BULK_MIN_ROWS", 1)
    store = SiteStore(place_site(small_site2()))
    store.create_schema()
    with store.bulk_load():
        names = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("rack", schema=store.schema)}
        assert names == set()
        store.write_frame("rack", rack_frame(store.site, 2))
    names = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("rack", schema=store.schema)}
    assert names == {"rack_key", "rack_entity_time"}
    assert len(read_rack(store)) == 6
    store.write_frame("rack", rack_frame(store.site, 1, soc=5.0))  # upserts again afterwards
    assert [r[3] for r in read_rack(store)[:3]] == [5.1, 5.2, 5.1]


def test_refreshing_rolled_up_minutes_replaces_them(place_site: Callable[[Site], Site]) -> None:
    """Rows written into minutes that already have rollups (late ingestion) refresh those
    minutes in place: the rollup then equals a rollup built from scratch."""
    from datetime import date, time, timedelta

    from services.demo.writer import write_demo
    from services.storage.rollups import catch_up, refresh_range

    base = dataclasses.replace(demo_sites()[0], banks=(Bank(1, (1,)),), demo_anchor=date(2022, 9, 1))
    site = place_site(base)
    start = datetime.combine(date(2022, 9, 1), time(10), tzinfo=site.tz)
    write_demo(site, start, start + timedelta(minutes=3), seed=7, anchor=date(2022, 9, 1), progress=False)
    store = SiteStore(site)
    rollup = catch_up(store, "rack", create=True)
    assert rollup is not None

    def snapshot() -> list[tuple[object, ...]]:
        with store.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(rollup).order_by(rollup.c.bucket))]

    before = snapshot()
    assert len(before) == 3
    refresh_range(store, "rack", start, start + timedelta(seconds=2))  # used to fail: UNIQUE constraint
    assert snapshot() == before
    frame = pd.DataFrame({"TIMESTAMP": [start], "BANK_ID": [1], "RACK_ID": [1],
                          "RACK_SOC": [12.5]})
    store.write_frame("rack", frame)  # a late correction inside the first minute
    refresh_range(store, "rack", start, start + timedelta(seconds=2))
    after = snapshot()
    assert after[1:] == before[1:]
    soc = [c.name for c in rollup.columns].index("RACK_SOC__first")
    assert after[0][soc] == 12.5
