"""Over-admission under real concurrency: gunicorn on loopback, 1,000 requests from 32
threads released together against a limit of 100 per minute.

python -m bench.admission ROW MODEL REDIS_URL WORKDIR   -> JSON {row, model, admitted: [..]}
MODEL is "sync4" (4 sync workers) or "gthread2x8" (2 workers x 8 threads).
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.harness import FORM
from bench.rows import API_KEY

LIMIT, TOTAL, THREADS, REPEATS = 100, 1000, 32, 3
MODELS = {
    "sync4": ["--workers", "4"],
    "gthread2x8": ["--workers", "2", "--threads", "8", "--worker-class", "gthread"],
}
ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database(row, redis_url, path):
    """Tables and the row's policies in a SQLite file the workers share."""
    if path.exists():
        path.unlink()
    code = (
        "import sys; from bench.harness import setup_django; "
        f"setup_django({row!r}, {LIMIT}, {redis_url!r}, {str(path)!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def start_gunicorn(row, model, redis_url, database, port):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_ROW": row,
        "BENCH_LIMIT": str(LIMIT),
        "BENCH_REDIS_URL": redis_url,
        "BENCH_DB": str(database),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "bench.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        *MODELS[model],
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def send(port, client_ip):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST",
            "/bench",
            body=FORM,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Bearer {API_KEY}",
                "X-Forwarded-For": client_ip,
            },
        )
        return connection.getresponse().status
    finally:
        connection.close()


def burst(port, client_ip):
    """TOTAL requests from THREADS threads released together; returns the 200 count."""
    barrier, statuses, lock = threading.Barrier(THREADS), [], threading.Lock()
    shares = [TOTAL // THREADS + (1 if i < TOTAL % THREADS else 0) for i in range(THREADS)]

    def run(share):
        barrier.wait()
        mine = [send(port, client_ip) for _ in range(share)]
        with lock:
            statuses.extend(mine)

    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == TOTAL, statuses
    return statuses.count(200), sorted(set(statuses))


def redis_minute(server):
    seconds, _micro = server.time()
    return seconds // 60


def counted_burst(port, client_ip, server):
    """A burst that stays inside one minute of Redis's clock: a run that straddles a
    window boundary is repeated (windowed limiters rightly admit more across one)."""
    for attempt in range(3):
        before = redis_minute(server)
        admitted, statuses = burst(port, f"{client_ip}{attempt}")
        if redis_minute(server) == before:
            return admitted, statuses, attempt
    return admitted, statuses, attempt


def measure(row, model, redis_url, workdir):
    import redis

    server = redis.Redis.from_url(redis_url)
    server.flushdb()
    Path(workdir).mkdir(parents=True, exist_ok=True)
    database = Path(workdir) / f"{row}-{model}.sqlite3"
    prepare_database(row, redis_url, database)
    port = free_port()
    process = start_gunicorn(row, model, redis_url, database, port)
    try:
        send(port, "192.0.2.1")  # workers up and warm
        runs = [counted_burst(port, f"198.51.{repeat + 1}.", server) for repeat in range(REPEATS)]
    finally:
        process.terminate()
        process.wait(30)
    return {
        "row": row,
        "model": model,
        "admitted": [r[0] for r in runs],
        "statuses": sorted({s for r in runs for s in r[1]}),
        "boundary_repeats": sum(r[2] for r in runs),
    }


if __name__ == "__main__":
    print(json.dumps(measure(*sys.argv[1:5])))
