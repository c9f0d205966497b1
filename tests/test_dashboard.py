"""The admin index's dashboard: active bans, clients throttled and shadow-limit hits in
the last minutes, the counter store's health."""

import pytest
from django.utils import timezone

from ratelimit_app import activity
from ratelimit_app.models import EndpointGroup, Limit, Tenant
from tests.factories import CredentialBanFactory
from tests.test_reset import status, store, throttle, tight_limit  # noqa: F401 (store: a fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_notes_from_other_tests():
    activity.recorder.clear()
    yield
    activity.recorder.clear()


def shadow_limit():
    """One request per 20 s per address on /v1/status, in shadow: counted, never refusing."""
    Limit.objects.create(
        group=EndpointGroup.objects.get(slug="standard"),
        tier=Tenant.objects.get(slug="free-tenant").tier,
        scope="ip",
        algorithm="fixed_window",
        rate=1,
        period=20,
        shadow=True,
    )


def dashboard(admin_client):
    page = admin_client.get("/admin/")
    assert page.status_code == 200
    return page


@pytest.mark.usefixtures("store")
def test_the_index_shows_bans_throttled_clients_shadow_hits_and_the_store(
    admin_client, client, demo_data, clock
):
    CredentialBanFactory()
    CredentialBanFactory(lifted_at=timezone.now())  # lifted: not counted
    tight_limit("ip")
    shadow_limit()
    key = demo_data["free"]
    throttle(client, key, address="198.51.100.31")
    throttle(client, key, address="198.51.100.32")
    assert status(client, key, address="198.51.100.32").status_code == 429
    page = dashboard(admin_client)
    body = page.content.decode()
    assert 'id="ratelimit-dashboard"' in body
    context = page.context
    assert context["shown"] is True
    assert context["active_bans"] == 1
    assert context["throttled"] == 2  # two clients, however often refused
    assert context["throttled_groups"] == [("standard", 2)]
    # Each address's second and third requests: the shadow limit would have refused them.
    assert context["shadow_hits"] == 4
    assert context["shadow_limits"] == [("standard · standard-ip-20s", 4)]
    assert (context["store"], context["breaker"]) == ("answering", "closed")
    assert "/admin/ratelimit_app/credentialban/?status=active" in body
    assert "/admin/ratelimit_app/tenant/preview/" in body


@pytest.mark.usefixtures("store")
def test_clients_throttled_long_ago_are_not_counted(admin_client, client, demo_data, clock):
    tight_limit("ip")
    throttle(client, demo_data["free"], address="198.51.100.33")
    activity.recorder.flush()
    clock[0] += 6 * 60
    assert dashboard(admin_client).context["throttled"] == 0


def test_a_store_outage_is_shown_and_the_breaker_opens(admin_client, demo_data, redis_down):
    first = dashboard(admin_client)
    assert first.context["store"] == "not answering (ConnectionError)"
    for _ in range(3):
        page = dashboard(admin_client)
    assert page.context["breaker"] == "open: requests skip the store"
    assert page.context["store"] == "not answering (breaker_open)"


def test_staff_without_the_apps_permissions_see_no_dashboard(client, demo_data, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    page = client.get("/admin/")
    assert page.status_code == 200
    assert 'id="ratelimit-dashboard"' not in page.content.decode()


def test_non_staff_are_sent_to_log_in(client, demo_data, django_user_model):
    client.force_login(django_user_model.objects.create_user("member", password="pw"))
    assert client.get("/admin/").status_code == 302
