"""From policy rows to the snapshot's entries (every field of a ban rule and of a
limit, which requests a rule watches), and the snapshot's lookups and memos. Expected
values come from the models' definitions."""

import logging

import pytest

from ratelimit_app import bounded
from ratelimit_app.models.policies import limit_problem
from ratelimit_app.policy import build_snapshot
from ratelimit_app.policy.entries import LimitEntry, ban_rule_entry, limit_entry
from ratelimit_app.policy.snapshot import DEFAULT_HEADER_STYLE, PolicySnapshot
from tests.factories import (
    BanRuleFactory,
    EndpointGroupFactory,
    LimitFactory,
    TierFactory,
)

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
