"""The default catalogue: the limits of the source documents, loaded idempotently."""

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Model

from ratelimit_app.models import BanRule, EndpointGroup, Limit, Tier

MINUTE, HOUR = 60, 3600

# slug: (name, description, path patterns, applies to all). Only the paths the documents
# name are the catalogue's (the token endpoint, the messaging endpoints); where a host
# project serves the other groups is its own business (the demo's are in project/demo).
GROUPS = {
    "admin": ("Admin", "Admin APIs", [], False),
    "developer": ("Developer", "Developer APIs", [], False),
    "public": ("Public", "Public APIs", [], False),
    "oauth2": ("OAuth2", "OAuth2 APIs", [], False),
    "openbanking": ("OpenBanking", "Open Banking APIs", [], False),
    "web": ("Web", "Web pages", [], False),
    "system": ("System", "System APIs", [], False),
    "otp": ("OTP test", "Send a test OTP message", [], False),
    "standard": ("Standard REST routes", "Every API route without its own group", [], False),
    "messaging": ("Messaging", "Sending and listing messages", ["/v1/messages/*"], False),
    "media": ("Media uploads", "Media uploads", [], False),
    "license": ("License validation", "License key validation and activation", [], False),
    "token": ("Token endpoint", "OAuth2 token endpoint", ["/connect/token"], False),
    # ip-token-endpoint-limits.md's per-IP and per-token limits cover its API and the
    # token endpoint: the host project adds its API's paths (the demo: /v1/*, /o/*).
    "all": (
        "Whole API",
        "Per-IP and per-token limits on every API and token request",
        ["/connect/token"],
        True,
    ),
}
# How each document defines X-RateLimit-* (EndpointGroup.reset_style, .headers_describe):
# tenant-api-group-tiers.md: Limit is what an empty state allows at once, Reset the time
# until the initial state; per-key-rolling-windows.md: Limit is the rolling window's
# number (300 for messaging, whose 5/s is a burst on top), Reset a Unix time.
ACP_HEADERS = ("delta", "tightest")
ROLLING_WINDOW_HEADERS = ("epoch", "window")
HEADER_STYLES = {
    **dict.fromkeys(
        ("admin", "developer", "public", "oauth2", "openbanking", "web", "system"), ACP_HEADERS
    ),
    **dict.fromkeys(("standard", "messaging", "media"), ROLLING_WINDOW_HEADERS),
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


@dataclass
class CatalogReport:
    """What loading the catalogue did: rows created, rows an operator changed (left as
    they are, unless reset), and rows restored to the documents' values."""

    created: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    limits: int = 0


TOKEN_BAN_RULE = dict(
    path="/connect/token",
    methods="POST",
    failure_statuses="400",
    threshold=5,
    window=600,
    cooldown=600,
    enabled=True,
)


@transaction.atomic
def load_catalog(reset: bool = False) -> CatalogReport:
    """Create what is missing of the default groups, tiers, limits and token ban rule.

    A row that exists but differs from the documents (an operator's edit) is left as it
    is and listed in the report; with ``reset`` it is restored, and listed as such.
    """
    report = CatalogReport()
    groups = {}
    for slug, (name, description, patterns, applies_to_all) in GROUPS.items():
        groups[slug] = _settle(
            report,
            reset,
            EndpointGroup,
            f"group {slug}",
            dict(slug=slug),
            dict(
                name=name,
                description=description,
                applies_to_all=applies_to_all,
                reset_style=HEADER_STYLES.get(slug, ("", "tightest"))[0],
                headers_describe=HEADER_STYLES.get(slug, ("", "tightest"))[1],
            ),
            # Where a group is served is the host project's: set when created, then
            # never compared nor reset.
            created_with=dict(path_patterns="\n".join(patterns)),
        )
    for tier_name, (description, is_default, factor) in TIERS.items():
        tier = _settle(
            report,
            reset,
            Tier,
            f"tier {tier_name}",
            dict(name=tier_name),
            dict(description=description, is_default=is_default),
        )
        for fields in tier_limits(factor):
            group = groups[fields.pop("group")]
            scope, period = fields.pop("scope"), fields.pop("period")
            _settle(
                report,
                reset,
                Limit,
                f"{tier_name} {group.slug} limit per {scope} over {period} s",
                dict(group=group, tier=tier, tenant=None, scope=scope, period=period),
                {"enabled": True, "burst": None, **fields},
            )
            report.limits += 1
    _settle(
        report,
        reset,
        BanRule,
        "ban rule 'Token endpoint credential pairs'",
        dict(name="Token endpoint credential pairs"),
        TOKEN_BAN_RULE,
    )
    return report


def _settle(
    report: CatalogReport,
    reset: bool,
    model: type[Model],
    label: str,
    lookup: dict[str, Any],
    values: dict[str, Any],
    created_with: dict[str, Any] | None = None,
) -> Any:
    """Create the row if missing (with ``created_with`` too); else compare it with
    ``values`` (restore if reset)."""
    row = model.objects.filter(**lookup).first()
    if row is None:
        report.created.append(label)
        return model.objects.create(**lookup, **values, **(created_with or {}))
    changed = {
        name: (getattr(row, name), value)
        for name, value in values.items()
        if getattr(row, name) != value
    }
    if not changed:
        return row
    differences = ", ".join(
        f"{name} {now!r} (the documents: {value!r})" for name, (now, value) in changed.items()
    )
    if reset:
        for name, (_now, value) in changed.items():
            setattr(row, name, value)
        row.save(update_fields=list(changed))
        report.restored.append(f"{label}: {differences}")
    else:
        report.differing.append(f"{label}: {differences}")
    return row
