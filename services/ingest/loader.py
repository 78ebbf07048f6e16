"""Ingestion of one file: validate, collapse duplicates, write in one transaction."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from services.core.errors import IngestError
from services.core.registry import Site
from services.ingest.parsing import BoundColumn, bind_columns, collect
from services.ingest.problems import Collected, keep_mask, problems_error, write_rejects
from services.ingest.sources import CsvSource, Source, open_source
from services.storage.schema import key_columns
from services.storage.sitestore import SiteStore

log = logging.getLogger(__name__)


MAX_DUPLICATE_LINES = 5  # superseded lines named in the duplicate warning


_SUFFIXES = (".csv", ".parquet")


@dataclass
class IngestReport:
    """What one file did to the site: counts, the reject file and warnings."""

    file: Path
    component: str
    rows_read: int = 0
    written: int = 0
    skipped: int = 0
    duplicates: int = 0
    reject_file: Path | None = None
    warnings: list[str] = field(default_factory=list)
    time_range: tuple[datetime, datetime] | None = None  # first and last TIMESTAMP written (UTC), for jobs

    def format_summary(self) -> str:
        """One readable line, e.g. for the CLI."""
        text = (f"{self.file.name} → {self.component}: {self.rows_read:,} rows read, {self.written:,} written, "
                f"{self.skipped:,} skipped, {self.duplicates:,} duplicates")
        return text + (f" (rejects in {self.reject_file})" if self.reject_file else "")


# ----- public API ------------------------------------------------------------------------
def ingest_file(site: Site, component: str | None, path: Path, *, skip_bad_rows: bool = False,
                reject_path: Path | None = None, progress: bool = True) -> IngestReport:
    """Validate one CSV or Parquet file and upsert it into the site's component table in one
    transaction; IngestError (nothing written) names file, line and column of each problem."""
    path = Path(path)
    if reject_path is not None:
        _check_reject_path(path, Path(reject_path))
    component = component or infer_component(site, path)
    store = SiteStore(site)
    table = store.table(component)
    source = open_source(path)
    columns = bind_columns(site, component, table, source)
    collected = collect(source, columns, site, skip_bad_rows, progress)
    malformed = source.malformed()
    report = IngestReport(file=path, component=component, rows_read=collected.rows + len(malformed))
    keep = None
    if collected.flags or malformed:
        if not skip_bad_rows:
            raise problems_error(source, collected.flags, malformed)
        keep = keep_mask(collected)
        report.skipped = int((~keep).sum()) + len(malformed)
        report.reject_file = write_rejects(source, collected, malformed,
                                            reject_path or path.with_name(path.name + ".rejects.csv"))
    frame, index = _build_frame(collected, columns, keep)
    key = key_columns(component, [c.name for c in table.columns])
    frame = _collapse_duplicates(frame, index, key, source, report)
    report.written = _write(store, component, frame, path, progress)
    if report.written:
        ts = frame[next(c.name for c in columns if c.kind == "timestamp")]
        report.time_range = (ts.min().to_pydatetime(), ts.max().to_pydatetime())
    log.info("%s", report.format_summary())
    return report


def _check_reject_path(path: Path, reject_path: Path) -> None:
    """Refuse, before reading anything, a reject file that would overwrite the input or
    that cannot be created (its folder is missing, or it is a folder)."""
    if reject_path.exists() and path.exists() and reject_path.samefile(path):  # also a link to it
        raise IngestError(f"{reject_path}: the reject file is the input file {path}; it would be overwritten",
                          code="ingest_reject_path")
    if reject_path.is_dir() or not reject_path.parent.is_dir():
        raise IngestError(f"{reject_path}: cannot write the reject file there (a folder, or its folder "
                          f"{reject_path.parent} does not exist)", code="ingest_reject_path")


def ingest_paths(site: Site, component: str | None, paths: Iterable[Path], *, skip_bad_rows: bool = False,
                 progress: bool = True) -> list[IngestReport]:
    """Ingest several files, each in its own transaction (rejects beside each file); the first
    failing file raises IngestError: files before it stay written, files after it are not read."""
    return [ingest_file(site, component, Path(p), skip_bad_rows=skip_bad_rows, progress=progress) for p in paths]


def infer_component(site: Site, path: Path) -> str:
    """Component named by `YYYYMMDD_<table>.csv|.parquet`, `<table>.csv|.parquet` or
    `<table>/YYYYMMDD.parquet`; IngestError when the name fits no table of the site."""
    stem = path.name[: -len(path.suffix)] if path.suffix.lower() in _SUFFIXES else path.name
    match = re.fullmatch(r"(?:\d{8}_)?(.+)", stem)
    name = match.group(1) if match else stem
    if re.fullmatch(r"\d{8}|\d{4}-\d{2}-\d{2}", stem):
        name = path.parent.name
    by_table = {table.lower(): comp for comp, table in site.tables.items()}
    if name.lower() in by_table:
        return by_table[name.lower()]
    raise IngestError(f"{path}: cannot tell the component from the file name; expected YYYYMMDD_<table>.csv or "
                      f".parquet with <table> one of {', '.join(sorted(site.tables.values()))}",
                      code="ingest_component_unknown")


# ----- frame and write -------------------------------------------------------------------
def _finish(values: np.ndarray, kind: str) -> Any:
    """Frame-ready column: aware UTC timestamps, int64 (nullable Int64 when NULLs), floats, text."""
    if kind == "timestamp":
        return pd.to_datetime(values, unit="ns", utc=True)
    if kind != "int":
        return values
    return pd.array(values, dtype="Int64") if np.isnan(values).any() else values.astype(np.int64)


def _build_frame(collected: Collected, columns: list[BoundColumn],
                 keep: np.ndarray | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The frame to write (bad rows dropped) and the 0-based data-row index of each of its rows."""
    data: dict[str, Any] = {}
    for column in columns:
        parts = collected.columns.pop(column.name)
        empty = np.array([], dtype=np.int64 if column.kind == "timestamp" else float)
        values = np.concatenate(parts) if parts else empty
        data[column.name] = _finish(values if keep is None else values[keep], column.kind)
    index = np.arange(collected.rows) if keep is None else np.flatnonzero(keep)
    return pd.DataFrame(data, copy=False), index  # the arrays are ours: no copy, no consolidation


def _collapse_duplicates(frame: pd.DataFrame, index: np.ndarray, key: Sequence[str], source: Source,
                         report: IngestReport) -> pd.DataFrame:
    """Drop rows whose key a later row repeats (the last wins, as in write_frame); count and warn."""
    superseded = frame.duplicated(list(key), keep="last").to_numpy()
    report.duplicates = int(superseded.sum())
    if not report.duplicates:
        return frame
    numbers = source.locate(index[superseded][:MAX_DUPLICATE_LINES])
    shown = ", ".join(str(n) for n in numbers) + (", ..." if report.duplicates > len(numbers) else "")
    noun = ("line" if isinstance(source, CsvSource) else "row") + ("s" if report.duplicates > 1 else "")
    count = "1 row repeats" if report.duplicates == 1 else f"{report.duplicates} rows repeat"
    report.warnings.append(f"{source.path}: {count} the key of a later row, which replaced it ({noun} {shown})")
    log.warning("%s", report.warnings[-1])
    return frame.loc[~superseded].reset_index(drop=True)


def _write(store: SiteStore, component: str, frame: pd.DataFrame, path: Path, progress: bool) -> int:
    """Upsert the frame in one transaction with a progress bar; the number of rows written."""
    with tqdm(total=len(frame), unit="row", desc=f"{path.name} write", disable=not progress) as bar:
        return store.write_frame(component, frame, progress=bar.update).written
