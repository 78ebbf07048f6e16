"""The `ess` command group on the Flask CLI (`flask --app app ess --help`).

Adapters only: parse options, call services, print results; errors are printed as one
clear line (with file and line where a file is at fault) and exit with status 1.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from services.core.errors import EssError
from services.core.portal import Portal
from services.core.registry import Site, demo_sites, format_registry
from services.storage.rollups import catch_up, refresh_range
from services.storage.sitestore import SiteStore


def update_rollups(store: SiteStore) -> None:
    """Per-minute rollups of every component brought up to date (progress on stderr)."""
    for component in store.site.column_sets:
        click.echo(f"  rollups: {component}", err=True)
        catch_up(store, component, create=True)


def _portal() -> Portal:
    portal: Portal = current_app.extensions["ess"]
    return portal


def _parse_sites(value: str | None, available: list[int]) -> list[int]:
    if not value:
        return available
    try:
        chosen = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a comma list of site ids such as 1,2") from None
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise click.BadParameter(f"unknown site id(s) {unknown}; known: {available}")
    return chosen


def _fail(exc: EssError) -> None:
    click.secho(f"error: {exc.detail}", fg="red", err=True)
    sys.exit(1)


@click.group("ess")
def ess_cli() -> None:
    """ESS portal commands: demo data, schema, ingestion."""


@ess_cli.command("sites")
@with_appcontext
def sites_command() -> None:
    """List the registered sites."""
    try:
        for s in _portal().registry.sites:
            racks = sum(len(b.racks) for b in s.banks)
            click.echo(f"{s.id}\t{s.name}\t{len(s.banks)} bank(s), {racks} racks\t{s.database_url} {s.schema}")
    except EssError as exc:
        _fail(exc)


@ess_cli.command("create-schema")
@click.option("--sites", "site_ids", help="Comma list of site ids (default: all).")
@with_appcontext
def create_schema_command(site_ids: str | None) -> None:
    """Create the databases (PostgreSQL), tables and indexes of registered sites (idempotent)."""
    from services.storage.engines import ensure_database

    portal = _portal()
    try:
        for sid in _parse_sites(site_ids, list(portal.registry.site_ids)):
            if ensure_database(portal.registry.get_site(sid).database_url):
                click.echo(f"site {sid}: database created")
            portal.store(sid).create_schema()
            click.echo(f"site {sid}: tables ready")
    except EssError as exc:
        _fail(exc)


def _demo_window(start: date | None, days: int, tz: Any, now: datetime) -> tuple[datetime, datetime]:
    """[start, start+days) for a fixed window, else the last `days` whole days up to now."""
    if start is not None:
        begin = datetime.combine(start, time(0), tzinfo=tz)
        return begin, begin + timedelta(days=days)
    local_now = now.astimezone(tz).replace(microsecond=0)
    begin = datetime.combine(local_now.date() - timedelta(days=days), time(0), tzinfo=tz)
    return begin, local_now


@ess_cli.command("demo")
@click.option("--days", default=2, show_default=True, type=click.IntRange(1, 400), help="Days of data.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]),
              help="First day of a fixed window; default: the last --days days up to now.")
@click.option("--sites", "site_ids", help="Comma list of demo site ids (default: 1,2,3).")
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed (same seed, same data).")
@click.option("--url", help="SQLAlchemy URL of a PostgreSQL database: one schema per site (site1, site2, ...).")
@click.option("--if-absent", is_flag=True, help="Do nothing when the registry already exists.")
@click.option("--live", is_flag=True, help="After generating, keep appending one row per second until Ctrl-C.")
@with_appcontext
def demo_command(days: int, start: datetime | None, site_ids: str | None, seed: int, url: str | None,
                 if_absent: bool, live: bool) -> None:
    """Write the demo registry and generate realistic 1 Hz data for the demo sites."""
    from services.demo.live import run_live
    from services.demo.writer import write_demo

    portal = _portal()
    settings = portal.settings
    if if_absent and settings.registry_path.exists():
        click.echo(f"demo data present ({settings.registry_path}); skipping generation")
        return
    settings.registry_path.parent.mkdir(parents=True, exist_ok=True)
    ids = _parse_sites(site_ids, [1, 2, 3])
    if url:
        sites = demo_sites(url, "site{id}")
    else:
        sites = demo_sites(f"sqlite:///{settings.data_dir}/site{{id}}.sqlite")
    now = datetime.now().astimezone()
    plan: list[tuple[Site, datetime, datetime]] = []
    for site in sites:
        if site.id in ids:
            begin, end = _demo_window(start.date() if start else None, days, site.tz, now)
            plan.append((dataclasses.replace(site, demo_anchor=begin.date()), begin, end))
    try:
        for site, begin, end in plan:
            click.echo(f"site {site.id} ({site.name}): {begin.isoformat()} → {end.isoformat()}")
            results = write_demo(site, begin, end, seed=seed, progress=True)
            click.echo("  " + ", ".join(f"{c}: {r.written:,} rows" for c, r in results.items()))
            update_rollups(SiteStore(site))
        settings.registry_path.write_text(format_registry([p[0] for p in plan]), encoding="utf-8")
        click.echo(f"registry written: {settings.registry_path}")
        portal.reload_registry()
        for site, begin, _end in plan:
            _evaluate(portal, site.id, since=begin)
        _run_analytics(portal, [p[0].id for p in plan], None, None, rebuild=True)
    except EssError as exc:
        _fail(exc)
    if live:
        stop = threading.Event()
        click.echo("live mode: appending one row per second (Ctrl-C to stop)")
        try:
            run_live(list(portal.registry.sites), stop, seed=seed)
        except KeyboardInterrupt:
            stop.set()


def _run_analytics(portal: Portal, site_ids: list[int], start: datetime | None, end: datetime | None,
                   rebuild: bool = False) -> None:
    """The analytics job with a progress bar and one summary line per site and task."""
    from services.analytics.jobs import analyze, summarise_reports

    click.echo("analytics: SoS, ExSoS, SoCP, SoH/SoL and forecasts (incremental; Ctrl-C is safe)")
    reports = analyze(portal, site_ids, start=start, end=end, progress=True, rebuild=rebuild,
                      on_site=lambda _sid, part: click.echo("\n".join("  " + line for line in summarise_reports(part))))
    if any(r.failed for r in reports):
        raise EssError("the analytics of some sites failed (see above)", code="analytics_failed")


@ess_cli.command("analyze")
@click.option("--sites", "site_ids", help="Comma list of site ids (default: all).")
@click.option("--start", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Do not analyse data before this local time (default: from the last run, else the first row).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Do not analyse data from this local time on (default: up to the newest complete 10 minutes).")
@click.option("--rebuild", is_flag=True, help="Forget the stored analytics of these sites and compute them again.")
@with_appcontext
def analyze_command(site_ids: str | None, start: datetime | None, end: datetime | None, rebuild: bool) -> None:
    """Bring the stored safety indices and forecasts up to date (only new data is processed)."""
    portal = _portal()
    try:
        _run_analytics(portal, _parse_sites(site_ids, list(portal.registry.site_ids)), start, end, rebuild=rebuild)
    except EssError as exc:
        _fail(exc)


@ess_cli.command("ingest")
@click.option("--site", "site_id", required=True, type=int, help="Site id.")
@click.option("--component", type=click.Choice(["bank", "rack", "pcs", "etc"]),
              help="Target table (default: from the file name, e.g. 20220901_rack.csv).")
@click.option("--skip-bad-rows", is_flag=True, help="Write good rows and put bad ones in a reject file.")
@click.option("--reject-file", type=click.Path(dir_okay=False, path_type=Path), help="Where rejected rows go.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def ingest_command(site_id: int, component: str | None, skip_bad_rows: bool, reject_file: Path | None,
                   files: tuple[Path, ...]) -> None:
    """Load CSV or Parquet files into a site's table (idempotent upsert, all-or-nothing per file)."""
    from services.ingest.loader import ingest_file

    portal = _portal()
    failed = 0
    if reject_file is not None and len(files) > 1:
        raise click.BadParameter("--reject-file names one file's rejects; with several input files each gets "
                                 "<file>.rejects.csv beside it", param_hint="--reject-file")
    try:
        site = portal.registry.get_site(site_id)
    except EssError as exc:
        _fail(exc)
        return
    earliest: datetime | None = None
    for path in files:
        try:
            report = ingest_file(site, component, path, skip_bad_rows=skip_bad_rows, reject_path=reject_file)
            click.echo(report.format_summary())
            for warning in report.warnings:
                click.secho(f"warning: {warning}", fg="yellow", err=True)
            if report.time_range is not None:
                earliest = min(earliest or report.time_range[0], report.time_range[0])
                store = portal.store(site.id)
                refresh_range(store, report.component, report.time_range[0],
                              report.time_range[1] + timedelta(seconds=1))
        except EssError as exc:
            failed += 1
            click.secho(f"error: {exc.detail}", fg="red", err=True)
    if earliest is not None:  # protection events: judge the new rows (again from the earliest one written)
        try:
            _evaluate(portal, site.id, since=earliest)
        except EssError as exc:
            failed += 1
            click.secho(f"error: {exc.detail}", fg="red", err=True)
    if failed:
        sys.exit(1)


def _evaluate(portal: Portal, site_id: int, since: datetime | None = None) -> None:
    """Protection-map evaluation of one site with a progress bar and a summary line;
    `since` first forgets what was judged from then on (rows rewritten or loaded late)."""
    from tqdm import tqdm

    from services.protection.evaluation import evaluate_site, pending_samples, rewind_site

    store = portal.store(site_id)
    if since is not None:
        rewind_site(portal.app_db, store.site, since, portal.settings.episode_gap_s)
    total = pending_samples(portal.app_db, store)
    with tqdm(total=total, unit="samples", unit_scale=True, desc=f"site {site_id} protection map",
              leave=False, disable=total == 0) as bar:
        summary = evaluate_site(portal, store, progress=bar.update)
    click.echo("  protection map: " + summary.format_line())


@ess_cli.command("evaluate")
@click.option("--sites", "site_ids", help="Comma list of site ids (default: all).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Judge again from this local time on (after loading older rows or changing the map).")
@with_appcontext
def evaluate_command(site_ids: str | None, since: datetime | None) -> None:
    """Judge new rows against the protection map: threshold and BMS-flag events, episodes."""
    portal = _portal()
    try:
        for sid in _parse_sites(site_ids, list(portal.registry.site_ids)):
            site = portal.registry.get_site(sid)
            _evaluate(portal, sid, since=since.replace(tzinfo=site.tz) if since else None)
    except EssError as exc:
        _fail(exc)


@ess_cli.command("serve")
@click.option("--live/--no-live", default=None, help="Append demo rows every second (default: ESS_LIVE).")
@with_appcontext
def serve_command(live: bool | None) -> None:
    """Serve the portal on ESS_HOST:ESS_PORT (development server; use gunicorn in production)."""
    from services.demo.live import run_live

    portal = _portal()
    settings = portal.settings
    stop = threading.Event()
    if (settings.live if live is None else live) and portal.has_registry():
        thread = threading.Thread(target=run_live, args=(list(portal.registry.sites), stop), daemon=True,
                                  name="ess-live")
        thread.start()
        click.echo("live mode on: one new row per second per component")
    click.echo(f"serving on http://{settings.host}:{settings.port}/")
    try:
        # Flask.run() refuses to run inside the `flask` CLI; werkzeug's server is the same one
        run_simple(settings.host, settings.port, current_app._get_current_object(),  # type: ignore[attr-defined]
                   threaded=True, use_reloader=False)
    finally:
        stop.set()


# ----- access tokens (services/tokens.py) ----------------------------------------------------

@ess_cli.group("token")
def token_cli() -> None:
    """Access tokens for the API and the UI (ESS_AUTH=on): create, list, revoke."""


@token_cli.command("create")
@click.argument("name")
@click.option("--scope", required=True, type=click.Choice(["deidentified", "raw", "admin"]),
              help="deidentified < raw < admin (each includes the ones before it).")
@with_appcontext
def token_create_command(name: str, scope: str) -> None:
    """Create a token NAME; prints only the token on stdout (it is shown once)."""
    from services.tokens import create_token

    try:
        token = create_token(_portal().app_db, name, scope)
    except EssError as exc:
        _fail(exc)
        return
    click.echo(f"token {name!r} ({scope}) created; it is shown once, store it now. Use it as "
               "'Authorization: Bearer <token>' or paste it into the portal's sign-in page.", err=True)
    click.echo(token)


@token_cli.command("list")
@with_appcontext
def token_list_command() -> None:
    """Every token: name, scope, created, last used, revoked (never the token)."""
    from services.tokens import list_tokens

    try:
        rows = list_tokens(_portal().app_db)
    except EssError as exc:
        _fail(exc)
        return
    table = [("NAME", "SCOPE", "CREATED", "LAST USED", "REVOKED")] + [
        (r["name"], r["scope"], r["created"] or "-", r["last_used"] or "-", r["revoked_at"] or "-") for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(5)]
    for row in table:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@token_cli.command("revoke")
@click.argument("name")
@with_appcontext
def token_revoke_command(name: str) -> None:
    """Revoke the token NAME (other server processes notice within 30 s)."""
    from services.tokens import CACHE_TTL_S, revoke_token

    try:
        revoke_token(_portal().app_db, name)
    except EssError as exc:
        _fail(exc)
        return
    click.echo(f"token {name!r} revoked (in effect everywhere within {CACHE_TTL_S:.0f} s)")
