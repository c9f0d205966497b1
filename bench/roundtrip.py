"""One EVALSHA through redis-py's command path and through ratelimit_app's channel.

python -m bench.roundtrip REDIS_URL   (prints the median µs of each, 5,000 calls after
a warm-up; the same one-line script, the same server, one after the other)
"""

import statistics
import sys
import time

import redis

from ratelimit_app.counters.channel import Channel, pack

CALLS, WARMUP = 5000, 300


def median_us(call):
    for _ in range(WARMUP):
        call()
    timings = []
    for _ in range(CALLS):
        started = time.perf_counter_ns()
        call()
        timings.append(time.perf_counter_ns() - started)
    return statistics.median(timings) / 1000


def main(url):
    client = redis.Redis.from_url(url)
    sha = client.script_load("return redis.call('INCR', KEYS[1])")
    channel = Channel(client.connection_pool)
    packed = pack("EVALSHA", sha, "1", "bench:roundtrip")
    through_redis_py = median_us(lambda: client.evalsha(sha, 1, "bench:roundtrip"))
    through_channel = median_us(lambda: channel.call(packed))
    print(f"redis-py evalsha      {through_redis_py:7.1f} µs")
    print(f"channel, pre-packed   {through_channel:7.1f} µs")
    client.delete("bench:roundtrip")


if __name__ == "__main__":
    main(sys.argv[1])
