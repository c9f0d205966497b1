"""plain_rows: a snapshot build's fast read gives exactly the ORM's rows (integers,
strings, booleans, floats, timestamps and NULLs), logs its query as Django logs queries,
and asks nothing for a query that cannot match. PostgreSQL's binary read runs in the
services pass; the local pass checks the ORM's own path. (A build's epoch seconds are
checked to the microsecond in test_policy_rows.)"""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ratelimit_app import models
from ratelimit_app.policy import fetch
from ratelimit_app.policy.fetch import plain_rows
from tests.factories import BanRuleFactory, CredentialBanFactory, LimitFactory, TenantFactory


@pytest.mark.django_db
def test_the_rows_are_the_orms_rows_value_for_value():
    tenant = TenantFactory(slug="acme", active=False)
    LimitFactory(tenant=tenant, tier=None, scope="api_key", rate=7, period=60, burst=None)
    LimitFactory(tenant=tenant, tier=None, scope="ip", rate=9, period=3600, burst=3, shadow=True)
    rows = models.Limit.objects.filter(tenant=tenant).order_by("rate")
    fields = ("pk", "group_id", "scope", "rate", "period", "burst", "shadow", "tier_id")
    read = plain_rows(rows.values_list(*fields))
    assert read == list(rows.values_list(*fields))
    assert [(row[2], row[3], row[5], row[6], row[7]) for row in read] == [
        ("api_key", 7, None, False, None),
        ("ip", 9, 3, True, None),
    ]
    assert all(type(row[6]) is bool for row in read)


@pytest.mark.django_db
def test_timestamps_come_back_aware_and_equal():
    expires = timezone.now().replace(microsecond=123456) + datetime.timedelta(hours=1)
    ban = CredentialBanFactory(rule=BanRuleFactory(), fingerprint="e" * 64, expires_at=expires)
    rows = models.CredentialBan.objects.filter(pk=ban.pk)
    [(fingerprint, read)] = plain_rows(rows.values_list("fingerprint", "expires_at"))
    assert fingerprint == "e" * 64
    assert read == expires and read.utcoffset() == datetime.timedelta(0)


@pytest.mark.django_db
def test_the_query_is_logged_once_as_django_logs_queries():
    TenantFactory(slug="one")
    with CaptureQueriesContext(connection) as queries:
        rows = plain_rows(models.Tenant.objects.values_list("slug"))
    assert rows == [("one",)]
    assert len(queries) == 1
    assert "ratelimit_app_tenant" in queries[0]["sql"]


@pytest.mark.django_db
def test_a_query_that_cannot_match_asks_nothing():
    with CaptureQueriesContext(connection) as queries:
        rows = plain_rows(models.Tenant.objects.filter(pk__in=[]).values_list("pk"))
    assert rows == []
    assert len(queries) == 0


@pytest.mark.django_db
def test_postgresql_rows_are_read_in_the_binary_format_and_others_through_the_orm(
    monkeypatch,
):
    """The binary read is the build's speed (docs/benchmarks.md, policy at scale): on
    PostgreSQL with psycopg 3 every row comes through a binary cursor; elsewhere none is
    made."""
    formats = []
    real = fetch._binary_cursor_class()

    def spying_class():
        if real is None:
            return None

        class Spying(real):
            def execute(self, *args, **kwargs):
                formats.append(self.format)
                return super().execute(*args, **kwargs)

        return Spying

    monkeypatch.setattr(fetch, "_binary_cursor_class", spying_class)
    TenantFactory(slug="one")
    assert plain_rows(models.Tenant.objects.values_list("slug")) == [("one",)]
    assert formats == ([fetch.BINARY] if connection.vendor == "postgresql" else [])


@pytest.mark.django_db
def test_the_query_is_not_kept_where_django_keeps_none(settings):
    """Django keeps queries only with DEBUG (or while a test captures them): a build's
    queries are not kept either, or every rebuild would add to a list nobody reads."""
    settings.DEBUG = False
    connection.queries_log.clear()
    assert connection.queries_logged is False
    plain_rows(models.Tenant.objects.values_list("slug"))
    assert len(connection.queries_log) == 0
