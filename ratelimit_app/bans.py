"""Credential-pair bans: lifting them (the operators' side)."""

from django.db import transaction
from django.utils import timezone

from ratelimit_app.signals import credential_unbanned


def lift_bans(queryset, user=None, now=None):
    """Lift every active ban in ``queryset``; return the lifted bans.

    Works from the database alone, so operators can lift bans while Redis is down.
    """
    now = now or timezone.now()
    lifted = []
    with transaction.atomic():
        for ban in queryset.select_for_update(of=("self",)).filter(lifted_at__isnull=True):
            ban.lifted_at = now
            ban.lifted_by = user if getattr(user, "is_authenticated", False) else None
            ban.save(update_fields=["lifted_at", "lifted_by"])
            lifted.append(ban)
    for ban in lifted:
        credential_unbanned.send(sender=type(ban), ban=ban, user=user)
    return lifted
