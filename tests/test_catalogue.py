"""The field catalogue (services/core/catalogue.py): column sets, units, descriptions and the
sensitive flag, checked against the reference study §2.2 and the original protection map."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

from services.core import catalogue
from services.core.catalogue import EXTRA_SENSITIVE, VARIANTS, Field, describe, get_fields, is_sensitive

EXPECTED_COUNTS = {
    ("bank", "site1"): 45,
    ("bank", "site23"): 51,
    ("rack", "site1"): 48,
    ("rack", "site23"): 58,
    ("pcs", "site1"): 91,
    ("pcs", "site2"): 54,
    ("pcs", "site3"): 55,
    ("etc", "site1"): 6,
    ("etc", "site23"): 7,
}

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def names(component: str, variant: str) -> list[str]:
    return [f.name for f in get_fields(component, variant)]


def field(component: str, variant: str, name: str) -> Field:
    matches = [f for f in get_fields(component, variant) if f.name == name]
    assert len(matches) == 1, f"{name} not exactly once in {component}/{variant}"
    return matches[0]


# --- shape of every variant --------------------------------------------------------------


def test_variant_keys_are_exactly_the_expected_ones():
    assert set(VARIANTS) == set(EXPECTED_COUNTS)


@pytest.mark.parametrize("key", sorted(EXPECTED_COUNTS))
def test_column_count(key):
    assert len(VARIANTS[key]) == EXPECTED_COUNTS[key]


@pytest.mark.parametrize("key", sorted(EXPECTED_COUNTS))
def test_first_column_is_timestamp(key):
    first = VARIANTS[key][0]
    assert first.name == "TIMESTAMP"
    assert first.kind == "timestamp"


@pytest.mark.parametrize("key", sorted(EXPECTED_COUNTS))
def test_no_duplicate_names_case_insensitive(key):
    upper = [f.name.upper() for f in VARIANTS[key]]
    assert len(upper) == len(set(upper))


@pytest.mark.parametrize("key", sorted(EXPECTED_COUNTS))
def test_every_field_is_well_formed(key):
    for f in VARIANTS[key]:
        assert isinstance(f, Field)
        assert f.kind in ("timestamp", "int", "float", "json"), f.name
        assert f.description.strip(), f.name
        assert f.description_ko.strip(), f.name
        assert HANGUL.search(f.description_ko), f"{f.name}: description_ko has no Korean text"
        assert "\n" not in f.description and "\n" not in f.description_ko, f.name
        assert f.sensitive == is_sensitive(f.name), f.name
        assert f.api_name == f.name.lower()
        # names are upper case except the original's one mixed-case column
        assert f.name == f.name.upper() or f.name == "RACK_STATUS_FOR_Online", f.name


@pytest.mark.parametrize("key", sorted(EXPECTED_COUNTS))
def test_id_columns_are_int(key):
    for f in VARIANTS[key]:
        if f.name in ("BANK_ID", "RACK_ID"):
            assert f.kind == "int"
            assert f.unit == ""


def test_timestamp_only_first():
    for key, fields in VARIANTS.items():
        assert [f.name for f in fields if f.kind == "timestamp"] == ["TIMESTAMP"], key


def test_json_columns_are_exactly_the_two_known():
    found = {(key, f.name) for key, fields in VARIANTS.items() for f in fields if f.kind == "json"}
    assert found == {
        (("bank", "site23"), "MASTER_RACK_COMMUNICATION_FAULT"),
        (("rack", "site23"), "RACK_MODULE_FAULT"),
    }


def test_get_fields_unknown_variant_raises():
    with pytest.raises(KeyError):
        get_fields("bank", "site2")
    with pytest.raises(KeyError):
        get_fields("module", "site1")


# --- bank --------------------------------------------------------------------------------

WARNINGS = [
    "RACK_TEMPERATURE_IMBALANCE_WARNING", "RACK_UNDER_TEMPERATURE_WARNING", "RACK_OVER_TEMPERATURE_WARNING",
    "RACK_VOLTAGE_IMBALANCE_WARNING", "RACK_UNDER_VOLTAGE_PROTECTION_WARNING",
    "RACK_OVER_VOLTAGE_PROTECTION_WARNING", "RACK_OVER_CURRENT_CHARGE_WARNING",
    "RACK_OVER_CURRENT_DISCHARGE_WARNING",
]
FAULTS = [
    "RACK_TEMPERATURE_IMBALANCE_FAULT", "RACK_UNDER_TEMPERATURE_FAULT", "RACK_OVER_TEMPERATURE_FAULT",
    "RACK_VOLTAGE_IMBALANCE_FAULT", "RACK_UNDER_VOLTAGE_PROTECTION_FAULT", "RACK_OVER_VOLTAGE_PROTECTION_FAULT",
    "RACK_OVER_CURRENT_CHARGE_FAULT", "RACK_OVER_CURRENT_DISCHARGE_FAULT", "RACK_CHARGE_RELAY_PLUS_FAULT_STATUS",
    "RACK_DISCHARGE_RELAY_MINUS_FAULT_STATUS", "RACK_FUSE_MINUS_FAULT_STATUS", "RACK_FUSE_PLUS_FAULT_STATUS",
    "RACK_TRAY_RACK_COMMUNICATION_FAULT",
]


def test_bank_site1_model_order():
    n = names("bank", "site1")
    assert n[:11] == [
        "TIMESTAMP", "BANK_ID", "BANK_SOC", "BANK_SOH", "BANK_DC_VOLT", "BANK_DC_CURRENT",
        "MAX_CELL_VOLTAGE_OF_BANK", "MIN_CELL_VOLTAGE_OF_BANK", "MAX_CELL_TEMPERATURE_OF_BANK",
        "MIN_CELL_TEMPERATURE_OF_BANK", "BANK_POWER",
    ]
    assert n[11:19] == WARNINGS
    assert n[19:32] == FAULTS
    assert n[32:40] == [f"RACK_N00{r}_MASTER_RACK_COMMUNICATION_FAULT" for r in range(1, 9)]
    assert n[40:] == [
        "BATTERY_STATUS_FOR_RUN", "BATTERY_STATUS_FOR_CHARGE", "BATTERY_STATUS_FOR_FAULT",
        "BATTERY_STATUS_FOR_WARNING", "MASTER_RACK_COMMUNICATION_FAULT",
    ]
    assert field("bank", "site1", "MASTER_RACK_COMMUNICATION_FAULT").kind == "int"
    assert "3 = standby" in field("bank", "site1", "BATTERY_STATUS_FOR_CHARGE").description


def test_bank_site23_panri_physical_order():
    n = names("bank", "site23")
    assert n[:15] == [
        "TIMESTAMP", "BANK_ID", "BANK_SOC", "BANK_SOH", "BANK_DC_VOLT", "BANK_DC_CURRENT", "BANK_POWER",
        "MAX_CELL_VOLTAGE_OF_BANK", "MIN_CELL_VOLTAGE_OF_BANK", "MAX_CELL_TEMPERATURE_OF_BANK",
        "MIN_CELL_TEMPERATURE_OF_BANK", "MAX_MODULE_TEMPERATURE", "MIN_MODULE_TEMPERATURE",
        "MAX_MODULE_HUMIDITY", "MIN_MODULE_HUMIDITY",
    ]
    assert n[15:24] == [*WARNINGS, "RACK_TRAY_VOLTAGE_IMBALANCE_WARNING"]
    assert n[24:37] == FAULTS
    assert n[37:] == [
        "MASTER_RACK_COMMUNICATION_FAULT", "BATTERY_STATUS_FOR_STANDBY", "BATTERY_STATUS_FOR_CHARGE",
        "BATTERY_STATUS_FOR_DISCHARGE", "BATTERY_STATUS_FOR_FAULT", "BATTERY_STATUS_FOR_WARNING",
        "RACK_TO_MASTER_BMS_COMMUNICATION_STATUS", "CHARGING_STOP_OF_STATUS", "DISCHARGING_STOP_OF_STATUS",
        "EMERGENCY_STATUS", "TVOC_STATUS", "BATTERY_STATUS_FOR_RUN", "ORDER_SOURCE", "EMERGENCY_SOURCE",
    ]
    assert field("bank", "site23", "MASTER_RACK_COMMUNICATION_FAULT").kind == "json"
    # the bank spells VOLTAGE correctly; only the rack table has the misspelling
    assert "RACK_TRAY_VOLATGE_IMBALANCE_WARNING" not in n


def test_bank_units_and_signs():
    for variant in ("site1", "site23"):
        assert field("bank", variant, "BANK_SOC").unit == "%"
        assert field("bank", variant, "BANK_DC_VOLT").unit == "V"
        assert field("bank", variant, "BANK_DC_CURRENT").unit == "A"
        assert field("bank", variant, "BANK_POWER").unit == "kW"
        assert field("bank", variant, "MAX_CELL_VOLTAGE_OF_BANK").unit == "V"
        assert field("bank", variant, "MIN_CELL_TEMPERATURE_OF_BANK").unit == "°C"
        assert "+ = charge" in field("bank", variant, "BANK_DC_CURRENT").description
        assert "+ = charge" in field("bank", variant, "BANK_POWER").description
    assert field("bank", "site23", "MAX_MODULE_HUMIDITY").unit == "%"
    assert field("bank", "site23", "MAX_MODULE_TEMPERATURE").unit == "°C"


# --- rack --------------------------------------------------------------------------------


def test_rack_site1_temperature_average_follows_gap():
    n = names("rack", "site1")
    assert n.index("RACK_CELL_TEMPERATURE_AVERAGE") == n.index("RACK_CELL_TEMPERATURE_GAP") + 1
    assert n[:3] == ["TIMESTAMP", "BANK_ID", "RACK_ID"]
    assert n[-21:] == WARNINGS + FAULTS
    assert "RACK_STATUS_FOR_Online" not in n
    assert not any("MODULE" in x for x in n)


def test_rack_site23_extras():
    n = names("rack", "site23")
    assert "RACK_TRAY_VOLATGE_IMBALANCE_WARNING" in n
    assert "RACK_TRAY_VOLTAGE_IMBALANCE_WARNING" not in n
    assert "RACK_STATUS_FOR_Online" in n
    assert "RACK_CELL_TEMPERATURE_AVERAGE" not in n
    assert field("rack", "site23", "RACK_MODULE_FAULT").kind == "json"
    assert field("rack", "site23", "RACK_STATUS_FOR_Online").kind == "int"
    assert field("rack", "site23", "RACK_STATUS_FOR_Online").api_name == "rack_status_for_online"
    # physical order of the site-2 collector's CREATE TABLE: each extra sits in its group
    assert n.index("RACK_MAX_MODULE_TEMPERATURE") == n.index("RACK_CELL_TEMPERATURE_GAP") + 1
    assert n.index("RACK_STATUS_FOR_Online") == n.index("RACK_STATUS_FOR_WARNING") + 1
    assert n.index("RACK_TRAY_VOLATGE_IMBALANCE_WARNING") == n.index("RACK_OVER_CURRENT_DISCHARGE_WARNING") + 1
    assert n[-1] == "RACK_MODULE_FAULT"
    for x in ("MAX", "MIN"):
        for q, unit in (("TEMPERATURE", "°C"), ("HUMIDITY", "%")):
            assert field("rack", "site23", f"RACK_{x}_MODULE_{q}").unit == unit
            pos = field("rack", "site23", f"RACK_{x}_MODULE_{q}_POSITION")
            assert (pos.kind, pos.unit) == ("float", "")


@pytest.mark.parametrize("variant", ["site1", "site23"])
def test_rack_units_and_kinds(variant):
    assert field("rack", variant, "RACK_MAX_CELL_VOLTAGE").unit == "V"
    assert field("rack", variant, "RACK_CELL_VOLTAGE_GAP").unit == "V"
    assert field("rack", variant, "RACK_CURRENT").unit == "A"
    assert "+ = charge" in field("rack", variant, "RACK_CURRENT").description
    assert field("rack", variant, "RACK_MAX_CELL_TEMPERATURE").unit == "°C"
    assert field("rack", variant, "RACK_SOC").unit == "%"
    assert field("rack", variant, "RACK_VOLTAGE").unit == "V"
    for pos in ("RACK_MAX_CELL_VOLTAGE_POSITION", "RACK_MIN_CELL_TEMPERATURE_POSITION"):
        f = field("rack", variant, pos)
        assert (f.kind, f.unit) == ("float", "")  # the original stores positions as float
    for flag in [*WARNINGS, *FAULTS, "RACK_STATUS_FOR_RUN", "RACK_CELL_BALANCE_STATUS"]:
        f = field("rack", variant, flag)
        assert (f.kind, f.unit) == ("int", "")


# --- PCS and ETC -------------------------------------------------------------------------


def test_pcs_site1_expanded_ranges_and_kinds():
    n = names("pcs", "site1")
    assert n[:2] == ["TIMESTAMP", "BANK_ID"]
    status = [x for x in n if x.startswith("PCS_STATUS_")]
    assert status == [f"PCS_STATUS_{b}" for b in [*range(12), 14, 15]]
    protection = [x for x in n if x.startswith("PCS_PROTECTION_")]
    assert protection == (
        [f"PCS_PROTECTION_1_{b}" for b in range(16)]
        + [f"PCS_PROTECTION_2_{b}" for b in range(16)]
        + [f"PCS_PROTECTION_3_{b}" for b in range(11)]
    )
    assert n[-6:] == [
        "PCS_CONTROL_0", "SET_POWER", "SET_SOC_LOW_TRIP_LEVEL", "SET_SOC_HIGH_TRIP_LEVEL",
        "SET_VBAT_LOW_TRIP_LEVEL", "SET_VBAT_HIGH_TRIP_LEVEL",
    ]
    assert all(f.kind == "float" for f in get_fields("pcs", "site1")[2:])
    assert field("pcs", "site1", "BANK_ID").kind == "int"
    set_power = field("pcs", "site1", "SET_POWER")
    assert set_power.unit == "kW"
    assert "+ = discharge" in set_power.description
    assert field("pcs", "site1", "AC_FREQUENCY").unit == "Hz"
    assert field("pcs", "site1", "AC_POWER").unit == "kVA"
    assert field("pcs", "site1", "AC_REACTIVE_POWER").unit == "kVAR"
    assert field("pcs", "site1", "AC_POWER_FACTOR").unit == ""
    assert field("pcs", "site1", "PCS_AC_L2_THD").unit == "%"


def test_pcs_site2_all_float_no_bank_id():
    fields = get_fields("pcs", "site2")
    assert "BANK_ID" not in [f.name for f in fields]
    assert all(f.kind == "float" for f in fields[1:])
    flt = [f.name for f in fields if f.name.startswith("FLT_")]
    assert len(flt) == 12
    assert fields[-1].name == "FLT_RVET"
    assert field("pcs", "site2", "AI_QAC").unit == "kVAR"
    assert field("pcs", "site2", "AI_C_KWH_DCL").unit == "kWh"


def test_pcs_site3_float_measurements_then_int_flags():
    fields = get_fields("pcs", "site3")
    assert "BANK_ID" not in [f.name for f in fields]
    assert [f.kind for f in fields[1:23]] == ["float"] * 22
    assert fields[22].name == "PF"
    assert [f.kind for f in fields[23:]] == ["int"] * 32
    assert fields[23].name == "STATE_OF_PCS"
    assert fields[-1].name == "COMMUNICATION_ERROR"
    # every flag after STATE_OF_PCS is a fault/error bit, so all are de-identified
    assert all(f.sensitive for f in fields[24:])


def test_etc_variants():
    assert names("etc", "site1") == [
        "TIMESTAMP", "BANK_ID", "SENSOR1_TEMPERATURE", "SENSOR1_HUMIDITY", "INV1_ACTIVE_POWER",
        "INV1_CUMLUATIVE_POWER_GENERATION",
    ]
    assert names("etc", "site23") == [
        "TIMESTAMP", "SENSOR1_TEMPERATURE", "SENSOR1_HUMIDITY", "SENSOR2_TEMPERATURE", "SENSOR2_HUMIDITY",
        "ACTIVE_POWER_TOTAL", "ACTIVE_ENERGY_TOTAL_HIGH",
    ]
    assert field("etc", "site23", "ACTIVE_POWER_TOTAL").unit == "W"
    assert field("etc", "site23", "ACTIVE_ENERGY_TOTAL_HIGH").unit == "Wh"
    assert field("etc", "site1", "SENSOR1_TEMPERATURE").unit == "°C"
    assert field("etc", "site1", "SENSOR1_HUMIDITY").unit == "%"


def test_units_come_from_the_known_set():
    allowed = {"V", "A", "%", "°C", "kW", "kVA", "kVAR", "Hz", "Wh", "kWh", "W", ""}
    for key, fields in VARIANTS.items():
        for f in fields:
            assert f.unit in allowed, (key, f.name, f.unit)
            if f.kind in ("int", "json", "timestamp"):
                assert f.unit == "", (key, f.name)


# --- sensitivity -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "RACK_OVER_VOLTAGE_PROTECTION_WARNING", "FLT_OVAR", "GATE_ERR_A", "OVERHEAT", "ST_FAULT",
    "PCS_PROTECTION_3_10", "MASTER_RACK_COMMUNICATION_FAULT", "RACK_MODULE_FAULT", "BATTERY_STATUS_FOR_WARNING",
    "RACK_TRAY_VOLATGE_IMBALANCE_WARNING", "E_STOP_FAULT", "VBAT_ERR", "PMS_E_STOP", "COMMUNICATION_ERROR",
    "flt_rvet", "overheat",
])
def test_sensitive_names(name):
    assert is_sensitive(name)


@pytest.mark.parametrize("name", [
    "RACK_SOC", "RACK_CURRENT", "TIMESTAMP", "BANK_ID", "RACK_STATUS_FOR_RUN", "ST_RUN", "STATE_OF_PCS",
    "SET_POWER", "AC_POWER", "RACK_STATUS_FOR_Online",
])
def test_not_sensitive_names(name):
    assert not is_sensitive(name)


def test_sensitive_flags_in_variants():
    assert field("rack", "site23", "RACK_OVER_VOLTAGE_PROTECTION_WARNING").sensitive
    assert field("pcs", "site2", "FLT_OVAR").sensitive
    assert field("pcs", "site2", "ST_FAULT").sensitive
    assert field("pcs", "site3", "GATE_ERR_A").sensitive
    assert field("pcs", "site3", "OVERHEAT").sensitive
    assert not field("rack", "site1", "RACK_SOC").sensitive
    assert not field("rack", "site1", "RACK_CURRENT").sensitive
    assert not field("rack", "site1", "TIMESTAMP").sensitive
    assert all(f.sensitive for f in get_fields("pcs", "site2") if f.name.startswith("FLT_"))


def test_extra_sensitive_is_upper_case_and_all_known():
    known = {f.name.upper() for fields in VARIANTS.values() for f in fields}
    for name in EXTRA_SENSITIVE:
        assert name == name.upper()
        assert name in known, f"{name} is in EXTRA_SENSITIVE but in no variant"
        # the explicit list exists for what the substring rule misses; ST_FAULT is the one
        # redundant entry (API.md names it although "FAULT" is a substring of it)
        if name != "ST_FAULT":
            assert not any(w in name for w in ("FAULT", "WARNING", "PROTECTION")), name


# --- describe ----------------------------------------------------------------------------


def test_describe_known_field_case_insensitive():
    f = describe("rack", "site1", "rack_soc")
    assert f is field("rack", "site1", "RACK_SOC")
    assert describe("rack", "site23", "rack_status_for_online").name == "RACK_STATUS_FOR_Online"


def test_describe_unknown_field_is_plain():
    f = describe("rack", "site1", "SOME_NEW_COLUMN")
    assert f.name == "SOME_NEW_COLUMN"
    assert f.kind == "float"
    assert f.unit == ""
    assert f.description
    assert not f.sensitive
    assert describe("rack", "site1", "NEW_DOOR_FAULT").sensitive
    assert describe("nothing", "nowhere", "X").name == "X"


# --- against the original UI's protection map --------------------------------------------

# The shipped default map: the original's v4.0 map (same names) with explicit limits added.
PROTECTION_MAP = Path(__file__).resolve().parents[1] / "services" / "protection" / "defaults" / "protection_map.json"

# Names the original ess_protection_map.json uses that the catalogue lacks, with the reason.
# Checked against the map's version 4.0: every name exists, so this stays empty.
PROTECTION_MAP_EXCEPTIONS: dict[str, str] = {}


def load_protection_map() -> dict:
    return json.loads(PROTECTION_MAP.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("site", "component", "variant"), [
    ("operatingSite1", "bank", "site1"),
    ("operatingSite1", "rack", "site1"),
    ("operatingSite1", "etc", "site1"),
    ("operatingSite2", "bank", "site23"),
    ("operatingSite2", "rack", "site23"),
    ("operatingSite3", "bank", "site23"),
    ("operatingSite3", "rack", "site23"),
])
def test_protection_map_names_exist(site, component, variant):
    section = load_protection_map()["dataType"][site].get(component)
    if section is None:
        pytest.skip(f"{site} has no {component} section")
    known = set(names(component, variant))
    missing = [n for n in section if n not in known and n not in PROTECTION_MAP_EXCEPTIONS]
    assert not missing, f"{site}/{component}: not in catalogue {component}/{variant}: {missing}"
    for name, entry in section.items():
        if entry.get("type") == "boolean" and name in known:
            # every flag the original UI alarms on is an integer 0/1 column (or a JSON of them)
            assert field(component, variant, name).kind in ("int", "json"), name


# --- module hygiene ----------------------------------------------------------------------


def test_catalogue_imports_only_the_standard_library():
    tree = ast.parse(Path(catalogue.__file__).read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            modules.add((node.module or "").split(".")[0])
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}, modules
