"""A circuit breaker so that a failing Redis costs each request nothing, not a timeout."""

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ratelimit_app import events
from ratelimit_app.counters.algorithms import LimitSpec
from ratelimit_app.counters.base import Backend, BackendUnavailable, Decision
from ratelimit_app.counters.failures import FailureCounter, FailureResult
from ratelimit_app.signals import counter_backend_failed, counter_backend_recovered

logger = logging.getLogger("ratelimit_app.counters")
T = TypeVar("T")

# Told of every counter-store call: (operation, seconds, the failure or None). Filled
# from above (ratelimit_app.metrics), so that the counters import no metrics library;
# while it is empty a call is not even timed.
CallObserver = Callable[[str, float, BackendUnavailable | None], None]
call_observers: list[CallObserver] = []


def _tell_observers(operation: str, started: float, error: BackendUnavailable | None) -> None:
    elapsed = time.perf_counter() - started if started else 0.0
    for observer in call_observers:
        try:
            observer(operation, elapsed, error)
        except Exception:  # an observer never turns a call into a failure
            logger.debug("A counter-store call observer failed.", exc_info=True)


class CircuitBreaker:
    """Closed: calls go through. After ``threshold`` consecutive failures it opens for
    ``cooldown`` seconds, failing calls at once; then one trial call decides.

    ``clock`` is a parameter so that tests move time instead of sleeping.
    """

    def __init__(
        self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = max(1, int(threshold))
        self.cooldown = float(cooldown)
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.clock() - self.opened_at < self.cooldown

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func`` unless the breaker is open; record its success or failure."""
        observed = bool(call_observers)
        if self.is_open:
            error = BackendUnavailable(
                "circuit breaker open: not calling the counter store", kind="breaker_open"
            )
            if observed:
                _tell_observers(func.__name__, 0.0, error)
            raise error
        started = time.perf_counter() if observed else 0.0
        try:
            result = func(*args, **kwargs)
        except BackendUnavailable as exc:
            self.record_failure(exc)
            if observed:
                _tell_observers(func.__name__, started, exc)
            raise
        self.record_success()
        if observed:
            _tell_observers(func.__name__, started, None)
        return result

    def record_failure(self, exc: BackendUnavailable) -> None:
        """Count a failed call; the threshold-th in a row opens the breaker."""
        with self._lock:
            self.failures += 1
            first = self.failures == 1
            opens = self.failures >= self.threshold and not self.is_open
            if opens:
                self.opened_at = self.clock()
        if first:
            events.log_event(
                logger,
                logging.WARNING,
                events.STORE_FAILING,
                f"Rate limit counters unavailable: {exc}",
                kind=exc.kind,
            )
        if opens:
            events.log_event(
                logger,
                logging.ERROR,
                events.STORE_BREAKER_OPEN,
                f"Rate limit counters failed {self.failures} times in a row; "
                f"not calling them for {self.cooldown:.1f} s.",
                kind=exc.kind,
                failures=self.failures,
                cooldown=self.cooldown,
            )
        counter_backend_failed.send(sender=CircuitBreaker, error=exc, breaker_open=opens)

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        if not self.failures:
            return
        with self._lock:
            failures, self.failures, self.opened_at = self.failures, 0, None
        events.log_event(
            logger,
            logging.WARNING,
            events.STORE_RECOVERED,
            f"Rate limit counters are back after {failures} failed calls.",
            failures=failures,
        )
        counter_backend_recovered.send(sender=CircuitBreaker, failures=failures)


class _Unguarded:
    """For a backend that keeps breakers of its own (one per cluster shard): calls go
    straight through, still timed for the call observers (the metrics)."""

    is_open = False

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not call_observers:
            return func(*args, **kwargs)
        started = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except BackendUnavailable as exc:
            _tell_observers(func.__name__, started, exc)
            raise
        _tell_observers(func.__name__, started, None)
        return result


class GuardedBackend:
    """A backend behind a circuit breaker; same ``check`` and ``clear``.

    A backend whose ``guards_itself`` is true (the cluster's, with a breaker per shard,
    so that one shard down does not stop the others) is called directly.
    """

    def __init__(self, backend: Backend, breaker: CircuitBreaker) -> None:
        self.backend = backend
        self.breaker: Any = _Unguarded() if getattr(backend, "guards_itself", False) else breaker

    def check(self, specs: Sequence[LimitSpec], cost: int = 1, now: int | None = None) -> Decision:
        """See Backend.check; raises BackendUnavailable at once while the breaker is open."""
        return self.breaker.call(self.backend.check, specs, cost, now)

    def peek(self, specs: Sequence[LimitSpec], now: int | None = None) -> Decision:
        """See Backend.peek."""
        return self.breaker.call(self.backend.peek, specs, now)

    def record_failures(
        self, counters: Sequence[FailureCounter], now: int | None = None
    ) -> tuple[int, list[FailureResult]]:
        """See Backend.record_failures."""
        return self.breaker.call(self.backend.record_failures, counters, now)

    def clear(self, keys: Sequence[str]) -> None:
        """See Backend.clear."""
        return self.breaker.call(self.backend.clear, keys)

    def write_activity(self, *args: Any) -> None:
        """See MemoryBackend.write_activity (a backend without it records nothing)."""
        if hasattr(self.backend, "write_activity"):
            self.breaker.call(self.backend.write_activity, *args)

    def read_activity(self, since: float, now: float) -> Any:
        """See MemoryBackend.read_activity (None from a backend that keeps none)."""
        if not hasattr(self.backend, "read_activity"):
            return None
        return self.breaker.call(self.backend.read_activity, since, now)

    def last_seen(self, parties: Sequence[str]) -> dict[str, float]:
        """See MemoryBackend.last_seen (nothing from a backend that keeps none)."""
        if not hasattr(self.backend, "last_seen"):
            return {}
        result: dict[str, float] = self.breaker.call(self.backend.last_seen, parties)
        return result

    def publish_revision(self, number: int, only_if_missing: bool = False) -> None:
        """See Backend.publish_revision."""
        return self.breaker.call(self.backend.publish_revision, number, only_if_missing)

    def published_revision(self) -> int | None:
        """See Backend.published_revision."""
        result: int | None = self.breaker.call(self.backend.published_revision)
        return result
