"""Throughput under a ban storm: `make bench-storm`.

The demo under gunicorn (2 sync workers) on loopback, with PostgreSQL and a private
Redis, the demo's policies plus TENANTS tenants x 10 overrides. Clients request
`/v1/status` as fast as they can from many addresses; after a steady phase a second
client creates BANS_PER_SECOND new credential bans a second (five failed token requests
per made-up pair, each pair from its own address). Reported, per phase: requests a
second (the median of one-second buckets) and p99 latency; and the same server with the
limiter taken out, for the plain ratio. ``--tree DIR`` serves another checkout (an
older commit in a git worktree) against the same rows, for a before/after chart.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import RedisServer, free_port  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_STORM_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ratelimit_bench_storm"
)
LOAD_PROCESSES, LOAD_THREADS = 2, 4
STORM_TARGET, P99_TARGET, PLAIN_TARGET = 0.9, 2.0, 0.85
# Settings for the served process: the demo's, with the limiter taken out if asked.
SETTINGS = """
import os
from project.settings import *  # noqa: F403
if os.environ.get("BENCH_UNLIMITED") == "1":
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("ratelimit_app")]  # noqa: F405
    REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}  # noqa: F405
LOGGING = {"version": 1, "disable_existing_loggers": False}
"""


def parse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", default=str(ROOT))
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=12.0, help="per phase")
    parser.add_argument("--bans-per-second", type=float, default=5.0)
    parser.add_argument("--skip-unlimited", action="store_true")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", help="also write the report (JSON) to this file")
    return parser.parse_args()


def prepare_database(tree, tenants):
    """Migrate and load the demo plus ``tenants`` tenants x 10 overrides (this tree's
    code writes the rows; an older tree only reads them)."""
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "DJANGO_SETTINGS_MODULE": "project.settings"}
    env.pop("REDIS_URL", None)
    script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from bench.snapshot_scale import ensure_database
ensure_database({DATABASE_URL!r})
import django
django.setup()
from django.core.management import call_command
from django.db import connection
call_command("migrate", verbosity=0)
from ratelimit_app.models import CredentialBan, EndpointGroup, Limit, Tenant, Tier
CredentialBan.objects.all().delete()
Limit.objects.filter(tenant__slug__startswith="storm-").delete()
Tenant.objects.filter(slug__startswith="storm-").delete()
from project.demo.setup import load_demo_data
load_demo_data()
tier = Tier.objects.get(name="free")
groups = list(EndpointGroup.objects.order_by("pk"))[:10]
Tenant.objects.bulk_create(
    Tenant(name=f"storm {{n}}", slug=f"storm-{{n}}", tier=tier) for n in range({tenants})
)
made = Tenant.objects.filter(slug__startswith="storm-")
Limit.objects.bulk_create(
    Limit(group=g, tenant=t, rate=1000 + n, period=60, burst=100)
    for t in made for n, g in enumerate(groups)
)
with connection.cursor() as cursor:  # an older checkout writes rows without these
    cursor.execute("ALTER TABLE ratelimit_app_credentialban ALTER COLUMN revision SET DEFAULT 0")
    cursor.execute(
        "ALTER TABLE ratelimit_app_policyrevision ALTER COLUMN policy_number SET DEFAULT 0"
    )
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)


class Served:
    """gunicorn serving ``tree`` with the storm settings on a free port."""

    def __init__(self, tree, redis_url, unlimited):
        self.port = free_port()
        self.settings_dir = tempfile.mkdtemp(prefix="ratelimit-storm-")
        Path(self.settings_dir, "storm_settings.py").write_text(SETTINGS)
        env = {
            **os.environ,
            "PYTHONPATH": f"{tree}{os.pathsep}{self.settings_dir}",
            "DJANGO_SETTINGS_MODULE": "storm_settings",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": redis_url,
            "RATELIMIT_TRUSTED_PROXIES": "127.0.0.1/32",
            "BENCH_UNLIMITED": "1" if unlimited else "0",
        }
        command = [sys.executable, "-m", "gunicorn", "project.wsgi:application"]
        command += ["--workers", "2", "--bind", f"127.0.0.1:{self.port}", "--log-level", "error"]
        self.process = subprocess.Popen(command, cwd=tree, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                send(self.port, "GET", "/v1/status", {})
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


def send(port, method, path, headers, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def load(port, until, seed, results):
    """Request /v1/status from many addresses until ``until`` (time.time()); report
    (finished at, latency seconds, status) of every request."""
    import threading

    samples = []

    def worker(index):
        n = 0
        while time.time() < until:
            n += 1
            address = f"10.{seed}.{index}.{n % 250 + 1}"  # never at a per-address limit
            started = time.perf_counter()
            status = send(port, "GET", "/v1/status", {"X-Forwarded-For": address})
            samples.append((time.time(), time.perf_counter() - started, status))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(samples)


def storm(port, start, until, per_second, results):
    """From ``start``, ban ``per_second`` new made-up pairs a second until ``until``."""
    while time.time() < start:
        time.sleep(0.01)
    made, statuses = 0, {}
    if per_second <= 0:
        results.put({"pairs": 0, "statuses": {}})
        return
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    while time.time() < until:
        due = start + made / per_second
        time.sleep(max(0.0, due - time.time()))
        body = urlencode({"client_id": f"storm-{start}-{made}", "client_secret": "wrong"})
        address = f"192.0.{made // 250 % 250}.{made % 250 + 1}"
        for _ in range(5):
            status = send(
                port, "POST", "/connect/token", {**headers, "X-Forwarded-For": address}, body
            )
            statuses[status] = statuses.get(status, 0) + 1
        made += 1
    results.put({"pairs": made, "statuses": statuses})


def run_phases(port, seconds, per_second):
    """Steady traffic, then the same traffic with the storm; the samples of both."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    begin = time.time() + 2  # processes start
    storm_at, until = begin + seconds, begin + 2 * seconds
    loaders = [
        context.Process(target=load, args=(port, until, seed, results))
        for seed in range(LOAD_PROCESSES)
    ]
    stormer = context.Process(target=storm, args=(port, storm_at, until, per_second, results))
    for process in [*loaders, stormer]:
        process.start()
    samples, storm_report = [], None
    for _ in range(len(loaders) + 1):
        item = results.get(timeout=4 * seconds + 60)
        if isinstance(item, dict):
            storm_report = item
        else:
            samples += item
    for process in [*loaders, stormer]:
        process.join(30)
    return begin, storm_at, until, samples, storm_report


def summarize(samples, start, end):
    """Requests a second (median and spread of 1 s buckets, the first second skipped)
    and p99 latency (ms) of the samples finished in [start + 1, end)."""
    inside = [s for s in samples if start + 1 <= s[0] < end]
    buckets = {}
    for finished, _latency, _status in inside:
        buckets[int(finished - start)] = buckets.get(int(finished - start), 0) + 1
    rates = [buckets[k] for k in sorted(buckets)][:-1] or [0]
    latencies = sorted(s[1] for s in inside)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000 if latencies else 0.0
    return {
        "rps_median": statistics.median(rates),
        "rps_min": min(rates),
        "rps_max": max(rates),
        "p99_ms": round(p99, 1),
        "statuses": sorted({s[2] for s in inside}),
    }


def timeline(samples, start):
    """Requests finished in each second since ``start``."""
    counts = {}
    for finished, _latency, _status in samples:
        if finished < start:
            continue
        counts[int(finished - start)] = counts.get(int(finished - start), 0) + 1
    return [counts.get(second, 0) for second in range(max(counts) + 1)] if counts else []


def target_lines(report):
    """Issue 15's throughput targets, each with its measured value and met or missed."""
    steady, stormy = report["steady"], report["storm"]
    lines = [
        f"storm / steady requests a second: {report['storm_ratio']} "
        f"({stormy['rps_median']} / {steady['rps_median']}), target >= {STORM_TARGET}: "
        + ("met" if report["storm_ratio"] >= STORM_TARGET else "missed"),
        f"storm / steady p99: {report['p99_ratio']} ({stormy['p99_ms']} / {steady['p99_ms']} ms), "
        f"target < {P99_TARGET}: " + ("met" if report["p99_ratio"] < P99_TARGET else "missed"),
    ]
    if "plain_ratio" in report:
        plain = report["unlimited"]["rps_median"]
        lines.append(
            f"limited / unlimited requests a second: {report['plain_ratio']} "
            f"({steady['rps_median']} / {plain}), target >= {PLAIN_TARGET}: "
            + ("met" if report["plain_ratio"] >= PLAIN_TARGET else "missed")
        )
    return lines


def main():
    args = parse()
    prepare_database(args.tree, args.tenants)
    redis_server = RedisServer().start()
    report = {"tree": args.tree, "label": args.label, "tenants": args.tenants}
    try:
        served = Served(args.tree, redis_server.url, unlimited=False)
        try:
            begin, storm_at, until, samples, storm_report = run_phases(
                served.port, args.seconds, args.bans_per_second
            )
        finally:
            served.stop()
        report["steady"] = summarize(samples, begin, storm_at)
        report["storm"] = summarize(samples, storm_at, until)
        report["storm_requests"] = storm_report
        report["timeline"] = timeline(samples, begin)
        report["storm_starts_at_second"] = round(storm_at - begin)
        if not args.skip_unlimited:
            plain = Served(args.tree, redis_server.url, unlimited=True)
            try:
                begin, storm_at, _until, samples, _ = run_phases(plain.port, args.seconds, 0)
            finally:
                plain.stop()
            report["unlimited"] = summarize(samples, begin, storm_at)
    finally:
        redis_server.stop()
    steady, stormy = report["steady"], report["storm"]
    report["storm_ratio"] = round(stormy["rps_median"] / max(1, steady["rps_median"]), 2)
    report["p99_ratio"] = round(stormy["p99_ms"] / max(0.1, steady["p99_ms"]), 2)
    if "unlimited" in report:
        plain_rps = max(1, report["unlimited"]["rps_median"])
        report["plain_ratio"] = round(steady["rps_median"] / plain_rps, 2)
    print(json.dumps(report))
    for line in target_lines(report):
        print(line)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
