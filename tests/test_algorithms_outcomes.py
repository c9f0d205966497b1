"""Whole outcomes of each algorithm, worked out by hand from the definitions.

Each expected ``Outcome`` below is written from DESIGN.md and the algorithms' docstrings
(integer microseconds; ``state`` and ``ttl_us`` are what to store, and a refusal stores
nothing: no state, a time-to-live of 0), not from the code's output. Comparing whole
outcomes, not a few fields, is what catches a wrong figure in a field no caller reads
yet, and the spec's validation is checked by its exact messages.
"""

import pytest

from ratelimit_app.counters.algorithms import (
    BAN,
    FIXED_WINDOW,
    GCRA,
    MAX_RATE_PERIOD_PRODUCT,
    SLIDING_WINDOW,
    US,
    LimitSpec,
    Outcome,
    ban,
    evaluate,
    fixed_window,
    gcra,
    sliding_window,
    writes,
)

T0 = 1_699_999_980 * US  # a multiple of 60 s (and of 10 s): it starts a window of each


def test_gcra_outcomes():
    # 10 a second with a burst of 3: one request occupies 100 ms, the burst 300 ms.
    spec = LimitSpec("k", GCRA, rate=10, period=1, burst=3)
    # A fresh key: the theoretical arrival time moves 100 ms ahead; two more fit.
    assert gcra(None, T0, spec, 1) == Outcome(True, 3, 2, 100_000, 0, (T0 + 100_000,), 100_000)
    # The burst used up (arrival time 300 ms ahead): the next fits in 100 ms.
    full = (T0 + 300_000,)
    assert gcra(full, T0, spec, 1) == Outcome(False, 3, 0, 300_000, 100_000, None, 0)
    # Four at once never fit in a burst of three: retry after a whole period.
    assert gcra(None, T0, spec, 4) == Outcome(False, 3, 3, 0, US, None, 0)


def test_fixed_window_outcomes():
    # 5 a minute; 15 s into a window, 45 s to its end.
    spec = LimitSpec("k", FIXED_WINDOW, rate=5, period=60)
    now = T0 + 15 * US
    index = now // (60 * US)
    assert fixed_window(None, now, spec, 1) == Outcome(True, 5, 4, 45 * US, 0, (index, 1), 45 * US)
    # Five counted in this window: wait for its end.
    assert fixed_window((index, 5), now, spec, 1) == Outcome(False, 5, 0, 45 * US, 45 * US, None, 0)
    # Five counted in the previous window do not count in this one.
    assert fixed_window((index - 1, 5), now, spec, 2).remaining == 3
    # Six at once never fit: retry after a whole window; nothing counted, nothing to reset.
    assert fixed_window(None, now, spec, 6) == Outcome(False, 5, 5, 0, 60 * US, None, 0)


def test_rolling_window_outcomes():
    # 10 per 10 s, sub-windows of 1 s. The last admission at 5.5 s (sub-window 5): two
    # requests in the slot of sub-window 4 (counting until its end plus the window,
    # 15 s) and one in the newest slot (until the last admission plus the window, 15.5 s).
    spec = LimitSpec("k", SLIDING_WINDOW, rate=10, period=10)
    ring = (T0 + 5_500_000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1)
    now = T0 + 6 * US
    # Eight more than the seven left: one must leave, the first at 15 s.
    assert sliding_window(ring, now, spec, 8) == Outcome(False, 10, 7, 9_500_000, 9 * US, None, 0)
    # A request of the whole rate waits for all three to leave, at 15.5 s.
    assert sliding_window(ring, now, spec, 10) == Outcome(
        False, 10, 7, 9_500_000, 9_500_000, None, 0
    )
    # An admission in sub-window 6: the ring moves on by one slot.
    assert sliding_window(ring, now, spec, 1) == Outcome(
        True, 10, 6, 10 * US, 0, (now, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 1), 10 * US
    )


def test_every_figure_is_an_integer():
    """Integer microseconds, as the Lua scripts compute them (no float creeps in)."""
    spec = LimitSpec("k", SLIDING_WINDOW, rate=10, period=10)
    ring = (T0 + 5_500_000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1)
    for cost in (1, 8, 10, 11):
        outcome = sliding_window(ring, T0 + 6 * US, spec, cost)
        figures = (outcome.reset_after_us, outcome.retry_after_us, outcome.ttl_us)
        assert all(type(figure) is int for figure in figures), (cost, figures)
        assert all(type(value) is int for value in outcome.state or ()), cost


def test_a_ring_of_the_wrong_length_is_refused_not_read_short():
    spec = LimitSpec("k", SLIDING_WINDOW, rate=10, period=10)
    with pytest.raises(ValueError):
        sliding_window((T0, 1, 2, 3), T0 + US, spec, 1)


def test_ban_outcomes_with_no_ban_in_force():
    # token-endpoint-credential-bans.md: 5 failures ban the pair for 600 s.
    spec = LimitSpec("k", BAN, rate=5, period=600)
    free = Outcome(True, 5, 5, 0, 0, None, 0)
    assert ban(None, T0, spec, 1) == free
    assert ban((T0 - 600 * US, T0), T0, spec, 1) == free  # expired at this instant
    assert ban((T0, T0 + 600 * US), T0 + 100 * US, spec, 1) == Outcome(
        False, 5, 0, 500 * US, 500 * US, None, 500 * US
    )


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"algorithm": "leaky"}, r"^Unknown algorithm 'leaky'; use one of \("),
        ({"rate": 0}, r"^A limit needs a rate and a period of at least 1\.$"),
        ({"period": 0}, r"^A limit needs a rate and a period of at least 1\.$"),
        ({"rate": 10**5, "period": 10**5}, r"^rate x period is too large for exact counting\.$"),
        ({"rate": MAX_RATE_PERIOD_PRODUCT + 1, "period": 1}, r"^rate x period is too large"),
    ],
)
def test_a_spec_out_of_bounds_is_refused_with_its_reason(fields, message):
    with pytest.raises(ValueError, match=message):
        LimitSpec("k", **{"algorithm": FIXED_WINDOW, "rate": 10, "period": 60, **fields})


def test_the_largest_product_is_accepted():
    spec = LimitSpec("k", FIXED_WINDOW, rate=MAX_RATE_PERIOD_PRODUCT // 1000, period=1000)
    assert spec.rate * spec.period == MAX_RATE_PERIOD_PRODUCT


def test_states_and_outcomes_must_match_the_specs_one_for_one():
    """A missing state or outcome is a caller's error, not a limit silently skipped."""
    specs = [LimitSpec("a", FIXED_WINDOW, 5, 60), LimitSpec("b", FIXED_WINDOW, 5, 60)]
    with pytest.raises(ValueError):
        evaluate(specs, [None], T0, 1)
    outcomes, charged = evaluate(specs, [None, None], T0, 1)
    with pytest.raises(ValueError):
        writes(specs, outcomes[:1], charged)
