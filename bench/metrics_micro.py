"""What the metrics add to one request, measured directly: the pipeline's verdict
observers and the breaker's store-call observers, with the metrics' receivers, in a
tight loop, in multiprocess mode.

python -m bench.metrics_micro REDIS_URL; prints one JSON line (microseconds per request).
End-to-end timings on a shared machine move by more than the few microseconds measured
here; this is the figure that does not.
"""

import json
import statistics
import sys
import time

BATCHES, CALLS = 15, 2000


def measure(redis_url):
    from bench.harness import post, setup_django

    setup_django("rl_three_metrics", 600, redis_url)
    from django.test import Client

    from ratelimit_app.counters import breaker
    from ratelimit_app.enforcement import pipeline

    verdict = post(Client(), "10.0.0.1").wsgi_request._ratelimit_verdict
    assert verdict.decision is not None and len(verdict.decision.results) == 3
    per_call = []
    for _ in range(BATCHES):
        started = time.perf_counter_ns()
        for _ in range(CALLS):
            # What the pipeline and the breaker do for one request, metrics on.
            pipeline._tell_observers(verdict)
            breaker._tell_observers("check", time.perf_counter(), None)
        per_call.append((time.perf_counter_ns() - started) / CALLS / 1000)
    return {"metrics_us_per_request": statistics.median(per_call), "batches_us": per_call}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
