"""The limit specs of a request: their keys (the keys a reset clears are the keys requests
are counted under), whom they count, and their memo."""

import pytest

from ratelimit_app import runtime
from ratelimit_app.conf import get_config
from ratelimit_app.enforcement.specs import (
    ALGORITHM_LETTERS,
    build_specs,
    cached_specs,
    counter_keys,
)
from ratelimit_app.identity import Identity
from ratelimit_app.policy import LimitEntry

CONFIG = {"KEY_PREFIX": "rl"}
WHO = Identity(ip="203.0.113.7", api_key_id=42, user_id="u9", tenant=None)
VALUES = {"ip": "203.0.113.7", "api_key": 42, "user": "u9"}


@pytest.mark.parametrize("scope", sorted(VALUES))
@pytest.mark.parametrize("algorithm", sorted(ALGORITHM_LETTERS))
def test_every_counter_a_request_uses_is_among_its_partys_keys(scope, algorithm):
    limit = LimitEntry("web", scope, algorithm, 10, 60, None, False)
    (spec,) = build_specs((limit,), WHO, CONFIG)
    keys = counter_keys(scope, VALUES[scope], ["web." + scope + ".60"], "rl")
    assert spec.key in keys
    # One key per algorithm, each under the party's own tag and the prefix.
    assert len(keys) == len(set(keys)) == len(ALGORITHM_LETTERS)
    tag = spec.key.split(":")[1]
    assert all(key.startswith(f"rl:{tag}:web.{scope}.60") for key in keys)


def test_another_party_or_scope_has_other_keys():
    names = ["web.ip.60", "web.ip.3600"]
    mine = set(counter_keys("ip", "203.0.113.7", names, "rl"))
    assert len(mine) == 2 * len(ALGORITHM_LETTERS)
    assert mine.isdisjoint(counter_keys("ip", "203.0.113.8", names, "rl"))
    assert mine.isdisjoint(counter_keys("api_key", "203.0.113.7", names, "rl"))
    assert all("203.0.113.7" not in key for key in mine)  # a keyed hash, not the address


def test_limits_of_one_scope_and_two_periods_have_two_counters():
    limits = tuple(LimitEntry("web", "ip", "fixed_window", 10, p, None, False) for p in (60, 3600))
    first, second = build_specs(limits, WHO, CONFIG)
    assert first.key != second.key
    assert (first.name, second.name) == ("web-ip-60s", "web-ip-3600s")


def test_an_access_token_counts_under_the_api_key_scope_only_without_a_key():
    limit = LimitEntry("web", "api_key", "gcra", 10, 60, 5, False)
    token_only = Identity(ip=None, api_key_id=None, user_id=None, tenant=None, access_token="t1")
    key_too = Identity(ip=None, api_key_id=7, user_id=None, tenant=None, access_token="t1")
    (by_token,) = build_specs((limit,), token_only, CONFIG)
    (by_key,) = build_specs((limit,), key_too, CONFIG)
    assert by_token.key != by_key.key
    assert by_key.key in counter_keys("api_key", 7, ["web.api_key.60"], "rl")
    assert by_token.key in counter_keys("api_key", "t1", ["web.api_key.60"], "rl")


@pytest.mark.django_db
def test_cached_specs_are_one_memo_per_party_group_and_groups_on_top(demo_data):
    snapshot, config = runtime.get_snapshot(), get_config()
    free, paid = (snapshot.tenants[snapshot.tenant_slugs[f"{t}-tenant"]] for t in ("free", "paid"))
    as_free = Identity(ip="203.0.113.7", api_key_id=None, user_id=None, tenant=free)
    as_paid = Identity(ip="203.0.113.7", api_key_id=None, user_id=None, tenant=paid)
    specs = cached_specs(snapshot, "admin", as_free, config)
    assert cached_specs(snapshot, "admin", as_free, config) is specs  # built once
    # tenant-api-group-tiers.md: Admin takes 50 at once for free, five times that for paid.
    assert [s.capacity for s in specs if s.name == "admin-tenant-60s"] == [50]
    paid_specs = cached_specs(snapshot, "admin", as_paid, config)
    assert [s.capacity for s in paid_specs if s.name == "admin-tenant-60s"] == [250]
    # The groups on top of others that the route names (ip-token-endpoint-limits.md's
    # per-IP limit, 600 a minute for free) add theirs; a route naming none adds none.
    alone = cached_specs(snapshot, "admin", as_free, config, ())
    on_top = cached_specs(snapshot, "admin", as_free, config, ("all",))
    assert [s.name for s in alone] == ["admin-tenant-60s", "admin-tenant-3600s"]
    assert [(s.name, s.rate) for s in on_top if s not in alone] == [("all-ip-60s", 600)]


def test_a_shadow_limit_stays_a_shadow():
    limit = LimitEntry("web", "ip", "fixed_window", 10, 60, None, True)
    (spec,) = build_specs((limit,), WHO, CONFIG)
    assert spec.shadow is True
