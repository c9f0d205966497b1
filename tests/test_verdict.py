"""A request's Verdict: its group on every path (no limit to count, the store failing or
admitting a watched request), the API key it names as a keyed hash, and the Verdict of
a store that does not answer under each failure mode."""

import pytest
from django.test import RequestFactory

from ratelimit_app.enforcement import Verdict, pipeline
from ratelimit_app.enforcement.specs import party_of
from ratelimit_app.enforcement.verdict import unavailable
from ratelimit_app.models import ApiKey

pytestmark = pytest.mark.django_db

WRONG = {"client_id": "demo-client", "client_secret": "wrong-secret-123"}


def test_a_request_no_limit_counts_keeps_its_group(demo_data, clock):
    # The Admin group limits tenants only: an anonymous request has none to count.
    verdict = pipeline.check(RequestFactory().get("/acp/admin/ping"))
    assert (verdict.decision, verdict.group, verdict.allowed) == (None, "admin", True)


def test_a_verdict_names_the_api_key_presented_as_a_keyed_hash(demo_data, clock):
    with_key = RequestFactory().get("/acp/admin/ping", HTTP_X_API_KEY=demo_data["free"])
    verdict = pipeline.check(with_key)
    key_id = ApiKey.objects.get(tenant__slug="free-tenant").pk
    assert verdict.api_key_party == party_of("api_key", key_id)
    assert demo_data["free"] not in verdict.api_key_party
    anonymous = pipeline.check(RequestFactory().get("/v1/status"))
    assert anonymous.decision is not None and anonymous.api_key_party == ""


def test_a_pair_refused_for_its_ban_names_no_api_key(client, demo_data, clock):
    """token-endpoint-credential-bans.md: five failures ban the pair; the refusal names no
    API key when none was presented."""
    for _ in range(5):
        client.post("/connect/token", WRONG)
    refused = pipeline.check(RequestFactory().post("/connect/token", WRONG))
    assert refused.allowed is False and refused.watched is not None
    assert refused.api_key_party == ""


@pytest.mark.parametrize(
    "mode, expected",
    [
        # fail-closed: refused, to retry once the breaker's cooldown (here 30 s) is over
        ("closed", Verdict(None, "web", allowed=False, unavailable=True, retry_after=30.0)),
        ("open", Verdict(None, "web", allowed=True, unavailable=True)),  # let through
    ],
)
def test_the_verdict_of_a_store_that_does_not_answer_follows_the_failure_mode(mode, expected):
    config = {"FAILURE_MODE": mode, "BREAKER_COOLDOWN": 30}
    assert unavailable("web", config) == expected


def test_an_unavailable_verdict_keeps_its_group(demo_data, request):
    request.getfixturevalue("redis_down")
    key = {"HTTP_X_API_KEY": demo_data["free"]}
    verdict = pipeline.check(RequestFactory().get("/acp/admin/ping", **key))
    assert (verdict.unavailable, verdict.group) == (True, "admin")


def test_a_watched_request_the_store_admits_keeps_its_group(demo_data, clock):
    request = RequestFactory().post("/connect/token", WRONG)
    verdict = pipeline.check(request)
    assert (verdict.allowed, verdict.group) == (True, "token")
    assert verdict.watched is not None and verdict.decision is not None
