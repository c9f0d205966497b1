"""Recent traffic for the operators' console: the clients throttled per group and the
would-deny counts of shadow limits.

A verdict observer (a plain call per decided request, see pipeline.verdict_observers)
notes a refused request's party and an allowed request's shadow limits that would have
refused it. Notes are batched in the process and written to the counter store by a
thread of the process every FLUSH_SECONDS (counters.activity), never inside a request:
a request still makes its one round trip, and a denied client answered from the local
record of denials makes none. Parties are keyed hashes, as in the log.
"""

import logging
import os
import threading
import time
from typing import Any

from ratelimit_app import hashing, runtime
from ratelimit_app.counters.algorithms import BAN
from ratelimit_app.counters.base import FIELDS, BackendUnavailable, Decision
from ratelimit_app.enforcement import pipeline
from ratelimit_app.enforcement.verdict import Verdict

logger = logging.getLogger("ratelimit_app")

FLUSH_SECONDS = 2.0
# Distinct notes held between two flushes (a flood of new parties is sampled: the first
# ones of the batch are kept).
MAX_PENDING = 10_000
NO_GROUP = "none"


def party_of_key(key: str) -> str:
    """A counter key's party as the console shows it: a keyed hash of its hash tag (the
    same client reads alike whichever of its limits refused it)."""
    start, end = key.find("{"), key.find("}")
    tag = key[start + 1 : end] if 0 <= start < end else key
    return hashing.short_hash("log", tag)


class Recorder:
    """Notes since the last flush, and the thread that writes them (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._throttled: dict[tuple[str, str], float] = {}
        self._shadow: dict[tuple[str, str], int] = {}
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def observe(self, verdict: Verdict) -> None:
        """The verdict observer: note a refusal, or an allowed request's shadow denials."""
        decision = verdict.decision
        if decision is None:
            return
        if decision.allowed:
            if 0 not in decision._figures[::FIELDS]:
                return  # no limit refused (the common case: nothing to note)
            # A limit refused an allowed request: only a shadow limit can.
            self._note_shadow(verdict.group or NO_GROUP, decision)
        else:
            binding = decision.binding
            if binding is None:
                return
            self._note_throttled(verdict.group or NO_GROUP, party_of_key(binding.spec.key))
        self._ensure_thread()

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
        if not throttled and not shadow:
            return
        rows = [(group, party, at) for (group, party), at in throttled.items()]
        hits = [(group, limit, count) for (group, limit), count in shadow.items()]
        try:
            runtime.get_backend().write_activity(rows, hits, runtime.wall_clock())
        except BackendUnavailable:
            logger.debug("Recent traffic not recorded: the counter store is down.")

    def clear(self) -> None:
        """Drop the notes held (tests)."""
        with self._lock:
            self._throttled, self._shadow = {}, {}

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's thread is not ours
            self._pid, self._thread = os.getpid(), None
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
