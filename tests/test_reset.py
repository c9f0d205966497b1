"""Resetting a party's counters: the public function and ``ratelimit_reset``, through the
real request cycle, on the in-process backend and on Redis."""

import logging

import pytest
from django.core.management import CommandError, call_command

from ratelimit_app import runtime
from ratelimit_app.models import ApiKey, BanRule, CredentialBan, EndpointGroup, Limit, Tenant
from ratelimit_app.reset import ResetError, reset_party
from tests.test_bans import token, update_rule

pytestmark = pytest.mark.django_db

FREE_PREFIX = "5ca1ab1e"
ADDRESS = "198.51.100.7"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def store(request, settings):
    """The counters in this process's memory, or in Redis (the shared server, this
    test's own key prefix)."""
    backend = {
        "memory": "ratelimit_app.counters.memory.MemoryBackend",
        "redis": "ratelimit_app.counters.redis.RedisBackend",
    }[request.param]
    storage = settings.REDIS_URL if request.param == "redis" else ""
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "BACKEND": backend, "STORAGE_URL": storage}
    runtime.reset()
    return request.param


def tight_limit(scope, tenant_slug="free-tenant"):
    """Three requests in 30 s per ``scope`` on /v1/status for the tenant's tier."""
    Limit.objects.create(
        group=EndpointGroup.objects.get(slug="standard"),
        tier=Tenant.objects.get(slug=tenant_slug).tier,
        scope=scope,
        algorithm="fixed_window",
        rate=3,
        period=30,
    )


def status(client, key=None, address=ADDRESS):
    headers = {"HTTP_X_API_KEY": key} if key else {}
    return client.get("/v1/status", REMOTE_ADDR=address, **headers)


def throttle(client, key=None, address=ADDRESS):
    """Use up the three requests, and check the fourth is refused."""
    assert [status(client, key, address).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_a_reset_tenant_is_admitted_again_and_others_are_not(client, demo_data, store, clock):
    tight_limit("tenant", "free-tenant")
    tight_limit("tenant", "paid-tenant")
    throttle(client, demo_data["free"])
    throttle(client, demo_data["paid"], address="198.51.100.8")
    done = reset_party(tenant="free-tenant")
    assert (done.kind, done.shown_as, done.bans_lifted) == ("tenant", "free-tenant", 0)
    # Counted afresh: three requests again, then refused.
    assert [status(client, demo_data["free"]).status_code for _ in range(4)] == [200] * 3 + [429]
    assert status(client, demo_data["paid"], address="198.51.100.8").status_code == 429


def test_resetting_a_tenant_resets_its_api_keys_counters(client, demo_data, store, clock):
    tight_limit("api_key")
    throttle(client, demo_data["free"])
    reset_party(tenant=Tenant.objects.get(slug="free-tenant"))
    assert status(client, demo_data["free"]).status_code == 200


def test_the_command_resets_an_api_key_by_prefix(client, demo_data, store, clock, capsys):
    tight_limit("api_key")
    throttle(client, demo_data["free"])
    call_command("ratelimit_reset", "--api-key", FREE_PREFIX)
    assert "Reset api_key 5ca1ab1e" in capsys.readouterr().out
    assert status(client, demo_data["free"]).status_code == 200
    # A whole key names its own prefix; its secret goes nowhere.
    throttle_rest = [status(client, demo_data["free"]).status_code for _ in range(3)]
    assert throttle_rest == [200, 200, 429]
    call_command("ratelimit_reset", "--api-key", demo_data["free"])
    assert status(client, demo_data["free"]).status_code == 200


def test_the_command_resets_an_address(client, demo_data, store, clock):
    tight_limit("ip")
    throttle(client)
    throttle(client, address="198.51.100.9")
    call_command("ratelimit_reset", "--ip", f" {ADDRESS} ")
    assert status(client).status_code == 200
    assert status(client, address="198.51.100.9").status_code == 429


def test_an_ipv6_address_resets_its_bucket(client, demo_data, store, clock):
    tight_limit("ip")
    throttle(client, address="2001:db8:1:2::5")
    reset_party(ip="2001:db8:1:2::99")  # another address of the same /64
    assert status(client, address="2001:db8:1:2::5").status_code == 200


def test_the_command_resets_a_client_ids_banned_pair_and_its_own_count(
    client, demo_data, store, clock
):
    update_rule(client_id_threshold=8)
    assert [token(client).status_code for _ in range(6)] == [400] * 5 + [429]  # pair banned
    assert token(client, ("demo-client", "guess-1")).status_code == 400  # client_id: 6 now
    call_command("ratelimit_reset", "--client-id", "demo-client")
    assert CredentialBan.objects.get().lifted_at is not None
    # The pair counts afresh (4 failures are not a ban), and so does the client_id: 7
    # more failures would have reached its threshold of 8 without the reset.
    assert [token(client).status_code for _ in range(4)] == [400] * 4
    statuses = [token(client, ("demo-client", f"guess-{i}")).status_code for i in range(2, 5)]
    assert statuses == [400] * 3


def test_an_address_reset_lifts_its_address_ban(client, demo_data, store, clock):
    update_rule(ip_threshold=6)
    statuses = [token(client, (f"client-{i}", "guess")).status_code for i in range(7)]
    assert statuses == [400] * 6 + [429]
    done = reset_party(ip="127.0.0.1")
    assert done.bans_lifted == 1
    assert token(client, ("client-9", "guess")).status_code == 400


def test_a_reset_drops_this_processs_record_of_the_denial(client, demo_data, store, clock):
    tight_limit("tenant")
    throttle(client, demo_data["free"])
    denials = runtime.get_denials()
    assert len(denials) == 1  # the fourth request was recorded: no store call until reset
    reset_party(tenant="free-tenant")
    assert len(denials) == 0


def test_a_reset_raises_the_revision_other_processes_compare(demo_data, store):
    from ratelimit_app.policy import revision

    before = revision.read()
    reset_party(tenant="free-tenant")
    number, policy_number = revision.read()
    # A ban-like revision: processes drop their denial records without a rebuild.
    assert (number, policy_number) == (before[0] + 1, before[1])


def test_a_reset_is_logged_without_the_address(demo_data, store, caplog):
    with caplog.at_level(logging.WARNING, logger="ratelimit_app"):
        reset_party(ip=ADDRESS)
    [record] = [r for r in caplog.records if getattr(r, "ratelimit_event", "") == "counters_reset"]
    assert record.ratelimit_fields["kind"] == "ip"
    assert ADDRESS not in record.getMessage()


def test_a_reset_is_in_the_policy_edits_list_with_who_and_without_the_address(
    demo_data, store, django_user_model
):
    from ratelimit_app.models import PolicyEdit

    operator = django_user_model.objects.create_user("support", password="pw")
    reset_party(ip=ADDRESS, user=operator)
    reset_party(tenant="free-tenant")
    by_address, by_tenant = PolicyEdit.objects.filter(object_type="counters").order_by("pk")
    assert by_address.user == operator and by_tenant.user is None
    assert by_address.summary.startswith("Reset the counters of ip ")
    assert ADDRESS not in f"{by_address.summary} {by_address.object_repr} {by_address.new}"
    assert by_tenant.summary == "Reset the counters of tenant free-tenant"
    assert by_tenant.new["keys"] > 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--tenant", "nobody"], "No tenant has the slug or id 'nobody'"),
        (["--api-key", "deadbeef"], "No API key has the prefix 'deadbeef'"),
        (["--ip", "not-an-address"], "is not an IP address"),
        (["--client-id", "  "], "Give a client_id"),
    ],
)
def test_the_command_names_an_unknown_party(demo_data, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("ratelimit_reset", *arguments)


def test_exactly_one_party_is_reset(demo_data):
    with pytest.raises(ResetError):
        reset_party()
    with pytest.raises(ResetError):
        reset_party(tenant="free-tenant", ip=ADDRESS)


def test_the_command_says_so_when_the_store_is_down(demo_data, redis_down):
    with pytest.raises(CommandError, match="did not answer; nothing was reset"):
        call_command("ratelimit_reset", "--tenant", "free-tenant")


def test_rules_and_keys_exist_in_the_demo(demo_data):
    # The tests above rely on the demo's token rule and free key.
    assert BanRule.objects.filter(path="/connect/token").exists()
    assert ApiKey.objects.filter(prefix=FREE_PREFIX).exists()


def run_action(admin_client, model, action, pk):
    url = f"/admin/ratelimit_app/{model}/"
    return admin_client.post(url, {"action": action, "_selected_action": [pk]}, follow=True)


def test_the_tenant_admin_action_resets_the_selected_tenant(
    admin_client, client, demo_data, store, clock
):
    tight_limit("tenant")
    throttle(client, demo_data["free"])
    tenant = Tenant.objects.get(slug="free-tenant")
    page = run_action(admin_client, "tenant", "reset_tenant_counters", tenant.pk)
    assert "Counters reset for free-tenant" in page.content.decode()
    assert status(client, demo_data["free"]).status_code == 200


def test_the_api_key_admin_action_resets_the_selected_key(
    admin_client, client, demo_data, store, clock
):
    tight_limit("api_key")
    throttle(client, demo_data["free"])
    key = ApiKey.objects.get(prefix=FREE_PREFIX)
    page = run_action(admin_client, "apikey", "reset_api_key_counters", key.pk)
    assert "Counters reset for 5ca1ab1e" in page.content.decode()
    assert status(client, demo_data["free"]).status_code == 200


def test_the_action_needs_the_change_permission(client, demo_data, django_user_model, clock):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_tenant"))
    client.force_login(viewer)
    page = client.get("/admin/ratelimit_app/tenant/")
    assert page.status_code == 200 and "reset_tenant_counters" not in page.content.decode()


def test_the_action_reports_a_store_outage_instead_of_a_500(admin_client, demo_data, redis_down):
    tenant = Tenant.objects.get(slug="free-tenant")
    page = run_action(admin_client, "tenant", "reset_tenant_counters", tenant.pk)
    assert page.status_code == 200
    assert "did not answer; nothing was reset" in page.content.decode()
