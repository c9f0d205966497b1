"""The backend interface and the Decision every surface reads."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ratelimit_app.counters.algorithms import BAN, US, LimitSpec, Outcome
from ratelimit_app.counters.failures import FailureCounter, FailureResult


class BackendUnavailable(Exception):
    """The counter store could not answer (refused, timed out, or the breaker is open).

    ``kind`` names the failure in a few words fit for a metric label: the client
    library's exception class (``ConnectionError``, ``TimeoutError``...) or
    ``breaker_open``; never an address or a key.
    """

    def __init__(self, message: str, kind: str = "unavailable") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class LimitResult:
    """One limit's figures for one request, in seconds."""

    spec: LimitSpec
    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float


FIELDS = 5  # per limit: allowed (0/1), limit, remaining, reset_after_us, retry_after_us


class Decision:
    """The verdict on one request: allowed?, and the figures of the tightest limit.

    Built from the flat per-limit ``figures`` the counter store returns (``FIELDS``
    integers per spec); the per-limit LimitResults are made only when asked for, since
    most requests need the tightest limit's figures alone (for the headers).
    """

    __slots__ = (
        "allowed",
        "limit",
        "remaining",
        "reset_after",
        "retry_after",
        "now",
        "policy_revision",
        "_specs",
        "_figures",
        "_cost",
        "_binding",
        "_results",
    )

    def __init__(
        self,
        specs: Sequence[LimitSpec],
        figures: Sequence[int],
        charged: bool | int,
        now_us: int,
        cost: int = 1,
        policy_revision: int | None = None,
    ) -> None:
        self.allowed = bool(charged)
        self.now = now_us / US
        # The policy revision the counter store knows of: None if it cannot tell (process
        # memory), 0 if it has none (Redis after a flush or restart).
        self.policy_revision = policy_revision
        self._specs, self._figures, self._cost = specs, figures, cost
        self._results: tuple[LimitResult, ...] | None = None
        self._binding = index = _tightest(specs, figures, self.allowed)
        if index is None:
            self.limit, self.remaining, self.reset_after, self.retry_after = 0, 0, 0.0, 0.0
            return
        at = index * FIELDS
        # The binding limit is charged, or is the one that denied: its figures stand as sent.
        self.limit, self.remaining = figures[at + 1], figures[at + 2]
        self.reset_after = figures[at + 3] / US
        self.retry_after = 0.0 if self.allowed else figures[at + 4] / US

    @property
    def results(self) -> tuple[LimitResult, ...]:
        """Every limit's LimitResult, in the order of the specs."""
        if self._results is None:
            self._results = tuple(_result(self, i) for i in range(len(self._specs)))
        return self._results

    @property
    def binding(self) -> LimitResult | None:
        """The result whose figures the headers show (None: only ban checks, all clear)."""
        if self._binding is None:
            return None
        if self._results is None:
            # That limit's alone: metrics ask for it on every request, the others' are
            # seldom needed.
            return _result(self, self._binding)
        return self._results[self._binding]

    def figures(self) -> Iterator[tuple[LimitSpec, bool, int, int]]:
        """(spec, allowed, limit, remaining) of every limit as the store sent them, without
        the LimitResults (metrics read them on every request); ``results`` gives a limit
        a denial by another did not charge its remaining back."""
        figures = self._figures
        for index, spec in enumerate(self._specs):
            at = index * FIELDS
            yield spec, figures[at] == 1, figures[at + 1], figures[at + 2]


def _result(decision: Decision, index: int) -> LimitResult:
    figures, at = decision._figures, index * FIELDS
    allowed, limit, remaining = figures[at] == 1, figures[at + 1], figures[at + 2]
    if allowed and not decision.allowed:
        # Denied by another limit: this one was not charged after all.
        remaining = min(limit, remaining + decision._cost)
    return LimitResult(
        spec=decision._specs[index],
        allowed=allowed,
        limit=limit,
        remaining=remaining,
        reset_after=figures[at + 3] / US,
        retry_after=figures[at + 4] / US,
    )


def _tightest(specs: Sequence[LimitSpec], figures: Sequence[int], allowed: bool) -> int | None:
    """Index of the limit the headers report: the denying limit with the longest wait,
    else the enforced limit with the fewest requests left (ban checks aside).

    Shadow limits count only when every limit is a shadow. A plain loop: this runs for
    every request.
    """
    best: int | None = None
    best_rank: Any = None  # an int when denied, else a tuple: never mixed
    enforced_only = not all(spec.shadow for spec in specs)
    for index, spec in enumerate(specs):
        if enforced_only and spec.shadow:
            continue
        at = index * FIELDS
        rank: int | tuple[int, int]
        if not allowed:
            if figures[at] == 1:
                continue
            rank = -figures[at + 4]  # the longest wait
        elif spec.algorithm == BAN:
            continue
        else:
            rank = (figures[at + 2], -figures[at + 3])  # fewest left, then latest reset
        if best_rank is None or rank < best_rank:
            best, best_rank = index, rank
    return best


def make_decision(
    specs: Sequence[LimitSpec],
    outcomes: Sequence[Outcome],
    charged: bool,
    now_us: int,
    cost: int,
    policy_revision: int | None = None,
) -> Decision:
    """Build a Decision from per-limit Outcomes (microseconds) of one request."""
    figures: list[int] = []
    for outcome in outcomes:
        figures += (
            1 if outcome.allowed else 0,
            outcome.limit,
            outcome.remaining,
            outcome.reset_after_us,
            outcome.retry_after_us,
        )
    if len(figures) != FIELDS * len(specs):
        raise ValueError("One outcome per spec is needed.")
    return Decision(specs, figures, charged, now_us, cost, policy_revision)


class Backend:
    """Counter storage. Subclasses implement ``check``; ``now`` is for tests only."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def check(self, specs: Sequence[LimitSpec], cost: int = 1, now: int | None = None) -> Decision:
        """Check and, if every enforced limit allows, charge all ``specs`` atomically.

        ``specs`` is a sequence of LimitSpec with distinct keys; ``now`` (integer
        microseconds) overrides the store's clock in tests. Returns a Decision or
        raises BackendUnavailable.
        """
        raise NotImplementedError

    def peek(self, specs: Sequence[LimitSpec], now: int | None = None) -> Decision:
        """The Decision a cost-1 request for ``specs`` would get now, charging nothing
        (the operators' preview). Raises BackendUnavailable like ``check``."""
        raise NotImplementedError

    def record_failures(
        self, counters: Sequence[FailureCounter], now: int | None = None
    ) -> tuple[int, list[FailureResult]]:
        """Count one failure on each FailureCounter atomically; returns
        ``(now_us, [FailureResult, ...])``. ``now`` (microseconds) is for tests only."""
        raise NotImplementedError

    def clear(self, keys: Sequence[str]) -> None:
        """Forget the state of ``keys`` (used when an operator lifts a ban)."""
        raise NotImplementedError

    def publish_revision(self, number: int, only_if_missing: bool = False) -> None:
        """Make a new policy revision known to every process, if this store can (never
        moving the published number backwards); the default cannot, and processes then
        poll the database."""

    def published_revision(self) -> int | None:
        """The policy revision this store was told of (0: none, after a flush or restart),
        or None if this store cannot tell of revisions (processes poll the database)."""
        return None


def key_base(config: dict[str, Any]) -> str:
    """The start of every counter key: the prefix (a party's hash tag comes next)."""
    return str(config["KEY_PREFIX"])


def party_key(base: str, party: str, name: str) -> str:
    """A counter key of one party: ``base``, the party's Redis Cluster hash tag, ``name``.

    Every key of a party (a tenant, an API key, a token, an address, a credential pair)
    carries the same tag, so a cluster keeps a party's keys in one slot while spreading
    parties over its shards. ``party`` is a keyed hash, never a raw identifier.
    """
    return f"{base}:{{{party}}}:{name}"


def validate_specs(specs: Sequence[LimitSpec], cost: int) -> None:
    """Reject requests the algorithms cannot express."""
    if cost < 1:
        raise ValueError("A request costs at least 1.")
    if len(specs) > 1 and len({s.key for s in specs}) != len(specs):
        raise ValueError("Two limits of one request share a key.")
