"""What the metrics hear: every decided request and every counter-store call (through
the observer lists of the pipeline and the breaker, plain calls on the request path),
and the app's signals for the rarer events.

Every receiver swallows its own errors (logged once): a metric must never turn a
request into an error, whatever state prometheus_client or the database is in.
"""

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from ratelimit_app import signals
from ratelimit_app.counters import breaker
from ratelimit_app.counters.algorithms import BAN
from ratelimit_app.counters.base import BackendUnavailable, Decision
from ratelimit_app.enforcement import pipeline
from ratelimit_app.enforcement.verdict import Verdict
from ratelimit_app.metrics import families

logger = logging.getLogger("ratelimit_app.metrics")

# A request "near the limit" left under this share of a limit's capacity.
NEAR_LIMIT_RATIO = 0.1
# Label values when there is no group (only the limits of groups on top of others
# applied) or no limit (only ban checks, all clear).
NO_GROUP = "none"
NO_LIMIT = "none"
KIND_NAMES = {"p": "pair", "c": "client_id", "i": "address"}
_failed_once = False
# Labelled children by (family, label values): prometheus_client's labels() takes a
# lock and validates on every call, a microsecond or more per request. The label values
# are bounded (groups, limit names, outcomes), but renamed limits leave old entries:
# past this size the cache starts afresh.
_children: dict[tuple[Any, ...], Any] = {}
MAX_CHILDREN = 10_000


def child(family: Any, *values: str) -> Any:
    """``family.labels(*values)``, memoized."""
    key = (id(family), *values)
    found = _children.get(key)
    if found is None:
        if len(_children) >= MAX_CHILDREN:
            _children.clear()
        found = _children[key] = family.labels(*values)
    return found


def _guarded(receiver: Callable[..., None]) -> Callable[..., None]:
    """``receiver``, but an error in it is logged (the first one) instead of raised."""

    @functools.wraps(receiver)
    def guarded(*args: Any, **kwargs: Any) -> None:
        global _failed_once
        try:
            receiver(*args, **kwargs)
        except Exception:
            if not _failed_once:
                _failed_once = True
                logger.exception("A ratelimit_app metric could not be recorded.")

    return guarded


@_guarded
def on_verdict(verdict: Verdict) -> None:
    """One decided request: its outcome, shadow denials, near-limit limits."""
    metrics = families.get()
    group = verdict.group or NO_GROUP
    decision = verdict.decision
    if decision is None:  # the store could not answer
        mode = "closed" if not verdict.allowed else "open"
        child(metrics.unavailable, group, mode).inc()
        return
    binding = decision.binding
    limit = binding.spec.name if binding is not None else NO_LIMIT
    child(metrics.decisions, group, limit, "allowed" if decision.allowed else "denied").inc()
    if verdict.local:
        child(metrics.deny_record_hits, group).inc()
    if decision.allowed:
        _count_limits(metrics, group, decision)


def _count_limits(metrics: families.Families, group: str, decision: Decision) -> None:
    """An allowed request's shadow limits that would have denied it (the dry run of a
    limit), and the limits it left under NEAR_LIMIT_RATIO of their capacity."""
    for spec, allowed, limit, remaining in decision.figures():
        if spec.algorithm == BAN:
            continue
        if not allowed:  # only a shadow limit denies an allowed request
            child(metrics.decisions, group, spec.name, "shadow_denied").inc()
        elif remaining < NEAR_LIMIT_RATIO * limit:
            child(metrics.near_limit, group, spec.name).inc()


def on_store_call(operation: str, seconds: float, error: BackendUnavailable | None) -> None:
    """A counter-store call: its latency if it reached the store, its failure if any.
    (The breaker guards observers itself; this one is not wrapped again.)"""
    metrics = families.get()
    if error is None or error.kind != "breaker_open":
        child(metrics.store_seconds, operation).observe(seconds)
    if error is not None:
        child(metrics.store_failures, operation, error.kind).inc()


@_guarded
def on_backend_failed(sender: Any, breaker_open: bool = False, **kwargs: Any) -> None:
    """The breaker opened: the gauge says so until a call succeeds."""
    if breaker_open:
        families.get().breaker_open.set(1)


@_guarded
def on_backend_recovered(sender: Any, **kwargs: Any) -> None:
    """A call succeeded after failures: the breaker is closed."""
    families.get().breaker_open.set(0)


@_guarded
def on_failure_counted(sender: Any, rule_name: str = "", **kwargs: Any) -> None:
    """A watched pair's failure was counted."""
    families.get().ban_failures.labels(rule_name).inc()


@_guarded
def on_banned(sender: Any, ban: Any, rule_name: str | None = None, **kwargs: Any) -> None:
    """A ban row was written."""
    name = rule_name if rule_name is not None else _rule_name(ban)
    families.get().bans_created.labels(name, KIND_NAMES.get(ban.kind, ban.kind)).inc()


@_guarded
def on_unbanned(sender: Any, ban: Any, **kwargs: Any) -> None:
    """A ban was lifted."""
    families.get().bans_lifted.labels(_rule_name(ban), KIND_NAMES.get(ban.kind, ban.kind)).inc()


def _rule_name(ban: Any) -> str:
    # Lifting is rare (an operator's action): one query for the rule's name is fine.
    return ban.rule.name if ban.rule_id is not None else "deleted"


@_guarded
def on_snapshot_refreshed(
    sender: Any, revision: int, built: bool, seconds: float, **kwargs: Any
) -> None:
    """The snapshot is up to date: its revision, how long that took, and when."""
    metrics, now = families.get(), time.time()
    metrics.policy_revision.set(revision)
    metrics.snapshot_build_seconds.labels("built" if built else "bans").observe(seconds)
    if built:
        metrics.snapshot_built.set(now)
    metrics.snapshot_refreshed.set(now)


@_guarded
def on_snapshot_refresh_failed(sender: Any, **kwargs: Any) -> None:
    """A refresh failed (the database down): the last good snapshot stays."""
    families.get().snapshot_refresh_failures.inc()


# (signal, receiver): connected with weak=False (module functions) and a dispatch uid.
SIGNAL_RECEIVERS = (
    (signals.counter_backend_failed, on_backend_failed),
    (signals.counter_backend_recovered, on_backend_recovered),
    (signals.credential_failure_counted, on_failure_counted),
    (signals.credential_banned, on_banned),
    (signals.credential_unbanned, on_unbanned),
    (signals.policy_snapshot_refreshed, on_snapshot_refreshed),
    (signals.policy_snapshot_refresh_failed, on_snapshot_refresh_failed),
)


def connect() -> None:
    """Start recording: connect every receiver and the store-call observer."""
    families.get()  # made now, not inside the first request
    for signal, receiver in SIGNAL_RECEIVERS:
        signal.connect(receiver, weak=False, dispatch_uid=f"ratelimit-metrics-{receiver.__name__}")
    if on_store_call not in breaker.call_observers:
        breaker.call_observers.append(on_store_call)
    if on_verdict not in pipeline.verdict_observers:
        pipeline.verdict_observers.append(on_verdict)


def disconnect() -> None:
    """Stop recording: nothing is sent or timed for the metrics any more."""
    for signal, receiver in SIGNAL_RECEIVERS:
        signal.disconnect(dispatch_uid=f"ratelimit-metrics-{receiver.__name__}")
    if on_store_call in breaker.call_observers:
        breaker.call_observers.remove(on_store_call)
    if on_verdict in pipeline.verdict_observers:
        pipeline.verdict_observers.remove(on_verdict)
