"""The policy snapshot: overrides, no queries per request, edits seen within a second."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ratelimit_app.models import Limit
from ratelimit_app.policy import SnapshotHolder, build_snapshot
from tests.factories import EndpointGroupFactory, LimitFactory, TenantFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


def test_tenant_override_replaces_the_tier_limit_of_the_same_scope_and_period():
    tenant = TenantFactory()
    group = EndpointGroupFactory(slug="admin")
    LimitFactory(group=group, tier=tenant.tier, rate=300, burst=50)
    LimitFactory(
        group=group,
        tier=tenant.tier,
        algorithm="sliding_window",
        burst=None,
        rate=9000,
        period=3600,
    )
    LimitFactory(group=group, tier=None, tenant=tenant, rate=600, burst=100)
    other = TenantFactory(tier=tenant.tier)
    snapshot = build_snapshot()
    entry = snapshot.tenants[tenant.pk]
    limits = {(lim.period, lim.rate) for lim in snapshot.limits_for("admin", entry)}
    assert limits == {(60, 600), (3600, 9000)}
    assert {lim.rate for lim in snapshot.limits_for("admin", snapshot.tenants[other.pk])} == {
        300,
        9000,
    }


def test_tenants_with_equal_overrides_share_one_mapping_and_keep_their_own_numbers():
    # Ten thousand tenants overriding alike must not cost ten thousand copies, and the
    # sharing must never hand one tenant another's numbers.
    tier = TenantFactory().tier
    admin, web = EndpointGroupFactory(slug="admin"), EndpointGroupFactory(slug="web")
    LimitFactory(group=admin, tier=tier, rate=300, burst=50)
    alike = [TenantFactory(tier=tier) for _ in range(3)]
    for tenant in alike:
        LimitFactory(group=admin, tier=None, tenant=tenant, rate=600, burst=100)
        LimitFactory(group=web, tier=None, tenant=tenant, rate=30, burst=None)
    apart = TenantFactory(tier=tier)
    LimitFactory(group=admin, tier=None, tenant=apart, rate=601, burst=100)
    snapshot = build_snapshot()
    mappings = {id(snapshot.tenant_limits[tenant.pk]) for tenant in alike}
    assert len(mappings) == 1
    assert snapshot.tenant_limits[apart.pk] is not snapshot.tenant_limits[alike[0].pk]
    for tenant in alike:
        entry = snapshot.tenants[tenant.pk]
        assert [lim.rate for lim in snapshot.limits_for("admin", entry, ())] == [600]
        assert [lim.rate for lim in snapshot.limits_for("web", entry, ())] == [30]
    entry = snapshot.tenants[apart.pk]
    assert [lim.rate for lim in snapshot.limits_for("admin", entry, ())] == [601]
    assert snapshot.limits_for("web", entry, ()) == ()


def test_global_groups_add_their_limits_to_every_group():
    tenant = TenantFactory()
    own = EndpointGroupFactory(slug="own")
    everything = EndpointGroupFactory(slug="all", applies_to_all=True)
    LimitFactory(group=own, tier=tenant.tier)
    LimitFactory(group=everything, tier=tenant.tier, scope="ip", rate=5)
    snapshot = build_snapshot()
    scopes = [lim.scope for lim in snapshot.limits_for("own", snapshot.tenants[tenant.pk])]
    assert scopes == ["tenant", "ip"]


def test_steady_state_makes_no_query(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 1.0}
    LimitFactory()
    clock = [0.0]
    holder = SnapshotHolder(clock=lambda: clock[0])
    holder.get()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            clock[0] += 0.001
            holder.get()
    assert len(queries) == 0


def test_edit_is_seen_after_the_interval_with_one_query_when_nothing_changed(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 1.0}
    limit = LimitFactory(rate=60)
    clock = [0.0]
    holder = SnapshotHolder(clock=lambda: clock[0])
    first = holder.get()
    clock[0] = 1.0
    with CaptureQueriesContext(connection) as queries:
        assert holder.get() is first
    assert len(queries) == 1  # only the revision number
    limit.rate = 120
    limit.save()
    clock[0] = 1.5
    assert holder.get() is first  # within the interval
    clock[0] = 2.0
    fresh = holder.get()
    assert fresh is not first
    assert [lim.rate for lims in fresh.tier_limits.values() for lim in lims] == [120]


WATCHER = """
import os, time
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
from ratelimit_app.policy import SnapshotHolder
holder = SnapshotHolder()  # the default refresh interval: 1 s
def rates():
    return sorted(lim.rate for lims in holder.get().tier_limits.values() for lim in lims)
print("start", rates(), flush=True)
deadline = time.monotonic() + 20
while time.monotonic() < deadline and 777 not in rates():
    time.sleep(0.005)
print("seen", time.monotonic(), flush=True)
"""


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_edit_reaches_another_process_within_about_a_second():
    limit = LimitFactory(rate=60)
    env = {**os.environ, "RATELIMIT_TEST_STACK": "services"}
    from django.conf import settings

    env["DATABASE_URL"] = _database_url(settings.DATABASES["default"])
    watcher = subprocess.Popen(
        [sys.executable, "-c", WATCHER], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert watcher.stdout.readline().startswith("start [60]")
        limit.rate = 777
        limit.save()
        saved_at = time.monotonic()
        line = watcher.stdout.readline()
        assert line.startswith("seen"), line
        delay = float(line.split()[1]) - saved_at
        print(f"edit seen by another process after {delay:.3f} s")
        assert delay < 1.5
    finally:
        watcher.kill()
        watcher.wait()


def _database_url(db):
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def test_a_limit_written_around_validation_is_skipped_not_a_500(caplog):
    good = LimitFactory(rate=60)
    bad = LimitFactory(group=good.group, tier=good.tier, period=3600, rate=60)
    Limit.objects.filter(pk=bad.pk).update(rate=10**9)  # around full_clean()
    snapshot = build_snapshot()
    kept = [(lim.rate, lim.period) for lims in snapshot.tier_limits.values() for lim in lims]
    assert kept == [(good.rate, good.period)]
    assert f"Limit {bad.pk} is skipped" in caplog.text


def test_every_catalogue_limit_can_be_counted():
    from ratelimit_app.catalog import load_catalog

    load_catalog()
    for limit in Limit.objects.all():
        limit.full_clean()
    snapshot = build_snapshot()
    assert sum(map(len, snapshot.tier_limits.values())) == Limit.objects.count()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_redis_carries_the_revision_so_requests_make_no_query_and_edits_arrive_at_once(
    client, demo_data, settings
):
    """With Redis every check returns the policy revision: the database is asked only
    every POLICY_FALLBACK_INTERVAL, and an edit is seen by the very next request."""
    import redis as redis_lib

    from ratelimit_app import runtime
    from ratelimit_app.models import Limit
    from ratelimit_app.policy import revision

    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "POLICY_REFRESH_INTERVAL": 1.0,
        "POLICY_FALLBACK_INTERVAL": 30.0,
    }
    key = {"HTTP_AUTHORIZATION": f"Bearer {demo_data['free']}"}
    clock = [0.0]
    runtime.get_snapshot_holder().clock = lambda: clock[0]
    runtime.publish_revision(revision.current())
    client.get("/acp/developer/ping", **key)  # snapshot built, remote revision seen
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            clock[0] += 0.5  # ten seconds: ten database polls without the revision
            assert client.get("/acp/developer/ping", **key).status_code == 200
    assert len(queries) == 0
    limit = Limit.objects.get(tier__name="free", group__slug="developer", algorithm="gcra")
    limit.burst = 7
    limit.save()  # commits, then publishes the new revision to Redis
    server = redis_lib.Redis.from_url(settings.REDIS_URL)
    published = server.get(runtime.get_backend().backend.revision_key)
    assert int(published) == revision.current()
    client.get("/acp/developer/ping", **key)  # this check learns of the new revision
    reply = client.get("/acp/developer/ping", **key)  # and this one uses it
    assert reply["X-RateLimit-Limit"] == "7"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_lost_revision_is_published_again_after_a_flush(client, demo_data, settings):
    import redis as redis_lib

    from ratelimit_app import runtime
    from ratelimit_app.policy import revision

    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "POLICY_REFRESH_INTERVAL": 1.0,
        "POLICY_FALLBACK_INTERVAL": 30.0,
    }
    server = redis_lib.Redis.from_url(settings.REDIS_URL)
    key = {"HTTP_AUTHORIZATION": f"Bearer {demo_data['free']}"}
    client.get("/v1/status", **key)
    revision_key = runtime.get_backend().backend.revision_key
    server.delete(revision_key)  # as after FLUSHDB or a restart
    client.get("/v1/status", **key)  # learns the store has none, and publishes ours
    assert int(server.get(revision_key)) == revision.current()


def current_revision():
    from ratelimit_app.policy import revision

    return revision.current()


def test_a_burst_of_revisions_costs_one_rebuild_per_interval(settings):
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "POLICY_REFRESH_INTERVAL": 1.0,
        "POLICY_FALLBACK_INTERVAL": 30.0,
    }
    LimitFactory()
    clock = [0.0]
    holder = SnapshotHolder(clock=lambda: clock[0])
    holder.get()
    rebuilt = []
    for step in range(1, 45):  # a newer revision every 50 ms, as bans during an attack
        clock[0] = step * 0.05
        LimitFactory()  # an edit: the database moves on, and Redis tells of it
        holder.note_remote_revision(current_revision())
        before = holder.snapshot
        with CaptureQueriesContext(connection) as queries:
            holder.get()
        if holder.snapshot is not before:
            rebuilt.append((clock[0], len(queries)))
    assert [round(at, 1) for at, _ in rebuilt] == [1.0, 2.0]  # once a second, not 44 times


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_requests_are_served_and_limited_while_the_database_refuses(
    client, demo_data, settings, caplog, clock
):
    """PostgreSQL refusing connections (a real refusal: the connection is pointed at a
    port where nothing listens) must not turn requests into 500s: the last good
    snapshot keeps limiting, the failure is logged once and retried with backoff."""
    from django.db import connections

    from ratelimit_app import runtime
    from ratelimit_app.policy import revision
    from tests.services import free_port

    key = {"HTTP_X_API_KEY": demo_data["free"]}  # the clock stands still: no refill
    assert client.get("/acp/admin/ping", **key)["X-RateLimit-Limit"] == "50"
    # A newer revision in the store: every check now asks for a rebuild.
    runtime.publish_revision(revision.current() + 1)
    database = connections["default"]
    real_port = database.settings_dict["PORT"]
    database.close()
    database.settings_dict["PORT"] = str(free_port())
    try:
        with caplog.at_level("WARNING", logger="ratelimit_app"):
            replies = [client.get("/acp/admin/ping", **key) for _ in range(60)]
            missing = client.get("/no/such/page", **key)
    finally:
        database.close()
        database.settings_dict["PORT"] = real_port
    assert [r.status_code for r in replies] == [200] * 49 + [429] * 11  # 50 with the first
    assert replies[0]["X-RateLimit-Limit"] == "50"  # the admin group's burst, still applied
    assert missing.status_code == 404
    assert caplog.text.count("Policy snapshot not refreshed") == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_published_revision_never_goes_backwards(client, demo_data, settings):
    """A process with an old snapshot, after a flush, publishes the database's revision,
    not its own; and a late publication of an older number changes nothing."""
    import redis as redis_lib
    from django.db.models import F

    from ratelimit_app import runtime
    from ratelimit_app.models import PolicyRevision
    from ratelimit_app.policy import revision

    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "POLICY_REFRESH_INTERVAL": 1.0,
        "POLICY_FALLBACK_INTERVAL": 30.0,
    }
    server = redis_lib.Redis.from_url(settings.REDIS_URL)
    key = {"HTTP_AUTHORIZATION": f"Bearer {demo_data['free']}"}
    client.get("/v1/status", **key)  # this process's snapshot: the current revision
    old = runtime.get_snapshot().revision
    # Another process's edit, whose publication this process never saw.
    PolicyRevision.objects.filter(pk=1).update(number=F("number") + 5)
    revision_key = runtime.get_backend().backend.revision_key
    server.delete(revision_key)  # a flush
    client.get("/v1/status", **key)  # the store has none: the latest is published
    assert int(server.get(revision_key)) == revision.current() == old + 5
    runtime.publish_revision(old)  # a late, older publication
    assert int(server.get(revision_key)) == old + 5


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_client_denied_from_memory_is_let_in_once_the_store_lost_its_counters(
    client, demo_data, settings, clock
):
    """Local records of denied clients mirror counters in Redis: a flush (or a restart)
    resets those counters, so the records go too."""
    import redis as redis_lib

    from ratelimit_app import runtime
    from ratelimit_app.conf import get_config

    key = {"HTTP_X_API_KEY": demo_data["free"]}  # the clock stands still: no refill
    statuses = [client.get("/acp/admin/ping", **key).status_code for _ in range(51)]
    assert statuses == [200] * 50 + [429]  # the admin group's free burst: 50
    assert len(runtime.get_denials()) == 1  # answered from memory from now on
    server = redis_lib.Redis.from_url(settings.REDIS_URL)
    server.delete(*server.scan_iter(f"{get_config()['KEY_PREFIX']}:*"))  # a flush
    # Any client's next check tells this process that the store lost its state.
    assert client.get("/v1/status", REMOTE_ADDR="192.0.2.9").status_code == 200
    reply = client.get("/acp/admin/ping", **key)
    assert reply.status_code == 200
    assert reply["X-RateLimit-Remaining"] == "49"  # a fresh counter: one of 50 used


def test_limits_keep_the_models_order_whatever_order_the_rows_come_in():
    """Built without ORDER BY (faster at scale): the snapshot sorts by scope, then period."""
    tenant = TenantFactory()
    group = EndpointGroupFactory(slug="ordered")
    for scope, period in [("tenant", 3600), ("ip", 60), ("tenant", 60), ("ip", 3600)]:
        LimitFactory(group=group, tier=tenant.tier, scope=scope, period=period, rate=5, burst=None)
    snapshot = build_snapshot()
    limits = snapshot.limits_for("ordered", snapshot.tenants[tenant.pk])
    assert [(lim.scope, lim.period) for lim in limits] == [
        ("ip", 60),
        ("ip", 3600),
        ("tenant", 60),
        ("tenant", 3600),
    ]


def test_a_ban_with_a_hand_written_fingerprint_is_still_found():
    from tests.factories import CredentialBanFactory

    hexadecimal = CredentialBanFactory()
    by_hand = CredentialBanFactory(rule=hexadecimal.rule, fingerprint="not-hex:written-by-hand")
    snapshot = build_snapshot()
    for ban in (hexadecimal, by_hand):
        assert snapshot.recorded_ban(ban.rule_id, ban.fingerprint) == ban.expires_at.timestamp()
    assert snapshot.recorded_ban(hexadecimal.rule_id, "0" * 64) is None
