"""Load benchmark (issue #7): the portal under gunicorn (2 workers) on PostgreSQL with
Redis as the shared response cache, driven over loopback with a realistic request mix,
plus a fault scenario (the PostgreSQL server stopped for 10 s in the middle of a run).

    .venv/bin/python bench/load.py [--duration 20] [--connections 16] [--skip-fault]
                                   [--gunicorn-conf other.conf.py] [--no-auth]
    .venv/bin/python bench/load.py --pg-url postgresql+psycopg2://user@host:5432/db [--allow-stop 15/main]

Exit status 0 when every target and every fault check passed, else 1.

Steps, all on 127.0.0.1:

1. Data: a throwaway PostgreSQL cluster of its own (`pg_createcluster 15 essbench -p 5440`,
   trust auth, dropped at the end, also on Ctrl-C), filled the way an operator would:
   `flask --app app ess demo --sites 1 --days 1 --start 2022-09-01 --url ...` (site 1:
   8 racks, one day at 1 Hz: 691k rack rows, rollups, protection events, analytics). The
   app database lives on the same cluster. With `--pg-url` an existing server is used
   instead (its `site1` schema and the app tables are left there), and the fault scenario is
   skipped unless `--allow-stop VERSION/CLUSTER` names the cluster that pg_ctlcluster may
   stop and start.
2. Server: gunicorn with 2 workers from `gunicorn.conf.py` when it exists (else
   `-k gthread --threads 4`), Redis cache on an empty database number with a prefix of its
   own (keys removed at the end). ESS_AUTH=on and a `raw` token from
   `flask --app app ess token create` sent as `Authorization: Bearer`.
3. Load: `wrk` (C, keep-alive) for throughput and overall latency, and a lean Python client
   (one process per connection, http.client keep-alive) on the same request sequence for the
   per-kind latencies and cache hit ratio. Baselines in the same run: a hello-world WSGI app
   under the same gunicorn settings and the portal's `/healthz`; figures are also printed as
   ratios against `/healthz`, with the CPU milliseconds per request of gunicorn, the bench
   PostgreSQL and the load generator (from /proc): those stay meaningful when other work
   shares the cores and the throughputs do not.
4. Fault: PostgreSQL stopped (`-m fast`) for 10 s during a Python-client run; status codes
   per second and request kind; checks that failures are 503 (no 500, no timeouts), that
   `/healthz` and cached past-range pages keep answering 200, and how long the errors last
   after the restart.

Targets (issue #7): mix >= 300 requests/s with p99 < 500 ms and no errors; cached snapshot
>= 1,000 requests/s.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv/bin"
HOST = "127.0.0.1"
PORT = 8766
HELLO_PORT = 8767
PG_VERSION = "15"
CLUSTER = "essbench"
PG_PORT = 5440
REDIS_URL = "redis://127.0.0.1:6379"
SITE = 1
DAY = "2022-09-01"
KIND_WEIGHTS = {"snapshot": 0.40, "page": 0.30, "stats": 0.20, "csv": 0.10}
TARGET_MIX_RPS, TARGET_P99_MS, TARGET_SNAPSHOT_RPS = 300, 500, 1000
CLIENT_TIMEOUT_S = 15.0

HELLO_APP = '''
def app(environ, start_response):
    body = b'{"status":"ok"}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''

WRK_LUA = '''
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  idx = (tid or 0) * 4099
end
function request()
  idx = idx + 1
  return wrk.format("GET", paths[(idx %% #paths) + 1])
end
'''


# ----- cleanup ------------------------------------------------------------------------

class Cleanup:
    """Everything started here, undone once: on return, exception, Ctrl-C, SIGTERM or exit."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, Any]] = []

    def push(self, name: str, action: Any) -> None:
        self.actions.append((name, action))

    def run(self) -> None:
        while self.actions:
            name, action = self.actions.pop()
            try:
                action()
            except Exception as exc:  # cleanup must go on
                print(f"cleanup: {name} failed: {exc}", file=sys.stderr)


CLEANUP = Cleanup()


def _on_signal(signum: int, make_frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


# ----- PostgreSQL -------------------------------------------------------------------------

@dataclass
class Database:
    site_url: str  # the database that holds the site schemas
    app_url: str
    stop_cmd: list[str] | None  # how to stop / start the server for the fault scenario
    start_cmd: list[str] | None


def create_cluster() -> Database:
    """A throwaway cluster with trust auth on 127.0.0.1:PG_PORT; dropped by CLEANUP."""
    if os.geteuid() != 0:
        raise SystemExit("creating a throwaway cluster needs root; give --pg-url instead")
    existing = run(["pg_lsclusters", "-h"]).stdout
    if any(line.split()[:2] == [PG_VERSION, CLUSTER] for line in existing.splitlines()):
        raise SystemExit(f"cluster {PG_VERSION}/{CLUSTER} already exists (a previous run?); "
                         f"drop it with: pg_dropcluster {PG_VERSION} {CLUSTER} --stop")
    run(["pg_createcluster", PG_VERSION, CLUSTER, "-p", str(PG_PORT), "--", "--auth=trust"])
    CLEANUP.push("drop the bench cluster", lambda: run(["pg_dropcluster", PG_VERSION, CLUSTER, "--stop"]))
    run(["pg_ctlcluster", PG_VERSION, CLUSTER, "start"])
    for name in ("ess", "ess_app"):
        run(["psql", "-h", HOST, "-p", str(PG_PORT), "-U", "postgres", "-qc", f"CREATE DATABASE {name}"])
    base = f"postgresql+psycopg2://postgres@{HOST}:{PG_PORT}"
    return Database(f"{base}/ess", f"{base}/ess_app",
                    ["pg_ctlcluster", PG_VERSION, CLUSTER, "stop", "-m", "fast"],
                    ["pg_ctlcluster", PG_VERSION, CLUSTER, "start"])


def given_database(url: str, allow_stop: str | None) -> Database:
    if not allow_stop:
        return Database(url, url, None, None)
    version, name = allow_stop.split("/", 1)
    return Database(url, url, ["pg_ctlcluster", version, name, "stop", "-m", "fast"],
                    ["pg_ctlcluster", version, name, "start"])


# ----- the portal -----------------------------------------------------------------------

def portal_env(data_dir: Path, db: Database, redis_db: int, auth: bool) -> dict[str, str]:
    return dict(os.environ, ESS_DATA_DIR=str(data_dir), ESS_APP_DB_URL=db.app_url, ESS_LOG_LEVEL="WARNING",
                ESS_CACHE_URL=f"{REDIS_URL}/{redis_db}", ESS_CACHE_PREFIX=f"essbench{os.getpid()}:",
                ESS_AUTH="on" if auth else "off", ESS_JOBS_INTERVAL_S="0", ESS_LIVE="off")


def flask_cli(env: dict[str, str], *args: str) -> str:
    return run([str(VENV_BIN / "flask"), "--app", "app", "ess", *args], cwd=ROOT, env=env).stdout


def prepare_data(env: dict[str, str], db: Database) -> float:
    """`ess demo` for site 1, one fixed day, into the bench database; seconds taken."""
    t = time.perf_counter()
    flask_cli(env, "demo", "--sites", str(SITE), "--days", "1", "--start", DAY, "--url", db.site_url)
    return time.perf_counter() - t


def make_token(env: dict[str, str]) -> str | None:
    """A `raw` token from the CLI (None, and auth off, when the CLI cannot make one)."""
    try:
        out = flask_cli(env, "token", "create", f"bench{os.getpid()}", "--scope", "raw").strip()
    except subprocess.CalledProcessError as exc:
        print(f"auth: `ess token create` failed ({exc.stderr.strip().splitlines()[-1:]}); running with auth off")
        return None
    return out.splitlines()[-1].strip() if out else None


def free_redis_db() -> int:
    """A Redis database number with no keys (ours for the run); its keys are removed at the end."""
    for n in range(15, 0, -1):
        if run(["redis-cli", "-h", HOST, "-n", str(n), "DBSIZE"]).stdout.strip() == "0":
            return n
    raise SystemExit("no empty Redis database number for the bench")


def clear_redis(n: int) -> int:
    keys = run(["redis-cli", "-h", HOST, "-n", str(n), "--scan"]).stdout.split()
    for i in range(0, len(keys), 500):
        run(["redis-cli", "-h", HOST, "-n", str(n), "DEL", *keys[i:i + 500]])
    return len(keys)


GUNICORN_CONF = ROOT / "gunicorn.conf.py"


def start_gunicorn(app: str, port: int, env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    conf = GUNICORN_CONF
    cmd = [str(VENV_BIN / "gunicorn")]
    if conf.exists():
        cmd += ["-c", str(conf)]
    else:
        cmd += ["-k", "gthread", "--threads", "4", "--timeout", "120"]
    cmd += ["-w", "2", "-b", f"{HOST}:{port}", "--pythonpath", str(ROOT), app]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    CLEANUP.push(f"stop gunicorn {proc.pid}", lambda: stop_process(proc))
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://{HOST}:{port}/healthz" if "create_app" in app else f"http://{HOST}:{port}/",
                                   timeout=2).read()
            return proc
        except (OSError, urllib.error.URLError):
            if proc.poll() is not None:
                tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
                raise SystemExit(f"gunicorn exited ({proc.returncode}):\n" + "\n".join(tail)) from None
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer on port {port}; see {log}")


def stop_process(proc: Any) -> None:
    if not isinstance(proc, subprocess.Popen):  # a multiprocessing client
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def gunicorn_mode() -> str:
    if GUNICORN_CONF.exists():
        return f"-c {GUNICORN_CONF.relative_to(ROOT) if GUNICORN_CONF.is_relative_to(ROOT) else GUNICORN_CONF} -w 2"
    return "-w 2 -k gthread --threads 4 (no gunicorn.conf.py yet)"


# ----- the request mix ------------------------------------------------------------------

def _zipf_pick(rng: random.Random, variants: list[str], s: float = 1.1) -> str:
    weights = [1 / (i + 1) ** s for i in range(len(variants))]
    return rng.choices(variants, weights)[0]


def mix_variants(rng: random.Random) -> dict[str, list[str]]:
    """Every distinct URL of each kind, most popular first (a shuffled order: popularity is
    not tied to rack 1 or morning hours)."""
    base = f"/api/ess/operating-sites/{SITE}"
    slots = [(h, m) for h in range(24) for m in range(0, 60, 10)]
    pages, stats, csvs = [], [], []
    for rack in range(1, 9):
        for h, m in slots:
            start = f"{DAY}T{h:02d}:{m:02d}:00"
            end10 = f"{DAY}T{h + (m + 10) // 60:02d}:{(m + 10) % 60:02d}:00" if (h, m) != (23, 50) \
                else "2022-09-02T00:00:00"
            pages.append(f"{base}/banks/1/racks/{rack}/?start-time={start}&end-time={end10}&page_size=100")
            csvs.append(f"/api/ess/download/operating-sites/{SITE}/rack/?bank-id=1&rack-id={rack}"
                        f"&start-time={start}&end-time={end10}")
            if m == 0:  # an hour of the rack as one default 1000-row page
                end60 = f"{DAY}T{h + 1:02d}:00:00" if h < 23 else "2022-09-02T00:00:00"
                pages.append(f"{base}/banks/1/racks/{rack}/?start-time={start}&end-time={end60}")
        for fields in ("rack_soc,rack_max_cell_voltage,rack_min_cell_voltage", "rack_max_cell_temperature"):
            for width in ("15min", "1hour"):
                for h0, h1 in ((0, 24), (0, 6), (6, 12), (12, 18), (18, 24)):
                    end = f"{DAY}T{h1:02d}:00:00" if h1 < 24 else "2022-09-02T00:00:00"
                    stats.append(f"{base}/banks/1/racks/{rack}/stats/?fields={fields}&agg=avg,min,max"
                                 f"&time-bucket-width={width}&start-time={DAY}T{h0:02d}:00:00&end-time={end}")
    for bucket in (pages, stats, csvs):
        rng.shuffle(bucket)
    return {"snapshot": [f"{base}/snapshot/"], "page": pages, "stats": stats, "csv": csvs}


def make_sequence(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """n requests (kind, path): kinds by KIND_WEIGHTS, URLs by Zipf popularity."""
    rng = random.Random(seed)
    variants = mix_variants(rng)
    kinds = list(KIND_WEIGHTS)
    return [(k, _zipf_pick(rng, variants[k])) for k in rng.choices(kinds, [KIND_WEIGHTS[k] for k in kinds], k=n)]


# ----- wrk --------------------------------------------------------------------------------

@dataclass
class Result:
    label: str
    tool: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx + socket errors + timeouts
    note: str = ""
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU per request: server, db, client


# ----- CPU accounting (robust where throughput is not: other people share the 2 cores) -------

TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int | None) -> float:
    """CPU seconds of a process, its reaped children and its live descendants."""
    if pid is None:
        return float("nan")
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(x) for x in stat[11:15]) / TICK + sum(tree_cpu_s(int(k)) for k in kids)


def children_cpu_s() -> float:
    """CPU seconds of this process's reaped children (wrk, the client processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used by the server, the database server and the load generator during a phase."""

    def __init__(self, server_pid: int, db_pid: int | None) -> None:
        self.pids = {"server": server_pid, "db": db_pid}
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        now = {name: tree_cpu_s(pid) for name, pid in self.pids.items()}
        now["client"] = children_cpu_s()
        return now

    def per_request(self, requests: int) -> dict[str, float]:
        end = self._now()
        return {k: 1000 * (end[k] - self.start[k]) / max(1, requests) for k in end}


def postmaster_pid(db: Database) -> int | None:
    if db.stop_cmd is None or db.stop_cmd[1:3] != [PG_VERSION, CLUSTER]:
        return None
    pidfile = Path(f"/var/lib/postgresql/{PG_VERSION}/{CLUSTER}/postmaster.pid")
    return int(pidfile.read_text().split()[0]) if pidfile.exists() else None


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    value, unit = float(m[1]), m[2]
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(label: str, url: str, duration: int, connections: int, token: str | None, lua: Path | None = None) -> Result:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", f"--timeout={int(CLIENT_TIMEOUT_S)}s"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    if lua:
        cmd += ["-s", str(lua)]
    out = subprocess.run([*cmd, url], check=True, text=True, capture_output=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out)[1])  # type: ignore[index]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m[1])
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    return Result(label, "wrk", rps, p50, p99, total, errors)


# ----- the Python client ------------------------------------------------------------------

def _client(seq: list[tuple[str, str]], offset: int, token: str | None, deadline: float, t0: float,
            out: Any) -> None:
    """One keep-alive connection, closed loop; sends back [(t, kind, status, ms, hit)]."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn = http.client.HTTPConnection(HOST, PORT, timeout=CLIENT_TIMEOUT_S)
    records: list[tuple[float, str, int, float, bool]] = []
    retries = 0
    i = offset
    while (now := time.time()) < deadline:
        kind, path = seq[i % len(seq)]
        i += 1
        t = time.perf_counter()
        for attempt in (1, 2):
            reused = conn.sock is not None
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status, hit = resp.status, resp.getheader("X-Cache") == "hit"
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                stale = reused and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                                    BrokenPipeError))
                if stale and attempt == 1:  # the server closed an idle keep-alive connection: retry
                    retries += 1        # once on a new one, as browsers and HTTP libraries do
                    continue
                status, hit = (-1 if isinstance(exc, TimeoutError) else 0), False
                break
        records.append((now - t0, kind, status, (time.perf_counter() - t) * 1000, hit))
    conn.close()
    out.put((records, retries))


def py_clients(seq: list[tuple[str, str]], duration: float, connections: int, token: str | None,
               during: Any = None) -> tuple[list[tuple[float, str, int, float, bool]], float]:
    """Run `connections` client processes for `duration` s; `during(t0)` runs meanwhile in
    this process (the fault). Returns the records and the start time."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    t0 = time.time() + 0.5
    deadline = t0 + duration
    procs = [ctx.Process(target=_client, args=(seq, k * len(seq) // connections, token, deadline, t0, out))
             for k in range(connections)]
    for p in procs:
        p.start()
        CLEANUP.push(f"stop client {p.pid}", lambda p=p: stop_process(p))
    while time.time() < t0:
        time.sleep(0.01)
    if during:
        during(t0)
    records: list[tuple[float, str, int, float, bool]] = []
    retries = 0
    for _ in procs:
        part, n = out.get(timeout=duration + CLIENT_TIMEOUT_S + 30)
        records += part
        retries += n
    for p in procs:
        p.join(10)
    if retries:
        print(f"  (python client: {retries} requests retried once on a new connection after the server "
              f"closed a kept-alive one)", flush=True)
    return records, t0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(label: str, records: list[tuple[float, str, int, float, bool]], duration: float) -> list[Result]:
    """Overall and per-kind results of a Python-client run."""
    rows = []
    by_kind: dict[str, list[tuple[float, str, int, float, bool]]] = defaultdict(list)
    for r in records:
        by_kind[r[1]].append(r)
    for name, recs in [(label, records)] + [(f"  {k}", by_kind[k]) for k in KIND_WEIGHTS if k in by_kind]:
        lat = [r[3] for r in recs]
        errors = sum(1 for r in recs if not 200 <= r[2] < 400)
        hits = sum(1 for r in recs if r[4])
        rows.append(Result(name, "python", len(recs) / duration, pct(lat, 0.5), pct(lat, 0.99), len(recs), errors,
                           f"cache hits {100 * hits / max(1, len(recs)):.0f}%"))
    return rows


# ----- fault scenario ---------------------------------------------------------------------

FAULT_KINDS = ("healthz", "cached", "snapshot", "page", "stats", "csv")
NEEDS_DB = ("snapshot", "page", "stats", "csv")


def fault_sequence(seed: int = 11) -> tuple[list[tuple[str, str]], list[str]]:
    """The fault mix: /healthz, warmed past-range pages (Redis), and DB-bound requests made
    unique with `_=n` so no cache answers them; returns the sequence and the URLs to warm."""
    rng = random.Random(seed)
    variants = mix_variants(rng)
    cached = variants["page"][:20]
    seq: list[tuple[str, str]] = []
    for n in range(20_000):
        kind = rng.choices(FAULT_KINDS, [0.10, 0.25, 0.20, 0.20, 0.15, 0.10])[0]
        if kind == "healthz":
            seq.append((kind, "/healthz"))
        elif kind == "cached":
            seq.append((kind, rng.choice(cached)))
        elif kind == "snapshot":
            seq.append((kind, variants["snapshot"][0]))  # cached ESS_CACHE_LIVE_S only
        else:
            seq.append((kind, rng.choice(variants[kind]) + f"&_={n}"))
    return seq, cached


def warm(paths: list[str], token: str | None) -> None:
    conn = http.client.HTTPConnection(HOST, PORT, timeout=CLIENT_TIMEOUT_S)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for path in paths:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit(f"warming {path}: HTTP {resp.status}")
    conn.close()


@dataclass
class FaultReport:
    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def check(self, ok: bool, text: str) -> None:
        self.ok &= ok
        self.lines.append(f"{'PASS' if ok else 'FAIL'}: {text}")


def fault_scenario(db: Database, token: str | None, connections: int, outage_s: float = 10.0,
                   before_s: float = 8.0, after_s: float = 14.0) -> FaultReport:
    assert db.stop_cmd and db.start_cmd
    seq, cached = fault_sequence()
    warm(cached, token)
    marks: dict[str, float] = {}

    def outage(t0: float) -> None:
        time.sleep(before_s)
        marks["stop"] = time.time() - t0
        run(db.stop_cmd)
        marks["stopped"] = time.time() - t0
        time.sleep(outage_s)
        marks["start"] = time.time() - t0
        run(db.start_cmd)
        marks["started"] = time.time() - t0

    duration = before_s + outage_s + after_s
    try:
        records, _t0 = py_clients(seq, duration, connections, token, during=outage)
    finally:
        if "stop" in marks and "started" not in marks:  # interrupted mid-outage: bring it back
            subprocess.run(db.start_cmd, check=False)
    rep = FaultReport()
    per_sec: dict[int, dict[str, Counter[int]]] = defaultdict(lambda: defaultdict(Counter))
    for rec in records:
        per_sec[int(rec[0])][rec[1]][rec[2]] += 1
    rep.lines.append(f"PostgreSQL stop issued at t={marks['stop']:.1f} s (down at {marks['stopped']:.1f} s), "
                     f"start issued at {marks['start']:.1f} s, accepting again at {marks['started']:.1f} s")
    rep.lines.append("status codes per second and kind (0 = connection error, -1 = client timeout)")
    rep.lines.append("   t  " + "".join(f"{k:<18}" for k in FAULT_KINDS))
    for sec in sorted(per_sec):
        mark = " <- stopped" if sec + 1 > marks["stop"] and sec < marks["start"] else ""
        cells = [" ".join(f"{s}:{c}" for s, c in sorted(per_sec[sec][k].items())) or "-" for k in FAULT_KINDS]
        rep.lines.append(f"{sec:4d}  " + "".join(f"{c:<18}" for c in cells) + mark)
    statuses = Counter(r[2] for r in records)
    during = [r for r in records if marks["stop"] <= r[0] < marks["start"]]
    rep.check(statuses[500] == 0, f"no 500 in the whole run (statuses: {dict(sorted(statuses.items()))})")
    rep.check(statuses[-1] == 0 and statuses[0] == 0,
              f"no client timeouts or connection errors (max latency "
              f"{max(r[3] for r in records):.0f} ms, timeout {CLIENT_TIMEOUT_S:.0f} s)")
    bad = Counter(r[2] for r in during if r[2] not in (200, 503))
    rep.check(not bad, f"during the outage every response is 200 or 503 (other: {dict(bad)})")
    for kind in ("healthz", "cached"):
        ks = Counter(r[2] for r in during if r[1] == kind)
        rep.check(set(ks) <= {200} and ks[200] > 0, f"{kind} keeps answering 200 during the outage ({dict(ks)})")
    # from 2.5 s after the stop on, so that the snapshot's cached copy (ESS_CACHE_LIVE_S = 2 s) has expired
    db_during = Counter(r[2] for r in during if r[1] in NEEDS_DB and r[0] >= marks["stopped"] + 2.5)
    rep.check(db_during[503] > 0 and set(db_during) <= {503},
              f"database-bound requests get 503 while it is down (from 2.5 s after the stop: {dict(db_during)})")
    after = sorted((r for r in records if r[0] >= marks["start"] and r[1] in NEEDS_DB), key=lambda r: r[0])
    last_fail = max((r[0] for r in after if r[2] != 200), default=marks["start"])
    late = [r for r in after if r[0] >= marks["started"] and r[2] != 200]
    rep.check(last_fail - marks["started"] <= 5.0 and any(r[2] == 200 for r in after),
              f"recovery: the last database-bound failure came {last_fail - marks['start']:.1f} s after the start "
              f"was issued ({last_fail - marks['started']:+.1f} s from `pg_ctlcluster start` returning); "
              f"{len(late)} failed after it returned")
    return rep


# ----- report -----------------------------------------------------------------------------

def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def print_table(results: list[Result], baseline_rps: float) -> None:
    """The figures; CPU columns are milliseconds of CPU per request (gunicorn master and
    workers / the bench PostgreSQL / wrk or the client processes), `ceiling` the rate two
    idle cores would allow at that cost (Redis not counted)."""
    print(f"{'measure':<34}{'tool':<8}{'req/s':>8}{'×healthz':>9}{'p50 ms':>8}{'p99 ms':>8}{'requests':>9}"
          f"{'errors':>7}{'srv CPU':>8}{'db CPU':>7}{'gen CPU':>8}{'ceiling':>8}  note")
    for r in results:
        cpu = r.cpu_ms
        used = sum(v for v in cpu.values() if v == v)
        cells = (f"{cpu['server']:>8.2f}{cpu['db']:>7.2f}{cpu['client']:>8.2f}{2000 / used:>8,.0f}" if cpu
                 else " " * 31)
        print(f"{r.label:<34}{r.tool:<8}{r.rps:>8,.0f}{r.rps / baseline_rps:>9.2f}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}"
              f"{r.requests:>9,}{r.errors:>7}{cells}  {r.note}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=20, help="Seconds per load phase.")
    ap.add_argument("--connections", type=int, default=16, help="Concurrent keep-alive connections.")
    ap.add_argument("--pg-url", help="Use this PostgreSQL database instead of a throwaway cluster.")
    ap.add_argument("--allow-stop", metavar="VERSION/CLUSTER",
                    help="With --pg-url: the cluster pg_ctlcluster may stop for the fault scenario.")
    ap.add_argument("--skip-fault", action="store_true")
    ap.add_argument("--no-auth", action="store_true", help="Run with ESS_AUTH=off even if access control exists.")
    ap.add_argument("--gunicorn-conf", type=Path, help="Another gunicorn config file (default: gunicorn.conf.py).")
    args = ap.parse_args()
    if args.gunicorn_conf:
        global GUNICORN_CONF
        GUNICORN_CONF = args.gunicorn_conf.resolve()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    signal.signal(signal.SIGTERM, _on_signal)
    atexit.register(CLEANUP.run)
    results: list[Result] = []
    ok = True
    try:
        tmp = Path(tempfile.mkdtemp(prefix="essload-"))
        CLEANUP.push("remove the temp dir", lambda: shutil.rmtree(tmp, ignore_errors=True))
        print(f"load average at start: {load_average()}", flush=True)
        db = given_database(args.pg_url, args.allow_stop) if args.pg_url else create_cluster()
        redis_db = free_redis_db()
        CLEANUP.push("remove the bench Redis keys", lambda: print(f"removed {clear_redis(redis_db)} Redis keys"))
        env = portal_env(tmp, db, redis_db, auth=False)
        secs = prepare_data(env, db)
        print(f"data: `ess demo --sites {SITE} --days 1 --start {DAY}` on PostgreSQL in {secs:.0f} s", flush=True)
        token = None if args.no_auth else make_token(env)
        env = portal_env(tmp, db, redis_db, auth=token is not None)
        server = start_gunicorn("app:create_app()", PORT, env, tmp / "gunicorn.log")
        auth_note = "auth OFF (no access control yet)" if token is None else "ESS_AUTH=on, Bearer token (scope raw)"
        if token is not None:
            try:
                urllib.request.urlopen(f"http://{HOST}:{PORT}/api/ess/operating-sites/{SITE}/snapshot/", timeout=10)
                auth_note += ", BUT a request without token got 200: auth not enforced"
            except urllib.error.HTTPError as exc:
                auth_note += f" (no token -> {exc.code})"
        hello_dir = tmp / "hello"
        hello_dir.mkdir()
        (hello_dir / "hello.py").write_text(HELLO_APP, encoding="utf-8")
        hello = start_gunicorn("hello:app", HELLO_PORT, dict(os.environ), tmp / "hello.log", cwd=hello_dir)
        overrides = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("GUNICORN_"))
        print(f"server: gunicorn {gunicorn_mode()}{' with ' + overrides if overrides else ''} on {HOST}:{PORT} "
              f"(master {server.pid}); Redis db {redis_db}; {auth_note}", flush=True)

        seq = make_sequence(20_000)
        paths = tmp / "paths.txt"
        paths.write_text("\n".join(p for _k, p in seq) + "\n", encoding="utf-8")
        lua = tmp / "mix.lua"
        lua.write_text(WRK_LUA % {"paths": paths}, encoding="utf-8")
        distinct = {k: len({p for kk, p in seq if kk == k}) for k in KIND_WEIGHTS}
        print(f"mix: {', '.join(f'{k} {100 * w:.0f}%' for k, w in KIND_WEIGHTS.items())}; distinct URLs in the "
              f"sequence: {distinct}; {args.connections} connections, {args.duration} s per phase", flush=True)

        d, c = args.duration, args.connections
        url = f"http://{HOST}:{PORT}"
        pg_pid = postmaster_pid(db)

        def measured(label: str, target: str, seconds: int, pid: int, auth: str | None,
                     script: Path | None = None) -> Result:
            meter = CpuMeter(pid, pg_pid)
            res = wrk(label, target, seconds, c, auth, script)
            res.cpu_ms = meter.per_request(res.requests)
            print(f"  {label}: {res.rps:,.0f} req/s, p99 {res.p99_ms:.0f} ms; load average {load_average()}",
                  flush=True)
            return res

        wrk("warm-up", f"http://{HOST}:{HELLO_PORT}/", 3, c, None)
        results.append(measured("hello-world WSGI (same gunicorn)", f"http://{HOST}:{HELLO_PORT}/", d, hello.pid,
                                None))
        healthz = measured("/healthz (baseline)", url + "/healthz", d, server.pid, token)
        results.append(healthz)
        results.append(measured("cached snapshot", url + f"/api/ess/operating-sites/{SITE}/snapshot/", d,
                                server.pid, token))
        meter = CpuMeter(server.pid, pg_pid)
        py_health, _ = py_clients([("healthz", "/healthz")], 5, c, token)
        results.append(Result("/healthz, Python client (5 s)", "python", len(py_health) / 5,
                              pct([r[3] for r in py_health], 0.5), pct([r[3] for r in py_health], 0.99),
                              len(py_health), sum(1 for r in py_health if r[2] != 200),
                              cpu_ms=meter.per_request(len(py_health))))
        wrk("warm-up", url + "/", 10, c, token, lua)  # caches warm as they would in service
        mix = measured("mix", url + "/", d, server.pid, token, lua)
        results.append(mix)
        meter = CpuMeter(server.pid, pg_pid)
        records, _ = py_clients(seq, d, c, token)
        mix_rows = summarise("mix", records, d)
        mix_rows[0].cpu_ms = meter.per_request(len(records))
        results += mix_rows
        print(f"  mix (python client): {mix_rows[0].rps:,.0f} req/s; load average {load_average()}", flush=True)
        print()
        print_table(results, healthz.rps)
        snap = next(r for r in results if r.label == "cached snapshot")
        mix_py = next(r for r in results if r.label == "mix" and r.tool == "python")
        checks = [
            (mix.rps >= TARGET_MIX_RPS and mix_py.rps >= TARGET_MIX_RPS,
             f"mix >= {TARGET_MIX_RPS} req/s (wrk {mix.rps:,.0f}, python {mix_py.rps:,.0f})"),
            (mix.p99_ms < TARGET_P99_MS and mix_py.p99_ms < TARGET_P99_MS,
             f"mix p99 < {TARGET_P99_MS} ms (wrk {mix.p99_ms:.0f}, python {mix_py.p99_ms:.0f})"),
            (mix.errors == 0 and mix_py.errors == 0, f"no errors (wrk {mix.errors}, python {mix_py.errors})"),
            (snap.rps >= TARGET_SNAPSHOT_RPS, f"cached snapshot >= {TARGET_SNAPSHOT_RPS:,} req/s ({snap.rps:,.0f})"),
        ]
        print()
        for passed, text in checks:
            ok &= passed
            print(f"{'PASS' if passed else 'FAIL'}: {text}")
        stop_process(hello)
        if args.skip_fault:
            print("\nfault scenario: skipped (--skip-fault)")
        elif db.stop_cmd is None:
            print("\nfault scenario: skipped (--pg-url without --allow-stop: the server is not ours to stop)")
        else:
            print(f"\nfault scenario: PostgreSQL stopped for 10 s during a {c}-connection Python-client run",
                  flush=True)
            rep = fault_scenario(db, token, c)
            print("\n".join(rep.lines))
            ok &= rep.ok
        kept = Path(tempfile.gettempdir()) / "essload-gunicorn.log"
        shutil.copyfile(tmp / "gunicorn.log", kept)
        log = kept.read_text(encoding="utf-8", errors="replace")
        print(f"\nserver log kept in {kept}")
        print(f"server log: {log.count('Traceback')} tracebacks, {log.count(' ERROR ')} ERROR lines, "
              f"{log.count('WORKER TIMEOUT')} worker timeouts, {log.count('Booting worker') - 2} worker restarts "
              f"(crashes or max_requests recycling)")
        print(f"load average at end: {load_average()}")
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        ok = False
    finally:
        CLEANUP.run()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
