"""Credential-pair bans through the real request cycle, on both backends."""

import base64
import json
import logging
from unittest import mock

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.urls import reverse

from project.demo import views
from ratelimit_app import runtime
from ratelimit_app.conf import get_config
from ratelimit_app.counters.base import BackendUnavailable
from ratelimit_app.enforcement.specs import party_of
from ratelimit_app.models import ApiKey, BanRule, CredentialBan

pytestmark = pytest.mark.django_db

GOOD = ("demo-client", "demo-secret")
WRONG = ("demo-client", "wrong-secret-123")


def update_rule(**fields):
    """Edit the ban rule as the admin does (save(), which raises the policy revision)."""
    for rule in BanRule.objects.all():
        for name, value in fields.items():
            setattr(rule, name, value)
        rule.save()


def token(client, pair=WRONG, how="form"):
    client_id, secret = pair
    if how == "form":
        return client.post("/connect/token", {"client_id": client_id, "client_secret": secret})
    if how == "json":
        return client.post(
            "/connect/token",
            json.dumps({"client_id": client_id, "client_secret": secret}),
            content_type="application/json",
        )
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return client.post("/connect/token", HTTP_AUTHORIZATION=f"Basic {basic}")


@pytest.fixture
def view_calls():
    with mock.patch.object(views, "client_credentials", wraps=views.client_credentials) as spy:
        yield spy


def test_five_failures_then_429_with_retry_after_600(client, demo_data, clock, view_calls):
    statuses = [token(client).status_code for _ in range(5)]
    assert statuses == [400] * 5
    sixth = token(client)
    assert sixth.status_code == 429
    assert sixth["Retry-After"] == "600"
    assert sixth.json()["error"]["code"] == "rate_limit_exceeded"
    assert sixth.json()["error"]["retry_after_seconds"] == 600
    calls = view_calls.call_count
    for _ in range(3):
        assert token(client).status_code == 429
    assert view_calls.call_count == calls == 5  # no credential check while banned
    ban = CredentialBan.objects.get()
    assert (ban.client_id, ban.failures) == ("demo-client", 5)
    assert round((ban.expires_at - ban.banned_at).total_seconds()) == 600


def test_another_secret_or_client_id_is_another_pair(client, demo_data, clock):
    for _ in range(5):
        token(client)
    assert token(client).status_code == 429
    assert token(client, GOOD).status_code == 200
    assert token(client, ("demo-client", "other-wrong")).status_code == 400
    assert token(client, ("other-client", WRONG[1])).status_code == 400


def test_the_ban_ends_by_itself_after_600_seconds(client, demo_data, clock):
    for _ in range(5):
        token(client)
    banned_at = clock[0]
    clock[0] = banned_at + 599.5
    reply = token(client)
    assert reply.status_code == 429 and reply["Retry-After"] == "1"
    clock[0] = banned_at + 600.01
    assert token(client).status_code == 400  # the view answers again
    assert token(client, GOOD).status_code == 200


@pytest.mark.parametrize("order", [("form", "json", "basic", "json", "form", "basic")])
def test_form_json_and_basic_are_one_pair(client, demo_data, clock, order):
    replies = [token(client, how=how).status_code for how in order]
    assert replies == [400] * 5 + [429]


def test_attempts_during_a_ban_do_not_extend_it_unless_the_rule_says_so(client, demo_data, clock):
    for _ in range(5):
        token(client)
    clock[0] += 300
    assert token(client)["Retry-After"] == "300"
    update_rule(extend_on_attempt=True)
    clock[0] += 100
    assert token(client)["Retry-After"] == "600"  # restarted
    ban = CredentialBan.objects.get()
    assert round((ban.expires_at - ban.banned_at).total_seconds()) == 1000  # row follows


def test_success_does_not_reset_the_count_unless_the_rule_says_so(client, demo_data, clock):
    for _ in range(4):
        token(client, ("demo-client", "demo-secret-x"))
    assert token(client, GOOD).status_code == 200  # another pair: no effect either way
    for _ in range(4):
        token(client)
    update_rule(reset_on_success=True)
    token(client, GOOD)
    assert token(client).status_code == 400  # fifth failure of WRONG: banned now
    assert token(client).status_code == 429


def test_reset_on_success_clears_the_pairs_count(client, demo_data, clock):
    update_rule(reset_on_success=True, threshold=3)
    settings_pair = ("demo-client", "demo-secret")
    with mock.patch.dict("django.conf.settings.DEMO_OAUTH_CLIENTS", {"demo-client": "x"}):
        token(client, settings_pair)
        token(client, settings_pair)
    assert token(client, settings_pair).status_code == 200  # success: count cleared
    with mock.patch.dict("django.conf.settings.DEMO_OAUTH_CLIENTS", {"demo-client": "x"}):
        assert [token(client, settings_pair).status_code for _ in range(3)] == [400, 400, 400]
        assert token(client, settings_pair).status_code == 429


def test_ban_survives_a_flush_of_the_counter_store(client, demo_data, clock, stack):
    for _ in range(5):
        token(client)
    flush_counters(stack)
    reply = token(client)
    assert reply.status_code == 429
    assert 599 <= int(reply["Retry-After"]) <= 600


def flush_counters(stack):
    if stack == "services":
        import redis
        from django.conf import settings

        server = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(server.scan_iter(f"{get_config()['KEY_PREFIX']}:*"))
        assert keys
        server.delete(*keys)
    else:
        runtime.get_backend().backend._store.clear()
    runtime.reset()


def test_unban_from_the_admin_lets_the_pair_through_at_once(client, admin_client, demo_data, clock):
    for _ in range(5):
        token(client)
    assert token(client).status_code == 429
    ban = CredentialBan.objects.get()
    admin_client.post(
        reverse("admin:ratelimit_app_credentialban_changelist"),
        {"action": "unban_selected", "_selected_action": [ban.pk]},
    )
    ban.refresh_from_db()
    assert ban.lifted_at is not None
    assert LogEntry.objects.filter(object_id=str(ban.pk)).exists()
    clock[0] += 1
    assert token(client).status_code == 400  # the view answers: count cleared too
    for _ in range(4):
        token(client)
    assert token(client).status_code == 429  # five new failures ban again


def test_management_commands_list_and_unban(client, demo_data, clock, capsys):
    for _ in range(5):
        token(client)
    call_command("ratelimit_bans")
    listed = capsys.readouterr().out
    ban = CredentialBan.objects.get()
    assert ban.short_fingerprint in listed and "demo-client" in listed
    call_command("ratelimit_unban", fingerprint=ban.fingerprint[:12])
    clock[0] += 1
    assert token(client).status_code == 400
    for _ in range(4):
        token(client)
    clock[0] += 1
    call_command("ratelimit_unban", client_id="demo-client")
    assert "Lifted 1" in capsys.readouterr().out
    assert token(client).status_code == 400


def test_no_secret_in_rows_keys_or_logs(client, demo_data, clock, caplog, stack):
    secret = "s3cr3t-value-that-must-not-leak"
    with caplog.at_level(logging.DEBUG):
        for _ in range(6):
            token(client, ("demo-client", secret), how="basic")
    assert CredentialBan.objects.count() == 1
    for ban in CredentialBan.objects.values():
        assert secret not in json.dumps(ban, default=str)
    assert secret not in caplog.text
    assert "Basic " not in caplog.text
    for key in counter_keys(stack):
        assert secret not in key and "demo-client" not in key


def counter_keys(stack):
    if stack == "services":
        import redis
        from django.conf import settings

        server = redis.Redis.from_url(settings.REDIS_URL)
        return [k.decode() for k in server.scan_iter(f"{get_config()['KEY_PREFIX']}:*")]
    return list(runtime.get_backend().backend._store)


def test_per_client_id_limit_stops_guessing_one_pair_at_a_time(client, demo_data, clock):
    update_rule(client_id_threshold=8)
    statuses = [token(client, ("demo-client", f"guess-{i}")).status_code for i in range(9)]
    assert statuses == [400] * 8 + [429]
    assert token(client, ("other-client", "guess")).status_code == 400


def test_per_ip_limit_stops_guessing_across_client_ids(client, demo_data, clock):
    update_rule(ip_threshold=6)
    statuses = [token(client, (f"client-{i}", "guess")).status_code for i in range(7)]
    assert statuses == [400] * 6 + [429]


def test_malformed_token_requests_are_not_a_500(client, demo_data, clock):
    assert (
        client.post("/connect/token", "{bad json", content_type="application/json").status_code
        == 400
    )
    assert client.post("/connect/token", HTTP_AUTHORIZATION="Basic %%%").status_code == 400
    huge = "c" * 100_000
    reply = client.post("/connect/token", {"client_id": huge, "client_secret": "x"})
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_request"


def test_fifty_concurrent_failures_on_the_backend_give_one_ban(stack):
    from concurrent.futures import ThreadPoolExecutor

    from ratelimit_app.counters.failures import FailureCounter

    backend = runtime.get_backend()
    prefix = get_config()["KEY_PREFIX"]
    counter = FailureCounter(f"{prefix}:x", f"{prefix}:b", threshold=5, window=600, cooldown=600)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: backend.record_failures([counter])[1][0], range(50)))
    assert sum(r.banned for r in results) == 1
    assert max(r.count for r in results) == 5


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_failed_requests_produce_one_ban_row(live_server, demo_data):
    from concurrent.futures import ThreadPoolExecutor

    from tests.http_support import HttpClient

    body = "client_id=demo-client&client_secret=concurrent-wrong"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def attempt(_):
        http = HttpClient(live_server.url)
        try:
            return http.post("/connect/token", body, **headers).status
        finally:
            http.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(attempt, range(50)))
    assert set(statuses) <= {400, 429} and statuses.count(400) >= 5
    assert CredentialBan.objects.filter(client_id="demo-client").count() == 1


def dot_token(client, secret, how="form"):
    data = {"grant_type": "client_credentials"}
    if how == "basic":
        basic = base64.b64encode(f"dot-client:{secret}".encode()).decode()
        return client.post("/o/token/", data, HTTP_AUTHORIZATION=f"Basic {basic}")
    return client.post("/o/token/", {**data, "client_id": "dot-client", "client_secret": secret})


def test_bans_work_in_front_of_a_third_party_providers_token_view(client, demo_data, clock):
    """django-oauth-toolkit's /o/token/, watched by path; oauthlib answers 401."""
    assert dot_token(client, "dot-secret").status_code == 200
    statuses = [
        dot_token(client, "wrong", how=("form", "basic")[i % 2]).status_code for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    assert dot_token(client, "dot-secret").status_code == 200  # another pair


def test_a_rule_can_watch_an_endpoint_group(client, demo_data, clock):
    from ratelimit_app.models import EndpointGroup

    rule = BanRule.objects.get(path="/connect/token")
    rule.path = ""
    rule.group = EndpointGroup.objects.get(slug="token")
    rule.save()
    assert [token(client).status_code for _ in range(6)] == [400] * 5 + [429]


def test_ban_checks_make_no_database_query(client, demo_data, clock, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 3600}
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    token(client)  # builds the snapshot
    with CaptureQueriesContext(connection) as failing:
        for _ in range(3):
            assert token(client).status_code == 400
    assert len(failing) == 0
    token(client)  # fifth failure: the ban row is written (one insert)
    token(client)  # rebuilds this process's snapshot after its own ban
    with CaptureQueriesContext(connection) as banned:
        for _ in range(3):
            assert token(client).status_code == 429
    assert len(banned) == 0


def test_signals_for_ban_and_unban(client, demo_data, clock):
    from ratelimit_app.bans.rows import lift_bans
    from ratelimit_app.signals import credential_banned, credential_unbanned

    events = []
    credential_banned.connect(
        lambda sender, ban, **kw: events.append(("banned", ban.pk)), weak=False, dispatch_uid="t1"
    )
    credential_unbanned.connect(
        lambda sender, ban, **kw: events.append(("unbanned", ban.pk)), weak=False, dispatch_uid="t2"
    )
    try:
        for _ in range(5):
            token(client)
        ban = CredentialBan.objects.get()
        lift_bans(CredentialBan.objects.all())
    finally:
        credential_banned.disconnect(dispatch_uid="t1")
        credential_unbanned.disconnect(dispatch_uid="t2")
    assert events == [("banned", ban.pk), ("unbanned", ban.pk)]


def test_unban_works_while_redis_is_down(client, demo_data, clock, settings, request):
    from ratelimit_app.bans.rows import lift_bans

    for _ in range(5):
        token(client)
    request.getfixturevalue("redis_down")  # Redis goes away after the ban
    assert token(client).status_code == 429  # the database still bans, Redis or not
    assert len(lift_bans(CredentialBan.objects.all())) == 1
    assert CredentialBan.objects.get().lifted_at is not None
    clock[0] += 1
    assert token(client).status_code == 400  # fail-open on the counters; the view answers


def lift_while_the_store_is_down():
    """Lift every ban row while the store cannot be cleared, so it still holds the bans
    (an in-process store cannot go down for real: its clear fails as Redis's does)."""
    from ratelimit_app.bans.rows import lift_bans

    down = BackendUnavailable("the counter store did not answer")
    with mock.patch.object(runtime.get_backend(), "clear", side_effect=down):
        lift_bans(CredentialBan.objects.all())


def test_a_ban_lifted_while_the_store_was_down_is_cleared_from_it_once_it_is_back(
    client, demo_data, clock
):
    # An in-process store cannot go down for real: its clear is made to fail as Redis's.
    for _ in range(5):  # five failures ban the WRONG pair
        token(client)
    lift_while_the_store_is_down()
    clock[0] += 1
    # The lift ends the ban: the pair is judged again and its count restarts, so five
    # more failures make a new ban (token-endpoint-credential-bans.md), which stands.
    statuses = [token(client).status_code for _ in range(6)]
    assert statuses == [400] * 5 + [429]


@pytest.mark.parametrize("second_check", ["fails", "is denied"])
def test_the_check_made_again_after_clearing_a_lifted_ban_is_the_requests_verdict(
    client, demo_data, clock, caplog, second_check
):
    from django.test import RequestFactory

    from ratelimit_app.enforcement import pipeline

    for _ in range(5):  # five failures ban the WRONG pair
        token(client)
    lift_while_the_store_is_down()
    clock[0] += 1
    backend = runtime.get_backend()
    real_check, calls = backend.check, []

    def check(specs, cost=1, now=None):
        calls.append(specs)
        if len(calls) == 1:
            return real_check(specs, cost, now=now)  # the ban the store still held
        if second_check == "fails":
            raise BackendUnavailable("the counter store did not answer")
        return real_check(specs, 10**6, now=now)  # more than any limit of the group

    client_id, secret = WRONG
    key = demo_data["free"]  # a request presenting an API key: the console notes its use
    request = RequestFactory().post(
        "/connect/token", {"client_id": client_id, "client_secret": secret}, HTTP_X_API_KEY=key
    )
    with mock.patch.object(backend, "check", side_effect=check), caplog.at_level(logging.INFO):
        verdict = pipeline.check(request)
    assert len(calls) == 2
    assert verdict.group == "token" and verdict.watched is not None
    if second_check == "fails":
        assert (verdict.unavailable, verdict.allowed) == (True, True)  # FAILURE_MODE open
    else:
        assert verdict.allowed is False
        assert "Throttled POST /connect/token event=denied" in caplog.text
        key_id = ApiKey.objects.get(prefix=key.split(".")[0]).pk
        assert verdict.api_key_party == party_of("api_key", key_id)


def test_ietf_headers_list_limits_not_the_ban_check(client, demo_data, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "IETF_HEADERS": True}
    response = token(client)
    assert response["RateLimit-Policy"]  # the token endpoint's limits are listed
    assert "ban-" not in response["RateLimit-Policy"] + response["RateLimit"]


def test_an_outage_is_logged_when_failure_counting_stops_and_starts_not_per_request(
    client, demo_data, clock, caplog, request, settings
):
    assert token(client).status_code == 400  # counted: the store answers
    working = settings.RATELIMIT_APP
    request.getfixturevalue("redis_down")
    with caplog.at_level(logging.WARNING, logger="ratelimit_app.bans"):
        for _ in range(10):
            assert token(client).status_code == 400  # fail-open: the view answers
        settings.RATELIMIT_APP = working
        assert token(client).status_code == 400
    assert caplog.text.count("Token failures are not counted") == 1
    assert caplog.text.count("Token failures are counted again") == 1


def test_deleting_an_active_ban_in_the_admin_lifts_it_first(admin_client, client, demo_data, clock):
    for _ in range(5):
        token(client)
    assert token(client).status_code == 429
    ban = CredentialBan.objects.get()
    reply = admin_client.post(
        reverse("admin:ratelimit_app_credentialban_delete", args=[ban.pk]), {"post": "yes"}
    )
    assert reply.status_code == 302
    assert not CredentialBan.objects.exists()
    clock[0] += 1
    assert token(client).status_code == 400  # the view answers: lifted in the store too
    assert LogEntry.objects.filter(object_id=str(ban.pk), change_message__contains="Unbanned")


def test_deleting_a_ban_needs_the_lift_permission(client, demo_data, clock, django_user_model):
    from django.contrib.auth.models import Permission

    for _ in range(5):
        token(client)
    ban = CredentialBan.objects.get()
    staff = django_user_model.objects.create_user("deleter", password="pw", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(codename="delete_credentialban"),
        Permission.objects.get(codename="view_credentialban"),
    )
    operator = type(client)()
    operator.force_login(staff)
    url = reverse("admin:ratelimit_app_credentialban_delete", args=[ban.pk])
    assert operator.post(url, {"post": "yes"}).status_code == 403
    assert CredentialBan.objects.filter(pk=ban.pk, lifted_at__isnull=True).exists()


@pytest.mark.parametrize("party", ["client_id", "address"])
def test_client_id_and_address_bans_are_rows_listed_liftable_and_surviving_a_flush(
    client, demo_data, clock, capsys, stack, party
):
    update_rule(**{"client_id_threshold" if party == "client_id" else "ip_threshold": 4})
    guesses = [
        token(client, ("demo-client" if party == "client_id" else f"c{i}", f"guess-{i}"))
        for i in range(5)
    ]
    assert [g.status_code for g in guesses] == [400] * 4 + [429]
    kind = "c" if party == "client_id" else "i"
    ban = CredentialBan.objects.get(kind=kind)
    assert ban.client_id == ("demo-client" if party == "client_id" else "127.0.0.1")
    call_command("ratelimit_bans")
    assert ban.short_fingerprint in capsys.readouterr().out
    flush_counters(stack)
    new_guess = ("demo-client" if party == "client_id" else "c9", "guess-9")
    assert token(client, new_guess).status_code == 429  # the row holds after a flush
    if party == "client_id":
        call_command("ratelimit_unban", client_id="demo-client")
    else:
        call_command("ratelimit_unban", address="127.0.0.1")
    assert "Lifted 1" in capsys.readouterr().out
    clock[0] += 1
    assert token(client, new_guess).status_code == 400  # lifted: the view answers again


def test_a_refusal_by_the_limiter_is_not_one_of_the_views_failures(client, demo_data, clock):
    """Even where the rule counts 429s (failure_statuses "400,429"): the limiter's own
    429 is no answer of the view's."""
    update_rule(failure_statuses="400,429")
    for _ in range(4):
        assert token(client).status_code == 400  # four failures of the WRONG pair
    # ip-token-endpoint-limits.md: 60 a minute per address on the token endpoint (the
    # catalogue): other pairs, four failures each, use up the rest of the minute.
    for n in range(56):
        assert token(client, (f"other-{n // 4}", "wrong-secret-123")).status_code == 400
    assert token(client).status_code == 429  # the 61st: refused by the per-IP limit
    assert not CredentialBan.objects.exists()  # that refusal was not a fifth failure
