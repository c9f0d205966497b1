"""The app's models: policies (tiers, tenants, groups, limits, keys) and bans."""

from ratelimit_app.models.audit import EditAction, PolicyEdit
from ratelimit_app.models.bans import (
    BanKind,
    BanRule,
    CountedBy,
    CredentialBan,
    CredentialBanQuerySet,
)
from ratelimit_app.models.policies import (
    Algorithm,
    ApiKey,
    ApiKeyManager,
    EndpointGroup,
    Limit,
    PolicyRevision,
    Scope,
    Tenant,
    Tier,
)

__all__ = [
    "Algorithm",
    "ApiKey",
    "ApiKeyManager",
    "BanKind",
    "BanRule",
    "CountedBy",
    "CredentialBan",
    "CredentialBanQuerySet",
    "EditAction",
    "EndpointGroup",
    "Limit",
    "PolicyEdit",
    "PolicyRevision",
    "Scope",
    "Tenant",
    "Tier",
]
