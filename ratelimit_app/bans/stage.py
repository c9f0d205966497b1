"""The ban stage of the pipeline: before the counter-store call (a ban the database
records denies without one), after it (reconcile the store with the database), and
after the view (count a failure, or clear the count on success).

Failures are counted per keyed hash of (client_id, client_secret) in the counter store;
the ban itself is written there (so every process sees it on its next request, inside
the same script call as the limits) and in the database (the truth: it survives a Redis
restart or flush and is what operators see and lift).
"""

import logging
from typing import NamedTuple

from ratelimit_app import runtime
from ratelimit_app.bans.rows import clear_pair, create_ban, record_extension
from ratelimit_app.bans.watch import BanWatch, ban_specs, failure_counters
from ratelimit_app.conf import get_config
from ratelimit_app.counters.algorithms import BAN, US, Outcome
from ratelimit_app.counters.base import BackendUnavailable, Decision, key_base, make_decision
from ratelimit_app.policy import PolicySnapshot

logger = logging.getLogger("ratelimit_app.bans")


class _Outage:
    """Whether failure counting is failing now: logged when that starts and ends, not
    once per request."""

    failing = False

    def note(self, failing: bool) -> None:
        if failing == self.failing:
            return
        self.failing = failing
        if failing:
            logger.warning("Token failures are not counted: the counter store is unavailable.")
        else:
            logger.warning("Token failures are counted again: the counter store is back.")


_outage = _Outage()


class Settlement(NamedTuple):
    """The store's Decision reconciled with the database; ``check_again`` when the store
    held a ban an operator had lifted, now cleared."""

    decision: Decision
    check_again: bool = False


def ban_in_force(watched: BanWatch, snapshot: PolicySnapshot, now: float) -> float | None:
    """Seconds left of the pair's ban as the database records it, or None if it has none.

    The pipeline then denies without calling the store, except with extend_on_attempt,
    where the store must see the attempt to restart the ban.
    """
    expires_at = snapshot.recorded_ban(watched.rule.id, watched.fingerprint)
    if expires_at is None or expires_at <= now:
        return None
    return expires_at - now


def banned_decision(watched: BanWatch, base: str, seconds_left: float, now: float) -> Decision:
    """A Decision denying the pair for ``seconds_left``, as the store would give it."""
    spec = ban_specs(watched, base)[0]
    wait = max(1, int(seconds_left * US))
    outcome = Outcome(False, watched.rule.threshold, 0, wait, wait, None, 0)
    return make_decision([spec], [outcome], False, int(now * US), 1)


def settle(
    watched: BanWatch, snapshot: PolicySnapshot, decision: Decision, base: str, now: float
) -> Settlement:
    """Reconcile the store's ``decision`` for a watched request with the ban rows."""
    rule, fingerprint = watched.rule, watched.fingerprint
    expires_at = snapshot.recorded_ban(rule.id, fingerprint)
    if expires_at is not None and expires_at > now and decision.allowed:
        # The store lost the ban (a restart or flush): the database still holds it.
        return Settlement(banned_decision(watched, base, expires_at - now, now))
    binding = decision.binding
    if decision.allowed or binding is None or binding.spec.algorithm != BAN:
        return Settlement(decision)
    if _lifted_while_store_was_down(watched, snapshot, decision):
        clear_pair(rule.id, fingerprint)
        return Settlement(decision, check_again=True)
    if rule.extend_on_attempt and expires_at is not None:
        record_extension(watched, decision.now + decision.retry_after, expires_at)
    return Settlement(decision)


def _lifted_while_store_was_down(
    watched: BanWatch, snapshot: PolicySnapshot, decision: Decision
) -> bool:
    """An operator lifted the ban while Redis was down, so Redis still holds it.

    A ban that started after the lift (its start is its expiry less the cooldown) is
    a new one and stands.
    """
    rule, fingerprint = watched.rule, watched.fingerprint
    lifted_at = snapshot.lifted_at(rule.id, fingerprint)
    if lifted_at is None or snapshot.recorded_ban(rule.id, fingerprint) is not None:
        return False
    started = decision.now + decision.retry_after - rule.cooldown
    return started <= lifted_at


def record_response(watched: BanWatch, status: int) -> None:
    """After the view: count a failure status, or clear the count on success if the rule
    says so. A store outage is logged: the request has its answer already."""
    if not watched.rule.counts_statuses:
        return  # the toolkit's validator counts client authentications
    if status in watched.rule.statuses:
        record_outcome(watched, failed=True)
    elif 200 <= status < 300:
        record_outcome(watched, failed=False)


def record_outcome(watched: BanWatch, failed: bool) -> None:
    """Count a failure of the watched pair, or on a success clear its count if the rule
    says so. A store outage is logged when it starts and ends."""
    base = key_base(get_config())
    try:
        if failed:
            _record_failure(watched, base)
        elif watched.rule.reset_on_success:
            pair_counter = failure_counters(watched, base)[0]
            runtime.get_backend().clear([pair_counter.failure_key])
    except BackendUnavailable:
        _outage.note(failing=True)
        return
    _outage.note(failing=False)


def _record_failure(watched: BanWatch, base: str) -> None:
    counters = failure_counters(watched, base)
    now_us, results = runtime.get_backend().record_failures(counters, now=runtime.now_us())
    pair_result = results[0]
    if pair_result.banned:
        create_ban(watched, pair_result.count, now_us, pair_result.expires_at_us)
