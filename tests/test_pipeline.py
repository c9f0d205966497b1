"""The pipeline: one check and one feedback per request, whichever surfaces see it."""

import logging
import time
from unittest import mock

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.utils.functional import SimpleLazyObject

from project.demo.tokens import issue_token
from ratelimit_app import hashing, runtime
from ratelimit_app.counters.algorithms import FIXED_WINDOW, LimitSpec
from ratelimit_app.enforcement import Verdict, pipeline
from ratelimit_app.models import Limit, Tenant
from ratelimit_app.signals import request_throttled
from tests.factories import LimitFactory

pytestmark = pytest.mark.django_db

WRONG = {"client_id": "demo-client", "client_secret": "wrong-secret-123"}


@pytest.fixture
def store_calls():
    """Counts the counter-store checks and failure records of this test's backend."""
    backend = runtime.get_backend()
    with (
        mock.patch.object(backend, "check", wraps=backend.check) as check,
        mock.patch.object(backend, "record_failures", wraps=backend.record_failures) as record,
    ):
        yield check, record


@override_settings(ROOT_URLCONF="tests.pipeline_urls")
def test_a_decorated_token_view_behind_the_middleware_counts_each_failure_once(
    client, demo_data, store_calls
):
    check, record = store_calls
    statuses = [client.post("/connect/token", WRONG).status_code for _ in range(6)]
    # Five failures ban the pair (token-endpoint-credential-bans.md), not fewer.
    assert statuses == [400] * 5 + [429]
    assert record.call_count == 5
    assert check.call_count == 5  # the sixth is denied from the ban row, without a call


def test_a_drf_view_behind_the_middleware_makes_one_store_call(client, demo_data, store_calls):
    check, _record = store_calls
    key = {"HTTP_X_API_KEY": demo_data["free"]}
    reply = client.get("/v1/status", **key)
    assert reply.status_code == 200
    assert check.call_count == 1
    assert reply["X-RateLimit-Limit"]  # the middleware still sets the headers


@override_settings(ROOT_URLCONF="tests.pipeline_urls")
def test_a_view_naming_an_unknown_group_gets_its_paths_group_and_is_logged_once(
    client, demo_data, caplog, monkeypatch
):
    # The once-only memory is per process: start it empty, whatever ran before here.
    monkeypatch.setattr(pipeline, "_REPORTED_UNKNOWN", set())
    key = {"HTTP_X_API_KEY": demo_data["free"]}
    with caplog.at_level("WARNING", logger="ratelimit_app"):
        replies = [client.get("/acp/admin/misnamed", **key) for _ in range(3)]
    admin = client.get("/acp/admin/ping", **key)
    # The admin group's limit (tenant-api-group-tiers.md: 50 at once for free), one counter.
    assert replies[0]["X-RateLimit-Limit"] == admin["X-RateLimit-Limit"] == "50"
    assert int(admin["X-RateLimit-Remaining"]) == int(replies[0]["X-RateLimit-Remaining"]) - 3
    assert caplog.text.count("names the unknown endpoint group 'no-such-group'") == 1


def test_unknown_group_names_are_logged_up_to_a_bound_each_cut_to_100_characters(
    caplog, monkeypatch
):
    monkeypatch.setattr(pipeline, "_REPORTED_UNKNOWN", set())
    names = [f"{n:03d}-" + "g" * 150 for n in range(pipeline.MAX_REPORTED_UNKNOWN + 10)]
    with caplog.at_level("WARNING", logger="ratelimit_app"):
        for name in names + names[:5]:
            pipeline._report_unknown_group(name)
    assert len(caplog.records) == pipeline.MAX_REPORTED_UNKNOWN == 256
    first = caplog.records[0]
    assert first.getMessage() == (
        f"A view names the unknown endpoint group {names[0][:100]!r}; "
        "its path patterns decide instead."
    )


def test_a_throttled_request_is_logged_with_its_limit_and_a_keyed_party(caplog):
    spec = LimitSpec("rl:{p}:k", FIXED_WINDOW, rate=1, period=60, name="web-ip-60s")
    decision = runtime.get_backend().check([spec], cost=2)  # more than the rate: denied
    long_path = "/" + "p" * 300
    request = RequestFactory().get(long_path)
    with caplog.at_level("INFO", logger="ratelimit_app"):
        pipeline._report_throttled(request, decision, None)
    (record,) = caplog.records
    assert record.getMessage().startswith(f"Throttled GET {long_path[:200]} event=denied ")
    assert long_path[:201] not in record.getMessage()
    assert record.ratelimit_event == "denied"
    assert record.ratelimit_fields == {
        "group": "",
        "limit": "web-ip-60s",
        "retry_after": 60.0,
        "party": hashing.short_hash("log", "rl:{p}:k"),
    }


def test_the_throttled_signal_names_the_verdict_and_carries_the_request(client, demo_data, clock):
    seen = []

    def receiver(sender, request, decision, group, **kwargs):
        seen.append((sender, request.path, decision.allowed, group))

    request_throttled.connect(receiver)
    try:
        key = {"HTTP_X_API_KEY": demo_data["free"]}
        # tenant-api-group-tiers.md: the free tier's Admin group takes 50 at once (the
        # clock stands still: nothing refills).
        statuses = [client.get("/acp/admin/ping", **key).status_code for _ in range(51)]
    finally:
        request_throttled.disconnect(receiver)
    assert statuses == [200] * 50 + [429]
    assert seen == [(Verdict, "/acp/admin/ping", False, "admin")]


@pytest.mark.parametrize(
    "status, retry_after, headers_set",
    [
        (429, "7", False),  # a refusal made downstream keeps its own figures
        (429, None, True),
        (200, "7", True),
        (401, None, True),
    ],
)
def test_feed_back_sets_the_headers_unless_a_downstream_429_has_its_own(
    demo_data, status, retry_after, headers_set
):
    request = RequestFactory().get("/acp/admin/ping", HTTP_X_API_KEY=demo_data["free"])
    assert pipeline.check(request).allowed
    response = HttpResponse(status=status)
    if retry_after is not None:
        response["Retry-After"] = retry_after
    pipeline.feed_back(request, response)
    assert ("X-RateLimit-Limit" in response) is headers_set
    if retry_after is not None and not headers_set:
        assert response["Retry-After"] == retry_after


def test_feed_back_leaves_a_request_never_checked_alone():
    response = HttpResponse(status=200)
    assert pipeline.feed_back(RequestFactory().get("/acp/admin/ping"), response) is response
    assert "X-RateLimit-Limit" not in response


def test_feed_back_writes_the_headers_in_the_groups_own_style(client, demo_data, clock):
    reply = client.get("/v1/messages", HTTP_X_API_KEY=demo_data["free"])
    assert reply.status_code == 200
    # per-key-rolling-windows.md: Limit is the rolling window's number (300 a minute, not
    # the 5/s burst on top), Reset a Unix time: the window's end, a minute from now.
    assert reply["X-RateLimit-Limit"] == "300"
    assert abs(int(reply["X-RateLimit-Reset"]) - (clock[0] + 60)) <= 1


def test_a_problem_body_setting_leaves_an_allowed_responses_type_alone(client, demo_data, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "BODY": "problem"}
    reply = client.get("/acp/admin/ping", HTTP_X_API_KEY=demo_data["free"])
    assert reply.status_code == 200 and "X-RateLimit-Limit" in reply
    assert reply["Content-Type"] != "application/problem+json"


@pytest.mark.django_db(transaction=True)
def test_an_inactive_tenants_verdict_is_a_refusal_that_names_its_group(demo_data):
    tenant = Tenant.objects.get(slug="free-tenant")
    tenant.active = False
    tenant.save()
    request = RequestFactory().get("/acp/admin/ping", HTTP_X_API_KEY=demo_data["free"])
    verdict = pipeline.check(request)
    assert (verdict.allowed, verdict.tenant_inactive) == (False, True)
    assert (verdict.group, verdict.decision, verdict.unavailable) == ("admin", None, False)
    # A path no limit covers is not the limiter's to refuse, whoever asks.
    elsewhere = RequestFactory().get("/no/group/here", HTTP_X_API_KEY=demo_data["free"])
    assert pipeline.check(elsewhere) is pipeline.NOT_LIMITED


def test_a_ban_refused_from_its_row_is_not_marked_local(client, demo_data, clock):
    for _ in range(5):  # token-endpoint-credential-bans.md: 5 failures ban the pair
        client.post("/connect/token", WRONG)
    request = RequestFactory().post("/connect/token", WRONG)
    verdict = pipeline.check(request)
    assert (verdict.allowed, verdict.local, verdict.watched is not None) == (False, False, True)
    assert verdict.group == "token"  # the catalogue's group of /connect/token


def test_observers_hear_of_every_decided_request_and_of_no_other(demo_data, clock, monkeypatch):
    heard = []
    monkeypatch.setattr(pipeline, "verdict_observers", [heard.append])
    decided = RequestFactory().get("/acp/admin/ping", HTTP_X_API_KEY=demo_data["free"])
    verdict = pipeline.check(decided)
    pipeline.check(decided)  # the same request again: its Verdict, told once
    unlimited = pipeline.check(RequestFactory().get("/no/group/here"))
    assert verdict.decision is not None and unlimited.decision is None
    assert heard == [verdict]


def test_the_user_a_caller_names_is_counted_by_user_limits(demo_data, clock, django_user_model):
    """The DRF throttle passes DRF's authenticated user: it is the one counted, though
    Django's request carries none."""
    free_admin = Limit.objects.filter(tier__name="free", group__slug="admin").first()
    LimitFactory(group=free_admin.group, tier=free_admin.tier, scope="user", rate=3, period=10)
    user = django_user_model.objects.create_user("someone", password="pw")
    request = RequestFactory().get("/acp/admin/ping")
    verdict = pipeline.check(request, group="admin", user=user)
    names = [result.spec.name for result in verdict.decision.results]
    assert "admin-user-10s" in names


def names_of(verdict):
    return [result.spec.name for result in verdict.decision.results]


def test_a_group_on_top_counts_only_the_paths_its_patterns_match(demo_data, clock):
    key = {"HTTP_X_API_KEY": demo_data["free"]}
    inside = pipeline.check(RequestFactory().get("/v1/status", **key))
    outside = pipeline.check(RequestFactory().get("/acp/admin/ping", **key))
    # ip-token-endpoint-limits.md's per-IP limit covers the demo's API ("all": /v1/*,
    # /o/*), not the admin console's paths.
    assert "all-ip-60s" in names_of(inside)
    assert names_of(outside) == ["admin-tenant-60s", "admin-tenant-3600s"]


def test_an_access_tokens_expiry_is_read_on_the_limiters_clock(demo_data, clock):
    issued = time.time() - 86_400  # a day ago: long expired on the wall clock
    token = issue_token("demo-client", now=issued)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    clock[0] = issued + 60  # but a minute old on the limiter's
    valid = pipeline.check(RequestFactory().get("/v1/status", **bearer))
    clock[0] = issued + 3600  # the demo's tokens live an hour
    expired = pipeline.check(RequestFactory().get("/v1/status", **bearer))
    # per-key-rolling-windows.md: an access token is counted as an API key while valid.
    assert "standard-api_key-60s" in names_of(valid)
    assert names_of(expired) == ["all-ip-60s"]


def test_the_user_is_not_read_where_no_limit_or_resolver_needs_it(demo_data, clock):
    touched = []

    def load_user():
        touched.append(True)
        return AnonymousUser()

    request = RequestFactory().get("/v1/status")
    request.user = SimpleLazyObject(load_user)  # as AuthenticationMiddleware sets it
    assert pipeline.check(request).decision is not None
    assert touched == []  # reading it could cost a session query for nothing


def test_the_user_django_authenticated_is_counted_by_user_limits(
    demo_data, clock, django_user_model
):
    free_admin = Limit.objects.filter(tier__name="free", group__slug="admin").first()
    LimitFactory(group=free_admin.group, tier=free_admin.tier, scope="user", rate=3, period=10)
    request = RequestFactory().get("/acp/admin/ping")
    request.user = django_user_model.objects.create_user("someone", password="pw")
    assert "admin-user-10s" in names_of(pipeline.check(request))


def test_a_failing_observer_is_logged_at_debug_and_the_request_goes_on(
    demo_data, clock, monkeypatch, caplog
):
    def failing(verdict):
        raise RuntimeError("an observer's bug")

    heard = []
    monkeypatch.setattr(pipeline, "verdict_observers", [failing, heard.append])
    with caplog.at_level(logging.DEBUG, logger="ratelimit_app"):
        verdict = pipeline.check(RequestFactory().get("/v1/status"))
    assert verdict.allowed and heard == [verdict]
    (record,) = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert record.getMessage() == "A verdict observer failed."
    assert record.exc_info[0] is RuntimeError
