"""Screenshots of every portal page with headless Chromium, for docs/screenshots/.

    .venv/bin/python bench/screenshots.py                     # demo day in a temp dir, all pages
    .venv/bin/python bench/screenshots.py --url http://127.0.0.1:8050 --data-dir data

Without --url it generates one small demo day (sites 1-3, SQLite) in a temporary folder,
runs the analytics and protection jobs when they are installed, serves the portal on a
free port and shoots each page at 1280x800 (plus the live page at a tablet width).
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAY = date(2022, 9, 1)
PAGES = [  # (file name, path and query, CSS selector that must be present)
    ("overview", "/", "#overview-episodes-2"),
    ("live", "/live?site=2", "#live-rack-1-1"),
    ("explorer", "/explorer?site=2&component=rack&bank=1&rack=3&fields=rack_max_cell_voltage,rack_min_cell_voltage"
                 "&start=2022-09-01T06:00&end=2022-09-02T15:06", "#explorer-graph .main-svg"),
    ("safety", "/safety?site=2&bank=1&rack=2&start=2022-09-02T12:00&end=2022-09-02T15:06", "#safety-gauge-2"),
    ("forecasts", "/forecasts?site=2&bank=1&rack=2&start=2022-09-02T09:00&end=2022-09-02T15:06",
     "#forecasts-targets > *"),
    ("alarms", "/alarms?site=2&start=2022-08-30T00:00&end=2022-09-02T15:06", "#alarms-body"),
    ("downloads", "/downloads?site=2&types=bank,rack,etc&start=2022-09-01T00:00&end=2022-09-02T00:00",
     "#downloads-estimate > *"),
    ("api", "/api-guide?site=2", "#api-examples"),
    ("not-found", "/no-such-page", "#not-found-title"),
]
TABLET = [("live-tablet", "/live?site=2", "#live-rack-1-1", (820, 1180))]
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--force-device-scale-factor=1")


def make_demo(data_dir: Path, days_before: int = 2, until: dtime = dtime(15, 5)) -> Path:
    """Small versions of the demo sites (SQLite), from `days_before` days before the anchor
    day to `until` on the day after it: the hot afternoon of site 2 bank 1 rack 2 and the
    weak cell of rack 3 are then the newest data, and the forecasts have earlier days."""
    from services.core.registry import Bank, demo_sites, format_registry
    from services.demo.writer import fill_site

    one, two, three = demo_sites()
    small = [dataclasses.replace(one, banks=(Bank(1, (1, 2, 3, 4)),)),
             dataclasses.replace(two, banks=(Bank(1, (1, 2, 3, 4, 5)), Bank(2, (1, 2, 3, 4)))),
             dataclasses.replace(three, banks=(Bank(1, (1, 2, 3)),))]
    sites = []
    for base in small:
        site = dataclasses.replace(base, database_url=f"sqlite:///{data_dir / f'site{base.id}.sqlite'}",
                                   demo_anchor=DAY)
        start = datetime.combine(DAY - timedelta(days=days_before), dtime(0), tzinfo=site.tz)
        end = datetime.combine(DAY + timedelta(days=1), until, tzinfo=site.tz)
        fill_site(site, start, end, anchor=DAY)
        sites.append(site)
        print(f"site {site.id} generated", flush=True)
    registry = data_dir / "sites.toml"
    registry.write_text(format_registry(sites), encoding="utf-8")
    return registry


def run_jobs(app: object) -> None:
    """Bring analytics and protection events up to date when those modules exist."""
    portal = app.extensions["ess"]  # type: ignore[attr-defined]
    try:
        from services.protection.evaluation import evaluate_sites
    except ImportError:
        print("protection events not installed: the alarms page will say so")
    else:
        evaluate_sites(portal)
        print("protection events evaluated", flush=True)
    try:
        from services.analytics.jobs import analyze
    except ImportError:
        print("analytics not installed: the safety and forecast pages will say so")
    else:
        analyze(portal)
        print("analytics computed", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path, registry: Path, jobs: bool = True) -> str:
    from app import create_app

    app = create_app(ESS_DATA_DIR=str(data_dir), ESS_REGISTRY=str(registry), ESS_LOG_LEVEL="WARNING")
    if jobs:
        run_jobs(app)
    port = free_port()
    threading.Thread(target=lambda: app.run(host="127.0.0.1", port=port, threaded=True), daemon=True).start()
    time.sleep(1.5)
    return f"http://127.0.0.1:{port}"


def make_driver(width: int, height: int) -> object:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options)
    # the window size includes the (invisible) browser frame: pin the viewport itself
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return driver


def settle(driver: object, selector: str, timeout_s: float = 30) -> None:
    """Wait for `selector`, then until no Dash callback or loading spinner is running."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not driver.find_elements(By.CSS_SELECTOR, selector):  # type: ignore[attr-defined]
        time.sleep(0.2)
    quiet = 0
    while time.monotonic() < deadline and quiet < 4:
        busy = driver.find_elements(By.CSS_SELECTOR, "._dash-loading-callback, .dash-spinner, .dash-default-spinner")  # type: ignore[attr-defined]
        quiet = 0 if busy else quiet + 1
        time.sleep(0.25)
    time.sleep(0.6)


def shoot(base: str, out: Path, pages: list[tuple[str, str, str]], size: tuple[int, int], lang: str,
          full: bool = False) -> None:
    driver = make_driver(*size)
    try:
        driver.get(base + "/")  # type: ignore[attr-defined]
        key = "_dash_persistence.shell-lang.value.true"  # Dash's persistence record: [new value, original]
        driver.execute_script(  # type: ignore[attr-defined]
            "if (arguments[1] === 'en') { localStorage.removeItem(arguments[0]); }"
            "else { localStorage.setItem(arguments[0], JSON.stringify([arguments[1], 'en'])); }", key, lang)
        for name, path, selector in pages:
            driver.get(base + path)  # type: ignore[attr-defined]
            settle(driver, selector)
            if full:  # the whole page, for reviewing below the fold
                height = driver.execute_script("return document.documentElement.scrollHeight")  # type: ignore[attr-defined]
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # type: ignore[attr-defined]
                                       {"width": size[0], "height": int(height), "deviceScaleFactor": 1,
                                        "mobile": False})
                time.sleep(0.8)
            target = out / f"{name}{'' if lang == 'en' else '-' + lang}.png"
            driver.save_screenshot(str(target))  # type: ignore[attr-defined]
            print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
                  f"{target.stat().st_size // 1024} KB")
    finally:
        driver.quit()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running portal (default: start one on a generated demo day)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--only", help="comma list of page names")
    parser.add_argument("--lang", default="en", choices=("en", "ko"))
    parser.add_argument("--full", action="store_true", help="whole pages instead of the 1280x800 viewport")
    parser.add_argument("--data-dir", help="keep the generated demo here (reused when it holds sites.toml)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.url:
        base = args.url.rstrip("/")
    else:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="ess-shots-"))
        data_dir.mkdir(parents=True, exist_ok=True)
        registry = data_dir / "sites.toml"
        fresh = not registry.exists()
        if fresh:
            print(f"generating demo data in {data_dir} ...", flush=True)
            make_demo(data_dir)
        base = serve(data_dir, registry, jobs=fresh)
    only = set(args.only.split(",")) if args.only else None
    pages = [p for p in PAGES if only is None or p[0] in only]
    if pages:
        shoot(base, out, pages, (1280, 800), args.lang, args.full)
    for name, path, selector, size in TABLET:
        if only is None or name in only:
            shoot(base, out, [(name, path, selector)], size, args.lang)


if __name__ == "__main__":
    main()
