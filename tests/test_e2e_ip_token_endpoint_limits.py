"""ip-token-endpoint-limits.md, end to end: every scenario of the document over HTTP
against the demo with the catalogue loaded once, on the in-process backend and on Redis.

Limits per source IP and per API access token at once, with additional limits on the
critical endpoints (license validation and activation), and a 429 with a JSON body when
one is exceeded. The document gives no numbers; the catalogue's are: per IP 600 a minute
across the API (the demo's /v1/* and /o/*) and 60 on the token endpoints; per token (an
API key, or an access token from /connect/token or django-oauth-toolkit's /o/token/)
1,200 a minute; on licenses 20 a minute per key or token and 30 per IP.

Access tokens are resolved by the demo's TOKEN_RESOLVER; the clock is moved, never
waited for: the runtime's test clock reaches the token resolver and the counters.
"""

import datetime
import time
from urllib.parse import urlencode

import pytest
from oauth2_provider.models import AccessToken

from ratelimit_app.models import Limit
from tests import e2e_support
from tests.e2e_support import (
    FORM,
    FREE_KEY,
    PAID_KEY,
    START,
    bearer,
    bump_revision,
    burst_until_denied,
    new_token,
)

pytestmark = pytest.mark.django_db(transaction=True)
# The shared fixtures (tests/e2e_support.py): the deployment, its clock, HTTP to it.
clock, deployment, http = e2e_support.clock, e2e_support.deployment, e2e_support.http
FROZEN = START


def validate(http, token):
    return http.request("POST", "/v1/licenses/validate", bearer(token))


def test_each_ip_has_600_requests_a_minute_across_the_api(http):
    allowed, denied = burst_until_denied(http, "GET", "/v1/legacy", {})
    assert allowed == 600
    assert denied.header("X-RateLimit-Limit") == "600"
    assert denied.header("Retry-After") == "60"
    assert denied.json()["error"]["code"] == "rate_limit_exceeded"
    # The address's budget covers the whole API, a key presented or not.
    assert http.get("/v1/status", **bearer(FREE_KEY)).status == 429


def test_each_ip_has_60_requests_a_minute_on_the_token_endpoints(http):
    body = urlencode({"client_id": "demo-client", "client_secret": "demo-secret"})
    statuses = [http.request("POST", "/connect/token", FORM, body).status for _ in range(61)]
    assert statuses == [200] * 60 + [429]


def test_license_validation_and_activation_have_an_extra_limit_per_key(http):
    paths = ["/v1/licenses/validate", "/v1/licenses/activate"]
    statuses = [http.post(paths[n % 2], **bearer(FREE_KEY)).status for n in range(21)]
    assert statuses == [201] * 20 + [429]
    # The key's own API-wide limit still has room: other routes are served.
    assert http.get("/v1/status", **bearer(FREE_KEY)).status == 200


def test_ip_and_api_key_limits_bind_at_once(http):
    Limit.objects.filter(group__slug="all", scope="ip").update(rate=3)
    bump_revision()
    for _ in range(3):
        assert http.get("/v1/status", **bearer(FREE_KEY)).status == 200
    denied = http.get("/v1/status", **bearer(FREE_KEY))
    assert denied.status == 429 and denied.header("X-RateLimit-Limit") == "3"
    # Anonymous requests from the same IP are denied too: the IP bucket is full.
    assert http.get("/v1/status").status == 429


def test_the_per_ip_limits_cover_the_api_and_token_endpoints_only(http):
    """ip-token-endpoint-limits.md puts its per-IP and per-token limits on its API and
    the token endpoints: a path of the API without a group of its own gets them, the
    admin and the ACP groups (their own document) do not."""
    Limit.objects.filter(group__slug="all", scope="ip").update(rate=2)
    bump_revision()
    assert http.get("/o/authorize/").header("X-RateLimit-Limit") == "2"
    assert http.get("/admin/login/").header("X-RateLimit-Limit") is None
    acp = http.get("/acp/admin/ping", **bearer(FREE_KEY))
    assert acp.header("X-RateLimit-Limit") == "50"  # the group's burst, no per-IP 2
    for _ in range(5):
        assert http.get("/acp/admin/ping", **bearer(FREE_KEY)).status == 200


def test_one_address_has_one_per_ip_budget_whatever_key_it_presents(http):
    """ip-token-endpoint-limits.md: 30 license calls a minute per IP. Presenting a free
    key, then a paid one (or none), must not open a second per-IP budget: the tier only
    decides the number, the counter is the address's."""
    keys = [FREE_KEY, PAID_KEY]
    admitted = 0
    for n in range(80):
        # Each key alone stays under its per-key limit of 20: only the per-IP 30 binds.
        headers = {"X-API-Key": keys[n % 2]} if n < 38 else {}
        status = http.request("POST", "/v1/licenses/validate", headers).status
        assert status in (201, 429)
        admitted += status == 201
    assert admitted == 30


def test_unknown_and_revoked_keys_are_counted_per_ip(http):
    anonymous = http.get("/v1/status", **bearer("5ca1ab1e.not-the-secret"))
    assert anonymous.status == 200
    assert anonymous.header("X-RateLimit-Limit") == "600"  # only the per-IP limit applies


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


def failing_resolver(token, now):
    """A TOKEN_RESOLVER whose own store is down, raising what its client raises."""
    raise ConnectionError("the token store did not answer")


def test_a_resolver_that_raises_counts_the_token_per_ip_and_never_500s(http, settings, caplog):
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "TOKEN_RESOLVER": f"{__name__}.failing_resolver",
    }
    token = new_token(http, "connect")
    with caplog.at_level("ERROR", logger="ratelimit_app"):
        statuses = [validate(http, token).status for _ in range(31)]
    assert statuses == [201] * 30 + [429]  # the per-IP 30, as with no resolver
    failures = [r for r in caplog.records if "TOKEN_RESOLVER raised" in r.getMessage()]
    assert len(failures) <= 1 and token not in caplog.text


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


def test_a_token_of_an_inactive_tenant_is_refused_like_its_keys(http):
    from ratelimit_app.models import Tenant

    token = new_token(http, "toolkit")
    tenant = Tenant.objects.get(slug="paid-tenant")
    tenant.active = False
    tenant.save()  # as the admin saves it (the policy revision moves)
    refused = http.get("/acp/admin/ping", **bearer(token))
    assert refused.status == 403 and "inactive" in refused.json()["detail"]


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
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
