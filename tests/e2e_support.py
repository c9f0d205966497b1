"""What the end-to-end modules (one per source document) share: the demo deployed as
``make demo`` deploys it (``demo_setup``: the catalogue loaded once, the demo's tenants,
keys and clients), real HTTP against Django's live server, and a movable clock.

The modules run on the in-process backend (local pass) and on Redis (services pass).
The clock starts one second into a minute and moves only when a test moves it: no
window boundary and no GCRA refill falls inside a burst, so every count is exact on
both backends (the runtime's test clock reaches Redis's scripts too).
"""

import io
import time
from urllib.parse import urlencode

import pytest
from django.core.management import call_command

from ratelimit_app import runtime
from tests.http_support import HttpClient

START = (int(time.time()) // 60) * 60 + 1
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FREE_KEY = "5ca1ab1e.free-tenant-development-only-key"
PAID_KEY = "c0ffee00.paid-tenant-development-only-key"
TOKEN_CLIENTS = {
    "connect": ("/connect/token", "demo-client", "demo-secret"),
    "toolkit": ("/o/token/", "dot-client", "dot-secret"),
}


@pytest.fixture
def clock():
    """The runtime's clock, in seconds (``clock[0]``), starting at START."""
    now = [START]
    runtime.test_clock = lambda: now[0]
    yield now
    runtime.test_clock = None


@pytest.fixture
def deployment(transactional_db):
    """The demo as ``make demo`` sets it up: ``manage.py demo_setup`` (catalogue once)."""
    call_command("demo_setup", stdout=io.StringIO())


@pytest.fixture
def http(live_server, deployment, clock):
    """One keep-alive HTTP connection to the live demo."""
    client = HttpClient(live_server.url)
    yield client
    client.close()


def bearer(secret):
    """An ``Authorization: Bearer`` header."""
    return {"Authorization": f"Bearer {secret}"}


def burst_until_denied(http, method, path, headers, limit=5000):
    """Send requests until the first 429; return (allowed count, the 429 reply)."""
    for sent in range(limit):
        reply = http.request(method, path, headers)
        if reply.status == 429:
            return sent, reply
        assert reply.status < 400, reply.body
    raise AssertionError(f"no 429 after {limit} requests")


def count_admitted(http, method, path, headers, n):
    """Send ``n`` requests; return how many were admitted (the rest must be 429)."""
    statuses = [http.request(method, path, headers).status for _ in range(n)]
    assert set(statuses) <= {200, 201, 429}, statuses
    return sum(status < 400 for status in statuses)


def new_token(http, issuer):
    """An access token from the issuer's real token endpoint (client credentials)."""
    path, client_id, secret = TOKEN_CLIENTS[issuer]
    body = urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    reply = http.request("POST", path, FORM, body)
    assert reply.status == 200, reply.body
    assert reply.json()["token_type"] == "Bearer"
    return reply.json()["access_token"]


def bump_revision():
    """Publish a policy edit made with update() (no save signal), as the admin would."""
    from ratelimit_app.policy import revision

    revision.bump()
