"""Guard rails (issue 16, item 7): loosening or disabling a limit, deleting limits,
changing a tenant's tier or active flag and revoking a key show what they will change
and wait for a confirmation; nothing is saved before it."""

import html

import pytest
from django.urls import reverse

from ratelimit_app.guard_rails import CONFIRM_FIELD
from ratelimit_app.models import ApiKey, Limit, PolicyEdit, PolicyRevision
from tests.factories import (
    ApiKeyFactory,
    EndpointGroupFactory,
    LimitFactory,
    TenantFactory,
    TierFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.invalid", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def free_admin_limit():
    """The free tier's Admin limit (300/min, burst 50) for 41 tenants, and a 42nd tenant
    whose own override replaces it."""
    tier = TierFactory(name="free", is_default=True)
    group = EndpointGroupFactory(slug="admin", name="Admin")
    limit = LimitFactory(tier=tier, group=group, rate=300, period=60, burst=50)
    TenantFactory.create_batch(41, tier=tier)
    own = TenantFactory(tier=tier)
    LimitFactory(tier=None, tenant=own, group=group, rate=10, period=60, burst=5)
    return limit


def limit_form(limit, **changes):
    form = {
        "group": limit.group_id,
        "tier": limit.tier_id or "",
        "tenant": limit.tenant_id or "",
        "scope": limit.scope,
        "algorithm": limit.algorithm,
        "rate": limit.rate,
        "period": limit.period,
        "burst": limit.burst or "",
        "enabled": "on" if limit.enabled else "",
        "shadow": "on" if limit.shadow else "",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != ""}


def risks(response):
    page = response.content.decode()
    assert response.status_code == 200 and "Confirm this change" in page, page[:2000]
    listed = page[page.index('<ul class="ratelimit-risks">') :]
    listed = listed[: listed.index("</ul>")]
    return [html.unescape(item.split("</li>")[0]) for item in listed.split("<li>")[1:]]


def nothing_saved(before_revision):
    assert PolicyRevision.objects.filter(number__gt=before_revision).count() == 0
    assert not PolicyEdit.objects.filter(revision__gt=before_revision).exists()


def revision_now():
    return PolicyRevision.objects.get().number


def test_loosening_a_tier_limit_shows_its_reach_and_saves_only_once_confirmed(
    operator, free_admin_limit
):
    limit = free_admin_limit
    url = reverse("admin:ratelimit_app_limit_change", args=[limit.pk])
    before = revision_now()
    response = operator.post(url, limit_form(limit, rate=3000))
    assert risks(response) == [
        "free tier, Admin: 300/min · burst 50 · per tenant → 3000/min · burst 50 · per tenant "
        "for 41 tenants and every request with no tenant"
    ]
    limit.refresh_from_db()
    assert limit.rate == 300
    nothing_saved(before)
    page = response.content.decode()
    assert "was changed successfully" not in page
    assert '<input type="hidden" name="rate" value="3000">' in page  # the same form again
    form = limit_form(limit, rate=3000)
    response = operator.post(url, {**form, CONFIRM_FIELD: "1"})
    assert response.status_code == 302
    limit.refresh_from_db()
    assert limit.rate == 3000


@pytest.mark.parametrize(
    ("changes", "after", "tenants"),
    [
        ({"enabled": ""}, "disabled", 41),
        ({"shadow": "on"}, "300/min · burst 50 · per tenant (shadow: never denies)", 41),
        ({"burst": "80"}, "300/min · burst 80 · per tenant", 41),
        # Over 30 s the 42nd tenant's per-minute override no longer replaces it.
        ({"period": "30"}, "300/30 s · burst 50 · per tenant", 42),
    ],
)
def test_disabling_shadowing_or_raising_burst_or_rate_is_confirmed(
    operator, free_admin_limit, changes, after, tenants
):
    limit = free_admin_limit
    url = reverse("admin:ratelimit_app_limit_change", args=[limit.pk])
    lines = risks(operator.post(url, limit_form(limit, **changes)))
    assert lines == [
        f"free tier, Admin: 300/min · burst 50 · per tenant → {after} for {tenants} tenants "
        "and every request with no tenant"
    ]
    assert Limit.objects.get(pk=limit.pk).in_words() == "300/min · burst 50 · per tenant"


def test_tightening_a_limit_is_saved_at_once(operator, free_admin_limit):
    limit = free_admin_limit
    url = reverse("admin:ratelimit_app_limit_change", args=[limit.pk])
    assert operator.post(url, limit_form(limit, rate=100, burst=20)).status_code == 302
    limit.refresh_from_db()
    assert (limit.rate, limit.burst) == (100, 20)


def test_deleting_a_limit_is_confirmed(operator, free_admin_limit):
    limit = free_admin_limit
    url = reverse("admin:ratelimit_app_limit_delete", args=[limit.pk])
    lines = risks(operator.post(url, {"post": "yes"}))
    assert lines == [
        "free tier, Admin: 300/min · burst 50 · per tenant → deleted for 41 tenants and "
        "every request with no tenant"
    ]
    assert Limit.objects.filter(pk=limit.pk).exists()
    assert operator.post(url, {"post": "yes", CONFIRM_FIELD: "1"}).status_code == 302
    assert not Limit.objects.filter(pk=limit.pk).exists()


def test_a_tenant_overrides_reach_is_the_tenant():
    tenant = TenantFactory(name="Acme")
    override = LimitFactory(tier=None, tenant=tenant, rate=5, period=60, burst=None)
    from ratelimit_app.guard_rails import _reach

    assert _reach(override) == "for this tenant"


def tenant_form(tenant, **changes):
    form = {
        "name": tenant.name,
        "slug": tenant.slug,
        "tier": tenant.tier_id,
        "active": "on" if tenant.active else "",
        "overrides-TOTAL_FORMS": "0",
        "overrides-INITIAL_FORMS": "0",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != ""}


def test_changing_a_tenants_tier_or_active_flag_is_confirmed(operator):
    free, paid = TierFactory(name="free"), TierFactory(name="paid")
    group = EndpointGroupFactory(slug="admin", name="Admin")
    LimitFactory(tier=free, group=group, rate=300, period=60, burst=50)
    LimitFactory(tier=paid, group=group, rate=1500, period=60, burst=250)
    tenant = TenantFactory(name="Acme", tier=free)
    ApiKeyFactory(tenant=tenant)
    url = reverse("admin:ratelimit_app_tenant_change", args=[tenant.pk])
    lines = risks(operator.post(url, tenant_form(tenant, tier=paid.pk, active="")))
    assert lines == [
        "tenant Acme: tier free → paid; Admin: 300/min · burst 50 · per tenant → "
        "1500/min · burst 250 · per tenant",
        "tenant Acme: inactive; requests with its 1 API key(s) are refused (403) until it is "
        "active again",
    ]
    tenant.refresh_from_db()
    assert (tenant.tier, tenant.active) == (free, True)
    form = {**tenant_form(tenant, tier=paid.pk, active=""), CONFIRM_FIELD: "1"}
    assert operator.post(url, form).status_code == 302
    tenant.refresh_from_db()
    assert (tenant.tier, tenant.active) == (paid, False)


def test_revoking_a_key_is_confirmed(operator):
    key = ApiKeyFactory(name="ci")
    url = reverse("admin:ratelimit_app_apikey_changelist")
    form = {"action": "revoke_selected", "_selected_action": [str(key.pk)]}
    lines = risks(operator.post(url, form))
    assert lines == [
        f"API key ci ({key.prefix}…): revoked; requests with it no longer count as its "
        "tenant (they count as anonymous: the default tier's limits)"
    ]
    assert not ApiKey.objects.get(pk=key.pk).revoked
    assert operator.post(url, {**form, CONFIRM_FIELD: "1"}).status_code == 302
    assert ApiKey.objects.get(pk=key.pk).revoked


@pytest.mark.django_db(transaction=True)
def test_an_inactive_tenants_keys_are_refused_with_403_until_it_is_active_again(
    client, demo_data, clock
):
    """What active = False means (README): every request with the tenant's API keys is
    refused with 403, on plain Django views and DRF views alike, and is not counted.
    The clock stands still (``clock``): no GCRA refill between the counted requests."""
    from ratelimit_app.models import Tenant

    key = {"HTTP_AUTHORIZATION": f"Bearer {demo_data['free']}"}
    assert client.get("/acp/admin/ping", **key)["X-RateLimit-Remaining"] == "49"
    tenant = Tenant.objects.get(slug="free-tenant")
    tenant.active = False
    tenant.save()
    for path in ("/acp/admin/ping", "/v1/messages", "/v1/legacy"):
        refused = client.get(path, **key)
        assert refused.status_code == 403, path
        assert refused.json()["detail"] == "The tenant of this API key is inactive."
        assert "X-RateLimit-Remaining" not in refused
    assert client.get("/acp/admin/ping").status_code == 200  # others are not affected
    tenant.active = True
    tenant.save()
    again = client.get("/acp/admin/ping", **key)
    assert again.status_code == 200
    assert again["X-RateLimit-Remaining"] == "48"  # the refused requests were not counted
