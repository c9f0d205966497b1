"""Measure one row at one limit size through django.test.Client; prints JSON.

python -m bench.measure ROW LIMIT REDIS_URL [--flood] [--replay]

--replay answers every Redis call of ratelimit_app and of the `limits` rows with the
reply to the first one, so that only the Python of the request is left (for the
breakdown in docs/benchmarks.md; `make bench` does not use it).
"""

import json
import statistics
import sys
import time

WARMUP, REQUESTS, FLOOD = 300, 2000, 500


def addresses(total, limit):
    """Enough client addresses that no request is refused at this limit."""
    count = max(1, -(-total * 2 // limit))
    return [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(count)]


def replay_replies():
    """Answer every later Redis call with the reply to the first one."""
    from limits.storage import RedisStorage

    from ratelimit_app.counters.channel import Channel

    real_call, first = Channel.call, []

    def call(channel, packed):
        if not first:
            first.append(real_call(channel, packed))
        return list(first[0])

    Channel.call = call
    RedisStorage.incr = lambda storage, key, expiry, amount=1: amount


def measure(row, limit, redis_url, flood, replay=False):
    from bench.harness import RoundTrips, post, server_commands, setup_django

    setup_django(row, limit, redis_url)
    if replay:
        replay_replies()
    import redis
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    server = redis.Redis.from_url(redis_url)
    server.flushdb()
    client, trips = Client(), RoundTrips()
    pool = addresses(WARMUP + REQUESTS, limit)
    for i in range(WARMUP):
        post(client, pool[i % len(pool)])
    server.config_resetstat()
    trips_before, timings, statuses = trips.count, [], []
    with CaptureQueriesContext(connection) as queries:
        for i in range(REQUESTS):
            ip = pool[(WARMUP + i) % len(pool)]
            started = time.perf_counter_ns()
            response = post(client, ip)
            timings.append(time.perf_counter_ns() - started)
            statuses.append(response.status_code)
    result = {
        "row": row,
        "limit": limit,
        "median_us": statistics.median(timings) / 1000,
        "p99_us": statistics.quantiles(timings, n=100)[98] / 1000,
        "admitted": statuses.count(200),
        "requests": REQUESTS,
        "round_trips_per_request": (trips.count - trips_before) / REQUESTS,
        "redis_commands_per_request": sum(server_commands(server).values()) / REQUESTS,
        "redis_commands": server_commands(server),
        "db_queries_per_request": len(queries) / REQUESTS,
    }
    if flood:
        result.update(measure_flood(client, limit, trips))
    return result


def measure_flood(client, limit, trips):
    """A client over its limit keeps sending: Redis round trips per denied request."""
    from bench.harness import post

    ip = "192.0.2.200"
    for _ in range(limit + 5):
        post(client, ip)
    before, statuses = trips.count, []
    for _ in range(FLOOD):
        statuses.append(post(client, ip).status_code)
    return {
        "flood_denied": statuses.count(429),
        "flood_requests": FLOOD,
        "flood_round_trips_per_request": (trips.count - before) / FLOOD,
    }


if __name__ == "__main__":
    row, limit, redis_url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(json.dumps(measure(row, limit, redis_url, "--flood" in sys.argv, "--replay" in sys.argv)))
