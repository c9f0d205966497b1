"""A key newer than a process's snapshot is honoured from its first request: looked up
once, remembered briefly and boundedly, and never a flood of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ratelimit_app import hashing
from ratelimit_app.identity import resolve_api_key
from ratelimit_app.models import ApiKey
from ratelimit_app.policy import build_snapshot
from ratelimit_app.policy.keys import REMEMBER_SECONDS, LookupBudget, lookup_api_key
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_a_key_created_after_the_snapshot_is_known_at_its_first_request():
    snapshot = build_snapshot()
    tenant = TenantFactory()
    key, secret = ApiKey.objects.create_key(tenant=tenant, name="made in the shell")
    assert key.prefix not in snapshot.api_keys
    entry = resolve_api_key(secret, snapshot)
    assert (entry.id, entry.tenant_id) == (key.pk, tenant.pk)
    assert resolve_api_key(f"{key.prefix}.not-the-secret", snapshot) is None


def test_the_answer_is_remembered_then_read_again():
    snapshot, clock = build_snapshot(), [100.0]
    prefix = hashing.new_api_key()[0]
    budget = LookupBudget(1000, clock=lambda: clock[0])

    def lookup():
        return lookup_api_key(prefix, snapshot, clock=lambda: clock[0], budget=budget)

    with CaptureQueriesContext(connection) as first:
        assert lookup() is None
    with CaptureQueriesContext(connection) as again:
        assert lookup() is None  # unknown, remembered: no second query
    key, _secret = ApiKey.objects.create_key(tenant=TenantFactory(), name="later")
    ApiKey.objects.filter(pk=key.pk).update(prefix=prefix)
    clock[0] += REMEMBER_SECONDS
    with CaptureQueriesContext(connection) as later:
        assert lookup().id == key.pk
    assert (len(first), len(again), len(later)) == (1, 0, 1)


def test_a_revoked_key_is_not_found_and_an_inactive_tenants_key_is():
    snapshot = build_snapshot()
    revoked, revoked_secret = ApiKey.objects.create_key(tenant=TenantFactory(), name="r")
    ApiKey.objects.filter(pk=revoked.pk).update(revoked=True)
    _key, inactive_secret = ApiKey.objects.create_key(tenant=TenantFactory(active=False), name="i")
    assert resolve_api_key(revoked_secret, snapshot) is None
    # Found, so that its requests are refused (403) rather than counted as anonymous.
    assert resolve_api_key(inactive_secret, snapshot).id == _key.pk


def test_made_up_prefixes_cost_at_most_the_budget_of_queries_per_second():
    snapshot, clock = build_snapshot(), [50.0]
    budget = LookupBudget(20, clock=lambda: clock[0])
    prefixes = [hashing.new_api_key()[0] for _ in range(100)]
    with CaptureQueriesContext(connection) as queries:
        for prefix in prefixes:
            lookup_api_key(prefix, snapshot, clock=lambda: clock[0], budget=budget)
    assert len(queries) == 20
    clock[0] += 1.0  # the next second has a budget of its own
    with CaptureQueriesContext(connection) as queries:
        for prefix in prefixes[20:60]:
            lookup_api_key(prefix, snapshot, clock=lambda: clock[0], budget=budget)
    assert len(queries) == 20


def test_the_memo_is_bounded(monkeypatch):
    from ratelimit_app.policy import keys

    monkeypatch.setattr(keys, "LOOKUP_MEMO_SIZE", 50)
    snapshot, budget = build_snapshot(), LookupBudget(10_000)
    for _ in range(200):
        lookup_api_key(hashing.new_api_key()[0], snapshot, budget=budget)
    assert len(snapshot.key_lookups) == 50
