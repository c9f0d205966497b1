"""Policy models: tiers, tenants, endpoint groups, limits, API keys, the revision."""

from django.core.exceptions import ValidationError
from django.db import models

from ratelimit_app import hashing, paths
from ratelimit_app.counters.algorithms import MAX_RATE_PERIOD_PRODUCT


class Tier(models.Model):
    """A plan (free, paid, ...) whose limits apply to every tenant on it."""

    name = models.CharField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(
        default=False,
        help_text="Used for requests with no tenant (anonymous or unknown API key).",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="ratelimit_app_one_default_tier",
                violation_error_message="Only one tier can be the default tier.",
            )
        ]

    def __str__(self):
        return self.name


class Tenant(models.Model):
    """A customer; its limits are its tier's, with its own overrides replacing them."""

    name = models.CharField(max_length=128)
    slug = models.SlugField(max_length=64, unique=True)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="tenants")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The policy revision that last changed this tenant, its overrides or its keys:
    # processes re-read only the tenants changed since their snapshot's revision.
    revision = models.PositiveBigIntegerField(default=0, db_index=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class EndpointGroup(models.Model):
    """A named class of endpoints (admin, oauth2, messaging, ...) that limits are set for."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True)
    applies_to_all = models.BooleanField(
        default=False,
        help_text="Its limits apply on top of the request's own group, to every request "
        "whose path matches its path patterns (to every request if it has none): for "
        "example a per-IP or per-API-key limit across the whole API.",
    )
    path_patterns = models.TextField(
        blank=True,
        help_text=(
            "One path per line, for plain Django views. '/v1/messages' matches that path; "
            "'/v1/messages/*' matches it and everything below it. Matching ignores case, "
            "repeated slashes, a trailing slash and percent-encoding."
        ),
    )

    reset_style = models.CharField(
        "X-RateLimit-Reset",
        max_length=8,
        blank=True,
        choices=[
            ("", "as the RESET_STYLE setting says"),
            ("delta", "seconds until the limit is back to its initial state"),
            ("epoch", "the Unix time (seconds) when the window resets"),
        ],
        help_text="How this group's responses give X-RateLimit-Reset.",
    )
    headers_describe = models.CharField(
        "X-RateLimit-* describe",
        max_length=8,
        default="tightest",
        choices=[
            ("tightest", "the limit closest to refusing (a burst limit while it binds)"),
            ("window", "the rolling window: the limit with the longest period"),
        ],
        help_text="Which of the group's limits the X-RateLimit-* headers describe. "
        "Retry-After is always the wait of the limit that refused.",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.name

    def pattern_list(self):
        """The non-empty path patterns, one per line."""
        return [line.strip() for line in self.path_patterns.splitlines() if line.strip()]

    def clean(self):
        for pattern in self.pattern_list():
            try:
                paths.compile_pattern(pattern)
            except ValueError as exc:
                raise ValidationError({"path_patterns": str(exc)}) from exc


class Scope(models.TextChoices):
    TENANT = "tenant", "per tenant"
    API_KEY = "api_key", "per API key (access token)"
    IP = "ip", "per client IP"
    USER = "user", "per user"


PERIOD_WORDS = {1: "s", 60: "min", 3600: "h", 86400: "day"}


def period_in_words(seconds: int | None) -> str:
    """A period as its unit ("min", "h") where it is one, else "10 s", "2 min", "6 h"."""
    if not seconds:
        return "?"
    if seconds in PERIOD_WORDS:
        return PERIOD_WORDS[seconds]
    for unit, word in sorted(PERIOD_WORDS.items(), reverse=True):
        if seconds % unit == 0:
            return f"{seconds // unit} {word}"
    return f"{seconds} s"


class Algorithm(models.TextChoices):
    GCRA = "gcra", "GCRA (rate with burst)"
    SLIDING_WINDOW = "sliding_window", "rolling window"
    FIXED_WINDOW = "fixed_window", "fixed window"


class Limit(models.Model):
    """A rate per period (with a burst for GCRA) on one endpoint group, for a tier or tenant."""

    group = models.ForeignKey(EndpointGroup, on_delete=models.CASCADE, related_name="limits")
    tier = models.ForeignKey(
        Tier, on_delete=models.CASCADE, null=True, blank=True, related_name="limits"
    )
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="overrides",
        help_text="Set for a tenant override; it replaces the tier's limit with the same "
        "group, scope and period.",
    )
    scope = models.CharField(
        "counted per", max_length=16, choices=Scope.choices, default=Scope.TENANT
    )
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices, default=Algorithm.GCRA)
    rate = models.PositiveIntegerField(help_text="Requests allowed per period.")
    period = models.PositiveIntegerField(help_text="Period in seconds.", default=60)
    burst = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="GCRA only: requests allowed at once from rest. Empty: the rate (a whole "
        "period's requests may come at once). Leave it empty for windows.",
    )
    enabled = models.BooleanField(default=True)
    shadow = models.BooleanField(
        default=False, help_text="Counted and reported in headers, but never denies."
    )
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["group__slug", "scope", "period"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(tier__isnull=False, tenant__isnull=True)
                    | models.Q(tier__isnull=True, tenant__isnull=False)
                ),
                name="ratelimit_app_limit_one_owner",
                violation_error_message="A limit belongs to a tier or to a tenant, not both.",
            ),
            models.UniqueConstraint(
                fields=["group", "tier", "scope", "period"],
                condition=models.Q(enabled=True, tenant__isnull=True),
                name="ratelimit_app_unique_tier_limit",
                violation_error_message=(
                    "This tier already has an enabled limit for this group, counted the same "
                    "way over the same period. Edit that one or disable it first."
                ),
            ),
            models.UniqueConstraint(
                fields=["group", "tenant", "scope", "period"],
                condition=models.Q(enabled=True, tier__isnull=True),
                name="ratelimit_app_unique_tenant_limit",
                violation_error_message=(
                    "This tenant already has an enabled override for this group, counted the "
                    "same way over the same period. Edit that one or disable it first."
                ),
            ),
        ]

    def __str__(self):
        return f"{self.group.slug}: {self.in_words()} ({self.tenant or self.tier})"

    def in_words(self) -> str:
        """The limit as an operator says it: "300/min · burst 50 · per tenant"."""
        parts = [f"{self.rate}/{period_in_words(self.period)}"]
        if self.algorithm == Algorithm.GCRA:
            parts.append(f"burst {self.burst or self.rate}")
        elif self.algorithm == Algorithm.FIXED_WINDOW:
            parts.append("fixed window")
        parts.append(Scope(self.scope).label if self.scope in Scope.values else self.scope)
        return " · ".join(parts)

    def count_problem(self) -> str | None:
        """Why this row cannot be counted (it was written around ``clean``), or None."""
        return limit_problem(self.algorithm, self.rate, self.period)

    @property
    def effective_burst(self):
        """The burst used by GCRA: the configured one, else the rate."""
        return self.burst or self.rate

    def clean(self):
        errors = {}
        if self.tier_id is None and self.tenant_id is None:
            errors["tier"] = "Choose the tier this limit belongs to, or a tenant to override."
        if self.tier_id is not None and self.tenant_id is not None:
            errors["tenant"] = "A limit belongs to a tier or to a tenant, not both."
        if not self.rate:
            errors["rate"] = "The rate must be at least 1 request per period."
        if not self.period:
            errors["period"] = "The period must be at least 1 second."
        if self.algorithm == Algorithm.GCRA and self.burst is not None and self.burst < 1:
            errors["burst"] = "The burst must be at least 1 request for GCRA."
        if self.algorithm != Algorithm.GCRA and self.burst:
            errors["burst"] = "A burst applies to GCRA only; leave it empty for windows."
        if self.rate and self.period and self.rate * self.period > MAX_RATE_PERIOD_PRODUCT:
            errors["rate"] = (
                f"rate x period must not exceed {MAX_RATE_PERIOD_PRODUCT:,}; "
                "use a shorter period for a limit this large."
            )
        if errors:
            raise ValidationError(errors)


ALGORITHMS = frozenset(Algorithm.values)  # computed once: the snapshot checks every row


def limit_problem(algorithm: str, rate: int | None, period: int | None) -> str | None:
    """Why a limit with these numbers cannot be counted exactly, or None if it can."""
    if algorithm not in ALGORITHMS:
        return f"unknown algorithm {algorithm!r}"
    if not rate or not period or rate < 1 or period < 1:
        return "a limit needs a rate and a period of at least 1"
    if rate * period > MAX_RATE_PERIOD_PRODUCT:
        return "rate x period is too large for exact counting"
    return None


class ApiKeyManager(models.Manager):
    def create_key(self, tenant, name):
        """Create a key and return ``(api_key, secret)``; the secret is not stored."""
        prefix, secret = hashing.new_api_key()
        key = self.create(
            tenant=tenant, name=name, prefix=prefix, hashed_secret=hashing.hash_api_key(secret)
        )
        return key, secret


class ApiKey(models.Model):
    """An API key (access token) of a tenant, kept only as a prefix and a keyed hash."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=128)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_secret = models.CharField(max_length=128, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked = models.BooleanField(default=False)

    objects = ApiKeyManager()

    class Meta:
        ordering = ["tenant__name", "name"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"


class PolicyRevision(models.Model):
    """A single row whose number goes up on every policy edit; processes poll it.

    ``number`` moves on every edit, bans included; ``policy_number`` is the number of the
    last edit that was neither a ban being written, extended or lifted nor a change to
    one tenant (its row, its overrides, its keys). A process whose snapshot is at that
    policy number only reads the ban rows and tenants changed since (their ``revision``)
    instead of building a whole new snapshot.
    """

    number = models.PositiveBigIntegerField(default=0)
    policy_number = models.PositiveBigIntegerField(default=0)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"revision {self.number}"
