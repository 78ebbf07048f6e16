"""The site registry: which sites exist, where their data lives and how they are built.

A TOML file (setting ESS_REGISTRY) with one `[[site]]` table per operating site::

    [[site]]
    id = 1
    name = "Sionyu solar ESS"
    name_ko = "시온유 태양광 ESS"
    timezone = "Asia/Seoul"
    database_url = "sqlite:///data/site1.sqlite"   # relative sqlite paths: relative to the registry file
    schema = ""                                    # optional PostgreSQL schema
    cells_per_rack = 204
    temperature_sensors_per_rack = 34
    protection_map = "protection_map.json"         # optional, relative to the registry file
    demo_anchor = "2022-09-01"                     # optional: first day of generated demo data
    [site.tables]          # table name per component
    bank = "bank"
    rack = "rack"
    pcs = "pcs"
    etc = "etc"
    [site.column_sets]     # catalogue variant per component (used to create tables and describe fields)
    bank = "site1"
    rack = "site1"
    pcs = "site1"
    etc = "site1"
    [[site.banks]]
    id = 1
    racks = [1, 2, 3, 4, 5, 6, 7, 8]

Nothing about a site is hard-coded in Python: the demo writes this file, a real
deployment edits it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.core.errors import ConfigError, NotFound

COMPONENTS: tuple[str, ...] = ("bank", "rack", "pcs", "etc")


@dataclass(frozen=True)
class Bank:
    id: int
    racks: tuple[int, ...]


@dataclass(frozen=True)
class Site:
    """One operating site as the registry describes it."""

    id: int
    name: str
    timezone: str
    database_url: str
    banks: tuple[Bank, ...]
    cells_per_rack: int
    temperature_sensors_per_rack: int
    column_sets: dict[str, str]
    tables: dict[str, str] = field(default_factory=lambda: {c: c for c in COMPONENTS})
    schema: str = ""
    name_ko: str = ""
    protection_map: str = ""
    demo_anchor: date | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def bank_ids(self) -> tuple[int, ...]:
        return tuple(b.id for b in self.banks)

    @property
    def rack_keys(self) -> tuple[tuple[int, int], ...]:
        """Every (bank_id, rack_id) of the site, in bank then rack order."""
        return tuple((b.id, r) for b in self.banks for r in b.racks)

    def get_bank(self, bank_id: int) -> Bank:
        """The bank, or NotFound naming it."""
        for bank in self.banks:
            if bank.id == bank_id:
                return bank
        raise NotFound(f"site {self.id} has no bank {bank_id}", code="bank_not_found")

    def check_rack(self, bank_id: int, rack_id: int) -> None:
        """Raise NotFound unless the rack exists in that bank."""
        if rack_id not in self.get_bank(bank_id).racks:
            raise NotFound(f"site {self.id} bank {bank_id} has no rack {rack_id}", code="rack_not_found")


@dataclass(frozen=True)
class Registry:
    sites: tuple[Site, ...]
    path: Path | None = None

    def get_site(self, site_id: int) -> Site:
        """The site, or NotFound naming it."""
        for site in self.sites:
            if site.id == site_id:
                return site
        raise NotFound(f"there is no operating site {site_id}", code="site_not_found")

    @property
    def site_ids(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.sites)


def _require(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in entry:
        raise ConfigError(f"{where}: missing '{key}'")
    value = entry[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"{where}: '{key}' must be {kind.__name__}, not {value!r}")
    return value


def _resolve_url(url: str, base: Path | None) -> str:
    """Make relative SQLite paths relative to the registry file's folder."""
    prefix = "sqlite:///"
    if base is None or not url.startswith(prefix) or url.startswith(prefix + "/"):
        return url
    rest = url[len(prefix):]
    if rest in ("", ":memory:"):
        return url
    return prefix + str((base / rest).resolve())


def parse_site(entry: dict[str, Any], base: Path | None = None, where: str = "site") -> Site:
    """Validate one `[[site]]` table; ConfigError names the field at fault."""
    site_id = _require(entry, "id", int, where)
    where = f"{where} {site_id}"
    tzname = _require(entry, "timezone", str, where)
    try:
        ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown timezone {tzname!r}") from None
    banks_raw = _require(entry, "banks", list, where)
    banks: list[Bank] = []
    for i, b in enumerate(banks_raw):
        bw = f"{where} banks[{i}]"
        racks = _require(b, "racks", list, bw)
        if not racks or not all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in racks):
            raise ConfigError(f"{bw}: 'racks' must be a non-empty list of positive integers")
        banks.append(Bank(id=_require(b, "id", int, bw), racks=tuple(racks)))
    if len({b.id for b in banks}) != len(banks):
        raise ConfigError(f"{where}: duplicate bank ids")
    column_sets = dict(_require(entry, "column_sets", dict, where))
    tables = {c: c for c in COMPONENTS}
    tables.update(entry.get("tables", {}))
    for comp in list(tables) + list(column_sets):
        if comp not in COMPONENTS:
            raise ConfigError(f"{where}: unknown component {comp!r} (expected one of {', '.join(COMPONENTS)})")
    anchor = entry.get("demo_anchor")
    if isinstance(anchor, str):
        try:
            anchor = date.fromisoformat(anchor)
        except ValueError:
            raise ConfigError(f"{where}: demo_anchor {anchor!r} is not a date") from None
    pmap = str(entry.get("protection_map", ""))
    if pmap and base is not None and not Path(pmap).is_absolute():
        pmap = str((base / pmap).resolve())
    return Site(
        id=site_id,
        name=_require(entry, "name", str, where),
        name_ko=str(entry.get("name_ko", "")),
        timezone=tzname,
        database_url=_resolve_url(_require(entry, "database_url", str, where), base),
        schema=str(entry.get("schema", "")),
        banks=tuple(banks),
        cells_per_rack=_require(entry, "cells_per_rack", int, where),
        temperature_sensors_per_rack=_require(entry, "temperature_sensors_per_rack", int, where),
        column_sets=column_sets,
        tables=tables,
        protection_map=pmap,
        demo_anchor=anchor,
    )


def load_registry(path: Path) -> Registry:
    """Read and validate the registry file; ConfigError names file and field."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: registry file not found "
                          "(run `flask --app app ess demo` or set ESS_REGISTRY)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:  # a folder, no permission
        raise ConfigError(f"{path}: cannot read the registry file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the registry file is not UTF-8 text") from None
    entries = data.get("site", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[site]] tables")
    base = Path(path).resolve().parent
    sites = tuple(parse_site(e, base, f"{path}: site[{i}]") for i, e in enumerate(entries))
    if len({s.id for s in sites}) != len(sites):
        raise ConfigError(f"{path}: duplicate site ids")
    return Registry(sites=sites, path=Path(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def format_registry(sites: list[Site] | tuple[Site, ...]) -> str:
    """TOML text for `sites` that `load_registry` reads back to equal sites."""
    out: list[str] = ["# ESS portal site registry (see services/registry.py for the format)", ""]
    for s in sites:
        out.append("[[site]]")
        for key in ("id", "name", "name_ko", "timezone", "database_url", "schema",
                    "cells_per_rack", "temperature_sensors_per_rack", "protection_map"):
            out.append(f"{key} = {_toml_value(getattr(s, key))}")
        if s.demo_anchor is not None:
            out.append(f"demo_anchor = {_toml_value(s.demo_anchor.isoformat())}")
        out.append("[site.tables]")
        out += [f"{k} = {_toml_value(v)}" for k, v in s.tables.items()]
        out.append("[site.column_sets]")
        out += [f"{k} = {_toml_value(v)}" for k, v in s.column_sets.items()]
        for b in s.banks:
            out += ["[[site.banks]]", f"id = {b.id}", f"racks = {_toml_value(list(b.racks))}"]
        out.append("")
    return "\n".join(out)


def demo_sites(database_url_template: str = "sqlite:///site{id}.sqlite", schema_template: str = "") -> list[Site]:
    """The three demo sites, modelled on the real ones (README: the embedded demo).

    `database_url_template` and `schema_template` take `{id}`; e.g. one PostgreSQL
    database with a schema per site: ("postgresql+psycopg2://.../ess", "site{id}").
    """
    def url(i: int) -> str:
        return database_url_template.format(id=i)

    def schema(i: int) -> str:
        return schema_template.format(id=i) if schema_template else ""

    return [
        Site(id=1, name="Sionyu solar ESS", name_ko="시온유 태양광 ESS", timezone="Asia/Seoul",
             database_url=url(1), schema=schema(1), banks=(Bank(1, tuple(range(1, 9))),),
             cells_per_rack=204, temperature_sensors_per_rack=34,
             column_sets={"bank": "site1", "rack": "site1", "pcs": "site1", "etc": "site1"}),
        Site(id=2, name="Panri #2 solar ESS", name_ko="판리2호 태양광 ESS", timezone="Asia/Seoul",
             database_url=url(2), schema=schema(2),
             banks=(Bank(1, tuple(range(1, 10))), Bank(2, tuple(range(1, 9)))),
             cells_per_rack=240, temperature_sensors_per_rack=40,
             column_sets={"bank": "site23", "rack": "site23", "pcs": "site2", "etc": "site23"}),
        Site(id=3, name="Hwanggeum #6 solar ESS", name_ko="황금6호 태양광 ESS", timezone="Asia/Seoul",
             database_url=url(3), schema=schema(3), banks=(Bank(1, tuple(range(1, 12))),),
             cells_per_rack=204, temperature_sensors_per_rack=34,
             column_sets={"bank": "site23", "rack": "site23", "pcs": "site3", "etc": "site23"}),
    ]
