"""The policy revision: a number raised on every policy edit, which processes poll.

Raising it sends ``signals.policy_revised`` once the edit commits; the runtime's
receiver publishes the number through the counter store, so that every process hears
of the edit with its next check.
"""

from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save

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


def bump() -> int:
    """Raise the revision number by one (in the current transaction); once that commits,
    announce it. Returns the new number."""
    updated = models.PolicyRevision.objects.filter(pk=1).update(number=F("number") + 1)
    if not updated:
        models.PolicyRevision.objects.get_or_create(pk=1, defaults={"number": 1})
    number = current()
    transaction.on_commit(lambda: announce(number))
    return number


def announce(number: int, only_if_missing: bool = False) -> None:
    """Tell the receivers of ``policy_revised`` (the runtime publishes) of ``number``."""
    policy_revised.send(
        sender=models.PolicyRevision, number=number, only_if_missing=only_if_missing
    )


def current() -> int:
    """The current revision number (0 before any edit)."""
    row = models.PolicyRevision.objects.filter(pk=1).values_list("number", flat=True).first()
    return row or 0


def _on_change(sender: type, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return  # loaddata: the fixture brings its own revision
    # In the same transaction as the edit: processes see both or neither.
    bump()


for _model in WATCHED:
    post_save.connect(_on_change, sender=_model, dispatch_uid=f"ratelimit_rev_save_{_model}")
    post_delete.connect(_on_change, sender=_model, dispatch_uid=f"ratelimit_rev_del_{_model}")
