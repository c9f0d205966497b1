"""The backend interface and the Decision every surface reads."""

from dataclasses import dataclass

from ratelimit_app.counters.algorithms import BAN, US


class BackendUnavailable(Exception):
    """The counter store could not answer (refused, timed out, or the breaker is open)."""


@dataclass(frozen=True, slots=True)
class LimitResult:
    """One limit's figures for one request, in seconds."""

    spec: object
    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request: allowed?, and the figures of the tightest limit."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    now: float
    results: tuple
    # The policy revision the counter store knows of: None if it cannot tell (process
    # memory), 0 if it has none (Redis after a flush or restart).
    policy_revision: int | None = None

    @property
    def binding(self):
        """The result whose figures the headers show."""
        return _tightest(self.results, self.allowed)


def _tightest(results, allowed):
    enforced = [r for r in results if not r.spec.shadow] or list(results)
    if not allowed:
        return max((r for r in enforced if not r.allowed), key=lambda r: r.retry_after)
    # A ban check that lets the request through is not a limit to report.
    enforced = [r for r in enforced if r.spec.algorithm != BAN]
    if not enforced:
        return None
    return min(enforced, key=lambda r: (r.remaining, -r.reset_after))


def make_decision(specs, outcomes, charged, now_us, cost, policy_revision=None):
    """Build a Decision from per-limit outcomes (microseconds) of one request."""
    results = []
    for spec, outcome in zip(specs, outcomes, strict=True):
        remaining = outcome.remaining
        if outcome.allowed and not charged:
            # Denied by another limit: this one was not charged after all.
            remaining = min(outcome.limit, remaining + cost)
        results.append(
            LimitResult(
                spec=spec,
                allowed=outcome.allowed,
                limit=outcome.limit,
                remaining=remaining,
                reset_after=outcome.reset_after_us / US,
                retry_after=outcome.retry_after_us / US,
            )
        )
    results = tuple(results)
    binding = _tightest(results, charged)
    return Decision(
        allowed=charged,
        limit=binding.limit if binding else 0,
        remaining=binding.remaining if binding else 0,
        reset_after=binding.reset_after if binding else 0.0,
        retry_after=binding.retry_after if binding and not charged else 0.0,
        now=now_us / US,
        results=results,
        policy_revision=policy_revision,
    )


class Backend:
    """Counter storage. Subclasses implement ``check``; ``now`` is for tests only."""

    def __init__(self, config):
        self.config = config

    def check(self, specs, cost=1, now=None):
        """Check and, if every enforced limit allows, charge all ``specs`` atomically.

        ``specs`` is a sequence of LimitSpec with distinct keys; ``now`` (integer
        microseconds) overrides the store's clock in tests. Returns a Decision or
        raises BackendUnavailable.
        """
        raise NotImplementedError

    def record_failures(self, counters, now=None):
        """Count one failure on each FailureCounter atomically; returns
        ``(now_us, [FailureResult, ...])``. ``now`` (microseconds) is for tests only."""
        raise NotImplementedError

    def clear(self, keys):
        """Forget the state of ``keys`` (used when an operator lifts a ban)."""
        raise NotImplementedError

    def publish_revision(self, number, only_if_missing=False):
        """Make a new policy revision known to every process, if this store can; the
        default cannot, and processes then poll the database."""


def key_base(config):
    """The start of every counter key: the prefix, then the Redis Cluster hash tag."""
    return f"{config['KEY_PREFIX']}:{{{config['HASH_TAG']}}}"


def validate_specs(specs, cost):
    """Reject requests the algorithms cannot express."""
    if cost < 1:
        raise ValueError("A request costs at least 1.")
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError("Two limits of one request share a key.")
