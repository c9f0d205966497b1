"""Demo data: tenants, API keys, an admin user; every credential is development-only."""

from django.contrib.auth import get_user_model
from django.db import transaction

from ratelimit_app import hashing
from ratelimit_app.catalog import load_catalog
from ratelimit_app.models import ApiKey, BanRule, CountedBy, EndpointGroup, Tenant, Tier

# Fixed, documented, development-only secrets so that the README's curl lines work.
DEMO_KEYS = {
    "free": ("Free Co", "5ca1ab1e.free-tenant-development-only-key"),
    "paid": ("Paid Inc", "c0ffee00.paid-tenant-development-only-key"),
}
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"
DOT_CLIENT_ID, DOT_CLIENT_SECRET = "dot-client", "dot-secret"
DOT_CLIENT_ENDPOINTS = ["/o/token", "/o/revoke_token", "/o/introspect"]
# Where the demo serves each group (the catalogue names only the documents' own paths).
DEMO_PATTERNS = {
    **{
        group: [f"/acp/{group}/*"]
        for group in ("admin", "developer", "public", "oauth2", "openbanking", "system")
    },
    "web": ["/acp/web/*", "/hello"],
    "otp": ["/test"],
    "standard": ["/v1/*"],
    "media": ["/v1/media/*"],
    "license": ["/v1/licenses/*"],
    "token": DOT_CLIENT_ENDPOINTS,  # the toolkit's endpoints join the token group
    "all": ["/v1/*", "/o/*"],  # ip-token-endpoint-limits.md: the demo's API
}


def add_patterns(slug, patterns):
    """Add ``patterns`` to group ``slug``'s path patterns (those it has stay)."""
    group = EndpointGroup.objects.get(slug=slug)
    present = group.pattern_list()
    missing = [p for p in patterns if p not in present]
    if missing:
        group.path_patterns = "\n".join(present + missing)
        group.save()


def load_third_party_provider():
    """A django-oauth-toolkit client-credentials application, and a ban rule that counts
    the toolkit's failed client authentications (through RateLimitedOAuth2Validator);
    its path lets the middleware refuse a banned pair at /o/token/ before the view."""
    from oauth2_provider.models import Application

    if not Application.objects.filter(client_id=DOT_CLIENT_ID).exists():
        Application.objects.create(
            name="demo (django-oauth-toolkit)",
            client_id=DOT_CLIENT_ID,
            client_secret=DOT_CLIENT_SECRET,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        )
    # The toolkit's client-authenticating endpoints are in the token group (DEMO_PATTERNS):
    # its per-IP limit then refuses a guessing address before the toolkit hashes a secret.
    BanRule.objects.update_or_create(
        name="django-oauth-toolkit token endpoint",
        defaults=dict(
            path="/o/token",
            methods="POST",
            failure_statuses="400,401",
            counted_by=CountedBy.CLIENT_AUTHENTICATION,
            threshold=5,
            window=600,
            cooldown=600,
            enabled=True,
        ),
    )


@transaction.atomic
def load_demo_data():
    """Load the catalogue, the free and paid tenants with one API key each, and an admin."""
    load_catalog()
    for slug, patterns in DEMO_PATTERNS.items():
        add_patterns(slug, patterns)
    for tier_name, (tenant_name, secret) in DEMO_KEYS.items():
        tenant, _ = Tenant.objects.update_or_create(
            slug=f"{tier_name}-tenant",
            defaults=dict(name=tenant_name, tier=Tier.objects.get(name=tier_name), active=True),
        )
        prefix = hashing.api_key_prefix(secret)
        ApiKey.objects.update_or_create(
            prefix=prefix,
            defaults=dict(
                tenant=tenant,
                name="demo key",
                revoked=False,
                hashed_secret=hashing.hash_api_key(secret),
            ),
        )
    load_third_party_provider()
    user_model = get_user_model()
    if not user_model.objects.filter(username=ADMIN_USER).exists():
        user_model.objects.create_superuser(ADMIN_USER, "admin@example.invalid", ADMIN_PASSWORD)
