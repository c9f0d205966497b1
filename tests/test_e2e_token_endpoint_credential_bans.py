"""token-endpoint-credential-bans.md, end to end: every scenario of the document over
HTTP against the demo with the catalogue loaded once, on the in-process backend and on
Redis.

``POST /connect/token``: a 400 (invalid credentials) counts against the
(client_id, client_secret) pair; after 5 failures the pair gets 429 with
``Retry-After: 600`` for 10 minutes; a changed client_id or client_secret is a new pair
and is not banned; the counter is the credentials', not the IP address's.
"""

from urllib.parse import urlencode

import pytest

from ratelimit_app.models import CredentialBan
from tests import e2e_support
from tests.e2e_support import FORM, START

pytestmark = pytest.mark.django_db(transaction=True)
# The shared fixtures (tests/e2e_support.py): the deployment, its clock, HTTP to it.
clock, deployment, http = e2e_support.clock, e2e_support.deployment, e2e_support.http

CLIENT_ID, SECRET, WRONG = "demo-client", "demo-secret", "wrong-secret"
COOLDOWN = 600


def token(http, client_id=CLIENT_ID, secret=WRONG, address=None):
    body = urlencode({"client_id": client_id, "client_secret": secret})
    headers = {**FORM, **({"X-Forwarded-For": address} if address else {})}
    return http.request("POST", "/connect/token", headers, body)


def test_five_failed_requests_then_429_with_retry_after_600(http):
    failures = [token(http) for _ in range(5)]
    assert [reply.status for reply in failures] == [400] * 5
    assert failures[0].json()["error"] == "invalid_client"
    banned = token(http)
    assert banned.status == 429
    assert banned.header("Retry-After") == "600"
    assert banned.json()["error"]["code"] == "rate_limit_exceeded"
    assert banned.json()["error"]["retry_after_seconds"] == 600
    assert token(http).status == 429  # and stays refused


def test_the_cooldown_is_10_minutes(http, clock):
    for _ in range(5):
        token(http)
    clock[0] = START + COOLDOWN - 1
    still = token(http)
    assert still.status == 429 and still.header("Retry-After") == "1"
    clock[0] = START + COOLDOWN
    assert token(http).status == 400  # the ban is over: the view answers again


def test_a_changed_client_id_or_secret_is_a_new_pair_and_not_banned(http):
    for _ in range(5):
        token(http)
    assert token(http).status == 429
    assert token(http, secret="another-wrong-secret").status == 400  # a new pair
    assert token(http, client_id="another-client").status == 400  # a new pair
    right = token(http, secret=SECRET)
    assert right.status == 200 and right.json()["token_type"] == "Bearer"


def test_the_counter_is_the_credentials_not_the_ip_address(http, settings):
    # Behind a trusted proxy each request comes from another client address.
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "TRUSTED_PROXIES": ["127.0.0.1"]}
    addresses = [f"198.51.100.{n}" for n in range(1, 8)]
    replies = [token(http, address=address) for address in addresses[:6]]
    assert [reply.status for reply in replies] == [400] * 5 + [429]
    assert token(http, address=addresses[6]).status == 429
    # And one address failing with many pairs bans none of them (5 per pair).
    statuses = [token(http, secret=f"guess-{n}", address="203.0.113.9").status for n in range(10)]
    assert statuses == [400] * 10
    assert CredentialBan.objects.filter(client_id=CLIENT_ID).count() == 1


def test_only_400_answers_count(http):
    for _ in range(4):
        assert token(http).status == 400
    for _ in range(3):
        assert token(http, secret=SECRET).status == 200  # another pair, and a success
    assert token(http).status == 400  # the fifth failure of the wrong pair
    assert token(http).status == 429
    assert token(http, secret=SECRET).status == 200  # the right pair was never counted
