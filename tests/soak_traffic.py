"""Traffic for the soak test: each role runs in a process of its own, bounded in time."""

import http.client
import time
from collections import Counter
from urllib.parse import urlencode


def _send(port, method, path, headers=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        return connection.getresponse().status
    finally:
        connection.close()


def good(port, seconds, clients, results):
    """Well-behaved anonymous clients, two requests a second each: never refused."""
    statuses, deadline = Counter(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        for i in range(clients):
            statuses[
                _send(port, "GET", "/v1/status", {"X-Forwarded-For": f"198.51.100.{i + 1}"})
            ] += 1
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
    results.put(("good", dict(statuses), seconds))


def abusive(port, seconds, api_key, results):
    """One tenant's client hammering the Admin group as fast as it can."""
    statuses, started = Counter(), time.monotonic()
    headers = {"X-Forwarded-For": "203.0.113.66", "X-API-Key": api_key}
    while time.monotonic() - started < seconds:
        statuses[_send(port, "GET", "/acp/admin/ping", headers)] += 1
    results.put(("abusive", dict(statuses), time.monotonic() - started))


def tokens(port, seconds, pairs, results):
    """Failing token requests from several credential pairs, a few a second each."""
    statuses, deadline = {}, time.monotonic() + seconds
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    while time.monotonic() < deadline:
        for i in range(pairs):
            body = urlencode({"client_id": f"soak-client-{i}", "client_secret": "wrong"})
            status = _send(
                port,
                "POST",
                "/connect/token",
                {**headers, "X-Forwarded-For": f"192.0.2.{i + 1}"},
                body,
            )
            statuses.setdefault(i, Counter())[status] += 1
        time.sleep(0.2)
    results.put(("tokens", {i: dict(c) for i, c in statuses.items()}, seconds))
