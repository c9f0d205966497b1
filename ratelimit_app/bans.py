"""Credential-pair bans on token endpoints: checked before the view, fed by its status.

Failures are counted per keyed hash of (client_id, client_secret) in the counter store;
the ban itself is written there (so every process sees it on its next request, inside
the same script call as the limits) and in the database (the truth: it survives a Redis
restart or flush and is what operators see and lift).
"""

import logging
from dataclasses import dataclass
from functools import lru_cache

from ratelimit_app import enforcement, hashing, identity, paths, runtime
from ratelimit_app.ban_rows import (
    CLIENT_ID,
    IP,
    PAIR,
    clear_pair,
    counter_key,
    create_ban,
    record_extension,
)
from ratelimit_app.conf import get_config
from ratelimit_app.counters.algorithms import BAN, US, LimitSpec, Outcome
from ratelimit_app.counters.base import BackendUnavailable, key_base, make_decision
from ratelimit_app.counters.failures import FailureCounter
from ratelimit_app.credentials import client_credentials

logger = logging.getLogger("ratelimit_app.bans")

CONTEXT_ATTRIBUTE = "_ratelimit_ban_context"


@dataclass(frozen=True, slots=True)
class BanContext:
    """A watched token request: its rule and who is trying (``ip`` only when the rule
    counts failures per address)."""

    rule: object  # policy.BanRuleEntry
    client_id: str
    fingerprint: str
    ip: str | None


def pair_fingerprint(client_id, client_secret):
    """Keyed hash of the pair, with a salt of its own; the length prefix keeps
    ("ab", "c") and ("a", "bc") apart."""
    return hashing.keyed_hash("credential-pair", f"{len(client_id)}:{client_id}\0{client_secret}")


def context_for(request, snapshot, config, group):
    """The BanContext of ``request``, or None when no enabled rule watches it. ``group`` is
    the request's endpoint group by its path (None if it has none)."""
    if not snapshot.ban_rules:
        return None
    path = paths.normalize_path(request.path_info)
    rule = next((r for r in snapshot.ban_rules if r.watches(request.method, path, group)), None)
    if rule is None:
        return None
    pair = client_credentials(request)
    if pair is None:
        return None
    client_id, secret = pair
    ip = None
    if rule.ip_threshold:
        ip = identity.client_ip(request.META, config["TRUSTED_PROXIES"], config["IPV6_PREFIX"])
    return BanContext(
        rule=rule,
        client_id=client_id,
        fingerprint=pair_fingerprint(client_id, secret),
        ip=ip,
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


def ban_specs(context, config):
    """Ban checks for the request, to go into the same backend call as its limits."""
    return _ban_specs(context, key_base(config))


@lru_cache(maxsize=4096)
def _ban_specs(context, base):
    rule = context.rule
    return [
        LimitSpec(
            key=counter_key(base, "b", rule.id, kind, value),
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
            failure_key=counter_key(key_base(config), "x", rule.id, kind, value),
            ban_key=counter_key(key_base(config), "b", rule.id, kind, value),
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
    group = snapshot.group_for_path(request.path_info)
    context = context_for(request, snapshot, config, group)
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
    verdict = enforcement.evaluate(
        request, group=group, extra_specs=ban_specs(context, config), snapshot=snapshot
    )
    if expires_at is not None and expires_at > now and verdict.allowed:
        # The store lost the ban (a restart or flush): the database still holds it.
        enforcement.forget(request)
        verdict = _banned_verdict(context, config, expires_at - now)
        enforcement.remember(request, verdict)
        return verdict
    if _lifted_but_still_banned(verdict, context, snapshot):
        clear_pair(context.rule.id, context.fingerprint)
        enforcement.forget(request)
        verdict = enforcement.evaluate(
            request, group=group, extra_specs=ban_specs(context, config), snapshot=snapshot
        )
    elif context.rule.extend_on_attempt and expires_at is not None and not verdict.allowed:
        record_extension(context, verdict, expires_at)
    return verdict


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
