"""Labelled anomalies of the demo data, placed relative to the demo's anchor day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from services.core.registry import Site
from services.demo.days import check_range

# ----- labelled anomalies ----------------------------------------------------------------

@dataclass(frozen=True)
class Anomaly:
    """One injected anomaly, placed relative to the demo's anchor day.

    `start`/`end` are local wall-clock times of day `anchor + day_offset`, half-open
    [start, end). `site_id` 0 means every site; `rack_id` 0 means bank level (or every rack
    of the site for the data-quality kinds). `position` is the cell (voltage) or sensor
    (temperature) number involved, 0 if none.
    """

    site_id: int
    bank_id: int
    rack_id: int
    kind: str
    day_offset: int
    start: time
    end: time
    columns: tuple[str, ...]
    outcome: str
    position: int = 0
    description: str = ""


@dataclass(frozen=True)
class AnomalyWindow:
    """An anomaly at absolute times for one site: [start, end), aware in the site's zone."""

    anomaly: Anomaly
    site_id: int
    bank_id: int
    rack_id: int
    start: datetime
    end: datetime


_VOLTAGE_COLS = ("RACK_MAX_CELL_VOLTAGE", "RACK_MAX_CELL_VOLTAGE_POSITION", "RACK_MIN_CELL_VOLTAGE",
                 "RACK_MIN_CELL_VOLTAGE_POSITION", "RACK_CELL_VOLTAGE_GAP")

ANOMALIES: tuple[Anomaly, ...] = (
    *(Anomaly(
        site_id=s, bank_id=1, rack_id=r, kind="weak_cell", day_offset=1, start=time(13, 30), end=time(14, 0),
        position=p, columns=(*_VOLTAGE_COLS, "RACK_VOLTAGE_IMBALANCE_WARNING", "RACK_OVER_VOLTAGE_PROTECTION_WARNING",
                              "RACK_OVER_VOLTAGE_PROTECTION_FAULT", "RACK_STATUS_FOR_WARNING", "RACK_STATUS_FOR_FAULT"),
        outcome="RACK_CELL_VOLTAGE_GAP > 0.3 V: voltage-imbalance warning (first at the end of the charge on day 1; "
                "the overcharged weak cell also exceeds 4.05/4.10 V: over-voltage warning and fault)",
        description=f"Weak cell {p} (lost parallel cells): the cell-voltage gap grows about 0.045 V a day; the cell "
                    "is the max-voltage cell at the end of each charge and the min-voltage cell at the end of each "
                    "discharge; the gap exceeds 0.5 V (imbalance fault) from about day 6 (clear days; cloudy "
                    "days stay lower), and from about day 2 the cell also dips below 3.20 V at the end of "
                    "the discharge (under-voltage warning).")
      for s, r, p in ((1, 2, 117), (2, 3, 203), (3, 1, 45))),
    Anomaly(site_id=1, bank_id=1, rack_id=3, kind="over_voltage", day_offset=0, start=time(13, 34), end=time(13, 36),
            position=58, columns=("RACK_MAX_CELL_VOLTAGE", "RACK_MAX_CELL_VOLTAGE_POSITION",
                                  "RACK_OVER_VOLTAGE_PROTECTION_WARNING", "RACK_OVER_VOLTAGE_PROTECTION_FAULT",
                                  "RACK_STATUS_FOR_WARNING", "RACK_STATUS_FOR_FAULT"),
            outcome="RACK_MAX_CELL_VOLTAGE > 4.05 V for about 108 s: over-voltage warning; > 4.10 V for 5 s "
                    "(13:35:02-13:35:06): over-voltage fault",
            description="Short over-voltage of cell 58 near the end of the charge."),
    Anomaly(site_id=2, bank_id=1, rack_id=2, kind="over_temperature", day_offset=1, start=time(14, 0),
            end=time(16, 0), position=27,
            columns=("RACK_MAX_CELL_TEMPERATURE", "RACK_MAX_CELL_TEMPERATURE_POSITION", "RACK_CELL_TEMPERATURE_GAP",
                     "RACK_OVER_TEMPERATURE_WARNING", "RACK_STATUS_FOR_WARNING"),
            outcome="RACK_MAX_CELL_TEMPERATURE > 50 °C for about 25 minutes around 15:00 (peak 52.0 °C): "
                    "over-temperature warning, no fault",
            description="Hot afternoon: the rack's cooling fails; sensor 27 peaks at 52 °C, the rest of the rack "
                        "follows at about half the rise."),
    Anomaly(site_id=3, bank_id=1, rack_id=2, kind="communication_fault", day_offset=0, start=time(18, 0),
            end=time(18, 2),
            columns=("MASTER_RACK_COMMUNICATION_FAULT", "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS",
                     "RACK_TRAY_RACK_COMMUNICATION_FAULT", "RACK_STATUS_FOR_FAULT", "BATTERY_STATUS_FOR_FAULT"),
            outcome='MASTER_RACK_COMMUNICATION_FAULT {"rack2": 1} and RACK_TRAY_RACK_COMMUNICATION_FAULT = 1: '
                    "communication faults (error codes 13 and 14)",
            description="Communication-fault burst between the master BMS and rack 2 (2 minutes)."),
    Anomaly(site_id=0, bank_id=0, rack_id=0, kind="missing_seconds", day_offset=0, start=time(3, 0),
            end=time(3, 0, 10), columns=("TIMESTAMP",),
            outcome="no rows for 10 seconds in every component (data-loss counters see 10 s)",
            description="A collection gap: every component of every site misses 03:00:00-03:00:09."),
    Anomaly(site_id=0, bank_id=0, rack_id=0, kind="duplicated_second", day_offset=0, start=time(4, 0),
            end=time(4, 0, 1), columns=("TIMESTAMP", "RACK_VOLTAGE"),
            outcome="the rack frame holds 04:00:00 twice per rack (RACK_VOLTAGE differs by 0.3 V); the store "
                    "keeps one row per rack and counts one duplicate per rack",
            description="A duplicated second in the rack data, as real collectors produce."),
)

# the weak cell's extra voltage at the end of a charge: WEAK_GAP_AT_ANCHOR + WEAK_GAP_PER_DAY * days since
# the anchor's midnight (continuous in time, so there is no jump at midnight), capped at WEAK_GAP_MAX
WEAK_GAP_AT_ANCHOR = 0.276
WEAK_GAP_PER_DAY = 0.045
WEAK_GAP_MAX = 0.6
HOT_PEAK_C = 52.0


def list_anomalies(site: Site, anchor: date, start: datetime, end: datetime) -> list[AnomalyWindow]:
    """The anomalies of `site` whose window overlaps [start, end), at absolute times.

    Anomalies whose rack is not in the site's topology are left out. Raises InvalidQuery
    for naive or reversed bounds.
    """
    check_range(start, end)
    tz = site.tz
    out: list[AnomalyWindow] = []
    for a in ANOMALIES:
        if a.site_id not in (0, site.id):
            continue
        if a.rack_id and (a.bank_id, a.rack_id) not in site.rack_keys:
            continue
        if a.bank_id and a.bank_id not in site.bank_ids:
            continue
        day = anchor + timedelta(days=a.day_offset)
        a_start = datetime.combine(day, a.start, tzinfo=tz)
        a_end = datetime.combine(day, a.end, tzinfo=tz)
        if a_start < end and a_end > start:
            out.append(AnomalyWindow(a, site.id, a.bank_id, a.rack_id, a_start, a_end))
    return out


def site_anomalies(site: Site) -> list[Anomaly]:
    return [a for a in ANOMALIES if a.site_id in (0, site.id)]
