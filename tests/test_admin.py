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
