"""Refreshing the policy snapshot off the request path, and bans taken in by what changed.

A new ban must not cost every process a whole rebuild (an attacker makes one with five
bad token requests), and no request may wait for a rebuild: a background thread builds
the new snapshot beside the old one and swaps it in.
"""

import threading

import pytest

from ratelimit_app.models import CredentialBan, Limit
from ratelimit_app.policy import SnapshotHolder, revision
from ratelimit_app.policy import holder as holder_module
from tests.factories import (
    ApiKeyFactory,
    BanRuleFactory,
    CredentialBanFactory,
    EndpointGroupFactory,
    LimitFactory,
    TenantFactory,
    TierFactory,
)

pytestmark = pytest.mark.django_db
WAIT = 10  # seconds an event may take at most; a passing test never waits this long


@pytest.fixture
def builds(monkeypatch):
    """Count the holder's full builds."""
    counted = []
    build = holder_module.build_snapshot

    def counting_build(*args, **kwargs):
        counted.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(holder_module, "build_snapshot", counting_build)
    return counted


def test_a_new_ban_is_taken_in_without_a_rebuild(builds):
    LimitFactory()
    rule = BanRuleFactory()
    holder = SnapshotHolder()
    first = holder.get()
    assert builds == [1]
    ban = CredentialBanFactory(rule=rule)
    snapshot = holder.get()
    assert snapshot is first and builds == [1]  # the same snapshot, its bans updated
    assert snapshot.recorded_ban(ban.rule_id, ban.fingerprint) == ban.expires_at.timestamp()
    assert snapshot.revision == revision.current()


def test_a_lifted_ban_is_taken_in_by_a_process_that_did_not_lift_it(builds):
    from ratelimit_app.bans.rows import lift_bans

    ban = CredentialBanFactory()
    other_process = SnapshotHolder()
    assert other_process.get().recorded_ban(ban.rule_id, ban.fingerprint) is not None
    lift_bans(CredentialBan.objects.filter(pk=ban.pk))
    snapshot = other_process.get()
    assert snapshot.recorded_ban(ban.rule_id, ban.fingerprint) is None
    assert snapshot.lifted_at(ban.rule_id, ban.fingerprint) is not None
    assert builds == [1]


def test_an_extended_ban_row_is_taken_in_with_its_new_expiry(builds):
    ban = CredentialBanFactory()
    holder = SnapshotHolder()
    holder.get()
    later = ban.expires_at.replace(microsecond=0) + (ban.expires_at - ban.banned_at)
    ban.expires_at = later
    ban.save()  # as an operator editing the row in the admin
    assert holder.get().recorded_ban(ban.rule_id, ban.fingerprint) == later.timestamp()
    assert builds == [1]


def test_a_deleted_ban_row_rebuilds_so_its_ban_is_gone(builds):
    ban = CredentialBanFactory()
    holder = SnapshotHolder()
    holder.get()
    CredentialBan.objects.filter(pk=ban.pk).delete()
    assert holder.get().recorded_ban(ban.rule_id, ban.fingerprint) is None
    assert builds == [1, 1]


def test_a_policy_edit_after_bans_still_rebuilds(builds):
    limit = LimitFactory(rate=60)
    rule = BanRuleFactory()
    holder = SnapshotHolder()
    holder.get()
    CredentialBanFactory(rule=rule)
    holder.get()
    Limit.objects.filter(pk=limit.pk).update(rate=61)
    revision.bump()
    fresh = holder.get()
    assert [lim.rate for lims in fresh.tier_limits.values() for lim in lims] == [61]
    assert builds == [1, 1]


def test_a_revoked_key_leaves_the_snapshot_at_the_next_refresh():
    key = ApiKeyFactory()
    holder = SnapshotHolder()
    assert key.prefix in holder.get().api_keys
    key.revoked = True
    key.save()
    assert key.prefix not in holder.get().api_keys


def test_polling_learns_of_an_edit_from_the_store_without_any_request(settings, builds):
    """An idle process: its thread asks the store once per interval (here on a clock
    moved by hand: ``poll`` is one turn of the thread)."""
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "POLICY_REFRESH_INTERVAL": 1.0,
        "POLICY_FALLBACK_INTERVAL": 30.0,
    }
    limit = LimitFactory(rate=60)
    clock, published = [0.0], [revision.current()]
    holder = SnapshotHolder(clock=lambda: clock[0], read_remote=lambda: published[0])
    holder.get()
    clock[0] = 0.5
    holder.poll()
    assert builds == [1]  # the store told of no edit, the database was not asked
    limit.rate = 99
    limit.save()
    published[0] = revision.current()  # what the edit's publication does
    clock[0] = 1.0
    holder.poll()
    assert [lim.rate for lims in holder.snapshot.tier_limits.values() for lim in lims] == [99]


def turns_told(holder):
    """An event set at the end of each turn of the holder's thread. A test waits for the
    first turn (it reads the revision) to end before it edits: SQLite's in-memory
    database refuses a write while another connection reads the table ("database table
    is locked"), where PostgreSQL lets both go on."""
    done, real_poll = threading.Event(), holder.poll

    def poll():
        try:
            real_poll()
        finally:
            done.set()

    holder.poll = poll
    return done


@pytest.mark.django_db(transaction=True)
def test_requests_never_wait_for_a_rebuild(settings, monkeypatch, request):
    """A rebuild held up in the background thread: requests keep the old snapshot, at
    once, and get the new one when the thread has swapped it in."""
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH": "background"}
    limit = LimitFactory(rate=60)
    holder = SnapshotHolder()
    polled = turns_told(holder)
    first = holder.get()
    request.addfinalizer(holder.stop)
    assert polled.wait(WAIT)  # the thread's first turn is over before the edit
    release, building, built = threading.Event(), threading.Event(), threading.Event()
    build = holder_module.build_snapshot

    def slow_build(*args, **kwargs):
        building.set()
        assert release.wait(WAIT)
        snapshot = build(*args, **kwargs)
        built.set()
        return snapshot

    monkeypatch.setattr(holder_module, "build_snapshot", slow_build)
    limit.rate = 120
    limit.save()
    assert holder.get() is first  # the edit is due: the thread is woken, the request goes on
    assert building.wait(WAIT)
    for _ in range(50):
        assert holder.get() is first  # while the thread builds, requests use the old one
    release.set()
    assert built.wait(WAIT)
    deadline_checks = 0
    while holder.snapshot is first and deadline_checks < 10_000:
        deadline_checks += 1  # the swap follows the build at once
        threading.Event().wait(0.001)
    fresh = holder.get()
    assert fresh is not first
    assert [lim.rate for lims in fresh.tier_limits.values() for lim in lims] == [120]


@pytest.mark.django_db(transaction=True)
def test_the_process_that_edits_sees_its_edit_at_its_next_request(settings):
    """In background mode too: the edit's commit refreshes the editing process itself."""
    from ratelimit_app import runtime

    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH": "background"}
    runtime.reset()
    limit = LimitFactory(rate=60)
    holder = runtime.get_snapshot_holder()
    polled = turns_told(holder)
    try:
        holder.get()
        assert polled.wait(WAIT)  # the thread's first turn is over before the edit
        limit.rate = 61
        limit.save()  # autocommit: committed here
        rates = [lim.rate for lims in holder.get().tier_limits.values() for lim in lims]
        assert rates == [61]
    finally:
        holder.stop()


# -- one tenant changed: that tenant is read again, nothing else ----------------------


def _rates(snapshot, group, tenant):
    return [lim.rate for lim in snapshot.limits_for(group.slug, snapshot.tenants[tenant.pk], ())]


@pytest.fixture
def two_tenants():
    """Two tenants of one tier (300/min on its group), each overriding it."""
    group = EndpointGroupFactory(slug="admin")
    tier = TierFactory(name="free")
    LimitFactory(group=group, tier=tier, rate=300)
    edited, other = TenantFactory(tier=tier), TenantFactory(tier=tier)
    override = LimitFactory(group=group, tier=None, tenant=edited, rate=600)
    LimitFactory(group=group, tier=None, tenant=other, rate=900)
    return group, edited, other, override


def test_an_override_edit_rereads_its_tenant_and_shares_the_rest(builds, two_tenants):
    group, edited, other, override = two_tenants
    holder = SnapshotHolder()
    first = holder.get()
    others_limits = first.tenant_limits[other.pk]
    override.rate = 601
    override.save()
    fresh = holder.get()
    assert builds == [1]
    assert _rates(fresh, group, edited) == [601]
    assert fresh.tenant_limits[other.pk] is others_limits  # not read again
    assert _rates(first, group, edited) == [600]  # a request holding the old one goes on
    assert fresh.revision == revision.current()


def test_a_deleted_override_gives_its_tenant_the_tier_limit_again(builds, two_tenants):
    group, edited, other, override = two_tenants
    holder = SnapshotHolder()
    holder.get()
    override.delete()
    fresh = holder.get()
    assert builds == [1]
    assert (_rates(fresh, group, edited), _rates(fresh, group, other)) == ([300], [900])


def test_a_tenant_moved_to_another_tier_gets_that_tiers_limits(builds):
    group = EndpointGroupFactory(slug="admin")
    free, paid = TierFactory(name="free"), TierFactory(name="paid")
    LimitFactory(group=group, tier=free, rate=300)
    LimitFactory(group=group, tier=paid, rate=3000)
    tenant = TenantFactory(tier=free)
    holder = SnapshotHolder()
    holder.get()
    tenant.tier = paid
    tenant.save()
    fresh = holder.get()
    assert builds == [1]
    assert _rates(fresh, group, tenant) == [3000]


def test_keys_of_a_tenant_come_and_go_without_a_rebuild(builds):
    tenant = TenantFactory()
    kept = ApiKeyFactory(tenant=tenant)
    holder = SnapshotHolder()
    holder.get()
    added = ApiKeyFactory(tenant=tenant)
    assert {kept.prefix, added.prefix} <= set(holder.get().api_keys)
    added.revoked = True
    added.save()
    snapshot = holder.get()
    assert added.prefix not in snapshot.api_keys and kept.prefix in snapshot.api_keys
    tenant.active = False
    tenant.save()
    snapshot = holder.get()
    # Its keys stay known, so that its requests are refused as an inactive tenant's.
    assert snapshot.api_keys[kept.prefix].tenant_id == tenant.pk
    assert snapshot.tenants[tenant.pk].active is False
    assert builds == [1]


def test_a_new_tenant_and_a_renamed_one_are_taken_in(builds):
    tenant = TenantFactory(slug="before")
    holder = SnapshotHolder()
    holder.get()
    tenant.slug = "after"
    tenant.save()
    created = TenantFactory(slug="created", tier=tenant.tier)
    snapshot = holder.get()
    assert snapshot.tenant_slugs.get("after") == tenant.pk
    assert "before" not in snapshot.tenant_slugs
    assert snapshot.tenant_slugs.get("created") == created.pk
    assert builds == [1]


def test_an_override_moved_to_another_tenant_rebuilds(builds, two_tenants):
    # Two tenants change and only the new owner would be marked: the whole policy is read.
    group, edited, other, override = two_tenants
    holder = SnapshotHolder()
    holder.get()
    Limit.objects.filter(tenant=other).delete()
    builds.clear()
    holder.get()
    override.tenant = other
    override.save()
    fresh = holder.get()
    assert builds == [1]
    assert (_rates(fresh, group, edited), _rates(fresh, group, other)) == ([300], [600])


def test_a_tier_limit_edit_and_a_deleted_tenant_rebuild(builds, two_tenants):
    group, edited, other, _ = two_tenants
    holder = SnapshotHolder()
    holder.get()
    Limit.objects.filter(tier__isnull=False).update(rate=301)
    tier_limit = Limit.objects.get(tier__isnull=False)
    tier_limit.save()
    assert _rates(holder.get(), group, other) == [900]
    assert builds == [1, 1]
    gone = other.pk
    other.delete()
    snapshot = holder.get()
    assert builds == [1, 1, 1]
    assert gone not in snapshot.tenants and gone not in snapshot.tenant_limits
    assert _rates(snapshot, group, edited) == [600]
