"""The cost of the metrics: ratelimit_app's overhead with Prometheus metrics on against
off, three limits at 600/min, interleaved rounds, and the metrics' own work per request
measured directly (bench.metrics_micro); prints one JSON line.

python bench/metrics_cost.py [ROUNDS] [REDIS_PORT]

`make bench` measures the same row among all the others; this is the quick check of
issue 17's target (metrics add at most 5 % to the overhead).
"""

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import run_module  # noqa: E402
from tests.services import RedisServer  # noqa: E402

ROWS = ("baseline", "rl_three", "rl_three_metrics")
SIZE = 600


def main(rounds=5, redis_port=None):
    server = RedisServer(port=redis_port).start()
    medians = {row: [] for row in ROWS}
    try:
        micro = run_module("bench.metrics_micro", server.url)
        print(f"the metrics' own work: {micro['metrics_us_per_request']:.1f} µs a request")
        for number in range(rounds):
            for row in ROWS:
                result = run_module("bench.measure", row, SIZE, server.url)
                medians[row].append(result["median_us"])
                print(f"round {number + 1} {row:18} median {result['median_us']:7.1f} µs")
    finally:
        server.stop()
    figure = {row: statistics.median(values) for row, values in medians.items()}
    off = figure["rl_three"] - figure["baseline"]
    on = figure["rl_three_metrics"] - figure["baseline"]
    print(
        json.dumps(
            {
                "median_us": figure,
                "rounds_us": medians,
                "overhead_off_us": off,
                "overhead_on_us": on,
                "ratio": on / off,
                "metrics_us_per_request": micro["metrics_us_per_request"],
                "metrics_share_of_overhead": micro["metrics_us_per_request"] / off,
            }
        )
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 5, int(args[1]) if len(args) > 1 else None)
