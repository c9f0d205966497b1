"""What an attack looks like in the metrics: the demo under gunicorn (metrics on,
multiprocess mode, PostgreSQL and Redis), scraped every second through a soak run, then
drawn with matplotlib into docs/observability.png.

python bench/observability_soak.py [SECONDS]   (or --draw: redraw from the kept scrapes)

Timeline: well-behaved clients all along; from a quarter of the run to three quarters,
one tenant's client hammers the Admin group and eight credential pairs fail at the token
endpoint (soak_traffic's roles, as in tests/test_soak.py). The scrapes are kept in
bench/results/observability-soak.json; the chart is drawn from that file alone.
"""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import soak_traffic  # noqa: E402
from tests.gunicorn_support import serve_demo  # noqa: E402

SCRAPES = ROOT / "bench" / "results" / "observability-soak.json"
CHART = ROOT / "docs" / "observability.png"
DATABASE = {"USER": "postgres", "HOST": "127.0.0.1", "PORT": 5432, "NAME": "ratelimit_obs_soak"}
TOKEN = "soak-chart-scraper-token-0123456789"
PORT, REDIS_PORT = 18171, 18172
GOOD_CLIENTS, PAIRS, WORKERS = 10, 8, 2


def prepare_database():
    """A fresh database with the demo's policies, keys and ban rule."""
    import psycopg

    server = dict(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True)
    with psycopg.connect(**server) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE['NAME']}")
        connection.execute(f"CREATE DATABASE {DATABASE['NAME']}")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE['NAME']}",
    }
    for command in (["migrate", "--noinput"], ["demo_setup"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)


# What the chart and docs/observability.md read (the file stays small).
KEPT = (
    "ratelimit_decisions_total",
    "ratelimit_near_limit_total",
    "ratelimit_deny_record_hits_total",
    "ratelimit_ban_failures_total",
    "ratelimit_bans_created_total",
    "ratelimit_store_call_seconds_bucket",
    "ratelimit_store_call_seconds_count",
    "ratelimit_store_failures_total",
    "ratelimit_store_breaker_open",
    "ratelimit_policy_revision",
)


def scrape(port):
    """The kept ratelimit_ samples of one scrape: [(name, labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = soak_traffic_get(port)
    if status != 200:
        return []
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(body)
        if family.name.startswith("ratelimit_")
        for sample in family.samples
        if sample.name in KEPT
    ]


def soak_traffic_get(port):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def run(seconds):
    """Serve, send the traffic, scrape once a second; returns the scrapes."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()  # only to read the demo's API key (project.demo.setup imports models)
    from project.demo.setup import DEMO_KEYS

    multiproc = Path("/tmp/ratelimit-obs-soak-metrics")
    shutil.rmtree(multiproc, ignore_errors=True)  # prometheus_client wants it empty
    multiproc.mkdir()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    attack = seconds / 2
    with serve_demo(
        DATABASE,
        workers=WORKERS,
        metrics=(multiproc, TOKEN),
        port=PORT,
        redis_port=REDIS_PORT,
    ) as (port, _master, _redis):
        roles = [
            context.Process(target=soak_traffic.good, args=(port, seconds, GOOD_CLIENTS, results))
        ]
        attackers = [
            context.Process(
                target=soak_traffic.abusive, args=(port, attack, DEMO_KEYS["free"][1], results)
            ),
            context.Process(target=soak_traffic.tokens, args=(port, attack, PAIRS, results)),
        ]
        roles[0].start()
        started, scrapes, attack_started = time.monotonic(), [], False
        while time.monotonic() - started < seconds + 2:
            now = time.monotonic() - started
            if not attack_started and now >= seconds / 4:
                for role in attackers:
                    role.start()
                attack_started = True
            scrapes.append({"t": round(now, 3), "samples": scrape(port)})
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started - now)))
        for role in roles + attackers:
            role.join(60)
    return {"seconds": seconds, "attack": [seconds / 4, seconds / 4 + attack], "scrapes": scrapes}


def series(data, name, key, **match):
    """{label value of ``key``: [(t, value summed over the other labels)]}, a label absent
    from a scrape (not counted yet) read as 0."""
    sums_by_scrape = []
    for scrape in data["scrapes"]:
        sums = {}
        for sample_name, labels, value in scrape["samples"]:
            if sample_name == name and all(labels.get(k) == v for k, v in match.items()):
                label = labels.get(key, "") if key else name.removeprefix("ratelimit_")
                sums[label] = sums.get(label, 0.0) + value
        sums_by_scrape.append((scrape["t"], sums))
    every = {label for _t, sums in sums_by_scrape for label in sums}
    return {label: [(t, sums.get(label, 0.0)) for t, sums in sums_by_scrape] for label in every}


def per_second(points):
    """Rates between consecutive scrapes of a counter."""
    return [
        ((t0 + t1) / 2, max(0.0, (v1 - v0) / (t1 - t0)))
        for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False)
        if t1 > t0
    ]


def quantile(data, q):
    """The store's check latency quantile ``q`` between consecutive scrapes (ms), as the
    upper bound of the histogram bucket it falls in."""
    buckets = series(data, "ratelimit_store_call_seconds_bucket", "le", operation="check")
    bounds = sorted(buckets, key=lambda le: float("inf") if le == "+Inf" else float(le))
    out = []
    for i in range(1, len(buckets[bounds[-1]])):
        rises = [buckets[le][i][1] - buckets[le][i - 1][1] for le in bounds]
        if rises[-1] <= 0:
            continue
        bound = next(b for b, rise in zip(bounds, rises, strict=True) if rise >= q * rises[-1])
        out.append((buckets[bounds[-1]][i][0], 1000 * float(bound if bound != "+Inf" else 1)))
    return out


def _plot(axis, title, lines, rate=True):
    for label, points in sorted(lines.items()):
        shown = per_second(points) if rate else points
        if shown and max(v for _t, v in shown) > 0:
            axis.plot(*zip(*shown, strict=True), label=label)
    axis.set_title(title, fontsize=10)


def draw(data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 2, figsize=(12, 10), sharex=True)
    decisions = "ratelimit_decisions_total"
    _plot(axes[0][0], "Decisions per second, by outcome", series(data, decisions, "outcome"))
    _plot(
        axes[0][1],
        "Denials per second, by endpoint group",
        series(data, decisions, "group", outcome="denied"),
    )
    _plot(
        axes[1][0],
        "Allowed with under 10 % left, per second, by limit",
        series(data, "ratelimit_near_limit_total", "limit"),
    )
    _plot(
        axes[1][1],
        "Token failures counted per second, by ban rule",
        series(data, "ratelimit_ban_failures_total", "rule"),
    )
    _plot(
        axes[2][0],
        "Credential bans made (total), by kind",
        series(data, "ratelimit_bans_created_total", "kind"),
        rate=False,
    )
    _plot(
        axes[2][1],
        "Counter-store check latency, ms (bucket bound)",
        {f"p{q * 100:g}": quantile(data, q) for q in (0.5, 0.99)},
        rate=False,
    )
    start, end = data["attack"]
    for axis in axes.flat:
        axis.axvspan(start, end, color="red", alpha=0.08, label="attack")
        axis.legend(fontsize=7, loc="upper right")
    for axis in axes[2]:
        axis.set_xlabel("seconds into the run")
    figure.suptitle("ratelimit_app under attack: the demo, gunicorn, metrics scraped every second")
    figure.tight_layout()
    figure.savefig(CHART, dpi=80)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    prepare_database()
    data = run(seconds)
    SCRAPES.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    draw(data)
    count = len(data["scrapes"])
    print(f"Wrote {SCRAPES.relative_to(ROOT)} ({count} scrapes) and {CHART.relative_to(ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--draw"]:
        draw(json.loads(SCRAPES.read_text()))
    else:
        main()
