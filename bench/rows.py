"""The benchmark's rows: what each one limits with, and the policies it needs."""

# name -> (view, uses ratelimit_app's middleware, description)
ROWS = {
    "baseline": ("plain", False, "plain Django view, no limiter"),
    "drf_plain": ("drf_plain", False, "DRF view, no throttle"),
    "drf_scoped": ("drf_scoped", False, "DRF ScopedRateThrottle (django-redis cache)"),
    "drf_anon": ("drf_anon", False, "DRF AnonRateThrottle (django-redis cache)"),
    "django_ratelimit": ("django_ratelimit", False, "django-ratelimit (django-redis cache)"),
    "limits_fixed": ("limits_fixed", False, "limits: fixed window (Redis storage)"),
    "limits_moving": ("limits_moving", False, "limits: moving window (Redis storage)"),
    "limits_sliding": ("limits_sliding", False, "limits: sliding window counter (Redis)"),
    "rl_one": ("plain", True, "ratelimit_app: one limit (per IP)"),
    "rl_three": ("plain", True, "ratelimit_app: three limits (IP, API key, tenant+group)"),
    "rl_three_ban": ("plain", True, "ratelimit_app: three limits and a ban rule"),
    "rl_three_metrics": (
        "plain",
        True,
        "ratelimit_app: three limits, Prometheus metrics on (multiprocess mode)",
    ),
}
# Rows measured for admission too; the metrics row admits as rl_three does (it counts
# the same decisions), so it is measured for latency only.
LIMITERS = [name for name in ROWS if name not in ("baseline", "drf_plain", "rl_three_metrics")]
API_KEY = "0badc0de.benchmark-only-api-key"


def load_policies(row, limit):
    """Create the groups, tiers, limits, tenant, API key and ban rule a row needs."""
    from ratelimit_app import hashing
    from ratelimit_app.models import ApiKey, BanRule, EndpointGroup, Limit, Tenant, Tier

    if not row.startswith("rl_"):
        return
    group = EndpointGroup.objects.create(slug="bench", name="Bench", path_patterns="/bench")
    tier = Tier.objects.create(name="bench", is_default=True)
    # A rolling window, like the peers' (GCRA would refill during a run and admit more).
    Limit.objects.create(
        group=group, tier=tier, scope="ip", algorithm="sliding_window", rate=limit, period=60
    )
    if row == "rl_one":
        return
    tenant = Tenant.objects.create(name="Bench", slug="bench", tier=tier)
    ApiKey.objects.create(
        tenant=tenant,
        name="bench",
        prefix=API_KEY.split(".")[0],
        hashed_secret=hashing.hash_api_key(API_KEY),
    )
    Limit.objects.create(
        group=group,
        tier=tier,
        scope="api_key",
        algorithm="sliding_window",
        rate=limit * 100,
        period=60,
    )
    Limit.objects.create(
        group=group,
        tier=tier,
        scope="tenant",
        algorithm="gcra",
        rate=limit * 100,
        period=60,
        burst=limit * 100,
    )
    if row == "rl_three_ban":
        BanRule.objects.create(name="bench", path="/bench", methods="POST")
