"""Registry and settings: parsing, round trip, and every bad value named."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from services.core.errors import ConfigError, NotFound
from services.core.registry import Bank, demo_sites, format_registry, load_registry
from services.core.settings import SETTINGS, Settings, format_settings_table, load_settings


def test_demo_sites_topology() -> None:
    sites = demo_sites()
    assert [s.id for s in sites] == [1, 2, 3]
    assert [s.rack_keys for s in sites] == [
        tuple((1, r) for r in range(1, 9)),
        tuple((1, r) for r in range(1, 10)) + tuple((2, r) for r in range(1, 9)),
        tuple((1, r) for r in range(1, 12)),
    ]
    assert [(s.cells_per_rack, s.temperature_sensors_per_rack) for s in sites] == [(204, 34), (240, 40), (204, 34)]
    assert [s.column_sets["pcs"] for s in sites] == ["site1", "site2", "site3"]
    assert {s.timezone for s in sites} == {"Asia/Seoul"}


def test_registry_round_trip(tmp_path: Path) -> None:
    sites = [s for s in demo_sites("sqlite:///site{id}.sqlite")]
    sites[0] = sites[0].__class__(**{**sites[0].__dict__, "demo_anchor": date(2022, 9, 1)})
    path = tmp_path / "sites.toml"
    path.write_text(format_registry(sites), encoding="utf-8")
    loaded = load_registry(path)
    assert loaded.site_ids == (1, 2, 3)
    first = loaded.get_site(1)
    assert first.database_url == f"sqlite:///{tmp_path / 'site1.sqlite'}"
    assert first.demo_anchor == date(2022, 9, 1)
    assert first.banks == (Bank(1, (1, 2, 3, 4, 5, 6, 7, 8)),)
    assert loaded.get_site(2).name_ko == "판리2호 태양광 ESS"
    assert loaded.get_site(3).tables == {"bank": "bank", "rack": "rack", "pcs": "pcs", "etc": "etc"}


def test_registry_lookups_raise_not_found() -> None:
    site = demo_sites()[1]
    with pytest.raises(NotFound, match="no bank 3"):
        site.get_bank(3)
    with pytest.raises(NotFound, match="bank 2 has no rack 9"):
        site.check_rack(2, 9)
    site.check_rack(1, 9)


BASE = """
[[site]]
id = 1
name = "x"
timezone = "Asia/Seoul"
database_url = "sqlite:///x.sqlite"
cells_per_rack = 204
temperature_sensors_per_rack = 34
[site.column_sets]
rack = "site1"
[[site.banks]]
id = 1
racks = [1, 2]
"""


@pytest.mark.parametrize(("old", "new", "message"), [
    ('timezone = "Asia/Seoul"', 'timezone = "Mars/Olympus"', "unknown timezone 'Mars/Olympus'"),
    ("cells_per_rack = 204", 'cells_per_rack = "many"', "'cells_per_rack' must be int"),
    ("racks = [1, 2]", "racks = []", "'racks' must be a non-empty list"),
    ('name = "x"\n', "", "missing 'name'"),
    ('rack = "site1"', 'shelf = "site1"', "unknown component 'shelf'"),
    ("id = 1\nname", "id = 1.5\nname", "'id' must be int"),
])
def test_registry_errors_name_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = tmp_path / "sites.toml"
    assert old in BASE
    path.write_text(BASE.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_registry(path)


def test_registry_missing_and_broken(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="registry file not found"):
        load_registry(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[site]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_registry(bad)


def test_settings_defaults_and_overrides(tmp_path: Path) -> None:
    s = load_settings(env={"ESS_DATA_DIR": str(tmp_path), "ESS_AUTH": "on", "ESS_PORT": "9000"})
    assert s.data_dir == tmp_path
    assert s.registry_path == tmp_path / "sites.toml"
    assert s.app_db_url == f"sqlite:///{tmp_path / 'app.sqlite'}"
    assert (s.auth, s.port, s.live, s.episode_gap_s) == (True, 9000, False, 60)
    s2 = load_settings(env={}, ESS_DATA_DIR=str(tmp_path), ESS_LIVE="on")
    assert s2.live is True


@pytest.mark.parametrize(("name", "value", "message"), [
    ("ESS_AUTH", "maybe", "ESS_AUTH='maybe': expected on or off"),
    ("ESS_PORT", "80a", "ESS_PORT='80a': expected a whole number"),
])
def test_settings_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={name: value})
    assert str(info.value) == message


def test_every_setting_documented() -> None:
    table = format_settings_table()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for s in SETTINGS:
        assert s.name.startswith("ESS_") and s.help
        assert f"`{s.name}`" in table
        assert f"`{s.name}`" in readme, f"README does not document {s.name}"


def test_settings_are_declared_once() -> None:
    """Each Settings field is one declaration: the README table is generated from it
    verbatim, and every field is an ESS_* setting with its parser."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert format_settings_table() in readme
    assert [s.attr for s in SETTINGS] == [f.name for f in dataclasses.fields(Settings)]
    defaults = load_settings(env={})
    assert (defaults.host, defaults.port, defaults.log_level, defaults.cache_prefix) == ("127.0.0.1", 8050, "INFO",
                                                                                          "ess:")
