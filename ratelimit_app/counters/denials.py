"""A process-local record of keys that are over their limit, so that a client already
denied costs no Redis round trip for the rest of its known wait.

Exact: a key denied a cost-1 request at time t stays denied until t + Retry-After
whatever else happens (other requests only add to it), so answering from this record
admits nothing Redis would not. Entries are dropped at their Retry-After, when the
policy revision changes (an operator raised a limit), and oldest first beyond
``max_keys``. Ban checks are never recorded: an operator can lift a ban at any time.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ratelimit_app.counters.algorithms import BAN, US, LimitSpec
from ratelimit_app.counters.base import Decision, LimitResult

# (until, revision, result, recorded at, decision.now)
Entry = tuple[float, int, LimitResult, float, float]


class Denials:
    """Keys denied until a local deadline; ``clock`` (seconds) is injectable for tests."""

    def __init__(self, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every record: the counters they mirror were lost (a flush, a restart)."""
        with self._lock:
            self._entries.clear()

    def forget(self, keys: Sequence[str]) -> None:
        """Drop the records of ``keys`` (their counters were reset)."""
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def lookup(
        self, specs: Sequence[LimitSpec], revision: int, now: float | None = None
    ) -> Decision | None:
        """A denied Decision if one of ``specs`` is known to be over its limit, else None."""
        if not self._entries:
            return None
        now = self.clock() if now is None else now
        for spec in specs:
            entry = self._entries.get(spec.key)
            if entry is None or spec.shadow:
                continue
            until, entry_revision, result, then, decision_now = entry
            if until <= now or entry_revision != revision:
                with self._lock:
                    self._entries.pop(spec.key, None)
                continue
            return _replay(result, now - then, decision_now)
        return None

    def record(
        self, decision: Decision, revision: int, cost: int, now: float | None = None
    ) -> None:
        """Remember the binding key of a denied cost-1 decision until its Retry-After."""
        binding = decision.binding
        if decision.allowed or cost != 1 or binding is None or binding.spec.algorithm == BAN:
            return
        now = self.clock() if now is None else now
        with self._lock:
            self._entries[binding.spec.key] = (
                now + binding.retry_after,
                revision,
                binding,
                now,
                decision.now,
            )
            self._entries.move_to_end(binding.spec.key)
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)


def _replay(result: LimitResult, elapsed: float, decision_now: float) -> Decision:
    """The recorded denial as it stands ``elapsed`` seconds later."""
    figures = (
        0,
        result.limit,
        0,
        round(max(0.0, result.reset_after - elapsed) * US),
        round(max(0.0, result.retry_after - elapsed) * US),
    )
    return Decision([result.spec], figures, False, round((decision_now + elapsed) * US))
