"""The pure algorithms, with the clock passed in."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimit_app.counters.algorithms import (
    FIXED_WINDOW,
    GCRA,
    SLIDING_WINDOW,
    US,
    LimitSpec,
    evaluate,
    fixed_window,
    gcra,
    sliding_window,
)

T0 = 1_700_000_000 * US


def run(func, spec, times, cost=1):
    """Feed requests at ``times``; return the outcomes, charging allowed ones."""
    state, outcomes = None, []
    for now in times:
        outcome = func(state, now, spec, cost)
        if outcome.allowed:
            state = outcome.state
        outcomes.append(outcome)
    return outcomes, state


def test_gcra_allows_the_burst_at_once_then_denies():
    spec = LimitSpec("k", GCRA, rate=300, period=60, burst=50)
    outcomes, _ = run(gcra, spec, [T0] * 51)
    assert [o.allowed for o in outcomes] == [True] * 50 + [False]
    assert [o.remaining for o in outcomes[:3]] == [49, 48, 47]
    assert outcomes[49].remaining == 0
    denied = outcomes[50]
    assert denied.limit == 50
    assert denied.retry_after_us == 200_000  # one emission interval: 60 s / 300
    assert denied.reset_after_us == 50 * 200_000  # back to empty after 50 intervals


def test_gcra_reset_after_is_the_time_until_empty():
    # 10 per second: each request occupies 100 ms of the limiter.
    spec = LimitSpec("k", GCRA, rate=10, period=1, burst=10)
    first = gcra(None, T0, spec, 1)
    assert (first.remaining, first.reset_after_us) == (9, 100_000)
    second = gcra(first.state, T0 + 20_000, spec, 1)
    assert (second.remaining, second.reset_after_us) == (8, 180_000)
    # Once the limiter has drained, it is back to its empty state.
    third = gcra(second.state, T0 + 300_000, spec, 1)
    assert (third.remaining, third.reset_after_us) == (9, 100_000)


def test_gcra_recovers_one_request_per_interval():
    spec = LimitSpec("k", GCRA, rate=60, period=60, burst=2)
    outcomes, state = run(gcra, spec, [T0, T0, T0])
    assert [o.allowed for o in outcomes] == [True, True, False]
    assert not gcra(state, T0 + US - 1, spec, 1).allowed
    assert gcra(state, T0 + US, spec, 1).allowed


# The rolling window (sliding_window's docstring): 10 per 60 s has sub-windows of 6 s. A
# request counts until 60 s after the end of its sub-window, or 60 s after the last
# admission if it is in that one. MINUTE starts a minute, hence a sub-window.
MINUTE = 1_700_000_040 * US


def test_rolling_window_burst_then_trickle_admits_nothing_until_the_burst_is_a_window_old():
    spec = LimitSpec("k", SLIDING_WINDOW, rate=10, period=60)
    outcomes, state = run(sliding_window, spec, [MINUTE] * 11)
    assert [o.remaining for o in outcomes[:10]] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert all(o.allowed and o.reset_after_us == 60 * US for o in outcomes[:10])
    denied = outcomes[10]
    assert (denied.allowed, denied.limit, denied.remaining) == (False, 10, 0)
    assert denied.retry_after_us == denied.reset_after_us == 60 * US
    # One every 2 s (the schedule): all ten still count until MINUTE + 60 s.
    for second in range(2, 60, 2):
        late = sliding_window(state, MINUTE + second * US, spec, 1)
        assert (late.allowed, late.retry_after_us) == (False, (60 - second) * US)
    assert not sliding_window(state, MINUTE + 60 * US - 1, spec, 1).allowed
    fresh = sliding_window(state, MINUTE + 60 * US, spec, 1)
    assert (fresh.allowed, fresh.remaining, fresh.reset_after_us) == (True, 9, 60 * US)


def test_rolling_window_holds_an_older_sub_window_until_its_end_plus_the_window():
    spec = LimitSpec("k", SLIDING_WINDOW, rate=10, period=60)
    times = [MINUTE + US] * 5 + [MINUTE + 7 * US] * 5
    outcomes, state = run(sliding_window, spec, times)
    assert [o.remaining for o in outcomes] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    # The five of [0 s, 6 s) count until 66 s; the five at 7 s until 67 s.
    at_61 = sliding_window(state, MINUTE + 61 * US, spec, 1)
    assert (at_61.allowed, at_61.remaining) == (False, 0)
    assert (at_61.retry_after_us, at_61.reset_after_us) == (5 * US, 6 * US)
    at_66 = sliding_window(state, MINUTE + 66 * US, spec, 1)
    assert (at_66.allowed, at_66.remaining, at_66.reset_after_us) == (True, 4, 60 * US)


def test_rolling_window_retry_after_waits_for_enough_sub_windows_to_leave():
    spec = LimitSpec("k", SLIDING_WINDOW, rate=10, period=60)
    times = [MINUTE] * 3 + [MINUTE + 6 * US] * 3 + [MINUTE + 13 * US] * 4
    _, state = run(sliding_window, spec, times)
    # Cost 5 needs 5 freed: the 3 of [0, 6 s) leave at 66 s, the 3 of [6, 12 s) at 72 s.
    five = sliding_window(state, MINUTE + 30 * US, spec, 5)
    assert (five.allowed, five.remaining, five.retry_after_us) == (False, 0, 42 * US)
    assert five.reset_after_us == 43 * US  # the last admission (13 s) plus 60 s
    three = sliding_window(state, MINUTE + 66 * US, spec, 3)
    assert (three.allowed, three.remaining) == (True, 0)  # 3 + 4 left, plus 3
    eleven = sliding_window(None, MINUTE, spec, 11)
    assert (eleven.allowed, eleven.retry_after_us) == (False, 60 * US)


def test_rolling_window_state_is_bounded_and_ignores_a_clock_stepping_back():
    spec = LimitSpec("k", SLIDING_WINDOW, rate=300_000, period=60)
    times = [MINUTE + second * US for second in range(0, 120, 3)]
    _, state = run(sliding_window, spec, times, cost=7_000)
    assert state is not None and len(state) == 12  # the last admission and 11 counts
    # 20 s back: the check runs at the last admission's time, 117 s.
    back = sliding_window(state, MINUTE + 97 * US, spec, 1)
    ahead = sliding_window(state, MINUTE + 117 * US, spec, 1)
    assert back.allowed and (back.remaining, back.reset_after_us) == (ahead.remaining, 60 * US)
    assert back.state == ahead.state  # charged at 117 s, not at 97 s
    assert back.ttl_us == 80 * US  # kept until 60 s after 117 s


def test_fixed_window_resets_at_the_boundary():
    spec = LimitSpec("k", FIXED_WINDOW, rate=3, period=10)
    start = (T0 // (10 * US)) * 10 * US
    outcomes, state = run(fixed_window, spec, [start + 1] * 4)
    assert [o.allowed for o in outcomes] == [True, True, True, False]
    assert outcomes[3].retry_after_us == 10 * US - 1
    assert fixed_window(state, start + 10 * US, spec, 1).allowed


@pytest.mark.parametrize(
    "spec",
    [
        LimitSpec("k", GCRA, rate=10, period=60, burst=5),
        LimitSpec("k", SLIDING_WINDOW, rate=5, period=60),
        LimitSpec("k", FIXED_WINDOW, rate=5, period=60),
    ],
)
def test_a_cost_above_capacity_is_always_denied(spec):
    outcome = {GCRA: gcra, SLIDING_WINDOW: sliding_window, FIXED_WINDOW: fixed_window}[
        spec.algorithm
    ](None, T0, spec, 6)
    assert not outcome.allowed
    assert outcome.retry_after_us > 0


def test_evaluate_charges_nothing_when_one_limit_denies():
    tight = LimitSpec("a", FIXED_WINDOW, rate=1, period=60)
    loose = LimitSpec("b", FIXED_WINDOW, rate=100, period=60)
    outcomes, charged = evaluate([tight, loose], [(T0 // (60 * US), 1), None], T0, 1)
    assert not charged
    assert outcomes[1].allowed


def test_shadow_limits_never_deny():
    shadow = LimitSpec("a", FIXED_WINDOW, rate=1, period=60, shadow=True)
    outcomes, charged = evaluate([shadow], [(T0 // (60 * US), 1)], T0, 1)
    assert charged and not outcomes[0].allowed


SPECS = st.one_of(
    st.builds(
        LimitSpec,
        key=st.just("k"),
        algorithm=st.just(GCRA),
        rate=st.integers(1, 3000),
        period=st.sampled_from([1, 7, 60, 3600]),
        burst=st.integers(1, 500),
    ),
    st.builds(
        LimitSpec,
        key=st.just("k"),
        algorithm=st.sampled_from([SLIDING_WINDOW, FIXED_WINDOW]),
        rate=st.integers(1, 3000),
        period=st.sampled_from([1, 7, 60, 3600]),
    ),
)
FUNCS = {GCRA: gcra, SLIDING_WINDOW: sliding_window, FIXED_WINDOW: fixed_window}


@settings(max_examples=300, deadline=None)
@given(
    spec=SPECS,
    steps=st.lists(st.tuples(st.integers(0, 5 * US), st.integers(1, 5)), max_size=60),
    cost=st.integers(1, 5),
)
def test_retry_after_is_exact(spec, steps, cost):
    """When denied, the request is still denied 1 µs before Retry-After and allowed at it."""
    func, state, now = FUNCS[spec.algorithm], None, T0
    for step, step_cost in steps:
        now += step
        outcome = func(state, now, spec, step_cost)
        if outcome.allowed:
            state = outcome.state
    outcome = func(state, now, spec, cost)
    if outcome.allowed or cost > spec.capacity:
        return
    retry = outcome.retry_after_us
    assert retry > 0
    assert not func(state, now + retry - 1, spec, cost).allowed
    assert func(state, now + retry, spec, cost).allowed


@settings(max_examples=200, deadline=None)
@given(spec=SPECS, steps=st.lists(st.integers(0, 2 * US), max_size=80))
def test_remaining_counts_requests_allowed_at_once(spec, steps):
    """``remaining`` requests pass at the same instant, and one more does not."""
    func, state, now = FUNCS[spec.algorithm], None, T0
    for step in steps:
        now += step
        outcome = func(state, now, spec, 1)
        if outcome.allowed:
            state = outcome.state
    probe = func(state, now, spec, 1)
    if not probe.allowed:
        assert probe.remaining == 0
        return
    remaining = probe.remaining
    allowed_now = 0
    while True:
        outcome = func(state, now, spec, 1)
        if not outcome.allowed:
            break
        state, allowed_now = outcome.state, allowed_now + 1
    assert allowed_now == remaining + 1  # the probe itself, then `remaining` more


# Exact examples from the definitions (tenant-api-group-tiers.md's burst and reset,
# GCRA's conformance test TAT + n*T - tau <= now, a counter per fixed window, and a
# ban's cooldown), computed by hand, not read from the code.


def test_gcra_with_a_cost_above_one():
    # 10 per second, burst 10: T = 100 ms per request, tau = 10 x T = 1 s.
    spec = LimitSpec("k", GCRA, rate=10, period=1, burst=10)
    four = gcra(None, T0, spec, 4)  # TAT becomes T0 + 400 ms
    assert (four.allowed, four.remaining, four.reset_after_us) == (True, 6, 400_000)
    seven = gcra(four.state, T0, spec, 7)  # needs T0 + 1.1 s - 1 s <= T0: 100 ms early
    assert (seven.allowed, seven.remaining, seven.retry_after_us) == (False, 6, 100_000)
    assert seven.reset_after_us == 400_000  # unchanged: a refusal charges nothing
    six = gcra(four.state, T0, spec, 6)  # exactly the rest of the burst
    assert (six.allowed, six.remaining, six.reset_after_us) == (True, 0, 1_000_000)
    eleven = gcra(None, T0, spec, 11)  # more than the burst can ever hold
    assert (eleven.allowed, eleven.retry_after_us) == (False, 1_000_000)


def test_fixed_window_exact_figures():
    # 3 per 10 s; T0 starts a window (1,700,000,000 is a multiple of 10).
    spec = LimitSpec("k", FIXED_WINDOW, rate=3, period=10)
    outcomes, state = run(fixed_window, spec, [T0 + 2 * US] * 4)
    assert [(o.allowed, o.remaining) for o in outcomes] == [
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 0),
    ]
    assert outcomes[0].reset_after_us == 8 * US  # to the end of the window
    assert outcomes[3].retry_after_us == 8 * US
    fresh = fixed_window(state, T0 + 10 * US, spec, 1)  # the next window: a new count
    assert (fresh.allowed, fresh.remaining, fresh.reset_after_us) == (True, 2, 10 * US)
    too_big = fixed_window(None, T0, spec, 4)
    assert (too_big.allowed, too_big.retry_after_us) == (False, 10 * US)


def test_ban_denies_until_its_expiry_and_extends_only_when_asked():
    from ratelimit_app.counters.algorithms import BAN, ban

    # token-endpoint-credential-bans.md: 5 failures ban the pair for 600 s.
    spec = LimitSpec("k", BAN, rate=5, period=600)
    banned = (T0, T0 + 600 * US)
    during = ban(banned, T0 + 100 * US, spec, 1)
    assert (during.allowed, during.limit, during.remaining) == (False, 5, 0)
    assert during.retry_after_us == during.reset_after_us == 500 * US
    assert during.state is None  # nothing to write: the ban runs as it was
    after = ban(banned, T0 + 600 * US, spec, 1)
    assert (after.allowed, after.limit, after.remaining) == (True, 5, 5)
    assert ban(None, T0, spec, 1).allowed
    extending = LimitSpec("k", BAN, rate=5, period=600, extend=True)
    again = ban(banned, T0 + 100 * US, extending, 1)
    assert again.retry_after_us == 600 * US  # the cooldown starts again
    assert again.state == (T0, T0 + 700 * US)


# The rolling window at its edges, as a table worked out by hand from the definition
# (per-key-rolling-windows.md, sliding_window's docstring): 10 per 60 s, sub-windows of
# 6 s; a request counts until 60 s after the end of its sub-window, or 60 s after the
# last admission when it is in that one; Reset is the time until none counts, never
# beyond 60 s. Rows: (admissions as (second, count), check at second, cost) ->
# (allowed, remaining, reset_after s, retry_after s).
S = US  # seconds, in microseconds
ROLLING_EDGES = [
    # Ten at 3 s, in the last admission's sub-window: they count until 63 s.
    ([(3, 10)], 63 - 1e-6, 1, (False, 0, 1e-6, 1e-6)),
    ([(3, 10)], 63, 1, (True, 9, 60, 0)),
    # Five at 3 s (sub-window [0, 6 s), counts until 66 s) and five at 7 s (until 67 s).
    ([(3, 5), (7, 5)], 65, 1, (False, 0, 2, 1)),
    ([(3, 5), (7, 5)], 66, 1, (True, 4, 60, 0)),
    ([(3, 5), (7, 5)], 66, 6, (False, 5, 1, 1)),  # six more wait for the five of 7 s
    ([(3, 5), (7, 5)], 67, 10, (True, 0, 60, 0)),
    # Four at 1 s (until 66 s) and six at 13 s, the last admission (until 73 s).
    ([(1, 4), (13, 6)], 64, 1, (False, 0, 9, 2)),
    ([(1, 4), (13, 6)], 66, 1, (True, 3, 60, 0)),
    ([(1, 4), (13, 6)], 66, 5, (False, 4, 7, 7)),
    # The precision: nine at 0.5 s still count at 60.5 s, until their sub-window's end
    # plus 60 s (66 s), at most 60 + 6 s after they came.
    ([(0.5, 9), (7, 1)], 60.5, 1, (False, 0, 6.5, 5.5)),
    ([(0.5, 9), (7, 1)], 66, 1, (True, 8, 60, 0)),
    # Room left: remaining counts the admitted ones and the cost.
    ([(0, 3), (30, 4)], 59, 1, (True, 2, 60, 0)),
    ([(0, 3), (30, 4)], 59, 3, (True, 0, 60, 0)),
    ([(0, 8)], 10, 3, (False, 2, 50, 50)),
    # A cost above the rate is never admitted: retry after a whole window; an empty
    # limiter is already at its reset.
    ([], 0, 11, (False, 10, 0, 60)),
    ([(0, 2)], 30, 11, (False, 8, 30, 60)),
]


@pytest.mark.parametrize("admissions, at, cost, expected", ROLLING_EDGES)
def test_rolling_window_at_its_edges(admissions, at, cost, expected):
    spec = LimitSpec("k", SLIDING_WINDOW, rate=10, period=60)
    times = [MINUTE + round(second * S) for second, count in admissions for _ in range(count)]
    outcomes, state = run(sliding_window, spec, times)
    assert all(o.allowed for o in outcomes)
    outcome = sliding_window(state, MINUTE + round(at * S), spec, cost)
    allowed, remaining, reset, retry = expected
    assert (outcome.allowed, outcome.limit, outcome.remaining) == (allowed, 10, remaining)
    assert (outcome.reset_after_us, outcome.retry_after_us) == (round(reset * S), round(retry * S))
    assert outcome.reset_after_us <= 60 * S  # Reset never beyond the window


def test_rolling_window_disbelieves_a_state_from_more_than_a_window_ahead():
    spec = LimitSpec("k", SLIDING_WINDOW, rate=10, period=60)
    full = (MINUTE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10)
    # A window ahead: believed (a clock a little behind another server's).
    assert not sliding_window(full, MINUTE - 60 * S, spec, 1).allowed
    # Further ahead: a clock gone wrong; the state reads as empty.
    fresh = sliding_window(full, MINUTE - 60 * S - 1, spec, 1)
    assert (fresh.allowed, fresh.remaining) == (True, 9)
