"""Bounded in-process memos for values derived from requests.

Untrusted input (paths, headers) must not grow a process without end, and a full memo
must not turn every request into a miss at once: the oldest entry goes first, one at a
time. Values longer than a memo's key limit are computed each time, never kept. Lookups
that reach the database for a request's value are capped per second (LookupBudget).
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
# Paths or header values longer than this are not memoized (they are rare and hostile).
MAX_KEY_LENGTH = 256


def put(cache: dict[K, V], key: K, value: V, max_size: int) -> V:
    """Store ``value`` under ``key``, dropping the oldest entry first when full."""
    while len(cache) >= max_size:
        try:
            del cache[next(iter(cache))]
        except (StopIteration, KeyError, RuntimeError):  # emptied by another thread
            break
    cache[key] = value
    return value


def memoized(max_size: int) -> Callable[[Callable[[str], V]], Callable[[str], V]]:
    """A decorator memoizing a function of one string, bounded, short strings only."""

    def decorate(function: Callable[[str], V]) -> Callable[[str], V]:
        cache: dict[str, V] = {}

        def wrapper(value: str) -> V:
            found = cache.get(value)
            if found is not None:
                return found
            result = function(value)
            if len(value) <= MAX_KEY_LENGTH:
                put(cache, value, result, max_size)
            return result

        wrapper.__doc__ = function.__doc__
        wrapper.__wrapped__ = function  # type: ignore[attr-defined]
        wrapper.cache = cache  # type: ignore[attr-defined]
        return wrapper

    return decorate


class LookupBudget:
    """At most ``per_second`` lookups in any one-second step of ``clock``."""

    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.clock = clock
        self._second, self._spent = -1, 0
        self._lock = threading.Lock()

    def take(self, now: float | None = None) -> bool:
        """Spend one lookup at ``now`` (default: the clock); False when this second's
        are spent."""
        second = int(self.clock() if now is None else now)
        with self._lock:
            if second != self._second:
                self._second, self._spent = second, 0
            if self._spent >= self.per_second:
                return False
            self._spent += 1
            return True
