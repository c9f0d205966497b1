"""per-key-rolling-windows.md, end to end: every scenario of the document over HTTP
against the demo with the catalogue loaded once, on the in-process backend and on Redis.

Its numbers, per API key in rolling windows: standard routes 120 a minute, messaging
300 a minute with a 5 a second burst, media uploads 30 a minute. Its headers on every
response: ``X-RateLimit-Limit`` the requests allowed in the rolling window,
``Remaining`` those left in it, ``Reset`` the Unix time (seconds) when it resets; a 429
with the document's JSON body and ``retry_after_seconds``.

Media's schedule is the issue's (30 at once, then one every 2 s), which the old weighted
two-window counter let 58 requests through in 60 s. The clock is moved, never waited for.
"""

import pytest

from ratelimit_app.models import Limit
from tests import e2e_support
from tests.e2e_support import (
    FREE_KEY,
    PAID_KEY,
    START,
    bearer,
    bump_revision,
    burst_until_denied,
)

pytestmark = pytest.mark.django_db(transaction=True)
# The shared fixtures (tests/e2e_support.py): the deployment, its clock, HTTP to it.
clock, deployment, http = e2e_support.clock, e2e_support.deployment, e2e_support.http

WINDOW = 60
BODY_MESSAGE = "Too many requests. Please wait before retrying."


@pytest.fixture
def upload(http):
    return lambda: http.post("/v1/media", **bearer(FREE_KEY))


def admitted_in_any_window(admitted):
    """The most requests admitted in any interval (t - 60 s, t]."""
    return max(sum(1 for other in admitted if at - WINDOW < other <= at) for at in admitted)


def test_media_a_burst_of_30_then_one_every_2_s_admits_at_most_30_in_any_minute(clock, upload):
    burst = [upload() for _ in range(31)]
    assert [reply.status for reply in burst] == [201] * 30 + [429]
    assert [reply.header("X-RateLimit-Remaining") for reply in burst[:30]] == [
        str(30 - n) for n in range(1, 31)
    ]
    for reply in burst:
        assert reply.header("X-RateLimit-Limit") == "30"
        assert reply.header("X-RateLimit-Reset") == str(START + WINDOW)  # a Unix time
    assert burst[30].header("Retry-After") == "60"
    # One every 2 s for 60 s: the 30 count until START + 60 s, then the window has room.
    for elapsed in range(2, 60, 2):
        clock[0] = START + elapsed
        refused = upload()
        assert refused.status == 429
        assert refused.header("Retry-After") == str(WINDOW - elapsed)
        assert refused.json()["error"]["retry_after_seconds"] == WINDOW - elapsed
        assert refused.header("X-RateLimit-Reset") == str(START + WINDOW)
    clock[0] = START + WINDOW
    after = upload()
    assert (after.status, after.header("X-RateLimit-Remaining")) == (201, "29")
    assert after.header("X-RateLimit-Reset") == str(START + 2 * WINDOW)


def test_media_a_steady_trickle_never_passes_30_in_any_minute(clock, upload):
    """Bursts at sub-window edges and one request every 2 s for three minutes: never more
    than 30 in a minute, and a refusal only when 30 came in the trailing 66 s (the
    window plus one sub-window, the stated precision)."""
    sent = [START + second for second in (0, 5, 5, 6, 6, 59, 65, 66)]
    sent += [START + 66 + 2 * i for i in range(90)]
    admitted = []
    for at in sorted(sent):
        clock[0] = at
        reply = upload()
        assert int(reply.header("X-RateLimit-Reset")) <= at + WINDOW
        if reply.status == 201:  # created
            admitted.append(at)
        else:
            assert reply.status == 429
            assert sum(1 for other in admitted if at - WINDOW - 6 < other <= at) == 30
    assert admitted_in_any_window(admitted) == 30


def test_standard_routes_allow_120_requests_per_minute_per_key(http):
    reply = http.get("/v1/status", **bearer(FREE_KEY))
    assert reply.header("X-RateLimit-Limit") == "120"
    assert reply.header("X-RateLimit-Remaining") == "119"
    assert reply.header("X-RateLimit-Reset") == str(START + WINDOW)  # a Unix time
    allowed, denied = burst_until_denied(http, "GET", "/v1/status", bearer(FREE_KEY))
    assert allowed == 119
    assert denied.header("X-RateLimit-Remaining") == "0"
    assert denied.header("Retry-After") == "60"


def test_messaging_allows_a_burst_of_5_per_second(http, clock):
    allowed, denied = burst_until_denied(http, "POST", "/v1/messages", bearer(FREE_KEY))
    assert allowed == 5
    # Limit is the rolling window's 300 (the 5/s is a burst on top of it); Retry-After
    # is the wait of the burst that refused.
    assert denied.header("X-RateLimit-Limit") == "300"
    assert denied.header("X-RateLimit-Remaining") == "295"
    assert denied.header("Retry-After") == "1"
    clock[0] = START + 1
    allowed, _denied = burst_until_denied(http, "POST", "/v1/messages", bearer(FREE_KEY))
    assert allowed == 5


def test_messaging_allows_300_requests_per_minute_per_key(http, clock):
    # Five a second for a minute: the burst never binds, the rolling 300 does.
    admitted = 0
    for second in range(WINDOW):
        clock[0] = START + second
        for _ in range(5):
            admitted += http.post("/v1/messages", **bearer(FREE_KEY)).status == 201
    assert admitted == 300
    clock[0] = START + WINDOW - 0.5
    denied = http.post("/v1/messages", **bearer(FREE_KEY))
    assert denied.status == 429 and denied.header("X-RateLimit-Limit") == "300"
    assert denied.header("X-RateLimit-Remaining") == "0"
    assert denied.json()["error"]["retry_after_seconds"] == int(denied.header("Retry-After"))


def test_messaging_300_at_one_instant_count_for_a_minute(http):
    Limit.objects.filter(group__slug="messaging", algorithm="gcra").update(shadow=True)
    bump_revision()
    allowed, denied = burst_until_denied(http, "POST", "/v1/messages", bearer(FREE_KEY))
    assert allowed == 300
    assert denied.header("X-RateLimit-Limit") == "300"
    assert denied.header("Retry-After") == "60"
    assert denied.header("X-RateLimit-Reset") == str(START + WINDOW)


def test_limits_are_per_api_key(http):
    allowed, _denied = burst_until_denied(http, "POST", "/v1/media", bearer(FREE_KEY))
    assert allowed == 30
    other = http.post("/v1/media", **bearer(PAID_KEY))  # another key: a window of its own
    assert other.status == 201 and other.header("X-RateLimit-Remaining") == "29"


def test_every_response_carries_the_three_headers_head_included(http):
    """The document's examples: ``curl -I -X GET /v1/status`` and a GET from Python."""
    for method in ("HEAD", "GET"):
        reply = http.request(method, "/v1/status", bearer(FREE_KEY))
        assert reply.status == 200
        assert reply.header("X-RateLimit-Limit") == "120"
        assert int(reply.header("X-RateLimit-Remaining")) in (118, 119)
        assert reply.header("X-RateLimit-Reset") == str(START + WINDOW)


def test_the_429_body_is_the_documents(http):
    allowed, denied = burst_until_denied(http, "POST", "/v1/media", bearer(FREE_KEY))
    assert denied.header("Content-Type") == "application/json"
    assert denied.json() == {
        "success": False,
        "error": {
            "code": "rate_limit_exceeded",
            "message": BODY_MESSAGE,
            "retry_after_seconds": 60,
        },
    }
