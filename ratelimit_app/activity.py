"""Recent traffic for the operators' console: the clients throttled per group, the
would-deny counts of shadow limits, the top consumers per group, an API key's last use.

A verdict observer (a plain call per decided request, see pipeline.verdict_observers)
notes a refused request's party, an allowed request's shadow limits that would have
refused it, the parties of one allowed request in SAMPLE_EVERY (their use, scaled back
up), and the API key each request is counted for. Notes are batched in the process and
written to the counter store by a thread of the process every FLUSH_SECONDS
(counters.activity), never inside a request: a request still makes its one round trip,
and a denied client answered from the local record of denials makes none. Parties are
stored as their counter keys' hash tags (keyed hashes): the console names those of
tenants and API keys, and shows others (addresses, users) as a keyed hash of the tag.
"""

import logging
import os
import threading
import time
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from ratelimit_app import hashing, runtime
from ratelimit_app.conf import WATCHED_SETTINGS
from ratelimit_app.counters.activity import Batch
from ratelimit_app.counters.algorithms import BAN, LimitSpec
from ratelimit_app.counters.base import FIELDS, BackendUnavailable, Decision
from ratelimit_app.enforcement import pipeline
from ratelimit_app.enforcement.verdict import Verdict

logger = logging.getLogger("ratelimit_app")

FLUSH_SECONDS = 2.0
# One allowed request in this many has its parties' use noted (weighted by it).
SAMPLE_EVERY = 16
# Distinct notes held between two flushes (a flood of new parties is sampled: the first
# ones of the batch are kept).
MAX_PENDING = 10_000
NO_GROUP = "none"


def party_of_key(key: str) -> str:
    """A counter key's party: its hash tag (a keyed hash of the scope and identity)."""
    start, end = key.find("{"), key.find("}")
    return key[start + 1 : end] if 0 <= start < end else key


def shown_party(party: str) -> str:
    """A party no name is known for, as the console and the log show it."""
    return hashing.short_hash("log", party)


def _api_key_party(spec: LimitSpec) -> str:
    """The party of an API key's limit, else "" (memoized on the frozen spec)."""
    cached = spec.__dict__.get("_console_key_party")
    if cached is None:
        scope = spec.name.rsplit("-", 2)[1] if spec.name.count("-") >= 2 else ""
        cached = party_of_key(spec.key) if scope == "api_key" else ""
        spec.__dict__["_console_key_party"] = cached
    return str(cached)


class Recorder:
    """Notes since the last flush, and the thread that writes them (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._throttled: dict[tuple[str, str], float] = {}
        self._shadow: dict[tuple[str, str], int] = {}
        self._used: dict[tuple[str, str], int] = {}
        self._seen: set[str] = set()
        self._allowed = 0
        self._thread: threading.Thread | None = None

    def observe(self, verdict: Verdict) -> None:
        """The verdict observer: note a refusal, or an allowed request's shadow denials."""
        decision = verdict.decision
        if decision is None:
            return
        self._note_seen(decision, verdict.api_key_party)
        if decision.allowed:
            self._allowed += 1
            if self._allowed >= SAMPLE_EVERY:
                self._allowed = 0
                self._note_use(verdict.group or NO_GROUP, decision)
            if 0 in decision._figures[::FIELDS]:
                # A limit refused an allowed request: only a shadow limit can.
                self._note_shadow(verdict.group or NO_GROUP, decision)
        else:
            binding = decision.binding
            if binding is not None:
                self._note_throttled(verdict.group or NO_GROUP, party_of_key(binding.spec.key))
        if self._thread is None:
            self._ensure_thread()

    def _note_seen(self, decision: Decision, presented: str) -> None:
        # The time is the flush's (FLUSH_SECONDS apart): no clock read per request. The
        # key presented, whether or not a per-key limit applied, and the keys counted.
        if presented and (presented in self._seen or len(self._seen) < MAX_PENDING):
            self._seen.add(presented)
        for spec in decision._specs:
            party = spec.__dict__.get("_console_key_party")
            if party is None:
                party = _api_key_party(spec)
            if party and (party in self._seen or len(self._seen) < MAX_PENDING):
                self._seen.add(party)

    def _note_use(self, group: str, decision: Decision) -> None:
        parties = {party_of_key(spec.key) for spec in decision._specs if spec.algorithm != BAN}
        with self._lock:
            for party in parties:
                key = (group, party)
                if key in self._used or len(self._used) < MAX_PENDING:
                    self._used[key] = self._used.get(key, 0) + SAMPLE_EVERY

    def _note_throttled(self, group: str, party: str) -> None:
        key = (group, party)
        if key in self._throttled or len(self._throttled) < MAX_PENDING:
            self._throttled[key] = runtime.wall_clock()

    def _note_shadow(self, group: str, decision: Decision) -> None:
        for result in decision.results:
            if not result.allowed and result.spec.algorithm != BAN:
                key = (group, result.spec.name)
                with self._lock:
                    self._shadow[key] = self._shadow.get(key, 0) + 1

    def flush(self) -> None:
        """Write the notes held to the counter store (dropped if it does not answer)."""
        with self._lock:
            throttled, self._throttled = self._throttled, {}
            shadow, self._shadow = self._shadow, {}
            used, self._used = self._used, {}
            seen, self._seen = self._seen, set()
            if not (throttled or shadow or used or seen):
                return
            # The store the notes were taken for: a settings change clears the notes
            # under this lock (below), so notes never reach a store configured after.
            backend = runtime.get_backend()
        now = runtime.wall_clock()
        batch = Batch(
            throttled=[(group, party, at) for (group, party), at in throttled.items()],
            shadow=[(group, limit, count) for (group, limit), count in shadow.items()],
            used=[(group, party, count) for (group, party), count in used.items()],
            seen=[(party, now) for party in seen],
        )
        try:
            backend.write_activity(batch, now)
        except BackendUnavailable:
            logger.debug("Recent traffic not recorded: the counter store is down.")

    def clear(self) -> None:
        """Drop the notes held (tests)."""
        with self._lock:
            self._throttled, self._shadow, self._used, self._seen = {}, {}, {}, set()

    def forked(self) -> None:
        """In a forked child: the parent's thread is not running here."""
        self._thread, self._lock = None, threading.Lock()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="ratelimit-activity", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # never let the thread die
                logger.exception("Recent traffic not recorded.")


recorder = Recorder()
os.register_at_fork(after_in_child=recorder.forked)


@receiver(setting_changed)
def _clear_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    # Another store or key prefix (tests): notes taken for the old one are not the new's.
    if setting in WATCHED_SETTINGS:
        recorder.clear()


def connect() -> None:
    """Start noting recent traffic (AppConfig.ready)."""
    if recorder.observe not in pipeline.verdict_observers:
        pipeline.verdict_observers.append(recorder.observe)


def recent(minutes: int = 5) -> Any:
    """What the counter store holds of the last ``minutes`` (this process's notes written
    first): a counters.activity.Activity, or None if the store keeps none. Raises
    BackendUnavailable."""
    recorder.flush()
    now = runtime.wall_clock()
    return runtime.get_backend().read_activity(now - minutes * 60, now)


def last_seen(parties: list[str]) -> dict[str, float]:
    """When each of ``parties`` (API keys' hash tags) was last counted, as far as the
    counter store knows (this process's notes written first). Raises BackendUnavailable."""
    recorder.flush()
    return runtime.get_backend().last_seen(parties)
