"""API and download URLs for exactly what a page shows (pure string building)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from components.urlstate import ViewState
from services.protection.codes import MEASURES

API = "/api/ess"


def _entity_path(state: ViewState) -> str:
    comp = state.component or "rack"
    if comp == "rack":
        return f"banks/{state.bank}/racks/{state.rack}/"
    if comp == "bank":
        return f"banks/{state.bank}/"
    return f"{comp}/"


def _range(state: ViewState) -> dict[str, str]:
    return {"start-time": state.start or "", "end-time": state.end or ""}


def _query(params: dict[str, str]) -> str:
    return urlencode({k: v for k, v in params.items() if v != ""}, safe=",:")


def make_rows_url(state: ViewState, fields: Sequence[str] = (), *, deidentified: bool = False) -> str:
    """The JSON rows route (paged) of the selection and range (`/di/...` de-identified)."""
    params = {"fields": ",".join(["timestamp", *fields]) if fields else "", **_range(state)}
    prefix = f"{API}/di" if deidentified else API
    return f"{prefix}/operating-sites/{state.site}/{_entity_path(state)}?{_query(params)}"


def make_stats_url(state: ViewState, fields: Sequence[str], width_s: int) -> str:
    """The stats route that returns the chart's min/max/mean buckets."""
    params = {"fields": ",".join(fields), "agg": "min,max,avg", "time-bucket-width": f"{width_s}s", **_range(state)}
    return f"{API}/operating-sites/{state.site}/{_entity_path(state)}stats/?{_query(params)}"


def make_download_url(state: ViewState, fields: Sequence[str] = (), *, component: str | None = None,
                      deidentified: bool = False) -> str:
    """The streamed CSV of the selection and range (`/download/di/...` de-identified)."""
    comp = component or state.component or "rack"
    params = {**_range(state), "fields": ",".join(["timestamp", *fields]) if fields else ""}
    if comp in ("bank", "rack") and state.bank is not None and component is None:
        params["bank-id"] = str(state.bank)
        if comp == "rack" and state.rack is not None:
            params["rack-id"] = str(state.rack)
    prefix = f"{API}/download/di" if deidentified else f"{API}/download"
    return f"{prefix}/operating-sites/{state.site}/{comp}/?{_query(params)}"


EPISODE_MARGIN_S = 600  # the Explorer link shows 10 minutes either side of an episode


def make_episode_url(site_id: int, episode: Mapping[str, Any]) -> str:
    """The Explorer at an episode: its rack (or bank) and the field its code measures, from
    10 minutes before it started to 10 minutes after it ended, in site-local wall time."""
    start = datetime.fromisoformat(str(episode["start"]))
    end = datetime.fromisoformat(str(episode["end"]))
    lo = (start - timedelta(seconds=EPISODE_MARGIN_S)).replace(second=0, microsecond=0)
    hi = (end + timedelta(seconds=EPISODE_MARGIN_S + 59)).replace(second=0, microsecond=0)
    code = episode.get("error_code")
    cid = code.get("id") if isinstance(code, Mapping) else code
    measure = MEASURES.get(int(cid)) if cid is not None else None
    rack = episode.get("rack_id")
    params = {"site": str(site_id), "component": "rack" if rack else "bank", "bank": str(episode.get("bank_id")),
              **({"rack": str(rack)} if rack else {}),
              **({"fields": measure.column.lower()} if measure and rack else {}),
              "start": lo.strftime("%Y-%m-%dT%H:%M"), "end": hi.strftime("%Y-%m-%dT%H:%M")}
    return "/explorer?" + urlencode(params, safe=",:")
