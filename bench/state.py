"""State bytes per client in Redis (MEMORY USAGE) for every limiter, the key nearly full.

python -m bench.state REDIS_URL SIZE [SIZE ...]   -> JSON {row: {size: {bytes, keys}}}
"""

import json
import sys
import time

CLIENT = "203.0.113.7"


def fill_drf(scope_key, size):
    """What DRF's SimpleRateThrottle stores: the list of request timestamps."""
    from django.core.cache import cache

    now = time.time()
    cache.set(scope_key, [now - i * 0.001 for i in range(size - 1)], 60)


def fill_django_ratelimit(size):
    from django.test import RequestFactory
    from django_ratelimit.core import get_usage

    request = RequestFactory().post("/bench", REMOTE_ADDR=CLIENT)
    for _ in range(min(size - 1, 50)):  # a counter: its size does not grow with the count
        get_usage(request, group="bench", key="ip", rate=f"{size}/m", increment=True)


def fill_limits(strategy, size, redis_url):
    from limits import parse, strategies
    from limits.storage import RedisStorage

    limiter = getattr(strategies, strategy)(RedisStorage(redis_url))
    limiter.hit(parse(f"{size}/minute"), "bench", CLIENT, cost=size - 1)


def fill_ratelimit_app(algorithm, size):
    from ratelimit_app import hashing, runtime
    from ratelimit_app.conf import get_config
    from ratelimit_app.counters.algorithms import LimitSpec
    from ratelimit_app.counters.base import key_base
    from ratelimit_app.enforcement import ALGORITHM_LETTERS

    party = hashing.short_hash("identity", f"ip:{CLIENT}")
    key = f"{key_base(get_config())}:17{ALGORITHM_LETTERS[algorithm]}:{party}"
    burst = size if algorithm == "gcra" else None
    runtime.get_backend().check([LimitSpec(key, algorithm, size, 60, burst)], cost=size - 1)


FILLERS = {
    "drf_scoped": lambda size, url: fill_drf(f"throttle_bench_{CLIENT}", size),
    "drf_anon": lambda size, url: fill_drf(f"throttle_anon_{CLIENT}", size),
    "django_ratelimit": lambda size, url: fill_django_ratelimit(size),
    "limits_fixed": lambda size, url: fill_limits("FixedWindowRateLimiter", size, url),
    "limits_moving": lambda size, url: fill_limits("MovingWindowRateLimiter", size, url),
    "limits_sliding": lambda size, url: fill_limits("SlidingWindowCounterRateLimiter", size, url),
    "rl_gcra": lambda size, url: fill_ratelimit_app("gcra", size),
    "rl_sliding_window": lambda size, url: fill_ratelimit_app("sliding_window", size),
    "rl_fixed_window": lambda size, url: fill_ratelimit_app("fixed_window", size),
}


def measure(redis_url, sizes):
    from bench.harness import setup_django

    setup_django("rl_one", 600, redis_url)
    import redis

    server = redis.Redis.from_url(redis_url)
    results = {}
    for row, fill in FILLERS.items():
        for size in sizes:
            server.flushdb()
            fill(size, redis_url)
            keys = list(server.scan_iter("*"))
            usage = [server.memory_usage(key, samples=0) for key in keys]
            results.setdefault(row, {})[size] = {
                "bytes": sum(usage),
                "keys": len(keys),
                "largest_key_bytes": max(usage, default=0),
            }
    server.flushdb()
    return results


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], [int(s) for s in sys.argv[2:]])))
