"""The audit trail of policy edits (issue 16, item 6): who, when, the revision, old and new
values, never a secret; the filtered list; and the revert, itself recorded."""

import json

import pytest
from django.urls import reverse

from ratelimit_app import audit
from ratelimit_app.models import (
    ApiKey,
    CredentialBan,
    EditAction,
    Limit,
    PolicyEdit,
    PolicyRevision,
    Tenant,
    Tier,
)
from ratelimit_app.policy import revision
from tests.factories import (
    ApiKeyFactory,
    BanRuleFactory,
    CredentialBanFactory,
    EndpointGroupFactory,
    LimitFactory,
    TenantFactory,
    TierFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.invalid", "pw")
    client.force_login(user)
    client.user = user
    return client


def last_edit(**filters):
    return PolicyEdit.objects.filter(**filters).order_by("-id").first()


def changelist_post(client, model, action, *pks):
    """Run an admin action, confirmed where the guard rails ask (test_guard_rails.py)."""
    return client.post(
        reverse(f"admin:ratelimit_app_{model}_changelist"),
        {
            "action": action,
            "_selected_action": [str(pk) for pk in pks],
            "_ratelimit_confirmed": "1",
        },
    )


def test_a_limit_edited_in_the_admin_is_recorded_with_user_revision_and_values(operator):
    limit = LimitFactory(rate=60, period=60, burst=10)
    url = reverse("admin:ratelimit_app_limit_change", args=[limit.pk])
    form = {
        "group": limit.group_id,
        "tier": limit.tier_id,
        "scope": "tenant",
        "algorithm": "gcra",
        "rate": "600",
        "period": "60",
        "burst": "10",
        "enabled": "on",
        "_ratelimit_confirmed": "1",  # a looser limit: confirmed (test_guard_rails.py)
    }
    assert operator.post(url, form).status_code == 302
    edit = last_edit(object_type="limit")
    assert (edit.action, edit.object_id, edit.user) == ("changed", str(limit.pk), operator.user)
    assert (edit.old, edit.new) == ({"rate": 60}, {"rate": 600})
    assert edit.revision == revision.current()  # the revision this edit raised
    assert edit.object_repr == str(Limit.objects.get(pk=limit.pk))


def test_a_shell_edit_is_recorded_without_a_user():
    tenant = TenantFactory()
    first_tier, other = tenant.tier_id, TierFactory(name="gold")
    tenant.tier = other
    tenant.active = False
    tenant.save()
    edit = last_edit(object_type="tenant")
    assert edit.user is None and edit.action == "changed"
    assert edit.old == {"active": True, "tier_id": first_tier}
    assert edit.new == {"active": False, "tier_id": other.pk}


def test_creations_and_deletions_record_every_field():
    tier = Tier.objects.create(name="pro", description="Pro plan")
    created = last_edit(object_type="tier")
    assert created.action == "created" and created.old is None
    assert created.new == {"name": "pro", "description": "Pro plan", "is_default": False}
    group = EndpointGroupFactory(slug="orders")
    limit = Limit.objects.create(group=group, tier=tier, rate=5, period=1, burst=None)
    limit_pk = limit.pk
    limit.delete()
    deleted = last_edit(object_type="limit")
    assert deleted.action == "deleted" and deleted.object_id == str(limit_pk)
    assert deleted.old == {
        "group_id": group.pk,
        "tier_id": tier.pk,
        "tenant_id": None,
        "scope": "tenant",
        "algorithm": "gcra",
        "rate": 5,
        "period": 1,
        "burst": None,
        "enabled": True,
        "shadow": False,
        "description": "",
    }


def test_a_tenant_deleted_with_its_overrides_records_each_under_its_owners_name():
    # Django sends the deletions' post_delete signals once every row is gone: naming an
    # override then (after its tenant) raised DoesNotExist, so deleting a tenant with
    # overrides failed.
    tenant = TenantFactory(slug="acme", name="Acme")
    group = EndpointGroupFactory(slug="orders")
    override = LimitFactory(group=group, tier=None, tenant=tenant, rate=7, burst=None)
    override_pk = override.pk
    tenant.delete()
    deleted = last_edit(object_type="limit")
    assert (deleted.action, deleted.object_id) == ("deleted", str(override_pk))
    assert "Acme" in deleted.object_repr and deleted.old["rate"] == 7
    assert last_edit(object_type="tenant").action == "deleted"


def test_groups_and_ban_rules_are_recorded():
    group = EndpointGroupFactory(slug="search")
    group.path_patterns = "/v1/search/*"
    group.save()
    assert last_edit(object_type="endpointgroup").new == {"path_patterns": "/v1/search/*"}
    rule = BanRuleFactory(threshold=5)
    rule.threshold = 3
    rule.save()
    edit = last_edit(object_type="banrule")
    assert (edit.old, edit.new) == ({"threshold": 5}, {"threshold": 3})


def test_api_keys_are_recorded_without_their_hash(operator):
    key = ApiKeyFactory()
    created = last_edit(object_type="apikey", action="created")
    stored = created.new["hashed_secret"]
    assert stored.startswith(audit.KEYED_PREFIX) and key.hashed_secret not in stored
    assert changelist_post(operator, "apikey", "revoke_selected", key.pk).status_code == 302
    revoked = last_edit(object_type="apikey")
    assert (revoked.user, revoked.old, revoked.new) == (
        operator.user,
        {"revoked": False},
        {"revoked": True},
    )
    everything = json.dumps(list(PolicyEdit.objects.values("old", "new", "object_repr")))
    assert key.hashed_secret not in everything and key.secret not in everything


def test_bans_lifted_and_deleted_are_recorded_without_the_fingerprint(operator):
    lifted, deleted = CredentialBanFactory(), CredentialBanFactory()
    assert not PolicyEdit.objects.filter(object_type="credentialban").exists()  # a ban is no edit
    changelist_post(operator, "credentialban", "unban_selected", lifted.pk)
    edit = last_edit(object_type="credentialban")
    lifted.refresh_from_db()
    assert (edit.action, edit.user, edit.object_id) == ("lifted", operator.user, str(lifted.pk))
    assert edit.old == {"lifted_at": None, "lifted_by_id": None}
    assert edit.new == {
        "lifted_at": lifted.lifted_at.isoformat(),
        "lifted_by_id": operator.user.pk,
    }
    url = reverse("admin:ratelimit_app_credentialban_delete", args=[deleted.pk])
    assert operator.post(url, {"post": "yes"}).status_code == 302
    kinds = list(
        PolicyEdit.objects.filter(object_id=str(deleted.pk), object_type="credentialban")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert kinds == ["lifted", "deleted"]  # deleting an active ban lifts it first
    everything = json.dumps(list(PolicyEdit.objects.values("old", "new", "object_repr")))
    assert lifted.fingerprint not in everything and deleted.fingerprint not in everything


def test_the_list_filters_by_kind_user_and_date(operator):
    other = UserFactory(username="someone")
    tier = TierFactory(name="alpha")
    with audit.acting_as(other):
        TierFactory(name="beta")
    tier.description = "changed by the shell"
    tier.save()
    url = reverse("admin:ratelimit_app_policyedit_changelist")
    page = operator.get(url, {"user__id__exact": other.pk}).content.decode()
    assert "beta" in page and "alpha" not in page
    page = operator.get(url, {"object_type": "tier", "action": "changed"}).content.decode()
    assert "changed by the shell" in page and "beta" not in page
    edit = last_edit(object_type="tier")
    day = f"{edit.at.date().isoformat()} 00:00:00+00:00"  # as the date filter links it
    page = operator.get(url, {"at__gte": day, "object_type": "tier"}).content.decode()
    assert "alpha" in page and "beta" in page
    page = operator.get(url, {"at__gte": "2100-01-01 00:00:00+00:00"}).content.decode()
    assert "alpha" not in page
    detail = operator.get(reverse("admin:ratelimit_app_policyedit_change", args=[edit.pk]))
    assert "changed by the shell" in detail.content.decode() and 'id="revert-edit"' in (
        detail.content.decode()
    )


def test_reverting_a_change_restores_the_limit_requests_see_and_is_recorded(
    operator, client, demo_data
):
    key = {"HTTP_AUTHORIZATION": f"Bearer {demo_data['free']}"}
    assert client.get("/acp/admin/ping", **key)["X-RateLimit-Limit"] == "50"
    limit = Limit.objects.get(tier__name="free", group__slug="admin", period=60)
    limit.burst = 5
    limit.save()
    edit = last_edit(object_type="limit")
    assert client.get("/acp/admin/ping", **key)["X-RateLimit-Limit"] == "5"
    url = reverse("admin:ratelimit_app_policyedit_revert", args=[edit.pk])
    before = PolicyRevision.objects.get().number
    response = operator.post(url)
    assert response.status_code == 302
    limit.refresh_from_db()
    assert limit.burst == 50
    undo = last_edit(object_type="limit")
    assert (undo.reverts, undo.user, undo.action) == (edit, operator.user, "changed")
    assert (undo.old, undo.new) == ({"burst": 5}, {"burst": 50})
    assert undo.revision > before
    assert client.get("/acp/admin/ping", **key)["X-RateLimit-Limit"] == "50"


def test_reverting_a_deletion_recreates_the_row_and_a_creation_deletes_it(operator):
    limit = LimitFactory(rate=7, period=60, burst=None)
    pk, group, tier = limit.pk, limit.group_id, limit.tier_id
    limit.delete()
    changelist_post(operator, "policyedit", "revert_selected", last_edit(action="deleted").pk)
    restored = Limit.objects.get(pk=pk)
    assert (restored.rate, restored.group_id, restored.tier_id, restored.burst) == (
        7,
        group,
        tier,
        None,
    )
    assert last_edit(object_type="limit").action == "created"
    tenant = TenantFactory(slug="to-undo")
    changelist_post(operator, "policyedit", "revert_selected", last_edit(object_type="tenant").pk)
    assert not Tenant.objects.filter(slug="to-undo").exists()
    assert last_edit(object_type="tenant").reverts.new["slug"] == tenant.slug


def test_a_revert_is_refused_when_the_row_changed_since_or_held_a_secret(operator):
    limit = LimitFactory(rate=10)
    limit.rate = 20
    limit.save()
    first = last_edit(object_type="limit")
    limit.rate = 30
    limit.save()
    with pytest.raises(audit.RevertError, match="edited since"):
        audit.revert(first)
    assert Limit.objects.get(pk=limit.pk).rate == 30
    key = ApiKeyFactory()
    key.delete()
    with pytest.raises(audit.RevertError, match="keyed hash"):
        audit.revert(last_edit(object_type="apikey", action="deleted"))
    assert not ApiKey.objects.filter(pk=key.pk).exists()
    ban = CredentialBanFactory()
    changelist_post(operator, "credentialban", "unban_selected", ban.pk)
    response = changelist_post(
        operator, "policyedit", "revert_selected", last_edit(action="lifted").pk
    )
    assert response.status_code == 302
    assert CredentialBan.objects.get(pk=ban.pk).lifted_at is not None


def test_record_is_public_for_operations_on_no_row():
    user = UserFactory()
    edit = audit.record(
        "counters", EditAction.OTHER, summary="Reset the counters of tenant acme", user=user
    )
    assert (edit.user, edit.summary, edit.revision) == (user, edit.summary, revision.current())
    with audit.acting_as(user):
        assert audit.record("counters", summary="again").user == user
