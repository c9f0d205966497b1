"""The usage page: clients throttled and top consumers per group, shadow limits'
would-deny counts, API keys' last use."""

import pytest
from django.contrib.auth.models import Permission

from ratelimit_app import activity
from tests.test_dashboard import shadow_limit
from tests.test_reset import status, store, throttle, tight_limit  # noqa: F401 (store: a fixture)

pytestmark = pytest.mark.django_db

URL = "/admin/ratelimit_app/tenant/usage/"


@pytest.fixture(autouse=True)
def _every_request_sampled(monkeypatch):
    """Each allowed request's use noted (one in 16 in production), so counts are exact."""
    activity.recorder.clear()
    monkeypatch.setattr(activity, "SAMPLE_EVERY", 1)
    yield
    activity.recorder.clear()


def group_row(page, group):
    return next(row for row in page.context["usage"]["groups"] if row["group"] == group)


@pytest.mark.usefixtures("store")
def test_throttled_clients_top_consumers_and_shadow_counts_per_group(
    admin_client, client, demo_data, clock
):
    tight_limit("ip")
    shadow_limit()
    free, paid = demo_data["free"], demo_data["paid"]
    throttle(client, free, address="198.51.100.41")  # 3 admitted, 1 refused
    assert status(client, paid, address="198.51.100.42").status_code == 200
    page = admin_client.get(URL, {"minutes": "5"})
    assert page.status_code == 200
    row = group_row(page, "standard")
    assert row["throttled_count"] == 1
    [(name, _at)] = row["throttled"]
    assert name.startswith("other party ")  # an address: a keyed hash, never the address
    assert "198.51.100.41" not in page.content.decode()
    top = dict(row["top"])
    assert top["API key 5ca1ab1e (free-tenant)"] == 3
    assert top["API key c0ffee00 (paid-tenant)"] == 1
    assert page.context["usage"]["shadow"] == [("standard", "standard-ip-20s", 2)]
    body = page.content.decode()
    for element in ('id="usage-groups"', 'id="usage-shadow"', 'id="usage-keys"'):
        assert element in body


@pytest.mark.usefixtures("store")
def test_an_api_keys_last_use(admin_client, client, demo_data, clock):
    assert status(client, demo_data["free"]).status_code == 200
    activity.recorder.flush()  # as the recorder's thread does within FLUSH_SECONDS
    clock[0] += 240
    page = admin_client.get(URL)
    seen = {key.prefix: when for key, when in page.context["keys"]}
    assert seen["5ca1ab1e"].endswith("(4 min ago)")
    assert seen["c0ffee00"] == "not in the last 30 days"
    only = admin_client.get(URL, {"q": "c0ffee"}).context["keys"]
    assert [key.prefix for key, _when in only] == ["c0ffee00"]


@pytest.mark.usefixtures("store")
def test_a_keys_use_is_noted_where_only_its_tenants_limits_apply(
    admin_client, client, demo_data, clock
):
    # The ACP groups count per tenant only: the key presented is still the one used.
    reply = client.get("/acp/admin/ping", HTTP_X_API_KEY=demo_data["free"])
    assert reply.status_code == 200 and reply["X-RateLimit-Limit"] == "50"
    activity.recorder.flush()
    clock[0] += 120
    seen = {key.prefix: when for key, when in admin_client.get(URL).context["keys"]}
    assert seen["5ca1ab1e"].endswith("(2 min ago)")
    assert seen["c0ffee00"] == "not in the last 30 days"


@pytest.mark.usefixtures("store")
def test_the_window_is_chosen(admin_client, client, demo_data, clock):
    tight_limit("ip")
    throttle(client, demo_data["free"], address="198.51.100.43")
    activity.recorder.flush()
    clock[0] += 3 * 60
    assert group_row(admin_client.get(URL, {"minutes": "5"}), "standard")["throttled_count"] == 1
    assert not admin_client.get(URL, {"minutes": "1"}).context["usage"]["groups"]
    assert admin_client.get(URL, {"minutes": "nonsense"}).context["minutes"] == 5


def test_a_store_outage_is_a_message(admin_client, demo_data, redis_down):
    page = admin_client.get(URL)
    assert page.status_code == 200
    assert "The counter store did not answer" in page.content.decode()


def test_non_staff_are_sent_to_log_in_and_staff_need_to_view_tenants(
    client, demo_data, django_user_model
):
    client.force_login(django_user_model.objects.create_user("member", password="pw"))
    assert client.get(URL).status_code == 302
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_tenant"))
    assert client.get(URL).status_code == 200


def test_notes_taken_for_one_store_are_not_written_to_another(client, demo_data, clock, settings):
    """A settings change (another store, another key prefix) drops the notes not yet
    written: a test's refusals never show up in the next test's key space."""
    free_admin = {"HTTP_X_API_KEY": demo_data["free"]}
    # tenant-api-group-tiers.md: the free tier's Admin group takes 50 at once.
    statuses = [client.get("/acp/admin/ping", **free_admin).status_code for _ in range(51)]
    assert statuses[-1] == 429
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "KEY_PREFIX": "another"}
    assert activity.recent().throttled == {}
