"""SnapshotHolder: keeps a process's PolicySnapshot fresh, off the request path.

A process learns that the policy revision moved from its counter store (Redis returns
the published revision with every check, and is asked once per POLICY_REFRESH_INTERVAL
by the holder's own thread, so an idle process learns too) or, without one, from the
database. With POLICY_REFRESH "background" (the default) a thread of the process then
builds the new snapshot beside the one requests use and swaps it in: no request ever
waits for a rebuild, and only the very first request of a process builds one. An edit
that only wrote, extended or lifted ban rows, or changed single tenants, is taken in by
reading those rows, not by a rebuild (see models.PolicyRevision).
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections

from ratelimit_app.conf import get_config
from ratelimit_app.policy import revision
from ratelimit_app.policy.build import (
    BanRow,
    apply_ban_rows,
    build_snapshot,
    changed_bans,
    changed_tenants,
    with_tenants_reread,
)
from ratelimit_app.policy.snapshot import PolicySnapshot
from ratelimit_app.signals import policy_snapshot_refresh_failed, policy_snapshot_refreshed

logger = logging.getLogger("ratelimit_app")

# publish(number, only_if_missing): makes a revision known through the counter store;
# True when the store took it (it then knows of a revision again).
Publisher = Callable[[int, bool], bool | None]
# The revision the counter store was told of (0: none), or None if it cannot tell.
RemoteReader = Callable[[], int | None]
# After a failed refresh (the database down), wait this long before the next attempt,
# doubling up to the maximum: requests meanwhile use the last good snapshot.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
# Ban rows taken in one by one since the last full build before the next refresh is a
# full build again, which drops the expired ones.
MAX_BAN_CHANGES = 10_000


def _no_publisher(number: int, only_if_missing: bool) -> bool:
    """A holder with no counter store to tell: processes poll the database."""
    return False


def _no_remote() -> int | None:
    return None


def _nothing_to_forget() -> None:
    """A holder with nothing mirroring the store's counters."""


class SnapshotHolder:
    """Keeps a process's snapshot fresh; ``clock`` is injectable for tests, ``publish``
    tells the counter store of a revision it lost (a flush or restart), and
    ``read_remote`` asks the store which revision it knows of, and ``on_lost`` forgets
    what the process mirrors of the store's counters once the store lost its state,
    whether a check's answer or the background thread's read told of it."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        publish: Publisher = _no_publisher,
        read_remote: RemoteReader = _no_remote,
        on_lost: Callable[[], None] = _nothing_to_forget,
    ) -> None:
        self.clock = clock
        self.publish = publish
        self.read_remote = read_remote
        self.on_lost = on_lost
        self.snapshot: PolicySnapshot | None = None
        self.checked_at = float("-inf")
        self.remote_seen_at: float | None = None
        self.remote_known = False  # the store told of a revision, and has not lost it
        self.republished_at = float("-inf")
        self.built_at = float("-inf")
        self.rebuild_at: float | None = None
        self.failed_refreshes = 0
        self.retry_at: float | None = None
        self.ban_changes = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._stopped = False

    # -- what requests call ------------------------------------------------------------

    def get(self) -> PolicySnapshot:
        """The current snapshot. A refresh that is due runs in the background thread (or,
        with POLICY_REFRESH "inline", here); only a process's first call builds."""
        now = self.clock()
        snapshot = self.snapshot
        if snapshot is not None and not self._due(now) and self._pid == os.getpid():
            return snapshot
        if snapshot is not None and self._in_background():
            self._wake_refresher()
            return snapshot
        with self._lock:
            if self.snapshot is None or self._due(now):
                self._refresh(now)
        if self._in_background():
            self._wake_refresher()  # from now on the thread keeps this process fresh
        assert self.snapshot is not None
        return self.snapshot

    def note_remote_revision(self, number: int) -> bool:
        """The counter store knows of policy revision ``number`` (0: of none, after a flush
        or restart): refresh if it is newer, publish the latest again if it has none.

        Returns True when the store has just lost its state (it knew of a revision and
        now knows of none): what this process remembers of its counters is stale, and
        ``on_lost`` has forgotten it.
        """
        now = self.clock()
        if not number:
            lost, self.remote_known = self.remote_known, False
            if lost:
                self.on_lost()
            self._republish(now)
            return lost
        self.remote_seen_at, self.remote_known = now, True
        if self.snapshot is not None and number > self.snapshot.revision:
            self._schedule_rebuild(now)
        return False

    def take_in_bans(self, rows: list[BanRow]) -> None:
        """Record ban rows this process itself just wrote or lifted, at once (other
        processes take them in with the revision their write published)."""
        if self.snapshot is not None:
            apply_ban_rows(self.snapshot, rows)

    def refresh_now(self) -> None:
        """Refresh here and now (after this process committed an edit), whatever the
        refresh mode; a failure keeps the current snapshot, as always."""
        with self._lock:
            self._refresh(self.clock())

    def invalidate(self) -> None:
        """Refresh on the next request (used after this process itself changed a policy)."""
        self.checked_at = float("-inf")

    # -- the background thread ---------------------------------------------------------

    def poll(self) -> None:
        """One turn of the background thread: ask the store which revision it knows of,
        then refresh if that (or the database, when due) says the policy moved."""
        try:
            remote = self.read_remote()
        except Exception:  # the store is down: the database is asked when due
            remote = None
        if remote is not None:
            self.note_remote_revision(remote)
        with self._lock:
            now = self.clock()
            if self.snapshot is None or self._due(now):
                self._refresh(now)

    def _in_background(self) -> bool:
        return get_config()["POLICY_REFRESH"] == "background"

    def _wake_refresher(self) -> None:
        if self._pid != os.getpid():
            # A forked child: the parent's thread and lock do not exist here.
            self._pid, self._thread = os.getpid(), None
            self._lock, self._wake = threading.Lock(), threading.Event()
        if self._stopped:
            return
        if self._thread is None or not self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # interpreter shutting down
                self._thread = threading.Thread(
                    target=self._run, name="ratelimit-policy", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """End the background thread (when the process's objects are replaced)."""
        self._stopped = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._next_wait())
            self._wake.clear()
            if self._stopped:
                break
            try:
                self.poll()
                close_old_connections()  # this thread's database connection, if stale
            except Exception:  # never let the thread die: requests rely on it
                logger.exception("Policy snapshot refresh failed.")

    def _next_wait(self) -> float:
        interval = float(get_config()["POLICY_REFRESH_INTERVAL"]) or 1.0
        if self.rebuild_at is not None:
            return max(0.0, min(interval, self.rebuild_at - self.clock()))
        return interval

    # -- deciding and refreshing --------------------------------------------------------

    def _interval(self, now: float) -> float:
        config = get_config()
        interval = float(config["POLICY_REFRESH_INTERVAL"])
        fallback = float(config["POLICY_FALLBACK_INTERVAL"])
        if self.remote_seen_at is not None and now - self.remote_seen_at < fallback:
            # The counter store tells of edits: the database is only asked in case a
            # publication was lost.
            return max(interval, fallback)
        return interval

    def _schedule_rebuild(self, now: float) -> None:
        if self.rebuild_at is not None:
            return
        if self._in_background():
            # At once: the thread's refresh takes in every edit made up to its start, so
            # a burst of edits costs a few refreshes back to back, none in a request.
            self.rebuild_at = now
            self._wake_refresher()
        else:
            # In a request: at most one refresh per POLICY_REFRESH_INTERVAL.
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
        if self.publish(latest, True):
            # The store knows of a revision again: if it reads 0 later, it lost its state
            # again (on Redis Cluster the policy thread's read is the only one that tells).
            self.remote_known = True
        if latest > self.snapshot.revision:
            self._schedule_rebuild(now)

    def _due(self, now: float) -> bool:
        if self.retry_at is not None and now < self.retry_at:
            return False  # the last refresh failed: wait out its backoff
        if self.rebuild_at is not None and now >= self.rebuild_at:
            return True
        return now - self.checked_at >= self._interval(now)

    def _refresh(self, now: float) -> None:
        """Take in what moved since the snapshot: its ban rows only, if nothing else
        changed, else a whole new snapshot, swapped in at once. A database error is never
        raised into a request: the last good snapshot stays (an empty one if none yet)."""
        started, built = time.perf_counter(), False
        try:
            # A process that never built one holds an empty stand-in: build it first.
            held = None if self.built_at == float("-inf") else self.snapshot
            number, policy_number = revision.read()
            if held is None or self._needs_rebuild(held, number, policy_number):
                self.snapshot = build_snapshot()
                self.built_at, self.ban_changes, built = now, 0, True
            elif number != held.revision:
                self._take_in_changes(held, number)
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
        assert self.snapshot is not None
        policy_snapshot_refreshed.send(
            sender=SnapshotHolder,
            revision=self.snapshot.revision,
            built=built,
            seconds=time.perf_counter() - started,
        )

    def _take_in_changes(self, held: PolicySnapshot, number: int) -> None:
        # Only ban rows and single tenants changed: the tenants are read again into a
        # copy swapped in whole (requests see them all or none), the ban rows applied in
        # place, as each pair's entry is one assignment.
        tenants = changed_tenants(held.revision)
        rows = changed_bans(held.revision)
        fresh = with_tenants_reread(held, tenants) if tenants else held
        apply_ban_rows(fresh, rows)
        fresh.revision = number
        self.snapshot = fresh
        self.ban_changes += len(rows)

    def _needs_rebuild(self, held: PolicySnapshot, number: int, policy_number: int) -> bool:
        # Anything but ban rows changed, the numbers went back (a restored database), or
        # enough bans came one by one that the expired ones are worth dropping.
        return (
            policy_number != held.policy_revision
            or number < held.revision
            or self.ban_changes >= MAX_BAN_CHANGES
        )

    def _refresh_failed(self, now: float, exc: DatabaseError) -> None:
        policy_snapshot_refresh_failed.send(sender=SnapshotHolder, error=exc)
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
