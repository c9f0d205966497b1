"""The token resolvers (ratelimit_app.tokens, contrib.oauth_toolkit, the demo's) on an
injected clock: off the database on the hot path, a revoked token refused within a
second, an expired one at once, and a memo that cannot grow without end."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import AccessToken, Application

from project.demo.tokens import DemoTokenResolver, issue_token
from ratelimit_app.contrib.oauth_toolkit import AccessTokenResolver
from ratelimit_app.tokens import Grant, LookupFailed, MemoizedResolver, is_bearer_token

pytestmark = pytest.mark.django_db
NOW = 1_800_000_000.0


@pytest.fixture
def application(db):
    return Application.objects.create(
        name="app",
        client_id="app-client",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )


def toolkit_token(application, value, expires_at=NOW + 3600):
    return AccessToken.objects.create(
        application=application,
        token=value,
        expires=datetime.datetime.fromtimestamp(expires_at, tz=datetime.UTC),
    )


def queries(call):
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, len(captured)


def test_a_token_is_read_once_a_second_at_most(application):
    toolkit_token(application, "tok-1")
    resolver = AccessTokenResolver()
    party, first = queries(lambda: resolver("tok-1", NOW))
    assert (party.application, party.expires_at) == ("app-client", NOW + 3600)
    again, second = queries(lambda: resolver("tok-1", NOW + 0.999))
    assert again == party and second == 0  # remembered: the hot path stays off the database
    _party, third = queries(lambda: resolver("tok-1", NOW + 1.0))
    assert (first, third) == (1, 1)


def test_a_revoked_token_is_refused_within_a_second(application):
    row = toolkit_token(application, "tok-2")
    resolver = AccessTokenResolver()
    assert resolver("tok-2", NOW) is not None
    row.revoke()  # the toolkit deletes the row
    assert resolver("tok-2", NOW + 1.0) is None


def test_an_expired_token_is_refused_at_its_expiry_without_a_query(application):
    toolkit_token(application, "tok-3", expires_at=NOW + 0.5)
    resolver = AccessTokenResolver()
    assert resolver("tok-3", NOW) is not None
    refused, count = queries(lambda: resolver("tok-3", NOW + 0.5))
    assert refused is None and count == 0  # the expiry travels with the memo


def test_the_party_is_a_keyed_hash_never_the_token(application):
    toolkit_token(application, "tok-secret-value")
    resolver = AccessTokenResolver()
    party = resolver("tok-secret-value", NOW)
    assert "tok-secret-value" not in party.key and len(party.key) == 16
    assert all("tok-secret" not in key for key in resolver.memo)
    toolkit_token(application, "tok-other")
    assert resolver("tok-other", NOW).key != party.key


class Counting(MemoizedResolver):
    memo_size = 100
    loads_per_second = 30

    def __init__(self, answer=None):
        super().__init__()
        self.loads, self.answer = 0, answer

    def load(self, token):
        self.loads += 1
        if self.answer is LookupFailed:
            raise LookupFailed
        return self.answer


def test_the_memo_is_bounded_and_loads_are_capped_per_second():
    resolver = Counting()
    for second in range(10):
        for n in range(50):  # 50 made-up tokens a second: only 30 are looked up
            assert resolver(f"made-up-{second}-{n}", NOW + second) is None
    assert resolver.loads == 10 * 30
    assert len(resolver.memo) <= 100


def test_a_store_that_does_not_answer_is_no_party_and_not_remembered():
    resolver = Counting(answer=LookupFailed)
    assert resolver("tok", NOW) is None and resolver("tok", NOW + 0.1) is None
    assert resolver.loads == 2 and not resolver.memo
    resolver.answer = Grant("app", None)
    assert resolver("tok", NOW + 0.2).application == "app"


@pytest.mark.parametrize(
    "value", ["jeton-é", "a b", "a\x00b", "", "=abc", "A" * 2049, "tok:en", "tok\n"]
)
def test_values_that_cannot_be_bearer_tokens_are_never_looked_up(value):
    resolver = Counting(answer=Grant("app", None))
    assert not is_bearer_token(value)
    assert resolver(value, NOW) is None and resolver.loads == 0


def test_the_demo_resolver_reads_its_signed_tokens_without_a_query(application):
    resolver = DemoTokenResolver()
    token = issue_token("demo-client", now=NOW)
    party, count = queries(lambda: resolver(token, NOW))
    assert (party.application, party.expires_at, count) == ("demo-client", NOW + 3600, 0)
    assert resolver(token, NOW + 3600) is None  # expired
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert resolver(forged, NOW) is None
    # Anything else is offered to django-oauth-toolkit's tokens.
    toolkit_token(application, "tok-4")
    assert resolver("tok-4", NOW).application == "app-client"
