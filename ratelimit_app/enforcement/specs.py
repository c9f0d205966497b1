"""The limit specs of a request: its limits, keyed by the parties they count."""

from collections.abc import Iterable
from typing import Any

from ratelimit_app import bounded, hashing
from ratelimit_app.counters.algorithms import LimitSpec
from ratelimit_app.counters.base import key_base, party_key
from ratelimit_app.identity import Identity
from ratelimit_app.policy import LimitEntry, PolicySnapshot

ALGORITHM_LETTERS = {"gcra": "g", "sliding_window": "s", "fixed_window": "f"}
SPEC_CACHE_SIZE = 50_000


def _identity_value(scope: str, who: Identity) -> int | str | None:
    if scope == "tenant":
        return who.tenant.id if who.tenant else None
    if scope == "api_key":
        # "per API key (access token)": an API key's id, else an access token's keyed
        # hash (a string, so never equal to a key's id).
        return who.api_key_id if who.api_key_id is not None else who.access_token
    if scope == "ip":
        return who.ip
    return who.user_id


def cached_specs(
    snapshot: PolicySnapshot,
    group: str | None,
    who: Identity,
    config: dict[str, Any],
    on_top: tuple[str, ...] | None = None,
) -> list[LimitSpec]:
    """build_specs for the limits of ``group`` (and the groups ``on_top`` of it) and
    ``who``, memoized on the snapshot (so a policy edit starts afresh) and bounded."""
    tenant_id = who.tenant.id if who.tenant else None
    cache_key = (group, on_top, tenant_id, who.ip, who.api_key_id, who.access_token, who.user_id)
    cache = snapshot.spec_cache
    specs = cache.get(cache_key)
    if specs is None:
        specs = build_specs(snapshot.limits_for(group, who.tenant, on_top), who, config)
        bounded.put(cache, cache_key, specs, SPEC_CACHE_SIZE)
    return specs


def _counter_name(limit: LimitEntry) -> str:
    # Named by group, scope and period, not by the limit's row: a party has one budget
    # per group and period whatever tier or override sets the number (one address
    # presenting a free key then a paid one has one per-IP budget; a tenant moving to
    # another tier keeps its count).
    return counter_name(limit.group, limit.scope, limit.period)


def counter_name(group: str, scope: str, period: int) -> str:
    """The name a limit's counter has under its party's tag (without the algorithm)."""
    return f"{group}.{scope}.{period}"


def party_of(scope: str, value: int | str) -> str:
    """The keyed hash a party's counter keys carry (its Redis Cluster hash tag)."""
    return hashing.short_hash("identity", f"{scope}:{value}")


def counter_keys(scope: str, value: int | str, names: Iterable[str], base: str) -> list[str]:
    """Every key a party of ``scope`` may be counted under, for the counter ``names``
    (``group.scope.period``: see _counter_name), one per algorithm."""
    party = party_of(scope, value)
    letters = ALGORITHM_LETTERS.values()
    return [party_key(base, party, f"{name}{letter}") for name in names for letter in letters]


def build_specs(
    limits: tuple[LimitEntry, ...], who: Identity, config: dict[str, Any]
) -> list[LimitSpec]:
    """LimitSpecs for the limits that can be counted for ``who``.

    A limit whose party is unknown (a tenant limit on an anonymous request, say)
    does not apply. Identities enter keys only as keyed hashes.
    """
    prefix = key_base(config)
    specs = []
    for limit in limits:
        value = _identity_value(limit.scope, who)
        if value is None:
            continue
        party = party_of(limit.scope, value)
        specs.append(
            LimitSpec(
                key=party_key(
                    prefix, party, f"{_counter_name(limit)}{ALGORITHM_LETTERS[limit.algorithm]}"
                ),
                algorithm=limit.algorithm,
                rate=limit.rate,
                period=limit.period,
                burst=limit.burst,
                shadow=limit.shadow,
                name=f"{limit.group}-{limit.scope}-{limit.period}s",
            )
        )
    return specs
