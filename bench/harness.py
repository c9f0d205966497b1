"""Shared pieces of the benchmark: Django setup for a row, the request, Redis counters."""

import os
import threading
from urllib.parse import urlencode

import redis

from bench.rows import API_KEY, load_policies

# A token request as RFC 6749 has it: form-urlencoded client credentials.
FORM = urlencode({"client_id": "bench-client", "client_secret": "bench-secret"})


def setup_django(row, limit, redis_url, database=":memory:"):
    """Configure Django for ``row`` and create its tables and policies."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        BENCH_ROW=row,
        BENCH_LIMIT=str(limit),
        BENCH_REDIS_URL=redis_url,
        BENCH_DB=database,
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, run_syncdb=True)
    load_policies(row, limit)


def post(client, ip):
    """The request every row receives: a form body with client credentials, an API key."""
    return client.post(
        "/bench",
        FORM,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {API_KEY}",
        REMOTE_ADDR=ip,
    )


class RoundTrips:
    """Counts writes to Redis sockets by this process: one per command or pipeline."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()
        self._original = redis.connection.AbstractConnection.send_packed_command
        counter = self

        def counting(connection, command, check_health=True):
            with counter._lock:
                counter.count += 1
            return counter._original(connection, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counting


def server_commands(client):
    """Commands Redis executed (scripts' own included), by name, since the last reset."""
    return {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in client.info("commandstats").items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    }
