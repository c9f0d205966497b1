"""A reset is honoured by every gunicorn worker, their local records of the denied client
included: the client, throttled in every worker, is admitted again by all of them.

Slow (`make test-reliability`): the demo under gunicorn (4 workers), PostgreSQL and a
Redis of its own; the test process plays the operator, on the same database and Redis.
"""

import http.client
import time

import pytest

from ratelimit_app import runtime
from ratelimit_app.models import EndpointGroup, Limit, Tenant
from ratelimit_app.reset import reset_party
from tests.gunicorn_support import serve_demo

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.django_db(transaction=True)]
WORKERS = 4
BUDGET = 100  # requests an hour for the tenant: no window passes during the test
# A worker that answers from its record of the denial makes no Redis call: it learns of
# the reset with its holder's next poll of Redis (POLICY_REFRESH_INTERVAL, 1 s in the
# demo) and the read of the ban rows changed that follows (or with its next reply from
# Redis, if another client's request makes one first).
WITHIN_SECONDS = 1.5


def get_status(port, key):
    """The status of one GET /v1/status with ``key`` on a new connection (any worker)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "GET", "/v1/status", headers={"X-API-Key": key, "X-Forwarded-For": "198.51.100.60"}
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.fixture
def served_as_operator(demo_data, settings):
    """The demo served with a tight hourly limit for the free tenant, and this process
    configured as its operator (same database, Redis and key prefix)."""
    Limit.objects.create(
        group=EndpointGroup.objects.get(slug="standard"),
        tier=Tenant.objects.get(slug="free-tenant").tier,
        scope="tenant",
        algorithm="fixed_window",
        rate=BUDGET,
        period=3600,
    )
    database = settings.DATABASES["default"]
    with serve_demo(database, workers=WORKERS, port=18110, redis_port=18111) as (port, _, redis):
        settings.CACHES = {
            "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis}
        }
        settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "KEY_PREFIX": "rl", "STORAGE_URL": ""}
        runtime.reset()
        yield port, demo_data["free"]


def test_a_reset_client_is_admitted_by_every_worker(served_as_operator):
    port, key = served_as_operator
    statuses = [get_status(port, key) for _ in range(BUDGET)]
    assert statuses.count(200) == BUDGET  # the budget, used up
    # Denied in every worker: each records the denial and answers the next ones itself.
    assert {get_status(port, key) for _ in range(10 * WORKERS)} == {429}

    reset_party(tenant="free-tenant")
    reset_at = time.monotonic()
    last_denied = None
    admitted = 0
    while time.monotonic() - reset_at < 2 * WITHIN_SECONDS and admitted < BUDGET - 2 * WORKERS:
        if get_status(port, key) == 429:
            last_denied = time.monotonic() - reset_at
        else:
            admitted += 1
        time.sleep(0.02)  # pacing, so that the budget lasts the whole observation
    print(f"after the reset: {admitted} admitted; last refused {last_denied} s after it")
    assert admitted >= 4 * WORKERS  # every worker admits the client again
    assert last_denied is None or last_denied < WITHIN_SECONDS
    # And in every worker from then on: the next requests are all admitted.
    assert {get_status(port, key) for _ in range(2 * WORKERS)} == {200}
