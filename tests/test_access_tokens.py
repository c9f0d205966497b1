"""ip-token-endpoint-limits.md: "Each API access token has its own rate limit allocation".

Over real HTTP against the demo project (catalogue loaded), with tokens issued by the
demo's ``/connect/token`` and by django-oauth-toolkit's real ``/o/token/`` view, on the
in-process backend (local pass) and on Redis (services pass). The clock is moved, never
waited for: the runtime's test clock reaches the token resolver and the counters.
"""

import time
from urllib.parse import urlencode

import pytest
from oauth2_provider.models import AccessToken

from ratelimit_app import runtime
from tests.http_support import HttpClient

pytestmark = pytest.mark.django_db(transaction=True)

# One second into a minute: no window boundary falls inside a burst.
FROZEN = (int(time.time()) // 60) * 60 + 1
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CLIENTS = {"connect": ("/connect/token", "demo-client", "demo-secret")}
CLIENTS["toolkit"] = ("/o/token/", "dot-client", "dot-secret")


@pytest.fixture
def clock():
    now = [FROZEN]
    runtime.test_clock = lambda: now[0]
    yield now
    runtime.test_clock = None


@pytest.fixture
def http(live_server, demo_data, clock):
    client = HttpClient(live_server.url)
    yield client
    client.close()


def new_token(http, issuer):
    """An access token from the issuer's real token endpoint."""
    path, client_id, secret = CLIENTS[issuer]
    body = urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    reply = http.request("POST", path, FORM, body)
    assert reply.status == 200, reply.body
    assert reply.json()["token_type"] == "Bearer"
    return reply.json()["access_token"]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def validate(http, token):
    return http.request("POST", "/v1/licenses/validate", bearer(token))


@pytest.mark.parametrize("issuer", ["connect", "toolkit"])
def test_two_tokens_from_one_ip_have_separate_budgets_under_the_ips(http, issuer):
    """License validation: 20 a minute per token, 30 a minute per IP (the catalogue)."""
    first, second = new_token(http, issuer), new_token(http, issuer)
    assert first != second
    replies = [validate(http, first) for _ in range(21)]
    assert [r.status for r in replies] == [201] * 20 + [429]
    assert replies[20].header("X-RateLimit-Limit") == "20"  # the first token's budget
    # The second token has a budget of its own, but the address has 10 calls left.
    replies = [validate(http, second) for _ in range(11)]
    assert [r.status for r in replies] == [201] * 10 + [429]
    assert replies[10].header("X-RateLimit-Limit") == "30"  # the per-IP limit refused
    assert replies[10].header("Retry-After") == "60"


def test_without_a_token_resolver_a_token_is_counted_per_ip_only(http, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "TOKEN_RESOLVER": None}
    token = new_token(http, "connect")
    statuses = [validate(http, token).status for _ in range(31)]
    assert statuses == [201] * 30 + [429]  # no per-token 20: only the per-IP 30


def test_a_token_belongs_to_its_applications_tenant(http):
    """TOKEN_TENANTS links the demo's clients: demo-client to the free tenant, the
    toolkit's dot-client to the paid one (tenant-api-group-tiers.md: free Admin burst 50,
    paid five times that)."""
    free = http.get("/acp/admin/ping", **bearer(new_token(http, "connect")))
    paid = http.get("/acp/admin/ping", **bearer(new_token(http, "toolkit")))
    assert (free.header("X-RateLimit-Limit"), paid.header("X-RateLimit-Limit")) == ("50", "250")
    # A token that is no party has no tenant: the tenant's limits do not apply.
    forged = http.get("/acp/admin/ping", **bearer("not.a-live-token"))
    assert forged.status == 200 and forged.header("X-RateLimit-Limit") is None


def test_a_revoked_token_loses_its_identity_within_a_second(http, clock):
    token = new_token(http, "toolkit")
    assert http.get("/acp/admin/ping", **bearer(token)).header("X-RateLimit-Limit") == "250"
    body = urlencode({"token": token, "client_id": "dot-client", "client_secret": "dot-secret"})
    assert http.request("POST", "/o/revoke_token/", FORM, body).status == 200
    assert not AccessToken.objects.exists()  # the toolkit's real revocation
    clock[0] += 0.5  # remembered for up to a second
    assert http.get("/acp/admin/ping", **bearer(token)).header("X-RateLimit-Limit") == "250"
    clock[0] = FROZEN + 1
    reply = http.get("/acp/admin/ping", **bearer(token))
    assert reply.status == 200 and reply.header("X-RateLimit-Limit") is None


def test_an_expired_token_is_not_a_party(http, clock):
    token = new_token(http, "toolkit")
    # Expiring half a second from now: remembered with its expiry, refused from then on
    # although the memo is still fresh.
    AccessToken.objects.update(expires=_aware(FROZEN + 0.5))
    assert http.get("/acp/admin/ping", **bearer(token)).header("X-RateLimit-Limit") == "250"
    clock[0] = FROZEN + 0.5
    assert http.get("/acp/admin/ping", **bearer(token)).header("X-RateLimit-Limit") is None
    statuses = [validate(http, token).status for _ in range(31)]
    assert statuses == [201] * 30 + [429]  # counted per IP only


def test_an_expired_connect_token_is_not_a_party(http, clock):
    token = new_token(http, "connect")
    assert http.get("/acp/admin/ping", **bearer(token)).header("X-RateLimit-Limit") == "50"
    clock[0] = time.time() + 3600  # the demo's tokens live an hour from their issue
    assert http.get("/acp/admin/ping", **bearer(token)).header("X-RateLimit-Limit") is None


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + "a" * 60_000,  # huge
        "Bearer " + "A" * 2048 + "=",  # just past what the keyed hash reads
        b"Bearer " + "jeton-é-ü-😀".encode(),  # non-ASCII (UTF-8 bytes)
        b"Bearer " + bytes(range(0x80, 0x100)),  # bytes that are no UTF-8
        "Bearer",
        "Bearer ",
        "Bearer      ",
        "bearer a b c",
        "Bearer ....",
        "Bearer =",
    ],
)
def test_hostile_authorization_headers_get_no_500(http, header):
    for method, path in (("GET", "/v1/status"), ("GET", "/acp/admin/ping"), ("POST", "/test")):
        reply = http.request(method, path, {"Authorization": header})
        assert reply.status in (200, 201, 429), (path, reply.status, reply.body[:200])


def _aware(epoch):
    import datetime

    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
