"""Run the suite twice: on SQLite with in-process counters, then on PostgreSQL with Redis.

The second pass runs whenever PostgreSQL and Redis answer (REDIS_URL, DATABASE_URL,
defaulting to the local servers). If no Redis answers but redis-server is installed,
a throwaway one is started on a free loopback port. With RATELIMIT_REQUIRE_SERVICES=1
(as in CI) an unreachable service fails the run instead of skipping the pass.

With --reliability it runs only the slow tests (faults, soak), on PostgreSQL and Redis,
which are then required; with --cluster only the tests that start a Redis Cluster, a
Sentinel set-up and a Valkey server of their own (tests/topologies.py); with --browser
only the admin's tests in headless Chromium (tests/test_browser*.py), on PostgreSQL and
Redis, which are then required.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    RedisServer,
    postgres_reachable,
    redis_reachable,
)


def run_pytest(stack, extra_env, args, marker=None):
    env = {
        **os.environ,
        **extra_env,
        "RATELIMIT_TEST_STACK": stack,
        "RATELIMIT_RUN_ID": str(os.getpid()),
    }
    if marker is None:
        marker = "not slow and not cluster and not browser"
        if stack != "services":
            marker = "not services and " + marker
    print(f"\n===== pytest pass: {stack} ({marker}) =====", flush=True)
    command = [sys.executable, "-m", "pytest", "-m", marker, *args]
    return subprocess.call(command, cwd=ROOT, env=env)


def main(args):
    reliability = "--reliability" in args
    cluster = "--cluster" in args
    browser = "--browser" in args
    args = [a for a in args if a not in ("--reliability", "--cluster", "--browser")]
    dedicated = reliability or cluster or browser
    required = dedicated or os.environ.get("RATELIMIT_REQUIRE_SERVICES") == "1"
    status = 0 if dedicated else run_pytest("local", {}, args)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    throwaway = None
    if not redis_reachable(redis_url) and RedisServer.available():
        throwaway = RedisServer().start()
        redis_url = throwaway.url
    try:
        missing = [
            name
            for name, ok in (
                ("Redis", redis_reachable(redis_url)),
                ("PostgreSQL", postgres_reachable(database_url)),
            )
            if not ok
        ]
        if missing:
            message = f"{' and '.join(missing)} not reachable: the services pass cannot run."
            if required:
                print(f"ERROR: {message}", file=sys.stderr)
                return 1
            print(f"NOTE: {message} Skipping it.", file=sys.stderr)
            return status
        env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url}
        marker = "slow" if reliability else "cluster" if cluster else None
        marker = "browser" if browser else marker
        return run_pytest("services", env, args, marker) or status
    finally:
        if throwaway:
            throwaway.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
