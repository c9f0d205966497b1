"""The preview page: the limits a request would meet, their figures now and the headers
it would get, read from the counter store without charging it."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from ratelimit_app.models import Tenant
from tests.test_reset import FREE_PREFIX, store, tight_limit  # noqa: F401 (store: a fixture)

pytestmark = pytest.mark.django_db

URL = "/admin/ratelimit_app/tenant/preview/"
TIGHT = "3/30 s · fixed window · per tenant"


def request_status(client, key):
    return client.get("/v1/status", HTTP_X_API_KEY=key, REMOTE_ADDR="198.51.100.20")


def rows_by_words(page):
    return {row.in_words: row for row in page.context["preview"].rows}


def test_the_url_is_named():
    assert reverse("admin:ratelimit_app_preview") == URL


@pytest.mark.usefixtures("store")
def test_after_n_requests_the_preview_shows_limit_minus_n_and_charges_nothing(
    admin_client, client, demo_data, clock
):
    tight_limit("tenant")
    for _ in range(2):
        assert request_status(client, demo_data["free"]).status_code == 200
    query = {"api_key": FREE_PREFIX, "path": "/v1/status", "ip": "198.51.100.20"}
    first = admin_client.get(URL, query)
    assert first.status_code == 200
    rows = rows_by_words(first)
    assert rows[TIGHT].remaining_now == 3 - 2
    assert rows["120/min · per API key (access token)"].remaining_now == 120 - 2
    assert rows["600/min · per client IP"].remaining_now == 600 - 2
    body = first.content.decode()
    assert 'id="preview-limits"' in body and TIGHT in body
    second = admin_client.get(URL, query)
    # Previewing changed nothing (the pages differ only in their CSRF tokens).
    assert second.context["preview"] == first.context["preview"]
    # The headers shown are those the next request gets, and it is the third, not later.
    shown = first.context["preview"].headers
    third = request_status(client, demo_data["free"])
    assert third.status_code == 200
    for name, value in shown.items():
        assert third[name] == value
    refused = admin_client.get(URL, query)
    assert refused.context["preview"].allowed is False
    assert rows_by_words(refused)[TIGHT].remaining_now == 0
    fourth = request_status(client, demo_data["free"])
    assert fourth.status_code == 429
    assert refused.context["preview"].headers["Retry-After"] == fourth["Retry-After"]


@pytest.mark.usefixtures("store")
def test_a_tenant_and_a_group_without_an_address(admin_client, demo_data, clock):
    tight_limit("tenant")
    tenant = Tenant.objects.get(slug="free-tenant")
    page = admin_client.get(URL, {"tenant": tenant.pk, "group": "standard"})
    shown = page.context["preview"]
    assert (shown.group, shown.tenant, shown.allowed) == ("standard", "free-tenant", True)
    rows = rows_by_words(page)
    assert rows[TIGHT].remaining_now == 3
    per_key = rows["120/min · per API key (access token)"]
    assert per_key.not_counted == "not counted: no API key given"
    assert "Groups on top of others apply by path" in page.content.decode()


@pytest.mark.parametrize(
    "query, message",
    [
        ({"api_key": "deadbeef", "path": "/v1/status"}, "No API key in force has the prefix"),
        ({"path": "/v1/status", "ip": "not-an-address"}, "is not an IP address"),
        ({"tenant": "free-tenant", "api_key": FREE_PREFIX, "path": "/v1/status"}, "not both"),
        ({"api_key": FREE_PREFIX}, "Give a path or choose an endpoint group"),
    ],
)
def test_bad_input_gets_a_clear_message(admin_client, demo_data, query, message):
    if "tenant" in query:  # by its id, which PostgreSQL's sequences do not restart
        query = {**query, "tenant": Tenant.objects.get(slug=query["tenant"]).pk}
    page = admin_client.get(URL, query)
    assert page.status_code == 200
    assert message in page.content.decode()


def test_a_store_outage_is_a_message_not_a_500(admin_client, demo_data, redis_down):
    page = admin_client.get(URL, {"api_key": FREE_PREFIX, "path": "/v1/status"})
    assert page.status_code == 200
    assert "The counter store did not answer" in page.content.decode()


def test_the_empty_form_shows_the_fields_a_browser_drives(admin_client, demo_data):
    body = admin_client.get(URL).content.decode()
    for element in ('id="id_tenant"', 'id="id_api_key"', 'id="id_path"', 'id="id_group"'):
        assert element in body
    assert 'id="preview-submit"' in body


def test_non_staff_are_sent_to_log_in_and_staff_need_to_view_tenants(
    client, demo_data, django_user_model
):
    member = django_user_model.objects.create_user("member", password="pw")
    client.force_login(member)
    assert client.get(URL).status_code == 302
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_tenant"))
    assert client.get(URL).status_code == 200
