"""Every ESS_* setting in one table: name, default and one line of help.

Read once by `load_settings()`; code receives a `Settings` object and never reads
`os.environ` itself.  `python -m services.core.settings` prints the table (the README's
configuration section is generated from the same rows).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.core.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("ESS_DATA_DIR", "data", "Folder for the embedded SQLite databases, the registry and generated files."),
    Setting("ESS_REGISTRY", "", "Path of the site registry (TOML); default <ESS_DATA_DIR>/sites.toml."),
    Setting("ESS_APP_DB_URL", "", "SQLAlchemy URL of the app database (events, analytics, tokens); default SQLite under ESS_DATA_DIR."),
    Setting("ESS_CACHE_URL", "", "redis://host:port/db for the shared response cache; empty = in-process cache."),
    Setting("ESS_CACHE_DEFAULT_S", 300, "Cache lifetime in seconds for responses over closed past ranges."),
    Setting("ESS_CACHE_LIVE_S", 2, "Cache lifetime in seconds for responses whose range touches the present."),
    Setting("ESS_CACHE_PREFIX", "ess:", "Key prefix in the shared Redis cache (one per portal when several share a Redis)."),
    Setting("ESS_DEID_SECRET", "", "Server secret for de-identified column ids (HMAC); empty = generated once and kept in the app database."),
    Setting("ESS_SECRET_KEY", "", "Key that signs UI session cookies; empty = generated once and kept in the app database."),
    Setting("ESS_AUTH", "off", "'on' requires Bearer tokens (API) or a login (UI); 'off' is for the embedded demo only."),
    Setting("ESS_SESSION_SECURE", "off", "'on' marks the UI session cookie Secure (HTTPS only); turn on behind TLS."),
    Setting("ESS_HOST", "127.0.0.1", "Address the development server listens on."),
    Setting("ESS_PORT", 8050, "Port the development server listens on."),
    Setting("ESS_LIVE", "off", "'on' appends one row per second per component to the demo sites while the app runs."),
    Setting("ESS_LOG_LEVEL", "INFO", "Logging level (DEBUG, INFO, WARNING, ERROR)."),
    Setting("ESS_EPISODE_GAP_S", 60, "Quiet gap in seconds that ends a protection-map alarm episode."),
    Setting("ESS_JOBS_INTERVAL_S", 0, "Seconds between background analytics/evaluation runs in the app; 0 = off."),
    Setting("ESS_POOL_SIZE", 5, "Connection pool size per PostgreSQL engine."),
    Setting("ESS_PROXY_FIX", 0, "Number of trusted reverse proxies in front of the app (X-Forwarded-For/-Proto/-Host/-Prefix); 0 = none."),
)


@dataclass(frozen=True)
class Settings:
    """Resolved settings; paths are absolute."""

    data_dir: Path
    registry_path: Path
    app_db_url: str
    cache_url: str = ""
    cache_default_s: int = 300
    cache_live_s: int = 2
    cache_prefix: str = "ess:"
    deid_secret: str = ""
    secret_key: str = ""
    auth: bool = False
    session_secure: bool = False
    host: str = "127.0.0.1"
    port: int = 8050
    live: bool = False
    log_level: str = "INFO"
    episode_gap_s: int = 60
    jobs_interval_s: int = 0
    pool_size: int = 5
    proxy_fix: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _as_bool(name: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in {"1", "on", "true", "yes"}:
        return True
    if text in {"0", "off", "false", "no", ""}:
        return False
    raise ConfigError(f"{name}={value!r}: expected on or off")


def _as_int(name: str, value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a whole number") from None


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
    raw = {s.name: source.get(s.name, s.default) for s in SETTINGS}
    raw.update({k: v for k, v in overrides.items()})
    data_dir = Path(str(raw["ESS_DATA_DIR"])).expanduser().resolve()
    registry = str(raw["ESS_REGISTRY"]) or str(data_dir / "sites.toml")
    app_db = str(raw["ESS_APP_DB_URL"]) or f"sqlite:///{data_dir / 'app.sqlite'}"
    return Settings(
        data_dir=data_dir,
        registry_path=Path(registry).expanduser().resolve(),
        app_db_url=app_db,
        cache_url=str(raw["ESS_CACHE_URL"]),
        cache_default_s=_as_int("ESS_CACHE_DEFAULT_S", raw["ESS_CACHE_DEFAULT_S"]),
        cache_live_s=_as_int("ESS_CACHE_LIVE_S", raw["ESS_CACHE_LIVE_S"]),
        cache_prefix=str(raw["ESS_CACHE_PREFIX"]),
        deid_secret=str(raw["ESS_DEID_SECRET"]),
        secret_key=str(raw["ESS_SECRET_KEY"]),
        auth=_as_bool("ESS_AUTH", raw["ESS_AUTH"]),
        session_secure=_as_bool("ESS_SESSION_SECURE", raw["ESS_SESSION_SECURE"]),
        host=str(raw["ESS_HOST"]),
        port=_as_int("ESS_PORT", raw["ESS_PORT"]),
        live=_as_bool("ESS_LIVE", raw["ESS_LIVE"]),
        log_level=str(raw["ESS_LOG_LEVEL"]).upper(),
        episode_gap_s=_as_int("ESS_EPISODE_GAP_S", raw["ESS_EPISODE_GAP_S"]),
        jobs_interval_s=_as_int("ESS_JOBS_INTERVAL_S", raw["ESS_JOBS_INTERVAL_S"]),
        pool_size=_as_int("ESS_POOL_SIZE", raw["ESS_POOL_SIZE"]),
        proxy_fix=_as_int("ESS_PROXY_FIX", raw["ESS_PROXY_FIX"]),
    )


def format_settings_table() -> str:
    """Markdown table of every setting (used for the README)."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | `{s.default}` | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)


if __name__ == "__main__":
    print(format_settings_table())
