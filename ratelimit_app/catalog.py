"""The default catalogue: the limits of the source documents, loaded idempotently."""

from django.db import transaction

from ratelimit_app.models import BanRule, EndpointGroup, Limit, Tier

MINUTE, HOUR = 60, 3600

# slug: (name, description, path patterns, applies to all)
GROUPS = {
    "admin": ("Admin", "Admin APIs", ["/acp/admin/*"], False),
    "developer": ("Developer", "Developer APIs", ["/acp/developer/*"], False),
    "public": ("Public", "Public APIs", ["/acp/public/*"], False),
    "oauth2": ("OAuth2", "OAuth2 APIs", ["/acp/oauth2/*"], False),
    "openbanking": ("OpenBanking", "Open Banking APIs", ["/acp/openbanking/*"], False),
    "web": ("Web", "Web pages", ["/acp/web/*", "/hello"], False),
    "system": ("System", "System APIs", ["/acp/system/*"], False),
    "otp": ("OTP test", "Send a test OTP message", ["/test"], False),
    "standard": ("Standard REST routes", "Every /v1 route without its own group", ["/v1/*"], False),
    "messaging": ("Messaging", "Sending and listing messages", ["/v1/messages/*"], False),
    "media": ("Media uploads", "Media uploads", ["/v1/media/*"], False),
    "license": (
        "License validation",
        "License key validation and activation",
        ["/v1/licenses/*"],
        False,
    ),
    "token": ("Token endpoint", "OAuth2 token endpoint", ["/connect/token"], False),
    "all": ("Whole API", "Per-IP and per-token limits on every request", [], True),
}

# The free-tier table of tenant-api-group-tiers.md: group -> (rate per minute, burst).
FREE_TENANT_LIMITS = {
    "admin": (300, 50),
    "developer": (600, 50),
    "public": (3000, 500),
    "oauth2": (3000, 500),
    "openbanking": (600, 100),
    "web": (3000, 1000),
    "system": (3000, 100),
    "otp": (1, 1),
}
PAID_FACTOR = 5  # the paid tier: five times the free rates and bursts
OTP_PAID = (5, 2)


def tier_limits(factor):
    """Every limit of a tier, as dicts of Limit fields (group given by slug)."""
    limits = []
    for slug, (rate, burst) in FREE_TENANT_LIMITS.items():
        if slug == "otp":
            rate, burst = OTP_PAID if factor > 1 else (rate, burst)
        else:
            rate, burst = rate * factor, burst * factor
        limits.append(
            dict(
                group=slug, scope="tenant", algorithm="gcra", rate=rate, period=MINUTE, burst=burst
            )
        )
        if slug != "otp":
            # The long rolling average on top of the burst limit: half the per-minute rate.
            limits.append(
                dict(
                    group=slug,
                    scope="tenant",
                    algorithm="sliding_window",
                    rate=rate * MINUTE // 2,
                    period=HOUR,
                )
            )
    # per-key-rolling-windows.md: per API key, rolling windows.
    limits += [
        dict(
            group="standard", scope="api_key", algorithm="sliding_window", rate=120, period=MINUTE
        ),
        dict(
            group="messaging", scope="api_key", algorithm="sliding_window", rate=300, period=MINUTE
        ),
        dict(group="messaging", scope="api_key", algorithm="gcra", rate=5, period=1, burst=5),
        dict(group="media", scope="api_key", algorithm="sliding_window", rate=30, period=MINUTE),
    ]
    # ip-token-endpoint-limits.md: per IP and per token everywhere, more on licenses.
    limits += [
        dict(group="all", scope="ip", algorithm="sliding_window", rate=600 * factor, period=MINUTE),
        dict(
            group="all",
            scope="api_key",
            algorithm="sliding_window",
            rate=1200 * factor,
            period=MINUTE,
        ),
        dict(group="license", scope="api_key", algorithm="sliding_window", rate=20, period=MINUTE),
        dict(group="license", scope="ip", algorithm="sliding_window", rate=30, period=MINUTE),
        dict(group="token", scope="ip", algorithm="sliding_window", rate=60, period=MINUTE),
    ]
    return limits


TIERS = {
    "free": ("Free tier: the published free limits.", True, 1),
    "paid": ("Paid tier: five times the free rates and bursts.", False, PAID_FACTOR),
}


@transaction.atomic
def load_catalog():
    """Create or update the default groups, tiers, limits and token ban rule.

    Idempotent: run twice, it leaves the same rows. Returns the number of limits.
    """
    groups = {}
    for slug, (name, description, patterns, applies_to_all) in GROUPS.items():
        groups[slug], _ = EndpointGroup.objects.update_or_create(
            slug=slug,
            defaults=dict(
                name=name,
                description=description,
                path_patterns="\n".join(patterns),
                applies_to_all=applies_to_all,
            ),
        )
    count = 0
    for tier_name, (description, is_default, factor) in TIERS.items():
        tier, _ = Tier.objects.update_or_create(
            name=tier_name, defaults=dict(description=description, is_default=is_default)
        )
        for fields in tier_limits(factor):
            group = groups[fields.pop("group")]
            Limit.objects.update_or_create(
                group=group,
                tier=tier,
                tenant=None,
                scope=fields.pop("scope"),
                period=fields.pop("period"),
                defaults=dict(enabled=True, **fields),
            )
            count += 1
    BanRule.objects.update_or_create(
        name="Token endpoint credential pairs",
        defaults=dict(
            path="/connect/token",
            methods="POST",
            failure_statuses="400",
            threshold=5,
            window=600,
            cooldown=600,
            enabled=True,
        ),
    )
    return count
