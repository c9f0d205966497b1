"""per-key-rolling-windows.md's "Media uploads: 30 requests per minute" over HTTP, on the
demo with the catalogue loaded: the issue's schedule (30 at once, then one every 2 s),
which the old weighted two-window counter let 58 requests through in 60 s.

The clock is moved, never waited for: the runtime's test clock reaches the counters,
Redis included (services pass)."""

import time

import pytest

from ratelimit_app import runtime
from tests.http_support import HttpClient

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = 60
# One second into a minute: the 6 s sub-windows of the 60 s window start on the minute.
START = (int(time.time()) // 60) * 60 + 1


@pytest.fixture
def clock():
    now = [START]
    runtime.test_clock = lambda: now[0]
    yield now
    runtime.test_clock = None


@pytest.fixture
def upload(live_server, demo_data):
    client = HttpClient(live_server.url)
    headers = {"Authorization": f"Bearer {demo_data['free']}"}
    yield lambda: client.post("/v1/media", **headers)
    client.close()


def admitted_in_any_window(admitted):
    """The most requests admitted in any interval (t - 60 s, t]."""
    return max(sum(1 for other in admitted if at - WINDOW < other <= at) for at in admitted)


def test_a_burst_of_30_then_one_every_2_s_admits_at_most_30_in_any_minute(clock, upload):
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


def test_a_steady_trickle_never_passes_30_in_any_minute(clock, upload):
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
