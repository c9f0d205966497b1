"""The metrics under gunicorn with several workers (prometheus_client's multiprocess
mode), Redis and PostgreSQL: N requests of which D are refused raise the allowed and
denied counters by exactly N - D and D, summed over every worker, and no client
identifier appears anywhere in /metrics.

Slow (`make test-reliability`): the demo served as users run it.
"""

import concurrent.futures
import http.client
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ratelimit_app.models import EndpointGroup, Limit, Tier
from tests.factories import ApiKeyFactory, TenantFactory
from tests.gunicorn_support import serve_demo

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.django_db(transaction=True)]
WORKERS = 3
TOKEN = "scraper-token-0123456789abcdef"
BURST = 20  # a GCRA limit allows its burst at once from an empty state
REQUESTS = 60  # N; D = N - BURST are refused (the next one is allowed 180 s later)
GROUP = "metered"
LIMIT = f"{GROUP}-ip-3600s"
ADDRESS = "203.0.113.45"
PORTS = range(18100, 18200)  # the ports this machine lets these tests use


def free_ports(count):
    """``count`` ports of PORTS that nothing listens on now."""
    found = []
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    pytest.fail(f"no {count} free ports in {PORTS}")


def get(port, path, headers):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def scrape(port):
    status, body = get(port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    return body


def decisions(body, outcome):
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "ratelimit_decisions_total" and sample.labels == {
                "group": GROUP,
                "limit": LIMIT,
                "outcome": outcome,
            }:
                return sample.value
    return 0.0


@pytest.fixture
def metered_key(db):
    """/hello limited to a burst of BURST per address (GCRA, 1 an hour after the burst),
    and an API key of a tenant on that tier."""
    tier = Tier.objects.create(name="default", is_default=True)
    group = EndpointGroup.objects.create(slug=GROUP, name="Metered", path_patterns="/hello")
    Limit.objects.create(
        group=group, tier=tier, scope="ip", algorithm="gcra", rate=1, period=3600, burst=BURST
    )
    return ApiKeyFactory(tenant=TenantFactory(tier=tier))


def test_allowed_and_denied_rise_by_exactly_n_minus_d_and_d(metered_key, settings):
    multiproc_dir = tempfile.mkdtemp(prefix="ratelimit-metrics-")
    port, redis_port = free_ports(2)
    database = settings.DATABASES["default"]
    with serve_demo(
        database,
        workers=WORKERS,
        metrics=(multiproc_dir, TOKEN),
        port=port,
        redis_port=redis_port,
    ) as (port, _master, _redis):
        before = scrape(port)
        headers = {"X-Forwarded-For": ADDRESS, "X-API-Key": metered_key.secret}
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            replies = list(pool.map(lambda _: get(port, "/hello", headers), range(REQUESTS)))
        after = scrape(port)
        workers_recorded = {path.name for path in Path(multiproc_dir).glob("counter_*.db")}
    shutil.rmtree(multiproc_dir, ignore_errors=True)
    statuses = [status for status, _body in replies]
    refused = statuses.count(429)
    assert statuses.count(200) == BURST and refused == REQUESTS - BURST
    allowed_rise = decisions(after, "allowed") - decisions(before, "allowed")
    denied_rise = decisions(after, "denied") - decisions(before, "denied")
    print(f"{REQUESTS} requests, {refused} refused; allowed +{allowed_rise}, denied +{denied_rise}")
    print(f"metric files of {len(workers_recorded)} workers")
    assert allowed_rise == REQUESTS - refused
    assert denied_rise == refused
    # The figures are every worker's: more than one served the requests.
    assert len(workers_recorded) > 1
    forbidden = (
        ADDRESS,
        metered_key.secret,
        metered_key.prefix,
        metered_key.tenant.slug,
        metered_key.tenant.name,
    )
    assert not [value for value in forbidden if value in after]
