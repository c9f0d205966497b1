"""Lying and hostile clients, secrets, and clocks: each promise with a test."""

import base64
import json
import logging
import math
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratelimit_app import runtime
from ratelimit_app.conf import get_config
from ratelimit_app.responses import retry_after_seconds
from tests.test_bans import token

pytestmark = pytest.mark.django_db

HOSTILE = ["a:b:c", "{tag}", "}{", "nul\x00byte", "ünïcødé-ключ-鍵", "x" * 5000, ""]


def counter_keys(stack):
    from tests.test_bans import counter_keys as keys

    return keys(stack)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_api_keys_are_ignored_and_never_enter_a_key(client, demo_data, stack, value):
    reply = client.get("/v1/status", HTTP_X_API_KEY=value)
    assert reply.status_code == 200
    assert reply["X-RateLimit-Limit"] == "600"  # counted per IP, as any unknown key
    for key in counter_keys(stack):
        assert value not in key or value == ""
        assert key.count("{") == 1 and key.count("}") == 1


@pytest.mark.parametrize("value", HOSTILE[:-1])
def test_hostile_client_ids_are_counted_by_keyed_hash(client, demo_data, stack, value):
    for _ in range(5):
        assert token(client, (value, "wrong")).status_code == 400
    assert token(client, (value, "wrong")).status_code == 429
    for key in counter_keys(stack):
        assert value not in key
        assert key.count("{") == 1


def test_a_one_megabyte_api_key_is_ignored_not_a_500(client, demo_data):
    reply = client.get("/v1/status", HTTP_AUTHORIZATION="Bearer " + "k" * 1_000_000)
    assert reply.status_code == 200
    assert reply["X-RateLimit-Limit"] == "600"


def test_a_hundred_kilobyte_client_id_is_a_clear_400_and_still_counted(client, demo_data):
    huge = "c" * 100_000
    replies = [token(client, (huge, "s")) for _ in range(6)]
    assert [r.status_code for r in replies] == [400] * 5 + [429]
    assert replies[0].json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body,content_type",
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('{"client_id": 5}', "application/json"),
        ("\xff\xfe", "application/json"),
        ("client_id=%ZZ&client_secret=", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_token_bodies_get_the_views_400(client, demo_data, body, content_type):
    reply = client.post("/connect/token", body, content_type=content_type)
    assert reply.status_code == 400


@pytest.mark.parametrize("forwarded", ["", ",,,", "999.999.1.1", "1.2.3.4" * 2000])
def test_malformed_forwarded_headers_are_not_a_500(client, demo_data, forwarded):
    assert client.get("/hello", HTTP_X_FORWARDED_FOR=forwarded).status_code == 200


def test_logs_of_failed_token_requests_hold_no_secret_nor_authorization(client, demo_data, caplog):
    import base64

    secret = "very-secret-client-secret"
    header = "Basic " + base64.b64encode(f"demo-client:{secret}".encode()).decode()
    with caplog.at_level(logging.DEBUG):
        for _ in range(7):
            client.post("/connect/token", HTTP_AUTHORIZATION=header)
    assert "Banned client_id='demo-client'" in caplog.text
    assert secret not in caplog.text
    assert header.split()[1] not in caplog.text


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=1e7, allow_nan=False))
def test_retry_after_is_whole_seconds_at_least_one_and_never_early(seconds):
    value = retry_after_seconds(seconds)
    assert isinstance(value, int) and value >= 1
    assert value >= seconds - 1e-6
    assert value <= max(1, math.ceil(seconds))


def test_the_admin_ban_list_answers_while_redis_is_down(admin_client, demo_data, redis_down):
    from tests.factories import CredentialBanFactory

    CredentialBanFactory(client_id="listed-while-down")
    page = admin_client.get("/admin/ratelimit_app/credentialban/?status=active")
    assert page.status_code == 200
    assert "listed-while-down" in page.content.decode()


@pytest.mark.services
@pytest.mark.parametrize("skew", [-10, 10])
def test_redis_decisions_ignore_the_app_servers_clock(client, demo_data, monkeypatch, skew):
    """The same burst gives the same answers with the app server's clock moved."""
    import time

    def burst(ip):
        replies = [client.post("/v1/licenses/validate", REMOTE_ADDR=ip) for _ in range(33)]
        return [(r.status_code, int(r.get("Retry-After", "1"))) for r in replies]

    straight = burst("198.51.100.10")
    runtime.reset()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + skew)
    skewed = burst("198.51.100.11")
    assert [status for status, _ in straight] == [201] * 30 + [429] * 3
    assert [status for status, _ in skewed] == [status for status, _ in straight]
    assert all(seconds >= 1 for _, seconds in skewed)
    assert get_config()["BACKEND"].endswith("RedisBackend")


def test_stored_client_ids_escape_control_characters():
    from ratelimit_app.bans.rows import storable_client_id

    assert storable_client_id("nul\x00byte\n") == "nul\\x00byte\\x0a"
    assert storable_client_id("ünïcødé") == "ünïcødé"
    assert len(storable_client_id("c" * 100_000)) == 200


def test_sixty_kilobytes_of_brackets_as_a_json_token_request_are_the_views_400(client, demo_data):
    # json.loads raises RecursionError (not ValueError) on deep nesting.
    reply = client.post("/connect/token", "[" * 60_000, content_type="application/json")
    assert reply.status_code == 400


@pytest.mark.parametrize("encoded", ["\xff\xfe\xfd", "ZG90LWNsaWVudDp3cm9uZzE=\xe9", "é:é"])
def test_basic_credentials_with_non_ascii_bytes_are_not_a_500(client, demo_data, encoded):
    # A WSGI server hands header bytes over as latin-1 text: any byte can arrive.
    reply = client.post("/connect/token", HTTP_AUTHORIZATION=f"Basic {encoded}")
    assert reply.status_code == 400


def test_a_lone_surrogate_in_a_json_client_id_is_banned_and_the_ban_is_a_row(client, demo_data):
    from ratelimit_app.models import CredentialBan

    body = '{"client_id": "demo-\\ud800", "client_secret": "wrong"}'
    statuses = [
        client.post("/connect/token", body, content_type="application/json").status_code
        for _ in range(6)
    ]
    assert statuses == [400] * 5 + [429]
    ban = CredentialBan.objects.get()
    assert ban.client_id == "demo-\\ud800"  # escaped for display, as control characters are


TOKEN_ENDPOINTS = ["/connect/token", "/o/token/", "/o/revoke_token/", "/o/introspect/"]
# Header values reach Django as latin-1 text: any byte can arrive.
LATIN1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=120)
AUTHORIZATION = st.one_of(
    LATIN1,
    st.builds(
        lambda scheme, rest: f"{scheme} {rest}",
        st.sampled_from(["Basic", "basic", "BASIC", "Bearer"]),
        LATIN1,
    ),
    st.builds(
        lambda raw: "Basic " + base64.b64encode(raw).decode(),
        st.binary(max_size=80),
    ),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/json; charset=latin-1",
        "",
    ]
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.dictionaries(
        st.sampled_from(["client_id", "client_secret", "grant_type", "token"]),
        st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text(max_size=5))),
    ).map(lambda d: json.dumps(d).encode()),
    st.dictionaries(
        st.sampled_from(["client_id", "client_secret", "grant_type", "token"]), LATIN1
    ).map(lambda d: urllib.parse.urlencode(d).encode("latin-1")),
)


@settings(
    max_examples=150,
    deadline=None,
    # One database and counter store for all examples: bans they cause stay, as in life.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    endpoint=st.sampled_from(TOKEN_ENDPOINTS),
    authorization=st.one_of(st.none(), AUTHORIZATION),
    content_type=CONTENT_TYPES,
    body=BODIES,
)
def test_random_token_requests_through_the_middleware_are_never_a_5xx(
    demo_data, endpoint, authorization, content_type, body
):
    from django.test import Client

    extra = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    # generic() sends the body's bytes as they are (post() would re-encode them).
    reply = Client().generic("POST", endpoint, body, content_type=content_type, **extra)
    assert reply.status_code < 500


@pytest.mark.parametrize("endpoint", TOKEN_ENDPOINTS)
def test_non_ascii_basic_credentials_are_not_a_500_at_any_token_endpoint(
    client, demo_data, endpoint
):
    # Found by the fuzz test above: the toolkit's introspect view raised ValueError.
    reply = client.post(endpoint, {"token": "x"}, HTTP_AUTHORIZATION="Basic \x80")
    assert reply.status_code < 500
