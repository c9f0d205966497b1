"""The audit trail of policy edits, and their undoing.

Every save and delete of a policy row (tiers, tenants, endpoint groups, limits, API
keys, ban rules) and every ban lifted or deleted is recorded by model signals, in the
edit's own transaction, so that edits from a shell or a command are recorded too (with
no user). The admin names the user with :func:`acting_as`. :func:`record` records an
operation that is not a row edit (a counters reset, say); :func:`revert` undoes an edit
and records that as an edit of its own.

Secret-derived values (an API key's hash, a ban's fingerprint) are kept only as a keyed
hash of the value: enough to see that it changed, useless to anyone reading the trail.
"""

import contextlib
import contextvars
import datetime
import json
from collections.abc import Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models, transaction
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from ratelimit_app import hashing
from ratelimit_app.models import (
    ApiKey,
    BanRule,
    CredentialBan,
    EditAction,
    EndpointGroup,
    Limit,
    PolicyEdit,
    Tenant,
    Tier,
)
from ratelimit_app.policy import revision

AUDITED = {
    model._meta.model_name: model
    for model in (Tier, Tenant, EndpointGroup, Limit, ApiKey, BanRule, CredentialBan)
}
# Kept as a keyed hash only; a row holding one cannot be re-created from the trail.
SECRET_DERIVED = frozenset({"hashed_secret", "fingerprint"})
KEYED_PREFIX = "keyed:"
# Bookkeeping, not policy: the revision a ban row was last written at.
IGNORED = frozenset({"revision"})

_user: contextvars.ContextVar[Any] = contextvars.ContextVar("ratelimit_audit_user", default=None)
_collected: contextvars.ContextVar[list[PolicyEdit] | None] = contextvars.ContextVar(
    "ratelimit_audit_collected", default=None
)
_reverting: contextvars.ContextVar[PolicyEdit | None] = contextvars.ContextVar(
    "ratelimit_audit_reverting", default=None
)


class RevertError(Exception):
    """An edit that cannot be undone, with the reason in words."""


@contextlib.contextmanager
def acting_as(user: Any) -> Iterator[None]:
    """Record the edits made inside the block as ``user``'s (the admin's request user)."""
    token = _user.set(user if getattr(user, "is_authenticated", False) else None)
    try:
        yield
    finally:
        _user.reset(token)


@contextlib.contextmanager
def collecting() -> Iterator[list[PolicyEdit]]:
    """The edits recorded inside the block, in order (the guard rails read them)."""
    edits: list[PolicyEdit] = []
    token = _collected.set(edits)
    try:
        yield edits
    finally:
        _collected.reset(token)


def record(
    object_type: str,
    action: str = EditAction.OTHER,
    *,
    object_id: Any = "",
    object_repr: str = "",
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    summary: str = "",
    user: Any = None,
) -> PolicyEdit:
    """Record one edit (``user`` defaults to the one :func:`acting_as` names); returns it.

    For operations that are not row saves, e.g. ``record("counters", summary="Reset the
    counters of tenant acme")``. Never pass a secret in ``old`` or ``new``.
    """
    if user is None:
        user = _user.get()
    edit = PolicyEdit.objects.create(
        user=user if getattr(user, "is_authenticated", False) else None,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=str(object_repr)[:200],
        revision=revision.current(),
        old=old,
        new=new,
        summary=summary[:200],
        reverts=_reverting.get(),
    )
    collected = _collected.get()
    if collected is not None:
        collected.append(edit)
    return edit


def field_values(instance: models.Model) -> dict[str, Any]:
    """The row's concrete fields as JSON values (foreign keys by id), secrets keyed."""
    values = {}
    for field in instance._meta.concrete_fields:
        if field.attname in IGNORED or field.primary_key:
            continue
        value = field.value_from_object(instance)
        if field.name in SECRET_DERIVED and value:
            value = KEYED_PREFIX + hashing.keyed_hash("audit", str(value))
        if isinstance(value, datetime.datetime | datetime.date):
            value = value.isoformat()  # microseconds kept: a restored row is the same row
        values[field.attname] = value
    # Through JSON and back, so that old and new compare as they are stored.
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def _stored_values(instance: models.Model) -> dict[str, Any] | None:
    row = type(instance)._default_manager.filter(pk=instance.pk).first()
    return field_values(row) if row is not None else None


def _before_save(sender: type, instance: models.Model, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance.pk is None or sender is CredentialBan:
        return  # a ban row is recorded only when lifted (its after-save knows that)
    instance._audit_before = _stored_values(instance)  # type: ignore[attr-defined]


def _after_save(
    sender: type, instance: models.Model, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if raw:
        return
    name = sender._meta.model_name
    if sender is CredentialBan:
        _ban_saved(instance, created, kwargs.get("update_fields"))
        return
    after = field_values(instance)
    before = getattr(instance, "_audit_before", None)
    instance._audit_before = None  # type: ignore[attr-defined]
    if created or before is None:
        record(
            name, EditAction.CREATED, object_id=instance.pk, object_repr=str(instance), new=after
        )
        return
    changed = sorted(k for k in after if before.get(k) != after[k])
    if changed:
        record(
            name,
            EditAction.CHANGED,
            object_id=instance.pk,
            object_repr=str(instance),
            old={k: before.get(k) for k in changed},
            new={k: after[k] for k in changed},
        )


def _ban_saved(ban: Any, created: bool, update_fields: Any) -> None:
    # Bans are written by the requests that fail; only an operator's lift is an edit.
    if created or not update_fields or "lifted_at" not in update_fields or not ban.lifted_at:
        return
    new = field_values(ban)
    record(
        "credentialban",
        EditAction.LIFTED,
        object_id=ban.pk,
        object_repr=str(ban),
        old={"lifted_at": None, "lifted_by_id": None},
        new={"lifted_at": new["lifted_at"], "lifted_by_id": new["lifted_by_id"]},
    )


def _before_delete(sender: type, instance: models.Model, **kwargs: Any) -> None:
    # Named now: a row deleted with its owner (a tenant's overrides) is named after its
    # owner, which is gone by the time Django sends the deletions' post_delete signals.
    instance._audit_repr = str(instance)  # type: ignore[attr-defined]


def _after_delete(sender: type, instance: models.Model, **kwargs: Any) -> None:
    shown = getattr(instance, "_audit_repr", None)
    record(
        sender._meta.model_name,
        EditAction.DELETED,
        object_id=instance.pk,
        object_repr=shown if shown is not None else f"{sender._meta.verbose_name} {instance.pk}",
        old=field_values(instance),
    )


for _name, _model in AUDITED.items():
    pre_save.connect(_before_save, sender=_model, dispatch_uid=f"ratelimit_audit_pre_{_name}")
    post_save.connect(_after_save, sender=_model, dispatch_uid=f"ratelimit_audit_save_{_name}")
    pre_delete.connect(
        _before_delete, sender=_model, dispatch_uid=f"ratelimit_audit_pre_del_{_name}"
    )
    post_delete.connect(_after_delete, sender=_model, dispatch_uid=f"ratelimit_audit_del_{_name}")


def revert(entry: PolicyEdit, user: Any = None) -> PolicyEdit:
    """Undo ``entry``: restore the old values of the fields it changed, delete the row it
    created, or re-create the row it deleted (same id). Returns the edit that records it.

    Raises RevertError when that cannot be done: the row was edited or deleted since, the
    row held a secret the trail does not keep, or the database refuses the old values.
    """
    model = AUDITED.get(entry.object_type)
    if model is None or entry.action not in (
        EditAction.CREATED,
        EditAction.CHANGED,
        EditAction.DELETED,
    ):
        raise RevertError(
            f"A {entry.get_action_display()} edit of {entry.object_type} cannot be reverted"
            " (a lifted ban is not re-imposed: its rule bans the pair again if it fails again)."
        )
    token = _reverting.set(entry)
    try:
        with transaction.atomic(), acting_as(user if user is not None else _user.get()):
            _undo(model, entry)
            return PolicyEdit.objects.filter(reverts=entry).latest("id")
    except IntegrityError as exc:
        raise RevertError(f"The database refuses the old values: {exc}") from exc
    finally:
        _reverting.reset(token)


def _undo(model: type[models.Model], entry: PolicyEdit) -> None:
    current = model._default_manager.filter(pk=entry.object_id).first()
    if entry.action == EditAction.CREATED:
        if current is None:
            raise RevertError(f"{entry.object_repr} no longer exists.")
        current.delete()
        return
    old = entry.old or {}
    if any(isinstance(v, str) and v.startswith(KEYED_PREFIX) for v in old.values()):
        raise RevertError(
            f"{entry.object_repr} held a secret that the trail keeps only as a keyed hash; "
            "it cannot be restored (for an API key: issue a new one)."
        )
    if entry.action == EditAction.DELETED:
        if current is not None:
            raise RevertError(f"{entry.object_repr} exists again.")
        restored = model(pk=entry.object_id)
        _assign(restored, old)
        restored.save(force_insert=True)
        return
    if current is None:
        raise RevertError(f"{entry.object_repr} was deleted since.")
    now = field_values(current)
    edited = [k for k, v in (entry.new or {}).items() if now.get(k) != v]
    if edited:
        raise RevertError(
            f"{entry.object_repr} was edited since ({', '.join(edited)}): revert the later "
            "edits first."
        )
    _assign(current, old)
    current.save()


def _assign(instance: models.Model, values: dict[str, Any]) -> None:
    fields = {f.attname: f for f in instance._meta.concrete_fields}
    for attname, value in values.items():
        if attname in fields:
            setattr(instance, attname, fields[attname].to_python(value))
