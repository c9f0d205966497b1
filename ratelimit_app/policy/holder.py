"""SnapshotHolder: keeps a process's PolicySnapshot fresh.

At most once per POLICY_REFRESH_INTERVAL a process reads the revision number (one small
query) and rebuilds the snapshot when an admin edit has raised it, so edits reach every
worker within about a second without a restart. With a counter store that tells of
revisions (Redis), the database is asked only every POLICY_FALLBACK_INTERVAL.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError

from ratelimit_app.conf import get_config
from ratelimit_app.policy import revision
from ratelimit_app.policy.build import build_snapshot
from ratelimit_app.policy.snapshot import PolicySnapshot

logger = logging.getLogger("ratelimit_app")

# publish(number, only_if_missing): makes a revision known through the counter store.
Publisher = Callable[[int, bool], None]
# After a failed refresh (the database down), wait this long before the next attempt,
# doubling up to the maximum: requests meanwhile use the last good snapshot.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


def _no_publisher(number: int, only_if_missing: bool) -> None:
    """A holder with no counter store to tell: processes poll the database."""


class SnapshotHolder:
    """Keeps a process's snapshot fresh; ``clock`` is injectable for tests, ``publish``
    tells the counter store of a revision it lost (a flush or restart)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, publish: Publisher = _no_publisher
    ) -> None:
        self.clock = clock
        self.publish = publish
        self.snapshot: PolicySnapshot | None = None
        self.checked_at = float("-inf")
        self.remote_seen_at: float | None = None
        self.remote_known = False  # the store told of a revision, and has not lost it
        self.republished_at = float("-inf")
        self.built_at = float("-inf")
        self.rebuild_at: float | None = None
        self.failed_refreshes = 0
        self.retry_at: float | None = None
        self._lock = threading.Lock()

    def _interval(self, now: float) -> float:
        config = get_config()
        interval = float(config["POLICY_REFRESH_INTERVAL"])
        fallback = float(config["POLICY_FALLBACK_INTERVAL"])
        if self.remote_seen_at is not None and now - self.remote_seen_at < fallback:
            # The counter store tells of edits with every check: the database is only
            # asked in case a publication was lost.
            return max(interval, fallback)
        return interval

    def note_remote_revision(self, number: int) -> bool:
        """The counter store knows of policy revision ``number`` (0: of none, after a flush
        or restart): rebuild if it is newer, publish the latest again if it has none.

        Returns True when the store has just lost its state (it knew of a revision and
        now knows of none): what this process remembers of its counters is stale.
        """
        now = self.clock()
        if not number:
            lost, self.remote_known = self.remote_known, False
            self._republish(now)
            return lost
        self.remote_seen_at, self.remote_known = now, True
        if self.snapshot is not None and number > self.snapshot.revision:
            self._schedule_rebuild(now)
        return False

    def _schedule_rebuild(self, now: float) -> None:
        # At most one rebuild per POLICY_REFRESH_INTERVAL: a burst of edits (or of bans
        # during an attack) costs each process one rebuild a second, not one per edit.
        if self.rebuild_at is None:
            spacing = float(get_config()["POLICY_REFRESH_INTERVAL"])
            self.rebuild_at = max(now, self.built_at + spacing)

    def _republish(self, now: float) -> None:
        # At most once per interval, and only where the key is missing, so that an
        # edit's own publication (unconditional) always wins.
        interval = float(get_config()["POLICY_REFRESH_INTERVAL"])
        if self.snapshot is None or now - self.republished_at < interval:
            return
        self.republished_at = now
        # The database's number, if newer than this snapshot's: a process with an old
        # snapshot must not publish its old revision as the current one.
        latest = self.snapshot.revision
        # The database down: the store gets ours; the database is asked again later.
        with contextlib.suppress(DatabaseError):
            latest = max(latest, revision.current())
        self.publish(latest, True)
        if latest > self.snapshot.revision:
            self._schedule_rebuild(now)

    def get(self) -> PolicySnapshot:
        """The current snapshot, refreshed if the revision moved (checked once per interval)."""
        now = self.clock()
        snapshot = self.snapshot
        if snapshot is not None and not self._due(now):
            return snapshot
        with self._lock:
            if self.snapshot is None or self._due(now):
                self._refresh(now)
        assert self.snapshot is not None
        return self.snapshot

    def _due(self, now: float) -> bool:
        if self.retry_at is not None and now < self.retry_at:
            return False  # the last refresh failed: wait out its backoff
        if self.rebuild_at is not None and now >= self.rebuild_at:
            return True
        return now - self.checked_at >= self._interval(now)

    def _refresh(self, now: float) -> None:
        """Rebuild if the revision moved. A database error is never raised into the
        request: the last good snapshot stays (an empty one if there was none yet)."""
        try:
            # A process that never built one holds an empty stand-in: build it first.
            held = None if self.built_at == float("-inf") else self.snapshot
            if held is None or revision.current() != held.revision:
                self.snapshot = build_snapshot()
                self.built_at = now
        except DatabaseError as exc:
            self._refresh_failed(now, exc)
            return
        if self.failed_refreshes:
            logger.warning(
                "Policy snapshot refreshed again after %d failed attempts.", self.failed_refreshes
            )
            self.failed_refreshes, self.retry_at = 0, None
        self.checked_at = now
        self.rebuild_at = None

    def _refresh_failed(self, now: float, exc: DatabaseError) -> None:
        self.failed_refreshes += 1
        wait = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (self.failed_refreshes - 1))
        self.retry_at = now + wait
        if self.failed_refreshes == 1:
            logger.error(
                "Policy snapshot not refreshed (%s); %s until the database answers.",
                type(exc).__name__,
                "requests use the last good snapshot"
                if self.snapshot is not None
                else "no policy applies",
            )
        if self.snapshot is None:
            self.snapshot = PolicySnapshot()

    def invalidate(self) -> None:
        """Rebuild on the next request (used after this process itself changed a policy)."""
        with self._lock:
            self.checked_at = float("-inf")
