"""The portal context: settings, registry, site stores and the app database, built once
per process by the app factory and handed to adapters (no module globals)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from services.core.appdb import get_or_create_secret
from services.core.appschema import open_app_db
from services.core.errors import ConfigError
from services.core.registry import Registry, load_registry
from services.core.settings import Settings
from services.storage.sitestore import SiteStore

if TYPE_CHECKING:
    from services.tokens import Principal

log = logging.getLogger(__name__)


def _nobody() -> Principal | None:
    return None


@dataclass
class Portal:
    settings: Settings
    identify_caller: Callable[[], Principal | None] = _nobody  # the request's caller (installed by the app)
    _registry: Registry | None = None
    _stores: dict[int, SiteStore] = field(default_factory=dict)
    _app_db: Engine | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _app_db_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def registry(self) -> Registry:
        """The site registry, loaded on first use (ConfigError if missing or invalid)."""
        with self._lock:
            if self._registry is None:
                self._registry = load_registry(self.settings.registry_path)
            return self._registry

    def has_registry(self) -> bool:
        try:
            _ = self.registry
        except ConfigError:
            return False
        return True

    def reload_registry(self) -> None:
        with self._lock:
            self._registry = None
            self._stores.clear()

    def store(self, site_id: int) -> SiteStore:
        """The SiteStore of a site (NotFound for an unknown id)."""
        site = self.registry.get_site(site_id)
        with self._lock:
            store = self._stores.get(site_id)
            if store is None:
                store = SiteStore(site, self.settings.pool_size)
                self._stores[site_id] = store
            return store

    @property
    def app_db(self) -> Engine:
        """The app database, its tables created on first use (once, under the lock)."""
        with self._app_db_lock:
            if self._app_db is None:
                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
                self._app_db = open_app_db(self.settings.app_db_url)
            return self._app_db

    def secret(self, name: str) -> str:
        """A setting's secret, or one generated once and kept in the app database."""
        configured = {"deid": self.settings.deid_secret, "session": self.settings.secret_key}.get(name, "")
        return configured or get_or_create_secret(self.app_db, f"secret.{name}")
