"""Ingestion of CSV and Parquet files (services/ingest/), on SQLite and PostgreSQL.

Files are built in tmp_path from hand-made rows with the catalogue's site-2/3 rack columns
(58 of them), on a reduced topology: one bank with racks 1 and 2.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from services.core import catalogue
from services.core.errors import IngestError
from services.core.registry import Bank, Site, demo_sites
from services.ingest.loader import IngestReport, infer_component, ingest_file, ingest_paths
from services.ingest.parsing import get_range
from services.storage.sitestore import SiteStore

RACK_FIELDS = catalogue.get_fields("rack", "site23")
T0 = datetime(2022, 9, 1, 1, 0, 0, tzinfo=UTC)  # 10:00:00 in Asia/Seoul
KST = "Asia/Seoul"
TS_HINT = "not a timestamp (expected ISO 8601, e.g. 2022-09-01 10:00:00 or 2022-09-01T10:00:00+09:00)"


# ----- helpers -----------------------------------------------------------------------------
@pytest.fixture
def site(place_site: Callable[[Site], Site]) -> Site:
    """Site 2's column sets on one bank with racks 1 and 2, with its tables created."""
    placed = place_site(dataclasses.replace(demo_sites()[1], banks=(Bank(1, (1, 2)),)))
    SiteStore(placed).create_schema()
    return placed


def _value(f: catalogue.Field, i: int) -> Any:
    """A plausible, exactly representable value of field `f` for row number i."""
    if f.kind == "int":
        return i % 2
    if f.kind == "json":
        return {"module1": i % 2, "module2": 0}
    if "POSITION" in f.name:
        return float(1 + i)
    if f.unit == "V":
        return 3.5 + i / 100 if "CELL_VOLTAGE" in f.name else 800.125 + i
    return {"%": 50.5, "°C": 25.25, "A": -12.5}.get(f.unit, 0.5) + i


def make_rows(seconds: int = 2, racks: tuple[int, ...] = (1, 2), start: datetime = T0) -> list[dict[str, Any]]:
    """Rows as the database returns them: every rack column, aware UTC timestamps, JSON parsed."""
    rows = []
    for s in range(seconds):
        for rack in racks:
            i = len(rows)
            row = {f.name: _value(f, i) for f in RACK_FIELDS}
            row.update(TIMESTAMP=start + timedelta(seconds=s), BANK_ID=1, RACK_ID=rack)
            rows.append(row)
    return rows


def text_frame(rows: list[dict[str, Any]], lower: bool = False) -> pd.DataFrame:
    """The rows as CSV text: naive local (KST) timestamps, JSON as text, numbers as repr."""
    def text(name: str, v: Any) -> str:
        if name == "TIMESTAMP":
            return v.astimezone(pd.Timestamp(0, tz=KST).tzinfo).strftime("%Y-%m-%d %H:%M:%S")
        return json.dumps(v) if isinstance(v, dict) else repr(v)

    frame = pd.DataFrame([{k: text(k, v) for k, v in r.items()} for r in rows], dtype=object)
    return frame.rename(columns=str.lower) if lower else frame


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def parquet_frame(rows: list[dict[str, Any]], naive_local: bool = False) -> pd.DataFrame:
    """The rows as a typed frame for Parquet: ints, floats, JSON text, aware UTC (or naive KST) time."""
    frame = pd.DataFrame([{k: json.dumps(v) if isinstance(v, dict) else v for k, v in r.items()} for r in rows])
    frame["TIMESTAMP"] = pd.to_datetime(frame["TIMESTAMP"], utc=True)
    if naive_local:
        frame["TIMESTAMP"] = frame["TIMESTAMP"].dt.tz_convert(KST).dt.tz_localize(None)
    return frame


def snapshot(site: Site) -> list[dict[str, Any]]:
    """Every rack row in key order, as dicts."""
    table = SiteStore(site).table("rack")
    query = sa.select(table).order_by(table.c.TIMESTAMP, table.c.BANK_ID, table.c.RACK_ID)
    with SiteStore(site).engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def ingest(site: Site, path: Path, component: str | None = "rack", **kwargs: Any) -> IngestReport:
    return ingest_file(site, component, path, progress=False, **kwargs)


def error_of(site: Site, path: Path, **kwargs: Any) -> str:
    with pytest.raises(IngestError) as info:
        ingest(site, path, **kwargs)
    return info.value.detail


# ----- good files --------------------------------------------------------------------------
@pytest.mark.parametrize("lower", [False, True], ids=["upper", "lower"])
def test_good_csv_is_stored_exactly(site: Site, tmp_path: Path, lower: bool) -> None:
    rows = make_rows()
    path = write_csv(text_frame(rows, lower=lower), tmp_path / "good.csv")
    report = ingest(site, path)
    assert snapshot(site) == rows
    assert snapshot(site)[0]["TIMESTAMP"] == datetime(2022, 9, 1, 1, 0, tzinfo=UTC)
    assert snapshot(site)[0]["RACK_MODULE_FAULT"] == {"module1": 0, "module2": 0}
    assert (report.rows_read, report.written, report.skipped, report.duplicates) == (4, 4, 0, 0)
    assert report.reject_file is None and report.warnings == []
    assert report.time_range == (T0, T0 + timedelta(seconds=1))
    assert report.format_summary() == "good.csv → rack: 4 rows read, 4 written, 0 skipped, 0 duplicates"


@pytest.mark.parametrize("variant", ["utc", "naive-local", "indexed-categorical"])
def test_good_parquet_is_stored_exactly(site: Site, tmp_path: Path, variant: str) -> None:
    rows = make_rows()
    path = tmp_path / "good.parquet"
    frame = parquet_frame(rows, naive_local=variant == "naive-local")
    if variant == "indexed-categorical":  # a saved pandas index is ignored, categories are decoded
        frame = frame.set_index(pd.Index([10, 11, 12, 13])).astype({"RACK_MODULE_FAULT": "category"})
    frame.to_parquet(path, index=variant == "indexed-categorical")
    report = ingest(site, path)
    assert snapshot(site) == rows
    assert (report.rows_read, report.written) == (4, 4)


def test_empty_fields_are_null(site: Site, tmp_path: Path) -> None:
    rows = make_rows(seconds=1)
    frame = text_frame(rows)
    frame.loc[0, ["RACK_SOC", "RACK_STATUS_FOR_RUN", "RACK_MODULE_FAULT"]] = ""
    frame.loc[1, ["RACK_SOC", "RACK_STATUS_FOR_RUN"]] = ["NULL", "NaN"]
    ingest(site, write_csv(frame, tmp_path / "nulls.csv"))
    for row in rows:
        row.update(RACK_SOC=None, RACK_STATUS_FOR_RUN=None)
    rows[0]["RACK_MODULE_FAULT"] = None
    assert snapshot(site) == rows


def test_missing_optional_columns_are_null(site: Site, tmp_path: Path) -> None:
    rows = make_rows(seconds=1)
    ingest(site, write_csv(text_frame(rows)[["TIMESTAMP", "BANK_ID", "RACK_ID", "RACK_SOC"]], tmp_path / "few.csv"))
    stored = snapshot(site)
    assert [(r["RACK_ID"], r["RACK_SOC"], r["RACK_SOH"], r["RACK_MODULE_FAULT"]) for r in stored] == [
        (1, 50.5, None, None), (2, 51.5, None, None)]


def test_reingesting_changes_nothing(site: Site, tmp_path: Path) -> None:
    rows = make_rows(seconds=3)
    path = write_csv(text_frame(rows), tmp_path / "again.csv")
    ingest(site, path)
    report = ingest(site, path)
    assert snapshot(site) == rows
    assert (report.rows_read, report.written, report.duplicates) == (6, 6, 0)


def test_a_later_file_updates_its_keys_only(site: Site, tmp_path: Path) -> None:
    rows = make_rows(seconds=2)
    ingest(site, write_csv(text_frame(rows), tmp_path / "first.csv"))
    changed = [dict(rows[1], RACK_SOC=12.5)]
    ingest(site, write_csv(text_frame(changed), tmp_path / "second.csv"))
    assert snapshot(site) == [rows[0], changed[0], *rows[2:]]


def test_offsets_are_honoured_and_naive_is_site_local(site: Site, tmp_path: Path) -> None:
    frame = text_frame(make_rows(seconds=1, racks=(1,)) * 5)
    frame["TIMESTAMP"] = ["2022-09-01T10:00:00+09:00", "2022-09-01T01:00:00Z", "2022-09-01 10:00:00",
                          "2022-09-01 01:00:00+00", "2022-09-01 03:30:00.000+0230"]
    frame["RACK_SOC"] = ["1.5", "2.5", "3.5", "4.5", "5.5"]
    report = ingest(site, write_csv(frame, tmp_path / "offsets.csv"))
    stored = snapshot(site)
    assert [(r["TIMESTAMP"], r["RACK_SOC"]) for r in stored] == [(T0, 5.5)]
    assert report.duplicates == 4
    assert report.warnings == [f"{tmp_path / 'offsets.csv'}: 4 rows repeat the key of a later row, which replaced "
                               "it (lines 2, 3, 4, 5)"]


def test_duplicates_inside_a_file_are_collapsed_and_reported(site: Site, tmp_path: Path) -> None:
    rows = make_rows(seconds=2)
    frame = text_frame([*rows, dict(rows[0], RACK_SOC=99.5)])
    path = write_csv(frame, tmp_path / "dups.csv")
    report = ingest(site, path)
    assert snapshot(site) == [dict(rows[0], RACK_SOC=99.5), *rows[1:]]
    assert (report.rows_read, report.written, report.duplicates) == (5, 4, 1)
    assert report.warnings == [f"{path}: 1 row repeats the key of a later row, which replaced it (line 2)"]
    assert report.format_summary() == "dups.csv → rack: 5 rows read, 4 written, 0 skipped, 1 duplicates"


def test_component_is_inferred_from_the_file_name(site: Site, tmp_path: Path) -> None:
    rows = make_rows()
    report = ingest(site, write_csv(text_frame(rows), tmp_path / "20220901_rack.csv"), component=None)
    assert report.component == "rack"
    assert snapshot(site) == rows


def test_ingest_paths_writes_each_file(site: Site, tmp_path: Path) -> None:
    first, second = make_rows(seconds=1), make_rows(seconds=1, start=T0 + timedelta(seconds=1))
    paths = [write_csv(text_frame(first), tmp_path / "20220901_rack.csv"),
             write_csv(text_frame(second), tmp_path / "20220902_rack.csv")]
    reports = ingest_paths(site, None, paths, progress=False)
    assert [(r.file, r.component, r.written) for r in reports] == [(paths[0], "rack", 2), (paths[1], "rack", 2)]
    assert snapshot(site) == first + second


def test_a_component_keyed_by_time_only(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "20220901_pcs.csv"
    path.write_text("timestamp,ai_vdc,st_run\n2022-09-01 10:00:00,812.5,1\n2022-09-01 10:00:01,,0\n")
    report = ingest(site, path, component=None)
    table = SiteStore(site).table("pcs")
    with SiteStore(site).engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.select(table.c.TIMESTAMP, table.c.AI_VDC, table.c.ST_RUN)
                                                 .order_by(table.c.TIMESTAMP))]
    assert stored == [(T0, 812.5, 1.0), (T0 + timedelta(seconds=1), None, 0.0)]
    assert (report.component, report.written) == ("pcs", 2)


def test_local_times_that_do_not_exist_are_problems(place_site: Callable[[Site], Site], tmp_path: Path) -> None:
    berlin = place_site(dataclasses.replace(demo_sites()[1], timezone="Europe/Berlin", banks=(Bank(1, (1,)),)))
    SiteStore(berlin).create_schema()
    frame = text_frame(make_rows(seconds=1, racks=(1,)) * 2)
    frame["TIMESTAMP"] = ["2022-03-27 01:59:59", "2022-03-27 02:30:00"]  # clocks jump 02:00 -> 03:00
    path = write_csv(frame, tmp_path / "dst.csv")
    assert error_of(berlin, path).split("\n")[1:] == [
        f"{path}:3: column TIMESTAMP: not a valid local time in Europe/Berlin (value '2022-03-27 02:30:00')"]


# ----- bad files -------------------------------------------------------------------------
def _mutate(frame: pd.DataFrame, case: str) -> pd.DataFrame:
    if case == "unknown column":
        frame["FOO"] = "1"
    elif case == "missing key column":
        frame = frame.drop(columns=["RACK_ID"])
    elif case == "number":
        frame.loc[1, "RACK_SOC"] = "abc"
    elif case == "timestamp":
        frame.loc[2, "TIMESTAMP"] = "2022-09-31 10:00:00"
    elif case == "range":
        frame.loc[3, "RACK_MAX_CELL_VOLTAGE"] = "5.5"
    elif case == "json":
        frame.loc[0, "RACK_MODULE_FAULT"] = '{"module1": 0'
    elif case == "fraction":
        frame.loc[1, "TIMESTAMP"] = "2022-09-01 10:00:00.5"
    elif case == "rack":
        frame.loc[2, "RACK_ID"] = "3"
    elif case == "bank":
        frame.loc[0, "BANK_ID"] = "2"
    return frame


BAD_CASES = {
    "unknown column": "1: column FOO: unknown column (not in table rack)",
    "missing key column": "1: column RACK_ID: missing key column",
    "number": "3: column RACK_SOC: not a number (value 'abc')",
    "timestamp": f"4: column TIMESTAMP: {TS_HINT} (value '2022-09-31 10:00:00')",
    "range": "5: column RACK_MAX_CELL_VOLTAGE: out of range 0–5 V (value '5.5')",
    "json": "2: column RACK_MODULE_FAULT: invalid JSON (value '{\"module1\": 0')",
    "fraction": "3: column TIMESTAMP: fractional seconds (the natural key is per second) "
                "(value '2022-09-01 10:00:00.5')",
    "rack": "4: column RACK_ID: no such rack in that bank at site 2 (value '3')",
    "bank": "2: column BANK_ID: no such bank at site 2 (value '2')",
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_file_raises_and_writes_nothing(site: Site, tmp_path: Path, case: str) -> None:
    before = make_rows(seconds=2)
    ingest(site, write_csv(text_frame(before), tmp_path / "before.csv"))
    changed = [dict(r, RACK_SOC=r["RACK_SOC"] + 10) for r in make_rows(seconds=2)]
    path = write_csv(_mutate(text_frame(changed), case), tmp_path / "bad.csv")
    detail = error_of(site, path)
    assert detail == f"{path}: 1 problem, nothing written\n{path}:{BAD_CASES[case]}"
    assert snapshot(site) == before


def test_error_lists_twenty_problems_and_counts_the_rest(site: Site, tmp_path: Path) -> None:
    frame = text_frame(make_rows(seconds=13))
    frame.loc[1:, "RACK_SOC"] = "x"
    path = write_csv(frame, tmp_path / "many.csv")
    with pytest.raises(IngestError) as info:
        ingest(site, path)
    lines = info.value.detail.split("\n")
    assert lines[0] == f"{path}: 25 problems, nothing written"
    assert lines[1:21] == [f"{path}:{n}: column RACK_SOC: not a number (value 'x')" for n in range(3, 23)]
    assert lines[21:] == ["... and 5 more"]
    assert info.value.invalid_params[0] == {"name": "RACK_SOC", "reason": "not a number (value 'x')", "location": "3"}
    assert snapshot(site) == []


def test_several_problems_are_listed_in_file_order(site: Site, tmp_path: Path) -> None:
    frame = text_frame(make_rows(seconds=2), lower=True)
    frame.loc[2, "rack_soh"] = "101"
    frame.loc[0, "rack_current"] = "inf"
    frame.loc[0, "rack_status_for_run"] = "1.5"
    frame.loc[2, "rack_id"] = ""
    path = write_csv(frame, tmp_path / "several.csv")
    assert error_of(site, path).split("\n")[1:] == [
        f"{path}:2: column rack_current: not a finite number (value 'inf')",
        f"{path}:2: column rack_status_for_run: not an integer (value '1.5')",
        f"{path}:4: column rack_id: missing value (key column) (value '')",
        f"{path}:4: column rack_soh: out of range 0–100 % (value '101')",
    ]


def test_lines_count_quoted_newlines_and_malformed_rows(site: Site, tmp_path: Path) -> None:
    frame = text_frame(make_rows(seconds=2))
    frame.loc[0, "RACK_MODULE_FAULT"] = '{"module1": 0,\n"module2": 0}'  # record 1 spans lines 2-3
    frame.loc[2, "RACK_SOC"] = "abc"  # record 3 starts on line 5
    path = write_csv(frame, tmp_path / "multiline.csv")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("2022-09-01 10:00:09,1,1\n")  # line 7: too few fields
    assert error_of(site, path).split("\n")[1:] == [
        f"{path}:5: column RACK_SOC: not a number (value 'abc')",
        f"{path}:7: expected 58 fields, found 3",
    ]


def test_lines_after_malformed_rows_are_exact(site: Site, tmp_path: Path) -> None:
    frame = text_frame(make_rows(seconds=2))
    frame.loc[2, "RACK_SOC"] = "abc"
    path = write_csv(frame, tmp_path / "malformed.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    short = "2022-09-01 10:00:09,1"
    path.write_text("\n".join([*lines[:2], short, *lines[2:4], short, lines[4]]) + "\n", encoding="utf-8")
    assert error_of(site, path).split("\n") == [
        f"{path}: 3 problems, nothing written",
        f"{path}:3: expected 58 fields, found 2",
        f"{path}:5: column RACK_SOC: not a number (value 'abc')",
        f"{path}:6: expected 58 fields, found 2",
    ]


def test_parquet_problems_name_the_row(site: Site, tmp_path: Path) -> None:
    frame = parquet_frame(make_rows())
    frame.loc[1, "RACK_SOC"] = 150.0
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path, index=False)
    assert error_of(site, path) == (f"{path}: 1 problem, nothing written\n"
                                    f"{path}:row 2: column RACK_SOC: out of range 0–100 % (value '150.0')")


def test_empty_and_unreadable_files(site: Site, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert error_of(site, empty) == f"{empty}:1: empty file (no header line)"
    header_only = tmp_path / "header.csv"
    header_only.write_text("TIMESTAMP,BANK_ID,RACK_ID")
    assert ingest(site, header_only).rows_read == 0
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("nope")
    assert error_of(site, not_parquet).startswith(f"{not_parquet}: cannot read the file as Parquet")
    other = tmp_path / "x.json"
    other.write_text("{}")
    assert error_of(site, other) == f"{other}: unsupported file type '.json' (expected .csv or .parquet)"


# ----- skipping bad rows -------------------------------------------------------------------
def read_csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def test_skip_bad_rows_writes_good_rows_and_a_reject_file(site: Site, tmp_path: Path) -> None:
    rows = make_rows(seconds=2)
    frame = text_frame(rows)
    frame.loc[1, "RACK_SOC"] = "abc"
    frame.loc[3, ["RACK_SOH", "TIMESTAMP"]] = ["101", "soon"]
    path = write_csv(frame, tmp_path / "20220901_rack.csv")
    report = ingest(site, path, component=None, skip_bad_rows=True)
    assert snapshot(site) == [rows[0], rows[2]]
    reject = tmp_path / "20220901_rack.csv.rejects.csv"
    assert (report.rows_read, report.written, report.skipped, report.reject_file) == (4, 2, 2, reject)
    expected = [[*frame.columns, "reason"],
                [*frame.loc[1], "line 3: column RACK_SOC: not a number (value 'abc')"],
                [*frame.loc[3], f"line 5: column TIMESTAMP: {TS_HINT} (value 'soon'); "
                                "column RACK_SOH: out of range 0–100 % (value '101')"]]
    assert read_csv_rows(reject) == expected
    assert report.format_summary() == (f"20220901_rack.csv → rack: 4 rows read, 2 written, 2 skipped, 0 duplicates "
                                       f"(rejects in {reject})")


def test_skip_bad_rows_with_reject_path_and_malformed_row(site: Site, tmp_path: Path) -> None:
    rows = make_rows(seconds=1)
    path = write_csv(text_frame(rows), tmp_path / "in.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], lines[1] + ",x,y", *lines[2:], "2022-09-01 10:00:09,1,1"]),
                    encoding="utf-8")  # line 2 has two fields too many; line 4 too few and no newline
    reject = tmp_path / "out" / "rejects.csv"
    reject.parent.mkdir()
    report = ingest(site, path, skip_bad_rows=True, reject_path=reject)
    assert snapshot(site) == rows[1:]
    assert (report.rows_read, report.written, report.skipped, report.reject_file) == (3, 1, 2, reject)
    assert read_csv_rows(reject)[1:] == [
        [*next(csv.reader([lines[1]])), "line 2: expected 58 fields, found 60 (extra fields: 'x', 'y')"],
        ["2022-09-01 10:00:09", "1", "1", *[""] * 55, "line 4: expected 58 fields, found 3"]]


def test_skip_bad_rows_with_a_clean_file_writes_no_reject_file(site: Site, tmp_path: Path) -> None:
    path = write_csv(text_frame(make_rows()), tmp_path / "clean.csv")
    report = ingest(site, path, skip_bad_rows=True)
    assert (report.written, report.skipped, report.reject_file) == (4, 0, None)
    assert not (tmp_path / "clean.csv.rejects.csv").exists()


def test_file_level_problems_fail_even_when_skipping(site: Site, tmp_path: Path) -> None:
    path = write_csv(_mutate(text_frame(make_rows()), "unknown column"), tmp_path / "bad.csv")
    assert error_of(site, path, skip_bad_rows=True) == (f"{path}: 1 problem, nothing written\n"
                                                        f"{path}:1: column FOO: unknown column (not in table rack)")


# ----- pure functions ----------------------------------------------------------------------
def test_infer_component() -> None:
    site = dataclasses.replace(demo_sites()[1], tables={"bank": "bank", "rack": "ESS2Rack", "pcs": "pcs", "etc": "etc"})
    assert infer_component(site, Path("/x/20220901_ess2rack.csv")) == "rack"
    assert infer_component(site, Path("ESS2RACK.parquet")) == "rack"
    assert infer_component(site, Path("20220901_bank.CSV")) == "bank"
    assert infer_component(site, Path("ess2rack/20220901.parquet")) == "rack"
    with pytest.raises(IngestError) as info:
        infer_component(site, Path("20220901_racks.csv"))
    assert info.value.detail == ("20220901_racks.csv: cannot tell the component from the file name; expected "
                                 "YYYYMMDD_<table>.csv or .parquet with <table> one of ESS2Rack, bank, etc, pcs")


def test_physical_ranges() -> None:
    site2 = demo_sites()[1]
    fields = {f.name: f for (comp, _), fs in catalogue.VARIANTS.items() for f in fs}

    def rng(name: str, kind: str = "float") -> tuple[float, float] | None:
        return get_range(fields[name], kind, site2)

    assert rng("RACK_SOC") == (0, 100)
    assert rng("RACK_MAX_CELL_VOLTAGE") == (0, 5)
    assert rng("RACK_CELL_VOLTAGE_GAP") == (0, 5)
    assert rng("RACK_VOLTAGE") == (0, 2000)
    assert rng("RACK_MAX_CELL_TEMPERATURE") == (-40, 100)
    assert rng("RACK_CURRENT") == (-10_000, 10_000)
    assert rng("RACK_MAX_CELL_VOLTAGE_POSITION") == (0, 240)
    assert rng("RACK_MIN_CELL_TEMPERATURE_POSITION") == (0, 40)
    assert rng("RACK_MAX_MODULE_HUMIDITY_POSITION") == (0, math.inf)
    assert rng("AI_FREQ") == (0, 100)
    assert rng("AI_C_KWH_ACH") == (0, math.inf)
    assert rng("PCS_AC_L1_THD") is None
    assert rng("AI_PF") is None
    assert rng("RACK_STATUS_FOR_RUN", "int") == (0, 3)
    assert rng("STATE_OF_PCS", "int") == (-(2**31), 2**31 - 1)
