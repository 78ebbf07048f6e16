"""Page state in the URL: parse and validate `?site=&bank=&rack=&component=&fields=&start=&end=`
against the registry, and write it back. Pure: the registry is passed in.

Times in the URL are site-local wall times (`2022-09-01T10:00`); the page turns them into
a UTC TimeRange with services.telemetry.timerange. A bad value is reported as a Problem (shown as an
alert) and replaced by the default, so the page still renders something useful.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from services.core.errors import InvalidQuery
from services.core.registry import COMPONENTS, Bank, Registry, Site
from services.telemetry.timerange import TimeRange, parse_range, parse_time

QUICK_SPANS: dict[str, int] = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
RANGES = ("1h", "24h", "7d", "all")  # relative ranges: the last span of the data (`all`: all of it)
DEFAULT_SPAN = "24h"
URL_KEYS = ("site", "bank", "rack", "component", "fields", "start", "end", "range")
ALL = "all"  # the value of an "all banks / all racks / all levels" choice (never in the URL)


@dataclass(frozen=True)
class Problem:
    """A URL parameter that could not be used: `key` names the reason (i18n key)."""

    param: str
    value: str
    key: str


@dataclass(frozen=True)
class ViewState:
    site: int | None = None
    bank: int | None = None
    rack: int | None = None
    component: str | None = None
    fields: tuple[str, ...] = ()
    start: str | None = None
    end: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # page-specific filters
    optional_ids: bool = False  # bank/rack may be None = all (not in the URL: a property of the page)
    range: str | None = None  # a relative range (RANGES): start/end follow the newest data, not in the URL

    def get(self, name: str, default: str = "") -> str:
        return dict(self.extra).get(name, default)

    def with_extra(self, **values: str | None) -> ViewState:
        merged = dict(self.extra)
        for k, v in values.items():
            if v in (None, "", ALL):
                merged.pop(k, None)
            else:
                merged[k] = str(v)
        return replace(self, extra=tuple(sorted(merged.items())))

    def to_query(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in URL_KEYS:
            if self.range and key in ("start", "end"):  # a relative range is re-resolved on every load
                continue
            value = getattr(self, key)
            if key == "fields":
                value = ",".join(value) if value else None
            if value not in (None, ""):
                out[key] = str(value)
        out.update(dict(self.extra))
        return out

    def to_search(self) -> str:
        query = self.to_query()
        return "?" + urlencode(query, safe=",:") if query else ""

    def to_store(self) -> dict[str, Any]:
        data = asdict(self)
        data["fields"] = list(self.fields)
        data["extra"] = dict(self.extra)
        return data

    @staticmethod
    def from_store(data: Mapping[str, Any] | None) -> ViewState:
        data = dict(data or {})
        data["fields"] = tuple(data.get("fields") or ())
        data["extra"] = tuple(sorted((data.get("extra") or {}).items()))
        return ViewState(**{k: v for k, v in data.items() if k in ViewState.__dataclass_fields__})


def _int(value: str | int | None) -> int | None:
    if value is None or value in ("", ALL):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def normalize_time_text(value: str) -> str:
    """`2022-09-01 10:00:00.123` -> `2022-09-01T10:00:00`; `...T10:00:00` -> `...T10:00`."""
    text = value.strip().replace(" ", "T", 1)
    text = text.split(".")[0]
    if len(text) == 19 and text.endswith(":00"):
        text = text[:16]
    return text


def local_text(moment: datetime, site: Site) -> str:
    """An aware time as the URL's site-local wall time."""
    return normalize_time_text(moment.astimezone(site.tz).replace(tzinfo=None).isoformat(timespec="seconds"))


def parse_view_state(query: Mapping[str, Any], registry: Registry, *, components: Sequence[str] = COMPONENTS,
                     default_component: str = "rack", extra: Sequence[str] = (),
                     optional_ids: bool = False) -> tuple[ViewState, list[Problem]]:
    """The state a URL asks for, with every unusable parameter reported and replaced by
    its default (first site, its first bank and rack, no time range). With
    `optional_ids`, a missing bank or rack means all of them (None)."""
    problems: list[Problem] = []

    def bad(param: str, key: str) -> None:
        problems.append(Problem(param, str(query.get(param, "")), key))

    site = registry.sites[0]
    if query.get("site") not in (None, ""):
        sid = _int(query["site"])
        match = [s for s in registry.sites if s.id == sid]
        if match:
            site = match[0]
        else:
            bad("site", "problem_site")
    bank: Bank | None = None if optional_ids else site.banks[0]
    if query.get("bank") not in (None, "", ALL):
        bid = _int(query["bank"])
        match_b = [b for b in site.banks if b.id == bid]
        if match_b:
            bank = match_b[0]
        else:
            bad("bank", "problem_bank")
    rack: int | None = None if optional_ids or bank is None else bank.racks[0]
    if query.get("rack") not in (None, "", ALL):
        rid = _int(query["rack"])
        if bank is not None and rid in bank.racks:
            rack = rid
        else:
            bad("rack", "problem_rack")
    available = [c for c in components if c in site.tables and c in site.column_sets]
    component = default_component if default_component in available else (available[0] if available else None)
    if query.get("component") not in (None, ""):
        if query["component"] in available:
            component = str(query["component"])
        else:
            bad("component", "problem_component")
    fields = tuple(f.strip().lower() for f in str(query.get("fields") or "").split(",") if f.strip())
    span = str(query.get("range") or "") or None
    if span is not None and span not in RANGES:
        bad("range", "problem_range")
        span = None
    start, end = (None, None) if span else _parse_times(query, site, bad)
    state = ViewState(site.id, bank.id if bank else None, rack, component, fields, start, end,
                      optional_ids=optional_ids, range=span)
    return state.with_extra(**{k: str(query[k]) for k in extra if query.get(k) not in (None, "")}), problems


def _parse_times(query: Mapping[str, Any], site: Site, bad: Any) -> tuple[str | None, str | None]:
    start, end = query.get("start") or None, query.get("end") or None
    if start is None and end is None:
        return None, None
    if start is None or end is None:
        bad("start" if start is None else "end", "problem_half_range")
        return None, None
    parsed: dict[str, datetime] = {}
    for name, value in (("start", start), ("end", end)):
        try:
            parsed[name] = parse_time(str(value), site.tz, name)
        except InvalidQuery:
            bad(name, "problem_time")
    if len(parsed) < 2:
        return None, None
    if parsed["start"] >= parsed["end"]:
        bad("end", "problem_order")
        return None, None
    return normalize_time_text(str(start)), normalize_time_text(str(end))


def normalize_state(state: ViewState, registry: Registry) -> ViewState:
    """After a picker change: keep what is still valid, default the rest (a new site
    gets its first bank and rack); never reports problems."""
    fixed, _ = parse_view_state(state.to_query(), registry, extra=[k for k, _ in state.extra],
                                optional_ids=state.optional_ids)
    return fixed


def get_time_range(state: ViewState, site: Site) -> TimeRange | None:
    """The state's range as UTC through the routes' one parser (`start`/`end`, site-local),
    or None when the URL gives none (InvalidQuery if bad)."""
    given = {name: value for name, value in (("start", state.start), ("end", state.end)) if value}
    return parse_range(given, site.tz, required=False, date=False, names=("start", "end"))


def make_quick_range(span: str, newest: datetime, site: Site, oldest: datetime | None = None) -> tuple[str, str]:
    """`span` (1h, 24h, 7d, 30d; `all` from `oldest`) ending at the newest data, rounded
    out to whole minutes."""
    end = newest.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if span == "all" and oldest is not None:
        return local_text(oldest.replace(second=0, microsecond=0), site), local_text(end, site)
    seconds = QUICK_SPANS.get(span, QUICK_SPANS[DEFAULT_SPAN])
    return local_text(end - timedelta(seconds=seconds), site), local_text(end, site)


def parse_zoom(relayout: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """The x range of a Plotly zoom (`xaxis.range[0]`/`[1]`, `xaxis2.range`, ...) as URL
    times; None for anything else (autorange, legend clicks, y zoom)."""
    for key, value in (relayout or {}).items():
        axis = key.split(".")[0]
        if not re.fullmatch(r"xaxis\d*", axis):
            continue
        if key == f"{axis}.range[0]" and f"{axis}.range[1]" in relayout:  # type: ignore[operator]
            return normalize_time_text(str(value)), normalize_time_text(str(relayout[f"{axis}.range[1]"]))  # type: ignore[index]
        if key == f"{axis}.range" and isinstance(value, list | tuple) and len(value) == 2:
            return normalize_time_text(str(value[0])), normalize_time_text(str(value[1]))
    return None


def apply_changes(state: ViewState, registry: Registry, **changes: Any) -> ViewState:
    """The state after the user changed pickers, filters or the range (values as the
    controls give them: strings, lists). A new site gets its first bank and rack, a new
    bank its first rack, a new site or data type its default fields. Typed times are
    kept as typed: the page reports a bad one."""
    updates: dict[str, Any] = {}
    extra: dict[str, str | None] = {}
    for key, value in changes.items():
        if key in ("site", "bank", "rack"):
            updates[key] = _int(value)
        elif key == "component":
            updates[key] = value or None
        elif key == "fields":
            updates[key] = tuple(value or ())
        elif key in ("start", "end"):
            updates[key] = normalize_time_text(value) if value else None
            updates["range"] = None  # a typed or zoomed time makes the range absolute
        elif key == "range":
            updates[key] = value if value in RANGES else None
        else:
            extra[key] = ",".join(map(str, value)) if isinstance(value, list | tuple) else value
    new = replace(state, **updates).with_extra(**extra)
    if new.site != state.site:
        new = replace(new, bank=None, rack=None)
    elif new.bank != state.bank:
        new = replace(new, rack=None)
    fixed = normalize_state(replace(new, start=None, end=None, range=None), registry)
    if fixed.site != state.site or fixed.component != state.component:
        fixed = replace(fixed, fields=())
    return replace(fixed, start=new.start, end=new.end, range=new.range)
