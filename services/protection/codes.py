"""Protection reference tables: levels, error codes, measures, checks and BMS flag columns."""

from __future__ import annotations

from dataclasses import dataclass

# ----- reference tables -------------------------------------------------------------------

LEVELS: dict[int, tuple[str, str]] = {1: ("경고", "warning"), 2: ("고장(보호)", "fault (protection)")}
LEVEL_WORDS = {1: ("경고", "warning"), 2: ("고장", "fault")}
SOURCES = ("threshold", "bms")


@dataclass(frozen=True)
class ErrorCode:
    id: int
    description: str  # Korean
    description_eng: str
    peak: str  # how an episode's peak is taken: "max", "min" or "" (no measured value)


ERROR_CODES: dict[int, ErrorCode] = {c.id: c for c in (
    ErrorCode(1, "랙 온도 불균형", "Rack temperature imbalance", "max"),
    ErrorCode(2, "랙 저온", "Rack under-temperature", "min"),
    ErrorCode(3, "랙 고온", "Rack over-temperature", "max"),
    ErrorCode(4, "랙 전압 불균형", "Rack voltage imbalance", "max"),
    ErrorCode(5, "랙 저전압", "Rack under-voltage", "min"),
    ErrorCode(6, "랙 과전압", "Rack over-voltage", "max"),
    ErrorCode(7, "랙 충전 과전류", "Rack charge over-current", "max"),
    ErrorCode(8, "랙 방전 과전류", "Rack discharge over-current", "min"),
    ErrorCode(9, "랙 충전 릴레이(+) 고장", "Rack charge relay (+) failure", ""),
    ErrorCode(10, "랙 방전 릴레이(-) 고장", "Rack discharge relay (-) failure", ""),
    ErrorCode(11, "랙 (-) 퓨즈 고장", "Rack fuse (-) failure", ""),
    ErrorCode(12, "랙 (+) 퓨즈 고장", "Rack fuse (+) failure", ""),
    ErrorCode(13, "트레이-랙 통신 이상", "Tray-rack communication error", ""),
    ErrorCode(14, "마스터 랙 BMS 통신 오류", "Master rack BMS communication error", "max"),
)}
BANK_CODE = 14  # the one bank-level code (rack_id 0)


@dataclass(frozen=True)
class Measure:
    """The measured value an event of a code carries, and where in the rack it was seen."""

    column: str
    unit: str
    decimals: int
    what_ko: str
    what_en: str
    positions: tuple[str, ...] = ()  # one position column, or (max position, min position) for a gap
    at_ko: str = ""
    at_en: str = ""


_VMAX_POS, _VMIN_POS = "RACK_MAX_CELL_VOLTAGE_POSITION", "RACK_MIN_CELL_VOLTAGE_POSITION"
_TMAX_POS, _TMIN_POS = "RACK_MAX_CELL_TEMPERATURE_POSITION", "RACK_MIN_CELL_TEMPERATURE_POSITION"
MEASURES: dict[int, Measure] = {
    1: Measure("RACK_CELL_TEMPERATURE_GAP", "°C", 1, "셀 온도 편차", "cell temperature gap", (_TMAX_POS, _TMIN_POS),
               "센서", "sensor"),
    2: Measure("RACK_MIN_CELL_TEMPERATURE", "°C", 1, "최저 셀 온도", "min cell temperature", (_TMIN_POS,), "센서",
               "sensor"),
    3: Measure("RACK_MAX_CELL_TEMPERATURE", "°C", 1, "최고 셀 온도", "max cell temperature", (_TMAX_POS,), "센서",
               "sensor"),
    4: Measure("RACK_CELL_VOLTAGE_GAP", "V", 3, "셀 전압 편차", "cell voltage gap", (_VMAX_POS, _VMIN_POS), "셀",
               "cell"),
    5: Measure("RACK_MIN_CELL_VOLTAGE", "V", 3, "최소 셀 전압", "min cell voltage", (_VMIN_POS,), "셀", "cell"),
    6: Measure("RACK_MAX_CELL_VOLTAGE", "V", 3, "최대 셀 전압", "max cell voltage", (_VMAX_POS,), "셀", "cell"),
    7: Measure("RACK_CURRENT", "A", 1, "랙 전류", "rack current"),
    8: Measure("RACK_CURRENT", "A", 1, "랙 전류", "rack current"),
}


@dataclass(frozen=True)
class Check:
    """One threshold check of the original's threshold table: a map field judged on one side of its limits.
    `sign` restricts it to positive (+1, charge) or negative (-1, discharge) values."""

    code: int
    field: str
    side: str  # "above" or "below"
    sign: int = 0


CHECKS: tuple[Check, ...] = (
    Check(6, "RACK_MAX_CELL_VOLTAGE", "above"),
    Check(5, "RACK_MIN_CELL_VOLTAGE", "below"),
    Check(4, "RACK_CELL_VOLTAGE_GAP", "above"),
    Check(7, "RACK_CURRENT", "above", sign=+1),
    Check(8, "RACK_CURRENT", "above", sign=-1),
    Check(3, "RACK_MAX_CELL_TEMPERATURE", "above"),
    Check(2, "RACK_MIN_CELL_TEMPERATURE", "below"),
    Check(1, "RACK_CELL_TEMPERATURE_GAP", "above"),
)

# rack BMS flags: column -> (error code, level)
RACK_FLAGS: dict[str, tuple[int, int]] = {
    "RACK_TEMPERATURE_IMBALANCE_WARNING": (1, 1), "RACK_TEMPERATURE_IMBALANCE_FAULT": (1, 2),
    "RACK_UNDER_TEMPERATURE_WARNING": (2, 1), "RACK_UNDER_TEMPERATURE_FAULT": (2, 2),
    "RACK_OVER_TEMPERATURE_WARNING": (3, 1), "RACK_OVER_TEMPERATURE_FAULT": (3, 2),
    "RACK_VOLTAGE_IMBALANCE_WARNING": (4, 1), "RACK_VOLTAGE_IMBALANCE_FAULT": (4, 2),
    "RACK_UNDER_VOLTAGE_PROTECTION_WARNING": (5, 1), "RACK_UNDER_VOLTAGE_PROTECTION_FAULT": (5, 2),
    "RACK_OVER_VOLTAGE_PROTECTION_WARNING": (6, 1), "RACK_OVER_VOLTAGE_PROTECTION_FAULT": (6, 2),
    "RACK_OVER_CURRENT_CHARGE_WARNING": (7, 1), "RACK_OVER_CURRENT_CHARGE_FAULT": (7, 2),
    "RACK_OVER_CURRENT_DISCHARGE_WARNING": (8, 1), "RACK_OVER_CURRENT_DISCHARGE_FAULT": (8, 2),
    "RACK_CHARGE_RELAY_PLUS_FAULT_STATUS": (9, 2),
    "RACK_DISCHARGE_RELAY_MINUS_FAULT_STATUS": (10, 2),
    "RACK_FUSE_MINUS_FAULT_STATUS": (11, 2),
    "RACK_FUSE_PLUS_FAULT_STATUS": (12, 2),
    "RACK_TRAY_RACK_COMMUNICATION_FAULT": (13, 2),
}
# bank columns of the master-rack communication fault (code 14)
MASTER_COMM = "MASTER_RACK_COMMUNICATION_FAULT"  # int flag (site 1) or JSON {"rack1": 0/1, ...} (sites 2/3)
RACK_TO_MASTER = "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS"  # sites 2/3
PER_RACK_COMM_PREFIX, PER_RACK_COMM_SUFFIX = "RACK_N", "_MASTER_RACK_COMMUNICATION_FAULT"  # site 1: RACK_N001_...


def per_rack_comm_rack(name: str) -> int | None:
    """The rack number of a site-1 per-rack communication-fault column (RACK_N001_...), else None."""
    if name.startswith(PER_RACK_COMM_PREFIX) and name.endswith(PER_RACK_COMM_SUFFIX):
        return int(name[len(PER_RACK_COMM_PREFIX):-len(PER_RACK_COMM_SUFFIX)])
    return None

EVENT_COLUMNS = ["timestamp", "bank_id", "rack_id", "error_code", "level", "source", "value", "description",
                 "description_eng"]
EPISODE_KEY = ["bank_id", "rack_id", "error_code", "level", "source"]
