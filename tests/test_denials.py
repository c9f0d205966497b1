"""The local record of denied keys: no round trip for a client already denied, exactly."""

import pytest

from ratelimit_app import runtime
from ratelimit_app.counters.algorithms import BAN, FIXED_WINDOW, GCRA, US, LimitSpec
from ratelimit_app.counters.denials import Denials
from ratelimit_app.counters.memory import MemoryBackend

T0 = 1_800_000_000 * US


def denied_decision(spec, backend):
    backend.check([spec], now=T0)
    decision = backend.check([spec], now=T0)
    assert not decision.allowed
    return decision


def test_a_denied_key_is_answered_locally_until_its_retry_after():
    backend = MemoryBackend({"MEMORY_MAX_KEYS": 100})
    spec = LimitSpec("k", GCRA, rate=60, period=60, burst=1)
    decision = denied_decision(spec, backend)
    denials = Denials(clock=lambda: 0.0)
    denials.record(decision, revision=1, cost=1, now=100.0)
    replay = denials.lookup([spec], revision=1, now=100.4)
    assert not replay.allowed
    assert replay.retry_after == pytest.approx(decision.retry_after - 0.4)
    assert denials.lookup([spec], revision=1, now=100.0 + decision.retry_after) is None
    assert len(denials) == 0


def test_a_policy_edit_forgets_the_record():
    backend = MemoryBackend({"MEMORY_MAX_KEYS": 100})
    spec = LimitSpec("k", FIXED_WINDOW, rate=1, period=60)
    denials = Denials()
    denials.record(denied_decision(spec, backend), revision=1, cost=1, now=0.0)
    assert denials.lookup([spec], revision=2, now=1.0) is None


def test_bans_costs_above_one_and_allowed_decisions_are_not_recorded():
    backend = MemoryBackend({"MEMORY_MAX_KEYS": 100})
    spec = LimitSpec("k", FIXED_WINDOW, rate=1, period=60)
    denials = Denials()
    denials.record(denied_decision(spec, backend), revision=1, cost=2, now=0.0)
    denials.record(backend.check([LimitSpec("a", FIXED_WINDOW, 5, 60)], now=T0), 1, 1, 0.0)
    ban = LimitSpec("b", BAN, rate=5, period=600)
    backend._put("b", (T0, T0 + 600 * US), T0 + 600 * US)
    denials.record(backend.check([ban], now=T0), revision=1, cost=1, now=0.0)
    assert len(denials) == 0


def test_the_record_is_bounded():
    backend = MemoryBackend({"MEMORY_MAX_KEYS": 1000})
    denials = Denials(max_keys=10)
    for i in range(50):
        spec = LimitSpec(f"k{i}", FIXED_WINDOW, rate=1, period=60)
        denials.record(denied_decision(spec, backend), revision=1, cost=1, now=0.0)
    assert len(denials) == 10


@pytest.mark.django_db
def test_a_flood_from_a_denied_client_costs_no_backend_call(client, demo_data, monkeypatch):
    calls = []
    backend = runtime.get_backend()
    real_check = backend.check

    def counting_check(*args, **kwargs):
        calls.append(1)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(backend, "check", counting_check)
    key = {"HTTP_AUTHORIZATION": f"Bearer {demo_data['free']}"}
    assert client.post("/test", **key).status_code == 201
    assert client.post("/test", **key).status_code == 429
    assert len(calls) == 2
    replies = [client.post("/test", **key) for _ in range(100)]
    assert {r.status_code for r in replies} == {429}
    assert len(calls) == 2  # the flood never reached the counters
    assert 1 <= int(replies[-1]["Retry-After"]) <= 60
    assert replies[-1]["X-RateLimit-Limit"] == "1"
    # Other clients and other limits are not affected.
    assert client.get("/v1/status", **key).status_code == 200
    assert len(calls) == 3
