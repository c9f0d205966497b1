"""The demo under gunicorn on loopback, with Redis and the test database, for the slow
tests that measure what users run (the soak, memory under hostile input)."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.services import RedisServer, free_port
from tests.soak_traffic import _send

ROOT = Path(__file__).resolve().parent.parent


def database_url(db):
    """The URL of a Django DATABASES entry (PostgreSQL), for the served process."""
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def worker_rss_kb(master_pid):
    """Resident memory (KiB) of each of gunicorn's workers, by pid."""
    children = subprocess.run(
        ["pgrep", "-P", str(master_pid)], capture_output=True, text=True
    ).stdout.split()
    sizes = {}
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes[pid] = int(line.split()[1])
    return sizes


@contextlib.contextmanager
def serve_demo(
    database,
    *,
    workers=4,
    trusted_proxies="127.0.0.1/32",
    storage_url=None,
    metrics=None,
    port=None,
    redis_port=None,
):
    """Run project.wsgi under gunicorn on a free port (or ``port``) with a throwaway Redis
    (on ``redis_port`` if given), or the counters at ``storage_url`` (a cluster, say);
    yields (port, master pid, the storage URL).

    ``metrics`` = (multiprocess directory, token) serves Prometheus metrics at /metrics in
    prometheus_client's multiprocess mode, with the demo's gunicorn configuration."""
    redis_server = None if storage_url else RedisServer(port=redis_port).start()
    storage_url = storage_url or redis_server.url
    port = port or free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DEBUG": "0",
        "DATABASE_URL": database_url(database),
        "REDIS_URL": storage_url,
        "RATELIMIT_TRUSTED_PROXIES": trusted_proxies,
    }
    extra_args = []
    if metrics is not None:
        multiproc_dir, token = metrics
        env.update(
            RATELIMIT_METRICS="1",
            RATELIMIT_METRICS_TOKEN=token,
            PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir),
        )
        extra_args = ["-c", "python:project.gunicorn_conf"]
    command = [sys.executable, "-m", "gunicorn", "project.wsgi:application"]
    command += ["--workers", str(workers), "--bind", f"127.0.0.1:{port}", *extra_args]
    gunicorn = subprocess.Popen([*command, "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _send(port, "GET", "/v1/status")
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield port, gunicorn.pid, storage_url
    finally:
        gunicorn.terminate()
        gunicorn.wait(30)
        if redis_server is not None:
            redis_server.stop()
