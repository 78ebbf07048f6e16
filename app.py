"""WSGI entry point and app factory: `create_app()` wires the Flask server, the API
blueprint, the Dash UI and the CLI. Importing this module does nothing else.

    flask --app app ess --help          # CLI
    gunicorn "app:create_app()"         # production
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import dash
from flask import Flask

ROOT = Path(__file__).resolve().parent


def create_app(settings: Any = None, **overrides: Any) -> Flask:
    """Build the portal: Flask server with the API, the Dash UI and the `ess` CLI.

    `settings` is a services.core.settings.Settings; `overrides` are ESS_* names (tests).
    """
    from api.analytics import bp as analytics_bp
    from api.auth import current_principal, install_auth
    from api.caching import install_caching
    from api.deid import bp as deid_bp
    from api.docs import bp as docs_bp
    from api.downloads import bp as downloads_bp
    from api.errors import register_error_handlers
    from api.jsonprovider import OrjsonProvider
    from api.limits import install_limits
    from api.protection import bp as protection_bp
    from api.routes import bp as api_bp
    from api.stats import bp as stats_bp
    from api.telemetry import bp as telemetry_bp
    from cli import ess_cli
    from services.core.portal import Portal
    from services.core.settings import load_settings

    settings = settings or load_settings(**overrides)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = Flask(__name__)
    if settings.proxy_fix:  # behind N trusted proxies: client address, scheme, host from X-Forwarded-*
        from werkzeug.middleware.proxy_fix import ProxyFix
        n = settings.proxy_fix
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)  # type: ignore[method-assign]
    server.json = OrjsonProvider(server)
    portal = Portal(settings, identify_caller=current_principal)
    server.extensions["ess"] = portal
    register_error_handlers(server)
    install_limits(server)  # oversized requests refused before auth, cache or views
    install_auth(server, settings)  # before the cache: a cached body is never served to an unauthorised caller
    install_caching(server, settings)
    server.register_blueprint(api_bp)
    server.register_blueprint(telemetry_bp)
    server.register_blueprint(stats_bp)
    server.register_blueprint(downloads_bp)
    server.register_blueprint(protection_bp)
    server.register_blueprint(deid_bp)
    server.register_blueprint(docs_bp)
    server.register_blueprint(analytics_bp)
    if settings.jobs_interval_s > 0:  # the analytics job on a schedule (off by default and in tests)
        from services.scheduler import start_scheduler

        start_scheduler(portal, settings.jobs_interval_s)
    server.cli.add_command(ess_cli)
    if not settings.auth:
        logging.getLogger("ess").warning("access control is OFF (ESS_AUTH=off): every route is open; "
                                         "set ESS_AUTH=on for any shared deployment")
    _create_dash(server)
    return server


def _create_dash(server: Flask) -> dash.Dash:
    """The Dash UI on the same server; stylesheets are vendored under assets/ (offline)."""
    from components import ids

    app = dash.Dash(
        __name__,
        server=server,  # type: ignore[arg-type]  # Dash accepts a Flask app; its annotation omits it
        use_pages=True,
        pages_folder=str(ROOT / "pages"),
        assets_folder=str(ROOT / "assets"),
        title="ESS operating-data portal",
        update_title=None,  # type: ignore[arg-type]  # documented: None keeps the title while updating
        serve_locally=True,
        routing_callback_inputs={"lang": dash.Input(ids.LANG, "value")},  # a language switch re-renders the page
    )
    from components.layout import make_shell

    if "pages._shell" in sys.modules:  # a second app in this process: register the shell callbacks again
        importlib.reload(sys.modules["pages._shell"])
    from pages import _shell  # noqa: F401  (navigation callbacks)

    app.layout = make_shell(dash.page_registry.values())
    # `dash.callback` registers into process-global lists that the first request of *some*
    # Dash app drains. Claim them now, so a second app in the same process (tests build
    # one with ESS_AUTH=on) gets its own complete set; the shell module is re-run for it.
    with server.app_context():
        app._setup_server()
    server.extensions["dash"] = app
    return app

