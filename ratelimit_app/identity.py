"""Who is asking: client IP (trusting only configured proxies), API key, access token,
user, tenant."""

import ipaddress
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.http import HttpRequest
from django.utils.module_loading import import_string

from ratelimit_app import bounded, hashing, tokens
from ratelimit_app.policy import KeyEntry, PolicySnapshot, TenantEntry, lookup_api_key

logger = logging.getLogger("ratelimit_app")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_FORWARDED_HOPS = 32
MAX_HEADER_LENGTH = 4096
# An IPv4 address as ipaddress writes it (no leading zeros, no spaces): its own bucket,
# found without parsing it (a new client address costs no ipaddress objects).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


@dataclass(frozen=True, slots=True)
class Identity:
    """The parties a request's limits are counted for. ``ip`` is a canonical bucket name;
    ``access_token`` the keyed hash of a live access token that is no API key."""

    ip: str | None
    api_key_id: int | None
    user_id: str | None
    tenant: TenantEntry | None
    access_token: str | None = None


@lru_cache(maxsize=8)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    """Parsed CIDRs of the trusted proxies (cached per settings tuple)."""
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def parse_address(raw: str) -> Address | None:
    """An ip_address from a header value, IPv4-mapped IPv6 unwrapped; None if malformed."""
    raw = raw.strip()
    if raw.startswith("[") and "]" in raw:  # "[2001:db8::1]:443"
        raw = raw[1 : raw.index("]")]
    elif raw.count(":") == 1:  # "192.0.2.1:443"
        raw = raw.split(":")[0]
    try:
        address = ipaddress.ip_address(raw.split("%")[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def bucket_of(address: Address, ipv6_prefix: int) -> str:
    """The counting bucket of an address: itself for IPv4, its /64 (by default) for IPv6."""
    if address.version == 4:
        return str(address)
    return str(ipaddress.ip_network(f"{address}/{ipv6_prefix}", strict=False))


def _is_trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(meta: Mapping[str, Any], proxies: Any = (), ipv6_prefix: int = 64) -> str | None:
    """The client's IP bucket for a request's META (see _resolve_client_ip); memoized.

    X-Forwarded-For is read, and enters the memo's key, only when the peer is a trusted
    proxy, and only a short header is memoized: a hostile header grows no cache.
    """
    remote_raw = meta.get("REMOTE_ADDR") or ""
    if not proxies and CANONICAL_IPV4.fullmatch(remote_raw):
        return remote_raw  # what _resolve_client_ip gives, without a parse or a memo
    proxies = tuple(proxies)
    forwarded = ""
    if proxies and _peer_is_trusted(remote_raw[:MAX_HEADER_LENGTH], proxies):
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")[-MAX_HEADER_LENGTH:]
    if len(remote_raw) + len(forwarded) > bounded.MAX_KEY_LENGTH:
        return _resolve_client_ip(remote_raw, forwarded, proxies, ipv6_prefix)
    return _client_ip(remote_raw, forwarded, proxies, ipv6_prefix)


@lru_cache(maxsize=16_384)
def _peer_is_trusted(remote_raw: str, proxies: tuple[str, ...]) -> bool:
    remote = parse_address(remote_raw)
    return remote is not None and _is_trusted(remote, trusted_networks(proxies))


def _resolve_client_ip(
    remote_raw: str, forwarded: str, proxies: tuple[str, ...], ipv6_prefix: int
) -> str | None:
    """The client's IP bucket for a request's META.

    REMOTE_ADDR is the client unless it is a trusted proxy; then X-Forwarded-For is
    read from the right, skipping trusted hops, and the first other hop is the client.
    A client can never choose its own address: a header from an untrusted peer is
    ignored. A malformed hop gets a bucket of its own (a keyed hash of the raw value),
    never a bucket shared with other clients; no address at all gives None.
    """
    networks = trusted_networks(proxies)
    remote = parse_address(remote_raw[:MAX_HEADER_LENGTH])
    if remote is None:
        return f"raw:{hashing.short_hash('ip', remote_raw)}" if remote_raw else None
    if not networks or not _is_trusted(remote, networks):
        return bucket_of(remote, ipv6_prefix)
    forwarded = forwarded[-MAX_HEADER_LENGTH:]
    hops = [hop for hop in forwarded.split(",") if hop.strip()][-MAX_FORWARDED_HOPS:]
    client = remote
    for raw_hop in reversed(hops):
        hop = parse_address(raw_hop)
        if hop is None:
            return f"raw:{hashing.short_hash('ip', raw_hop.strip())}"
        client = hop
        if not _is_trusted(hop, networks):
            break
    return bucket_of(client, ipv6_prefix)


_client_ip = lru_cache(maxsize=16_384)(_resolve_client_ip)


def presented_api_key(meta: dict[str, Any]) -> str | None:
    """The API key a request presents in ``Authorization: Bearer`` or ``X-API-Key``."""
    header = meta.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    value = meta.get("HTTP_X_API_KEY", "").strip()
    return value or None


def presented_bearer_token(meta: dict[str, Any]) -> str | None:
    """The value of ``Authorization: Bearer``, where an access token is presented."""
    scheme, _, value = meta.get("HTTP_AUTHORIZATION", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def resolve_access_token(
    meta: dict[str, Any], config: dict[str, Any], now: float
) -> tokens.TokenParty | None:
    """The live access token a request presents, as TOKEN_RESOLVER says, or None."""
    resolver = tokens.get_resolver(config["TOKEN_RESOLVER"])
    if resolver is None:
        return None
    token = presented_bearer_token(meta)
    if not token:
        return None
    try:
        return resolver(token, now)
    except Exception as exc:  # a resolver's bug or its store down: never a 500
        _log_resolver_failure(exc, now)
        return None


_resolver_failure_logged_at = [float("-inf")]


def _log_resolver_failure(exc: Exception, now: float) -> None:
    # Once a minute at most: a failing resolver fails for every bearer request.
    if now - _resolver_failure_logged_at[0] >= 60:
        _resolver_failure_logged_at[0] = now
        logger.error(
            "TOKEN_RESOLVER raised %s; bearer tokens count as no party until it answers.",
            type(exc).__name__,
        )


def resolve_api_key(secret: str, snapshot: PolicySnapshot) -> KeyEntry | None:
    """The snapshot's KeyEntry for a presented secret, or None if unknown or revoked."""
    prefix = hashing.api_key_prefix(secret)
    if prefix is None:
        return None
    entry = snapshot.api_keys.get(prefix)
    if entry is None:
        # A key newer than the snapshot (created a moment ago elsewhere): read once.
        entry = lookup_api_key(prefix, snapshot)
    if entry is None or not hashing.api_key_matches(secret, entry.hashed_secret):
        return None
    return entry


def resolve_tenant(
    request: HttpRequest,
    user: Any,
    snapshot: PolicySnapshot,
    config: dict[str, Any],
    key_entry: KeyEntry | None,
    token: tokens.TokenParty | None = None,
) -> TenantEntry | None:
    """The request's tenant: its API key's, else its access token's application's
    (TOKEN_TENANTS), else the one TENANT_RESOLVER names for its user; an inactive tenant
    too (the pipeline refuses its requests)."""
    tenant_id = key_entry.tenant_id if key_entry else None
    if token is not None and token.application is not None:
        slug = config["TOKEN_TENANTS"].get(token.application)
        tenant_id = snapshot.tenant_slugs.get(slug) if slug else None
    if tenant_id is None and config["TENANT_RESOLVER"] and user is not None:
        resolved = import_string(config["TENANT_RESOLVER"])(request, user)
        if isinstance(resolved, str):
            tenant_id = snapshot.tenant_slugs.get(resolved)
        elif resolved is not None:
            tenant_id = getattr(resolved, "pk", resolved)
    tenant = snapshot.tenants.get(tenant_id) if tenant_id is not None else None
    return tenant


def identify(
    request: HttpRequest,
    snapshot: PolicySnapshot,
    config: dict[str, Any],
    user: Any = None,
    needs_user: bool = True,
    now: float | None = None,
) -> Identity:
    """The Identity of ``request`` at ``now`` (epoch seconds; an access token's expiry is
    compared with it); ``user`` overrides request.user (DRF's user).

    With ``needs_user`` false, request.user is not touched (it may cost a session query).
    A bearer value that is no API key is offered to the token resolver, if one is set.
    """
    meta = request.META
    secret = presented_api_key(meta)
    key_entry = resolve_api_key(secret, snapshot) if secret else None
    token = None
    if secret and key_entry is None and config["TOKEN_RESOLVER"]:
        token = resolve_access_token(meta, config, time.time() if now is None else now)
    if user is None and needs_user:
        user = getattr(request, "user", None)
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return Identity(
        ip=client_ip(meta, config["TRUSTED_PROXIES"], config["IPV6_PREFIX"]),
        api_key_id=key_entry.id if key_entry else None,
        user_id=str(user.pk) if authenticated else None,
        tenant=resolve_tenant(
            request, user if authenticated else None, snapshot, config, key_entry, token
        ),
        access_token=token.key if token else None,
    )
