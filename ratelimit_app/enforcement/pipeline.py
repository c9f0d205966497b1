"""The pipeline every surface calls: request -> Verdict, and the response fed back.

``check`` resolves a request once, top to bottom: route (endpoint group), identity,
credential pair (when a ban rule watches the endpoint), limit and ban specs, one
counter-store call, Verdict. ``feed_back`` runs after the view: failure counting for
ban rules, then the rate-limit headers.
"""

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal, overload

from django.http import HttpRequest, HttpResponseBase

from ratelimit_app import events, hashing, identity, responses, runtime
from ratelimit_app.bans import stage as ban_stage
from ratelimit_app.bans.watch import ban_specs, watch, watching_rule
from ratelimit_app.conf import get_config
from ratelimit_app.counters.algorithms import LimitSpec
from ratelimit_app.counters.base import BackendUnavailable, Decision, key_base
from ratelimit_app.enforcement.specs import cached_specs, party_of
from ratelimit_app.enforcement.verdict import (
    NOT_LIMITED,
    Verdict,
    from_decision,
    tenant_inactive,
    unavailable,
)
from ratelimit_app.policy import PolicySnapshot
from ratelimit_app.signals import request_throttled

logger = logging.getLogger("ratelimit_app")

VERDICT_ATTRIBUTE = "_ratelimit_verdict"
FED_BACK_ATTRIBUTE = "_ratelimit_fed_back"
# Unknown group names already logged (bounded: a view may take its name from the URL).
_REPORTED_UNKNOWN: set[str] = set()
MAX_REPORTED_UNKNOWN = 256
# Told of every request decided against its limits (allowed, denied, or the store
# unavailable), with its Verdict. Filled from above (ratelimit_app.metrics when on, and
# the console's recorder, ratelimit_app.activity): a plain call, because a Django
# signal's dispatch costs microseconds on every request.
verdict_observers: list[Callable[[Verdict], None]] = []


@overload
def check(
    request: HttpRequest,
    *,
    group: str | None = ...,
    user: Any = ...,
    cost: int = ...,
    defer_to_drf: Literal[False] = ...,
) -> Verdict: ...
@overload
def check(
    request: HttpRequest,
    *,
    group: str | None = ...,
    user: Any = ...,
    cost: int = ...,
    defer_to_drf: bool,
) -> Verdict | None: ...
def check(
    request: HttpRequest,
    *,
    group: str | None = None,
    user: Any = None,
    cost: int = 1,
    defer_to_drf: bool = False,
) -> Verdict | None:
    """Check and charge the limits of ``request`` once; later calls return the same Verdict.

    ``group`` is the endpoint group the view names; without one, the group's path
    patterns decide. ``user`` is DRF's authenticated user, when the caller has one. With
    ``defer_to_drf`` (the middleware, before a DRF view that checks through
    PolicyThrottle) only a request a ban rule watches is checked now, before any
    credential check runs; others return None and are left to the throttle.
    """
    verdict: Verdict | None = getattr(request, VERDICT_ATTRIBUTE, None)
    if verdict is None:
        verdict = _resolve(request, group, user, cost, defer_to_drf)
        if verdict is not None:
            setattr(request, VERDICT_ATTRIBUTE, verdict)
            if verdict_observers and (verdict.decision is not None or verdict.unavailable):
                _tell_observers(verdict)
    return verdict


def _resolve(
    request: HttpRequest, named_group: str | None, user: Any, cost: int, defer_to_drf: bool
) -> Verdict | None:
    config = get_config()
    snapshot = runtime.get_snapshot()
    # 1. Route: the endpoint group the view names, else (or if it names no known
    # group: a view cannot name its way out of a limit) its path patterns'.
    if named_group is not None and named_group not in snapshot.groups:
        _report_unknown_group(named_group)
        named_group = None
    # The groups on top of others (per-IP limits across an API, say) apply by path.
    path_group, on_top = snapshot.route(request.path_info)
    group = named_group or path_group
    if group not in snapshot.groups:
        group = None  # only the limits of the groups on top of others
    method = request.method or ""
    rule = watching_rule(snapshot, method, request.path_info, (group, path_group))
    if rule is None and defer_to_drf:
        return None
    if rule is None and group is None and not on_top:
        return NOT_LIMITED
    # 2. Identity: who is asking.
    needs_user = snapshot.has_user_limits or bool(config["TENANT_RESOLVER"])
    now = runtime.wall_clock()
    who = identity.identify(request, snapshot, config, user=user, needs_user=needs_user, now=now)
    if who.tenant is not None and not who.tenant.active:
        return tenant_inactive(group)  # suspended: refused, neither counted nor anonymous
    # 3. Credentials: the pair a ban rule watches.
    watched = watch(request, rule, who.ip) if rule is not None else None
    base = key_base(config)
    if watched is not None and not watched.rule.extend_on_attempt:
        recorded = ban_stage.ban_in_force(watched, snapshot, now)
        if recorded is not None:
            # A ban the database records: denied without calling the store.
            decision = ban_stage.banned_decision(watched, base, recorded, now)
            return from_decision(decision, group, watched)
    # 4. Specs: the limits that apply, and the pair's ban checks.
    specs = cached_specs(snapshot, group, who, config, on_top)
    if watched is not None:
        specs = specs + ban_specs(watched, base)
    if not specs:
        return Verdict(decision=None, group=group)
    # 5. One counter-store call, reconciled with the ban rows.
    # The console's record of a key's last use, whichever limits applied.
    key_party = party_of("api_key", who.api_key_id) if who.api_key_id is not None else ""
    verdict = _decide(request, specs, group, snapshot, cost, config, key_party)
    if watched is None:
        return verdict
    if verdict.decision is None:  # the store failed: its failures are still tried after
        return replace(verdict, watched=watched)
    settlement = ban_stage.settle(watched, snapshot, verdict.decision, base, now)
    if settlement.check_again:
        # The store held a ban lifted while it was down: cleared now, so ask once more.
        verdict = _decide(request, specs, group, snapshot, cost, config, key_party)
        return replace(verdict, watched=watched)
    return from_decision(settlement.decision, group, watched)


def _tell_observers(verdict: Verdict) -> None:
    for observer in verdict_observers:
        try:
            observer(verdict)
        except Exception:  # an observer never turns a request into an error
            logger.debug("A verdict observer failed.", exc_info=True)


def _report_unknown_group(name: str) -> None:
    if name in _REPORTED_UNKNOWN or len(_REPORTED_UNKNOWN) >= MAX_REPORTED_UNKNOWN:
        return
    _REPORTED_UNKNOWN.add(name)
    logger.warning(
        "A view names the unknown endpoint group %r; its path patterns decide instead.",
        name[:100],
    )


def _decide(
    request: HttpRequest,
    specs: list[LimitSpec],
    group: str | None,
    snapshot: PolicySnapshot,
    cost: int,
    config: dict[str, Any],
    api_key_party: str,
) -> Verdict:
    """One backend call for ``specs`` (none for a key known to be over its limit), with
    the failure mode applied."""
    denials, revision = runtime.get_denials(), snapshot.revision
    local_now = runtime.local_clock()
    decision = denials.lookup(specs, revision, local_now) if denials is not None else None
    local = decision is not None
    if decision is None:
        try:
            decision = runtime.get_backend().check(specs, cost, now=runtime.now_us())
        except BackendUnavailable:
            return unavailable(group, config)
        if denials is not None and not decision.allowed:
            denials.record(decision, revision, cost, local_now)
        if decision.policy_revision is not None:
            # A store that lost its state (0) also has the record of denials forgotten.
            runtime.get_snapshot_holder().note_remote_revision(decision.policy_revision)
    if not decision.allowed:
        _report_throttled(request, decision, group)
    return from_decision(decision, group, local=local, api_key_party=api_key_party)


def _report_throttled(request: HttpRequest, decision: Decision, group: str | None) -> None:
    binding = decision.binding
    # The limit's name and numbers only: no key, address, API key or credential. The
    # party is a keyed hash of the counter's key: the same client and limit read alike
    # from line to line, and nothing in it can be turned back into the client.
    events.log_event(
        logger,
        logging.INFO,
        events.DENIED,
        f"Throttled {request.method} {request.path_info[:200]}",
        group=group or "",
        limit=binding.spec.name if binding else "",
        retry_after=decision.retry_after,
        party=hashing.short_hash("log", binding.spec.key) if binding else "",
    )
    request_throttled.send(sender=Verdict, request=request, decision=decision, group=group)


def _denied_downstream(response: HttpResponseBase) -> bool:
    """A 429 made after the pipeline allowed the request (the toolkit's validator refusing
    a banned pair) carries its own figures: they are not overwritten."""
    return response.status_code == 429 and response.has_header("Retry-After")


def feed_back(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """After the view: count a watched request's failure status (once, whichever surface
    calls first), then set the rate-limit headers of its Verdict on ``response``."""
    verdict: Verdict | None = getattr(request, VERDICT_ATTRIBUTE, None)
    if verdict is None:
        return response
    # Requests the limiter itself refused are not the view's answers.
    watched = verdict.watched if verdict.allowed else None
    if watched is not None and not getattr(request, FED_BACK_ATTRIBUTE, False):
        setattr(request, FED_BACK_ATTRIBUTE, True)
        ban_stage.record_response(watched, response.status_code)
    if verdict.decision is not None and not (verdict.allowed and _denied_downstream(response)):
        config = get_config()
        style = runtime.get_snapshot().header_style(verdict.group)
        responses.add_headers(response, verdict.decision, config, style)
        if response.status_code == 429 and config["BODY"] == "problem":
            response["Content-Type"] = "application/problem+json"
    return response
