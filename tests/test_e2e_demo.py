"""The demo project protected by the catalogue, through real HTTP (Django's live server),
on the in-process backend (local pass) and on Redis (services pass)."""

import time

import pytest

from ratelimit_app import runtime
from ratelimit_app.models import Limit
from tests.e2e_support import bearer
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


key_header = bearer  # an ``Authorization: Bearer`` header


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
