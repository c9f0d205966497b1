"""build_snapshot: every enabled policy read from the database into a PolicySnapshot."""

from datetime import datetime

from django.utils import timezone

from ratelimit_app import paths
from ratelimit_app.models import ApiKey, BanRule, CredentialBan, EndpointGroup, Limit, Tenant, Tier
from ratelimit_app.policy import revision
from ratelimit_app.policy.entries import KeyEntry, TenantEntry, ban_rule_entry, limit_entry
from ratelimit_app.policy.snapshot import PolicySnapshot


def build_snapshot(now: datetime | None = None) -> PolicySnapshot:
    """Read every enabled policy from the database into a new PolicySnapshot."""
    snapshot = PolicySnapshot(revision=revision.current())
    snapshot.default_tier_id = (
        Tier.objects.filter(is_default=True).values_list("pk", flat=True).first()
    )
    _read_groups(snapshot)
    _read_limits(snapshot)
    for tenant in Tenant.objects.all():
        snapshot.tenants[tenant.pk] = TenantEntry(
            tenant.pk, tenant.slug, tenant.tier_id, tenant.active
        )
        snapshot.tenant_slugs[tenant.slug] = tenant.pk
    for key in ApiKey.objects.filter(revoked=False, tenant__active=True):
        snapshot.api_keys[key.prefix] = KeyEntry(key.pk, key.hashed_secret, key.tenant_id)
    snapshot.ban_rules = tuple(
        ban_rule_entry(rule)
        for rule in BanRule.objects.filter(enabled=True).select_related("group")
    )
    _read_bans(snapshot, now or timezone.now())
    return snapshot


def _read_groups(snapshot: PolicySnapshot) -> None:
    matchers = []
    for group in EndpointGroup.objects.all():
        snapshot.groups[group.slug] = group.applies_to_all
        for pattern in group.pattern_list():
            specificity = paths.pattern_specificity(pattern)
            matchers.append((specificity, paths.compile_pattern(pattern), group.slug))
    matchers.sort(key=lambda m: m[0], reverse=True)
    snapshot.matchers = tuple((pattern, slug) for _, pattern, slug in matchers)
    snapshot.global_groups = tuple(s for s, applies in snapshot.groups.items() if applies)


def _read_limits(snapshot: PolicySnapshot) -> None:
    for limit in Limit.objects.filter(enabled=True).select_related("group"):
        entry = limit_entry(limit)
        if entry is None:
            continue
        owner = (
            snapshot.tier_limits.setdefault((limit.group.slug, limit.tier_id), [])
            if limit.tier_id
            else snapshot.tenant_limits.setdefault((limit.group.slug, limit.tenant_id), [])
        )
        owner.append(entry)
        snapshot.has_user_limits |= limit.scope == "user"


def _read_bans(snapshot: PolicySnapshot, now: datetime) -> None:
    for rule_id, fingerprint, expires_at in CredentialBan.objects.active(now).values_list(
        "rule_id", "fingerprint", "expires_at"
    ):
        snapshot.bans[(rule_id, fingerprint)] = expires_at.timestamp()
    recently_lifted = CredentialBan.objects.filter(
        lifted_at__isnull=False, expires_at__gt=now
    ).values_list("rule_id", "fingerprint", "lifted_at")
    for rule_id, fingerprint, lifted_at in recently_lifted:
        if lifted_at is not None:
            snapshot.lifted[(rule_id, fingerprint)] = lifted_at.timestamp()
