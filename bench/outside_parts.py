"""What each part of one limit's request costs in the outside harness's process.

    python bench/outside_parts.py [--requests 5000] [--batches 7]

The same set-up as ``bench/outside_harness.py`` (one process, a private Redis, the
app's rows in SQLite, ``limits`` on the same Redis), then each part timed alone in a
tight loop, median of the batches, in µs: a bare ``PING`` round trip through redis-py,
``limits``' ``FixedWindowRateLimiter.hit``, the app's counter-store call for one limit,
``enforcement.check`` on a new request, and the check followed by ``feed_back`` onto a
new response. The differences say what the app's pipeline adds to its round trip.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import outside_harness  # noqa: E402

ADDRESS = "198.51.100.7"


def timed(function, requests, batches):
    """Median over ``batches`` of the µs per call of ``requests`` calls of ``function``."""
    results = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(requests):
            function()
        results.append((time.perf_counter() - started) / requests * 1e6)
    return round(statistics.median(results), 1)


def parts(requests, batches, redis_url):
    """Each part's µs per call (see the module's docstring)."""
    import limits
    import redis
    from django.http import HttpResponse
    from django.test import RequestFactory
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    from ratelimit_app import enforcement, identity, runtime
    from ratelimit_app.conf import get_config
    from ratelimit_app.enforcement.specs import cached_specs

    factory = RequestFactory()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {outside_harness.API_KEY}"}

    def new_request():
        return factory.get("/rl_one", REMOTE_ADDR=ADDRESS, **headers)

    def check_and_feed_back():
        request = new_request()
        enforcement.check(request, group="one")
        enforcement.feed_back(request, HttpResponse("ok"))

    limiter = FixedWindowRateLimiter(storage_from_string(redis_url))
    item = limits.parse(f"{outside_harness.LIMIT}/minute")
    client = redis.Redis.from_url(redis_url)
    request = new_request()
    enforcement.check(request, group="one")  # the snapshot, the backend, the memos
    snapshot, config = runtime.get_snapshot(), get_config()
    who = identity.identify(request, snapshot, config, needs_user=False)
    specs = cached_specs(snapshot, "one", who, config, ())
    backend = runtime.get_backend()
    rows = {
        "PING through redis-py": client.ping,
        "limits FixedWindowRateLimiter.hit": lambda: limiter.hit(item, "harness", ADDRESS),
        "the app's counter-store call, one limit": lambda: backend.check(specs, 1),
        "a new RequestFactory request": new_request,
        "enforcement.check on a new request": lambda: enforcement.check(new_request(), group="one"),
        "a new HttpResponse": lambda: HttpResponse("ok"),
        "check, then feed_back onto a new HttpResponse": check_and_feed_back,
    }
    for function in rows.values():
        timed(function, requests // 10, 1)  # warm
    return {name: timed(function, requests, batches) for name, function in rows.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=7)
    args = parser.parse_args()
    from tests.services import RedisServer

    server = RedisServer().start()
    try:
        os.environ["HARNESS_REDIS_URL"] = server.url
        database = str(Path(tempfile.mkdtemp(prefix="outside-parts-")) / "db")
        outside_harness.configure(server.url, database)
        outside_harness.urlpatterns = outside_harness.urlpatterns_for_rows()
        outside_harness.load_rows()
        for name, micros in parts(args.requests, args.batches, server.url).items():
            print(f"{name:48s} {micros:8.1f} µs")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
