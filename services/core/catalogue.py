"""The field catalogue: every column of every column-set variant, with unit, meaning
and whether it is sensitive (de-identified).

Variants (the column sets of the original's three sites):
  bank: "site1" (45 columns), "site23" (51)
  rack: "site1" (48), "site23" (58)
  pcs:  "site1" (91), "site2" (54), "site3" (55)
  etc:  "site1" (6),  "site23" (7)

Column names are spelt exactly as the original databases spell them (upper case,
including the original's misspellings such as RACK_TRAY_VOLATGE_IMBALANCE_WARNING and
the mixed-case RACK_STATUS_FOR_Online); the API exposes them lower-cased.
The order of each tuple is the physical column order used when we create tables.

Sign conventions: BMS currents and powers (bank, rack) are + = charge, - = discharge.
The site-1 PCS set-point SET_POWER is + = discharge, - = charge. The reference does not
document the sign of the PCS measurements; their descriptions say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["timestamp", "int", "float", "json"]


@dataclass(frozen=True)
class Field:
    name: str  # column name as in the site table, e.g. "RACK_SOC"
    kind: FieldKind
    unit: str  # "V", "A", "%", "°C", "kW", "" for flags and counts
    description: str  # English, one line
    description_ko: str = ""  # Korean, one line
    sensitive: bool = False  # renamed in de-identified views

    @property
    def api_name(self) -> str:
        return self.name.lower()


# filled below: (component, variant) -> fields in physical order
VARIANTS: dict[tuple[str, str], tuple[Field, ...]] = {}

# Names that the substring rule (fault/warning/protection) misses but that are sensitive.
# The original de-identified by substring only and so published these in clear ("sensitive
# but missed"). Criterion: the column reports a device fault, error,
# trip or alarm condition, i.e. the same kind of information as the *_FAULT / *_WARNING
# columns. Plain operating states (run/stop, charge/discharge, contactor inputs, set-points)
# stay in clear.
EXTRA_SENSITIVE: frozenset[str] = frozenset({
    # site-1 PCS status word: bit 3 = fault, bit 10 = warning (the PCS counterparts of
    # BATTERY_STATUS_FOR_FAULT / _WARNING, which the substring rule does catch)
    "PCS_STATUS_3", "PCS_STATUS_10",
    # site-2/3 bank alarm bits that the original protection map flags as alarms
    # (communication loss, emergency, off-gas detector, emergency origin)
    "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS", "EMERGENCY_STATUS", "TVOC_STATUS", "EMERGENCY_SOURCE",
    # site-2 PCS: every FLT_* trip bit. ST_FAULT is listed by the original API as
    # "missed", but "FAULT" is a substring of it, so the rule already catches it; it is kept
    # here only so that the list matches the spec's wording.
    "ST_FAULT",
    "FLT_OVAR", "FLT_UVAR", "FLT_OFR", "FLT_UFR", "FLT_OCAR", "FLT_OVDR",
    "FLT_UVDR", "FLT_OCDR", "FLT_CFD", "FLT_OTR", "FLT_SPD", "FLT_RVET",
    # site-3 PCS: every bit of the fault/error words whose name lacks "FAULT"
    "GATE_ERR_A", "GATE_ERR_B", "GATE_ERR_C", "OVERHEAT", "AC_FUSE_OPEN",
    "VBAT_ERR", "OC_BAT", "OV_VDC", "UV_VDC", "SFT_UNB_DC_LINK", "EEPROM_WRITE_ERROR",
    "OV_SOURCE", "UV_SOURCE", "SEQ_SOURCE", "UNB_SOURCE", "INTER_SOURCE",
    "OFFSET_LA", "OFFSET_LB", "UNB_CURRENT", "FREQ_LOW", "FREQ_HIGH",
    "PMS_E_STOP", "OVERLOAD", "COMMUNICATION_ERROR",
})


def is_sensitive(name: str) -> bool:
    """True when a column must be de-identified: its name contains fault, warning or
    protection (case-insensitive), or it is in the explicit list."""
    upper = name.upper()
    return any(w in upper for w in ("FAULT", "WARNING", "PROTECTION")) or upper in EXTRA_SENSITIVE


# ---------------------------------------------------------------------------------------
# Building blocks. A spec is (name, kind, unit, description, description_ko).

Spec = tuple[str, FieldKind, str, str, str]


def _fields(specs: list[Spec]) -> tuple[Field, ...]:
    return tuple(Field(n, k, u, en, ko, sensitive=is_sensitive(n)) for n, k, u, en, ko in specs)


def _flags(items: list[tuple[str, str, str]], en_suffix: str = " (0/1)", ko_suffix: str = " (0/1)") -> list[Spec]:
    """0/1 integer flags from (name, English, Korean)."""
    return [(n, "int", "", en + en_suffix, ko + ko_suffix) for n, en, ko in items]


def _floats(items: list[tuple[str, str, str]], unit: str = "") -> list[Spec]:
    """float columns sharing one unit, from (name, English, Korean)."""
    return [(n, "float", unit, en, ko) for n, en, ko in items]


TIMESTAMP: Spec = ("TIMESTAMP", "timestamp", "", "Sample time, whole seconds (site local time, KST)",
                   "측정 시각 (초 단위, 현지 시각 KST)")
BANK_ID: Spec = ("BANK_ID", "int", "", "Bank number (1-based)", "뱅크 번호 (1부터)")
RACK_ID: Spec = ("RACK_ID", "int", "", "Rack number within the bank (1-based)", "뱅크 내 랙 번호 (1부터)")

# The 8 warnings and 13 faults shared by the bank table (OR over its racks) and the rack table.
_WARNINGS: list[tuple[str, str, str]] = [
    ("RACK_TEMPERATURE_IMBALANCE_WARNING", "Cell temperature imbalance warning", "셀 온도 불균형 경고"),
    ("RACK_UNDER_TEMPERATURE_WARNING", "Under-temperature warning", "저온 경고"),
    ("RACK_OVER_TEMPERATURE_WARNING", "Over-temperature warning", "과온 경고"),
    ("RACK_VOLTAGE_IMBALANCE_WARNING", "Cell voltage imbalance warning", "셀 전압 불균형 경고"),
    ("RACK_UNDER_VOLTAGE_PROTECTION_WARNING", "Under-voltage protection warning", "저전압 보호 경고"),
    ("RACK_OVER_VOLTAGE_PROTECTION_WARNING", "Over-voltage protection warning", "과전압 보호 경고"),
    ("RACK_OVER_CURRENT_CHARGE_WARNING", "Charge over-current warning", "충전 과전류 경고"),
    ("RACK_OVER_CURRENT_DISCHARGE_WARNING", "Discharge over-current warning", "방전 과전류 경고"),
]
_FAULTS: list[tuple[str, str, str]] = [
    ("RACK_TEMPERATURE_IMBALANCE_FAULT", "Cell temperature imbalance fault", "셀 온도 불균형 고장"),
    ("RACK_UNDER_TEMPERATURE_FAULT", "Under-temperature fault", "저온 고장"),
    ("RACK_OVER_TEMPERATURE_FAULT", "Over-temperature fault", "과온 고장"),
    ("RACK_VOLTAGE_IMBALANCE_FAULT", "Cell voltage imbalance fault", "셀 전압 불균형 고장"),
    ("RACK_UNDER_VOLTAGE_PROTECTION_FAULT", "Under-voltage protection fault", "저전압 보호 고장"),
    ("RACK_OVER_VOLTAGE_PROTECTION_FAULT", "Over-voltage protection fault", "과전압 보호 고장"),
    ("RACK_OVER_CURRENT_CHARGE_FAULT", "Charge over-current fault", "충전 과전류 고장"),
    ("RACK_OVER_CURRENT_DISCHARGE_FAULT", "Discharge over-current fault", "방전 과전류 고장"),
    ("RACK_CHARGE_RELAY_PLUS_FAULT_STATUS", "Charge (plus) relay fault", "충전(+) 릴레이 고장"),
    ("RACK_DISCHARGE_RELAY_MINUS_FAULT_STATUS", "Discharge (minus) relay fault", "방전(-) 릴레이 고장"),
    ("RACK_FUSE_MINUS_FAULT_STATUS", "Minus-side fuse fault", "(-) 퓨즈 고장"),
    ("RACK_FUSE_PLUS_FAULT_STATUS", "Plus-side fuse fault", "(+) 퓨즈 고장"),
    ("RACK_TRAY_RACK_COMMUNICATION_FAULT", "Tray-to-rack BMS communication fault", "트레이-랙 BMS 통신 고장"),
]
_BANK_SCOPE = (" (0/1, set when any rack of the bank has it)", " (0/1, 뱅크 내 어느 랙이든 발생 시 1)")
_RACK_SCOPE = (" (0/1)", " (0/1)")

# ---------------------------------------------------------------------------------------
# Bank

_BANK_SOC_SOH: list[Spec] = _floats([
    ("BANK_SOC", "Bank state of charge, 0.1 % resolution", "뱅크 충전 상태(SoC), 0.1 % 단위"),
    ("BANK_SOH", "Bank state of health, 0.1 % resolution", "뱅크 건강 상태(SoH), 0.1 % 단위"),
], "%")
_BANK_VI: list[Spec] = [
    ("BANK_DC_VOLT", "float", "V", "Bank DC voltage", "뱅크 DC 전압"),
    ("BANK_DC_CURRENT", "float", "A", "Bank DC current; + = charge, - = discharge",
     "뱅크 DC 전류; + 충전, - 방전"),
]
_BANK_CELL_EXTREMES: list[Spec] = [
    ("MAX_CELL_VOLTAGE_OF_BANK", "float", "V", "Highest cell voltage in the bank, 1 mV resolution",
     "뱅크 내 최대 셀 전압, 1 mV 단위"),
    ("MIN_CELL_VOLTAGE_OF_BANK", "float", "V", "Lowest cell voltage in the bank, 1 mV resolution",
     "뱅크 내 최소 셀 전압, 1 mV 단위"),
    ("MAX_CELL_TEMPERATURE_OF_BANK", "float", "°C", "Highest cell temperature in the bank, 0.1 °C resolution",
     "뱅크 내 최고 셀 온도, 0.1 °C 단위"),
    ("MIN_CELL_TEMPERATURE_OF_BANK", "float", "°C", "Lowest cell temperature in the bank, 0.1 °C resolution",
     "뱅크 내 최저 셀 온도, 0.1 °C 단위"),
]
_BANK_POWER: Spec = ("BANK_POWER", "float", "kW", "Bank DC power; + = charge, - = discharge (about V*I/1000)",
                     "뱅크 DC 전력; + 충전, - 방전 (약 V*I/1000)")
_BANK_MODULE_EXTREMES: list[Spec] = [
    ("MAX_MODULE_TEMPERATURE", "float", "°C", "Highest module temperature in the bank", "뱅크 내 최고 모듈 온도"),
    ("MIN_MODULE_TEMPERATURE", "float", "°C", "Lowest module temperature in the bank", "뱅크 내 최저 모듈 온도"),
    ("MAX_MODULE_HUMIDITY", "float", "%", "Highest module relative humidity in the bank", "뱅크 내 최고 모듈 상대습도"),
    ("MIN_MODULE_HUMIDITY", "float", "%", "Lowest module relative humidity in the bank", "뱅크 내 최저 모듈 상대습도"),
]
_BANK_WARNINGS = _flags(_WARNINGS, *_BANK_SCOPE)
_BANK_FAULTS = _flags(_FAULTS, *_BANK_SCOPE)


def _battery_status(which: str, site1: bool = False) -> Spec:
    if which == "CHARGE" and site1:
        return ("BATTERY_STATUS_FOR_CHARGE", "int", "",
                "Battery charge state, tri-state at site 1: 1 = charge, 2 = discharge, 3 = standby",
                "배터리 충방전 상태 (사이트 1 3상태): 1 충전, 2 방전, 3 대기")
    en, ko = {
        "RUN": ("Battery running", "배터리 운전 중"),
        "CHARGE": ("Battery charging", "배터리 충전 중"),
        "DISCHARGE": ("Battery discharging", "배터리 방전 중"),
        "STANDBY": ("Battery on standby", "배터리 대기 중"),
        "FAULT": ("Battery fault status", "배터리 고장 상태"),
        "WARNING": ("Battery warning status", "배터리 경고 상태"),
    }[which]
    return (f"BATTERY_STATUS_FOR_{which}", "int", "", en + " (0/1)", ko + " (0/1)")


_SITE1_RACK_COMM: list[Spec] = [
    (f"RACK_N{r:03d}_MASTER_RACK_COMMUNICATION_FAULT", "int", "",
     f"Master BMS to rack {r} communication fault (0/1)", f"마스터 BMS-랙 {r} 통신 고장 (0/1)")
    for r in range(1, 9)
]

# Site 1: the Django model order (the original's model column order for the site-1 bank).
VARIANTS[("bank", "site1")] = _fields([
    TIMESTAMP, BANK_ID, *_BANK_SOC_SOH, *_BANK_VI, *_BANK_CELL_EXTREMES, _BANK_POWER,
    *_BANK_WARNINGS, *_BANK_FAULTS, *_SITE1_RACK_COMM,
    _battery_status("RUN"), _battery_status("CHARGE", site1=True), _battery_status("FAULT"),
    _battery_status("WARNING"),
    ("MASTER_RACK_COMMUNICATION_FAULT", "int", "", "Master BMS to rack communication fault, any rack (0/1)",
     "마스터 BMS-랙 통신 고장, 임의 랙 (0/1)"),
])

# Sites 2/3: the physical order of the Panri table (it is also the order
# of the site-2 collector's CREATE TABLE and of the Modbus registers).
VARIANTS[("bank", "site23")] = _fields([
    TIMESTAMP, BANK_ID, *_BANK_SOC_SOH, *_BANK_VI, _BANK_POWER, *_BANK_CELL_EXTREMES, *_BANK_MODULE_EXTREMES,
    *_BANK_WARNINGS,
    ("RACK_TRAY_VOLTAGE_IMBALANCE_WARNING", "int", "", "Tray voltage imbalance warning" + _BANK_SCOPE[0],
     "트레이 전압 불균형 경고" + _BANK_SCOPE[1]),
    *_BANK_FAULTS,
    ("MASTER_RACK_COMMUNICATION_FAULT", "json", "",
     'Master BMS to rack communication fault per rack, JSON {"rack1": 0/1, ..., "rackN": 0/1}',
     '랙별 마스터 BMS-랙 통신 고장, JSON {"rack1": 0/1, ..., "rackN": 0/1}'),
    _battery_status("STANDBY"), _battery_status("CHARGE"), _battery_status("DISCHARGE"),
    _battery_status("FAULT"), _battery_status("WARNING"),
    *_flags([
        ("RACK_TO_MASTER_BMS_COMMUNICATION_STATUS", "Rack-to-master BMS communication alarm",
         "랙-마스터 BMS 통신 경보"),
        ("CHARGING_STOP_OF_STATUS", "Charging stopped by the BMS", "BMS에 의한 충전 정지"),
        ("DISCHARGING_STOP_OF_STATUS", "Discharging stopped by the BMS", "BMS에 의한 방전 정지"),
        ("EMERGENCY_STATUS", "Emergency status", "비상 상태"),
        ("TVOC_STATUS", "TVOC (off-gas) detector alarm", "TVOC(가스) 감지 경보"),
    ]),
    _battery_status("RUN"),
    ("ORDER_SOURCE", "int", "", "Source of the operating command (device code)", "운전 명령 출처 (장치 코드)"),
    ("EMERGENCY_SOURCE", "int", "", "Source of the emergency (device code)", "비상 발생 출처 (장치 코드)"),
])

# ---------------------------------------------------------------------------------------
# Rack

_RACK_MEASUREMENTS: list[Spec] = [
    ("RACK_SOC", "float", "%", "Rack state of charge, 0.1 % resolution", "랙 충전 상태(SoC), 0.1 % 단위"),
    ("RACK_SOH", "float", "%", "Rack state of health, 0.1 % resolution", "랙 건강 상태(SoH), 0.1 % 단위"),
    ("RACK_VOLTAGE", "float", "V", "Rack DC voltage", "랙 DC 전압"),
    ("RACK_CURRENT", "float", "A", "Rack DC current; + = charge, - = discharge", "랙 DC 전류; + 충전, - 방전"),
    ("RACK_MAX_CELL_VOLTAGE", "float", "V", "Highest cell voltage in the rack, 1 mV resolution",
     "랙 내 최대 셀 전압, 1 mV 단위"),
    ("RACK_MAX_CELL_VOLTAGE_POSITION", "float", "", "Cell number (1-based) of the highest cell voltage",
     "최대 전압 셀 위치 (셀 번호, 1부터)"),
    ("RACK_MIN_CELL_VOLTAGE", "float", "V", "Lowest cell voltage in the rack, 1 mV resolution",
     "랙 내 최소 셀 전압, 1 mV 단위"),
    ("RACK_MIN_CELL_VOLTAGE_POSITION", "float", "", "Cell number (1-based) of the lowest cell voltage",
     "최소 전압 셀 위치 (셀 번호, 1부터)"),
    ("RACK_CELL_VOLTAGE_GAP", "float", "V", "Highest minus lowest cell voltage in the rack",
     "랙 내 셀 전압 편차 (최대-최소)"),
    ("RACK_CELL_VOLTAGE_AVERAGE", "float", "V", "Average cell voltage in the rack", "랙 평균 셀 전압"),
    ("RACK_MAX_CELL_TEMPERATURE", "float", "°C", "Highest cell temperature in the rack, 0.1 °C resolution",
     "랙 내 최고 셀 온도, 0.1 °C 단위"),
    ("RACK_MAX_CELL_TEMPERATURE_POSITION", "float", "", "Sensor number (1-based) of the highest cell temperature",
     "최고 온도 센서 위치 (센서 번호, 1부터)"),
    ("RACK_MIN_CELL_TEMPERATURE", "float", "°C", "Lowest cell temperature in the rack, 0.1 °C resolution",
     "랙 내 최저 셀 온도, 0.1 °C 단위"),
    ("RACK_MIN_CELL_TEMPERATURE_POSITION", "float", "", "Sensor number (1-based) of the lowest cell temperature",
     "최저 온도 센서 위치 (센서 번호, 1부터)"),
    ("RACK_CELL_TEMPERATURE_GAP", "float", "°C", "Highest minus lowest cell temperature in the rack",
     "랙 내 셀 온도 편차 (최고-최저)"),
]
_RACK_TEMP_AVERAGE: Spec = ("RACK_CELL_TEMPERATURE_AVERAGE", "float", "°C", "Average cell temperature in the rack",
                            "랙 평균 셀 온도")


def _rack_module_extremes() -> list[Spec]:
    """Sites 2/3: max/min module temperature and humidity of the rack, each with its module number."""
    out: list[Spec] = []
    quantities = (("TEMPERATURE", "temperature", "온도", "°C"), ("HUMIDITY", "relative humidity", "상대습도", "%"))
    for m, en, ko, unit in quantities:
        for x, xen, xko in (("MAX", "Highest", "최고"), ("MIN", "Lowest", "최저")):
            out.append((f"RACK_{x}_MODULE_{m}", "float", unit, f"{xen} module {en} in the rack",
                        f"랙 내 {xko} 모듈 {ko}"))
            out.append((f"RACK_{x}_MODULE_{m}_POSITION", "float", "",
                        f"Module number (1-based) of the {xen.lower()} module {en}",
                        f"{xko} 모듈 {ko} 위치 (모듈 번호, 1부터)"))
    return out


_RACK_STATE: list[Spec] = _flags([
    ("RACK_DISCHARGE_RELAY_MINUS_STATUS", "Discharge (minus) relay closed", "방전(-) 릴레이 닫힘"),
    ("RACK_CHARGE_RELAY_PLUS_STATUS", "Charge (plus) relay closed", "충전(+) 릴레이 닫힘"),
    ("RACK_CELL_BALANCE_STATUS", "Cell balancing active", "셀 밸런싱 동작 중"),
    ("RACK_CURRENT_SENSOR_DISCHARGE", "Current sensor sees discharge current", "방전 전류 감지"),
    ("RACK_CURRENT_SENSOR_CHARGE", "Current sensor sees charge current", "충전 전류 감지"),
    ("RACK_STATUS_FOR_RUN", "Rack running", "랙 운전 중"),
    ("RACK_STATUS_FOR_FAULT", "Rack fault status", "랙 고장 상태"),
    ("RACK_STATUS_FOR_WARNING", "Rack warning status", "랙 경고 상태"),
])
_RACK_WARNINGS = _flags(_WARNINGS, *_RACK_SCOPE)
_RACK_FAULTS = _flags(_FAULTS, *_RACK_SCOPE)

# Site 1: the Django model order; RACK_CELL_TEMPERATURE_AVERAGE follows RACK_CELL_TEMPERATURE_GAP.
VARIANTS[("rack", "site1")] = _fields([
    TIMESTAMP, BANK_ID, RACK_ID, *_RACK_MEASUREMENTS, _RACK_TEMP_AVERAGE, *_RACK_STATE, *_RACK_WARNINGS,
    *_RACK_FAULTS,
])

# Sites 2/3. The reference text lists the 11 extras without placing them; the site-2
# collector's CREATE TABLE (OpenESS Data_ingestion, timescale_input_data.py, the DDL the live
# Panri table was created with) puts each extra in its group, like the Panri bank table:
# module measurements after the cell measurements, Online after the rack states, the tray
# warning after the 8 warnings, RACK_MODULE_FAULT last. We follow that physical order.
VARIANTS[("rack", "site23")] = _fields([
    TIMESTAMP, BANK_ID, RACK_ID, *_RACK_MEASUREMENTS, *_rack_module_extremes(), *_RACK_STATE,
    ("RACK_STATUS_FOR_Online", "int", "", "Rack online (0/1; mixed-case name as in the original)",
     "랙 온라인 (0/1; 원본의 대소문자 혼용 이름)"),
    *_RACK_WARNINGS,
    ("RACK_TRAY_VOLATGE_IMBALANCE_WARNING", "int", "",
     "Tray voltage imbalance warning (0/1; name misspelt 'VOLATGE' as in the original)",
     "트레이 전압 불균형 경고 (0/1; 원본의 오타 'VOLATGE' 유지)"),
    *_RACK_FAULTS,
    ("RACK_MODULE_FAULT", "json", "", 'Fault bit per module, JSON {"module1": 0/1, ..., "module20": 0/1}',
     '모듈별 고장 비트, JSON {"module1": 0/1, ..., "module20": 0/1}'),
])

# ---------------------------------------------------------------------------------------
# PCS, site 1 (Sionyu): every column float8 in the original except TIMESTAMP and BANK_ID.

_PCS_SIGN_EN = "sign as reported by the PCS (not documented)"
_PCS_SIGN_KO = "부호는 PCS 출력 그대로 (문서화되지 않음)"

_PCS1_STATUS_BITS: dict[int, tuple[str, str]] = {
    0: ("local/remote mode", "로컬/원격 모드"),
    1: ("stop/run", "정지/운전"),
    2: ("wait", "대기(wait)"),
    3: ("fault", "고장"),
    4: ("standby", "스탠바이"),
    5: ("charging", "충전 중"),
    6: ("discharging", "방전 중"),
    7: ("ACB (AC circuit breaker) closed", "ACB(교류 차단기) 투입"),
    8: ("DC MCCB (primary) closed", "DC MCCB(1차) 투입"),
    9: ("DC MCCB closed", "DC MCCB 투입"),
    10: ("warning", "경고"),
    11: ("manual/auto mode", "수동/자동 모드"),
    14: ("island (stand-alone) mode", "독립운전 모드"),
    15: ("fault clear", "고장 해제"),
}
# Protection words 1 and 2 have 16 bits each, word 3 has bits 0..10.
_PCS1_PROTECTION_BITS: list[tuple[int, int]] = (
    [(1, b) for b in range(16)] + [(2, b) for b in range(16)] + [(3, b) for b in range(11)]
)

VARIANTS[("pcs", "site1")] = _fields([
    TIMESTAMP,
    ("BANK_ID", "int", "", "Bank number (always 1 at site 1)", "뱅크 번호 (사이트 1은 항상 1)"),
    *[(f"PCS_AC_{ph}_THD", "float", "%", f"AC {ph} total harmonic distortion", f"AC {ph} 종합 고조파 왜형률(THD)")
      for ph in ("L1", "L2", "L3")],
    ("SYSTEM_TEMPERATURE_MAX", "float", "°C", "Highest PCS internal temperature", "PCS 내부 최고 온도"),
    ("DC_VOLTAGE_1", "float", "V", "DC voltage, measurement 1", "DC 전압 1"),
    ("DC_VOLTAGE_2", "float", "V", "DC voltage, measurement 2", "DC 전압 2"),
    ("DC_CURRENT", "float", "A", f"DC current; {_PCS_SIGN_EN}", f"DC 전류; {_PCS_SIGN_KO}"),
    ("DC_POWER", "float", "kW", f"DC power; {_PCS_SIGN_EN}", f"DC 전력; {_PCS_SIGN_KO}"),
    ("AC_FREQUENCY", "float", "Hz", "AC grid frequency, 0.01 Hz resolution", "AC 계통 주파수, 0.01 Hz 단위"),
    ("AC_VOLTAGE", "float", "V", "AC voltage", "AC 전압"),
    ("AC_CURRENT_LOW", "float", "A", "AC current, 'LOW' register of a LOW/HIGH pair (as stored)",
     "AC 전류, LOW/HIGH 쌍 중 LOW 레지스터 (저장값 그대로)"),
    ("AC_CURRENT_HIGH", "float", "A", "AC current, 'HIGH' register of a LOW/HIGH pair (as stored)",
     "AC 전류, LOW/HIGH 쌍 중 HIGH 레지스터 (저장값 그대로)"),
    ("AC_POWER", "float", "kVA", "AC apparent power", "AC 피상전력"),
    ("AC_ACTIVE_POWER", "float", "kW", f"AC active power; {_PCS_SIGN_EN}", f"AC 유효전력; {_PCS_SIGN_KO}"),
    ("AC_REACTIVE_POWER", "float", "kVAR", "AC reactive power", "AC 무효전력"),
    ("AC_POWER_FACTOR", "float", "", "AC power factor", "AC 역률"),
    *[spec for ph in ("L1", "L2", "L3") for spec in (
        (f"AC_{ph}_VOLTAGE", "float", "V", f"AC {ph} voltage", f"AC {ph} 전압"),
        (f"AC_{ph}_CURRENT", "float", "A", f"AC {ph} current", f"AC {ph} 전류"),
    )],
    *[spec for what, what_ko in (("DISCHARGE", "방전"), ("CHARGE", "충전")) for part in ("LOW", "HIGH") for spec in (
        (f"AC_ACCUMULATED_{what}_ENERGY_{part}", "float", "kWh",
         f"Accumulated AC {what.lower()} energy, {part.lower()} word of the counter (as stored)",
         f"AC 누적 {what_ko} 전력량, 카운터의 {part} 워드 (저장값 그대로)"),
    )],
    *[(f"PCS_STATUS_{b}", "float", "", f"PCS status bit {b}: {en} (0/1)", f"PCS 상태 비트 {b}: {ko} (0/1)")
      for b, (en, ko) in _PCS1_STATUS_BITS.items()],
    *[(f"PCS_PROTECTION_{w}_{b}", "float", "", f"PCS protection word {w}, bit {b}: protection trip flag (0/1)",
       f"PCS 보호 워드 {w}, 비트 {b}: 보호 동작 플래그 (0/1)") for w, b in _PCS1_PROTECTION_BITS],
    ("PCS_CONTROL_0", "float", "", "PCS control word 0 (command bits)", "PCS 제어 워드 0 (명령 비트)"),
    ("SET_POWER", "float", "kW", "Power set-point; + = discharge, - = charge", "전력 지령값; + 방전, - 충전"),
    ("SET_SOC_LOW_TRIP_LEVEL", "float", "%", "SoC low trip level setting", "SoC 하한 트립 설정값"),
    ("SET_SOC_HIGH_TRIP_LEVEL", "float", "%", "SoC high trip level setting", "SoC 상한 트립 설정값"),
    ("SET_VBAT_LOW_TRIP_LEVEL", "float", "V", "Battery voltage low trip level setting", "배터리 전압 하한 트립 설정값"),
    ("SET_VBAT_HIGH_TRIP_LEVEL", "float", "V", "Battery voltage high trip level setting",
     "배터리 전압 상한 트립 설정값"),
])

# ---------------------------------------------------------------------------------------
# PCS, site 2 (Panri): every column float8 in the original, flags included. Several
# abbreviations are not explained by the reference; their descriptions say "inferred".

_KWH_COUNTERS: list[Spec] = [
    (f"AI_{cd}_KWH_{side}{hl}", "float", "kWh",
     f"{cd_en} energy counter, {side} side, {hl_en} word (as stored)",
     f"{side} 측 {cd_ko} 전력량 카운터, {hl_en} 워드 (저장값 그대로)")
    for side in ("AC", "DC")
    for cd, cd_en, cd_ko in (("C", "Charged", "충전"), ("D", "Discharged", "방전"))
    for hl, hl_en in (("H", "high"), ("L", "low"))
]

VARIANTS[("pcs", "site2")] = _fields([
    TIMESTAMP,
    ("AI_VDC", "float", "V", "DC voltage", "DC 전압"),
    ("AI_IDC", "float", "A", f"DC current; {_PCS_SIGN_EN}", f"DC 전류; {_PCS_SIGN_KO}"),
    ("AI_PDC", "float", "kW", f"DC power; {_PCS_SIGN_EN}", f"DC 전력; {_PCS_SIGN_KO}"),
    ("AI_FREQ", "float", "Hz", "AC grid frequency", "AC 계통 주파수"),
    *[(f"AI_V{p}_RMS", "float", "V", f"AC line voltage {p} (RMS)", f"AC 선간전압 {p} (RMS)")
      for p in ("AB", "BC", "CA")],
    *[(f"AI_I{p}S_RMS", "float", "A", f"AC phase {p} current (RMS)", f"AC {p}상 전류 (RMS)") for p in "ABC"],
    ("AI_SAC", "float", "kVA", "AC apparent power", "AC 피상전력"),
    ("AI_PAC", "float", "kW", f"AC active power; {_PCS_SIGN_EN}", f"AC 유효전력; {_PCS_SIGN_KO}"),
    ("AI_QAC", "float", "kVAR", "AC reactive power", "AC 무효전력"),
    ("AI_PF", "float", "", "AC power factor", "AC 역률"),
    # register order: AC charge H/L, AC discharge H/L, DC charge H/L, DC discharge H/L
    *_KWH_COUNTERS,
    ("CMD_KW", "float", "kW", f"Active power command; {_PCS_SIGN_EN}", f"유효전력 지령; {_PCS_SIGN_KO}"),
    ("CMD_KVAR", "float", "kVAR", "Reactive power command", "무효전력 지령"),
    ("CMD_VDC_REF", "float", "V", "DC voltage reference (constant-voltage mode)", "DC 전압 지령 (정전압 모드)"),
    *[(n, "float", "", en + " (0/1)", ko + " (0/1)") for n, en, ko in (
        ("ST_RUN", "PCS running", "PCS 운전 중"),
        ("ST_STOP", "PCS stopped", "PCS 정지"),
        ("ST_READY", "PCS ready", "PCS 준비 완료"),
        ("ST_MODE_L_R", "Local/remote mode", "로컬/원격 모드"),
        ("ST_MODE_CV", "Constant-voltage mode", "정전압(CV) 모드"),
        ("ST_FAULT", "PCS fault status", "PCS 고장 상태"),
        ("ST_CHARGE", "PCS charging", "PCS 충전 중"),
        ("ST_DISCHARGE", "PCS discharging", "PCS 방전 중"),
        ("DI_DK", "Digital input DK: DC contactor feedback (inferred)", "디지털 입력 DK: DC 접촉기 상태 (추정)"),
        ("DI_AK", "Digital input AK: AC contactor feedback (inferred)", "디지털 입력 AK: AC 접촉기 상태 (추정)"),
        ("DI_CK", "Digital input CK: charge/precharge contactor feedback (inferred)",
         "디지털 입력 CK: 초기충전 접촉기 상태 (추정)"),
        ("DI_TEMP", "Digital input: temperature switch", "디지털 입력: 온도 스위치"),
        ("DI_SPD", "Digital input: surge protective device", "디지털 입력: 서지 보호기(SPD)"),
        ("DI_DS", "Digital input DS: disconnect switch (inferred)", "디지털 입력 DS: 단로 스위치 (추정)"),
        ("DI_START", "Digital input: start", "디지털 입력: 기동"),
        ("DI_ES", "Digital input: emergency stop", "디지털 입력: 비상 정지"),
        ("FLT_OVAR", "Fault: AC over-voltage relay trip", "고장: AC 과전압 계전 트립"),
        ("FLT_UVAR", "Fault: AC under-voltage relay trip", "고장: AC 저전압 계전 트립"),
        ("FLT_OFR", "Fault: over-frequency relay trip", "고장: 과주파수 계전 트립"),
        ("FLT_UFR", "Fault: under-frequency relay trip", "고장: 저주파수 계전 트립"),
        ("FLT_OCAR", "Fault: AC over-current relay trip", "고장: AC 과전류 계전 트립"),
        ("FLT_OVDR", "Fault: DC over-voltage relay trip", "고장: DC 과전압 계전 트립"),
        ("FLT_UVDR", "Fault: DC under-voltage relay trip", "고장: DC 저전압 계전 트립"),
        ("FLT_OCDR", "Fault: DC over-current relay trip", "고장: DC 과전류 계전 트립"),
        ("FLT_CFD", "Fault CFD: converter fault detection (inferred)", "고장 CFD: 컨버터 고장 검출 (추정)"),
        ("FLT_OTR", "Fault: over-temperature relay trip", "고장: 과온 계전 트립"),
        ("FLT_SPD", "Fault: surge protective device", "고장: 서지 보호기(SPD)"),
        ("FLT_RVET", "Fault RVET (meaning not documented; likely DC reverse voltage)",
         "고장 RVET (의미 미상; DC 역전압 추정)"),
    )],
])

# ---------------------------------------------------------------------------------------
# PCS, site 3 (Hwanggeum #6): 22 float measurements, then 32 int4 state/fault bits.

VARIANTS[("pcs", "site3")] = _fields([
    TIMESTAMP,
    ("VOLTAGE", "float", "V", "Battery-side DC voltage", "배터리측 DC 전압"),
    ("CURRENT", "float", "A", f"Battery-side DC current; {_PCS_SIGN_EN}", f"배터리측 DC 전류; {_PCS_SIGN_KO}"),
    ("POWER", "float", "kW", f"Battery-side DC power; {_PCS_SIGN_EN}", f"배터리측 DC 전력; {_PCS_SIGN_KO}"),
    *[(f"AC_V{p}", "float", "V", f"AC phase {p} voltage", f"AC {p}상 전압") for p in "UVW"],
    *[(f"AC_I{p}", "float", "A", f"AC phase {p} current", f"AC {p}상 전류") for p in "UVW"],
    ("AC_POWER", "float", "kW", f"AC active power; {_PCS_SIGN_EN}", f"AC 유효전력; {_PCS_SIGN_KO}"),
    ("AC_FREQ", "float", "Hz", "AC grid frequency, 0.01 Hz resolution", "AC 계통 주파수, 0.01 Hz 단위"),
    ("DC_V", "float", "V", "DC-link voltage", "DC 링크 전압"),
    ("C_KWH", "float", "kWh", "Accumulated charged energy", "누적 충전 전력량"),
    ("POWER_SETTING", "float", "kW", f"Power set-point; {_PCS_SIGN_EN}", f"전력 설정값; {_PCS_SIGN_KO}"),
    ("MAX_VOLTAGE", "float", "V", "Battery voltage upper limit setting", "배터리 전압 상한 설정값"),
    ("MIN_VOLTAGE", "float", "V", "Battery voltage lower limit setting", "배터리 전압 하한 설정값"),
    ("CI_SETTING", "float", "A", "Charge current limit setting", "충전 전류 제한 설정값"),
    ("DI_SETTING", "float", "A", "Discharge current limit setting", "방전 전류 제한 설정값"),
    ("LQE_REF", "float", "", "LQE reference set-point (meaning not documented)", "LQE 기준 설정값 (의미 미상)"),
    ("VDC_REF", "float", "V", "DC voltage reference", "DC 전압 지령"),
    ("D_KWH", "float", "kWh", "Accumulated discharged energy", "누적 방전 전력량"),
    ("PF", "float", "", "AC power factor", "AC 역률"),
    ("STATE_OF_PCS", "int", "", "PCS operating state (device code)", "PCS 운전 상태 (장치 코드)"),
    *_flags([
        *[(f"GATE_ERR_{p}", f"IGBT gate-driver error, phase {p}", f"IGBT 게이트 드라이버 오류, {p}상") for p in "ABC"],
        ("E_STOP_FAULT", "Emergency-stop fault", "비상 정지 고장"),
        ("OVERHEAT", "PCS over-temperature", "PCS 과열"),
        ("DC_FUSE_FAULT", "DC fuse fault", "DC 퓨즈 고장"),
        ("INIT_FAULT", "Initialisation fault", "초기화 고장"),
        ("AC_FUSE_OPEN", "AC fuse open", "AC 퓨즈 단선"),
        ("IMD_FAULT", "Insulation monitoring device fault", "절연 감시 장치(IMD) 고장"),
        ("VBAT_ERR", "Battery voltage error", "배터리 전압 오류"),
        ("OC_BAT", "Battery over-current", "배터리 과전류"),
        ("OV_VDC", "DC-link over-voltage", "DC 링크 과전압"),
        ("UV_VDC", "DC-link under-voltage", "DC 링크 저전압"),
        ("SFT_UNB_DC_LINK", "DC-link voltage imbalance (software trip)", "DC 링크 전압 불평형 (소프트웨어 트립)"),
        ("EEPROM_WRITE_ERROR", "EEPROM write error", "EEPROM 쓰기 오류"),
        ("OV_SOURCE", "Grid over-voltage", "계통 과전압"),
        ("UV_SOURCE", "Grid under-voltage", "계통 저전압"),
        ("SEQ_SOURCE", "Grid phase-sequence error", "계통 상순 오류"),
        ("UNB_SOURCE", "Grid voltage imbalance", "계통 전압 불평형"),
        ("INTER_SOURCE", "Grid interruption (outage)", "계통 정전"),
        *[(f"OC_L{p}_FAULT", f"Over-current fault, phase {p}", f"{p}상 과전류 고장") for p in "ABC"],
        *[(f"OFFSET_L{p}", f"Current-sensor offset error, phase {p}", f"{p}상 전류 센서 오프셋 오류") for p in "AB"],
        ("UNB_CURRENT", "Phase current imbalance", "상전류 불평형"),
        ("FREQ_LOW", "Grid under-frequency", "계통 저주파수"),
        ("FREQ_HIGH", "Grid over-frequency", "계통 과주파수"),
        ("PMS_E_STOP", "Emergency stop from the PMS", "PMS 비상 정지"),
        ("OVERLOAD", "PCS overload", "PCS 과부하"),
        ("COMMUNICATION_ERROR", "Communication error", "통신 오류"),
    ]),
])

# ---------------------------------------------------------------------------------------
# Etc (room sensors, PV inverter / meter)

VARIANTS[("etc", "site1")] = _fields([
    TIMESTAMP, BANK_ID,
    ("SENSOR1_TEMPERATURE", "float", "°C", "Room temperature, sensor 1", "실내 온도, 센서 1"),
    ("SENSOR1_HUMIDITY", "float", "%", "Room relative humidity, sensor 1", "실내 상대습도, 센서 1"),
    ("INV1_ACTIVE_POWER", "float", "kW", "PV inverter 1 active power", "태양광 인버터 1 유효전력"),
    ("INV1_CUMLUATIVE_POWER_GENERATION", "float", "kWh",
     "PV inverter 1 cumulative generation (name misspelt 'CUMLUATIVE' as in the original)",
     "태양광 인버터 1 누적 발전량 (원본의 오타 'CUMLUATIVE' 유지)"),
])

VARIANTS[("etc", "site23")] = _fields([
    TIMESTAMP,
    *[spec for s in (1, 2) for spec in (
        (f"SENSOR{s}_TEMPERATURE", "float", "°C", f"Room temperature, sensor {s}", f"실내 온도, 센서 {s}"),
        (f"SENSOR{s}_HUMIDITY", "float", "%", f"Room relative humidity, sensor {s}", f"실내 상대습도, 센서 {s}"),
    )],
    ("ACTIVE_POWER_TOTAL", "float", "W", "Meter total active power (float32 over two registers)",
     "전력량계 총 유효전력 (2개 레지스터의 float32)"),
    ("ACTIVE_ENERGY_TOTAL_HIGH", "float", "Wh", "Meter total active energy, 'HIGH' register (as stored)",
     "전력량계 총 유효전력량, HIGH 레지스터 (저장값 그대로)"),
])


def get_fields(component: str, variant: str) -> tuple[Field, ...]:
    """The fields of one variant in physical order; KeyError for an unknown pair."""
    return VARIANTS[(component, variant)]


def describe(component: str, variant: str, name: str) -> Field:
    """Catalogue entry for a (reflected) column; a column the catalogue does not know
    gets a plain entry, so a site with extra columns still works."""
    for f in VARIANTS.get((component, variant), ()):
        if f.name.upper() == name.upper():
            return f
    return Field(name=name, kind="float", unit="", description="(not in the catalogue)",
                 sensitive=is_sensitive(name))
