"""The demo project protected by the catalogue, through real HTTP (Django's live server),
on the in-process backend (local pass) and on Redis (services pass)."""

import time

import pytest

from ratelimit_app import runtime
from ratelimit_app.models import Limit
from tests.http_support import HttpClient

pytestmark = pytest.mark.django_db(transaction=True)


# One second into a minute, and frozen: no window boundary and no GCRA refill can fall
# inside a burst, so every count below is exact on both backends (Redis takes it too).
FROZEN = (int(time.time()) // 60) * 60 + 1


@pytest.fixture(autouse=True)
def frozen_clock():
    runtime.test_clock = lambda: FROZEN
    yield
    runtime.test_clock = None


@pytest.fixture
def http(live_server):
    client = HttpClient(live_server.url)
    yield client
    client.close()


def key_header(secret):
    return {"Authorization": f"Bearer {secret}"}


def burst_until_denied(http, method, path, headers, limit=5000):
    """Send requests until the first 429; return (allowed count, the 429 reply)."""
    for sent in range(limit):
        reply = http.request(method, path, headers)
        if reply.status == 429:
            return sent, reply
        assert reply.status < 400, reply.body
    raise AssertionError(f"no 429 after {limit} requests")


def test_free_admin_group_allows_a_burst_of_50_then_429(http, demo_data):
    first = http.get("/acp/admin/ping", **key_header(demo_data["free"]))
    assert first.status == 200
    assert first.header("X-RateLimit-Limit") == "50"
    assert first.header("X-RateLimit-Remaining") == "49"
    assert 0 < int(first.header("X-RateLimit-Reset")) <= 1  # one request: 0.2 s to drain
    allowed, denied = burst_until_denied(
        http, "GET", "/acp/admin/ping", key_header(demo_data["free"])
    )
    assert allowed + 1 == 50  # the first request, then 49 more
    assert denied.header("X-RateLimit-Limit") == "50"
    assert denied.header("X-RateLimit-Remaining") == "0"
    assert denied.header("X-RateLimit-Reset") == "10"  # 50 x 0.2 s
    assert denied.header("Retry-After") == "1"
    assert denied.header("Content-Type") == "application/json"
    assert denied.json() == {
        "success": False,
        "error": {
            "code": "rate_limit_exceeded",
            "message": "Too many requests. Please wait before retrying.",
            "retry_after_seconds": 1,
        },
    }


def test_paid_tenant_gets_its_higher_numbers(http, demo_data):
    reply = http.get("/acp/admin/ping", **key_header(demo_data["paid"]))
    assert reply.header("X-RateLimit-Limit") == "250"
    for _ in range(60):
        assert http.get("/acp/admin/ping", **key_header(demo_data["paid"])).status == 200


def test_messaging_burst_of_5_per_second(http, demo_data):
    allowed, denied = burst_until_denied(
        http, "POST", "/v1/messages", key_header(demo_data["free"])
    )
    assert allowed == 5
    # per-key-rolling-windows.md: Limit is the rolling window's 300 (the 5/s is a burst
    # on top of it); Retry-After is the wait of the burst that refused.
    assert denied.header("X-RateLimit-Limit") == "300"
    assert denied.header("X-RateLimit-Remaining") == "295"
    assert denied.header("Retry-After") == "1"


def test_messaging_300_per_minute_rolling_window(http, demo_data):
    Limit.objects.filter(group__slug="messaging", algorithm="gcra").update(shadow=True)
    _bump_revision()
    allowed, denied = burst_until_denied(
        http, "POST", "/v1/messages", key_header(demo_data["free"])
    )
    assert allowed == 300
    assert denied.header("X-RateLimit-Limit") == "300"
    # The 300 came at one instant (the clock is frozen): they count for 60 s from then.
    assert denied.header("Retry-After") == "60"
    assert denied.header("X-RateLimit-Reset") == str(FROZEN + 60)
    assert denied.json()["error"]["retry_after_seconds"] == int(denied.header("Retry-After"))


def test_standard_routes_120_per_minute_with_an_epoch_reset(http, demo_data):
    reply = http.get("/v1/status", **key_header(demo_data["free"]))
    assert reply.header("X-RateLimit-Limit") == "120"
    reset = int(reply.header("X-RateLimit-Reset"))
    assert reset == FROZEN + 60  # Unix seconds when the rolling window is empty
    allowed, denied = burst_until_denied(http, "GET", "/v1/status", key_header(demo_data["free"]))
    assert allowed == 119
    assert denied.header("X-RateLimit-Remaining") == "0"


def test_license_extra_limit_binds_before_the_keys_own(http, demo_data):
    allowed, denied = burst_until_denied(
        http, "POST", "/v1/licenses/validate", key_header(demo_data["free"])
    )
    assert allowed == 20
    assert denied.header("X-RateLimit-Limit") == "20"
    # The key's own API-wide limit still has room: other routes are served.
    assert http.get("/v1/status", **key_header(demo_data["free"])).status == 200


def test_otp_endpoint_allows_one_per_minute(http, demo_data):
    assert http.post("/test", **key_header(demo_data["free"])).status == 201
    denied = http.post("/test", **key_header(demo_data["free"]))
    assert denied.status == 429
    assert denied.header("Retry-After") == "60"


def test_ip_and_api_key_limits_bind_at_once(http, demo_data):
    Limit.objects.filter(group__slug="all", scope="ip").update(rate=3)
    _bump_revision()
    for _ in range(3):
        assert http.get("/v1/status", **key_header(demo_data["free"])).status == 200
    denied = http.get("/v1/status", **key_header(demo_data["free"]))
    assert denied.status == 429 and denied.header("X-RateLimit-Limit") == "3"
    # Anonymous requests from the same IP are denied too: the IP bucket is full.
    assert http.get("/v1/status").status == 429


def test_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(http, demo_data):
    Limit.objects.filter(group__slug="all", scope="ip").update(rate=2)
    _bump_revision()
    assert http.get("/v1/legacy", **{"X-Forwarded-For": "1.1.1.1"}).status == 200
    assert http.get("/v1/legacy", **{"X-Forwarded-For": "2.2.2.2"}).status == 200
    assert http.get("/v1/legacy", **{"X-Forwarded-For": "3.3.3.3"}).status == 429


def test_an_admin_edit_takes_effect_without_a_restart(http, demo_data, admin_client):
    reply = http.get("/acp/developer/ping", **key_header(demo_data["free"]))
    assert reply.header("X-RateLimit-Limit") == "50"
    limit = Limit.objects.get(tier__name="free", group__slug="developer", algorithm="gcra")
    response = admin_client.post(
        f"/admin/ratelimit_app/limit/{limit.pk}/change/",
        {
            "group": limit.group_id,
            "tier": limit.tier_id,
            "scope": "tenant",
            "algorithm": "gcra",
            "rate": 600,
            "period": 60,
            "burst": 7,
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content
    reply = http.get("/acp/developer/ping", **key_header(demo_data["free"]))
    assert reply.header("X-RateLimit-Limit") == "7"


def test_plain_django_view_is_limited_through_its_path_pattern(http, demo_data):
    Limit.objects.filter(group__slug="all").update(shadow=True)
    _bump_revision()
    reply = http.get("/hello", **key_header(demo_data["free"]))
    assert reply.status == 200
    assert reply.header("X-RateLimit-Limit") == "1000"  # the web group's burst
    assert reply.header("X-RateLimit-Remaining") == "999"


def test_the_per_ip_limits_cover_the_api_and_token_endpoints_only(http, demo_data):
    """ip-token-endpoint-limits.md puts its per-IP and per-token limits on its API and
    the token endpoints: a path of the API without a group of its own gets them, the
    admin and the ACP groups (their own document) do not."""
    Limit.objects.filter(group__slug="all", scope="ip").update(rate=2)
    _bump_revision()
    assert http.get("/o/authorize/").header("X-RateLimit-Limit") == "2"
    assert http.get("/admin/login/").header("X-RateLimit-Limit") is None
    acp = http.get("/acp/admin/ping", **key_header(demo_data["free"]))
    assert acp.header("X-RateLimit-Limit") == "50"  # the group's burst, no per-IP 2
    for _ in range(5):
        assert http.get("/acp/admin/ping", **key_header(demo_data["free"])).status == 200


def test_each_free_acp_group_reports_and_admits_its_documents_burst(client, demo_data):
    """tenant-api-group-tiers.md, free tier: from an empty state each group reports and
    admits exactly its burst (Web's 1,000 was capped at 600 by a per-IP limit)."""
    bursts = {"admin": 50, "developer": 50, "public": 500, "oauth2": 500, "web": 1000}
    bursts |= {"openbanking": 100, "system": 100}
    key = {"HTTP_X_API_KEY": demo_data["free"]}
    for group, burst in bursts.items():
        first = client.get(f"/acp/{group}/ping", **key)
        assert first["X-RateLimit-Limit"] == str(burst), group
        statuses = [client.get(f"/acp/{group}/ping", **key).status_code for _ in range(burst)]
        assert statuses.count(200) == burst - 1 and statuses[-1] == 429, group


def test_unknown_and_revoked_keys_are_counted_per_ip(http, demo_data):
    anonymous = http.get("/v1/status", **key_header("5ca1ab1e.not-the-secret"))
    assert anonymous.status == 200
    assert anonymous.header("X-RateLimit-Limit") == "600"  # only the per-IP limit applies


def _bump_revision():
    from ratelimit_app.policy import revision

    revision.bump()


def test_the_acp_url_cannot_pick_its_way_out_of_a_limit(client, demo_data):
    # /acp/ADMIN/ping is the admin group's endpoint, counted with /acp/admin/ping.
    key = {"HTTP_X_API_KEY": demo_data["free"]}
    lower = client.get("/acp/admin/ping", **key)
    upper = client.get("/acp/ADMIN/ping", **key)
    assert upper["X-RateLimit-Limit"] == lower["X-RateLimit-Limit"] == "50"
    assert int(upper["X-RateLimit-Remaining"]) == int(lower["X-RateLimit-Remaining"]) - 1
    assert client.get("/acp/nosuchgroup/ping", **key).status_code == 404


def test_one_address_has_one_per_ip_budget_whatever_key_it_presents(client, demo_data):
    """ip-token-endpoint-limits.md: 30 license calls a minute per IP. Presenting a free
    key, then a paid one (or none), must not open a second per-IP budget: the tier only
    decides the number, the counter is the address's."""
    keys = [demo_data["free"], demo_data["paid"]]
    admitted = 0
    for n in range(80):
        # Each key alone stays under its per-key limit of 20: only the per-IP 30 binds.
        headers = {"HTTP_X_API_KEY": keys[n % 2]} if n < 38 else {}
        response = client.post("/v1/licenses/validate", **headers)
        assert response.status_code in (201, 429)
        admitted += response.status_code == 201
    assert admitted == 30


def test_each_document_gets_its_own_headers_in_one_process(http, demo_data):
    """tenant-api-group-tiers.md (ACP): Reset is the time until the initial state;
    per-key-rolling-windows.md (/v1): Reset is a Unix time, Limit the window's number."""
    acp = http.get("/acp/admin/ping", **key_header(demo_data["free"]))
    assert acp.header("X-RateLimit-Limit") == "50"  # free Admin: burst 50 from empty
    assert 0 < int(acp.header("X-RateLimit-Reset")) <= 1  # seconds, not a Unix time
    media = http.post("/v1/media", **key_header(demo_data["free"]))
    assert media.header("X-RateLimit-Limit") == "30"  # media: 30 per minute
    # A Unix time: the rolling window is empty 60 s after its last admission.
    assert media.header("X-RateLimit-Reset") == str(FROZEN + 60)


def test_an_operator_sets_a_groups_header_style_in_the_admin(http, demo_data):
    from ratelimit_app.models import EndpointGroup

    EndpointGroup.objects.filter(slug="admin").update(reset_style="epoch")
    _bump_revision()
    acp = http.get("/acp/admin/ping", **key_header(demo_data["free"]))
    assert int(acp.header("X-RateLimit-Reset")) > FROZEN
    EndpointGroup.objects.filter(slug="messaging").update(
        reset_style="", headers_describe="tightest"
    )
    _bump_revision()
    messages = http.post("/v1/messages", **key_header(demo_data["free"]))
    assert messages.header("X-RateLimit-Limit") == "5"  # the burst, the tightest now
    assert int(messages.header("X-RateLimit-Reset")) <= 1  # RESET_STYLE: delta
