"""Redis's own time per check-script call, with one limit and with three of one party,
per algorithm, at 600 and at 1,000,000 a minute; and what each extra limit adds.

A private redis-server; 200 parties per row, each checked once to create its keys, then
20 batches over them; ``INFO commandstats`` gives the server's microseconds per EVALSHA,
and the least batch is printed (a busy machine slows some batches, never speeds one).

    python bench/script_cost.py
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def least_us_per_call(backend, stats, algorithm, rate, limits):
    """The least, over 20 batches, of Redis's µs per check of ``limits`` limits."""
    from ratelimit_app.counters.algorithms import GCRA, LimitSpec

    burst = 50 if algorithm == GCRA else None
    parties = [
        [
            LimitSpec(f"b:{{p{i}}}:{algorithm}:{rate}:{j}", algorithm, rate, 60, burst)
            for j in range(limits)
        ]
        for i in range(200)
    ]
    for specs in parties:
        backend.check(specs)
    batches = []
    for _ in range(20):
        stats.config_resetstat()
        for specs in parties:
            backend.check(specs)
        batches.append(stats.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])
    return min(batches)


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    import redis

    from ratelimit_app.counters.algorithms import FIXED_WINDOW, GCRA, SLIDING_WINDOW
    from tests.counters_support import make_backend
    from tests.services import RedisServer

    server = RedisServer().start()
    try:
        backend = make_backend("valkey", server.url)  # the one-server backend, by URL
        stats = redis.Redis(port=server.port)
        for rate in (600, 1_000_000):
            for algorithm in (SLIDING_WINDOW, GCRA, FIXED_WINDOW):
                one, three = (
                    least_us_per_call(backend, stats, algorithm, rate, limits) for limits in (1, 3)
                )
                print(
                    f"{algorithm} at {rate:,}/min: one limit {one:.1f} µs, three "
                    f"{three:.1f} µs, {(three - one) / 2:.1f} µs per extra limit"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
