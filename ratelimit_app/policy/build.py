"""build_snapshot: every enabled policy read from the database into a PolicySnapshot.

Rows are read as plain values, never as model instances: with ten thousand tenants the
instances, not the queries, were most of a rebuild's time. Ban rows are also read on
their own, by what changed since a snapshot (``changed_bans``), so that a new ban does
not cost every process a whole rebuild.
"""

import sys
from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone

from ratelimit_app import paths
from ratelimit_app.models import ApiKey, BanRule, CredentialBan, EndpointGroup, Limit, Tenant, Tier
from ratelimit_app.policy import revision
from ratelimit_app.policy.entries import KeyEntry, TenantEntry, ban_rule_entry, limit_entry
from ratelimit_app.policy.snapshot import PolicySnapshot

# (rule_id, fingerprint, expires_at, lifted_at, banned_at) of a ban row
BanRow = tuple[int | None, str, datetime, datetime | None, datetime]
BAN_FIELDS = ("rule_id", "fingerprint", "expires_at", "lifted_at", "banned_at")


def build_snapshot(now: datetime | None = None) -> PolicySnapshot:
    """Read every enabled policy from the database into a new PolicySnapshot."""
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
    rows = CredentialBan.objects.filter(expires_at__gt=now).order_by("banned_at")
    apply_ban_rows(snapshot, rows.values_list(*BAN_FIELDS))
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
        key = (rule_id, sys.intern(fingerprint))
        if lifted_at is None:
            snapshot.bans[key] = expires_at.timestamp()
            snapshot.lifted.pop(key, None)
        else:
            # Lifted: the store may still hold the ban (lifted while it was down).
            snapshot.lifted[key] = lifted_at.timestamp()
            if snapshot.bans.get(key, 0.0) <= expires_at.timestamp():
                snapshot.bans.pop(key, None)


def _read_groups(snapshot: PolicySnapshot) -> None:
    matchers = []
    for slug, applies, patterns in EndpointGroup.objects.values_list(
        "slug", "applies_to_all", "path_patterns"
    ):
        snapshot.groups[slug] = applies
        for pattern in (line.strip() for line in patterns.splitlines()):
            if pattern:
                specificity = paths.pattern_specificity(pattern)
                matchers.append((specificity, paths.compile_pattern(pattern), slug))
    matchers.sort(key=lambda m: m[0], reverse=True)
    snapshot.matchers = tuple((pattern, slug) for _, pattern, slug in matchers)
    snapshot.global_groups = tuple(s for s, applies in snapshot.groups.items() if applies)


def _read_limits(snapshot: PolicySnapshot) -> None:
    rows = Limit.objects.filter(enabled=True)  # the model's order: group, scope, period
    fields = ("pk", "group__slug", "scope", "algorithm", "rate", "period", "burst", "shadow")
    for row in rows.values_list(*fields, "tier_id", "tenant_id"):
        entry = limit_entry(*row[:8])
        if entry is None:
            continue
        tier_id, tenant_id = row[8], row[9]
        owner = (
            snapshot.tier_limits.setdefault((entry.group, tier_id), [])
            if tier_id
            else snapshot.tenant_limits.setdefault((entry.group, tenant_id), [])
        )
        owner.append(entry)
        snapshot.has_user_limits |= entry.scope == "user"


def _read_tenants(snapshot: PolicySnapshot) -> None:
    for pk, slug, tier_id, active in Tenant.objects.values_list("pk", "slug", "tier_id", "active"):
        snapshot.tenants[pk] = TenantEntry(pk, slug, tier_id, active)
        snapshot.tenant_slugs[slug] = pk
    keys = ApiKey.objects.filter(revoked=False, tenant__active=True)
    for pk, prefix, hashed, tenant_id in keys.values_list(
        "pk", "prefix", "hashed_secret", "tenant_id"
    ):
        snapshot.api_keys[prefix] = KeyEntry(pk, hashed, tenant_id)
