"""Random workloads give, on each backend, exactly the decisions of the pure reference."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratelimit_app.counters.algorithms import US, LimitSpec, evaluate
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
