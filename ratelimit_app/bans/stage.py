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

from ratelimit_app import events, runtime
from ratelimit_app.bans.rows import clear_party, create_ban, record_extension
from ratelimit_app.bans.watch import BanWatch, Party, ban_specs, failure_counters, parties
from ratelimit_app.conf import get_config
from ratelimit_app.counters.algorithms import BAN, US, Outcome
from ratelimit_app.counters.base import BackendUnavailable, Decision, key_base, make_decision
from ratelimit_app.policy import PolicySnapshot
from ratelimit_app.signals import credential_failure_counted

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
            events.log_event(
                logger,
                logging.WARNING,
                events.FAILURE_COUNTING_STOPPED,
                "Token failures are not counted: the counter store is unavailable.",
            )
        else:
            events.log_event(
                logger,
                logging.WARNING,
                events.FAILURE_COUNTING_RESUMED,
                "Token failures are counted again: the counter store is back.",
            )


_outage = _Outage()


class Settlement(NamedTuple):
    """The store's Decision reconciled with the database; ``check_again`` when the store
    held a ban an operator had lifted, now cleared."""

    decision: Decision
    check_again: bool = False


class RecordedBan(NamedTuple):
    """A ban the database records for one of a request's parties."""

    party_index: int
    seconds_left: float


def ban_in_force(watched: BanWatch, snapshot: PolicySnapshot, now: float) -> RecordedBan | None:
    """The longest ban the database records for a party of the request, or None.

    The pipeline then denies without calling the store, except with extend_on_attempt,
    where the store must see the attempt to restart the ban.
    """
    recorded = [
        RecordedBan(index, expires_at - now)
        for index, party in enumerate(parties(watched))
        if (expires_at := snapshot.recorded_ban(watched.rule.id, party.fingerprint) or 0) > now
    ]
    return max(recorded, key=lambda ban: ban.seconds_left, default=None)


def banned_decision(watched: BanWatch, base: str, recorded: RecordedBan, now: float) -> Decision:
    """A Decision denying the request for the recorded ban, as the store would give it."""
    spec = ban_specs(watched, base)[recorded.party_index]
    wait = max(1, int(recorded.seconds_left * US))
    outcome = Outcome(False, spec.rate, 0, wait, wait, None, 0)
    return make_decision([spec], [outcome], False, int(now * US), 1)


def settle(
    watched: BanWatch, snapshot: PolicySnapshot, decision: Decision, base: str, now: float
) -> Settlement:
    """Reconcile the store's ``decision`` for a watched request with the ban rows."""
    recorded = ban_in_force(watched, snapshot, now)
    if recorded is not None and decision.allowed:
        # The store lost the ban (a restart or flush): the database still holds it.
        return Settlement(banned_decision(watched, base, recorded, now))
    binding = decision.binding
    if decision.allowed or binding is None or binding.spec.algorithm != BAN:
        return Settlement(decision)
    party = _party_of(watched, binding.spec.name)
    if party is None:
        return Settlement(decision)
    if _lifted_while_store_was_down(watched, party, snapshot, decision):
        clear_party(watched.rule.id, party.kind, party.fingerprint)
        return Settlement(decision, check_again=True)
    expires_at = snapshot.recorded_ban(watched.rule.id, party.fingerprint)
    if watched.rule.extend_on_attempt and expires_at is not None:
        new_expiry = decision.now + decision.retry_after
        record_extension(watched, party.fingerprint, new_expiry, expires_at)
    return Settlement(decision)


def _party_of(watched: BanWatch, spec_name: str) -> Party | None:
    """The party whose ban check is named ``spec_name`` ("ban-p", "ban-c", "ban-i")."""
    return next((p for p in parties(watched) if spec_name == f"ban-{p.kind}"), None)


def _lifted_while_store_was_down(
    watched: BanWatch, party: Party, snapshot: PolicySnapshot, decision: Decision
) -> bool:
    """An operator lifted the ban while Redis was down, so Redis still holds it.

    A ban that started after the lift (its start is its expiry less the cooldown) is
    a new one and stands.
    """
    rule = watched.rule
    lifted_at = snapshot.lifted_at(rule.id, party.fingerprint)
    if lifted_at is None or snapshot.recorded_ban(rule.id, party.fingerprint) is not None:
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
    rule = watched.rule
    credential_failure_counted.send(sender=BanWatch, rule_id=rule.id, rule_name=rule.name)
    # Every ban is a row, the pair's as much as a client_id's or an address's.
    for party, result in zip(parties(watched), results, strict=True):
        if result.banned:
            create_ban(watched, party, result.count, now_us, result.expires_at_us)
