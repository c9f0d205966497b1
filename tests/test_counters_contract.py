"""One contract, run against every backend: the same decisions from each."""

import pytest

from ratelimit_app.counters.algorithms import FIXED_WINDOW, GCRA, SLIDING_WINDOW, US, LimitSpec
from tests.counters_support import make_backend, party_keys, unique_key

T0 = 1_800_000_000 * US  # aligned to every window used below


TOPOLOGIES = ["cluster", "sentinel", "valkey"]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.services),
        *[pytest.param(name, marks=pytest.mark.cluster) for name in TOPOLOGIES],
    ]
)
def backend(request):
    if request.param in TOPOLOGIES:
        fixture = {"cluster": "redis_cluster", "sentinel": "redis_sentinel"}
        server = request.getfixturevalue(fixture.get(request.param, "valkey_server"))
        return make_backend(request.param, server.url)
    return make_backend(request.param)


class TestBackendContract:
    def test_gcra_burst_then_deny(self, backend):
        spec = LimitSpec(unique_key(), GCRA, rate=300, period=60, burst=50)
        decisions = [backend.check([spec], now=T0) for _ in range(51)]
        assert [d.allowed for d in decisions] == [True] * 50 + [False]
        denied = decisions[-1]
        assert (denied.limit, denied.remaining) == (50, 0)
        assert denied.retry_after == pytest.approx(0.2)
        assert denied.reset_after == pytest.approx(10.0)
        assert backend.check([spec], now=T0 + 200_000).allowed

    def test_sliding_window_counts_rolling(self, backend):
        # 120 per 60 s, sub-windows of 6 s: a request of the newest sub-window counts
        # until 60 s after the last admission (here T0 + 119 µs).
        spec = LimitSpec(unique_key(), SLIDING_WINDOW, rate=120, period=60)
        assert all(backend.check([spec], now=T0 + i).allowed for i in range(120))
        denied = backend.check([spec], now=T0 + 1000)
        assert not denied.allowed and denied.limit == 120 and denied.remaining == 0
        assert denied.retry_after == denied.reset_after == pytest.approx(59.999119)
        assert not backend.check([spec], now=T0 + 60 * US + 118).allowed
        again = backend.check([spec], now=T0 + 60 * US + 119)
        assert (again.allowed, again.remaining, again.reset_after) == (True, 119, 60)

    def test_fixed_window(self, backend):
        spec = LimitSpec(unique_key(), FIXED_WINDOW, rate=2, period=10)
        results = [backend.check([spec], now=T0 + 5 * US).allowed for _ in range(3)]
        assert results == [True, True, False]
        assert backend.check([spec], now=T0 + 10 * US).allowed

    def test_cost_counts_and_oversized_cost_is_denied(self, backend):
        spec = LimitSpec(unique_key(), GCRA, rate=10, period=10, burst=10)
        assert backend.check([spec], cost=7, now=T0).remaining == 3
        assert not backend.check([spec], cost=4, now=T0).allowed
        assert not backend.check([LimitSpec(unique_key(), GCRA, 10, 10, 10)], cost=11).allowed

    def test_all_or_nothing_across_limits(self, backend):
        tight = LimitSpec(unique_key("ip"), FIXED_WINDOW, rate=1, period=60)
        loose = LimitSpec(unique_key("key"), GCRA, rate=100, period=60, burst=100)
        first = backend.check([tight, loose], now=T0)
        assert first.allowed
        second = backend.check([tight, loose], now=T0)
        assert not second.allowed
        assert second.binding.spec == tight
        # The loose limit was charged once, not twice.
        assert backend.check([loose], now=T0).remaining == 98

    def test_tightest_limit_is_reported(self, backend):
        a = LimitSpec(unique_key("a"), GCRA, rate=100, period=60, burst=10)
        b = LimitSpec(unique_key("b"), SLIDING_WINDOW, rate=5, period=60)
        decision = backend.check([a, b], now=T0)
        assert (decision.limit, decision.remaining) == (5, 4)
        assert [r.remaining for r in decision.results] == [9, 4]

    def test_shadow_limit_is_counted_but_never_denies(self, backend):
        shadow = LimitSpec(unique_key(), FIXED_WINDOW, rate=1, period=60, shadow=True)
        real = LimitSpec(unique_key(), FIXED_WINDOW, rate=10, period=60)
        decisions = [backend.check([shadow, real], now=T0) for _ in range(3)]
        assert all(d.allowed for d in decisions)
        assert [d.results[0].allowed for d in decisions] == [True, False, False]
        assert decisions[-1].limit == 10  # headers follow the enforced limit

    def test_denied_request_reports_the_longest_wait(self, backend):
        a = LimitSpec(unique_key("a"), FIXED_WINDOW, rate=1, period=10)
        b = LimitSpec(unique_key("b"), FIXED_WINDOW, rate=1, period=60)
        backend.check([a, b], now=T0)
        denied = backend.check([a, b], now=T0)
        assert denied.retry_after == pytest.approx(60)

    def test_clear_forgets_state(self, backend):
        spec = LimitSpec(unique_key(), FIXED_WINDOW, rate=1, period=60)
        backend.check([spec], now=T0)
        assert not backend.check([spec], now=T0).allowed
        backend.clear([spec.key])
        assert backend.check([spec], now=T0).allowed

    def test_rejects_duplicate_keys_and_zero_cost(self, backend):
        spec = LimitSpec(unique_key(), FIXED_WINDOW, rate=1, period=60)
        with pytest.raises(ValueError):
            backend.check([spec, spec])
        with pytest.raises(ValueError):
            backend.check([spec], cost=0)

    def test_production_clock_is_used_without_now(self, backend):
        spec = LimitSpec(unique_key(), GCRA, rate=60, period=60, burst=1)
        decision = backend.check([spec])
        assert decision.allowed and decision.now > 1_700_000_000

    def test_failures_ban_at_the_threshold_and_the_ban_check_denies_until_expiry(self, backend):
        from ratelimit_app.counters.algorithms import BAN
        from ratelimit_app.counters.failures import FailureCounter

        failure_key, ban_key = party_keys("x", "b")
        counter = FailureCounter(failure_key, ban_key, threshold=3, window=600, cooldown=600)
        results = [backend.record_failures([counter], now=T0 + i)[1][0] for i in range(3)]
        assert [(r.count, r.banned) for r in results] == [(1, False), (2, False), (3, True)]
        assert results[2].expires_at_us == T0 + 2 + 600 * US
        # Failures while banned are not counted: no second ban.
        assert not backend.record_failures([counter], now=T0 + 10)[1][0].banned
        check = LimitSpec(ban_key, BAN, rate=3, period=600)
        denied = backend.check([check], now=T0 + US)
        assert not denied.allowed and denied.retry_after == pytest.approx(599.000002)
        extended = LimitSpec(ban_key, BAN, rate=3, period=600, extend=True)
        assert backend.check([extended], now=T0 + 100 * US).retry_after == pytest.approx(600)
        assert backend.check([check], now=T0 + 650 * US).retry_after == pytest.approx(50)
        assert backend.check([check], now=T0 + 700 * US).allowed

    def test_a_ban_check_charges_no_limit_when_it_denies(self, backend):
        from ratelimit_app.counters.algorithms import BAN
        from ratelimit_app.counters.failures import FailureCounter

        failure_key, ban_key = party_keys("x", "b")
        counter = FailureCounter(failure_key, ban_key, threshold=1, window=60, cooldown=60)
        backend.record_failures([counter], now=T0)
        limit = LimitSpec(unique_key("ip"), FIXED_WINDOW, rate=5, period=60)
        assert not backend.check([limit, LimitSpec(ban_key, BAN, 1, 60)], now=T0).allowed
        assert backend.check([limit], now=T0).remaining == 4

    @pytest.mark.parametrize("algorithm", [GCRA, SLIDING_WINDOW, FIXED_WINDOW])
    def test_peek_tells_what_the_next_request_gets_and_charges_nothing(self, backend, algorithm):
        spec = LimitSpec(unique_key(), algorithm, rate=5, period=60, burst=5)
        other = LimitSpec(unique_key("ip"), FIXED_WINDOW, rate=100, period=60)  # another slot
        for used in range(7):
            peeked = [backend.peek([spec, other], now=T0 + used) for _ in range(2)]
            assert _figures(peeked[0]) == _figures(peeked[1])  # peeking changed nothing
            checked = backend.check([spec, other], now=T0 + used)
            assert _figures(peeked[0]) == _figures(checked)
            assert peeked[0].allowed == (used < 5)
        # Nothing peeked was charged: 5 admitted of 7, the wider limit counted 5.
        assert backend.peek([other], now=T0 + 10).results[0].remaining == 94

    def test_peek_reads_a_ban_without_extending_it(self, backend):
        from ratelimit_app.counters.algorithms import BAN
        from ratelimit_app.counters.failures import FailureCounter

        failure_key, ban_key = party_keys("x", "b")
        counter = FailureCounter(failure_key, ban_key, threshold=1, window=60, cooldown=60)
        backend.record_failures([counter], now=T0)
        extended = LimitSpec(ban_key, BAN, rate=1, period=60, extend=True)
        peeked = backend.peek([extended], now=T0 + 30 * US)
        assert not peeked.allowed and peeked.retry_after == pytest.approx(60)
        # The ban still ends when it did: the peek wrote no extension.
        assert backend.check([LimitSpec(ban_key, BAN, 1, 60)], now=T0 + 61 * US).allowed

    def test_recent_activity_is_kept_for_its_window_and_bounded(self, backend, monkeypatch):
        from ratelimit_app.counters import activity

        monkeypatch.setattr(activity, "MAX_THROTTLED", 3)
        monkeypatch.setattr(activity, "MAX_CONSUMERS", 2)
        now = 1_800_000_000.0
        first = activity.Batch(
            throttled=[("api", f"party{i}", now - 10 * i) for i in range(5)],
            shadow=[("api", "api-ip-60s", 2)],
            used=[("api", "a", 16), ("api", "b", 32), ("api", "c", 48)],
            seen=[("key1", now - 5)],
        )
        backend.write_activity(first, now)
        second = activity.Batch(
            throttled=[("web", "old", now - 20 * 60)],
            shadow=[("api", "api-ip-60s", 3)],
            seen=[("key1", now), ("key2", now - 1)],
        )
        backend.write_activity(second, now)
        recent = backend.read_activity(now - 300, now)
        # The three most recent parties; the one older than the window is gone.
        assert recent.throttled == {"api": {"party0": now, "party1": now - 10, "party2": now - 20}}
        assert recent.shadow == {("api", "api-ip-60s"): 5}
        assert recent.used == {"api": {"b": 32, "c": 48}}  # the two busiest of the minute
        assert backend.read_activity(now - 15, now).throttled == {
            "api": {"party0": now, "party1": now - 10}
        }
        assert backend.last_seen(["key1", "key2", "key3"]) == {"key1": now, "key2": now - 1}


def _figures(decision):
    return (
        decision.allowed,
        [(r.allowed, r.limit, r.remaining, r.reset_after, r.retry_after) for r in decision.results],
    )


def test_memory_backend_is_bounded_and_drops_expired_keys():
    from ratelimit_app.counters.memory import MemoryBackend

    backend = MemoryBackend({"MEMORY_MAX_KEYS": 100})
    for i in range(1000):
        backend.check([LimitSpec(f"k{i}", FIXED_WINDOW, 5, 1)], now=T0)
    assert len(backend) == 100
    # A key past its TTL is dropped when it is next read.
    key = LimitSpec("k999", FIXED_WINDOW, 1, 1)
    assert backend.check([key], now=T0 + 5 * US).allowed


def test_the_published_revision_is_read_back_where_the_store_can_tell(backend, request):
    """The holder's thread asks the store which revision it knows of; a store that cannot
    tell (in-process) says None, and the database is polled instead."""
    if request.node.callspec.params["backend"] == "memory":
        backend.publish_revision(7)
        assert backend.published_revision() is None
        return
    before = backend.published_revision()
    backend.publish_revision(before + 7)
    assert backend.published_revision() == before + 7
    backend.publish_revision(before + 3)  # never backwards
    assert backend.published_revision() == before + 7
