"""Where a row's time goes: each stage of ratelimit_app wrapped in perf_counter_ns.

python -m bench.sections ROW REDIS_URL   (prints µs per request and stage; the wrappers
add about 0.3 µs each, so read the figures as shares, not as exact costs)
"""

import collections
import sys
import time

STAGES = {
    "ratelimit_app.enforcement.pipeline": [
        "_resolve",
        "watching_rule",
        "watch",
        "ban_specs",
        "cached_specs",
        "_decide",
        "feed_back",
    ],
    "ratelimit_app.bans.stage": ["record_response"],
    "ratelimit_app.bans.watch": ["client_credentials", "pair_fingerprint"],
    "ratelimit_app.identity": ["identify"],
    "ratelimit_app.counters.redis": ["decision_from_reply", "check_command"],
}


def wrap(module, name, totals):
    original = getattr(module, name)

    def timed(*args, **kwargs):
        started = time.perf_counter_ns()
        try:
            return original(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter_ns() - started

    setattr(module, name, timed)


def main(row, redis_url, requests=3000):
    import importlib

    from bench.harness import post, setup_django

    setup_django(row, 600, redis_url)
    from django.test import Client
    from redis.commands.core import Script

    from ratelimit_app.counters.channel import Channel

    totals = collections.Counter()
    for module_name, names in STAGES.items():
        module = importlib.import_module(module_name)
        for name in names:
            wrap(module, name, totals)
    # The Redis call itself: redis-py's (the `limits` rows) and ratelimit_app's channel.
    wrap(Script, "__call__", totals)
    wrap(Channel, "call", totals)
    client = Client()
    for i in range(300):
        post(client, f"10.0.{i % 50}.1")
    totals.clear()
    started = time.perf_counter_ns()
    for i in range(requests):
        post(client, f"10.0.{i % 50}.1")
    print(f"{'whole request':22} {(time.perf_counter_ns() - started) / requests / 1000:7.1f} µs")
    for name, total in totals.most_common():
        print(f"{name:22} {total / requests / 1000:7.1f} µs")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
