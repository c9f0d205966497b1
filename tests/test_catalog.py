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


def test_loading_again_keeps_an_operators_edit_and_lists_it():
    from io import StringIO

    call_command("ratelimit_load_catalog", verbosity=0)
    edited = Limit.objects.get(tier__name="free", group__slug="admin", algorithm="gcra")
    assert edited.burst == 50  # tenant-api-group-tiers.md: free Admin, burst 50
    edited.burst = 9
    edited.save()
    out = StringIO()
    call_command("ratelimit_load_catalog", stdout=out)
    edited.refresh_from_db()
    assert edited.burst == 9  # the operator's value stays
    text = out.getvalue()
    assert "differs free admin limit per tenant over 60 s: burst 9 (the documents: 50)" in text
    assert "0 rows created, 0 restored, 1 differing" in text


def test_reset_restores_the_documents_and_says_what_it_changed():
    from io import StringIO

    call_command("ratelimit_load_catalog", verbosity=0)
    Limit.objects.filter(tier__name="paid", group__slug="media").update(rate=7)
    Limit.objects.filter(tier__name="free", group__slug="web", algorithm="gcra").delete()
    out = StringIO()
    call_command("ratelimit_load_catalog", "--reset", stdout=out)
    text = out.getvalue()
    assert "restored paid media limit per api_key over 60 s: rate 7 (the documents: 30)" in text
    assert "created free web limit per tenant over 60 s" in text
    assert Limit.objects.get(tier__name="paid", group__slug="media").rate == 30
    web = Limit.objects.get(tier__name="free", group__slug="web", algorithm="gcra")
    assert (web.rate, web.burst) == (3000, 1000)  # the document: free Web 3000/min, burst 1000


def test_the_catalogue_names_only_the_documents_paths():
    """In a host project, the catalogue must not take over its URLs: a view at /test got
    the OTP limit (1 a minute) once the catalogue was loaded."""
    from ratelimit_app.catalog import load_catalog
    from ratelimit_app.policy import build_snapshot

    load_catalog()
    snapshot = build_snapshot()
    assert snapshot.group_for_path("/test") is None
    assert snapshot.group_for_path("/acp/admin/ping") is None
    assert snapshot.group_for_path("/hello") is None
    assert snapshot.route("/admin/login/") == (None, ())
    # The paths the documents name: the token endpoint and the messaging endpoints.
    assert snapshot.group_for_path("/connect/token") == "token"
    assert snapshot.group_for_path("/v1/messages") == "messaging"


def test_the_demo_adds_its_paths_and_the_catalogue_then_reports_no_difference():
    from io import StringIO

    from project.demo.setup import load_demo_data
    from ratelimit_app.policy import build_snapshot

    load_demo_data()
    snapshot = build_snapshot()
    assert snapshot.group_for_path("/test") == "otp"
    assert snapshot.group_for_path("/acp/web/x") == "web"
    assert snapshot.route("/v1/status") == ("standard", ("all",))
    out = StringIO()
    call_command("ratelimit_load_catalog", stdout=out)
    assert "0 rows created, 0 restored, 0 differing" in out.getvalue()
