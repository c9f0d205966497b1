"""Credential-ban rows, the truth operators see and lift: written when a pair is banned,
extended, lifted; lifting also clears the pair in the counter store.

The counter store enforces a ban at once; the row is what survives a Redis restart or
flush, what the admin lists, and what ``ratelimit_unban`` lifts.
"""

import datetime
import logging
import re
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ratelimit_app import events, runtime
from ratelimit_app.bans.watch import CLIENT_ID, PAIR, BanWatch, Party, counter_key, key_value
from ratelimit_app.conf import get_config
from ratelimit_app.counters.algorithms import US
from ratelimit_app.counters.base import BackendUnavailable, key_base
from ratelimit_app.models import CredentialBan
from ratelimit_app.policy import revision
from ratelimit_app.policy.build import ban_row
from ratelimit_app.signals import credential_banned, credential_unbanned

logger = logging.getLogger("ratelimit_app.bans")

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# A ban's kind in the log and the metrics' labels.
KIND_NAMES = {"p": "pair", "c": "client_id", "i": "address"}


def from_us(value: int) -> datetime.datetime:
    """A datetime (UTC) from epoch microseconds."""
    return datetime.datetime.fromtimestamp(value / US, tz=datetime.UTC)


def storable_client_id(client_id: str) -> str:
    """The client_id as shown to operators: control characters (NUL included, which
    PostgreSQL refuses) and lone surrogates (which no database encodes) escaped, at most
    200 characters."""
    visible = CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", client_id[:200])
    return visible.encode("utf-8", "backslashreplace").decode("utf-8")[:200]


def create_ban(
    watched: BanWatch, party: Party, failures: int, banned_at_us: int, expires_at_us: int
) -> CredentialBan | None:
    """Write the ban row (the truth), signal it, and refresh this process's snapshot.

    A database error is logged, not raised: the ban already holds in the counter store.
    """
    try:
        with transaction.atomic():
            ban = CredentialBan.objects.create(
                rule_id=watched.rule.id,
                kind=party.kind,
                client_id=storable_client_id(party.shown_as),
                fingerprint=party.fingerprint,
                failures=failures,
                banned_at=from_us(banned_at_us),
                expires_at=from_us(expires_at_us),
            )
    except IntegrityError:
        return None  # the same ban, already written
    except DatabaseError:
        logger.exception("Could not record a credential ban; it holds in the counter store.")
        return None
    # The counter store enforces the ban now; this process's snapshot takes the row in
    # at once, other processes with the revision this save published.
    runtime.get_snapshot_holder().take_in_bans([ban_row(ban)])
    events.log_event(
        logger,
        logging.WARNING,
        events.BAN_CREATED,
        f"Banned {_who(party)} [{ban.short_fingerprint}] for {watched.rule.cooldown} s "
        f"after {failures} failures.",
        rule=watched.rule.name,
        kind=KIND_NAMES.get(party.kind, party.kind),
        party=ban.short_fingerprint,
        failures=failures,
        cooldown=watched.rule.cooldown,
    )
    credential_banned.send(sender=CredentialBan, ban=ban, rule_name=watched.rule.name)
    return ban


def _who(party: Party) -> str:
    """A ban's party for the log: the client_id, never a secret or an address."""
    if party.kind == PAIR:
        return f"client_id={party.shown_as[:64]!r}"
    if party.kind == CLIENT_ID:
        return f"client_id={party.shown_as[:64]!r} (every secret)"
    return "a client address"


def clear_party(rule_id: int, kind: str, fingerprint: str) -> bool:
    """Forget a party's failure count and ban in the counter store; False if unreachable."""
    value = key_value(kind, fingerprint)
    base = key_base(get_config())
    keys = [counter_key(base, letter, rule_id, kind, value) for letter in ("x", "b")]
    try:
        runtime.get_backend().clear(keys)
    except BackendUnavailable:
        logger.warning("Ban lifted in the database; the counter store could not be cleared.")
        return False
    return True


def lift_bans(
    queryset: QuerySet[CredentialBan], user: Any = None, now: datetime.datetime | None = None
) -> list[CredentialBan]:
    """Lift every active ban in ``queryset`` and clear its failure count; return the bans.

    The database is updated first, so this works while Redis is down.
    """
    now = now or timezone.now()
    lifted = []
    with transaction.atomic():
        for ban in queryset.select_for_update(of=("self",)).filter(lifted_at__isnull=True):
            ban.lifted_at = now
            ban.lifted_by = user if getattr(user, "is_authenticated", False) else None
            ban.save(update_fields=["lifted_at", "lifted_by"])
            lifted.append(ban)
    # This process honours the lift at once; others with the revision it published.
    runtime.get_snapshot_holder().take_in_bans([ban_row(ban) for ban in lifted])
    for ban in lifted:
        if ban.rule_id is not None:  # a deleted rule's pair has no keys left to clear
            clear_party(ban.rule_id, ban.kind, ban.fingerprint)
        events.log_event(
            logger,
            logging.WARNING,
            events.BAN_LIFTED,
            f"Ban [{ban.short_fingerprint}] lifted.",
            rule_id=ban.rule_id or "",
            kind=KIND_NAMES.get(ban.kind, ban.kind),
            party=ban.short_fingerprint,
            by_staff=bool(ban.lifted_by_id),
        )
        credential_unbanned.send(sender=CredentialBan, ban=ban, user=user)
    return lifted


EXTENSION_SYNC_SECONDS = 60


def record_extension(
    watched: BanWatch, fingerprint: str, new_expiry: float, recorded_expiry: float
) -> None:
    """Carry an extended ban's new expiry (epoch seconds) into its row, at most once a
    minute, so that the row stays the truth if the store is flushed."""
    if new_expiry - recorded_expiry < EXTENSION_SYNC_SECONDS:
        return
    expires_at = from_us(int(new_expiry * US))
    try:
        with transaction.atomic():
            number = revision.bump(policy=False)
            CredentialBan.objects.filter(
                rule_id=watched.rule.id, fingerprint=fingerprint, lifted_at__isnull=True
            ).active().update(expires_at=expires_at, revision=number)
    except DatabaseError:
        logger.exception("Could not extend a credential ban's row; it holds in the counter store.")
        return
    row = (watched.rule.id, fingerprint, expires_at, None, expires_at)
    runtime.get_snapshot_holder().take_in_bans([row])
