"""Bounded in-process memos for values derived from requests.

Untrusted input (paths, headers) must not grow a process without end, and a full memo
must not turn every request into a miss at once: the oldest entry goes first, one at a
time. Values longer than a memo's key limit are computed each time, never kept.
"""

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
