"""What a snapshot build reads from the policy rows: the default tier, groups and their
patterns, enabled ban rules, bans in force and lifted (PostgreSQL's read path runs in
the services pass), limits in the models' order and shared alike, tenants' keys, and
one tenant read again. Expected values come from the models' definitions (DESIGN.md: a
snapshot is a frozen view of every enabled policy)."""

import datetime
import gc

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ratelimit_app import models
from ratelimit_app.policy import build_snapshot
from ratelimit_app.policy.build import apply_ban_rows, changed_tenants, with_tenants_reread
from ratelimit_app.policy.entries import LimitEntry
from ratelimit_app.policy.keys import lookup_api_key
from ratelimit_app.policy.snapshot import PolicySnapshot, fingerprint_key
from tests.factories import (
    ApiKeyFactory,
    BanRuleFactory,
    CredentialBanFactory,
    EndpointGroupFactory,
    LimitFactory,
    TenantFactory,
    TierFactory,
)

FINGERPRINTS = ["a" * 64, "b" * 64, "c" * 64, "d" * 64]


# -- a build ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_request_without_a_tenant_gets_the_default_tiers_limits():
    default, other = TierFactory(name="free", is_default=True), TierFactory(name="paid")
    group = EndpointGroupFactory(slug="web")
    LimitFactory(group=group, tier=default, scope="ip", rate=10, burst=None)
    LimitFactory(group=group, tier=other, scope="ip", rate=99, burst=None)
    snapshot = build_snapshot()
    assert snapshot.default_tier_id == default.pk
    assert [limit.rate for limit in snapshot.limits_for("web", None, ())] == [10]


@pytest.mark.django_db
def test_groups_patterns_and_header_styles_are_read_most_specific_pattern_first():
    EndpointGroupFactory(slug="api", path_patterns="/v1/*", reset_style="unix")
    EndpointGroupFactory(slug="special", path_patterns="/v1/special", headers_describe="largest")
    EndpointGroupFactory(slug="all", applies_to_all=True, path_patterns="/v1/*")
    snapshot = build_snapshot()
    assert snapshot.groups == {"api": False, "special": False, "all": True}
    assert snapshot.header_style("api") == ("unix", "tightest")
    assert snapshot.header_style("special") == ("", "largest")
    assert snapshot.route("/v1/special") == ("special", ("all",))
    assert snapshot.route("/v1/other") == ("api", ("all",))


@pytest.mark.django_db
def test_only_enabled_ban_rules_are_read_with_no_query_per_rule():
    def rules_built():
        with CaptureQueriesContext(connection) as captured:
            snapshot = build_snapshot()
        return snapshot, len(captured)

    token = EndpointGroupFactory(slug="token")
    BanRuleFactory(name="on", group=token)
    BanRuleFactory(name="off", group=token, enabled=False)
    snapshot, one_rule = rules_built()
    assert [(rule.name, rule.group) for rule in snapshot.ban_rules] == [("on", "token")]
    for n in range(3):
        BanRuleFactory(name=f"more {n}", group=EndpointGroupFactory(slug=f"g{n}"))
    snapshot, four_rules = rules_built()
    assert len(snapshot.ban_rules) == 4 and four_rules == one_rule


@pytest.mark.django_db
def test_a_ban_whose_fingerprint_is_not_hex_is_kept_as_written():
    """A ban row written by hand (not by the app's keyed hash) is still a ban in force."""
    rule = BanRuleFactory()
    ban = CredentialBanFactory(rule=rule, fingerprint="written-by-hand")
    snapshot = build_snapshot()
    assert snapshot.recorded_ban(rule.pk, "written-by-hand") == ban.expires_at.timestamp()
    assert snapshot.bans[rule.pk] == {"written-by-hand": ban.expires_at.timestamp()}


@pytest.mark.django_db
def test_a_build_reads_bans_in_force_lifted_bans_that_would_still_run_and_no_other():
    rule = BanRuleFactory()
    now = timezone.now()
    later, sooner = now + datetime.timedelta(seconds=600), now + datetime.timedelta(seconds=100)
    active, lifted, expired, renewed = FINGERPRINTS
    CredentialBanFactory(rule=rule, fingerprint=active, expires_at=later)
    lifted_at = now - datetime.timedelta(seconds=5)
    CredentialBanFactory(rule=rule, fingerprint=lifted, expires_at=later, lifted_at=lifted_at)
    CredentialBanFactory(rule=rule, fingerprint=expired, expires_at=now)
    # A pair banned again after a lift: the new ban stands, the lift is remembered.
    CredentialBanFactory(rule=rule, fingerprint=renewed, expires_at=sooner, lifted_at=lifted_at)
    CredentialBanFactory(rule=rule, fingerprint=renewed, expires_at=later)
    CredentialBanFactory(rule=None, fingerprint=active, expires_at=later)  # a deleted rule's
    snapshot = build_snapshot(now=now)
    assert snapshot.recorded_ban(rule.pk, active) == later.timestamp()
    assert snapshot.recorded_ban(rule.pk, lifted) is None
    assert snapshot.lifted_at(rule.pk, lifted) == lifted_at.timestamp()
    assert snapshot.recorded_ban(rule.pk, expired) is None
    assert snapshot.recorded_ban(rule.pk, renewed) == later.timestamp()
    assert snapshot.lifted_at(rule.pk, renewed) == lifted_at.timestamp()
    assert snapshot.ban_count() == 2 and list(snapshot.bans) == [rule.pk]


@pytest.mark.django_db
def test_bans_in_force_are_those_of_the_builds_own_time():
    rule = BanRuleFactory()
    now = timezone.now()
    ban = CredentialBanFactory(rule=rule, expires_at=now + datetime.timedelta(seconds=1))
    earlier = build_snapshot(now=now - datetime.timedelta(seconds=10))
    assert earlier.recorded_ban(rule.pk, ban.fingerprint) == ban.expires_at.timestamp()
    assert build_snapshot(now=now + datetime.timedelta(seconds=10)).ban_count() == 0


def test_a_build_leaves_the_garbage_collector_as_it_found_it(db):
    assert gc.isenabled()
    build_snapshot()
    assert gc.isenabled()
    gc.disable()
    try:
        build_snapshot()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_ban_rows_taken_in_one_by_one_end_a_lift_and_skip_deleted_rules():
    snapshot = PolicySnapshot()
    now = timezone.now()
    expires, lifted_at = now + datetime.timedelta(seconds=600), now
    fingerprint = FINGERPRINTS[0]
    apply_ban_rows(
        snapshot,
        [
            (None, FINGERPRINTS[1], expires, None, now),  # its rule was deleted
            (4, fingerprint, expires, lifted_at, now),  # lifted
            (4, fingerprint, expires, None, now),  # banned again
        ],
    )
    assert snapshot.recorded_ban(4, fingerprint) == expires.timestamp()
    assert snapshot.lifted_at(4, fingerprint) is None  # the new ban ends what the lift said
    assert list(snapshot.bans) == [4] and snapshot.ban_count() == 1
    assert snapshot.bans[4] == {fingerprint_key(fingerprint): expires.timestamp()}


@pytest.mark.django_db
def test_user_limits_are_known_from_a_tier_whatever_a_tenant_reread_finds():
    tenant = TenantFactory()
    group = EndpointGroupFactory(slug="web")
    LimitFactory(group=group, tier=tenant.tier, scope="ip", rate=5, burst=None)
    assert build_snapshot().has_user_limits is False
    LimitFactory(group=group, tier=tenant.tier, scope="user", rate=5, burst=None)
    held = build_snapshot()
    assert held.has_user_limits is True
    LimitFactory(group=group, tier=None, tenant=tenant, scope="ip", rate=5, burst=None)
    assert with_tenants_reread(held, [tenant.pk]).has_user_limits is True


@pytest.mark.django_db
def test_equal_limits_are_one_entry_and_a_bad_row_skips_only_itself(caplog):
    tier = TierFactory()
    group = EndpointGroupFactory(slug="web")
    bad = LimitFactory(group=group, tier=tier, scope="user", rate=5, period=60, burst=None)
    models.Limit.objects.filter(pk=bad.pk).update(rate=0)  # written around validation
    tenants = [TenantFactory(tier=tier) for _ in range(2)]
    for tenant in tenants:
        LimitFactory(group=group, tier=None, tenant=tenant, scope="ip", rate=7, burst=None)
    LimitFactory(group=group, tier=tier, scope="ip", rate=7, burst=None)
    snapshot = build_snapshot()
    first, second = (snapshot.overrides("web", tenant.pk) for tenant in tenants)
    assert first == second == (LimitEntry("web", "ip", "gcra", 7, 60, 7, False),)
    # The tier's row has the same values as the overrides: one entry for all three.
    (tiers,) = snapshot.tier_limits[("web", tier.pk)]
    assert first[0] is second[0] is tiers


@pytest.mark.django_db
def test_equal_numbers_in_two_groups_are_two_entries_each_in_its_group():
    tier = TierFactory()
    for slug in ("web", "api"):
        group = EndpointGroupFactory(slug=slug)
        LimitFactory(group=group, tier=tier, scope="ip", rate=7, period=60, burst=None)
    snapshot = build_snapshot()
    assert [limit.group for limit in snapshot.tier_limits[("web", tier.pk)]] == ["web"]
    assert [limit.group for limit in snapshot.tier_limits[("api", tier.pk)]] == ["api"]


@pytest.mark.django_db
def test_limits_are_in_the_models_order_not_the_values_order():
    """models.Limit orders by scope then period: a minute's limit before an hour's, whatever
    the algorithm's name."""
    tenant = TenantFactory()
    group = EndpointGroupFactory(slug="web")
    for owner in ({"tier": tenant.tier}, {"tier": None, "tenant": tenant}):
        LimitFactory(group=group, **owner, scope="ip", algorithm="sliding_window", period=60)
        LimitFactory(group=group, **owner, scope="ip", algorithm="fixed_window", period=3600)
    snapshot = build_snapshot()
    assert [limit.period for limit in snapshot.tier_limits[("web", tenant.tier.pk)]] == [60, 3600]
    assert [limit.period for limit in snapshot.overrides("web", tenant.pk)] == [60, 3600]


@pytest.mark.django_db
def test_a_tenants_keys_are_read_with_their_ids_and_hashes():
    tenant = TenantFactory()
    keys = [ApiKeyFactory(tenant=tenant) for _ in range(2)]
    snapshot = build_snapshot()
    for key in keys:
        entry = snapshot.api_keys[key.prefix]
        assert (entry.id, entry.hashed_secret, entry.tenant_id) == (
            key.pk,
            key.hashed_secret,
            tenant.pk,
        )
    assert sorted(snapshot.tenant_keys[tenant.pk]) == sorted(key.prefix for key in keys)


@pytest.mark.django_db
def test_a_tenant_reread_shares_every_other_tenants_entries():
    edited, untouched = TenantFactory(), TenantFactory()
    held = build_snapshot()
    since = held.revision
    edited.name = "renamed"
    edited.save()
    assert changed_tenants(since) == [edited.pk]
    fresh = with_tenants_reread(held, [edited.pk])
    assert fresh.tenants[untouched.pk] is held.tenants[untouched.pk]
    assert fresh.tenants[edited.pk] is not held.tenants[edited.pk]


@pytest.mark.django_db
def test_a_key_the_snapshot_lacks_is_looked_up_by_its_own_prefix():
    first, second = ApiKeyFactory(), ApiKeyFactory()
    snapshot = PolicySnapshot()  # built before either key was made
    found = lookup_api_key(second.prefix, snapshot)
    assert (found.id, found.tenant_id) == (second.pk, second.tenant_id)
    assert lookup_api_key("nosuchprefix", snapshot) is None
    assert lookup_api_key(first.prefix, snapshot).id == first.pk
