import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from ratelimit_app.models import BanRule, EndpointGroup, Limit, Tier

pytestmark = pytest.mark.django_db


def snapshot():
    return {
        model.__name__: sorted(
            (tuple(sorted(model_to_dict(row).items(), key=str)) for row in model.objects.all()),
            key=str,
        )
        for model in (Tier, EndpointGroup, Limit, BanRule)
    }


def test_catalog_command_is_idempotent():
    call_command("ratelimit_load_catalog", verbosity=0)
    first = snapshot()
    call_command("ratelimit_load_catalog", verbosity=0)
    assert snapshot() == first
    assert Limit.objects.count() == len(first["Limit"]) > 0


def test_catalog_holds_the_published_numbers():
    call_command("ratelimit_load_catalog", verbosity=0)
    free = Tier.objects.get(name="free")
    assert free.is_default
    burst_limits = {
        limit.group.slug: (limit.rate, limit.burst)
        for limit in Limit.objects.filter(tier=free, algorithm="gcra", scope="tenant")
    }
    assert burst_limits == {
        "admin": (300, 50),
        "developer": (600, 50),
        "public": (3000, 500),
        "oauth2": (3000, 500),
        "openbanking": (600, 100),
        "web": (3000, 1000),
        "system": (3000, 100),
        "otp": (1, 1),
    }
    paid = Limit.objects.get(tier__name="paid", group__slug="admin", algorithm="gcra")
    assert paid.rate > 300 and paid.burst > 50
    per_key = {
        (limit.group.slug, limit.algorithm, limit.rate, limit.period, limit.burst)
        for limit in Limit.objects.filter(tier=free, scope="api_key")
    }
    assert ("standard", "sliding_window", 120, 60, None) in per_key
    assert ("messaging", "sliding_window", 300, 60, None) in per_key
    assert ("messaging", "gcra", 5, 1, 5) in per_key
    assert ("media", "sliding_window", 30, 60, None) in per_key
    assert Limit.objects.filter(tier=free, group__slug="license", scope="ip").exists()
    assert Limit.objects.filter(tier=free, group__slug="all", scope="ip").exists()
    rule = BanRule.objects.get()
    assert (rule.path, rule.status_set(), rule.threshold, rule.cooldown) == (
        "/connect/token",
        {400},
        5,
        600,
    )
