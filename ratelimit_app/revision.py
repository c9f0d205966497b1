"""The policy revision: a number bumped on every policy edit, which processes poll."""

import logging

from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save

from ratelimit_app import models

logger = logging.getLogger("ratelimit_app")

WATCHED = (
    models.Tier,
    models.Tenant,
    models.EndpointGroup,
    models.Limit,
    models.ApiKey,
    models.BanRule,
    models.CredentialBan,
)


def bump():
    """Raise the revision number by one (in the current transaction), and once that
    commits, publish it through the counter store."""
    updated = models.PolicyRevision.objects.filter(pk=1).update(number=F("number") + 1)
    if not updated:
        models.PolicyRevision.objects.get_or_create(pk=1, defaults={"number": 1})
    number = current()
    transaction.on_commit(lambda: publish(number))


def publish(number, only_if_missing=False):
    """Make revision ``number`` known to every process through the counter store; if the
    store is down, processes find it in the database within POLICY_FALLBACK_INTERVAL."""
    from ratelimit_app import runtime
    from ratelimit_app.counters.base import BackendUnavailable

    try:
        runtime.get_backend().publish_revision(number, only_if_missing)
    except BackendUnavailable:
        logger.warning("Policy revision %d not published: the counter store is down.", number)


def current():
    """The current revision number (0 before any edit)."""
    row = models.PolicyRevision.objects.filter(pk=1).values_list("number", flat=True).first()
    return row or 0


def _on_change(sender, **kwargs):
    if kwargs.get("raw"):
        return  # loaddata: the fixture brings its own revision
    # In the same transaction as the edit: processes see both or neither.
    bump()


for _model in WATCHED:
    post_save.connect(_on_change, sender=_model, dispatch_uid=f"ratelimit_rev_save_{_model}")
    post_delete.connect(_on_change, sender=_model, dispatch_uid=f"ratelimit_rev_del_{_model}")
