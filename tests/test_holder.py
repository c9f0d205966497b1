"""SnapshotHolder when the database fails, and when the counter store loses its revision.

The clock is the holder's own (``clock``): the tests move it and never sleep. Expected
figures come from the holder's contract: after a failed refresh the next attempt waits
1 s, doubling up to 30 s, and requests keep the last good snapshot meanwhile; the store
is told the latest revision again at most once per POLICY_REFRESH_INTERVAL.
"""

import logging
import os
import threading

import pytest
from django.db import OperationalError

from ratelimit_app.policy import SnapshotHolder, revision
from ratelimit_app.policy import holder as holder_module
from ratelimit_app.signals import policy_snapshot_refresh_failed
from tests.clock_support import ManualClock

pytestmark = pytest.mark.django_db
WAIT = 10  # seconds an event may take at most; a passing test never waits this long


@pytest.fixture
def database(monkeypatch):
    """The revision reads of the holder, made to fail while ``down`` is set."""
    state = {"down": False, "reads": 0}
    real_read = revision.read

    def read():
        state["reads"] += 1
        if state["down"]:
            raise OperationalError("the database is down")
        return real_read()

    monkeypatch.setattr(holder_module.revision, "read", read)
    return state


@pytest.fixture
def failures():
    errors = []

    def receiver(sender, error, **kwargs):
        errors.append((sender, error))

    policy_snapshot_refresh_failed.connect(receiver)
    yield errors
    policy_snapshot_refresh_failed.disconnect(receiver)


def test_attempts_back_off_from_1_s_doubling_to_30_s(database, failures, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 0.5}
    clock = ManualClock()
    holder = SnapshotHolder(clock=clock)
    good = holder.get()
    database["down"] = True
    start = clock.now = clock.now + 1
    waits = []
    for _ in range(7):
        holder.get()
        waits.append(holder.retry_at - clock.now)
        clock.now = holder.retry_at
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert holder.failed_refreshes == 7
    assert holder.get() is good  # requests keep the last good snapshot (an 8th attempt)
    assert [sender for sender, _error in failures] == [SnapshotHolder] * 8
    assert all(isinstance(error, OperationalError) for _sender, error in failures)
    assert clock.now == start + 1 + 2 + 4 + 8 + 16 + 30 + 30


def test_no_attempt_is_made_before_the_backoff_ends(database, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 0.5}
    clock = ManualClock()
    holder = SnapshotHolder(clock=clock)
    holder.get()
    database["down"] = True
    clock.now += 1
    holder.get()  # fails: the next attempt in 1 s
    reads = database["reads"]
    clock.now += 0.9
    holder.get()
    assert database["reads"] == reads
    clock.now += 0.1
    holder.get()
    assert database["reads"] == reads + 1


def test_the_first_failure_and_the_recovery_are_logged_once_each(database, caplog, settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 0.5}
    clock = ManualClock()
    holder = SnapshotHolder(clock=clock)
    holder.get()
    database["down"] = True
    with caplog.at_level(logging.WARNING, logger="ratelimit_app"):
        for _ in range(3):
            clock.now = max(clock.now + 1, holder.retry_at or 0)
            holder.get()
        database["down"] = False
        clock.now = holder.retry_at
        holder.get()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "ERROR",
            "Policy snapshot not refreshed (OperationalError); requests use the last good "
            "snapshot until the database answers.",
        ),
        ("WARNING", "Policy snapshot refreshed again after 3 failed attempts."),
    ]
    assert (holder.failed_refreshes, holder.retry_at) == (0, None)


def test_a_process_whose_first_build_fails_applies_no_policy_and_says_so(
    database, caplog, settings
):
    database["down"] = True
    holder = SnapshotHolder(clock=ManualClock())
    with caplog.at_level(logging.ERROR, logger="ratelimit_app"):
        snapshot = holder.get()
    assert (snapshot.groups, snapshot.tier_limits, snapshot.revision) == ({}, {}, 0)
    message = caplog.records[0].getMessage()
    assert message.endswith("; no policy applies until the database answers.")


class Published:
    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, number: int, only_if_missing: bool) -> None:
        self.calls.append((number, only_if_missing))


def test_a_store_that_lost_its_revision_is_told_again_at_most_once_an_interval(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 5}
    clock, published = ManualClock(), Published()
    holder = SnapshotHolder(clock=clock, publish=published)
    revision.bump()
    number = holder.get().revision
    assert number > 0
    assert holder.note_remote_revision(number) is False  # the store knows it
    assert holder.note_remote_revision(0) is True  # it knew one, and lost it
    assert published.calls == [(number, True)]  # only where missing: an edit's wins
    clock.now += 4.9
    assert holder.note_remote_revision(0) is False  # already known lost
    assert published.calls == [(number, True)]
    clock.now += 0.1
    holder.note_remote_revision(0)
    assert published.calls == [(number, True), (number, True)]


def test_a_holder_with_no_store_to_tell_never_counts_a_loss(settings):
    """Without a publisher nothing made the store know a revision: a 0 is never a loss."""
    inline(settings)
    forgotten = []
    holder = SnapshotHolder(clock=ManualClock(), on_lost=lambda: forgotten.append(True))
    holder.get()
    assert holder.note_remote_revision(0) is False
    assert holder.note_remote_revision(0) is False
    assert forgotten == []


def test_a_store_told_again_that_reads_0_later_has_lost_its_state_again(settings):
    """On Redis Cluster the policy thread's read is the only one that tells of a flush:
    after the holder published the revision into an empty store, the store knows one,
    so a later 0 is a loss (and the record of denials is forgotten) even if no read in
    between told of the number."""
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 5}
    clock, forgotten, taken = ManualClock(), [], [True]
    holder = SnapshotHolder(
        clock=clock,
        publish=lambda number, only_if_missing: taken[0],
        on_lost=lambda: forgotten.append(clock.now),
    )
    holder.get()
    assert holder.note_remote_revision(0) is False  # never heard from: told now
    assert holder.note_remote_revision(0) is True  # it took it, and lost it again
    assert forgotten == [clock.now]
    taken[0] = False  # the store is down: the publication did not reach it
    clock.now += 5
    assert holder.note_remote_revision(0) is False
    assert holder.note_remote_revision(0) is False
    assert len(forgotten) == 1


def test_the_database_revision_is_published_when_newer_and_a_rebuild_follows(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 5}
    clock, published = ManualClock(), Published()
    holder = SnapshotHolder(clock=clock, publish=published)
    old = holder.get()
    newer = revision.bump()  # an edit this holder has not seen
    holder.note_remote_revision(0)
    assert published.calls == [(newer, True)]  # never its own older number
    # Inline (the tests' mode): at most one rebuild per interval after the last build.
    assert holder.rebuild_at == clock.now + 5
    clock.now += 5
    assert holder.get().revision == newer and holder.get() is not old


def test_with_the_database_down_the_store_is_told_the_snapshots_revision(settings, monkeypatch):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 5}
    clock, published = ManualClock(), Published()
    holder = SnapshotHolder(clock=clock, publish=published)
    revision.bump()
    number = holder.get().revision
    revision.bump()

    def down():
        raise OperationalError("the database is down")

    monkeypatch.setattr(holder_module.revision, "current", down)
    holder.note_remote_revision(0)
    assert published.calls == [(number, True)]
    assert holder.rebuild_at is None


def test_without_a_snapshot_nothing_is_published(settings):
    published = Published()
    holder = SnapshotHolder(clock=ManualClock(), publish=published)
    holder.note_remote_revision(0)
    assert published.calls == []


def test_polling_asks_the_store_then_refreshes_when_it_tells_of_a_newer_revision(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 5}
    told = {"revision": None}
    clock = ManualClock()

    def read_remote():
        if told["revision"] == "down":
            raise ConnectionError("the store is down")
        return told["revision"]

    holder = SnapshotHolder(clock=clock, read_remote=read_remote)
    first = holder.get()
    newer = revision.bump()
    for answer in (None, "down"):  # the store cannot tell: the database is asked when due
        told["revision"] = answer
        holder.poll()
        assert holder.get() is first and holder.rebuild_at is None
    told["revision"] = newer
    holder.poll()  # inline: rebuilt once the interval since the last build is over
    assert holder.rebuild_at == clock.now + 5
    clock.now += 5
    holder.poll()
    assert holder.snapshot.revision == newer


def test_the_thread_waits_the_interval_or_until_a_rebuild_is_due(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 5}
    clock = ManualClock()
    holder = SnapshotHolder(clock=clock)
    assert holder._next_wait() == 5.0
    holder.rebuild_at = clock.now + 2
    assert holder._next_wait() == 2.0
    holder.rebuild_at = clock.now - 3  # overdue: at once
    assert holder._next_wait() == 0.0
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH_INTERVAL": 0}
    holder.rebuild_at = None
    assert holder._next_wait() == 1.0  # never a busy loop


@pytest.mark.django_db(transaction=True)
def test_one_daemon_thread_refreshes_in_the_background_until_stopped(settings, caplog):
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "POLICY_REFRESH": "background",
        "POLICY_REFRESH_INTERVAL": 0.05,
    }
    polled = threading.Event()
    holder = SnapshotHolder()
    real_poll = holder.poll

    def poll():
        polled.set()
        raise RuntimeError("a refresh went wrong")  # logged; the thread goes on

    holder.get()
    holder.poll = poll
    with caplog.at_level(logging.ERROR, logger="ratelimit_app"):
        holder._wake_refresher()
        thread = holder._thread
        assert thread is not None and thread.daemon and thread.name == "ratelimit-policy"
        assert polled.wait(WAIT)
        polled.clear()
        assert polled.wait(WAIT)  # still running after a failed refresh
        holder._wake_refresher()
        assert holder._thread is thread  # one thread per process
        holder.poll = real_poll
        holder.stop()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert "Policy snapshot refresh failed." in [r.getMessage() for r in caplog.records]
    holder._wake_refresher()
    assert holder._thread is thread  # a stopped holder starts no thread again


def test_each_refresh_says_whether_it_rebuilt_and_enough_ban_rows_rebuild(monkeypatch):
    from ratelimit_app.signals import policy_snapshot_refreshed
    from tests.factories import BanRuleFactory, CredentialBanFactory

    monkeypatch.setattr(holder_module, "MAX_BAN_CHANGES", 2)
    refreshed = []

    def receiver(sender, revision, built, seconds, **kwargs):
        refreshed.append((sender, revision, built))
        assert 0 <= seconds < WAIT

    rule = BanRuleFactory()
    holder = SnapshotHolder()
    policy_snapshot_refreshed.connect(receiver)
    try:
        expected = []
        holder.get()
        expected.append((SnapshotHolder, revision.current(), True))
        for built in (False, False, True):  # two rows taken in, then a whole build
            CredentialBanFactory(rule=rule)
            holder.get()
            expected.append((SnapshotHolder, revision.current(), built))
            assert holder.ban_changes == (0 if built else len(expected) - 1)
    finally:
        policy_snapshot_refreshed.disconnect(receiver)
    assert refreshed == expected


def inline(settings, **more):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH": "inline", **more}


def test_a_process_whose_first_build_failed_builds_once_the_database_answers(database, settings):
    """Even where no edit was ever counted (revision 0, as after loaddata): the empty
    stand-in is no snapshot to keep."""
    from ratelimit_app.models import PolicyRevision
    from tests.factories import EndpointGroupFactory

    inline(settings)
    EndpointGroupFactory(slug="web")
    PolicyRevision.objects.all().delete()
    database["down"] = True
    clock = ManualClock()
    holder = SnapshotHolder(clock=clock)
    assert holder.get().groups == {}
    database["down"] = False
    clock.now += holder_module.RETRY_FIRST_SECONDS
    assert holder.get().groups == {"web": False}


def test_a_store_never_heard_from_has_lost_nothing(settings):
    inline(settings)
    forgotten = []
    holder = SnapshotHolder(clock=ManualClock(), on_lost=lambda: forgotten.append(True))
    assert holder.note_remote_revision(0) is False  # it never told of a revision
    assert forgotten == []
    holder.note_remote_revision(3)
    assert holder.note_remote_revision(0) is True  # it told of one, and lost it
    assert forgotten == [True]
    assert holder.note_remote_revision(0) is False  # already known lost
    assert forgotten == [True]


def test_the_store_telling_of_the_held_revision_or_of_one_before_any_build_asks_nothing(
    settings,
):
    inline(settings)
    holder = SnapshotHolder(clock=ManualClock())
    holder.note_remote_revision(5)  # no snapshot yet: the first request builds one
    assert holder.rebuild_at is None
    revision.bump()  # a revision of its own (0 would say the store lost one)
    held = holder.get()
    holder.note_remote_revision(held.revision)
    assert holder.rebuild_at is None and holder.get() is held


def test_invalidate_makes_the_next_request_ask_the_database(settings):
    inline(settings, POLICY_REFRESH_INTERVAL=5)
    holder = SnapshotHolder(clock=ManualClock())
    held = holder.get()
    newer = revision.bump()
    assert holder.get() is held  # within the interval: not asked
    holder.invalidate()
    assert holder.get().revision == newer


def test_the_database_is_asked_every_fallback_interval_while_the_store_tells(settings):
    inline(settings, POLICY_REFRESH_INTERVAL=1, POLICY_FALLBACK_INTERVAL=30)
    clock = ManualClock()
    holder = SnapshotHolder(clock=clock)
    clock.now = 1000.0
    revision.bump()  # a revision the store can tell of (0 would mean it lost one)
    holder.get()
    holder.note_remote_revision(holder.snapshot.revision)  # the store tells, at 1000 s
    clock.now = 1010.0
    holder.refresh_now()  # checked at 1010 s: nothing new
    newer = revision.bump()  # an edit whose publication the store missed
    clock.now = 1029.0
    assert holder.get().revision != newer  # the store told 29 s ago: trusted, not asked
    clock.now = 1030.0  # 30 s: it may have missed an edit; checks go back to every 1 s
    assert holder.get().revision == newer


def test_ban_rows_this_process_wrote_are_taken_in_at_once(settings):
    from datetime import timedelta

    from django.utils import timezone

    inline(settings)
    holder = SnapshotHolder(clock=ManualClock())
    held = holder.get()
    now = timezone.now()
    holder.take_in_bans([(3, "ab" * 32, now + timedelta(seconds=600), None, now)])
    assert held.recorded_ban(3, "ab" * 32) == (now + timedelta(seconds=600)).timestamp()
    SnapshotHolder().take_in_bans([(3, "ab" * 32, now, None, now)])  # none held: nothing


def test_in_the_background_a_request_never_refreshes_itself(settings, monkeypatch):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH": "background"}
    clock = ManualClock()
    holder = SnapshotHolder(clock=clock)
    woken = []
    monkeypatch.setattr(holder, "_wake_refresher", lambda: woken.append(clock.now))
    held = holder.get()  # the first request builds: there is nothing else to serve
    newer = revision.bump()
    holder.note_remote_revision(newer)
    assert holder.rebuild_at == clock.now  # the thread rebuilds at once
    monkeypatch.setattr(holder_module, "build_snapshot", pytest.fail)
    assert holder.get() is held  # due, yet this request is served with what it holds
    assert len(woken) >= 2


def test_a_forked_child_gets_its_own_refresher_thread_and_lock(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "POLICY_REFRESH": "background"}
    holder = SnapshotHolder()
    holder.get()
    parents_lock = holder._lock
    holder._pid = -1  # as a child sees it after fork(): the parent's pid
    holder._wake_refresher()
    try:
        assert holder._pid == os.getpid() and holder._lock is not parents_lock
        assert holder._thread is not None and holder._thread.is_alive()
    finally:
        holder.stop()
        holder._thread.join(WAIT)


def test_a_newer_revision_the_store_tells_right_after_a_republish_is_taken_in(settings):
    inline(settings, POLICY_REFRESH_INTERVAL=5)
    told = {"revision": 0}
    clock = ManualClock()
    holder = SnapshotHolder(clock=clock, read_remote=lambda: told["revision"])
    holder.get()
    built_at = clock.now
    holder.poll()  # the store lost its revision: it is told ours again, now
    told["revision"] = revision.bump()  # then another process's edit is published
    clock.now += 1
    holder.poll()
    assert holder.rebuild_at == built_at + 5  # inline: one interval after the last build
