"""What an access token adds to a request's identity and to its whole check, in process.

python bench/token_cost.py   (prints one JSON line: microseconds per request, the minimum
and the median of interleaved rounds, and each variant's ratio to the same run's request
without a bearer)

The demo's settings on the local test stack (SQLite in memory, counters in process
memory), the catalogue loaded, RequestFactory requests to /v1/status. Variants: no
bearer, an API key, a django-oauth-toolkit token, a demo /connect/token token, and a
bearer value that is no token (remembered as such). Tokens are read once, then answered
from the resolver's memo, as on a busy worker (one read a second per token).
"""

import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["RATELIMIT_TEST_STACK"] = "local"

ROUNDS, CALLS, ADDRESSES = 15, 1000, 1000


def setup():
    import logging

    import django

    django.setup()
    logging.getLogger("ratelimit_app").setLevel(logging.WARNING)
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    from oauth2_provider.models import AccessToken, Application

    from project.demo.setup import load_demo_data
    from project.demo.tokens import issue_token

    load_demo_data()
    # No limit binds: every variant takes the same path to the counters (a denial would
    # be answered from the record of denials, and logged).
    from ratelimit_app.models import Limit

    Limit.objects.update(rate=1_000_000, burst=None)
    application = Application.objects.get(client_id="dot-client")
    expires = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(hours=1)
    AccessToken.objects.create(application=application, token="dot-bench-token", expires=expires)
    return {
        "no_bearer": {},
        "api_key": {"HTTP_AUTHORIZATION": "Bearer 5ca1ab1e.free-tenant-development-only-key"},
        "toolkit_token": {"HTTP_AUTHORIZATION": "Bearer dot-bench-token"},
        "connect_token": {"HTTP_AUTHORIZATION": f"Bearer {issue_token('demo-client')}"},
        "not_a_token": {"HTTP_AUTHORIZATION": "Bearer no-such-token"},
    }


def measure(variants):
    from django.test import RequestFactory

    from ratelimit_app import runtime
    from ratelimit_app.conf import get_config
    from ratelimit_app.enforcement import pipeline
    from ratelimit_app.identity import identify

    factory, config = RequestFactory(), get_config()
    now = [time.time()]
    runtime.test_clock = lambda: now[0]  # frozen: the memo stays fresh, no window moves
    addresses = [f"10.0.{i // 256}.{i % 256}" for i in range(ADDRESSES)]
    results = {name: {"identify": [], "check": []} for name in variants}
    for round_ in range(ROUNDS):
        for name, headers in variants.items():
            requests = [
                factory.get("/v1/status", REMOTE_ADDR=addresses[n % ADDRESSES], **headers)
                for n in range(CALLS)
            ]
            snapshot = runtime.get_snapshot()
            started = time.perf_counter_ns()
            for request in requests:
                identify(request, snapshot, config, needs_user=False, now=now[0])
            results[name]["identify"].append((time.perf_counter_ns() - started) / CALLS / 1000)
            started = time.perf_counter_ns()
            for request in requests:
                pipeline.check(request, group="standard")
            results[name]["check"].append((time.perf_counter_ns() - started) / CALLS / 1000)
            now[0] += 60 * (round_ == 0)  # the first round warms the memos, then a fresh minute
    figures = {}
    for name, parts in results.items():
        figures[name] = {}
        for part, values in parts.items():
            # The first round warms the memos; the minimum is the least disturbed round
            # of a shared machine, the median the typical one.
            figures[name][f"{part}_min"] = min(values[1:])
            figures[name][f"{part}_median"] = statistics.median(values[1:])
    base = figures["no_bearer"]
    for name in figures:
        for key in list(figures[name]):
            ratio = figures[name][key] / base[key]
            figures[name][key] = round(figures[name][key], 2)
            figures[name][f"{key}_ratio"] = round(ratio, 2)
    medians = figures
    return medians


if __name__ == "__main__":
    print(json.dumps(measure(setup())))
