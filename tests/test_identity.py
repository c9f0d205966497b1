"""Client identity: trusted proxies only, IPv6 per /64, keys by keyed hash."""

import pytest

from ratelimit_app import hashing
from ratelimit_app.identity import client_ip, parse_address, presented_api_key, resolve_api_key
from ratelimit_app.policy import KeyEntry, PolicySnapshot

PROXIES = ["10.0.0.0/8"]


def ip(remote, forwarded=None, proxies=(), prefix=64):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(meta, proxies, prefix)


def test_remote_addr_is_the_client_without_trusted_proxies():
    assert ip("203.0.113.9") == "203.0.113.9"


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored():
    assert ip("203.0.113.9", "1.2.3.4") == "203.0.113.9"
    assert ip("203.0.113.9", "1.2.3.4", proxies=PROXIES) == "203.0.113.9"


def test_one_trusted_proxy():
    assert ip("10.0.0.1", "198.51.100.7", proxies=PROXIES) == "198.51.100.7"


def test_two_trusted_proxies_and_a_spoofed_leftmost_hop():
    chain = "6.6.6.6, 198.51.100.7, 10.1.1.1"
    assert ip("10.0.0.1", chain, proxies=PROXIES) == "198.51.100.7"


def test_trusted_peer_without_header_is_itself_the_client():
    assert ip("10.0.0.1", proxies=PROXIES) == "10.0.0.1"


@pytest.mark.parametrize("bad", ["not-an-ip", "999.1.1.1", "1.2.3.4.5", "::g"])
def test_malformed_hops_get_their_own_bucket(bad):
    bucket = ip("10.0.0.1", f"{bad}, 10.2.2.2", proxies=PROXIES)
    assert bucket.startswith("raw:")
    assert bucket != ip("10.0.0.1", f"{bad}x, 10.2.2.2", proxies=PROXIES)
    assert bad not in bucket  # only a keyed hash of it


def test_malformed_and_missing_remote_addr_never_share_a_bucket():
    assert ip("garbage").startswith("raw:")
    assert ip("garbage") != ip("other-garbage")
    assert client_ip({}, (), 64) is None
    assert client_ip({"REMOTE_ADDR": ""}, (), 64) is None


def test_oversized_header_is_capped_and_read_from_the_right():
    forwarded = "1.1.1.1, " * 100_000 + "198.51.100.7"
    assert ip("10.0.0.1", forwarded, proxies=PROXIES) == "198.51.100.7"


def test_ipv6_counts_per_64_and_rotation_inside_it_does_not_help():
    first = ip("2001:db8:1:2::1")
    assert first == "2001:db8:1:2::/64"
    assert ip("2001:db8:1:2:ffff:ffff:ffff:ffff") == first
    assert ip("2001:db8:1:3::1") != first
    assert ip("2001:db8:1:2::1", prefix=128) == "2001:db8:1:2::1/128"


def test_ipv4_mapped_ipv6_counts_as_ipv4():
    assert ip("::ffff:192.0.2.5") == "192.0.2.5"


def test_ports_are_ignored():
    assert ip("10.0.0.1", "[2001:db8::1]:443", proxies=PROXIES) == "2001:db8::/64"
    assert ip("10.0.0.1", "192.0.2.1:8080", proxies=PROXIES) == "192.0.2.1"


def test_api_key_from_bearer_or_x_api_key():
    assert presented_api_key({"HTTP_AUTHORIZATION": "Bearer abc"}) == "abc"
    assert presented_api_key({"HTTP_X_API_KEY": "xyz"}) == "xyz"
    assert presented_api_key({"HTTP_AUTHORIZATION": "Basic abc"}) is None


def test_api_key_resolution_by_prefix_and_keyed_hash():
    prefix, secret = hashing.new_api_key()
    snapshot = PolicySnapshot(api_keys={prefix: KeyEntry(7, hashing.hash_api_key(secret), 3)})
    assert resolve_api_key(secret, snapshot).id == 7
    assert resolve_api_key(secret + "x", snapshot) is None
    assert resolve_api_key(f"{prefix}.wrong", snapshot) is None
    assert resolve_api_key("k" * 1_000_000, snapshot) is None


def resolve_to_slug(request, user):
    """TENANT_RESOLVER for the tests below: the tenant named in a header."""
    return request.META.get("HTTP_X_TENANT")


@pytest.mark.parametrize(
    "named, active, expected",
    [
        ("acme", True, 7),  # an active tenant is the request's
        ("acme", False, 7),  # an inactive one too: the pipeline refuses it (403)
        ("nobody", True, None),  # an unknown slug too
        (None, True, None),  # the resolver names none
    ],
)
def test_the_tenant_a_resolver_names_is_the_requests(named, active, expected):
    from django.test import RequestFactory

    from ratelimit_app.identity import resolve_tenant
    from ratelimit_app.policy import TenantEntry

    snapshot = PolicySnapshot()
    snapshot.tenants[7] = TenantEntry(7, "acme", tier_id=1, active=active)
    snapshot.tenant_slugs["acme"] = 7
    request = RequestFactory().get("/", **({"HTTP_X_TENANT": named} if named else {}))
    config = {"TENANT_RESOLVER": "tests.test_identity.resolve_to_slug"}
    tenant = resolve_tenant(request, object(), snapshot, config, None)
    assert (tenant.id if tenant else None) == expected


def test_a_keys_tenant_is_the_requests_active_or_not():
    from django.test import RequestFactory

    from ratelimit_app.identity import resolve_tenant
    from ratelimit_app.policy import TenantEntry

    snapshot = PolicySnapshot()
    snapshot.tenants[3] = TenantEntry(3, "gone", tier_id=1, active=False)
    key = KeyEntry(1, "hash", tenant_id=3)
    request = RequestFactory().get("/")
    tenant = resolve_tenant(request, None, snapshot, {"TENANT_RESOLVER": None}, key)
    assert (tenant.id, tenant.active) == (3, False)  # not anonymous: refused (test_guard_rails)
    snapshot.tenants[3] = TenantEntry(3, "gone", tier_id=1, active=True)
    assert resolve_tenant(request, None, snapshot, {"TENANT_RESOLVER": None}, key).id == 3


@pytest.mark.parametrize(
    "raw, address",
    [
        ("203.0.113.9", "203.0.113.9"),
        (" 203.0.113.9 ", "203.0.113.9"),
        ("203.0.113.9:443", "203.0.113.9"),  # a port after IPv4
        ("[2001:db8::1]:443", "2001:db8::1"),  # a port after bracketed IPv6
        ("[2001:db8::1]", "2001:db8::1"),
        # What follows the first closing bracket is the port part, never the address.
        ("[2001:db8::1]]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),  # a zone index is not part of the address
        ("::ffff:192.0.2.1", "192.0.2.1"),  # IPv4-mapped IPv6 is the IPv4 client
        # Malformed: a closing bracket without an opening one, and the rest.
        ("2001:db8::1]", None),
        ("203.0.113.9:443:1", None),
        ("not-an-ip", None),
        ("", None),
    ],
)
def test_parse_address(raw, address):
    parsed = parse_address(raw)
    assert (None if parsed is None else str(parsed)) == address


def test_a_malformed_value_has_one_bucket_whether_it_is_the_peer_or_a_forwarded_hop():
    assert ip("not-an-ip") == ip("10.0.0.1", "not-an-ip", proxies=PROXIES)


@pytest.mark.parametrize(
    "remote, bucket",
    [
        ("1.0.0.0", "1.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("203.0.113.9", "203.0.113.9"),
        # Not written as ipaddress writes an IPv4 address: parsed, and malformed ones
        # get a keyed-hash bucket of their own.
        (" 203.0.113.9", "203.0.113.9"),
        ("203.0.113.9\n", "203.0.113.9"),
        ("203.0.113.9:443", "203.0.113.9"),
        ("203.0.113.09", "raw"),
        ("256.0.113.9", "raw"),
        ("203.0.113", "raw"),
        ("203.0.113.9.1", "raw"),
        ("２０３.0.113.9", "raw"),  # full-width digits
    ],
)
def test_the_bucket_of_an_ipv4_peer_without_trusted_proxies(remote, bucket):
    found = ip(remote)
    assert found.split(":")[0] == bucket if bucket == "raw" else found == bucket


def test_the_peer_is_parsed_when_proxies_are_trusted():
    # A trusted proxy's own address is never the client when it forwards one.
    assert ip("10.0.0.1", "198.51.100.7", proxies=PROXIES) == "198.51.100.7"
    assert ip("203.0.113.9", "198.51.100.7", proxies=PROXIES) == "203.0.113.9"


def test_a_forwarded_header_from_an_untrusted_peer_is_ignored_whoever_passes_it():
    # client_ip reads X-Forwarded-For only from a trusted peer; the resolver itself
    # ignores one from any other peer too (it also serves values too long for the memo).
    from ratelimit_app.identity import _resolve_client_ip

    assert _resolve_client_ip("203.0.113.9", "1.2.3.4", ("10.0.0.0/8",), 64) == "203.0.113.9"
    assert _resolve_client_ip("10.0.0.1", "1.2.3.4", ("10.0.0.0/8",), 64) == "1.2.3.4"


def test_an_ipv6_client_counts_by_its_64_unless_configured():
    meta = {"REMOTE_ADDR": "2001:db8:1:2:3:4:5:6"}
    assert client_ip(meta) == "2001:db8:1:2::/64"  # the default prefix
    assert client_ip(meta, (), 48) == "2001:db8:1::/48"


@pytest.mark.parametrize(
    "authorization, key",
    [
        ("Bearer k1.s3cret", "k1.s3cret"),
        ("bearer k1.s3cret", "k1.s3cret"),  # the scheme is case-insensitive
        ("Bearer  k1.s3cret", "k1.s3cret"),  # RFC 9110: one or more spaces after it
        ("Bearer k1.s3cret ", "k1.s3cret"),
        ("Bearer ", None),
        ("Basic k1.s3cret", None),
        ("Bearerk1.s3cret", None),
    ],
)
def test_the_key_presented_as_bearer(authorization, key):
    assert presented_api_key({"HTTP_AUTHORIZATION": authorization}) == key


def test_a_forwarded_chain_too_long_for_the_memo_still_buckets_ipv6_by_its_prefix():
    # Over 256 characters: resolved each time, not memoized, with the same prefix.
    chain = ", ".join(["2001:db8:9:9::1"] * 30)
    assert ip("10.0.0.1", chain, proxies=PROXIES) == "2001:db8:9:9::/64"
    assert ip("10.0.0.1", chain, proxies=PROXIES, prefix=48) == "2001:db8:9::/48"
