"""Process-wide objects built lazily from the settings: the counter backend."""

import threading
import time

from django.utils.module_loading import import_string

from ratelimit_app.conf import get_config
from ratelimit_app.counters.breaker import CircuitBreaker, GuardedBackend

_lock = threading.Lock()
_backend = None
_snapshots = None
_denials = None
# Tests set a clock (seconds) here to move time; production leaves it None so that
# Redis uses its own clock and everything else the wall clock.
test_clock = None


def now_us():
    """The test clock in integer microseconds, or None: the backend then uses its own."""
    return None if test_clock is None else int(test_clock() * 1_000_000)


def local_clock():
    """Seconds on a monotonic clock for process-local deadlines (the test clock if set)."""
    return test_clock() if test_clock is not None else time.monotonic()


def get_denials():
    """The process's record of keys over their limit, or None when DENY_CACHE_SIZE is 0."""
    global _denials
    size = int(get_config()["DENY_CACHE_SIZE"])
    if size and _denials is None:
        from ratelimit_app.denials import Denials

        with _lock:
            if _denials is None:
                _denials = Denials(max_keys=size)
    return _denials if size else None


def wall_clock():
    """Seconds since the epoch: the test clock if set, else time.time()."""
    return test_clock() if test_clock is not None else time.time()


def build_backend(config):
    """Instantiate the configured backend class behind a circuit breaker."""
    try:
        backend_class = import_string(config["BACKEND"])
    except ImportError as exc:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"RATELIMIT_APP['BACKEND'] = {config['BACKEND']!r} cannot be imported; use "
            "'ratelimit_app.counters.redis.RedisBackend' or "
            "'ratelimit_app.counters.memory.MemoryBackend'."
        ) from exc
    breaker = CircuitBreaker(config["BREAKER_THRESHOLD"], config["BREAKER_COOLDOWN"])
    return GuardedBackend(backend_class(config), breaker)


def get_backend():
    """The process's counter backend (created on first use)."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = build_backend(get_config())
    return _backend


def get_snapshot_holder():
    """The process's PolicySnapshot holder (created on first use)."""
    global _snapshots
    if _snapshots is None:
        from ratelimit_app.policy import SnapshotHolder

        with _lock:
            if _snapshots is None:
                _snapshots = SnapshotHolder()
    return _snapshots


def get_snapshot():
    """The process's current PolicySnapshot."""
    return get_snapshot_holder().get()


def reset():
    """Forget the process's objects; the next call builds them from the settings again."""
    global _backend, _snapshots, _denials
    with _lock:
        _backend = None
        _snapshots = None
        _denials = None
