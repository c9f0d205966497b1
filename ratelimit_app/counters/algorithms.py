"""Pure limit algorithms: integer microseconds, the clock passed in, no I/O, O(1) state.

Every function takes the stored state (a tuple, or None for a fresh key), the time
``now`` in integer microseconds, a ``LimitSpec`` and a cost, and returns an
``Outcome``. Integer arithmetic keeps the Lua scripts (whose numbers are doubles)
bit-for-bit equal to this reference as long as values stay below 2**53, which the
model validation guarantees (rate x period <= MAX_RATE_PERIOD_PRODUCT).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

US = 1_000_000
GCRA = "gcra"
SLIDING_WINDOW = "sliding_window"
FIXED_WINDOW = "fixed_window"
# Not a limit but a ban check: denies while a ban recorded under the key is in force.
BAN = "ban"
ALGORITHMS = (GCRA, SLIDING_WINDOW, FIXED_WINDOW, BAN)
# rate x period (seconds) stays below this so that every product of the algorithms fits
# in 2**53, exact in Lua's doubles (and a rolling window's count fits in 32 bits).
MAX_RATE_PERIOD_PRODUCT = 4_000_000_000
# The rolling window's sub-windows per period (k): a request counts at most period / k
# longer than the period, and a ring holds k + 1 counts.
SUBWINDOWS = 10
# A key's stored state: a tuple of integers, its shape set by the algorithm.
State = tuple[int, ...]


@dataclass(frozen=True)
class LimitSpec:
    """One limit applied to one key: the counter's identity and its numbers."""

    key: str
    algorithm: str
    rate: int
    period: int
    burst: int | None = None
    shadow: bool = False
    name: str = ""
    # BAN only: each attempt during a ban starts the cooldown (``period``) again.
    extend: bool = False

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"Unknown algorithm {self.algorithm!r}; use one of {ALGORITHMS}.")
        if self.rate < 1 or self.period < 1:
            raise ValueError("A limit needs a rate and a period of at least 1.")
        if self.rate * self.period > MAX_RATE_PERIOD_PRODUCT:
            raise ValueError("rate x period is too large for exact counting.")

    @property
    def period_us(self) -> int:
        return self.period * US

    @property
    def capacity(self) -> int:
        """Requests allowed at once from an empty state: the burst for GCRA, else the rate."""
        if self.algorithm == GCRA:
            return self.burst or self.rate
        return self.rate

    @property
    def emission_us(self) -> int:
        """GCRA: microseconds one request occupies, rounded up (never more generous)."""
        return -(-self.period_us // self.rate)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One limit's verdict; ``state`` and ``ttl_us`` are what to store if charged."""

    allowed: bool
    limit: int
    remaining: int
    reset_after_us: int
    retry_after_us: int
    state: State | None
    ttl_us: int


def gcra(state: State | None, now: int, spec: LimitSpec, cost: int) -> Outcome:
    """Generic cell rate algorithm: state is (theoretical arrival time,)."""
    interval = spec.emission_us
    burst = spec.capacity
    burst_offset = interval * burst
    tat = max(state[0], now) if state else now
    new_tat = tat + interval * cost
    allow_at = new_tat - burst_offset
    if cost > burst or allow_at > now:
        retry = spec.period_us if cost > burst else allow_at - now
        remaining = max(0, (burst_offset - (tat - now)) // interval)
        return Outcome(False, burst, remaining, tat - now, retry, None, 0)
    remaining = (burst_offset - (new_tat - now)) // interval
    return Outcome(True, burst, remaining, new_tat - now, 0, (new_tat,), new_tat - now)


def _ring_expiries(last: int, window: int) -> list[int]:
    """When each slot of a ring last charged at ``last`` stops counting, oldest first.

    Slot ``i < k`` holds sub-window ``b - k + i`` (``b`` the sub-window of ``last``): its
    requests may have come up to its end, so it counts until its end plus the window.
    The newest slot's requests all came by ``last``: it counts until ``last + window``.
    """
    size = window // SUBWINDOWS
    newest = last // size
    return [(newest + i + 1) * size for i in range(SUBWINDOWS)] + [last + window]


def _live_ring(state: State | None, now: int, window: int) -> tuple[int, int, list[int], list[int]]:
    """(last, at, counts, expiries) of a stored ring as seen at ``now``.

    ``at`` is the time the check runs at: never before the last admission (a clock that
    stepped back does not resurrect expired slots). A state more than a window in the
    future is not believed and reads as empty. Slots expired by ``at`` read as 0.
    """
    if not state or state[0] > now + window:
        return now, now, [0] * (SUBWINDOWS + 1), _ring_expiries(now, window)
    last = state[0]
    at = max(now, last)
    expiries = _ring_expiries(last, window)
    stored = zip(state[1:], expiries, strict=True)
    counts = [count if expiry > at else 0 for count, expiry in stored]
    return last, at, counts, expiries


def _ring_wait(counts: list[int], expiries: list[int], excess: int) -> int:
    """The time at which slots holding at least ``excess`` requests have expired."""
    freed = 0
    for count, expiry in zip(counts, expiries, strict=True):
        freed += count
        if freed >= excess:
            return expiry
    raise ValueError("More requests to free than the ring holds.")


def _ring_reset(counts: list[int], expiries: list[int], at: int) -> int:
    """Microseconds from ``at`` until no slot counts any more (0 if none does)."""
    live = [expiry for count, expiry in zip(counts, expiries, strict=True) if count]
    return max(live) - at if live else 0


def _shift(counts: list[int], last: int, at: int, window: int) -> list[int]:
    """The ring moved on from the sub-window of ``last`` to that of ``at``."""
    size = window // SUBWINDOWS
    moved = at // size - last // size
    return [counts[i + moved] if i + moved <= SUBWINDOWS else 0 for i in range(SUBWINDOWS + 1)]


def sliding_window(state: State | None, now: int, spec: LimitSpec, cost: int) -> Outcome:
    """A rolling window: at most ``rate`` requests in any interval of ``period``.

    State is ``(last, c_0, ..., c_k)``: the time of the last admission and the counts of
    the k + 1 sub-windows of ``period / k`` (k = SUBWINDOWS) ending with the one of
    ``last``, oldest first. A request counts from its admission until ``period`` after
    the end of its sub-window, or ``period`` after ``last`` if it is in the newest one;
    a request of ``cost`` is admitted when the counting requests plus ``cost`` are at
    most ``rate``. Hence, exactly:

    - at most ``rate`` requests are admitted in any interval ``(t - period, t]``, for
      every t, not only at sub-window edges (a request counts for at least ``period``
      after it was admitted);
    - a request at t is admitted whenever the requests admitted in
      ``(t - period - period / k, t]`` number at most ``rate - cost`` (none counts
      longer): the precision;
    - ``reset_after`` is the time until no request counts, never beyond ``period``;
      ``retry_after`` the time until enough of them stop counting for ``cost`` more.
    """
    window, rate = spec.period_us, spec.rate
    last, at, counts, expiries = _live_ring(state, now, window)
    used = sum(counts)
    if cost > rate or used + cost > rate:
        retry = window if cost > rate else _ring_wait(counts, expiries, used + cost - rate) - at
        reset = _ring_reset(counts, expiries, at)
        return Outcome(False, rate, max(0, rate - used), reset, retry, None, 0)
    ring = _shift(counts, last, at, window)
    ring[-1] += cost
    # Stored until the newest request stops counting; ``at`` may be after ``now``.
    ttl = at + window - now
    return Outcome(True, rate, rate - used - cost, window, 0, (at, *ring), ttl)


def fixed_window(state: State | None, now: int, spec: LimitSpec, cost: int) -> Outcome:
    """A counter per window: state is (window index, count)."""
    window, rate = spec.period_us, spec.rate
    index, elapsed = divmod(now, window)
    count = state[1] if state and state[0] == index else 0
    to_end = window - elapsed
    if cost > rate or count + cost > rate:
        retry = window if cost > rate else to_end
        return Outcome(False, rate, rate - count, to_end if count else 0, retry, None, 0)
    count += cost
    return Outcome(True, rate, rate - count, to_end, 0, (index, count), to_end)


def ban(state: State | None, now: int, spec: LimitSpec, cost: int) -> Outcome:
    """A ban check: state is (banned_at, expires_at), written when failures reach a threshold.

    Denies until ``expires_at``; with ``spec.extend`` each attempt restarts the cooldown.
    Reports ``rate`` (the rule's threshold) as its limit.
    """
    if not state or state[1] <= now:
        return Outcome(True, spec.rate, spec.rate, 0, 0, None, 0)
    expires_at = now + spec.period_us if spec.extend else state[1]
    new_state = (state[0], expires_at) if spec.extend else None
    wait = expires_at - now
    return Outcome(False, spec.rate, 0, wait, wait, new_state, wait)


Algorithm = Callable[[State | None, int, LimitSpec, int], Outcome]
ALGORITHM_FUNCTIONS: dict[str, Algorithm] = {
    GCRA: gcra,
    SLIDING_WINDOW: sliding_window,
    FIXED_WINDOW: fixed_window,
    BAN: ban,
}


def evaluate(
    specs: Sequence[LimitSpec], states: Sequence[State | None], now: int, cost: int
) -> tuple[list[Outcome], bool]:
    """Outcomes of every limit for one request; ``charged`` says whether to store them.

    All or nothing: if any non-shadow limit denies, nothing is charged. A ban check's
    state (an extended ban) is stored either way: see ``writes``.
    """
    outcomes: list[Outcome] = []
    charged = True
    for spec, state in zip(specs, states, strict=True):
        outcome = ALGORITHM_FUNCTIONS[spec.algorithm](state, now, spec, cost)
        outcomes.append(outcome)
        charged = charged and (outcome.allowed or spec.shadow)
    return outcomes, charged


def writes(
    specs: Sequence[LimitSpec], outcomes: Sequence[Outcome], charged: bool
) -> list[tuple[LimitSpec, Outcome]]:
    """The (spec, outcome) pairs whose new state is stored after ``evaluate``."""
    return [
        (spec, outcome)
        for spec, outcome in zip(specs, outcomes, strict=True)
        if outcome.state is not None and (charged or spec.algorithm == BAN)
    ]
