"""The snapshot's frozen view of each policy row: what a request needs, nothing more."""

import logging
import re
from dataclasses import dataclass
from typing import NamedTuple

from ratelimit_app import paths
from ratelimit_app.models import BanRule
from ratelimit_app.models.policies import limit_problem

logger = logging.getLogger("ratelimit_app")


class LimitEntry(NamedTuple):
    """One enabled limit: a rate per period (a burst for GCRA) counted per ``scope``.

    A named tuple of values only (no row id: its counter is named by group, scope and
    period), so that equal limits, such as many tenants' identical overrides, are one
    object in the snapshot; made in C, a hundred thousand build in milliseconds."""

    group: str
    scope: str
    algorithm: str
    rate: int
    period: int
    burst: int | None
    shadow: bool


@dataclass(frozen=True, slots=True)
class TenantEntry:
    """A tenant: its tier, and whether its requests count as its own."""

    id: int
    slug: str
    tier_id: int
    active: bool


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """An API key that is not revoked: its stored keyed hash and its tenant."""

    id: int
    hashed_secret: str
    tenant_id: int


# Compared and hashed by identity: each snapshot has its own entries, so caches keyed on
# one start afresh after a policy edit (and hashing twelve fields per request is avoided).
@dataclass(frozen=True, slots=True, eq=False)
class BanRuleEntry:
    """A credential-ban rule: which requests it watches and when a pair is banned."""

    id: int
    group: str | None
    pattern: re.Pattern[str] | None
    methods: frozenset[str]
    statuses: frozenset[int]
    threshold: int
    window: int
    cooldown: int
    extend_on_attempt: bool
    reset_on_success: bool
    client_id_threshold: int | None
    ip_threshold: int | None
    # "status" (the middleware counts statuses) or "client_authentication" (the
    # django-oauth-toolkit validator counts failed client authentications).
    counted_by: str = "status"
    # The rule's name, for the metrics' labels and the log (operators name few rules).
    name: str = ""

    @property
    def counts_statuses(self) -> bool:
        """Whether the view's failure statuses are the failures counted."""
        return self.counted_by == "status"

    def watches(self, method: str, path: str, groups: tuple[str | None, ...]) -> bool:
        """Whether this rule watches a request to ``path`` (normalized) in one of ``groups``."""
        if method not in self.methods:
            return False
        if self.pattern is not None and self.pattern.match(path):
            return True
        return self.group is not None and self.group in groups


def ban_rule_entry(rule: BanRule) -> BanRuleEntry:
    """The snapshot's view of an enabled ban rule."""
    return BanRuleEntry(
        id=rule.pk,
        group=rule.group.slug if rule.group is not None else None,
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
        counted_by=rule.counted_by,
        name=rule.name,
    )


def limit_entry(
    id: int,
    group: str,
    scope: str,
    algorithm: str,
    rate: int,
    period: int,
    burst: int | None,
    shadow: bool,
) -> LimitEntry | None:
    """The snapshot's view of a limit row's values, or None (logged) for one that cannot
    be counted, such as a row written around the model's validation."""
    problem = limit_problem(algorithm, rate, period)
    if problem is not None:
        logger.error("Limit %s is skipped: %s.", id, problem)
        return None
    # GCRA's burst: the configured one, else the rate (as Limit.effective_burst).
    gcra_burst = (burst or rate) if algorithm == "gcra" else None
    return LimitEntry(group, scope, algorithm, rate, period, gcra_burst, shadow)
