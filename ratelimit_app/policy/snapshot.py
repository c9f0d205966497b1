"""PolicySnapshot: a frozen, in-memory view of every enabled policy, one per process.

Requests read the snapshot and never the database; ``build.build_snapshot`` makes one
and ``holder.SnapshotHolder`` keeps a process's snapshot fresh.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ratelimit_app import bounded, paths
from ratelimit_app.policy.entries import BanRuleEntry, KeyEntry, LimitEntry, TenantEntry

PATH_CACHE_SIZE = 10_000
DEFAULT_HEADER_STYLE = ("", "tightest")
NO_OVERRIDES: dict[str, tuple[LimitEntry, ...]] = {}


@dataclass
class PolicySnapshot:
    """Everything a request needs to know about policies, without a query."""

    revision: int = 0
    # The revision of the last edit that was not a ban row (see models.PolicyRevision).
    policy_revision: int = 0
    default_tier_id: int | None = None
    groups: dict[str, bool] = field(default_factory=dict)  # slug -> applies_to_all
    group_slugs: dict[int, str] = field(default_factory=dict)  # id -> slug
    # slug -> (reset style, or "" for the setting; which limit the headers describe)
    group_headers: dict[str, tuple[str, str]] = field(default_factory=dict)
    global_groups: tuple[str, ...] = ()
    # slug of a group on top of others -> its compiled patterns (none: every request)
    global_matchers: dict[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    # (compiled pattern, group slug), most specific first
    matchers: tuple[tuple[re.Pattern[str], str], ...] = ()
    # (group slug, tier or tenant id) -> limits; lists while built, tuples once built
    tier_limits: dict[tuple[str, int | None], Sequence[LimitEntry]] = field(default_factory=dict)
    # tenant id -> {group slug -> its overrides}; tenants with equal overrides share one
    tenant_limits: dict[int, dict[str, tuple[LimitEntry, ...]]] = field(default_factory=dict)
    tenants: dict[int, TenantEntry] = field(default_factory=dict)
    tenant_slugs: dict[str, int] = field(default_factory=dict)
    api_keys: dict[str, KeyEntry] = field(default_factory=dict)  # prefix -> KeyEntry
    tenant_keys: dict[int, tuple[str, ...]] = field(default_factory=dict)  # -> prefixes
    # Prefixes this snapshot lacks, as read from the database: (read at, entry or None)
    key_lookups: dict[str, tuple[float, KeyEntry | None]] = field(default_factory=dict)
    ban_rules: tuple[BanRuleEntry, ...] = ()
    # rule_id -> {fingerprint key: expires_at}, and -> {fingerprint key: lifted_at}
    # (epoch seconds; see fingerprint_key): a hundred thousand bans in a few MB.
    bans: dict[int, dict[bytes | str, float]] = field(default_factory=dict)
    lifted: dict[int, dict[bytes | str, float]] = field(default_factory=dict)
    has_user_limits: bool = False
    # Memo of the pipeline's limit specs for this snapshot (enforcement.specs).
    spec_cache: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)
    _paths: dict[str, tuple[str | None, tuple[str, ...]]] = field(default_factory=dict)
    _limits: dict[tuple[str | None, int | None, tuple[str, ...] | None], tuple[LimitEntry, ...]] = (
        field(default_factory=dict)
    )

    def route(self, path: str) -> tuple[str | None, tuple[str, ...]]:
        """The endpoint group whose path patterns match ``path`` (normalized first), and
        the groups on top of others that apply to it."""
        found = self._paths.get(path)
        if found is not None:
            return found
        normalized = paths.normalize_path(path)
        group = next((slug for pattern, slug in self.matchers if pattern.match(normalized)), None)
        on_top = tuple(
            slug
            for slug, patterns in self.global_matchers.items()
            if not patterns or any(pattern.match(normalized) for pattern in patterns)
        )
        found = (group, on_top)
        if len(path) <= bounded.MAX_KEY_LENGTH:  # a long path is hostile: not kept
            bounded.put(self._paths, path, found, PATH_CACHE_SIZE)
        return found

    def group_for_path(self, path: str) -> str | None:
        """The endpoint group whose path patterns match ``path`` (normalized first)."""
        return self.route(path)[0]

    def limits_for(
        self,
        group: str | None,
        tenant: TenantEntry | None,
        on_top: tuple[str, ...] | None = None,
    ) -> tuple[LimitEntry, ...]:
        """Limits for a request to ``group`` by ``tenant`` (either may be None): the tier's
        limits with the tenant's overrides replacing those of the same scope and period,
        plus the limits of the groups on top of others that apply (``on_top``, from
        ``route``; every such group if None)."""
        cache_key = (group, tenant.id if tenant else None, on_top)
        cached = self._limits.get(cache_key)
        if cached is None:
            extra = self.global_groups if on_top is None else on_top
            cached = tuple(
                limit
                for slug in dict.fromkeys((group, *extra))
                if slug is not None
                for limit in self._group_limits(slug, tenant)
            )
            self._limits[cache_key] = cached  # bounded by the policies and their patterns
        return cached

    def _group_limits(self, group: str, tenant: TenantEntry | None) -> Sequence[LimitEntry]:
        tier_id = tenant.tier_id if tenant else self.default_tier_id
        base = self.tier_limits.get((group, tier_id), [])
        if tenant is None:
            return base
        overrides = self.overrides(group, tenant.id)
        replaced = {(o.scope, o.period) for o in overrides}
        return [*overrides, *(b for b in base if (b.scope, b.period) not in replaced)]

    def overrides(self, group: str, tenant_id: int) -> tuple[LimitEntry, ...]:
        """The tenant's own limits for ``group`` (none: its tier's apply)."""
        return self.tenant_limits.get(tenant_id, NO_OVERRIDES).get(group, ())

    def header_style(self, group: str | None) -> tuple[str, str]:
        """How ``group``'s responses give X-RateLimit-*: see EndpointGroup."""
        return self.group_headers.get(group or "", DEFAULT_HEADER_STYLE)

    @property
    def client_authentication_rule(self) -> BanRuleEntry | None:
        """The first enabled rule that counts failed client authentications, if any."""
        return next((r for r in self.ban_rules if not r.counts_statuses), None)

    def recorded_ban(self, rule_id: int, fingerprint: str) -> float | None:
        """The expiry (epoch seconds) of the pair's ban as the database records it, if any."""
        return self.bans.get(rule_id, {}).get(fingerprint_key(fingerprint))

    def lifted_at(self, rule_id: int, fingerprint: str) -> float | None:
        """When an operator lifted the pair's ban that would still run, if one did."""
        return self.lifted.get(rule_id, {}).get(fingerprint_key(fingerprint))

    def ban_count(self) -> int:
        """How many bans the snapshot records (expired ones included until a rebuild)."""
        return sum(map(len, self.bans.values()))


def fingerprint_key(fingerprint: str) -> bytes | str:
    """How a ban's fingerprint is kept: its 32 bytes rather than 64 hex characters (half
    the memory); a fingerprint that is not hex (written by hand) as it is."""
    try:
        return bytes.fromhex(fingerprint)
    except ValueError:
        return fingerprint
