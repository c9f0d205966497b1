"""From policy rows to the snapshot's entries: every field of a ban rule and a limit, the
snapshot's lookups and memos, what a build reads (default tier, enabled rules, bans in
force and lifted), and the revision's numbers. Expected values come from the models'
definitions (DESIGN.md: a snapshot is a frozen view of every enabled policy)."""

import datetime
import gc
import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ratelimit_app import bounded, models
from ratelimit_app.models.policies import limit_problem
from ratelimit_app.policy import build_snapshot, revision
from ratelimit_app.policy.build import apply_ban_rows, changed_tenants, with_tenants_reread
from ratelimit_app.policy.entries import LimitEntry, ban_rule_entry, limit_entry
from ratelimit_app.policy.keys import lookup_api_key
from ratelimit_app.policy.snapshot import DEFAULT_HEADER_STYLE, PolicySnapshot, fingerprint_key
from ratelimit_app.signals import policy_revised
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


# -- entries ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_ban_rule_entry_carries_every_field_of_its_rule():
    rule = BanRuleFactory(
        name="token guard",
        group=EndpointGroupFactory(slug="token"),
        path="/o/token/",
        methods="post, put",
        failure_statuses="400,401",
        threshold=7,
        window=120,
        cooldown=900,
        extend_on_attempt=True,
        reset_on_success=True,
        client_id_threshold=20,
        ip_threshold=50,
        counted_by="client_authentication",
    )
    entry = ban_rule_entry(rule)
    assert (entry.id, entry.group, entry.name, entry.counted_by) == (
        rule.pk,
        "token",
        "token guard",
        "client_authentication",
    )
    assert (entry.methods, entry.statuses) == (frozenset({"POST", "PUT"}), frozenset({400, 401}))
    assert (entry.threshold, entry.window, entry.cooldown) == (7, 120, 900)
    assert (entry.extend_on_attempt, entry.reset_on_success) == (True, True)
    assert (entry.client_id_threshold, entry.ip_threshold) == (20, 50)
    assert entry.pattern.match("/o/token") and not entry.pattern.match("/o/authorize")
    assert not entry.counts_statuses


@pytest.mark.django_db
def test_a_rule_without_group_or_path_has_neither_and_its_defaults():
    bare = ban_rule_entry(BanRuleFactory(path=""))
    # models.BanRule's defaults: POST, 400, 5 failures in 600 s ban for 600 s.
    assert (bare.group, bare.pattern) == (None, None)
    assert (bare.methods, bare.statuses) == (frozenset({"POST"}), frozenset({400}))
    assert (bare.threshold, bare.window, bare.cooldown) == (5, 600, 600)
    assert (bare.extend_on_attempt, bare.reset_on_success) == (False, False)
    assert (bare.client_id_threshold, bare.ip_threshold, bare.counted_by) == (None, None, "status")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "rule_path, rule_group, method, path, groups, watched",
    [
        ("/connect/token", None, "POST", "/connect/token", (None, None), True),
        ("/connect/token", None, "GET", "/connect/token", (None, None), False),
        ("/connect/token", None, "POST", "/elsewhere", (None, None), False),
        ("/connect/token", None, "POST", "/elsewhere", ("token", None), False),
        ("", "token", "POST", "/elsewhere", ("web", "token"), True),
        ("", "token", "POST", "/connect/token", ("web", None), False),
        ("", "token", "GET", "/elsewhere", ("token", "token"), False),
        ("/connect/token", "token", "POST", "/elsewhere", ("token", None), True),
    ],
)
def test_a_rule_watches_its_methods_on_its_path_or_in_its_group(
    rule_path, rule_group, method, path, groups, watched
):
    group = EndpointGroupFactory(slug=rule_group) if rule_group else None
    entry = ban_rule_entry(BanRuleFactory(path=rule_path, group=group))
    assert entry.watches(method, path, groups) is watched


@pytest.mark.parametrize(
    "algorithm, burst, kept_burst",
    [
        ("gcra", None, 30),  # GCRA without a burst: the rate (Limit.effective_burst)
        ("gcra", 7, 7),
        ("sliding_window", 7, None),  # windows have no burst
        ("fixed_window", 7, None),
    ],
)
def test_a_limit_entry_keeps_its_values_and_a_burst_for_gcra_only(algorithm, burst, kept_burst):
    entry = limit_entry(3, "web", "ip", algorithm, 30, 60, burst, True)
    assert entry == LimitEntry("web", "ip", algorithm, 30, 60, kept_burst, True)
    assert entry.shadow is True


def test_a_limit_that_cannot_be_counted_is_skipped_and_logged(caplog):
    problem = limit_problem("gcra", 0, 60)
    assert problem  # a rate of 0 counts nothing
    with caplog.at_level(logging.ERROR, logger="ratelimit_app"):
        assert limit_entry(7, "web", "ip", "gcra", 0, 60, None, False) is None
    assert [r.getMessage() for r in caplog.records] == [f"Limit 7 is skipped: {problem}."]


# -- the snapshot's lookups and memos ---------------------------------------------------


def test_header_style_is_the_groups_own_else_the_default():
    snapshot = PolicySnapshot(group_headers={"web": ("unix", "largest")})
    assert snapshot.header_style("web") == ("unix", "largest")
    assert snapshot.header_style("other") == snapshot.header_style(None) == DEFAULT_HEADER_STYLE
    # A request with no group never takes a group's style, whatever the group's slug.
    odd = PolicySnapshot(group_headers={"XXXX": ("unix", "largest")})
    assert odd.header_style(None) == DEFAULT_HEADER_STYLE
    assert DEFAULT_HEADER_STYLE == ("", "tightest")  # the setting's reset, the tightest limit


def test_ban_count_counts_every_rules_bans_and_lifted_at_needs_no_lifts():
    bans = {1: {b"a": 1.0, b"b": 2.0}, 2: {b"c": 3.0}}
    snapshot = PolicySnapshot(bans=bans)
    assert snapshot.ban_count() == 3
    assert snapshot.lifted_at(1, "a" * 64) is None


def test_a_routed_path_is_remembered_unless_longer_than_a_cache_key():
    snapshot = PolicySnapshot()
    at_bound = "/" + "p" * (bounded.MAX_KEY_LENGTH - 1)
    over = at_bound + "p"
    assert snapshot.route("/v1/x") is snapshot.route("/v1/x")
    assert snapshot.route(at_bound) is snapshot.route(at_bound)
    assert snapshot.route(over) is not snapshot.route(over)  # hostile: computed each time
    assert snapshot.route(over) == (None, ())


@pytest.mark.django_db
def test_limits_for_is_memoized_and_adds_only_the_groups_on_top_it_is_given():
    tier = TierFactory(is_default=True)
    own = EndpointGroupFactory(slug="own")
    everything = EndpointGroupFactory(slug="all", applies_to_all=True)
    LimitFactory(group=own, tier=tier, scope="ip", rate=5, burst=None)
    LimitFactory(group=everything, tier=tier, scope="ip", rate=9, burst=None)
    snapshot = build_snapshot()
    anonymous = snapshot.limits_for("own", None)
    assert snapshot.limits_for("own", None) is anonymous
    assert [limit.rate for limit in anonymous] == [5, 9]  # None: every group on top
    assert [limit.rate for limit in snapshot.limits_for("own", None, ())] == [5]
    assert [limit.rate for limit in snapshot.limits_for("own", None, ("all",))] == [5, 9]


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


# -- the revision -------------------------------------------------------------------------


@pytest.fixture
def announced():
    heard = []

    def receiver(sender, number, only_if_missing, policy, **kwargs):
        heard.append((sender, number, only_if_missing, policy))

    policy_revised.connect(receiver, dispatch_uid="test_policy_rows")
    yield heard
    policy_revised.disconnect(dispatch_uid="test_policy_rows")


@pytest.mark.django_db
def test_the_revision_starts_at_0_and_each_bump_raises_it_by_one():
    models.PolicyRevision.objects.all().delete()
    assert revision.current() == 0 and revision.read() == (0, 0)
    assert revision.bump(policy=False) == 1
    assert revision.read() == (1, 0)  # a ban row: the policy's own number stays
    assert revision.bump() == 2
    assert revision.read() == (2, 2)
    assert revision.bump(policy=False) == 3
    assert revision.read() == (3, 2)
    models.PolicyRevision.objects.all().delete()
    assert revision.bump() == 1 and revision.read() == (1, 1)


@pytest.mark.django_db
def test_a_bump_is_announced_with_its_number_once_committed(
    announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        number = revision.bump(policy=False)
        assert announced == []  # not before the edit commits
    assert announced == [(models.PolicyRevision, number, False, False)]
    revision.announce(number + 1)
    assert announced[-1] == (models.PolicyRevision, number + 1, False, False)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["policy row", "tenant row", "ban row"])
def test_rows_loaded_from_a_fixture_do_not_raise_the_revision(kind):
    """loaddata saves with raw=True: the fixture brings its own revision."""
    tenant = TenantFactory()
    before = revision.current()
    if kind == "policy row":
        revision._on_change(models.Tier, instance=tenant.tier, raw=True)
    elif kind == "tenant row":
        revision._on_tenant_row_saved(models.Tenant, instance=tenant, raw=True)
    else:
        ban = CredentialBanFactory()
        before = revision.current()
        revision._on_ban_saved(models.CredentialBan, instance=ban, raw=True)
    assert revision.current() == before


@pytest.mark.django_db
def test_a_key_saved_with_a_new_primary_key_belongs_to_its_own_tenant():
    tenant = TenantFactory()
    key = ApiKeyFactory.build(tenant=tenant, pk=987_654)
    revision._remember_owner(models.ApiKey, instance=key)
    assert key._ratelimit_old_owner == tenant.pk


@pytest.mark.django_db
def test_a_key_the_snapshot_lacks_is_looked_up_by_its_own_prefix():
    first, second = ApiKeyFactory(), ApiKeyFactory()
    snapshot = PolicySnapshot()  # built before either key was made
    found = lookup_api_key(second.prefix, snapshot)
    assert (found.id, found.tenant_id) == (second.pk, second.tenant_id)
    assert lookup_api_key("nosuchprefix", snapshot) is None
    assert lookup_api_key(first.prefix, snapshot).id == first.pk
