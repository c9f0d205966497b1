"""tenant-api-group-tiers.md, end to end: every scenario of the document over HTTP
against the demo with the catalogue loaded once, on the in-process backend and on Redis.

Its numbers: the free tier's table (rate per minute, burst) per API group, paid limits
higher than free (the catalogue: five times), the OTP endpoint's one request per minute
with a burst of one. Its headers: ``X-RateLimit-Limit`` the requests allowed at once from
an empty state, ``Remaining`` those allowed at once now, ``Reset`` the time until the
limiter is back to its initial state, ``Retry-After`` on a 429 the time before a next
request.
"""

import pytest

from tests import e2e_support
from tests.e2e_support import (
    FREE_KEY,
    PAID_KEY,
    START,
    bearer,
    burst_until_denied,
    count_admitted,
)

pytestmark = pytest.mark.django_db(transaction=True)
# The shared fixtures (tests/e2e_support.py): the deployment, its clock, HTTP to it.
clock, deployment, http = e2e_support.clock, e2e_support.deployment, e2e_support.http

# The document's free-tier table: API group -> (rate per minute, burst).
FREE_TIER = {
    "admin": (300, 50),
    "developer": (600, 50),
    "public": (3000, 500),
    "oauth2": (3000, 500),
    "openbanking": (600, 100),
    "web": (3000, 1000),
    "system": (3000, 100),
}
PAID_FACTOR = 5


@pytest.mark.parametrize("group", FREE_TIER)
def test_each_free_group_has_its_tables_burst_rate_and_headers(http, clock, group):
    rate, burst = FREE_TIER[group]
    path, key = f"/acp/{group}/ping", bearer(FREE_KEY)
    first = http.get(path, **key)
    # Limit: what an empty state allows at once; Remaining: what is allowed now.
    assert (first.status, first.header("X-RateLimit-Limit")) == (200, str(burst))
    assert first.header("X-RateLimit-Remaining") == str(burst - 1)
    assert 0 < int(first.header("X-RateLimit-Reset")) <= 1  # one request drains in 60/rate s
    allowed, denied = burst_until_denied(http, "GET", path, key)
    assert allowed + 1 == burst  # exactly the burst, from an empty state
    assert denied.header("X-RateLimit-Limit") == str(burst)
    assert denied.header("X-RateLimit-Remaining") == "0"
    # Reset: the time until the initial state, the whole burst drained at the rate.
    back_to_initial = burst * 60 // rate
    assert denied.header("X-RateLimit-Reset") == str(back_to_initial)
    assert denied.header("Retry-After") == "1"  # one request frees in 60/rate <= 1 s
    assert "Too many requests" in denied.json()["error"]["message"]
    # After Retry-After, requests pass again: the rate per minute, per second.
    clock[0] = START + 1
    assert count_admitted(http, "GET", path, key, rate // 60 + 1) == rate // 60
    # After Reset, the limiter is back to its initial state: the whole burst at once.
    clock[0] = START + 1 + back_to_initial
    again = http.get(path, **key)
    assert again.header("X-RateLimit-Remaining") == str(burst - 1)


def test_the_429_names_too_many_requests_and_carries_retry_after(http):
    allowed, denied = burst_until_denied(http, "GET", "/acp/admin/ping", bearer(FREE_KEY))
    assert (allowed, denied.status) == (50, 429)
    assert denied.header("Content-Type") == "application/json"
    assert denied.json() == {
        "success": False,
        "error": {
            "code": "rate_limit_exceeded",
            "message": "Too many requests. Please wait before retrying.",
            "retry_after_seconds": 1,
        },
    }


@pytest.mark.parametrize("group", FREE_TIER)
def test_the_paid_tier_has_higher_limits_than_the_free_tier(http, group):
    rate, burst = FREE_TIER[group]
    reply = http.get(f"/acp/{group}/ping", **bearer(PAID_KEY))
    assert reply.header("X-RateLimit-Limit") == str(burst * PAID_FACTOR)
    assert reply.header("X-RateLimit-Remaining") == str(burst * PAID_FACTOR - 1)


def test_tenants_have_their_own_bursts_and_the_paid_one_admits_its_own(http, clock):
    allowed, _denied = burst_until_denied(http, "GET", "/acp/admin/ping", bearer(FREE_KEY))
    assert allowed == 50
    # The free tenant's 429s take nothing from the paid tenant's burst of 250.
    allowed, denied = burst_until_denied(http, "GET", "/acp/admin/ping", bearer(PAID_KEY))
    assert allowed == 250 and denied.header("X-RateLimit-Reset") == "10"  # 250 at 1,500/min
    clock[0] = START + 1
    assert count_admitted(http, "GET", "/acp/admin/ping", bearer(PAID_KEY), 26) == 25


def test_the_otp_endpoint_allows_one_request_per_minute_with_a_burst_of_one(http, clock):
    first = http.post("/test", **bearer(FREE_KEY))
    assert (first.status, first.header("X-RateLimit-Limit")) == (201, "1")
    denied = http.post("/test", **bearer(FREE_KEY))
    assert denied.status == 429 and denied.header("Retry-After") == "60"
    clock[0] = START + 59
    assert http.post("/test", **bearer(FREE_KEY)).status == 429
    clock[0] = START + 60
    assert http.post("/test", **bearer(FREE_KEY)).status == 201


def sf_list(value):
    """A Structured Field list (RFC 9651) as {name: parameters}; fails on bad syntax."""
    import http_sf

    return {name: params for name, params in http_sf.parse(value.encode(), tltype="list")}


@pytest.mark.parametrize("group", FREE_TIER)
def test_a_rolling_average_over_the_last_hour_counts_on_top_of_the_burst(
    http, clock, settings, group
):
    """ "the average limit is calculated as a rolling request amount average from the
    last hours": the catalogue's hour-long rolling window (half the per-minute rate,
    sustained for an hour) counts every admitted request, burst or not; the IETF fields
    list it beside the burst limit."""
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "IETF_HEADERS": True}
    rate, burst = FREE_TIER[group]
    hourly, name = rate * 60 // 2, f"{group}-tenant-3600s"
    for sent in range(1, 4):
        clock[0] = START + 10 * sent  # whole refills of the burst between requests
        reply = http.get(f"/acp/{group}/ping", **bearer(FREE_KEY))
        assert sf_list(reply.header("RateLimit-Policy"))[name] == {"q": hourly, "w": 3600}
        assert sf_list(reply.header("RateLimit"))[name]["r"] == hourly - sent
        assert reply.header("X-RateLimit-Remaining") == str(burst - 1)  # the burst is full
