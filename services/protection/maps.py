"""Protection maps: per site, versioned, in the original's JSON format (v4.0,
`{"dataType": {"operatingSite<N>": {"bank"|"rack"|"etc": {FIELD: {"type", "value"}}}}}`)
extended with explicit limits per field::

    "RACK_MAX_CELL_VOLTAGE": {"type": "number", "value": "3.20~4.05",
                              "warning": {"above": 4.05}, "fault": {"above": 4.10}}
    "RACK_CURRENT": {..., "warning": {"above": 100}, "fault": {"above": 120}, "absolute": true}

One comparison rule everywhere: an event when the value is strictly beyond a limit
(value > above, value < below). `absolute` judges |value| (currents of either sign).
The default map (services/protection/defaults/protection_map.json) gives all three demo sites the
limits of the reference threshold table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from services.core.errors import ConfigError
from services.core.registry import Site, demo_sites

DEFAULT_MAP = Path(__file__).resolve().parent / "defaults" / "protection_map.json"


@dataclass(frozen=True)
class Limit:
    """Warning and fault limits of one field (None where a side has no limit)."""

    field: str
    warning_above: float | None = None
    fault_above: float | None = None
    warning_below: float | None = None
    fault_below: float | None = None
    absolute: bool = False

    def level(self, value: float) -> int:
        """0 normal, 1 warning, 2 fault, for one value (strictly beyond a limit)."""
        v = abs(value) if self.absolute else value
        if (self.fault_above is not None and v > self.fault_above) or (
                self.fault_below is not None and v < self.fault_below):
            return 2
        if (self.warning_above is not None and v > self.warning_above) or (
                self.warning_below is not None and v < self.warning_below):
            return 1
        return 0


@dataclass(frozen=True)
class ProtectionMap:
    version: str
    source: str
    components: dict[str, dict[str, dict[str, Any]]]  # component -> field -> original entry (+ limits)
    limits: dict[str, dict[str, Limit]]  # component -> field -> Limit (fields with limits only)

    def limit(self, component: str, field: str) -> Limit | None:
        return self.limits.get(component, {}).get(field.upper())


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, not {value!r}")
    return float(value)


def _parse_limit(field: str, entry: dict[str, Any], where: str) -> Limit | None:
    if "warning" not in entry and "fault" not in entry:
        return None
    sides: dict[str, float | None] = {}
    for level in ("warning", "fault"):
        spec = entry.get(level, {})
        if not isinstance(spec, dict) or not set(spec) <= {"above", "below"}:
            raise ConfigError(f"{where}.{level}: expected {{'above': x}} and/or {{'below': y}}, not {spec!r}")
        for side in ("above", "below"):
            sides[f"{level}_{side}"] = _number(spec[side], f"{where}.{level}.{side}") if side in spec else None
    for side, cmp in (("above", lambda w, f: f >= w), ("below", lambda w, f: f <= w)):
        w, f = sides[f"warning_{side}"], sides[f"fault_{side}"]
        if w is not None and f is not None and not cmp(w, f):
            raise ConfigError(f"{where}: fault limit {side} {f} is inside the warning limit {w}")
    absolute = entry.get("absolute", False)
    if not isinstance(absolute, bool):
        raise ConfigError(f"{where}.absolute: expected true or false")
    return Limit(field=field.upper(), absolute=absolute, **sides)


def parse_protection_map(data: dict[str, Any], site_id: int, source: str) -> ProtectionMap:
    """Validate a map (ConfigError names the field at fault) and pick the site's part."""
    if not isinstance(data, dict) or "dataType" not in data:
        raise ConfigError(f"{source}: not a protection map (no 'dataType')")
    version = str(data.get("meta", {}).get("version", "")) or "unversioned"
    types = data["dataType"]
    part = types.get(f"operatingSite{site_id}", types if set(types) <= {"bank", "rack", "pcs", "etc"} else None)
    if part is None:
        raise ConfigError(f"{source}: no 'operatingSite{site_id}' entry")
    limits: dict[str, dict[str, Limit]] = {}
    for comp, fields in part.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"{source}: dataType.{comp} must be an object")
        for name, entry in fields.items():
            where = f"{source}: {comp}.{name}"
            if not isinstance(entry, dict) or entry.get("type") not in ("number", "boolean"):
                raise ConfigError(f"{where}: expected {{'type': 'number'|'boolean', 'value': ...}}")
            limit = _parse_limit(name, entry, where)
            if limit is not None:
                limits.setdefault(comp, {})[name.upper()] = limit
    return ProtectionMap(version=version, source=source, components=part, limits=limits)


@lru_cache(maxsize=32)
def _read(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: protection map file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


def load_protection_map(site: Site) -> ProtectionMap:
    """The site's map (registry `protection_map`, else the default map). The default map
    describes the three demo sites; another site without its own map gets the part of the
    demo site built like it (same bank and rack column sets), e.g. a copy of a demo site
    under another id. ConfigError when there is none."""
    path = site.protection_map or str(DEFAULT_MAP)
    data = _read(path)
    part_id = site.id
    if not site.protection_map and f"operatingSite{site.id}" not in data.get("dataType", {}):
        part_id = _demo_twin(site)
    return parse_protection_map(data, part_id, path)


def _demo_twin(site: Site) -> int:
    def build(s: Site) -> tuple[str | None, str | None]:
        return s.column_sets.get("bank"), s.column_sets.get("rack")

    for demo in demo_sites():
        if build(demo) == build(site):
            return demo.id
    raise ConfigError(f"site {site.id}: the default protection map has no entry for it; set `protection_map` "
                      "in the registry")
