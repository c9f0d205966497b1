"""Resetting a party's counters (after a support call, say): its keys cleared in the
counter store, every process's local record of its denials dropped, and the reset
recorded.

Keys are derived, not searched for: a party's counters are named ``group.scope.period``
under its keyed hash (enforcement.specs), so the limit rows name every key a request can
be counted under; no SCAN of the keyspace, and the same ``Backend.clear`` on one Redis,
Sentinel or a Cluster (a party's keys share one slot).

Other processes drop their local records of denied clients when they see the policy
revision move: the reset raises it as a ban change does (``revision.bump(policy=False)``:
they read the ban rows changed, no whole policy), so every worker honours it on its next
counter-store reply, or at its holder's next poll (POLICY_REFRESH_INTERVAL) if it makes
none. With the in-process memory backend each process has its own counters: a reset
clears those of the process that runs it only.
"""

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from ratelimit_app import audit, events, hashing, identity, runtime
from ratelimit_app.bans.rows import lift_bans, storable_client_id
from ratelimit_app.bans.watch import CLIENT_ID, IP, PAIR, counter_key, key_value
from ratelimit_app.conf import get_config
from ratelimit_app.counters.base import BackendUnavailable, key_base
from ratelimit_app.enforcement.specs import counter_keys, counter_name
from ratelimit_app.models import ApiKey, BanKind, BanRule, CredentialBan, Limit, Tenant
from ratelimit_app.policy import revision

logger = logging.getLogger("ratelimit_app")

TENANT, API_KEY, ADDRESS, CLIENT = "tenant", "api_key", "ip", "client_id"


class ResetError(ValueError):
    """The party to reset is not known, or not given exactly once."""


class StoreUnavailable(Exception):
    """The counter store could not be cleared: nothing was reset (try again)."""


@dataclass(frozen=True)
class Reset:
    """What one reset did: the party's kind and how an operator names it, how many
    counter keys were cleared, and how many bans were lifted with them."""

    kind: str
    shown_as: str
    keys: int
    bans_lifted: int


def reset_party(
    *,
    tenant: Tenant | int | str | None = None,
    api_key: ApiKey | str | None = None,
    ip: str | None = None,
    client_id: str | None = None,
    user: Any = None,
) -> Reset:
    """Reset the counters of exactly one party and return what was done.

    ``tenant``: a Tenant, its id or slug (its API keys' counters too, since its requests
    are counted under both). ``api_key``: an ApiKey or its prefix (a whole key will do;
    only its prefix is read). ``ip``: an address (its bucket is reset: an IPv6 address's
    /64) with its failure counts and address bans. ``client_id``: the failure counts and
    bans of the client_id and of every pair of it the database knows (see _client_keys).
    ``user`` is who asked (recorded). Raises ResetError for an unknown party and
    StoreUnavailable when the counter store cannot be cleared.
    """
    given = [v for v in (tenant, api_key, ip, client_id) if v is not None]
    if len(given) != 1:
        raise ResetError("Name exactly one party: a tenant, an API key, an address or a client_id.")
    base = key_base(get_config())
    bans = CredentialBan.objects.none()
    if tenant is not None:
        row = _tenant(tenant)
        kind, shown_as = TENANT, row.slug
        keys = counter_keys(TENANT, row.pk, _names(TENANT), base)
        for key_id in row.api_keys.values_list("pk", flat=True):
            keys += counter_keys(API_KEY, key_id, _names(API_KEY), base)
    elif api_key is not None:
        key = _api_key(api_key)
        kind, shown_as = API_KEY, key.prefix
        keys = counter_keys(API_KEY, key.pk, _names(API_KEY), base)
    elif ip is not None:
        bucket = _bucket(ip)
        kind, shown_as = ADDRESS, bucket
        keys = counter_keys(ADDRESS, bucket, _names(ADDRESS), base) + _address_keys(bucket, base)
        bans = CredentialBan.objects.filter(kind=BanKind.IP, client_id=bucket)
    else:
        assert client_id is not None
        kind, shown_as = CLIENT, storable_client_id(client_id.strip())
        if not shown_as:
            raise ResetError("Give a client_id.")
        keys = _client_keys(client_id.strip(), shown_as, base)
        bans = CredentialBan.objects.filter(client_id=shown_as).exclude(kind=BanKind.IP)
    _clear(keys)
    lifted = lift_bans(bans.filter(lifted_at__isnull=True).active(), user=user)
    _announce(keys)
    done = Reset(kind=kind, shown_as=shown_as, keys=len(keys), bans_lifted=len(lifted))
    _record_reset(done, user)
    return done


def _names(scope: str) -> list[str]:
    """The counter names limits of ``scope`` use (enabled or not: a limit disabled a
    moment ago may be enabled again with its count)."""
    rows = Limit.objects.filter(scope=scope).values_list("group__slug", "period").distinct()
    return [counter_name(group, scope, period) for group, period in rows]


def _tenant(value: Tenant | int | str) -> Tenant:
    if isinstance(value, Tenant):
        return value
    found = Tenant.objects.filter(slug=str(value)).first()
    if found is None and str(value).isdigit():
        found = Tenant.objects.filter(pk=int(value)).first()
    if found is None:
        raise ResetError(f"No tenant has the slug or id {str(value)[:64]!r}.")
    return found


def _api_key(value: ApiKey | str) -> ApiKey:
    if isinstance(value, ApiKey):
        return value
    # A whole key is read for its prefix only; the secret goes nowhere.
    prefix = hashing.api_key_prefix(value.strip()) or value.strip().lower()
    found = ApiKey.objects.filter(prefix=prefix).first()
    if found is None:
        raise ResetError(f"No API key has the prefix {prefix[:16]!r}.")
    return found


def _bucket(value: str) -> str:
    """The counting bucket of an address or network, as requests are counted."""
    text = value.strip()
    address = identity.parse_address(text.split("/")[0])
    if address is None:
        raise ResetError(f"{text[:64]!r} is not an IP address.")
    return identity.bucket_of(address, int(get_config()["IPV6_PREFIX"]))


def _address_keys(bucket: str, base: str) -> list[str]:
    """The failure counts and bans of an address under every ban rule that counts them."""
    value = key_value(IP, hashing.keyed_hash("identity", f"ip:{bucket}"))
    rules = BanRule.objects.values_list("pk", flat=True)
    return [counter_key(base, letter, rule, IP, value) for rule in rules for letter in "xb"]


def _client_keys(client_id: str, stored_as: str, base: str) -> list[str]:
    """A client_id's failure counts and bans: its own under every rule, and those of each
    of its pairs the database has seen banned.

    A pair is counted under a keyed hash of client_id and secret together: without the
    secret, a pair never banned cannot be found, and its count (below the threshold)
    runs out with the rule's window.
    """
    client = key_value(CLIENT_ID, hashing.keyed_hash("client-id", client_id))
    rules = list(BanRule.objects.values_list("pk", flat=True))
    keys = [counter_key(base, letter, rule, CLIENT_ID, client) for rule in rules for letter in "xb"]
    pairs = (
        CredentialBan.objects.filter(kind=BanKind.PAIR, client_id=stored_as, rule__isnull=False)
        .values_list("rule_id", "fingerprint")
        .distinct()
    )
    for rule_id, fingerprint in pairs:
        value = key_value(PAIR, fingerprint)
        keys += [counter_key(base, letter, rule_id, PAIR, value) for letter in "xb"]
    return keys


def _clear(keys: list[str]) -> None:
    try:
        runtime.get_backend().clear(keys)
    except BackendUnavailable as exc:
        raise StoreUnavailable(
            "The counter store did not answer; nothing was reset. Try again."
        ) from exc


def _announce(keys: list[str]) -> None:
    """Make every process drop its local records of these keys: this one at once, the
    others with the revision the bump publishes once committed."""
    denials = runtime.get_denials()
    if denials is not None:
        denials.forget(keys)
    with transaction.atomic():
        revision.bump(policy=False)


def _record_reset(done: Reset, user: Any) -> None:
    """Record a reset: a structured log line, and an entry in the policy edits' list.

    An address is logged and recorded as a keyed hash, never as itself.
    """
    shown = hashing.short_hash("log", done.shown_as) if done.kind == ADDRESS else done.shown_as
    audit.record(
        "counters",
        object_repr=f"{done.kind} {shown[:64]}",
        new={"keys": done.keys, "bans_lifted": done.bans_lifted},
        summary=f"Reset the counters of {done.kind} {shown[:64]}",
        user=user,
    )
    events.log_event(
        logger,
        logging.WARNING,
        events.COUNTERS_RESET,
        f"Counters of {done.kind} {shown[:64]!r} reset.",
        kind=done.kind,
        party=shown[:64],
        keys=done.keys,
        bans_lifted=done.bans_lifted,
        by=getattr(user, "get_username", lambda: "")() if user is not None else "",
    )
