"""`make bench-cluster` (and the cluster row of `make bench`): the counters on one Redis
and on a 3-primary Redis Cluster, side by side in one run.

Each round sends the same checks from client processes of their own: every request has
a per-address and a per-key limit (two parties: one call on one Redis, two slots on a
cluster) of parties never seen before. Reported per topology: checks per second (the
clients' figure; this 2-core machine's clients are the bottleneck, so it is not the
servers' capacity), and from ``INFO commandstats`` on each primary the script calls it
served, their share, and the server's CPU per call. From the measured CPU per call the
page derives the shards needed for 100,000 and 1,000,000 limited requests a second.

    python bench/cluster_capacity.py [--seconds 5] [--rounds 3]
"""

import argparse
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULT = ROOT / "bench" / "results" / "cluster-latest.json"
# A Redis core kept below this share of its time, to leave room for bursts and
# replication (a planning figure, not a measurement).
UTILISATION = 0.5
TARGETS = (100_000, 1_000_000)


def client_process(url, seconds, queue):
    """Checks for ``seconds`` from 4 threads; puts the number done."""
    import threading

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from ratelimit_app.conf import get_config
    from ratelimit_app.counters.algorithms import GCRA, SLIDING_WINDOW, LimitSpec
    from tests.counters_support import make_backend

    # A redis:// URL goes to the one-server backend (URL_BACKENDS' "valkey" entry).
    kind = "cluster" if url.startswith("redis+cluster") else "valkey"
    backend = make_backend(kind, url, KEY_PREFIX="bench")
    prefix, done, lock = get_config()["KEY_PREFIX"], [], threading.Lock()

    def run():
        count, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            party = uuid.uuid4().hex[:16]
            backend.check(
                [
                    LimitSpec(f"{prefix}:{{a{party}}}:all.ip.60s", SLIDING_WINDOW, 600, 60),
                    LimitSpec(f"{prefix}:{{k{party}}}:std.key.60g", GCRA, 120, 60, burst=20),
                ]
            )
            count += 1
        with lock:
            done.append(count)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(sum(done))


def script_stats(port):
    """(calls, microseconds) of the check script on one server so far."""
    from tests.topologies import client

    stats = client(port).info("commandstats")
    calls = usec = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        calls += stats.get(name, {}).get("calls", 0)
        usec += stats.get(name, {}).get("usec", 0)
    return calls, usec


def measure(url, ports, seconds, processes=2):
    """One round: checks per second, and per primary (calls, CPU per call in µs)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    before = {port: script_stats(port) for port in ports}
    workers = [
        context.Process(target=client_process, args=(url, seconds, queue)) for _ in range(processes)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    checks = sum(queue.get(timeout=seconds + 60) for _ in workers)
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.join(30)
    shards = {}
    for port in ports:
        calls = script_stats(port)[0] - before[port][0]
        usec = script_stats(port)[1] - before[port][1]
        shards[port] = {"calls": calls, "usec_per_call": usec / calls if calls else 0.0}
    return {"checks_per_second": checks / elapsed, "checks": checks, "shards": shards}


def summarize(rounds):
    """Medians over rounds, with their spread (min-max)."""
    rates = [r["checks_per_second"] for r in rounds]
    calls = [sum(s["calls"] for s in r["shards"].values()) for r in rounds]
    usec = [
        sum(s["calls"] * s["usec_per_call"] for s in r["shards"].values()) / max(1, c)
        for r, c in zip(rounds, calls, strict=True)
    ]
    shares = [
        max(s["calls"] for s in r["shards"].values()) / max(1, c)
        for r, c in zip(rounds, calls, strict=True)
    ]
    calls_per_check = [c / max(1, r["checks"]) for r, c in zip(rounds, calls, strict=True)]
    return {
        "checks_per_second": statistics.median(rates),
        "checks_per_second_range": [min(rates), max(rates)],
        "usec_per_call": statistics.median(usec),
        "usec_per_call_range": [min(usec), max(usec)],
        "calls_per_check": statistics.median(calls_per_check),
        "largest_shard_share": statistics.median(shares),
        "per_shard_calls_last_round": [s["calls"] for s in rounds[-1]["shards"].values()],
    }


def shards_needed(summary, rate):
    """Primaries needed for ``rate`` checks a second at UTILISATION of one core each."""
    cpu_seconds = rate * summary["calls_per_check"] * summary["usec_per_call"] / 1e6
    return max(1, math.ceil(cpu_seconds / UTILISATION))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from tests.services import RedisServer
    from tests.topologies import Cluster

    single, cluster = RedisServer().start(), Cluster().start_all()
    try:
        topologies = {
            "one Redis": (single.url, [single.port]),
            "Redis Cluster, 3 primaries": (cluster.url, list(cluster.primaries())),
        }
        rounds = {name: [] for name in topologies}
        for _ in range(args.rounds):  # interleaved: a noisy moment moves one round
            for name, (url, ports) in topologies.items():
                rounds[name].append(measure(url, ports, args.seconds))
    finally:
        single.stop()
        cluster.stop()
    summary = {name: summarize(r) for name, r in rounds.items()}
    for figures in summary.values():
        figures["shards_for"] = {str(t): shards_needed(figures, t) for t in TARGETS}
    RESULT.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=1) + "\n")
    print(table(summary))


def table(summary):
    """The markdown table for docs/deployment.md."""
    lines = [
        "| topology | checks/s (clients, 2 cores) | script calls per check | "
        "CPU per call (µs, median, range) | largest shard's share of calls | "
        "primaries for 100,000/s | for 1,000,000/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in summary.items():
        low, high = f["checks_per_second_range"]
        ulow, uhigh = f["usec_per_call_range"]
        lines.append(
            f"| {name} | {f['checks_per_second']:,.0f} ({low:,.0f}-{high:,.0f}) | "
            f"{f['calls_per_check']:.2f} | {f['usec_per_call']:.1f} ({ulow:.1f}-{uhigh:.1f}) "
            f"| {f['largest_shard_share']:.0%} | {f['shards_for']['100000']} | "
            f"{f['shards_for']['1000000']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
