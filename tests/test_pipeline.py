"""The pipeline: one check and one feedback per request, whichever surfaces see it."""

from unittest import mock

import pytest
from django.test import override_settings

from ratelimit_app import runtime
from ratelimit_app.enforcement import pipeline

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
