"""Random workloads give, on each backend, exactly the decisions of the pure reference."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratelimit_app.counters.algorithms import SUBWINDOWS, US, LimitSpec, evaluate
from ratelimit_app.counters.base import make_decision
from tests.counters_support import make_backend, unique_key

T0 = 1_800_000_000 * US + 123_457

LIMITS = st.lists(
    st.one_of(
        st.tuples(
            st.just("gcra"),
            st.integers(1, 600),
            st.sampled_from([1, 10, 60]),
            st.integers(1, 20),
        ),
        st.tuples(
            st.sampled_from(["sliding_window", "fixed_window"]),
            st.integers(1, 30),
            st.sampled_from([1, 10, 60]),
            st.none(),
        ),
    ),
    min_size=1,
    max_size=4,
)
WORKLOAD = st.lists(
    st.tuples(
        st.integers(0, 3 * US),
        st.integers(1, 4),
        st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
        st.booleans(),
    ),
    max_size=40,
)


def figures(decision):
    return (
        decision.allowed,
        decision.now,
        [(r.allowed, r.limit, r.remaining, r.reset_after, r.retry_after) for r in decision.results],
    )


@pytest.mark.parametrize("name", ["memory", pytest.param("redis", marks=pytest.mark.services)])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits=LIMITS, workload=WORKLOAD)
def test_backend_matches_the_pure_reference(name, limits, workload):
    backend = make_backend(name)
    specs = [
        LimitSpec(unique_key(str(i)), algo, rate, period, burst, shadow=False)
        for i, (algo, rate, period, burst) in enumerate(limits)
    ]
    reference, now = {}, T0
    for step, cost, picks, shadow_first in workload:
        now += step
        chosen = [specs[i % len(specs)] for i in dict.fromkeys(p % len(specs) for p in picks)]
        if shadow_first:
            first = chosen[0]
            chosen[0] = LimitSpec(
                first.key, first.algorithm, first.rate, first.period, first.burst, shadow=True
            )
        states = [reference.get(s.key) for s in chosen]
        outcomes, charged = evaluate(chosen, states, now, cost)
        if charged:
            for spec, outcome in zip(chosen, outcomes, strict=True):
                if outcome.state is not None:
                    reference[spec.key] = outcome.state
        expected = make_decision(chosen, outcomes, charged, now, cost)
        assert figures(backend.check(chosen, cost=cost, now=now)) == figures(expected)
        keep_in_made_up_time(backend, chosen)


def keep_in_made_up_time(backend, specs):
    """Redis expires a key after its TTL in real time, while this test's clock is made
    up: on a busy machine a 7 ms TTL ran out between two checks at the same made-up
    instant. The answers never depend on the expiry (a state past its time reads as
    empty; `test_every_key_has_a_ttl` holds the TTLs), so the keys are kept here."""
    client = getattr(backend, "client", None)
    if client is not None:
        for spec in specs:
            client.persist(spec.key)


# A rolling window (sliding_window's docstring) over adversarial schedules: at most N in
# any interval of the period; a request refused only when more than N - cost came in the
# trailing period + period / k; Reset and Retry-After never beyond the period.
WINDOW_RATES = st.one_of(st.integers(1, 40), st.sampled_from([3_000, 300_000]))
WINDOW_PERIODS = st.sampled_from([1, 10, 60])
# Each step moves the clock, then sends a burst: a random gap; the m-th next sub-window
# edge, 1 µs early, on it or 1 µs late; or a steady trickle (n requests, a gap apart).
TIMING = st.one_of(
    st.tuples(st.just("gap"), st.integers(0, 2_000), st.just(0)),
    st.tuples(st.just("edge"), st.integers(1, 12), st.sampled_from([-1, 0, 1])),
    st.tuples(st.just("trickle"), st.integers(2, 30), st.integers(1, 150)),
)
SCHEDULE = st.lists(
    st.tuples(TIMING, st.integers(1, 40), st.integers(1, 100)), min_size=1, max_size=25
)


def request_times(now, timing, size):
    """The times of one step's bursts: ``size`` is a sub-window; gaps are in thousandths
    of a sub-window (a trickle's) or of ten sub-windows (a random gap)."""
    kind, amount, nudge = timing
    if kind == "gap":
        return [now + amount * size // 100]
    if kind == "edge":
        return [max(now, (now // size + amount) * size + nudge)]
    return [now + (i + 1) * nudge * size // 1000 for i in range(amount)]


def admitted_between(admitted, start, end):
    """The cost admitted at times in (start, end]."""
    return sum(cost for at, cost in admitted if start < at <= end)


@pytest.mark.parametrize("name", ["memory", pytest.param("redis", marks=pytest.mark.services)])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rate=WINDOW_RATES, period=WINDOW_PERIODS, schedule=SCHEDULE)
def test_rolling_window_admits_at_most_its_rate_in_any_period(name, rate, period, schedule):
    backend = make_backend(name)
    spec = LimitSpec(unique_key("w"), "sliding_window", rate, period)
    window, size = period * US, period * US // SUBWINDOWS
    admitted, clock = [], T0
    for timing, burst, percent in schedule:
        cost = max(1, rate * percent // 400)  # up to a quarter of the rate per request
        for now in request_times(clock, timing, size):
            clock = now
            for _ in range(burst):
                decision = backend.check([spec], cost=cost, now=now)
                assert decision.reset_after * US <= window
                assert decision.retry_after * US <= window
                if not decision.allowed:
                    assert admitted_between(admitted, now - window - size, now) + cost > rate
                    break  # the rest of this burst is refused alike
                admitted.append((now, cost))
    for at, _cost in admitted:
        assert admitted_between(admitted, at - window, at) <= rate


@pytest.mark.parametrize("name", ["memory", pytest.param("redis", marks=pytest.mark.services)])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limit=st.sampled_from([(3_000, 60), (300_000, 60), (4_000_000_000, 1)]),
    steps=st.lists(st.tuples(TIMING, st.integers(1, 100)), min_size=1, max_size=20),
)
def test_rolling_window_matches_the_reference_at_large_rates(name, limit, steps):
    """Counts of up to 32 bits survive check.lua's bit-packed ring exactly."""
    backend = make_backend(name)
    spec = LimitSpec(unique_key("big"), "sliding_window", *limit)
    state, clock, size = None, T0, spec.period_us // SUBWINDOWS
    for timing, percent in steps:
        cost = max(1, spec.rate * percent // 300)
        for now in request_times(clock, timing, size):
            clock = now
            outcomes, charged = evaluate([spec], [state], now, cost)
            state = outcomes[0].state if charged else state
            expected = make_decision([spec], outcomes, charged, now, cost)
            assert figures(backend.check([spec], cost=cost, now=now)) == figures(expected)
