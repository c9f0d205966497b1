"""The metric families, made once per process on first use (prometheus_client is only
imported then: it is an optional dependency).

Labels carry bounded values only: endpoint group slugs, limit names, ban rule names,
outcomes and kinds. Never a client, key, token, address or tenant.
"""

import threading
from dataclasses import dataclass
from typing import Any

# Counter-store calls take tens of microseconds to milliseconds; the socket timeout
# (0.1 s by default) caps them.
STORE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
BUILD_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Families:
    """Every metric of ratelimit_app, by its role."""

    decisions: Any
    near_limit: Any
    unavailable: Any
    deny_record_hits: Any
    bans_created: Any
    bans_lifted: Any
    ban_failures: Any
    store_seconds: Any
    store_failures: Any
    breaker_open: Any
    policy_revision: Any
    snapshot_build_seconds: Any
    snapshot_built: Any
    snapshot_refreshed: Any
    snapshot_refresh_failures: Any


_families: Families | None = None
_lock = threading.Lock()


def get() -> Families:
    """The process's metric families, registered in prometheus_client's default registry
    on first use (a family can be registered once per process)."""
    global _families
    if _families is None:
        with _lock:
            if _families is None:
                _families = _make()
    return _families


def _make() -> Families:
    from prometheus_client import Counter, Gauge, Histogram

    return Families(
        decisions=Counter(
            "ratelimit_decisions",
            "Requests decided, by endpoint group, the limit the answer describes (the "
            "denying one, else the tightest), and outcome (allowed, denied); plus one "
            "shadow_denied per shadow limit that would have denied.",
            ["group", "limit", "outcome"],
        ),
        near_limit=Counter(
            "ratelimit_near_limit",
            "Allowed requests that left under 10 % of a limit's capacity, by limit.",
            ["group", "limit"],
        ),
        unavailable=Counter(
            "ratelimit_unavailable",
            "Requests decided without the counter store (down or breaker open), by "
            "endpoint group and FAILURE_MODE (open: allowed, closed: 503).",
            ["group", "failure_mode"],
        ),
        deny_record_hits=Counter(
            "ratelimit_deny_record_hits",
            "Denials answered from the process's record of keys over their limit, "
            "with no counter-store call.",
            ["group"],
        ),
        bans_created=Counter(
            "ratelimit_bans_created", "Credential bans written, by rule and kind.", ["rule", "kind"]
        ),
        bans_lifted=Counter(
            "ratelimit_bans_lifted", "Credential bans lifted, by rule and kind.", ["rule", "kind"]
        ),
        ban_failures=Counter(
            "ratelimit_ban_failures",
            "Failures of watched credential pairs counted, by ban rule.",
            ["rule"],
        ),
        store_seconds=Histogram(
            "ratelimit_store_call_seconds",
            "Counter-store calls that reached the store, by operation, in seconds.",
            ["operation"],
            buckets=STORE_BUCKETS,
        ),
        store_failures=Counter(
            "ratelimit_store_failures",
            "Counter-store calls that failed, by operation and kind (the client's error "
            "class, or breaker_open for calls the open breaker refused).",
            ["operation", "kind"],
        ),
        breaker_open=Gauge(
            "ratelimit_store_breaker_open",
            "1 while a process's circuit breaker is open (from opening to the first "
            "call that succeeds), else 0; the highest of the live processes.",
            multiprocess_mode="livemax",
        ),
        policy_revision=Gauge(
            "ratelimit_policy_revision",
            "The policy revision of the snapshot in use; the lowest of the live processes.",
            multiprocess_mode="livemin",
        ),
        snapshot_build_seconds=Histogram(
            "ratelimit_policy_snapshot_build_seconds",
            "Policy snapshot refreshes, in seconds (built: a whole new snapshot; "
            "bans: ban rows taken in).",
            ["kind"],
            buckets=BUILD_BUCKETS,
        ),
        snapshot_built=Gauge(
            "ratelimit_policy_snapshot_built_timestamp_seconds",
            "When the snapshot in use was built (Unix time); the oldest of the live "
            "processes. Its age: time() - this.",
            multiprocess_mode="livemin",
        ),
        snapshot_refreshed=Gauge(
            "ratelimit_policy_snapshot_refreshed_timestamp_seconds",
            "When the snapshot was last found up to date with the database (Unix "
            "time); the oldest of the live processes.",
            multiprocess_mode="livemin",
        ),
        snapshot_refresh_failures=Counter(
            "ratelimit_policy_snapshot_refresh_failures",
            "Policy snapshot refreshes that failed (the database down).",
        ),
    )
