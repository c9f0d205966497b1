"""The policy revision: a number raised on every policy edit, which processes poll.

Raising it sends ``signals.policy_revised`` once the edit commits; the runtime's
receiver publishes the number through the counter store, so that every process hears
of the edit with its next check.
"""

from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save, pre_save

from ratelimit_app import models
from ratelimit_app.signals import policy_revised

WATCHED = (
    models.Tier,
    models.Tenant,
    models.EndpointGroup,
    models.Limit,
    models.ApiKey,
    models.BanRule,
    models.CredentialBan,
)


def bump(policy: bool = True) -> int:
    """Raise the revision number by one (in the current transaction); once that commits,
    announce it. Returns the new number.

    ``policy=False`` for a ban row written, extended or lifted: processes then read the
    ban rows changed since their snapshot, not the whole policy again.
    """
    fields = {"number": F("number") + 1}
    if policy:
        fields["policy_number"] = F("number") + 1
    updated = models.PolicyRevision.objects.filter(pk=1).update(**fields)
    if not updated:
        models.PolicyRevision.objects.get_or_create(
            pk=1, defaults={"number": 1, "policy_number": 1 if policy else 0}
        )
    number = current()
    transaction.on_commit(lambda: announce(number, policy=policy))
    return number


def announce(number: int, only_if_missing: bool = False, policy: bool = False) -> None:
    """Tell the receivers of ``policy_revised`` (the runtime publishes) of ``number``;
    ``policy`` when more than ban rows changed."""
    policy_revised.send(
        sender=models.PolicyRevision,
        number=number,
        only_if_missing=only_if_missing,
        policy=policy,
    )


def current() -> int:
    """The current revision number (0 before any edit)."""
    row = models.PolicyRevision.objects.filter(pk=1).values_list("number", flat=True).first()
    return row or 0


def read() -> tuple[int, int]:
    """The current revision number and the number of the last edit that was not a ban."""
    row = models.PolicyRevision.objects.filter(pk=1).values_list("number", "policy_number")
    return row.first() or (0, 0)


def _on_change(sender: type, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return  # loaddata: the fixture brings its own revision
    # In the same transaction as the edit: processes see both or neither.
    bump()


def bump_tenant(tenant_id: int) -> int:
    """Raise the revision for an edit that changed only one tenant (its row, its
    overrides or its keys): processes re-read that tenant, not the whole policy."""
    number = bump(policy=False)
    models.Tenant.objects.filter(pk=tenant_id).update(revision=number)
    return number


def _owner(instance: Any) -> int | None:
    """The one tenant a row belongs to: a tenant, its override or its key (None for a
    tier's limit, which many tenants share)."""
    if isinstance(instance, models.Tenant):
        return instance.pk
    if isinstance(instance, models.Limit) and instance.tier_id is not None:
        return None
    return instance.tenant_id


def _remember_owner(sender: Any, instance: Any, **kwargs: Any) -> None:
    # An edit that moves a row to another owner changes two of them: noted here.
    if kwargs.get("raw") or instance.pk is None:
        instance._ratelimit_old_owner = _owner(instance)
        return
    # A key's or an override's owner is its tenant; a tier's limit has none (None too).
    before = sender.objects.filter(pk=instance.pk).values_list("tenant_id").first()
    instance._ratelimit_old_owner = before[0] if before else _owner(instance)


def _on_tenant_row_saved(sender: type, instance: Any, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    owner = _owner(instance)
    if owner is None or getattr(instance, "_ratelimit_old_owner", owner) != owner:
        bump()
    else:
        bump_tenant(owner)


def _on_tenant_row_deleted(sender: type, instance: Any, **kwargs: Any) -> None:
    owner = _owner(instance)
    # A deleted tenant leaves nothing to read as a change: the whole policy is read again.
    if owner is None or sender is models.Tenant:
        bump()
    else:
        bump_tenant(owner)


def _on_ban_saved(sender: type, instance: models.CredentialBan, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    # A ban row changed: processes take in this row alone (see PolicyRevision).
    number = bump(policy=False)
    models.CredentialBan.objects.filter(pk=instance.pk).update(revision=number)
    instance.revision = number


TENANT_ROWS = (models.Tenant, models.Limit, models.ApiKey)
for _model in WATCHED:
    uid = f"{_model}"
    if _model in TENANT_ROWS:
        if _model is not models.Tenant:  # a tenant is its own owner: nothing to read
            pre_save.connect(_remember_owner, sender=_model, dispatch_uid=f"ratelimit_own_{uid}")
        post_save.connect(_on_tenant_row_saved, sender=_model, dispatch_uid=f"ratelimit_rev_{uid}")
        post_delete.connect(
            _on_tenant_row_deleted, sender=_model, dispatch_uid=f"ratelimit_rev_del_{uid}"
        )
        continue
    if _model is not models.CredentialBan:
        post_save.connect(_on_change, sender=_model, dispatch_uid=f"ratelimit_rev_save_{uid}")
    # A deleted ban row leaves nothing to read as a change: the whole policy is read again.
    post_delete.connect(_on_change, sender=_model, dispatch_uid=f"ratelimit_rev_del_{uid}")
post_save.connect(_on_ban_saved, sender=models.CredentialBan, dispatch_uid="ratelimit_rev_ban")
