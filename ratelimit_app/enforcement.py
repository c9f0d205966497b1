"""The one core every surface calls: request + endpoint group -> Verdict."""

import logging
from dataclasses import dataclass

from ratelimit_app import hashing, identity, responses, runtime
from ratelimit_app.conf import get_config
from ratelimit_app.counters.algorithms import LimitSpec
from ratelimit_app.counters.base import BackendUnavailable, key_base
from ratelimit_app.signals import request_throttled

logger = logging.getLogger("ratelimit_app")

REQUEST_ATTRIBUTE = "_ratelimit_verdict"
ALGORITHM_LETTERS = {"gcra": "g", "sliding_window": "s", "fixed_window": "f"}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What happened to one request: its Decision, or why there is none.

    ``decision`` is None when no limit applies or the counter store failed
    (``unavailable``); ``allowed`` already folds in the failure mode.
    """

    decision: object | None
    group: str | None
    allowed: bool = True
    unavailable: bool = False
    retry_after: float = 0.0


NOT_LIMITED = Verdict(decision=None, group=None)


def _identity_value(scope, who):
    if scope == "tenant":
        return who.tenant.id if who.tenant else None
    if scope == "api_key":
        return who.api_key_id
    if scope == "ip":
        return who.ip
    return who.user_id


SPEC_CACHE_SIZE = 50_000


def cached_specs(snapshot, group, who, config):
    """build_specs for the limits of ``group`` and ``who``, memoized on the snapshot (so a
    policy edit starts afresh) and bounded."""
    tenant_id = who.tenant.id if who.tenant else None
    cache_key = (group, tenant_id, who.ip, who.api_key_id, who.user_id)
    cache = snapshot.spec_cache
    specs = cache.get(cache_key)
    if specs is None:
        if len(cache) >= SPEC_CACHE_SIZE:
            cache.clear()
        specs = build_specs(snapshot.limits_for(group, who.tenant), who, config)
        cache[cache_key] = specs
    return specs


def build_specs(limits, who, config):
    """LimitSpecs for the limits that can be counted for ``who``.

    A limit whose party is unknown (a tenant limit on an anonymous request, say)
    does not apply. Identities enter keys only as keyed hashes.
    """
    prefix = key_base(config)
    specs = []
    for limit in limits:
        value = _identity_value(limit.scope, who)
        if value is None:
            continue
        party = hashing.short_hash("identity", f"{limit.scope}:{value}")
        specs.append(
            LimitSpec(
                key=f"{prefix}:{limit.id}{ALGORITHM_LETTERS[limit.algorithm]}:{party}",
                algorithm=limit.algorithm,
                rate=limit.rate,
                period=limit.period,
                burst=limit.burst,
                shadow=limit.shadow,
                name=f"{limit.group}-{limit.scope}-{limit.period}s",
            )
        )
    return specs


def evaluate(request, group=None, user=None, cost=1, extra_specs=(), snapshot=None):
    """Check and charge the limits of ``request`` once; later calls return the same Verdict.

    ``group`` is the endpoint group named by the view; without one, the group's path
    patterns decide. ``user`` is DRF's authenticated user, when the caller has one.
    ``extra_specs`` (ban checks) go into the same single backend call. ``snapshot`` is
    the policy snapshot the caller already holds, if any.
    """
    cached = getattr(request, REQUEST_ATTRIBUTE, None)
    if cached is not None:
        return cached
    if snapshot is None:
        snapshot = runtime.get_snapshot()
    verdict = _evaluate(request, group, user, cost, tuple(extra_specs), snapshot)
    remember(request, verdict)
    return verdict


def forget(request):
    """Drop the request's Verdict so that it is checked again."""
    if hasattr(request, REQUEST_ATTRIBUTE):
        delattr(request, REQUEST_ATTRIBUTE)


def remember(request, verdict):
    """Record ``verdict`` as the request's: every later surface reuses it."""
    setattr(request, REQUEST_ATTRIBUTE, verdict)


def decide(request, specs, group, snapshot, cost=1):
    """One backend call for ``specs`` (none for a key known to be over its limit), with the
    failure mode applied."""
    config = get_config()
    denials, revision = runtime.get_denials(), snapshot.revision
    local_now = runtime.local_clock()
    decision = denials.lookup(specs, revision, local_now) if denials is not None else None
    if decision is None:
        try:
            decision = runtime.get_backend().check(specs, cost, now=runtime.now_us())
        except BackendUnavailable:
            return _unavailable(group, config)
        if denials is not None and not decision.allowed:
            denials.record(decision, revision, cost, local_now)
        if decision.policy_revision is not None:
            runtime.get_snapshot_holder().note_remote_revision(decision.policy_revision)
    if not decision.allowed:
        _report_throttled(request, decision, group)
    return Verdict(
        decision=decision, group=group, allowed=decision.allowed, retry_after=decision.retry_after
    )


def _evaluate(request, group, user, cost, extra_specs, snapshot):
    config = get_config()
    group = group or snapshot.group_for_path(request.path_info)
    if group not in snapshot.groups:
        group = None  # only the limits that apply to every request
    if group is None and not snapshot.global_groups and not extra_specs:
        return NOT_LIMITED
    needs_user = snapshot.has_user_limits or bool(config["TENANT_RESOLVER"])
    who = identity.identify(request, snapshot, config, user=user, needs_user=needs_user)
    specs = cached_specs(snapshot, group, who, config)
    if extra_specs:
        specs = specs + list(extra_specs)
    if not specs:
        return Verdict(decision=None, group=group)
    return decide(request, specs, group, snapshot, cost)


def _unavailable(group, config):
    if config["FAILURE_MODE"] == "closed":
        return Verdict(
            decision=None,
            group=group,
            allowed=False,
            unavailable=True,
            retry_after=float(config["BREAKER_COOLDOWN"]),
        )
    return Verdict(decision=None, group=group, unavailable=True)


def _report_throttled(request, decision, group):
    binding = decision.binding
    # The limit's name and numbers only: no key, address, API key or credential.
    logger.info(
        "Throttled %s %s: group=%s limit=%s retry_after=%.3fs",
        request.method,
        request.path_info[:200],
        group,
        binding.spec.name if binding else "",
        decision.retry_after,
    )
    request_throttled.send(sender=Verdict, request=request, decision=decision, group=group)


def denial_response(verdict, config=None):
    """The response that replaces the view for a denied Verdict, or None if allowed."""
    if verdict.allowed:
        return None
    if verdict.unavailable:
        return responses.unavailable_response(verdict.retry_after)
    return responses.throttled_response(verdict.decision, config)


def finish_response(request, response, config=None):
    """Add the rate-limit headers of the request's Verdict (if any) to ``response``."""
    verdict = getattr(request, REQUEST_ATTRIBUTE, None)
    if verdict is not None and verdict.decision is not None:
        config = config or get_config()
        responses.add_headers(response, verdict.decision, config)
        if response.status_code == 429 and config["BODY"] == "problem":
            response["Content-Type"] = "application/problem+json"
    return response
