"""What the console's recorder of recent traffic adds to one request, measured directly:
Recorder.observe (the pipeline's verdict observer) on an allowed request with three
limits and no shadow limit refusing, in a tight loop.

python -m bench.activity_micro REDIS_URL; prints one JSON line (microseconds per request).
"""

import json
import statistics
import sys
import time

BATCHES, CALLS = 15, 20000


def measure(redis_url):
    from bench.harness import post, setup_django

    setup_django("rl_three_metrics", 600, redis_url)
    from django.test import Client

    from ratelimit_app import activity

    verdict = post(Client(), "10.0.0.1").wsgi_request._ratelimit_verdict
    assert verdict.decision is not None and verdict.decision.allowed
    assert len(verdict.decision.results) == 3
    per_call = []
    for _ in range(BATCHES):
        started = time.perf_counter_ns()
        for _ in range(CALLS):
            activity.recorder.observe(verdict)
        per_call.append((time.perf_counter_ns() - started) / CALLS / 1000)
    return {"activity_us_per_request": statistics.median(per_call), "batches_us": per_call}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
