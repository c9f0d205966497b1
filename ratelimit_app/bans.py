"""Credential-pair bans on token endpoints: checked before the view, fed by its status.

Failures are counted per keyed hash of (client_id, client_secret) in the counter store;
the ban itself is written there (so every process sees it on its next request, inside
the same script call as the limits) and in the database (the truth: it survives a Redis
restart or flush and is what operators see and lift).
"""

import datetime
import logging
import re
from dataclasses import dataclass
from functools import lru_cache

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from ratelimit_app import enforcement, hashing, identity, paths, revision, runtime
from ratelimit_app.conf import get_config
from ratelimit_app.counters.algorithms import BAN, US, LimitSpec, Outcome
from ratelimit_app.counters.base import BackendUnavailable, key_base, make_decision
from ratelimit_app.counters.failures import FailureCounter
from ratelimit_app.credentials import client_credentials
from ratelimit_app.models import CredentialBan
from ratelimit_app.signals import credential_banned, credential_unbanned

logger = logging.getLogger("ratelimit_app.bans")

CONTEXT_ATTRIBUTE = "_ratelimit_ban_context"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
PAIR, CLIENT_ID, IP = "p", "c", "i"


@dataclass(frozen=True, slots=True)
class BanContext:
    """A watched token request: its rule and who is trying."""

    rule: object  # policy.BanRuleEntry
    client_id: str
    fingerprint: str
    ip: str | None


def pair_fingerprint(client_id, client_secret):
    """Keyed hash of the pair, with a salt of its own; the length prefix keeps
    ("ab", "c") and ("a", "bc") apart."""
    return hashing.keyed_hash("credential-pair", f"{len(client_id)}:{client_id}\0{client_secret}")


def context_for(request, snapshot, config):
    """The BanContext of ``request``, or None when no enabled rule watches it."""
    if not snapshot.ban_rules:
        return None
    path = paths.normalize_path(request.path_info)
    group = snapshot.group_for_path(path)
    rule = next((r for r in snapshot.ban_rules if r.watches(request.method, path, group)), None)
    if rule is None:
        return None
    pair = client_credentials(request)
    if pair is None:
        return None
    client_id, secret = pair
    return BanContext(
        rule=rule,
        client_id=client_id,
        fingerprint=pair_fingerprint(client_id, secret),
        ip=identity.client_ip(request.META, config["TRUSTED_PROXIES"], config["IPV6_PREFIX"]),
    )


def _parties(context):
    """(kind, hashed value, threshold) of every party failures are counted for."""
    rule = context.rule
    parties = [(PAIR, context.fingerprint[:32], rule.threshold)]
    if rule.client_id_threshold:
        parties.append(
            (
                CLIENT_ID,
                hashing.short_hash("client-id", context.client_id),
                rule.client_id_threshold,
            )
        )
    if rule.ip_threshold and context.ip:
        parties.append((IP, hashing.short_hash("identity", f"ip:{context.ip}"), rule.ip_threshold))
    return parties


def _key(base, letter, rule_id, kind, value):
    return f"{base}:{letter}{rule_id}{kind}:{value}"


def ban_specs(context, config):
    """Ban checks for the request, to go into the same backend call as its limits."""
    return _ban_specs(context, key_base(config))


@lru_cache(maxsize=4096)
def _ban_specs(context, base):
    rule = context.rule
    return [
        LimitSpec(
            key=_key(base, "b", rule.id, kind, value),
            algorithm=BAN,
            rate=threshold,
            period=rule.cooldown,
            extend=rule.extend_on_attempt,
            name=f"ban-{kind}",
        )
        for kind, value, threshold in _parties(context)
    ]


def failure_counters(context, config):
    """FailureCounters for every party of the request."""
    rule = context.rule
    return [
        FailureCounter(
            failure_key=_key(key_base(config), "x", rule.id, kind, value),
            ban_key=_key(key_base(config), "b", rule.id, kind, value),
            threshold=threshold,
            window=rule.window,
            cooldown=rule.cooldown,
        )
        for kind, value, threshold in _parties(context)
    ]


def _banned_verdict(context, config, seconds_left):
    spec = ban_specs(context, config)[0]
    wait = max(1, int(seconds_left * US))
    outcome = Outcome(False, context.rule.threshold, 0, wait, wait, None, 0)
    now_us = int(runtime.wall_clock() * US)
    decision = make_decision([spec], [outcome], False, now_us, 1)
    return enforcement.Verdict(decision=decision, group=None, allowed=False, retry_after=wait / US)


def precheck(request):
    """Before the view: the Verdict for a watched token request (its limits and its bans
    in one backend call), or None when no rule watches it. A ban recorded in the
    database denies without calling the backend at all."""
    config = get_config()
    snapshot = runtime.get_snapshot()
    context = context_for(request, snapshot, config)
    if context is None:
        return None
    setattr(request, CONTEXT_ATTRIBUTE, context)
    expires_at = snapshot.bans.get((context.rule.id, context.fingerprint))
    now = runtime.wall_clock()
    # With extend_on_attempt the counter store must see the attempt, to restart the ban.
    if expires_at is not None and expires_at > now and not context.rule.extend_on_attempt:
        verdict = _banned_verdict(context, config, expires_at - now)
        enforcement.remember(request, verdict)
        return verdict
    verdict = enforcement.evaluate(request, extra_specs=ban_specs(context, config))
    if expires_at is not None and expires_at > now and verdict.allowed:
        # The store lost the ban (a restart or flush): the database still holds it.
        enforcement.forget(request)
        verdict = _banned_verdict(context, config, expires_at - now)
        enforcement.remember(request, verdict)
        return verdict
    if _lifted_but_still_banned(verdict, context, snapshot):
        clear_pair(context.rule.id, context.fingerprint)
        enforcement.forget(request)
        verdict = enforcement.evaluate(request, extra_specs=ban_specs(context, config))
    elif context.rule.extend_on_attempt and expires_at is not None and not verdict.allowed:
        _record_extension(context, verdict, expires_at)
    return verdict


EXTENSION_SYNC_SECONDS = 60


def _record_extension(context, verdict, recorded_expiry):
    """Carry an extended ban's new expiry into its row, at most once a minute, so that
    the row stays the truth if the store is flushed."""
    new_expiry = verdict.decision.now + verdict.retry_after
    if new_expiry - recorded_expiry < EXTENSION_SYNC_SECONDS:
        return
    CredentialBan.objects.filter(
        rule_id=context.rule.id, fingerprint=context.fingerprint, lifted_at__isnull=True
    ).active().update(expires_at=_from_us(int(new_expiry * US)))
    revision.bump()
    runtime.get_snapshot_holder().invalidate()


def _lifted_but_still_banned(verdict, context, snapshot):
    """An operator lifted the ban while Redis was down, so Redis still holds it.

    A ban that started after the lift (its start is its expiry less the cooldown) is
    a new one and stands.
    """
    if verdict.allowed or verdict.decision is None:
        return False
    key = (context.rule.id, context.fingerprint)
    binding = verdict.decision.binding
    if binding.spec.algorithm != BAN or key not in snapshot.lifted or key in snapshot.bans:
        return False
    started = verdict.decision.now + binding.retry_after - context.rule.cooldown
    return started <= snapshot.lifted[key]


def observe(request, response):
    """After the view: count a failure status, or clear the count on success if the rule
    says so. Requests the limiter itself refused are not the view's answers."""
    context = getattr(request, CONTEXT_ATTRIBUTE, None)
    verdict = getattr(request, enforcement.REQUEST_ATTRIBUTE, None)
    if context is None or (verdict is not None and not verdict.allowed):
        return
    config = get_config()
    try:
        if response.status_code in context.rule.statuses:
            _record_failure(context, config)
        elif 200 <= response.status_code < 300 and context.rule.reset_on_success:
            runtime.get_backend().clear([failure_counters(context, config)[0].failure_key])
    except BackendUnavailable:
        logger.warning("Could not count a token failure: the counter store is unavailable.")


def _record_failure(context, config):
    counters = failure_counters(context, config)
    now_us, results = runtime.get_backend().record_failures(counters, now=runtime.now_us())
    pair_result = results[0]
    if pair_result.banned:
        create_ban(context, pair_result.count, now_us, pair_result.expires_at_us)


def _from_us(value):
    return datetime.datetime.fromtimestamp(value / US, tz=datetime.UTC)


def storable_client_id(client_id):
    """The client_id as shown to operators: control characters (NUL included, which
    PostgreSQL refuses) escaped, at most 200 characters."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", client_id[:200])[:200]


def create_ban(context, failures, banned_at_us, expires_at_us):
    """Write the ban row (the truth), signal it, and refresh this process's snapshot.

    A database error is logged, not raised: the ban already holds in the counter store.
    """
    try:
        with transaction.atomic():
            ban = CredentialBan.objects.create(
                rule_id=context.rule.id,
                client_id=storable_client_id(context.client_id),
                fingerprint=context.fingerprint,
                failures=failures,
                banned_at=_from_us(banned_at_us),
                expires_at=_from_us(expires_at_us),
            )
    except IntegrityError:
        return None  # the same ban, already written
    except DatabaseError:
        logger.exception("Could not record a credential ban; it holds in the counter store.")
        return None
    # No immediate rebuild: the counter store enforces the ban now, and the snapshot
    # takes the row in with the revision this save published (at most once a second).
    logger.warning(
        "Banned client_id=%r [%s] for %d s after %d failures.",
        ban.client_id[:64],
        ban.short_fingerprint,
        context.rule.cooldown,
        failures,
    )
    credential_banned.send(sender=CredentialBan, ban=ban)
    return ban


def clear_pair(rule_id, fingerprint):
    """Forget a pair's failure count and ban in the counter store; False if unreachable."""
    config = get_config()
    value = fingerprint[:32]
    base = key_base(config)
    keys = [_key(base, letter, rule_id, PAIR, value) for letter in ("x", "b")]
    try:
        runtime.get_backend().clear(keys)
    except BackendUnavailable:
        logger.warning("Ban lifted in the database; the counter store could not be cleared.")
        return False
    return True


def lift_bans(queryset, user=None, now=None):
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
    runtime.get_snapshot_holder().invalidate()
    for ban in lifted:
        clear_pair(ban.rule_id, ban.fingerprint)
        credential_unbanned.send(sender=CredentialBan, ban=ban, user=user)
    return lifted
