"""Redis's own time per check-script call, one limit per call, per algorithm.

A private redis-server; 200 keys per algorithm, each checked once to create it, then
20 batches over them; ``INFO commandstats`` gives the server's microseconds per EVALSHA,
and the least batch is printed (a busy machine slows some batches, never speeds one).

    python bench/script_cost.py
"""

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    import redis

    from ratelimit_app.counters.algorithms import FIXED_WINDOW, GCRA, SLIDING_WINDOW, LimitSpec
    from tests.counters_support import make_backend
    from tests.services import RedisServer

    server = RedisServer().start()
    try:
        backend = make_backend("valkey", server.url)  # the one-server backend, by URL
        stats = redis.Redis(port=server.port)
        for algorithm in (SLIDING_WINDOW, GCRA, FIXED_WINDOW):
            specs = [
                LimitSpec(f"b:{{p{i}}}:{algorithm}", algorithm, 600, 60, burst=50)
                for i in range(200)
            ]
            for spec in specs:
                backend.check([spec])
            # The least of 20 batches: a busy machine slows some batches, never speeds one.
            batches = []
            for _ in range(20):
                stats.config_resetstat()
                for spec in specs:
                    backend.check([spec])
                batches.append(stats.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])
            print(
                f"{algorithm}: {min(batches):.1f} µs per call "
                f"(least of 20 batches; median {statistics.median(batches):.1f})"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
