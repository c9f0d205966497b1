import pytest
from django.core.exceptions import ValidationError

from ratelimit_app.models import ApiKey
from tests.factories import (
    ApiKeyFactory,
    BanRuleFactory,
    EndpointGroupFactory,
    LimitFactory,
    TenantFactory,
    TierFactory,
)

pytestmark = pytest.mark.django_db


def messages_of(exc_info):
    return " ".join(m for ms in exc_info.value.message_dict.values() for m in ms)


def test_limit_needs_positive_rate_and_period():
    limit = LimitFactory.build(group=EndpointGroupFactory(), tier=TierFactory(), rate=0, period=0)
    with pytest.raises(ValidationError) as exc:
        limit.full_clean()
    assert "rate" in exc.value.message_dict
    assert "period" in exc.value.message_dict


def test_gcra_burst_must_be_at_least_one():
    limit = LimitFactory.build(group=EndpointGroupFactory(), tier=TierFactory(), burst=0)
    with pytest.raises(ValidationError) as exc:
        limit.full_clean()
    assert "at least 1 request" in messages_of(exc)


def test_burst_is_refused_for_windows():
    limit = LimitFactory.build(
        group=EndpointGroupFactory(), tier=TierFactory(), algorithm="fixed_window", burst=5
    )
    with pytest.raises(ValidationError) as exc:
        limit.full_clean()
    assert "GCRA only" in messages_of(exc)


def test_limit_needs_exactly_one_owner():
    group, tier, tenant = EndpointGroupFactory(), TierFactory(), TenantFactory()
    with pytest.raises(ValidationError) as exc:
        LimitFactory.build(group=group, tier=None, tenant=None).full_clean()
    assert "Choose the tier" in messages_of(exc)
    with pytest.raises(ValidationError) as exc:
        LimitFactory.build(group=group, tier=tier, tenant=tenant).full_clean()
    assert "not both" in str(exc.value)


def test_duplicate_enabled_limit_is_refused_with_a_clear_message():
    existing = LimitFactory()
    duplicate = LimitFactory.build(
        group=existing.group, tier=existing.tier, scope=existing.scope, period=existing.period
    )
    with pytest.raises(ValidationError) as exc:
        duplicate.full_clean()
    assert "already has an enabled limit" in str(exc.value)


def test_duplicate_is_allowed_when_disabled_or_over_another_period():
    existing = LimitFactory()
    LimitFactory.build(group=existing.group, tier=existing.tier, enabled=False).full_clean()
    LimitFactory.build(group=existing.group, tier=existing.tier, period=3600).full_clean()


def test_tenant_override_is_unique_per_group_scope_period():
    tenant = TenantFactory()
    first = LimitFactory(tier=None, tenant=tenant)
    with pytest.raises(ValidationError) as exc:
        LimitFactory.build(group=first.group, tier=None, tenant=tenant).full_clean()
    assert "already has an enabled override" in str(exc.value)


def test_rate_times_period_is_bounded():
    limit = LimitFactory.build(
        group=EndpointGroupFactory(), tier=TierFactory(), rate=10**6, period=86400 * 30
    )
    with pytest.raises(ValidationError) as exc:
        limit.full_clean()
    assert "shorter period" in messages_of(exc)


def test_only_one_default_tier():
    TierFactory(name="a", is_default=True)
    with pytest.raises(ValidationError) as exc:
        TierFactory.build(name="b", is_default=True).full_clean()
    assert "Only one tier" in str(exc.value)


def test_group_path_patterns_are_validated():
    group = EndpointGroupFactory.build(slug="x", name="X", path_patterns="/ok\nno-slash")
    with pytest.raises(ValidationError) as exc:
        group.full_clean()
    assert "must start with '/'" in messages_of(exc)


def test_ban_rule_validation():
    rule = BanRuleFactory.build(path="", group=None, failure_statuses="400, abc", threshold=0)
    with pytest.raises(ValidationError) as exc:
        rule.full_clean()
    errors = exc.value.message_dict
    assert "choose an endpoint group or give a path" in errors["path"][0]
    assert "separated by commas" in errors["failure_statuses"][0]
    assert "threshold" in errors
    assert BanRuleFactory.build(failure_statuses="400,401").status_set() == {400, 401}


def test_api_key_stores_only_a_hash_of_its_secret():
    key = ApiKeyFactory()
    stored = ApiKey.objects.get(pk=key.pk)
    values = " ".join(str(getattr(stored, f.attname)) for f in stored._meta.fields)
    assert key.secret not in values
    assert key.secret.split(".")[1] not in values
    assert stored.prefix == key.secret.split(".")[0]


def test_migrations_match_the_models():
    from django.core.management import call_command

    call_command("makemigrations", "ratelimit_app", "--check", "--dry-run", verbosity=0)
