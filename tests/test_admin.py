import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from ratelimit_app import hashing
from ratelimit_app.models import ApiKey, CredentialBan
from tests.factories import (
    ApiKeyFactory,
    BanRuleFactory,
    CredentialBanFactory,
    LimitFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

MODELS = ["tier", "tenant", "endpointgroup", "limit", "apikey", "banrule", "credentialban"]


@pytest.fixture
def superuser_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.invalid", "pw")
    client.force_login(user)
    client.user = user
    return client


@pytest.mark.parametrize("model", MODELS)
def test_every_changelist_answers_200(superuser_client, model):
    LimitFactory()
    ApiKeyFactory()
    CredentialBanFactory()
    response = superuser_client.get(reverse(f"admin:ratelimit_app_{model}_changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", [m for m in MODELS if m != "credentialban"])
def test_every_add_form_answers_200(superuser_client, model):
    response = superuser_client.get(reverse(f"admin:ratelimit_app_{model}_add"))
    assert response.status_code == 200


def test_credential_ban_filters_and_search(superuser_client):
    active = CredentialBanFactory(client_id="active-client")
    CredentialBanFactory(client_id="lifted-client", lifted_at=active.banned_at)
    url = reverse("admin:ratelimit_app_credentialban_changelist")
    body = superuser_client.get(url, {"status": "active"}).content.decode()
    assert "active-client" in body and "lifted-client" not in body
    body = superuser_client.get(url, {"status": "lifted"}).content.decode()
    assert "lifted-client" in body and "active-client" not in body
    body = superuser_client.get(url, {"q": "lifted"}).content.decode()
    assert "lifted-client" in body and "active-client" not in body
    detail = superuser_client.get(
        reverse("admin:ratelimit_app_credentialban_change", args=[active.pk])
    )
    assert detail.status_code == 200
    assert active.fingerprint not in detail.content.decode()  # only the short form


def unban_post(client, ban, **extra):
    return client.post(
        reverse("admin:ratelimit_app_credentialban_changelist"),
        {"action": "unban_selected", "_selected_action": [ban.pk], **extra},
    )


def test_unban_action_runs_and_is_logged(superuser_client):
    ban = CredentialBanFactory()
    response = unban_post(superuser_client, ban)
    assert response.status_code == 302
    ban.refresh_from_db()
    assert ban.lifted_at is not None
    assert ban.lifted_by == superuser_client.user
    entry = LogEntry.objects.get(object_id=str(ban.pk))
    assert entry.action_flag == CHANGE and "Unbanned" in entry.change_message


def test_unban_action_refused_without_the_permission(client):
    staff = UserFactory(username="viewer")
    staff.user_permissions.add(Permission.objects.get(codename="view_credentialban"))
    client.force_login(staff)
    ban = CredentialBanFactory()
    unban_post(client, ban)
    ban.refresh_from_db()
    assert ban.lifted_at is None
    assert not LogEntry.objects.exists()


def test_unban_action_allowed_with_the_permission(client):
    staff = UserFactory(username="operator")
    staff.user_permissions.add(
        Permission.objects.get(codename="view_credentialban"),
        Permission.objects.get(codename="lift_credentialban"),
    )
    client.force_login(staff)
    ban = CredentialBanFactory()
    unban_post(client, ban)
    ban.refresh_from_db()
    assert ban.lifted_by == staff


def test_unban_action_refused_on_get(superuser_client):
    ban = CredentialBanFactory()
    superuser_client.get(
        reverse("admin:ratelimit_app_credentialban_changelist"),
        {"action": "unban_selected", "_selected_action": [ban.pk]},
    )
    ban.refresh_from_db()
    assert ban.lifted_at is None


def test_unban_action_refused_without_csrf_token(django_user_model):
    user = django_user_model.objects.create_superuser("csrf", "c@example.invalid", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    ban = CredentialBanFactory()
    response = unban_post(client, ban)
    assert response.status_code == 403
    ban.refresh_from_db()
    assert ban.lifted_at is None


def test_unban_action_refused_for_anonymous(client):
    ban = CredentialBanFactory()
    response = unban_post(client, ban)
    assert response.status_code == 302 and "/login/" in response["Location"]
    ban.refresh_from_db()
    assert ban.lifted_at is None


def test_adding_an_api_key_shows_the_secret_once_and_stores_its_hash(superuser_client):
    tenant = TenantFactory()
    response = superuser_client.post(
        reverse("admin:ratelimit_app_apikey_add"), {"tenant": tenant.pk, "name": "new"}
    )
    key = ApiKey.objects.get(name="new")
    # Shown in the response page itself: never in a cookie (messages) or the session.
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert response.content.decode().count("<h1>New API key") == 1  # one heading, not two
    secret = shown_secret(response, key)
    assert secret.split(".")[1] not in key.hashed_secret
    assert not any(secret in morsel.value for morsel in response.cookies.values())
    assert secret not in str(dict(superuser_client.session))
    page = superuser_client.get(reverse("admin:ratelimit_app_apikey_change", args=[key.pk]))
    assert secret not in page.content.decode()


def shown_secret(response, key):
    import re

    found = re.findall(rf"{key.prefix}\.[A-Za-z0-9_-]+", response.content.decode())
    assert len(set(found)) == 1
    assert hashing.api_key_matches(found[0], key.hashed_secret)
    return found[0]


def test_a_key_added_in_the_tenant_page_is_shown_there_once(superuser_client):
    tenant = TenantFactory()
    url = reverse("admin:ratelimit_app_tenant_change", args=[tenant.pk])
    form = {
        "name": tenant.name,
        "slug": tenant.slug,
        "tier": tenant.tier_id,
        "active": "on",
        "overrides-TOTAL_FORMS": "0",
        "overrides-INITIAL_FORMS": "0",
        "api_keys-TOTAL_FORMS": "1",
        "api_keys-INITIAL_FORMS": "0",
        "api_keys-0-name": "from the tenant page",
    }
    response = superuser_client.post(url, form)
    assert response.status_code == 200, response.content.decode()[:2000]
    key = ApiKey.objects.get(name="from the tenant page")
    secret = shown_secret(response, key)
    assert not any(secret in morsel.value for morsel in response.cookies.values())


@pytest.mark.parametrize(
    "model,lookup",
    [
        ("apikey", "hashed_secret__startswith=0"),
        ("apikey", "hashed_secret__regex=^a"),
        ("credentialban", "fingerprint__startswith=a"),
        ("credentialban", "fingerprint__regex=^a"),
        ("tenant", "apikey__hashed_secret__startswith=0"),
    ],
)
def test_no_user_can_filter_on_secret_derived_fields(superuser_client, model, lookup):
    ApiKeyFactory()
    CredentialBanFactory()
    changelist = reverse(f"admin:ratelimit_app_{model}_changelist")
    assert superuser_client.get(f"{changelist}?{lookup}").status_code == 400


def test_ban_rule_and_credential_ban_rows_hold_no_secret():
    rule = BanRuleFactory()
    assert CredentialBan._meta.get_field("fingerprint").max_length == 64
    assert not any("secret" in f.name for f in CredentialBan._meta.fields)
    assert rule.pk


def _tier_form(tier, rows, initial=0):
    """The Tier change form with ``rows`` (dicts of limit fields) in its limits table."""
    form = {
        "name": tier.name,
        "is_default": "on" if tier.is_default else "",
        "limits-TOTAL_FORMS": str(len(rows)),
        "limits-INITIAL_FORMS": str(initial),
    }
    for n, row in enumerate(rows):
        for field, value in row.items():
            form[f"limits-{n}-{field}"] = value
    return {k: v for k, v in form.items() if v != ""}


def _row(**values):
    row = {"scope": "tenant", "algorithm": "gcra", "rate": "60", "period": "60", "burst": "10"}
    row["enabled"] = "on"
    row.update(values)
    return row


def test_a_duplicate_of_an_enabled_limit_in_the_tier_table_is_a_form_error(superuser_client):
    existing = LimitFactory(rate=60, period=60, scope="tenant")
    tier = existing.tier
    url = reverse("admin:ratelimit_app_tier_change", args=[tier.pk])
    rows = [
        _row(id=str(existing.pk), tier=str(tier.pk), group=str(existing.group_id)),
        _row(group=str(existing.group_id), rate="120"),
    ]
    response = superuser_client.post(url, _tier_form(tier, rows, initial=1))
    assert response.status_code == 200  # the form again, not a 500
    body = response.content.decode()
    assert "errornote" in body
    assert f"{existing.group.slug}" in body and "same period" in body
    assert tier.limits.count() == 1


def test_two_identical_new_rows_in_one_save_are_a_form_error(superuser_client):
    existing = LimitFactory(scope="ip", period=3600)
    tier, group = existing.tier, str(existing.group_id)
    url = reverse("admin:ratelimit_app_tier_change", args=[tier.pk])
    rows = [
        _row(id=str(existing.pk), tier=str(tier.pk), group=group, scope="ip", period="3600"),
        _row(group=group),
        _row(group=group, rate="99"),
    ]
    response = superuser_client.post(url, _tier_form(tier, rows, initial=1))
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
    assert tier.limits.count() == 1


def test_editing_a_row_into_a_duplicate_is_a_form_error_and_a_disabled_copy_is_fine(
    superuser_client,
):
    first = LimitFactory(scope="tenant", period=60)
    tier, group = first.tier, str(first.group_id)
    second = LimitFactory(tier=tier, group=first.group, scope="tenant", period=3600)
    url = reverse("admin:ratelimit_app_tier_change", args=[tier.pk])
    same = dict(tier=str(tier.pk), group=group)
    rows = [
        _row(id=str(first.pk), **same),
        _row(id=str(second.pk), **same, period="60"),  # now the same as first
    ]
    response = superuser_client.post(url, _tier_form(tier, rows, initial=2))
    assert response.status_code == 200 and "errornote" in response.content.decode()
    second.refresh_from_db()
    assert second.period == 3600
    rows[1].pop("enabled")  # a disabled duplicate is allowed (kept for later)
    # Disabling a limit is confirmed (the guard rails, tests/test_guard_rails.py).
    form = {**_tier_form(tier, rows, initial=2), "_ratelimit_confirmed": "1"}
    response = superuser_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    second.refresh_from_db()
    assert (second.period, second.enabled) == (60, False)


def test_a_duplicate_override_in_the_tenant_table_is_a_form_error(superuser_client):
    override = LimitFactory(tier=None, tenant=TenantFactory(), scope="tenant", period=60)
    tenant = override.tenant
    url = reverse("admin:ratelimit_app_tenant_change", args=[tenant.pk])
    row = _row(group=str(override.group_id))
    form = {
        "name": tenant.name,
        "slug": tenant.slug,
        "tier": tenant.tier_id,
        "active": "on",
        "overrides-TOTAL_FORMS": "2",
        "overrides-INITIAL_FORMS": "1",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
    }
    for n, values in enumerate([{**row, "id": str(override.pk), "tenant": str(tenant.pk)}, row]):
        for field, value in values.items():
            form[f"overrides-{n}-{field}"] = value
    response = superuser_client.post(url, form)
    assert response.status_code == 200 and "errornote" in response.content.decode()
    assert tenant.overrides.count() == 1


def test_a_group_slug_in_use_cannot_be_renamed_and_the_page_says_why(superuser_client, settings):
    from ratelimit_app.models import EndpointGroup

    settings.ROOT_URLCONF = "tests.checks_urls"  # a view there names "standard"
    named = EndpointGroup.objects.create(slug="standard", name="Standard")
    with_limits = LimitFactory().group
    unused = EndpointGroup.objects.create(slug="spare", name="Spare")
    for group, reason in [(named, "views name it (known)"), (with_limits, "limits count")]:
        url = reverse("admin:ratelimit_app_endpointgroup_change", args=[group.pk])
        page = superuser_client.get(url).content.decode()
        assert "the slug cannot be changed here" in page and reason in page
        form = {
            "slug": "renamed",
            "name": group.name,
            "path_patterns": group.path_patterns,
            "headers_describe": "tightest",
        }
        assert superuser_client.post(url, form).status_code == 302
        group.refresh_from_db()
        assert group.slug != "renamed"  # the posted slug is ignored
    url = reverse("admin:ratelimit_app_endpointgroup_change", args=[unused.pk])
    assert "the slug cannot be changed" not in superuser_client.get(url).content.decode()
    form = {"slug": "renamed", "name": "Spare", "path_patterns": "", "headers_describe": "tightest"}
    assert superuser_client.post(url, form).status_code == 302
    unused.refresh_from_db()
    assert unused.slug == "renamed"


@pytest.mark.parametrize(
    "values, words",
    [
        (dict(rate=300, period=60, burst=50), "300/min · burst 50 · per tenant"),
        (dict(rate=300, period=60, burst=None), "300/min · burst 300 · per tenant"),
        (
            dict(algorithm="sliding_window", rate=30, period=60, burst=None, scope="ip"),
            "30/min · per client IP",
        ),
        (
            dict(algorithm="fixed_window", rate=5, period=7200, burst=None, scope="api_key"),
            "5/2 h · fixed window · per API key (access token)",
        ),
        (dict(rate=5, period=1, burst=5), "5/s · burst 5 · per tenant"),
        (dict(rate=9, period=90, burst=3), "9/90 s · burst 3 · per tenant"),
    ],
)
def test_limits_read_in_human_terms(values, words):
    assert LimitFactory(**values).in_words() == words


def test_the_limit_list_shows_owner_and_limit_in_words_and_filters_by_tier_and_tenant(
    superuser_client,
):
    override = LimitFactory(tier=None, tenant=TenantFactory(name="Acme"), rate=300, burst=50)
    LimitFactory(rate=7, period=3600, burst=None, algorithm="sliding_window")
    url = reverse("admin:ratelimit_app_limit_changelist")
    page = superuser_client.get(url).content.decode()
    assert "tenant Acme" in page and "300/min · burst 50 · per tenant" in page
    assert "7/h · per tenant" in page
    only_acme = superuser_client.get(url, {"tenant__id__exact": override.tenant_id})
    assert "7/h" not in only_acme.content.decode()
    assert "tier__id__exact" in page  # the tier filter is offered


def test_a_revoked_key_reads_revoked_and_times_carry_zone_and_distance(superuser_client):
    from datetime import timedelta

    from django.utils import timezone

    from ratelimit_app.admin import when

    ApiKeyFactory(name="old key", revoked=True)
    page = superuser_client.get(reverse("admin:ratelimit_app_apikey_changelist"))
    assert "Revoked" in page.content.decode()
    now = timezone.now().replace(second=0, microsecond=0)
    assert when(now + timedelta(minutes=4), now=now).endswith("UTC (in 4 min)")
    assert when(now - timedelta(hours=2), now=now).endswith("UTC (2 h ago)")
    assert when(now + timedelta(days=3), now=now).endswith("(in 3 days)")
    assert when(None) == "-"


def test_the_period_field_offers_the_usual_periods(superuser_client):
    page = superuser_client.get(reverse("admin:ratelimit_app_limit_add")).content.decode()
    for seconds in ("1", "60", "3600", "86400"):
        assert f'<option value="{seconds}"' in page
    assert 'list="id_period-presets"' in page


def test_the_tenant_page_shows_the_limits_that_apply_with_their_source(superuser_client):
    from tests.factories import EndpointGroupFactory

    group = EndpointGroupFactory(slug="orders")
    tier_limit = LimitFactory(group=group, rate=100, period=60, burst=10)
    LimitFactory(
        group=group,
        tier=tier_limit.tier,
        rate=1000,
        period=3600,
        burst=None,
        algorithm="sliding_window",
    )
    tenant = TenantFactory(tier=tier_limit.tier)
    LimitFactory(group=group, tier=None, tenant=tenant, rate=500, period=60, burst=20)
    page = superuser_client.get(reverse("admin:ratelimit_app_tenant_change", args=[tenant.pk]))
    html = page.content.decode()
    table = html[html.index('class="ratelimit-effective"') :]
    table = table[: table.index("</table>")]
    # The override replaces the tier's per-minute limit; the hourly one is the tier's.
    assert "<td>orders</td><td>500/min · burst 20 · per tenant</td><td>override</td>" in table
    assert "<td>orders</td><td>1000/h · per tenant</td><td>tier</td>" in table
    assert "100/min" not in table
    tier_page = superuser_client.get(
        reverse("admin:ratelimit_app_tier_change", args=[tier_limit.tier_id])
    ).content.decode()
    assert "<td>orders</td><td>100/min · burst 10 · per tenant</td><td>tier</td>" in tier_page
