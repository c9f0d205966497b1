"""Where the CPU of a request goes under gunicorn: ``make bench-storm``'s server and load,
with each process's CPU time read from /proc during the steady load.

    python bench/storm_cpu.py [--seconds 8] [--rounds 2]

Serves the demo (the rows ``bench/ban_storm.py`` prepared) with the limiter, then
without it, on one private Redis, alternating; for each, the requests a second and the
CPU µs per request of the gunicorn processes, redis-server and the load generator. All
of them share the machine's cores, so the plain ratio is about the ratio of the totals.
"""

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ban_storm  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User plus system CPU seconds of process ``pid`` (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid):
    """The pids of ``pid``'s child processes."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def measure(served, redis_pid, seconds):
    """Requests a second and CPU µs per request by process group, during ``seconds`` of
    steady load (after 2 s of warm-up)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    until = time.time() + seconds + 3
    loaders = [
        context.Process(target=ban_storm.load, args=(served.port, until, seed, results))
        for seed in range(ban_storm.LOAD_PROCESSES)
    ]
    for process in loaders:
        process.start()
    time.sleep(2)
    groups = {
        "gunicorn": [served.process.pid, *children(served.process.pid)],
        "redis-server": [redis_pid],
        "load generator": [process.pid for process in loaders],
    }
    start_at = time.time()
    before = {name: sum(map(cpu_seconds, pids)) for name, pids in groups.items()}
    time.sleep(seconds)
    after = {name: sum(map(cpu_seconds, pids)) for name, pids in groups.items()}
    end_at = time.time()
    samples = []
    for _ in loaders:
        samples += results.get(timeout=seconds + 60)
    for process in loaders:
        process.join(30)
    done = sum(1 for finished, _latency, _status in samples if start_at <= finished < end_at)
    per_request = {name: (after[name] - before[name]) * 1e6 / max(1, done) for name in groups}
    return done / (end_at - start_at), per_request


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ban_storm.prepare_database(str(ROOT), 1000)
    redis_server = ban_storm.RedisServer().start()
    try:
        for _ in range(args.rounds):
            for unlimited in (False, True):
                served = ban_storm.Served(str(ROOT), redis_server.url, unlimited=unlimited)
                try:
                    rate, per_request = measure(served, redis_server.process.pid, args.seconds)
                finally:
                    served.stop()
                label = "unlimited" if unlimited else "limited"
                parts = ", ".join(f"{name} {micros:.0f}" for name, micros in per_request.items())
                total = sum(per_request.values())
                print(
                    f"{label:9s} {rate:7.0f} requests/s; CPU µs per request: {parts}; "
                    f"total {total:.0f}"
                )
    finally:
        redis_server.stop()


if __name__ == "__main__":
    main()
