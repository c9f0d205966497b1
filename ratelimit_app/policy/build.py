"""build_snapshot: every enabled policy read from the database into a PolicySnapshot.

Rows are read as plain values, never as model instances: with ten thousand tenants the
instances, not the queries, were most of a rebuild's time. Ban rows are also read on
their own, by what changed since a snapshot (``changed_bans``), so that a new ban does
not cost every process a whole rebuild.
"""

import copy
import gc
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import F, FloatField, Func, QuerySet, Value
from django.utils import timezone

from ratelimit_app import paths
from ratelimit_app.models import ApiKey, BanRule, CredentialBan, EndpointGroup, Limit, Tenant, Tier
from ratelimit_app.policy import revision
from ratelimit_app.policy.entries import (
    KeyEntry,
    LimitEntry,
    TenantEntry,
    ban_rule_entry,
    limit_entry,
)
from ratelimit_app.policy.fetch import plain_rows
from ratelimit_app.policy.snapshot import PolicySnapshot, fingerprint_key

# (rule_id, fingerprint, expires_at, lifted_at, banned_at) of a ban row
BanRow = tuple[int | None, str, datetime, datetime | None, datetime]
BAN_FIELDS = ("rule_id", "fingerprint", "expires_at", "lifted_at", "banned_at")
_UNSEEN: Any = object()


def build_snapshot(now: datetime | None = None) -> PolicySnapshot:
    """Read every enabled policy from the database into a new PolicySnapshot."""
    # The cyclic garbage collector would walk the growing snapshot again and again while
    # a hundred thousand entries are made (a third of the build): none of them is garbage.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _build(now)
    finally:
        if collecting:
            gc.enable()


def _build(now: datetime | None) -> PolicySnapshot:
    number, policy_number = revision.read()  # first: rows read after are at least as new
    snapshot = PolicySnapshot(revision=number, policy_revision=policy_number)
    snapshot.default_tier_id = (
        Tier.objects.filter(is_default=True).values_list("pk", flat=True).first()
    )
    _read_groups(snapshot)
    _read_limits(snapshot)
    _read_tenants(snapshot)
    snapshot.ban_rules = tuple(
        ban_rule_entry(rule)
        for rule in BanRule.objects.filter(enabled=True).select_related("group")
    )
    now = now or timezone.now()
    _read_bans(snapshot, CredentialBan.objects.filter(expires_at__gt=now))
    return snapshot


def changed_bans(since: int) -> list[BanRow]:
    """The ban rows written, extended or lifted after policy revision ``since``."""
    rows = CredentialBan.objects.filter(revision__gt=since).order_by("banned_at")
    return list(rows.values_list(*BAN_FIELDS))


def ban_row(ban: CredentialBan) -> BanRow:
    """The values of a ban row that a snapshot keeps (see apply_ban_rows)."""
    return (ban.rule_id, ban.fingerprint, ban.expires_at, ban.lifted_at, ban.banned_at)


def apply_ban_rows(snapshot: PolicySnapshot, rows: Iterable[BanRow]) -> None:
    """Record ``rows`` (oldest ban first) in the snapshot's ban maps, in place: a reader
    sees each pair's entry before or after, never half of it."""
    for rule_id, fingerprint, expires_at, lifted_at, _banned_at in rows:
        if rule_id is None:
            continue  # its rule was deleted: no request is checked against it
        _record(snapshot, rule_id, fingerprint_key(fingerprint), expires_at.timestamp(), lifted_at)


def _record(
    snapshot: PolicySnapshot,
    rule_id: int,
    key: bytes | str,
    expires_at: float,
    lifted_at: datetime | None,
) -> None:
    bans = snapshot.bans.setdefault(rule_id, {})
    if lifted_at is None:
        bans[key] = expires_at
        snapshot.lifted.get(rule_id, {}).pop(key, None)
        return
    # Lifted: kept while the ban would run, for the store may still hold it (lifted
    # while the store was down).
    snapshot.lifted.setdefault(rule_id, {})[key] = lifted_at.timestamp()
    if bans.get(key, 0.0) <= expires_at:
        bans.pop(key, None)


def _read_bans(snapshot: PolicySnapshot, rows: QuerySet[CredentialBan]) -> None:
    # Expiries as epoch seconds from the database itself where it can (PostgreSQL's
    # date_part gives a float; EXTRACT a numeric, slower): parsing a hundred thousand
    # timestamps in Python was most of a build's time.
    # In force at once: at most one row per pair, so no order is needed (a lifted row
    # is read after the others, and gives way to a ban that runs longer).
    rows = rows.exclude(rule_id=None).order_by()
    in_force = rows.filter(lifted_at=None)
    if connection.vendor == "postgresql":
        epoch = Func(
            Value("epoch"), F("expires_at"), function="date_part", output_field=FloatField()
        )
        bans = plain_rows(
            in_force.annotate(epoch=epoch).values_list("rule_id", "fingerprint", "epoch")
        )
    else:
        expiring = in_force.values_list("rule_id", "fingerprint", "expires_at")
        bans = [(rule_id, fingerprint, e.timestamp()) for rule_id, fingerprint, e in expiring]
    lifted = rows.exclude(lifted_at=None).values_list(
        "rule_id", "fingerprint", "expires_at", "lifted_at"
    )
    # Nothing is lifted yet and each pair has one row in force: plain assignments.
    by_rule = snapshot.bans
    for rule_id, fingerprint, expires_at in bans:
        if rule_id in by_rule:
            by_rule[rule_id][fingerprint_key(fingerprint)] = expires_at
        else:
            by_rule[rule_id] = {fingerprint_key(fingerprint): expires_at}
    for rule_id, fingerprint, expires, lifted_at in plain_rows(lifted):
        _record(snapshot, rule_id, fingerprint_key(fingerprint), expires.timestamp(), lifted_at)


def _read_groups(snapshot: PolicySnapshot) -> None:
    matchers = []
    for pk, slug, applies, patterns, reset_style, describe in EndpointGroup.objects.values_list(
        "pk", "slug", "applies_to_all", "path_patterns", "reset_style", "headers_describe"
    ):
        snapshot.groups[slug] = applies
        snapshot.group_slugs[pk] = slug
        snapshot.group_headers[slug] = (reset_style, describe)
        lines = [line.strip() for line in patterns.splitlines() if line.strip()]
        if applies:
            # A group on top of others: its patterns say where (everywhere if none),
            # they never make a request its own.
            snapshot.global_matchers[slug] = tuple(paths.compile_pattern(p) for p in lines)
            continue
        for pattern in lines:
            specificity = paths.pattern_specificity(pattern)
            matchers.append((specificity, paths.compile_pattern(pattern), slug))
    matchers.sort(key=lambda m: m[0], reverse=True)
    snapshot.matchers = tuple((pattern, slug) for _, pattern, slug in matchers)
    snapshot.global_groups = tuple(snapshot.global_matchers)


def _read_limits(snapshot: PolicySnapshot, tenant_ids: Collection[int] | None = None) -> None:
    # Unordered (sorting a hundred thousand rows in the database cost more than the
    # rest): each owner's limits are put in the model's order, scope then period, here.
    rows = Limit.objects.filter(enabled=True).order_by()
    if tenant_ids is not None:
        # Those tenants' overrides (a limit has one owner: Limit's check constraint).
        rows = rows.filter(tenant_id__in=tenant_ids)
    # The group's id, not its slug through a join: the slugs are the snapshot's already.
    fields = ("pk", "group_id", "scope", "algorithm", "rate", "period", "burst", "shadow")
    slugs = snapshot.group_slugs
    tiers: dict[tuple[str, int | None], list[LimitEntry]] = {}
    tenants: dict[int, list[LimitEntry]] = {}
    # One entry per distinct limit, not per row (many tenants override alike), made
    # once: the row's values are the memo's key.
    made: dict[tuple[Any, ...], LimitEntry | None] = {}
    for row in plain_rows(rows.values_list(*fields, "tier_id", "tenant_id")):
        values = row[1:8]
        entry = made.get(values, _UNSEEN)
        if entry is _UNSEEN:
            entry = made[values] = limit_entry(row[0], slugs[row[1]], *row[2:8])
        if entry is None:
            continue
        tier_id, tenant_id = row[8], row[9]
        if tier_id:
            tiers.setdefault((entry.group, tier_id), []).append(entry)
        elif tenant_id in tenants:
            tenants[tenant_id].append(entry)
        else:
            tenants[tenant_id] = [entry]
    snapshot.has_user_limits |= any(entry and entry.scope == "user" for entry in made.values())
    for owner, entries in tiers.items():
        snapshot.tier_limits[owner] = tuple(sorted(entries, key=_model_order))
    # A tenant's overrides by group; tenants whose overrides are equal share one mapping
    # (a hundred thousand override rows of alike tenants are a few mappings, not 14 MB).
    shared: dict[frozenset[LimitEntry], dict[str, tuple[LimitEntry, ...]]] = {}
    # A tenant has no two equal enabled overrides (Limit's unique constraint on group,
    # tenant, scope and period), so the set of its entries is all of them.
    for tenant_id, entries in tenants.items():
        key = frozenset(entries)
        mapping = shared.get(key)
        if mapping is None:
            mapping = shared[key] = overrides_by_group(entries)
        snapshot.tenant_limits[tenant_id] = mapping


def overrides_by_group(entries: Iterable[LimitEntry]) -> dict[str, tuple[LimitEntry, ...]]:
    """A tenant's override entries by group, each group's in the model's order."""
    groups: dict[str, list[LimitEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.group, []).append(entry)
    return {group: tuple(sorted(found, key=_model_order)) for group, found in groups.items()}


def _model_order(entry: LimitEntry) -> tuple[str, int, str]:
    return (entry.scope, entry.period, entry.algorithm)


def _read_tenants(snapshot: PolicySnapshot, tenant_ids: Collection[int] | None = None) -> None:
    tenants = Tenant.objects.order_by()
    # An inactive tenant's keys too: its requests are known, and refused (pipeline).
    keys = ApiKey.objects.filter(revoked=False).order_by()
    if tenant_ids is not None:
        tenants, keys = tenants.filter(pk__in=tenant_ids), keys.filter(tenant_id__in=tenant_ids)
    for pk, slug, tier_id, active in plain_rows(
        tenants.values_list("pk", "slug", "tier_id", "active")
    ):
        snapshot.tenants[pk] = TenantEntry(pk, slug, tier_id, active)
        snapshot.tenant_slugs[slug] = pk
    for pk, prefix, hashed, tenant_id in plain_rows(
        keys.values_list("pk", "prefix", "hashed_secret", "tenant_id")
    ):
        snapshot.api_keys[prefix] = KeyEntry(pk, hashed, tenant_id)
        held = snapshot.tenant_keys.get(tenant_id, ())
        snapshot.tenant_keys[tenant_id] = (*held, prefix)


def changed_tenants(since: int) -> list[int]:
    """The tenants whose row, overrides or keys changed after policy revision ``since``."""
    return list(Tenant.objects.filter(revision__gt=since).values_list("pk", flat=True))


def with_tenants_reread(held: PolicySnapshot, tenant_ids: Collection[int]) -> PolicySnapshot:
    """A copy of ``held`` in which ``tenant_ids`` (their rows, overrides and keys) are read
    again, and everything else is shared: an edit to one tenant costs that tenant's
    entries and a copy of a few maps, never a rebuild. Requests holding ``held`` go on
    with it; the copy's memos start empty."""
    fresh = copy.copy(held)
    fresh.tenants, fresh.tenant_slugs = dict(held.tenants), dict(held.tenant_slugs)
    fresh.api_keys, fresh.tenant_keys = dict(held.api_keys), dict(held.tenant_keys)
    fresh.tenant_limits = dict(held.tenant_limits)
    fresh.spec_cache, fresh._limits, fresh.key_lookups = {}, {}, {}
    for tenant_id in tenant_ids:
        _forget_tenant(fresh, tenant_id)
    _read_tenants(fresh, tenant_ids)
    _read_limits(fresh, tenant_ids)
    return fresh


def _forget_tenant(snapshot: PolicySnapshot, tenant_id: int) -> None:
    entry = snapshot.tenants.pop(tenant_id, None)
    if entry is not None and snapshot.tenant_slugs.get(entry.slug) == tenant_id:
        del snapshot.tenant_slugs[entry.slug]
    for prefix in snapshot.tenant_keys.pop(tenant_id, ()):
        snapshot.api_keys.pop(prefix, None)
    snapshot.tenant_limits.pop(tenant_id, None)
