"""Every ESS_* setting, declared once as a field of `Settings`: its type, ESS_* name,
default and one line of help. `SETTINGS`, the parsing in `load_settings()` and the README
table (`python -m services.core.settings`) all come from those declarations.

Read once by `load_settings()`; code receives a `Settings` object and never reads
`os.environ` itself (gunicorn.conf.py too reads ESS_HOST/ESS_PORT through it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from services.core.errors import ConfigError

Parser = Callable[[str, Any, Mapping[str, Any]], Any]  # (ESS_ name, raw value, settings so far) -> value


@dataclass(frozen=True)
class Setting:
    """One ESS_* setting: its Settings attribute, default (as written in the environment),
    help (the README row) and parser."""

    name: str
    default: Any
    help: str
    attr: str
    parse: Parser


def _as_bool(name: str, value: Any, _so_far: Mapping[str, Any]) -> bool:
    text = str(value).strip().lower()
    if text in {"1", "on", "true", "yes"}:
        return True
    if text in {"0", "off", "false", "no", ""}:
        return False
    raise ConfigError(f"{name}={value!r}: expected on or off")


def _as_int(name: str, value: Any, _so_far: Mapping[str, Any]) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a whole number") from None


def _as_str(_name: str, value: Any, _so_far: Mapping[str, Any]) -> str:
    return str(value)


def _as_path(_name: str, value: Any, _so_far: Mapping[str, Any]) -> Path:
    return Path(str(value)).expanduser().resolve()


PARSERS_BY_TYPE: dict[str, Parser] = {"bool": _as_bool, "int": _as_int, "str": _as_str, "Path": _as_path}


def setting(name: str, default: Any, help: str, parse: Parser | None = None) -> Any:
    """Declare a Settings field: its ESS_* name, default and help; parsed by the field's
    type (bool, int, str, Path) unless `parse` is given. Adding a setting is one line."""
    return field(metadata={"setting": (name, default, help, parse)})


@dataclass(frozen=True)
class Settings:
    """Every ESS_* setting, declared once; resolved values (paths are absolute)."""

    data_dir: Path = setting("ESS_DATA_DIR", "data", "Folder for the embedded SQLite databases, the registry and generated files.")
    registry_path: Path = setting("ESS_REGISTRY", "", "Path of the site registry (TOML); default <ESS_DATA_DIR>/sites.toml.",
                                  lambda n, v, s: _as_path(n, v or s["data_dir"] / "sites.toml", s))
    app_db_url: str = setting("ESS_APP_DB_URL", "", "SQLAlchemy URL of the app database (events, analytics, tokens); default SQLite under ESS_DATA_DIR.",
                              lambda _n, v, s: str(v) or f"sqlite:///{s['data_dir'] / 'app.sqlite'}")
    cache_url: str = setting("ESS_CACHE_URL", "", "redis://host:port/db for the shared response cache; empty = in-process cache.")
    cache_default_s: int = setting("ESS_CACHE_DEFAULT_S", 300, "Cache lifetime in seconds for responses over closed past ranges.")
    cache_live_s: int = setting("ESS_CACHE_LIVE_S", 2, "Cache lifetime in seconds for responses whose range touches the present.")
    cache_prefix: str = setting("ESS_CACHE_PREFIX", "ess:", "Key prefix in the shared Redis cache (one per portal when several share a Redis).")
    deid_secret: str = setting("ESS_DEID_SECRET", "", "Server secret for de-identified column ids (HMAC); empty = generated once and kept in the app database.")
    secret_key: str = setting("ESS_SECRET_KEY", "", "Key that signs UI session cookies; empty = generated once and kept in the app database.")
    auth: bool = setting("ESS_AUTH", "off", "'on' requires Bearer tokens (API) or a login (UI); 'off' is for the embedded demo only.")
    session_secure: bool = setting("ESS_SESSION_SECURE", "off", "'on' marks the UI session cookie Secure (HTTPS only); turn on behind TLS.")
    host: str = setting("ESS_HOST", "127.0.0.1", "Address the server listens on (the development server and gunicorn.conf.py).")
    port: int = setting("ESS_PORT", 8050, "Port the server listens on (the development server and gunicorn.conf.py).")
    live: bool = setting("ESS_LIVE", "off", "'on' appends one row per second per component to the demo sites while the app runs.")
    log_level: str = setting("ESS_LOG_LEVEL", "INFO", "Logging level (DEBUG, INFO, WARNING, ERROR).", lambda _n, v, _s: str(v).upper())
    episode_gap_s: int = setting("ESS_EPISODE_GAP_S", 60, "Quiet gap in seconds that ends a protection-map alarm episode.")
    jobs_interval_s: int = setting("ESS_JOBS_INTERVAL_S", 0, "Seconds between background analytics/evaluation runs in the app; 0 = off.")
    pool_size: int = setting("ESS_POOL_SIZE", 5, "Connection pool size per PostgreSQL engine.")
    stale_after_s: int = setting("ESS_STALE_AFTER_S", 120, "Seconds without a new row after which the overview marks a site's data stale.")
    proxy_fix: int = setting("ESS_PROXY_FIX", 0, "Number of trusted reverse proxies in front of the app (X-Forwarded-For/-Proto/-Host/-Prefix); 0 = none.")


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(name, default, help_, f.name, parse or PARSERS_BY_TYPE[str(f.type)])
    for f in fields(Settings) for name, default, help_, parse in [f.metadata["setting"]])


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read every ESS_* setting once from `env` (default: the process environment).

    `overrides` use the same ESS_* names and win over the environment (tests use them).
    Raises ConfigError naming the setting when a value cannot be used.
    """
    source = dict(os.environ if env is None else env)
    known = {s.name for s in SETTINGS}
    for key in overrides:
        if key not in known:
            raise ConfigError(f"unknown setting {key}")
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = overrides[s.name] if s.name in overrides else source.get(s.name, s.default)
        values[s.attr] = s.parse(s.name, raw, values)
    return Settings(**values)


def format_settings_table() -> str:
    """Markdown table of every setting (used for the README)."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | `{s.default}` | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)


if __name__ == "__main__":
    print(format_settings_table())
