"""identify() as a table: which key, user and tenant a request counts for.

Written from DESIGN.md and tenant-api-group-tiers.md: a key is presented as
``Authorization: Bearer`` or ``X-API-Key``; a revoked key, a wrong secret or the key of
an inactive tenant identifies no key and no tenant; a request without a key takes the
tenant TENANT_RESOLVER names for its authenticated user, and only an active one.
"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from ratelimit_app import conf
from ratelimit_app.identity import identify
from ratelimit_app.policy import build_snapshot
from tests.factories import ApiKeyFactory, TenantFactory

pytestmark = pytest.mark.django_db

factory = RequestFactory()
RESOLVER = "tests.test_identity_table.tenant_named_in_header"


def tenant_named_in_header(request, user):
    """TENANT_RESOLVER for these tests: the slug in X-Tenant, if any."""
    return request.META.get("HTTP_X_TENANT")


@pytest.fixture
def world():
    """Two tenants (one inactive), their keys, one key revoked, and a user."""
    acme = TenantFactory(slug="acme")
    other = TenantFactory(slug="other")
    gone = TenantFactory(slug="gone", active=False)
    keys = {
        "live": ApiKeyFactory(tenant=acme),
        "revoked": ApiKeyFactory(tenant=acme, revoked=True),
        "inactive": ApiKeyFactory(tenant=gone),
    }
    snapshot = build_snapshot()
    # Created after the snapshot: found by the one lookup a request may make.
    keys["late"] = ApiKeyFactory(tenant=other)
    keys["late-revoked"] = ApiKeyFactory(tenant=other, revoked=True)
    user = get_user_model().objects.create_user("alice", password="pw-123-abc")
    tenants = {"acme": acme, "other": other, "gone": gone}
    return snapshot, keys, user, tenants


# (key header, key, secret suffix, user, X-Tenant) -> (key, user?, tenant slug)
ROWS = [
    ("bearer", "live", "", None, None, ("live", False, "acme")),
    ("x-api-key", "live", "", None, None, ("live", False, "acme")),
    ("bearer", "live", "x", None, None, (None, False, None)),  # wrong secret
    ("bearer", "revoked", "", None, None, (None, False, None)),
    ("x-api-key", "revoked", "", None, None, (None, False, None)),
    # An inactive tenant's key is known, with its tenant: the pipeline refuses it (403).
    ("bearer", "inactive", "", None, None, ("inactive", False, "gone")),
    ("bearer", "late", "", None, None, ("late", False, "other")),
    ("bearer", "late-revoked", "", None, None, (None, False, None)),
    ("basic", "live", "", None, None, (None, False, None)),  # not a Bearer key
    (None, None, "", "alice", "acme", (None, True, "acme")),
    (None, None, "", "alice", "gone", (None, True, "gone")),  # inactive: refused later
    (None, None, "", "alice", "nobody", (None, True, None)),  # unknown slug
    (None, None, "", "alice", None, (None, True, None)),
    (None, None, "", "anonymous", "acme", (None, False, None)),  # no user, no resolver
    (None, None, "", None, "acme", (None, False, None)),
    # The key's tenant wins over the one the resolver names.
    ("bearer", "live", "", "alice", "other", ("live", True, "acme")),
    # A revoked key leaves the user's own tenant.
    ("bearer", "revoked", "", "alice", "other", (None, True, "other")),
]


def request_for(kind, secret, user, tenant_slug):
    headers = {"REMOTE_ADDR": "203.0.113.9"}
    if kind == "bearer":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    elif kind == "x-api-key":
        headers["HTTP_X_API_KEY"] = secret
    elif kind == "basic":
        headers["HTTP_AUTHORIZATION"] = f"Basic {secret}"
    if tenant_slug:
        headers["HTTP_X_TENANT"] = tenant_slug
    request = factory.get("/v1/status", **headers)
    if user is not None:
        request.user = user
    return request


@pytest.mark.parametrize("kind, key, suffix, user, tenant_slug, expected", ROWS)
def test_identify(world, kind, key, suffix, user, tenant_slug, expected):
    snapshot, keys, alice, tenants = world
    secret = keys[key].secret + suffix if key else ""
    person = {"alice": alice, "anonymous": AnonymousUser(), None: None}[user]
    request = request_for(kind, secret, person, tenant_slug)
    config = {**conf.DEFAULTS, "TENANT_RESOLVER": RESOLVER}
    identity = identify(request, snapshot, config)
    want_key, want_user, want_tenant = expected
    assert identity.ip == "203.0.113.9"
    assert identity.api_key_id == (keys[want_key].pk if want_key else None)
    assert identity.user_id == (str(alice.pk) if want_user else None)
    assert identity.tenant == (snapshot.tenants[tenants[want_tenant].pk] if want_tenant else None)


def test_identify_leaves_request_user_alone_when_not_needed(world):
    snapshot, _keys, alice, _tenants = world
    request = request_for(None, "", alice, "acme")
    config = {**conf.DEFAULTS, "TENANT_RESOLVER": RESOLVER}
    identity = identify(request, snapshot, config, needs_user=False)
    assert (identity.user_id, identity.tenant) == (None, None)
    # A user passed in (DRF's) counts even so.
    passed = identify(request, snapshot, config, user=alice, needs_user=False)
    assert passed.user_id == str(alice.pk) and passed.tenant.slug == "acme"


def test_a_resolver_may_return_a_tenant_or_its_id(world):
    snapshot, _keys, alice, tenants = world
    request = request_for(None, "", alice, None)
    for returned in (tenants["acme"], tenants["acme"].pk):
        config = {**conf.DEFAULTS, "TENANT_RESOLVER": "tests.test_identity_table.fixed"}
        FIXED[:] = [returned]
        assert identify(request, snapshot, config).tenant.slug == "acme"
    FIXED[:] = [tenants["gone"]]
    # Named as it is, inactive: the pipeline refuses its requests (tenant_inactive).
    assert identify(request, snapshot, config).tenant.active is False


FIXED: list = [None]


def fixed(request, user):
    """TENANT_RESOLVER returning whatever FIXED holds."""
    return FIXED[0]


# TOKEN_RESOLVER for the token rows: a token "tok-<application>" expires at T_EXPIRES.
T_EXPIRES = 1_800_000_100.0
asked_at: list = []


def expiring_tokens(token, now):
    """A resolver: live until T_EXPIRES; records the ``now`` it is asked at."""
    from ratelimit_app.tokens import TokenParty

    asked_at.append(now)
    if not token.startswith("tok-") or now >= T_EXPIRES:
        return None
    return TokenParty(key=f"hash-{token}", application=token[4:], expires_at=T_EXPIRES)


@pytest.mark.parametrize(
    "bearer, now, expected",
    [
        # A live token counts as its own party, in its application's tenant.
        ("tok-app-acme", T_EXPIRES - 1, ("hash-tok-app-acme", "acme")),
        # At its expiry (the request's time, not the clock's) it is no party at all.
        ("tok-app-acme", T_EXPIRES, (None, None)),
        # An application no tenant is mapped to: a party without a tenant.
        ("tok-app-nobody", T_EXPIRES - 1, ("hash-tok-app-nobody", None)),
        ("not-a-token", T_EXPIRES - 1, (None, None)),
        # RFC 9110 allows more than one space after the scheme.
        (" tok-app-acme", T_EXPIRES - 1, ("hash-tok-app-acme", "acme")),
    ],
)
def test_identify_an_access_token_at_the_time_given(world, bearer, now, expected):
    snapshot, _keys, _alice, _tenants = world
    config = {
        **conf.DEFAULTS,
        "TOKEN_RESOLVER": "tests.test_identity_table.expiring_tokens",
        "TOKEN_TENANTS": {"app-acme": "acme"},
    }
    request = request_for("bearer", bearer, None, None)
    asked_at.clear()
    identity = identify(request, snapshot, config, needs_user=False, now=now)
    assert asked_at == [now]  # asked once, at the request's time
    token, tenant = expected
    assert identity.access_token == token and identity.api_key_id is None
    assert (identity.tenant.slug if identity.tenant else None) == tenant


def basic_with_key(value):
    """A request with ``Authorization: Basic <value>`` and a made-up X-API-Key."""
    return factory.get(
        "/v1/status",
        REMOTE_ADDR="203.0.113.9",
        HTTP_AUTHORIZATION=f"Basic {value}",
        HTTP_X_API_KEY="made-up",
    )


def test_no_token_resolver_is_asked_for_a_key_or_without_a_bearer(world):
    snapshot, keys, _alice, _tenants = world
    config = {**conf.DEFAULTS, "TOKEN_RESOLVER": "tests.test_identity_table.expiring_tokens"}
    asked_at.clear()
    for request in (
        request_for("bearer", keys["live"].secret, None, None),  # an API key
        request_for(None, "", None, None),
        request_for("x-api-key", "tok-app-acme", None, None),  # tokens come as Bearer
        # A made-up X-API-Key beside a token in another scheme: still no Bearer token.
        basic_with_key("tok-app-acme"),
    ):
        identify(request, snapshot, config, needs_user=False, now=T_EXPIRES - 1)
    assert asked_at == []


def test_a_user_object_without_is_authenticated_is_no_user(world):
    from types import SimpleNamespace

    snapshot, _keys, _alice, _tenants = world
    request = request_for(None, "", None, None)
    identity = identify(request, snapshot, dict(conf.DEFAULTS), user=SimpleNamespace(pk=7))
    assert identity.user_id is None


def test_identify_counts_an_ipv6_client_by_the_configured_prefix(world):
    snapshot, _keys, _alice, _tenants = world
    request = factory.get("/v1/status", REMOTE_ADDR="2001:db8:1:2:3:4:5:6")
    config = {**conf.DEFAULTS, "IPV6_PREFIX": 48}
    assert identify(request, snapshot, config, needs_user=False).ip == "2001:db8:1::/48"


def broken_store(token, now):
    """A TOKEN_RESOLVER whose own store is down."""
    raise ConnectionError("token store down")


def test_a_failing_token_resolver_counts_no_token_and_is_logged_once_a_minute(
    world, caplog, monkeypatch
):
    from ratelimit_app import identity as identity_module

    snapshot, _keys, _alice, _tenants = world
    config = {**conf.DEFAULTS, "TOKEN_RESOLVER": "tests.test_identity_table.broken_store"}
    request = request_for("bearer", "tok-app-acme", None, None)
    # The module's record of its last log, put back after the test.
    monkeypatch.setattr(identity_module, "_resolver_failure_logged_at", [float("-inf")])
    start = 1_800_000_000.0
    logged_so_far = []
    with caplog.at_level("ERROR", logger="ratelimit_app"):
        for now in (start, start + 59.9, start + 60, start + 61):
            found = identify(request, snapshot, config, needs_user=False, now=now)
            assert found.access_token is None and found.tenant is None
            logged_so_far.append(len(caplog.records))
    assert logged_so_far == [1, 1, 2, 2]  # at start, and again a minute later to the second
    messages = [r.getMessage() for r in caplog.records if r.name == "ratelimit_app"]
    # The name of the error, never the token.
    logged = "TOKEN_RESOLVER raised ConnectionError; bearer tokens count as no party until it"
    assert messages == [f"{logged} answers."] * 2


def tenant_of_user(request, user):
    """TENANT_RESOLVER naming a tenant by the user's name: alice is acme's."""
    return {"alice": "acme"}.get(getattr(user, "username", None))


def test_the_tenant_resolver_is_given_the_user(world):
    snapshot, _keys, alice, _tenants = world
    config = {**conf.DEFAULTS, "TENANT_RESOLVER": "tests.test_identity_table.tenant_of_user"}
    identity = identify(request_for(None, "", alice, None), snapshot, config)
    assert identity.tenant.slug == "acme"


def test_without_a_time_given_the_token_resolver_is_asked_at_the_clock(world):
    import time

    snapshot, _keys, _alice, _tenants = world
    config = {**conf.DEFAULTS, "TOKEN_RESOLVER": "tests.test_identity_table.expiring_tokens"}
    asked_at.clear()
    before = time.time()
    identify(request_for("bearer", "tok-app-acme", None, None), snapshot, config, needs_user=False)
    assert len(asked_at) == 1 and before <= asked_at[0] <= time.time()
