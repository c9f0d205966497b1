"""Demo data: tenants, API keys, an admin user; every credential is development-only."""

from django.contrib.auth import get_user_model
from django.db import transaction

from ratelimit_app import hashing
from ratelimit_app.catalog import load_catalog
from ratelimit_app.models import ApiKey, Tenant, Tier

# Fixed, documented, development-only secrets so that the README's curl lines work.
DEMO_KEYS = {
    "free": ("Free Co", "5ca1ab1e.free-tenant-development-only-key"),
    "paid": ("Paid Inc", "c0ffee00.paid-tenant-development-only-key"),
}
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"


@transaction.atomic
def load_demo_data():
    """Load the catalogue, the free and paid tenants with one API key each, and an admin."""
    load_catalog()
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
    user_model = get_user_model()
    if not user_model.objects.filter(username=ADMIN_USER).exists():
        user_model.objects.create_superuser(ADMIN_USER, "admin@example.invalid", ADMIN_PASSWORD)
