"""The surfaces over one core, through Django's real request cycle (test client)."""

import asyncio
import logging
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIRequestFactory

from ratelimit_app.models import Limit
from ratelimit_app.signals import request_throttled
from ratelimit_app.throttling import PolicyThrottle

pytestmark = pytest.mark.django_db


def bearer(secret):
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def exhaust(client, method, path, **extra):
    for _ in range(5000):
        response = getattr(client, method)(path, **extra)
        if response.status_code == 429:
            return response
    raise AssertionError("never throttled")


def test_drf_and_middleware_send_the_same_429_body(client, demo_data):
    drf = exhaust(client, "post", "/test", **bearer(demo_data["free"]))  # DRF view, OTP
    Limit.objects.filter(group__slug="all", scope="ip").update(rate=1)
    plain = exhaust(client, "get", "/v1/legacy")  # plain Django view
    assert drf.json()["error"]["code"] == plain.json()["error"]["code"] == "rate_limit_exceeded"
    assert set(drf.json()) == set(plain.json()) == {"success", "error"}
    assert drf.json()["error"].keys() == plain.json()["error"].keys()
    for response in (drf, plain):
        assert int(response["Retry-After"]) == response.json()["error"]["retry_after_seconds"]
        assert response["X-RateLimit-Remaining"] == "0"


@pytest.mark.parametrize("style", ["drf", "problem", "tests.test_enforcement.custom_body"])
def test_body_styles(client, demo_data, settings, style):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "BODY": style}
    response = exhaust(client, "post", "/test", **bearer(demo_data["free"]))
    body = response.json()
    seconds = int(response["Retry-After"])
    if style == "drf":
        assert body == {
            "detail": f"Request was throttled. Expected available in {seconds} seconds."
        }
    elif style == "problem":
        assert response["Content-Type"] == "application/problem+json"
        # draft-ietf-httpapi-ratelimit-headers: the quota-exceeded problem type.
        assert body["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
        assert body["status"] == 429 and body["retry_after_seconds"] == seconds
        assert body["violated-policies"] == ["otp-tenant-60s"]
        assert body["violated_limits"] == [{"name": "otp-tenant-60s", "limit": 1, "period": 60}]
    else:
        assert body == {"slow_down": seconds}


def custom_body(decision, seconds, message):
    return {"slow_down": seconds}


def sf_list(value):
    """A Structured Field list (RFC 9651) as {name: parameters}; fails on bad syntax."""
    import http_sf

    return {name: params for name, params in http_sf.parse(value.encode(), tltype="list")}


def test_ietf_headers_are_structured_fields_that_tell_the_truth(client, demo_data, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "IETF_HEADERS": True}
    response = client.get("/acp/admin/ping", **bearer(demo_data["free"]))
    policies = sf_list(response["RateLimit-Policy"])
    # tenant-api-group-tiers.md, free Admin: 300 a minute, burst 50. The quota and window
    # are the sustained rate; the burst is a parameter of its own.
    assert policies["admin-tenant-60s"] == {"q": 300, "w": 60, "burst": 50}
    assert sf_list(response["RateLimit"])["admin-tenant-60s"] == {"r": 49, "t": 1}


def test_on_a_429_no_ietf_reset_is_later_than_retry_after(client, demo_data, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "IETF_HEADERS": True}
    denied = exhaust(client, "post", "/test", **bearer(demo_data["free"]))  # OTP: 1 a minute
    wait = int(denied["Retry-After"])
    limits = sf_list(denied["RateLimit"])
    assert limits and all(params["t"] <= wait for params in limits.values())
    assert limits["otp-tenant-60s"]["r"] == 0


def test_policy_names_are_valid_sf_strings_whatever_they_hold():
    import http_sf

    from ratelimit_app.responses import sf_string

    for name in ["plain", 'a"quote', "back\\slash", "café-naïve", "tab\there"]:
        parsed = http_sf.parse(f"{sf_string(name)};q=1".encode(), tltype="list")
        assert parsed[0][0] == "".join(c if " " <= c <= "~" else "?" for c in name)


def test_decorator_and_middleware_charge_once(client, demo_data):
    remaining = [
        int(client.get("/v1/legacy", **bearer(demo_data["free"]))["X-RateLimit-Remaining"])
        for _ in range(3)
    ]
    assert remaining == [119, 118, 117]


def test_async_view_under_the_decorator(async_client, client, demo_data, settings):
    # The snapshot is built here first: the worker thread then needs no database.
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 3600}
    client.get("/hello")

    async def run():
        return [
            await async_client.get(
                "/v1/async", headers={"Authorization": f"Bearer {demo_data['free']}"}
            )
            for _ in range(2)
        ]

    first, second = asyncio.run(run())
    assert first.status_code == 200
    assert [first["X-RateLimit-Remaining"], second["X-RateLimit-Remaining"]] == ["119", "118"]


def test_steady_state_requests_make_no_database_query(client, demo_data, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 3600}
    client.get("/v1/status", **bearer(demo_data["free"]))  # builds the snapshot
    with CaptureQueriesContext(connection) as queries:
        for _ in range(10):
            response = client.get("/v1/status", **bearer(demo_data["free"]))
            assert response.status_code == 200
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_throttle_wait_is_the_rounded_up_retry_after(demo_data):
    from project.demo.views import OtpTestView

    factory = APIRequestFactory()
    view = OtpTestView()
    throttle = PolicyThrottle()
    request = view.initialize_request(factory.post("/test", **bearer(demo_data["free"])))
    assert throttle.allow_request(request, view) and throttle.wait() is None
    denied = PolicyThrottle()
    request = view.initialize_request(factory.post("/test", **bearer(demo_data["free"])))
    with pytest.raises(Exception) as exc:
        denied.allow_request(request, view)
    assert denied.wait() == exc.value.wait
    assert 59 <= denied.wait() <= 60


def test_signal_and_log_line_hold_no_secret(client, demo_data, caplog):
    seen = []

    def receiver(sender, request, decision, group, **kwargs):
        seen.append((group, decision.allowed))

    request_throttled.connect(receiver)
    try:
        with caplog.at_level(logging.INFO, logger="ratelimit_app"):
            exhaust(client, "post", "/test", **bearer(demo_data["free"]))
    finally:
        request_throttled.disconnect(receiver)
    assert seen == [("otp", False)]
    logged = caplog.text
    assert "Throttled POST /test" in logged
    assert demo_data["free"] not in logged and demo_data["free"].split(".")[0] not in logged
    assert "127.0.0.1" not in logged


def test_fail_open_serves_without_limit_headers(client, demo_data, redis_down, caplog):
    with caplog.at_level(logging.WARNING, logger="ratelimit_app"):
        responses = [client.get("/v1/status", **bearer(demo_data["free"])) for _ in range(10)]
    assert all(r.status_code == 200 for r in responses)
    assert all("X-RateLimit-Limit" not in r for r in responses)
    # Logged when it starts failing and when the breaker opens, not once per request.
    assert 1 <= len(caplog.records) <= 3


def test_fail_closed_answers_503_with_retry_after(client, demo_data, redis_down, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "FAILURE_MODE": "closed"}
    plain = client.get("/v1/legacy")
    drf = client.get("/v1/status", **bearer(demo_data["free"]))
    cooldown = int(settings.RATELIMIT_APP.get("BREAKER_COOLDOWN", 5.0))  # the conf default
    for response in (plain, drf):
        assert response.status_code == 503
        # docs/reliability.md: fail-closed answers 503 with the breaker's cooldown.
        assert response["Retry-After"] == str(cooldown)
        assert response.json() == {
            "success": False,
            "error": {
                "code": "rate_limiter_unavailable",
                "message": "Rate limiting is unavailable; try again soon.",
                "retry_after_seconds": cooldown,
            },
        }


@pytest.mark.services
def test_keys_hold_no_raw_identity(client, demo_data):
    import redis
    from django.conf import settings as django_settings

    from ratelimit_app.conf import get_config

    client.get("/v1/status", **bearer(demo_data["free"]))
    server = redis.Redis.from_url(django_settings.REDIS_URL)
    keys = [k.decode() for k in server.scan_iter(f"{get_config()['KEY_PREFIX']}:*")]
    assert keys
    for key in keys:
        assert "127.0.0.1" not in key
        assert demo_data["free"].split(".")[0] not in key
        # The prefix, then the party's hash tag: a keyed hash, never the raw value.
        assert re.fullmatch(rf"{get_config()['KEY_PREFIX']}:\{{[\w-]+\}}:\S+", key), key


@pytest.mark.services
def test_async_middleware_does_not_block_the_event_loop(
    async_client, client, demo_data, settings, private_redis
):
    """With Redis paused, an ASGI request waits out the timeout in a worker thread while
    other coroutines keep running."""
    import os
    import signal
    import time

    settings.CACHES = {
        **settings.CACHES,
        "private": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": private_redis.url},
    }
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "CACHE_ALIAS": "private",
        "SOCKET_TIMEOUT": 0.5,
        "POLICY_REFRESH_INTERVAL": 3600,
    }
    assert client.get("/v1/legacy")["X-RateLimit-Limit"]  # snapshot built, connection made

    async def run():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        response = await async_client.get("/v1/legacy")
        elapsed = time.monotonic() - started
        stop = True
        await task
        return response, ticks, elapsed

    os.kill(private_redis.process.pid, signal.SIGSTOP)
    try:
        response, ticks, elapsed = asyncio.run(run())
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    assert response.status_code == 200  # fail-open
    assert elapsed >= 0.4  # it did wait for Redis ...
    assert ticks >= 20  # ... while the loop kept running


def test_drf_throttle_scope_names_the_group_when_ratelimit_group_is_absent(demo_data):
    from rest_framework.views import APIView

    class ScopedView(APIView):
        throttle_scope = "otp"

    factory = APIRequestFactory()
    view = ScopedView()
    request = view.initialize_request(factory.post("/anything", **bearer(demo_data["free"])))
    throttle = PolicyThrottle()
    assert throttle.allow_request(request, view)
    assert throttle.verdict.group == "otp"
    assert throttle.verdict.decision.limit == 1


def tenant_of_user(request, user):
    """TENANT_RESOLVER for the test below: users named after a tenant's slug."""
    return user.username


def test_tenant_from_the_user_through_the_resolver_and_per_user_limits(
    client, demo_data, settings, django_user_model
):
    """A session user on a plain view (the demo's DRF views authenticate nobody, and
    DRF then sets Django's request.user to anonymous too)."""
    from tests.factories import LimitFactory

    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "TENANT_RESOLVER": "tests.test_enforcement.tenant_of_user",
    }
    user = django_user_model.objects.create_user("paid-tenant", password="pw")
    client.force_login(user)
    assert client.get("/v1/legacy")["X-RateLimit-Limit"] == "3000"  # the paid tier's IP limit
    client.logout()
    assert client.get("/v1/legacy")["X-RateLimit-Limit"] == "600"  # anonymous: default tier
    client.force_login(user)
    paid_web = Limit.objects.get(tier__name="paid", group__slug="web", algorithm="gcra")
    LimitFactory(group=paid_web.group, tier=paid_web.tier, scope="user", rate=3, period=10, burst=3)
    assert [client.get("/hello").status_code for _ in range(4)] == [200] * 3 + [429]
