"""Credential bans inside django-oauth-toolkit's client authentication (its real views,
through ratelimit_app.contrib.oauth_toolkit's validator, as the demo installs it)."""

import base64
from unittest import mock

import pytest
from oauth2_provider import oauth2_validators

from ratelimit_app import runtime
from ratelimit_app.models import CredentialBan
from tests.test_bans import flush_counters, lift_while_the_store_is_down, update_rule

pytestmark = pytest.mark.django_db

CLIENT_ID, RIGHT, WRONG = "dot-client", "dot-secret", "wrong1"


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token(client, secret=WRONG, **extra):
    data = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": secret}
    return client.post("/o/token/", data, **extra)


def ban_the_wrong_pair(client):
    assert [token(client).status_code for _ in range(5)] == [401] * 5
    assert CredentialBan.objects.filter(client_id=CLIENT_ID).count() == 1


def assert_refused(reply):
    """token-endpoint-credential-bans.md: 429 with Retry-After, the configured body."""
    assert reply.status_code == 429
    assert 1 <= int(reply["Retry-After"]) <= 600
    assert reply.json()["error"]["code"] == "rate_limit_exceeded"


def test_stray_characters_in_basic_reach_the_ban_the_toolkit_would_check(client, demo_data, clock):
    ban_the_wrong_pair(client)
    # base64 of "dot-client:wrong1" with a "*" inserted: the toolkit skips the stray
    # character while decoding, the middleware's strict parser finds no pair at all.
    header = "Basic ZG90*LWNsaWVudDp3cm9uZzE="
    data = {"grant_type": "client_credentials"}
    hashing = mock.patch.object(
        oauth2_validators, "check_password", wraps=oauth2_validators.check_password
    )
    with hashing as check_password:
        replies = [client.post("/o/token/", data, HTTP_AUTHORIZATION=header) for _ in range(10)]
    for reply in replies:
        assert_refused(reply)
    assert check_password.call_count == 0  # refused before the secret is hashed


def test_a_decoy_basic_header_does_not_shield_the_pair_in_the_body(client, demo_data, clock):
    replies = [token(client, HTTP_AUTHORIZATION=basic(CLIENT_ID, f"decoy-{i}")) for i in range(6)]
    assert [r.status_code for r in replies[:5]] == [401] * 5
    assert_refused(replies[5])
    banned = CredentialBan.objects.get()
    assert banned.client_id == CLIENT_ID and banned.failures == 5


def test_revoke_token_and_introspect_refuse_a_banned_pair(client, demo_data, clock):
    ban_the_wrong_pair(client)
    revoke = client.post(
        "/o/revoke_token/",
        {"token": "whatever", "client_id": CLIENT_ID, "client_secret": WRONG},
    )
    assert_refused(revoke)
    introspect = client.post(
        "/o/introspect/", {"token": "whatever"}, HTTP_AUTHORIZATION=basic(CLIENT_ID, WRONG)
    )
    assert_refused(introspect)
    # The right secret is another pair (token-endpoint-credential-bans.md): not banned.
    assert token(client, RIGHT).status_code == 200


def test_revoke_token_failures_count_toward_the_ban(client, demo_data, clock):
    data = {"token": "whatever", "client_id": CLIENT_ID, "client_secret": WRONG}
    statuses = [client.post("/o/revoke_token/", data).status_code for _ in range(5)]
    assert 429 not in statuses
    assert_refused(token(client))


def test_a_wrong_user_password_is_not_a_failed_client_authentication(client, demo_data, clock):
    data = {
        "grant_type": "password",
        "username": "admin",
        "password": "not-the-password",
        "client_id": CLIENT_ID,
        "client_secret": RIGHT,
    }
    statuses = [client.post("/o/token/", data).status_code for _ in range(6)]
    assert 429 not in statuses and set(statuses) <= {400, 401}
    assert token(client, RIGHT).status_code == 200
    assert not CredentialBan.objects.exists()


@pytest.mark.parametrize("endpoint", ["/o/token/", "/o/revoke_token/", "/o/introspect/"])
def test_one_address_guessing_at_the_toolkit_is_refused_before_its_hash(
    client, demo_data, clock, endpoint
):
    # ip-token-endpoint-limits.md: per-IP limits; the catalogue's token group: 60/min.
    hashing = mock.patch.object(
        oauth2_validators, "check_password", wraps=oauth2_validators.check_password
    )
    with hashing as check_password:
        statuses = [
            client.post(
                endpoint,
                {"grant_type": "client_credentials", "token": "x"},
                HTTP_AUTHORIZATION=basic(CLIENT_ID, f"guess-{i}"),
            ).status_code
            for i in range(61)
        ]
    assert 429 not in statuses[:60] and statuses[60] == 429
    assert check_password.call_count == 60  # the 61st guess was never hashed


def stray_token(client, secret, **extra):
    """A token request whose Basic header holds a stray "*": the middleware's strict
    parser finds no pair in it, so only the toolkit's own client authentication (through
    ``enforcement.refused_pair`` and ``record_client_authentication``) sees the pair."""
    encoded = base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
    header = "Basic " + encoded[:3] + "*" + encoded[3:]
    data = {"grant_type": "client_credentials"}
    return client.post("/o/token/", data, HTTP_AUTHORIZATION=header, **extra)


# (settings, the address of six failures, another address in its bucket, an address of
# another bucket): the address comes from the request's META as the middleware reads it.
ADDRESS_CASES = {
    "ipv4": ({}, {"REMOTE_ADDR": "203.0.113.7"}, None, {"REMOTE_ADDR": "203.0.113.8"}),
    "ipv6 /64": (
        {},
        {"REMOTE_ADDR": "2001:db8::1"},
        {"REMOTE_ADDR": "2001:db8::2"},
        {"REMOTE_ADDR": "2001:db8:0:1::1"},
    ),
    "ipv6 by whole address": (
        {"IPV6_PREFIX": 128},
        {"REMOTE_ADDR": "2001:db8::1"},
        None,
        {"REMOTE_ADDR": "2001:db8::2"},
    ),
    "behind a trusted proxy": (
        {"TRUSTED_PROXIES": ["10.0.0.0/8"]},
        {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.7"},
        {"REMOTE_ADDR": "10.0.0.6", "HTTP_X_FORWARDED_FOR": "203.0.113.7"},
        {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.8"},
    ),
}


@pytest.mark.parametrize("case", ADDRESS_CASES)
def test_an_address_guessing_inside_the_toolkit_is_banned_by_its_client_address(
    client, demo_data, clock, settings, case
):
    config, address, same_bucket, other = ADDRESS_CASES[case]
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, **config}
    update_rule(ip_threshold=6)  # one pair fails once each: only the address adds up
    statuses = [stray_token(client, f"guess-{i}", **address).status_code for i in range(6)]
    assert statuses == [401] * 6
    assert_refused(stray_token(client, "guess-6", **address))
    if same_bucket is not None:
        assert_refused(stray_token(client, "guess-7", **same_bucket))
    assert stray_token(client, "guess-8", **other).status_code == 401


def test_a_ban_the_database_records_is_refused_inside_the_toolkit_after_a_flush(
    client, demo_data, clock, stack
):
    ban_the_wrong_pair(client)
    flush_counters(stack)  # the store forgot the ban; the row holds it
    backend = runtime.get_backend()
    hashing = mock.patch.object(
        oauth2_validators, "check_password", wraps=oauth2_validators.check_password
    )
    store = mock.patch.object(backend, "check", wraps=backend.check)
    with hashing as check_password, store as check:
        assert_refused(stray_token(client, WRONG))
    assert check_password.call_count == 0
    # Refused from the row alone: the store is not asked about the pair's ban.
    asked = [spec for call in check.call_args_list for spec in call.args[0]]
    assert asked and not [spec for spec in asked if spec.algorithm == "ban"]


def test_an_extending_rule_restarts_the_ban_inside_the_toolkit(client, demo_data, clock):
    ban_the_wrong_pair(client)
    update_rule(extend_on_attempt=True)
    clock[0] += 100
    refused = stray_token(client, WRONG)  # counted by the store: the cooldown restarts
    assert_refused(refused)
    assert refused["Retry-After"] == "600"
    clock[0] += 300
    assert stray_token(client, WRONG)["Retry-After"] == "600"
    assert stray_token(client, RIGHT).status_code == 200  # another pair


def test_an_extending_ban_ends_inside_the_toolkit_on_the_limiters_clock(client, demo_data, clock):
    ban_the_wrong_pair(client)
    update_rule(extend_on_attempt=True)
    clock[0] += 601  # no attempt for longer than the cooldown: the ban is over
    assert stray_token(client, WRONG).status_code == 401


@pytest.mark.parametrize("send", [token, stray_token], ids=["middleware", "toolkit only"])
def test_a_ban_lifted_while_the_store_was_down_is_cleared_from_it_once_it_is_back(
    client, demo_data, clock, send
):
    ban_the_wrong_pair(client)
    lift_while_the_store_is_down()
    clock[0] += 1
    # token-endpoint-credential-bans.md: an operator's lift ends the ban, so the pair is
    # judged again (a wrong secret: 401), and its count restarts: five more failures
    # make a new ban, which stands.
    statuses = [send(client, WRONG).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
