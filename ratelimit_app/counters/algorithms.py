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
# rate x period (seconds) stays below this so that every product of the sliding window
# (rate x period in microseconds, twice) fits in 2**53, exact in Lua's doubles.
MAX_RATE_PERIOD_PRODUCT = 4_000_000_000
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


def _roll(state: State | None, index: int) -> tuple[int, int]:
    """Sliding window counts (previous, current) as seen from window ``index``."""
    if not state:
        return 0, 0
    stored_index, previous, current = state
    if stored_index == index:
        return previous, current
    if stored_index == index - 1:
        return current, 0
    return 0, 0


def _sliding_retry(
    previous: int, current: int, elapsed: int, window: int, rate: int, cost: int
) -> int:
    """Microseconds until a request of ``cost`` fits, given it does not fit now."""
    if cost > rate:
        return window
    if current + cost <= rate:
        # Wait inside this window until the previous window's weight has decayed enough.
        fits_at = window - ((rate - current - cost) * window) // previous
        return fits_at - elapsed
    # Wait for the next window, where the current count becomes the decaying one.
    fits_at = window - ((rate - cost) * window) // current
    return window - elapsed + fits_at


def sliding_window(state: State | None, now: int, spec: LimitSpec, cost: int) -> Outcome:
    """Weighted two-window counter: state is (window index, previous count, current count)."""
    window, rate = spec.period_us, spec.rate
    index, elapsed = divmod(now, window)
    previous, current = _roll(state, index)
    used = previous * (window - elapsed) + current * window  # the estimate, times window
    if cost > rate or used + cost * window > rate * window:
        retry = _sliding_retry(previous, current, elapsed, window, rate, cost)
        remaining = max(0, (rate * window - used) // window)
        reset = _sliding_reset(previous, current, elapsed, window)
        return Outcome(False, rate, remaining, reset, retry, None, 0)
    current += cost
    used += cost * window
    remaining = (rate * window - used) // window
    reset = _sliding_reset(previous, current, elapsed, window)
    return Outcome(
        True, rate, remaining, reset, 0, (index, previous, current), 2 * window - elapsed
    )


def _sliding_reset(previous: int, current: int, elapsed: int, window: int) -> int:
    if current:
        return 2 * window - elapsed
    if previous:
        return window - elapsed
    return 0


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
    outcomes = [
        ALGORITHM_FUNCTIONS[spec.algorithm](state, now, spec, cost)
        for spec, state in zip(specs, states, strict=True)
    ]
    charged = all(o.allowed or s.shadow for s, o in zip(specs, outcomes, strict=True))
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
