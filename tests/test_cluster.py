"""The demo under gunicorn (4 workers) on a real Redis Cluster, behind real Sentinel and
on Valkey: the promises that hold on one Redis hold there too (`make test-cluster`).

The test process shares the database with the workers and sets the limits before they
start; the counters are only ever reached through HTTP.
"""

import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from ratelimit_app.counters.base import BackendUnavailable
from ratelimit_app.models import EndpointGroup, Limit, Tier
from tests.gunicorn_support import serve_demo
from tests.topologies import client, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.services, pytest.mark.django_db(transaction=True)]
WORKERS = 4


def send(port, method, path, headers=None, body=None):
    """One request on a new connection: (status, headers)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def fire(port, requests, threads=32):
    """``requests`` (method, path, headers, body) sent from ``threads`` threads at once."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda r: send(port, *r), requests))


def key_headers(keys, address):
    return {"X-API-Key": keys["free"], "X-Forwarded-For": address}


def one_minute_limit_per_address():
    """100 a minute per address on /v1/* for the free tier (a fixed window: exact), and
    the per-key limit there out of the way (3 runs of 1,000 requests share the key)."""
    group, tier = EndpointGroup.objects.get(slug="standard"), Tier.objects.get(name="free")
    Limit.objects.update_or_create(
        group=group,
        tier=tier,
        scope="ip",
        period=60,
        defaults={"algorithm": "fixed_window", "rate": 100, "burst": None, "enabled": True},
    )
    Limit.objects.filter(group=group, tier=tier, scope="api_key").update(rate=100_000)


@pytest.fixture(params=["cluster", "sentinel", "valkey"])
def served(request, demo_data, settings):
    """The demo on the topology named by the parameter, with 100/min per address."""
    topology = request.getfixturevalue(
        {"cluster": "redis_cluster", "sentinel": "redis_sentinel", "valkey": "valkey_server"}[
            request.param
        ]
    )
    one_minute_limit_per_address()
    database = settings.DATABASES["default"]
    with serve_demo(database, workers=WORKERS, storage_url=topology.url) as (port, _pid, _url):
        yield port, demo_data, topology


def minute_of(topology):
    """The current minute on the topology's clock (Redis's TIME, as the scripts use)."""
    if hasattr(topology, "current_primary"):
        return client(topology.current_primary()).time()[0] // 60
    if hasattr(topology, "port"):
        return client(topology.port).time()[0] // 60
    return client(next(iter(topology.primaries()))).time()[0] // 60


def test_exactly_100_of_1000_concurrent_requests_at_100_a_minute(served):
    port, keys, topology = served
    for attempt in range(3):
        # One address per run (a run across a minute's edge leaves its count behind).
        # Its limits and the key's and tenant's are in different slots: a request denied
        # by the address's limit is refunded on the other shards.
        requests = [("GET", "/v1/status", key_headers(keys, f"198.51.100.{attempt + 1}"), None)]
        requests *= 1000
        before = minute_of(topology)
        statuses = [status for status, _headers in fire(port, requests)]
        if minute_of(topology) != before:
            continue  # a fixed window admits twice across its edge, by design
        assert statuses.count(200) == 100 and statuses.count(429) == 900, statuses
        return
    pytest.fail("three runs crossed a minute's edge")


def test_the_otp_endpoint_admits_1_of_200(served):
    port, keys, _topology = served
    requests = [
        ("POST", "/test", key_headers(keys, f"203.0.113.{i % 20 + 1}"), None) for i in range(200)
    ]
    statuses = [status for status, _headers in fire(port, requests)]
    assert statuses.count(201) == 1 and statuses.count(429) == 199


def test_five_failed_token_requests_ban_the_pair_for_600_seconds(served):
    port, _keys, _topology = served
    body = urlencode({"client_id": "demo-client", "client_secret": "a wrong guess"})
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-For": "192.0.2.55",
    }
    statuses = [send(port, "POST", "/connect/token", headers, body)[0] for _ in range(5)]
    assert statuses == [400] * 5
    status, answer = send(port, "POST", "/connect/token", headers, body)
    assert status == 429 and answer["Retry-After"] == "600"


def test_ten_thousand_clients_spread_over_the_shards(demo_data, settings, redis_cluster):
    """10,000 addresses, each a party of its own: no primary holds more than half of
    their keys (with one hash tag for all, one primary held every key)."""
    for port in redis_cluster.primaries():
        client(port).flushall()  # earlier tests' keys would expire meanwhile
    with serve_demo(
        settings.DATABASES["default"], workers=WORKERS, storage_url=redis_cluster.url
    ) as (port, _pid, _url):
        requests = [
            ("GET", "/v1/status", {"X-Forwarded-For": f"10.{i // 250}.{i % 250}.9"}, None)
            for i in range(10_000)
        ]
        statuses = [status for status, _headers in fire(port, requests, threads=16)]
    assert statuses.count(200) == 10_000
    added = redis_cluster.primaries()
    total = sum(added.values())
    print(f"\nkeys per primary after 10,000 clients: {sorted(added.values())}")
    assert total >= 10_000  # at least one key per address (one per limit on it)
    assert max(added.values()) <= total / 2, added


def test_after_a_flush_of_every_shard_no_worker_goes_on_denying_from_its_record(
    demo_data, settings, redis_cluster
):
    """A cluster's check answers do not carry the policy revision (it lives in a slot of
    its own): each worker's policy thread reads it every POLICY_REFRESH_INTERVAL (1 s), and
    on reading that the store lost its state, the worker forgets its record of denials.
    Before, a worker kept answering 429 from its record for the whole Retry-After (60 s
    at the OTP endpoint's 1 a minute) although the flush had taken the counters."""
    with serve_demo(
        settings.DATABASES["default"], workers=WORKERS, storage_url=redis_cluster.url
    ) as (port, _pid, _url):
        requests = [
            ("POST", "/test", key_headers(demo_data, f"203.0.113.{i % 20 + 1}"), None)
            for i in range(200)
        ]
        statuses = [status for status, _headers in fire(port, requests)]
        assert statuses.count(201) == 1  # every worker has seen the store deny since
        for port_of_primary in redis_cluster.primaries():
            client(port_of_primary).flushall()
        flushed_at = time.monotonic()

        def admitted_again():
            return send(port, "POST", "/test", key_headers(demo_data, "203.0.113.99"))[0] == 201

        # A service catching up, not a rate-limit window: a few policy-thread turns.
        wait_until(admitted_again, 5, "an admission after the flush")
    print(f"\nadmitted again {time.monotonic() - flushed_at:.2f} s after the flush", end="")


def test_a_killed_primary_costs_no_5xx_and_limiting_resumes(demo_data, settings):
    """kill -9 of one primary under load: no request fails, and every shard limits again
    within the cluster's node timeout plus two seconds (one shard's breaker does not stop
    the others, and the slot map is read again as soon as the failover is done)."""
    from tests.topologies import NODE_TIMEOUT_MS, Cluster

    cluster = Cluster().start_all()
    try:
        with serve_demo(
            settings.DATABASES["default"], workers=WORKERS, storage_url=cluster.url
        ) as (port, _pid, _url):
            report = _kill_primary_under_load(port, cluster)
    finally:
        cluster.stop()
    print(f"\ncluster failover: {report}", end="")
    assert_resumed(report, NODE_TIMEOUT_MS / 1000 + 2)


def test_counts_survive_on_the_promoted_replica(redis_cluster_to_kill):
    """Counts the replicas had acknowledged (WAIT) are there after the failover."""
    from ratelimit_app.counters.algorithms import FIXED_WINDOW, LimitSpec
    from tests.counters_support import make_backend, unique_key

    cluster = redis_cluster_to_kill
    backend = make_backend("cluster", cluster.url)
    specs = [LimitSpec(unique_key(f"p{i}"), FIXED_WINDOW, rate=10, period=3600) for i in range(30)]
    for _ in range(3):
        assert backend.check(specs).allowed
    for port in cluster.primaries():
        client(port).execute_command("WAIT", 1, 2000)
    cluster.kill(next(iter(cluster.primaries())))
    wait_until(lambda: len(cluster.primaries()) == 3 and cluster.healthy(), 30, "the failover")
    # A new client reads the new slot map (a live one's refresh is the HTTP test's).
    decision = make_backend("cluster", cluster.url).check(specs)
    assert [result.remaining for result in decision.results] == [10 - 4] * 30


@pytest.fixture
def redis_cluster_to_kill():
    """A cluster of this test's own (a primary of it is killed)."""
    from tests.topologies import Cluster

    cluster = Cluster().start_all()
    yield cluster
    cluster.stop()


def _kill_primary_under_load(port, cluster):
    victim = next(iter(cluster.primaries()))
    return _under_load(
        port, lambda: cluster.kill(victim), done=lambda: len(cluster.primaries()) == 3
    )


def _under_load(port, fault, done=lambda: True):
    """Requests from 60 addresses (their keys cover every shard) before and after
    ``fault``: how many failed, and how long until every one was limited again (its
    response carries X-RateLimit-Limit) once ``done`` holds."""
    addresses = [f"192.0.2.{i + 1}" for i in range(60)]

    def limited(address):
        status, headers = send(port, "GET", "/v1/status", {"X-Forwarded-For": address})
        return status, "X-RateLimit-Limit" in headers

    assert all(ok for _status, ok in map(limited, addresses))
    statuses, resumed_after, done_after = [], None, None
    fault()
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        while time.monotonic() - started < 30:
            answers = list(pool.map(limited, addresses))
            statuses += [status for status, _ok in answers]
            if done_after is None and done():
                done_after = time.monotonic() - started
            if done_after is not None and all(ok for _status, ok in answers):
                resumed_after = time.monotonic() - started
                break
    return {
        "requests": len(statuses),
        "5xx": sum(1 for s in statuses if s >= 500),
        "promoted_after": None if done_after is None else round(done_after, 2),
        "resumed_after": None if resumed_after is None else round(resumed_after, 2),
    }


def assert_resumed(report, promised):
    """No 5xx, and limiting back at most a second after the topology promoted a replica
    (the app's own part); ``promised`` (the issue's bound) is printed beside it, since
    the promotion's own time depends on the machine's load, not on the app."""
    print(f" (promised: within {promised} s)")
    assert report["5xx"] == 0
    assert report["resumed_after"] is not None, report
    assert report["resumed_after"] <= report["promoted_after"] + 1.0, report


def test_a_sentinel_failover_costs_no_5xx_and_limiting_resumes(demo_data, settings):
    """SENTINEL FAILOVER under load: no request fails, and limiting resumes within
    down-after plus two seconds on the promoted replica."""
    from tests.topologies import DOWN_AFTER_MS, SERVICE, SentinelSet

    sentinels = SentinelSet().start_all()
    try:
        with serve_demo(
            settings.DATABASES["default"], workers=WORKERS, storage_url=sentinels.url
        ) as (port, _pid, _url):
            old = sentinels.current_primary()
            report = _under_load(
                port,
                lambda: client(sentinels.sentinel_ports[0]).execute_command(
                    "SENTINEL", "FAILOVER", SERVICE
                ),
                done=lambda: sentinels.current_primary() != old,
            )
    finally:
        sentinels.stop()
    print(f"\nsentinel failover: {report}", end="")
    assert_resumed(report, DOWN_AFTER_MS / 1000 + 2)


def test_a_one_server_url_on_a_cluster_node_says_to_use_the_cluster_scheme(redis_cluster):
    """The issue's silent fail-open: redis:// pointed at a cluster node answered MOVED for
    most keys. It is still the store failing (FAILURE_MODE), but the message says why."""
    from ratelimit_app.counters.algorithms import GCRA, LimitSpec
    from tests.counters_support import make_backend, unique_key

    node = next(iter(redis_cluster.primaries()))
    backend = make_backend("valkey", f"redis://127.0.0.1:{node}/0")
    messages = set()
    for i in range(20):  # some of 20 parties' slots are on another node
        try:
            backend.check([LimitSpec(unique_key(f"n{i}"), GCRA, 60, 60, burst=5)])
        except BackendUnavailable as exc:
            messages.add(str(exc))
    assert messages and all("redis+cluster://" in message for message in messages)


@pytest.mark.parametrize("algorithm", ["gcra", "sliding_window", "fixed_window"])
def test_a_denial_on_one_shard_gives_back_what_the_others_charged(redis_cluster, algorithm):
    """Each limit in a slot of its own; the tight one denies: the others' counts are as
    they were, for every algorithm (refund.lua knows each one's state)."""
    from ratelimit_app.counters.algorithms import FIXED_WINDOW, US, LimitSpec
    from tests.counters_support import make_backend, unique_key

    backend = make_backend("cluster", redis_cluster.url)
    t0 = 1_800_000_000 * US + 30 * US  # inside every window below, not at an edge
    other = LimitSpec(unique_key("o"), algorithm, rate=10, period=60, burst=10)
    tight = LimitSpec(unique_key("t"), FIXED_WINDOW, rate=1, period=60)
    assert backend.check([other], now=t0).results[0].remaining == 9
    assert backend.check([tight, other], now=t0).allowed  # other: 8 left
    for second in range(1, 6):
        denied = backend.check([tight, other], now=t0 + second * US // 10)
        assert not denied.allowed
    # Five denials later, one more request leaves 7: none of them was kept.
    assert backend.check([other], now=t0 + US).results[0].remaining == 7
