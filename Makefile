# The two commands: `make run` (portal on the embedded demo) and `make test` (every test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(PY) -m flask --app app
DEMO_DAYS ?= 2

.PHONY: run test install install-dev browser postgres redis lint typecheck bench bench-load clean-data

$(VENV)/.runtime: requirements.txt
	@echo "==> creating the virtual environment in $(VENV) and installing requirements.txt"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	@echo "==> installing test tools (requirements-dev.txt)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: install
	@echo "==> demo data: generating the last $(DEMO_DAYS) days for sites 1-3 unless data/sites.toml exists"
	@$(FLASK) ess demo --if-absent --days $(DEMO_DAYS)
	@echo "==> serving the portal on http://127.0.0.1:8050 with live demo rows (Ctrl-C to stop)"
	@ESS_LIVE=on $(FLASK) ess serve

browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "==> chromium and chromedriver present"; \
	else \
		echo "==> installing Debian chromium and chromium-driver for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

postgres:
	@if pg_isready -q -h 127.0.0.1 -p 5432; then echo "==> PostgreSQL answers on 127.0.0.1:5432"; \
	elif [ -d /etc/postgresql ]; then \
		echo "==> starting the local PostgreSQL cluster"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start; \
		for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
		pg_isready -h 127.0.0.1 -p 5432; \
	else echo "PostgreSQL is not installed: the PostgreSQL half of the suite cannot run" >&2; exit 1; fi

redis:
	@if redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then echo "==> Redis answers on 127.0.0.1:6379"; \
	elif command -v redis-server >/dev/null; then \
		echo "==> starting Redis on 127.0.0.1:6379"; \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; sleep 1; \
	else echo "==> Redis not installed; Redis cache tests will be skipped"; fi

lint: install-dev
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .

typecheck: install-dev
	@echo "==> mypy (services, api, components, pages, app.py, cli.py, tools)"
	@$(VENV)/bin/mypy

test: install-dev browser postgres redis lint typecheck
	@echo "==> pytest (SQLite and PostgreSQL, headless Chromium)"
	@$(VENV)/bin/pytest

bench: install-dev
	@$(PY) bench/generate.py

# gunicorn (2 workers) on a throwaway PostgreSQL cluster (port 5440, dropped afterwards) with Redis;
# needs root for pg_createcluster, and wrk (installed here from apt when missing)
bench-load: install-dev redis
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@$(PY) bench/load.py

clean-data:
	rm -rf data/*.sqlite data/*.sqlite-* data/sites.toml
