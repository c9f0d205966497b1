"""PolicySnapshot: a frozen, in-memory view of every enabled policy, one per process.

Requests read the snapshot and never the database. At most once per
POLICY_REFRESH_INTERVAL a process reads the revision number (one small query) and
rebuilds the snapshot when an admin edit has raised it, so edits reach every worker
within about a second without a restart.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from django.utils import timezone

from ratelimit_app import paths, revision
from ratelimit_app.conf import get_config
from ratelimit_app.counters.algorithms import LimitSpec
from ratelimit_app.models import ApiKey, BanRule, CredentialBan, EndpointGroup, Limit, Tenant, Tier

logger = logging.getLogger("ratelimit_app")
PATH_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class LimitEntry:
    id: int
    group: str
    scope: str
    algorithm: str
    rate: int
    period: int
    burst: int | None
    shadow: bool


@dataclass(frozen=True, slots=True)
class TenantEntry:
    id: int
    slug: str
    tier_id: int
    active: bool


@dataclass(frozen=True, slots=True)
class KeyEntry:
    id: int
    hashed_secret: str
    tenant_id: int


# Compared and hashed by identity: each snapshot has its own entries, so caches keyed on
# one start afresh after a policy edit (and hashing twelve fields per request is avoided).
@dataclass(frozen=True, slots=True, eq=False)
class BanRuleEntry:
    id: int
    group: str | None
    pattern: object | None
    methods: frozenset
    statuses: frozenset
    threshold: int
    window: int
    cooldown: int
    extend_on_attempt: bool
    reset_on_success: bool
    client_id_threshold: int | None
    ip_threshold: int | None

    def watches(self, method, path, group):
        """Whether this rule watches a request to ``path`` (normalized) in ``group``."""
        if method not in self.methods:
            return False
        if self.pattern is not None and self.pattern.match(path):
            return True
        return self.group is not None and self.group == group


def _ban_rule_entry(rule):
    return BanRuleEntry(
        id=rule.pk,
        group=rule.group.slug if rule.group_id else None,
        pattern=paths.compile_pattern(rule.path) if rule.path else None,
        methods=rule.method_set(),
        statuses=rule.status_set(),
        threshold=rule.threshold,
        window=rule.window,
        cooldown=rule.cooldown,
        extend_on_attempt=rule.extend_on_attempt,
        reset_on_success=rule.reset_on_success,
        client_id_threshold=rule.client_id_threshold,
        ip_threshold=rule.ip_threshold,
    )


@dataclass
class PolicySnapshot:
    """Everything a request needs to know about policies, without a query."""

    revision: int = 0
    default_tier_id: int | None = None
    groups: dict = field(default_factory=dict)  # slug -> applies_to_all
    global_groups: tuple = ()
    matchers: tuple = ()  # (compiled pattern, group slug), most specific first
    tier_limits: dict = field(default_factory=dict)  # (group, tier_id) -> [LimitEntry]
    tenant_limits: dict = field(default_factory=dict)  # (group, tenant_id) -> [LimitEntry]
    tenants: dict = field(default_factory=dict)  # id -> TenantEntry
    tenant_slugs: dict = field(default_factory=dict)  # slug -> id
    api_keys: dict = field(default_factory=dict)  # prefix -> KeyEntry
    ban_rules: tuple = ()
    bans: dict = field(default_factory=dict)  # (rule_id, fingerprint) -> expires_at (epoch s)
    lifted: dict = field(default_factory=dict)  # (rule_id, fingerprint) -> lifted_at (epoch s)
    has_user_limits: bool = False
    spec_cache: dict = field(default_factory=dict)  # see enforcement.cached_specs
    _cache: dict = field(default_factory=dict)

    def group_for_path(self, path):
        """The endpoint group whose path patterns match ``path`` (normalized first)."""
        found = self._cache.get(("path", path), False)
        if found is False:
            found = None
            normalized = paths.normalize_path(path)
            for pattern, slug in self.matchers:
                if pattern.match(normalized):
                    found = slug
                    break
            if len(self._cache) >= PATH_CACHE_SIZE:
                self._cache.clear()
            self._cache[("path", path)] = found
        return found

    def limits_for(self, group, tenant):
        """Limits for a request to ``group`` by ``tenant`` (either may be None): the tier's
        limits with the tenant's overrides replacing those of the same scope and period,
        plus the limits of every group that applies to all requests."""
        cache_key = (group, tenant.id if tenant else None)
        cached = self._cache.get(cache_key)
        if cached is None:
            cached = tuple(
                limit
                for slug in dict.fromkeys((group, *self.global_groups))
                if slug is not None
                for limit in self._group_limits(slug, tenant)
            )
            self._cache[cache_key] = cached
        return cached

    def _group_limits(self, group, tenant):
        tier_id = tenant.tier_id if tenant else self.default_tier_id
        base = self.tier_limits.get((group, tier_id), [])
        if tenant is None:
            return base
        overrides = self.tenant_limits.get((group, tenant.id), [])
        replaced = {(o.scope, o.period) for o in overrides}
        return [*overrides, *(b for b in base if (b.scope, b.period) not in replaced)]


def _limit_entry(limit):
    """The snapshot's view of a limit, or None (logged) for one that cannot be counted,
    such as a row written around the model's validation."""
    entry = LimitEntry(
        id=limit.pk,
        group=limit.group.slug,
        scope=limit.scope,
        algorithm=limit.algorithm,
        rate=limit.rate,
        period=limit.period,
        burst=limit.effective_burst if limit.algorithm == "gcra" else None,
        shadow=limit.shadow,
    )
    try:
        LimitSpec("check", entry.algorithm, entry.rate, entry.period, entry.burst)
    except ValueError as exc:
        logger.error("Limit %s is skipped: %s", limit.pk, exc)
        return None
    return entry


def build_snapshot(now=None):
    """Read every enabled policy from the database into a new PolicySnapshot."""
    snapshot = PolicySnapshot(revision=revision.current())
    snapshot.default_tier_id = (
        Tier.objects.filter(is_default=True).values_list("pk", flat=True).first()
    )
    matchers = []
    for group in EndpointGroup.objects.all():
        snapshot.groups[group.slug] = group.applies_to_all
        for pattern in group.pattern_list():
            specificity = paths.pattern_specificity(pattern)
            matchers.append((specificity, paths.compile_pattern(pattern), group.slug))
    matchers.sort(key=lambda m: m[0], reverse=True)
    snapshot.matchers = tuple((pattern, slug) for _, pattern, slug in matchers)
    snapshot.global_groups = tuple(s for s, applies in snapshot.groups.items() if applies)
    for limit in Limit.objects.filter(enabled=True).select_related("group"):
        entry = _limit_entry(limit)
        if entry is None:
            continue
        owner = (
            snapshot.tier_limits.setdefault((limit.group.slug, limit.tier_id), [])
            if limit.tier_id
            else snapshot.tenant_limits.setdefault((limit.group.slug, limit.tenant_id), [])
        )
        owner.append(entry)
        snapshot.has_user_limits |= limit.scope == "user"
    for tenant in Tenant.objects.all():
        snapshot.tenants[tenant.pk] = TenantEntry(
            tenant.pk, tenant.slug, tenant.tier_id, tenant.active
        )
        snapshot.tenant_slugs[tenant.slug] = tenant.pk
    for key in ApiKey.objects.filter(revoked=False, tenant__active=True):
        snapshot.api_keys[key.prefix] = KeyEntry(key.pk, key.hashed_secret, key.tenant_id)
    snapshot.ban_rules = tuple(
        _ban_rule_entry(rule)
        for rule in BanRule.objects.filter(enabled=True).select_related("group")
    )
    for rule_id, fingerprint, expires_at in CredentialBan.objects.active().values_list(
        "rule_id", "fingerprint", "expires_at"
    ):
        snapshot.bans[(rule_id, fingerprint)] = expires_at.timestamp()
    recently_lifted = CredentialBan.objects.filter(
        lifted_at__isnull=False, expires_at__gt=timezone.now()
    ).values_list("rule_id", "fingerprint", "lifted_at")
    for rule_id, fingerprint, lifted_at in recently_lifted:
        snapshot.lifted[(rule_id, fingerprint)] = lifted_at.timestamp()
    return snapshot


class SnapshotHolder:
    """Keeps a process's snapshot fresh; ``clock`` is injectable for tests."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.snapshot = None
        self.checked_at = None
        self.remote_seen_at = None
        self.republished_at = float("-inf")
        self.built_at = float("-inf")
        self.rebuild_at = None
        self._lock = threading.Lock()

    def _interval(self, now, config):
        interval = float(config["POLICY_REFRESH_INTERVAL"])
        fallback = float(config["POLICY_FALLBACK_INTERVAL"])
        if self.remote_seen_at is not None and now - self.remote_seen_at < fallback:
            # The counter store tells of edits with every check: the database is only
            # asked in case a publication was lost.
            return max(interval, fallback)
        return interval

    def note_remote_revision(self, number):
        """The counter store knows of policy revision ``number`` (0: of none, after a flush
        or restart): rebuild if it is newer, publish ours again if it has none."""
        now = self.clock()
        if not number:
            self._republish(now)
            return
        self.remote_seen_at = now
        if self.snapshot is not None and number > self.snapshot.revision:
            self._schedule_rebuild(now)

    def _schedule_rebuild(self, now):
        # At most one rebuild per POLICY_REFRESH_INTERVAL: a burst of edits (or of bans
        # during an attack) costs each process one rebuild a second, not one per edit.
        if self.rebuild_at is None:
            spacing = float(get_config()["POLICY_REFRESH_INTERVAL"])
            self.rebuild_at = max(now, self.built_at + spacing)

    def _republish(self, now):
        # At most once per interval, and only where the key is missing, so that an
        # edit's own publication (unconditional) always wins.
        interval = float(get_config()["POLICY_REFRESH_INTERVAL"])
        if self.snapshot is None or now - self.republished_at < interval:
            return
        self.republished_at = now
        revision.publish(self.snapshot.revision, only_if_missing=True)

    def get(self):
        """The current snapshot, refreshed if the revision moved (checked once per interval)."""
        now = self.clock()
        if self.snapshot is not None and not self._due(now):
            return self.snapshot
        with self._lock:
            if self.snapshot is None or self._due(now):
                self._refresh(now)
        return self.snapshot

    def _due(self, now):
        if self.rebuild_at is not None and now >= self.rebuild_at:
            return True
        return now - self.checked_at >= self._interval(now, get_config())

    def _refresh(self, now):
        if self.snapshot is None or revision.current() != self.snapshot.revision:
            self.snapshot = build_snapshot()
            self.built_at = now
        self.checked_at = now
        self.rebuild_at = None

    def invalidate(self):
        """Rebuild on the next request (used after this process itself changed a policy)."""
        with self._lock:
            self.checked_at = float("-inf")
