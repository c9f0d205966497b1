"""The policy revision: its numbers (raised by one per edit, ban rows apart from the rest),
its announcement once an edit commits, fixtures' raw saves, and a row's owner
(models.PolicyRevision's contract)."""

import pytest

from ratelimit_app import models
from ratelimit_app.policy import revision
from ratelimit_app.signals import policy_revised
from tests.factories import ApiKeyFactory, CredentialBanFactory, TenantFactory


@pytest.fixture
def announced():
    heard = []

    def receiver(sender, number, only_if_missing, policy, **kwargs):
        heard.append((sender, number, only_if_missing, policy))

    policy_revised.connect(receiver, dispatch_uid="test_revision")
    yield heard
    policy_revised.disconnect(dispatch_uid="test_revision")


@pytest.mark.django_db
def test_the_revision_starts_at_0_and_each_bump_raises_it_by_one():
    models.PolicyRevision.objects.all().delete()
    assert revision.current() == 0 and revision.read() == (0, 0)
    assert revision.bump(policy=False) == 1
    assert revision.read() == (1, 0)  # a ban row: the policy's own number stays
    assert revision.bump() == 2
    assert revision.read() == (2, 2)
    assert revision.bump(policy=False) == 3
    assert revision.read() == (3, 2)
    models.PolicyRevision.objects.all().delete()
    assert revision.bump() == 1 and revision.read() == (1, 1)


@pytest.mark.django_db
def test_a_bump_is_announced_with_its_number_once_committed(
    announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        number = revision.bump(policy=False)
        assert announced == []  # not before the edit commits
    assert announced == [(models.PolicyRevision, number, False, False)]
    revision.announce(number + 1)
    assert announced[-1] == (models.PolicyRevision, number + 1, False, False)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["policy row", "tenant row", "ban row"])
def test_rows_loaded_from_a_fixture_do_not_raise_the_revision(kind):
    """loaddata saves with raw=True: the fixture brings its own revision."""
    tenant = TenantFactory()
    before = revision.current()
    if kind == "policy row":
        revision._on_change(models.Tier, instance=tenant.tier, raw=True)
    elif kind == "tenant row":
        revision._on_tenant_row_saved(models.Tenant, instance=tenant, raw=True)
    else:
        ban = CredentialBanFactory()
        before = revision.current()
        revision._on_ban_saved(models.CredentialBan, instance=ban, raw=True)
    assert revision.current() == before


@pytest.mark.django_db
def test_a_key_saved_with_a_new_primary_key_belongs_to_its_own_tenant():
    tenant = TenantFactory()
    key = ApiKeyFactory.build(tenant=tenant, pk=987_654)
    revision._remember_owner(models.ApiKey, instance=key)
    assert key._ratelimit_old_owner == tenant.pk
