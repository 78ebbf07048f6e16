"""Protection-map monitoring routes: events of every site or one site, counts per bucket
and level, alarm episodes and the map in force. Adapters over services.protection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, jsonify, request

from api.caching import note_range
from api.paging import envelope, get_paging
from api.params import get_int
from api.routes import get_portal
from api.spec import P_CURSOR, P_DATE, P_END, P_PAGE, P_START, Param, route
from services.core.errors import InvalidQuery, NotFound
from services.core.registry import Site
from services.protection.events import (
    EVENT_PAGE_SIZE,
    MAX_EVENT_PAGE_SIZE,
    EventFilter,
    check_filter_values,
    describe_map,
)
from services.protection.reads import read_episodes, read_events, read_level_counts
from services.storage.dialect import to_epoch
from services.telemetry.timerange import TimeRange, parse_bucket_width, parse_range

bp = Blueprint("ess_protection", __name__)
BASE = "/api/ess-feature/protectionmap"

P_TIME = Param("time", "One second (ISO 8601; site-local without offset), instead of start-time/end-time.")
P_LEVEL = Param("level", "1 warning, 2 fault (protection).", {"type": "integer", "enum": [1, 2]})
P_CODE = Param("error_code", "Error code 1-14 (the original's table; threshold checks carry the BMS code of the same "
               "condition, e.g. over-voltage 6).", {"type": "integer", "minimum": 1, "maximum": 14})
P_BANK = Param("bank_id", "Only this bank.", {"type": "integer"})
P_RACK = Param("rack_id", "Only this rack (0: bank-level events).", {"type": "integer"})
P_MESSAGE = Param("message", "Case-insensitive substring of the Korean or English description.")
P_SOURCE = Param("source", "threshold (judged against the map) or bms (a BMS flag).",
                 {"type": "string", "enum": ["threshold", "bms"]})
P_SIZE = Param("page_size", f"Events per page, 1 to {MAX_EVENT_PAGE_SIZE} (default {EVENT_PAGE_SIZE}).",
               {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_PAGE_SIZE})
FILTERS = (P_LEVEL, P_CODE, P_BANK, P_RACK, P_MESSAGE, P_SOURCE)
EVENT_PARAMS = (P_TIME, P_START, P_END, *FILTERS, P_PAGE, P_SIZE, P_CURSOR)
COUNT_PARAMS = (Param("time-bucket-width", "Bucket width (1hour, 1days, 10min, PT15M ...); buckets start at local "
                      "midnight.", required=True), P_DATE, P_START, P_END,
                Param("count", "samples (default: one per event) or episodes (episodes by the bucket they start "
                      "in; with `message`: the episodes holding a matching event).", {"type": "string",
                      "enum": ["samples", "episodes"]}), *FILTERS)
EPISODE_PARAMS = (P_DATE, P_START, P_END, *FILTERS,
                  Param("open", "true: only episodes a later run may still extend; false: only closed ones.",
                        {"type": "boolean"}), P_PAGE, P_SIZE, P_CURSOR)


def _optional_int(args: Mapping[str, str], name: str) -> int | None:
    if args.get(name) in (None, ""):
        return None
    return get_int(args, name, 0, -(2**31), 2**31 - 1)


def _filter(args: Mapping[str, str], site: Site | None, tr: TimeRange | None) -> EventFilter:
    level, code = _optional_int(args, "level"), _optional_int(args, "error_code")
    bank, rack = _optional_int(args, "bank_id"), _optional_int(args, "rack_id")
    source, message = args.get("source") or None, args.get("message") or None
    check_filter_values(level, code, source, message)
    if site is not None:
        if bank is not None:
            site.get_bank(bank)
            if rack:
                site.check_rack(bank, rack)
        elif rack and all(rack not in b.racks for b in site.banks):
            raise NotFound(f"site {site.id} has no rack {rack}", code="rack_not_found")
    return EventFilter(site_ids=None if site is None else (site.id,),
                       start=None if tr is None else to_epoch(tr.start), end=None if tr is None else to_epoch(tr.end),
                       level=level, error_code=code, bank_id=bank, rack_id=rack, source=source, message=message)


def _paging(args: Mapping[str, str]) -> dict[str, Any]:
    return get_paging(args, EVENT_PAGE_SIZE, MAX_EVENT_PAGE_SIZE)


def _site(site_id: int) -> Site:
    return get_portal().registry.get_site(site_id)


def _note(tr: TimeRange | None) -> None:
    if tr is not None:
        note_range(tr)


@route(bp, BASE + "/", summary="Protection events of every site, newest first (paged, 100 per page).",
       tag="protection map", params=EVENT_PARAMS)
def all_events() -> Response:
    portal = get_portal()
    sites = portal.registry.sites
    zones = {s.timezone for s in sites}
    tz = sites[0].tz if len(zones) == 1 else ZoneInfo("UTC")  # naive times: the shared zone
    tr = parse_range(request.args, tz, required=False, instant=True)
    f = _filter(request.args, None, tr)
    _note(tr)
    return envelope(read_events(portal, f, **_paging(request.args)))


@route(bp, BASE + "/operating-sites/{site}/", summary="Protection events of one site, newest first (paged).",
       tag="protection map", params=EVENT_PARAMS)
def site_events(site: int) -> Response:
    portal, one = get_portal(), _site(site)
    tr = parse_range(request.args, one.tz, required=False, instant=True)
    f = _filter(request.args, one, tr)
    _note(tr)
    return envelope(read_events(portal, f, **_paging(request.args)))


@route(bp, BASE + "/operating-sites/{site}/stats/log-level-count/",
       summary="Events (or episodes) per time bucket and level: [{time, operating_site, level, level_count}], newest "
               "bucket first, non-empty buckets only.", tag="protection map", params=COUNT_PARAMS)
def log_level_count(site: int) -> Response:
    portal, one, args = get_portal(), _site(site), request.args
    if "time-bucket-width" not in args:
        raise InvalidQuery("time-bucket-width is required (e.g. 1days)", code="missing_parameter",
                           invalid_params=[{"name": "time-bucket-width", "reason": "required"}])
    width = parse_bucket_width(args["time-bucket-width"])
    tr = parse_range(args, one.tz)
    assert tr is not None
    per = args.get("count", "samples")
    if per not in ("samples", "episodes"):
        raise InvalidQuery(f"count={per!r}: use samples or episodes", code="invalid_parameter",
                           invalid_params=[{"name": "count", "reason": "must be samples or episodes"}])
    f = _filter(args, one, None)
    note_range(tr)
    return jsonify(read_level_counts(portal, one, tr, width, per=per, f=f))


@route(bp, BASE + "/operating-sites/{site}/episodes/",
       summary="Alarm episodes overlapping the range, newest start first (paged): start, end (last event), "
               "duration, peak value, sample count, open flag.", tag="protection map", params=EPISODE_PARAMS)
def episodes(site: int) -> Response:
    portal, one, args = get_portal(), _site(site), request.args
    tr = parse_range(args, one.tz, required=False)
    f = _filter(args, one, tr)
    is_open = _boolean(args, "open")
    _note(tr)
    return envelope(read_episodes(portal, f, is_open=is_open, **_paging(args)))


def _boolean(args: Mapping[str, str], name: str) -> bool | None:
    raw = args.get(name)
    if raw in (None, ""):
        return None
    value = {"true": True, "1": True, "false": False, "0": False}.get(raw.strip().lower())
    if value is None:
        raise InvalidQuery(f"{name}={raw!r}: use true or false", code="invalid_parameter",
                           invalid_params=[{"name": name, "reason": "must be true or false"}])
    return value


@route(bp, BASE + "/operating-sites/{site}/map/", summary="The protection map in force for the site, with its "
       "version, the limits the checks use and the error-code and level tables.", tag="protection map")
def protection_map(site: int) -> Response:
    return jsonify(describe_map(_site(site)))
