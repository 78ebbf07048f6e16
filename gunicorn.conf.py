"""gunicorn settings for the portal:  gunicorn -c gunicorn.conf.py "app:create_app()"

Every value can be overridden on the command line or with GUNICORN_* variables below.
gunicorn reads this file itself; it is not imported by the app. The address comes from the
portal's own settings (ESS_HOST, ESS_PORT through services.core.settings, one default).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gunicorn execs this file: make services importable
from services.core.settings import load_settings

_env = os.environ.get
_settings = load_settings()

# Where to listen: GUNICORN_BIND wins, else ESS_HOST:ESS_PORT (the dev server's settings).
bind = [_env("GUNICORN_BIND") or f"{_settings.host}:{_settings.port}"]

# Processes: the usual 2 x cores + 1, capped so a big box does not open hundreds of
# database connections (each worker holds up to 2 x ESS_POOL_SIZE per database).
_max_workers = int(_env("GUNICORN_MAX_WORKERS", "8"))
workers = int(_env("GUNICORN_WORKERS") or min(2 * multiprocessing.cpu_count() + 1, _max_workers))

# Threads per worker: requests mostly wait on PostgreSQL and Redis (I/O), and a streamed CSV
# download holds a thread for its whole transfer; threads keep such a download from
# blocking the worker's other requests.
worker_class = "gthread"
threads = int(_env("GUNICORN_THREADS", "4"))

# A worker that does not answer the arbiter for `timeout` seconds is killed. With gthread
# the heartbeat continues while a thread streams, but a large CSV over a slow link can keep
# a request busy for minutes (1 GB at 5 MB/s is 200 s), so allow 300 s rather than 30 s.
timeout = int(_env("GUNICORN_TIMEOUT", "300"))
# On SIGTERM/SIGHUP, running downloads get this long to finish before workers are killed.
graceful_timeout = int(_env("GUNICORN_GRACEFUL_TIMEOUT", "60"))
# Behind a reverse proxy that reuses upstream connections (nginx `keepalive`).
keepalive = int(_env("GUNICORN_KEEPALIVE", "5"))
# No periodic worker recycling by default: a new worker spends ~2.7 s of CPU building the
# app, and under load (bench/load.py) recycling every 5,000 requests restarted workers every
# few seconds, sometimes both at once (3 s with nothing answering). Set e.g. 100000 if a
# worker's memory grows after large requests.
max_requests = int(_env("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(_env("GUNICORN_MAX_REQUESTS_JITTER", "1000"))

# Build the app once in the arbiter when asked (faster start, shared memory pages); engines
# made while building must then be disposed in each worker, see post_fork.
preload_app = _env("GUNICORN_PRELOAD", "0") in ("1", "true", "on", "yes")

# Logs to stderr (journald/docker collect them). The access log is off by default: the
# reverse proxy logs every request (deploy/nginx.conf) and here it costs 0.2-0.8 ms CPU per
# request (a quarter of a cached hit). GUNICORN_ACCESSLOG=- turns it on; it keeps the query
# string (tokens never travel in one) and passes the token-redaction filter.
accesslog = _env("GUNICORN_ACCESSLOG", "") or None
errorlog = "-"
loglevel = _env("GUNICORN_LOGLEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "ess-portal"


def post_fork(server: Any, worker: Any) -> None:
    """A forked worker must not share the parent's database sockets (with preload_app the
    arbiter may have connected): give every inherited engine a fresh pool without closing
    the parent's connections; each worker then opens its own on first use."""
    from services.storage.engines import dispose_engines

    dispose_engines(after_fork=True)


def post_worker_init(worker: Any) -> None:
    """The app is built: move its long-lived objects out of the garbage collector's sight
    (fewer, shorter collections while serving; ~7 % of a cached hit in-process)."""
    import gc

    gc.collect()
    gc.freeze()
