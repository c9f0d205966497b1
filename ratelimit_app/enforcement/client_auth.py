"""Bans checked and counted inside an OAuth2 provider's own client authentication.

The provider (django-oauth-toolkit, through ``contrib.oauth_toolkit``) calls these with
the pair it parsed itself, so that no difference between its parser and the
middleware's can let a banned pair through: the middleware's early check is a fast
path, this is the guarantee. The rule is the snapshot's first enabled rule that counts
client authentications.
"""

from collections.abc import Mapping
from typing import Any

from ratelimit_app import identity, runtime
from ratelimit_app.bans import stage as ban_stage
from ratelimit_app.bans.watch import BanWatch, ban_specs, watch_pair
from ratelimit_app.conf import get_config
from ratelimit_app.counters.base import BackendUnavailable, Decision, key_base


def _watch(client_id: str, secret: str, meta: Mapping[str, Any]) -> BanWatch | None:
    rule = runtime.get_snapshot().client_authentication_rule
    if rule is None:
        return None
    ip = None
    if rule.ip_threshold:
        config = get_config()
        ip = identity.client_ip(meta, config["TRUSTED_PROXIES"], config["IPV6_PREFIX"])
    return watch_pair(rule, client_id, secret, ip)


def refused_pair(client_id: str, secret: str, meta: Mapping[str, Any]) -> Decision | None:
    """Before the provider checks a client's secret: the Decision that refuses a banned
    pair (no hash is computed then), else None. ``meta`` holds the request's addresses
    (REMOTE_ADDR, X-Forwarded-For) as Django's META does."""
    watched = _watch(client_id, secret, meta)
    if watched is None:
        return None
    snapshot, base, now = runtime.get_snapshot(), key_base(get_config()), runtime.wall_clock()
    if not watched.rule.extend_on_attempt:
        recorded = ban_stage.ban_in_force(watched, snapshot, now)
        if recorded is not None:
            return ban_stage.banned_decision(watched, base, recorded, now)
    specs = ban_specs(watched, base)
    try:
        decision = runtime.get_backend().check(specs, 1, now=runtime.now_us())
        settlement = ban_stage.settle(watched, snapshot, decision, base, now)
        decision = settlement.decision
        if settlement.check_again:
            decision = runtime.get_backend().check(specs, 1, now=runtime.now_us())
    except BackendUnavailable:
        return None  # the rows were read above; the failure is logged by the breaker
    return None if decision.allowed else decision


def record_client_authentication(
    client_id: str, secret: str, meta: Mapping[str, Any], succeeded: bool
) -> None:
    """After the provider checked a client's secret: count a failure, or on a success
    clear the pair's count if the rule says so."""
    watched = _watch(client_id, secret, meta)
    if watched is not None:
        ban_stage.record_outcome(watched, failed=not succeeded)
