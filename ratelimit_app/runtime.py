"""Process-wide objects built lazily from the settings: the counter backend, the policy
snapshot holder, the record of denials, and the clocks.

Its receivers live here with what they reset or use: a settings change forgets the
objects, and a committed policy edit is published through the counter store.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ratelimit_app import tokens
from ratelimit_app.conf import WATCHED_SETTINGS, get_config
from ratelimit_app.counters import storage
from ratelimit_app.counters.base import BackendUnavailable
from ratelimit_app.counters.breaker import CircuitBreaker, GuardedBackend
from ratelimit_app.counters.denials import Denials
from ratelimit_app.policy import PolicySnapshot, SnapshotHolder
from ratelimit_app.signals import policy_revised

logger = logging.getLogger("ratelimit_app")

_lock = threading.Lock()
_backend: GuardedBackend | None = None
_snapshots: SnapshotHolder | None = None
_denials: Denials | None = None
# Tests set a clock (seconds) here to move time; production leaves it None so that
# Redis uses its own clock and everything else the wall clock.
test_clock: Callable[[], float] | None = None


def now_us() -> int | None:
    """The test clock in integer microseconds, or None: the backend then uses its own."""
    return None if test_clock is None else int(test_clock() * 1_000_000)


def local_clock() -> float:
    """Seconds on a monotonic clock for process-local deadlines (the test clock if set)."""
    return test_clock() if test_clock is not None else time.monotonic()


def wall_clock() -> float:
    """Seconds since the epoch: the test clock if set, else time.time()."""
    return test_clock() if test_clock is not None else time.time()


def get_denials() -> Denials | None:
    """The process's record of keys over their limit, or None when DENY_CACHE_SIZE is 0."""
    global _denials
    size = int(get_config()["DENY_CACHE_SIZE"])
    if size and _denials is None:
        with _lock:
            if _denials is None:
                _denials = Denials(max_keys=size)
    return _denials if size else None


def build_backend(config: dict[str, Any]) -> GuardedBackend:
    """Instantiate the configured backend class behind a circuit breaker: the one for
    STORAGE_URL's scheme if set, else BACKEND."""
    try:
        path = storage.backend_path(config["STORAGE_URL"]) if config["STORAGE_URL"] else None
    except storage.StorageURLError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    try:
        backend_class = import_string(path or config["BACKEND"])
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"RATELIMIT_APP['BACKEND'] = {config['BACKEND']!r} cannot be imported; use "
            "'ratelimit_app.counters.redis.RedisBackend' or "
            "'ratelimit_app.counters.memory.MemoryBackend'."
        ) from exc
    breaker = CircuitBreaker(config["BREAKER_THRESHOLD"], config["BREAKER_COOLDOWN"])
    return GuardedBackend(backend_class(config), breaker)


def get_backend() -> GuardedBackend:
    """The process's counter backend (created on first use)."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = build_backend(get_config())
    return _backend


def get_snapshot_holder() -> SnapshotHolder:
    """The process's PolicySnapshot holder (created on first use)."""
    global _snapshots
    if _snapshots is None:
        with _lock:
            if _snapshots is None:
                _snapshots = SnapshotHolder(
                    publish=publish_revision,
                    read_remote=published_revision,
                    on_lost=forget_denials,
                )
    return _snapshots


def get_snapshot() -> PolicySnapshot:
    """The process's current PolicySnapshot."""
    return get_snapshot_holder().get()


def forget_denials() -> None:
    """Forget the process's record of denials: the counters it mirrors are gone (the
    counter store was flushed or restarted)."""
    if _denials is not None:
        _denials.clear()


def publish_revision(number: int, only_if_missing: bool = False) -> bool:
    """Make revision ``number`` known to every process through the counter store (True if
    it took it); if the store is down, processes find it in the database within
    POLICY_FALLBACK_INTERVAL."""
    try:
        get_backend().publish_revision(number, only_if_missing)
    except BackendUnavailable:
        logger.warning("Policy revision %d not published: the counter store is down.", number)
        return False
    return True


def published_revision() -> int | None:
    """The policy revision the counter store knows of, or None if it cannot tell or is
    down (processes then ask the database)."""
    try:
        return get_backend().published_revision()
    except BackendUnavailable:
        return None


def reset() -> None:
    """Forget the process's objects; the next call builds them from the settings again."""
    global _backend, _snapshots, _denials
    with _lock:
        if _snapshots is not None:
            _snapshots.stop()
        _backend = None
        _snapshots = None
        _denials = None
    tokens.reset()  # and the token resolver's memo


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in WATCHED_SETTINGS:
        reset()


@receiver(policy_revised)
def _publish_on_policy_revised(
    *, number: int, only_if_missing: bool = False, policy: bool = False, **kwargs: Any
) -> None:
    publish_revision(number, only_if_missing)
    if policy and _snapshots is not None:
        # The process that made an edit (an admin request, a shell) applies it before
        # its next request, not a moment later: the edit's own request pays the build.
        _snapshots.refresh_now()
