"""Counters in process memory: for development, tests and the demo with no services."""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from ratelimit_app.counters import activity, failures
from ratelimit_app.counters.algorithms import US, LimitSpec, State, evaluate, writes
from ratelimit_app.counters.base import Backend, Decision, make_decision, validate_specs
from ratelimit_app.counters.failures import FailureCounter, FailureResult


class MemoryBackend(Backend):
    """Thread-safe, bounded: expired keys are dropped, and at most MEMORY_MAX_KEYS are kept.

    Each process has its own counters, so limits are per process: use Redis when
    the site runs more than one worker.
    """

    def __init__(self, config: dict[str, Any], clock: Callable[[], float] = time.time) -> None:
        super().__init__(config)
        self.max_keys = int(config["MEMORY_MAX_KEYS"])
        self.clock = clock
        self._lock = threading.Lock()
        self._store: OrderedDict[str, tuple[State, int]] = OrderedDict()  # (state, expiry µs)
        self._activity = activity.ProcessActivity()

    def __len__(self) -> int:
        return len(self._store)

    def check(self, specs: Sequence[LimitSpec], cost: int = 1, now: int | None = None) -> Decision:
        validate_specs(specs, cost)
        now = int(self.clock() * US) if now is None else now
        with self._lock:
            states = [self._get(spec.key, now) for spec in specs]
            outcomes, charged = evaluate(specs, states, now, cost)
            for spec, outcome in writes(specs, outcomes, charged):
                assert outcome.state is not None  # writes() keeps only new states
                self._put(spec.key, outcome.state, now + outcome.ttl_us)
        return make_decision(specs, outcomes, charged, now, cost)

    def peek(self, specs: Sequence[LimitSpec], now: int | None = None) -> Decision:
        validate_specs(specs, 1)
        now = int(self.clock() * US) if now is None else now
        with self._lock:
            states = [self._peek_state(spec.key, now) for spec in specs]
        outcomes, charged = evaluate(specs, states, now, 1)
        return make_decision(specs, outcomes, charged, now, 1)

    def record_failures(
        self, counters: Sequence[FailureCounter], now: int | None = None
    ) -> tuple[int, list[FailureResult]]:
        now = int(self.clock() * US) if now is None else now
        results: list[FailureResult] = []
        with self._lock:
            for counter in counters:
                old_count = self._get(counter.failure_key, now)
                count_state, ban_state, result = failures.record(
                    old_count, self._get(counter.ban_key, now), now, counter
                )
                if count_state is None:
                    self._store.pop(counter.failure_key, None)
                elif count_state is not old_count:
                    self._put(counter.failure_key, count_state, count_state[1])
                if ban_state is not None:
                    self._put(counter.ban_key, ban_state, ban_state[1])
                results.append(result)
        return now, results

    def write_activity(self, batch: activity.Batch, now: float) -> None:
        """Record a batch of recent traffic for the console (see counters.activity)."""
        self._activity.write(batch, now)

    def read_activity(self, since: float, now: float) -> activity.Activity:
        """The console's record of traffic since ``since`` (epoch seconds)."""
        return self._activity.read(since, now)

    def last_seen(self, parties: Sequence[str]) -> dict[str, float]:
        """When each of ``parties`` (API keys' hash tags) was last counted."""
        return self._activity.last_seen(parties)

    def clear(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._store.pop(key, None)

    def _peek_state(self, key: str, now: int) -> State | None:
        entry = self._store.get(key)  # read only: expired entries are left to _get
        return entry[0] if entry is not None and entry[1] > now else None

    def _get(self, key: str, now: int) -> State | None:
        entry = self._store.get(key)
        if entry is None:
            return None
        state, expires_at = entry
        if expires_at <= now:
            del self._store[key]
            return None
        return state

    def _put(self, key: str, state: State, expires_at: int) -> None:
        self._store[key] = (state, expires_at)
        self._store.move_to_end(key)
        while len(self._store) > self.max_keys:
            # Least recently written first: those are the likeliest to have expired.
            self._store.popitem(last=False)
