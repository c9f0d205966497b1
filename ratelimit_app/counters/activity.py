"""What the operators' console shows of recent traffic, kept in the counter store: the
parties throttled per group (the time each was last refused) and the would-deny counts
of shadow limits per minute. Bounded: at most MAX_THROTTLED parties (the most recent)
and KEEP_SECONDS of history; written in batches by each process (never by a request),
under one hash tag of its own (one cluster slot).
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ratelimit_app.counters.base import party_key

KEEP_SECONDS = 15 * 60
MAX_THROTTLED = 2000
TAG = "activity"
SEP = "|"

# (group, party, epoch seconds) of one refusal; (group, limit name, count) of shadow
# denials in one batch.
Throttled = tuple[str, str, float]
ShadowHits = tuple[str, str, int]


@dataclass
class Activity:
    """What was read: per group, the parties throttled since then (party -> last time),
    and per (group, limit) the shadow denials counted since then."""

    throttled: dict[str, dict[str, float]] = field(default_factory=dict)
    shadow: dict[tuple[str, str], int] = field(default_factory=dict)


def _minute(at: float) -> int:
    return int(at // 60)


def throttled_key(base: str) -> str:
    """The sorted set of recently throttled parties (member group|party, score a time)."""
    return party_key(base, TAG, "throttled")


def shadow_key(base: str, minute: int) -> str:
    """The hash of one minute's shadow denials (field group|limit, value a count)."""
    return party_key(base, TAG, f"shadow:{minute}")


def write_to_redis(
    client: Any, base: str, throttled: Sequence[Throttled], shadow: Sequence[ShadowHits], now: float
) -> None:
    """One pipelined round trip: the batch added, what is too old or too many dropped."""
    pipe = client.pipeline(transaction=False)
    key = throttled_key(base)
    if throttled:
        pipe.zadd(key, {f"{group}{SEP}{party}": at for group, party, at in throttled})
        pipe.zremrangebyscore(key, "-inf", now - KEEP_SECONDS)
        pipe.zremrangebyrank(key, 0, -(MAX_THROTTLED + 1))
        pipe.expire(key, KEEP_SECONDS)
    if shadow:
        minute_key = shadow_key(base, _minute(now))
        for group, limit, count in shadow:
            pipe.hincrby(minute_key, f"{group}{SEP}{limit}", count)
        pipe.expire(minute_key, KEEP_SECONDS + 60)
    pipe.execute()


def read_from_redis(client: Any, base: str, since: float, now: float) -> Activity:
    """What happened since ``since`` (epoch seconds), in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(throttled_key(base), since, "+inf", withscores=True)
    minutes = range(_minute(since), _minute(now) + 1)
    for minute in minutes:
        pipe.hgetall(shadow_key(base, minute))
    replies = pipe.execute()
    found = Activity()
    for member, at in replies[0]:
        group, _, party = _text(member).partition(SEP)
        found.throttled.setdefault(group, {})[party] = float(at)
    for hits in replies[1:]:
        for name, count in hits.items():
            group, _, limit = _text(name).partition(SEP)
            found.shadow[(group, limit)] = found.shadow.get((group, limit), 0) + int(count)
    return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ProcessActivity:
    """The same records in process memory (the in-process backend: one process's own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._throttled: dict[tuple[str, str], float] = {}
        self._shadow: dict[tuple[int, str, str], int] = {}

    def write(
        self, throttled: Sequence[Throttled], shadow: Sequence[ShadowHits], now: float
    ) -> None:
        """Add a batch; drop what is older than KEEP_SECONDS or beyond MAX_THROTTLED."""
        with self._lock:
            for group, party, at in throttled:
                self._throttled[(group, party)] = max(at, self._throttled.get((group, party), 0))
            for group, limit, count in shadow:
                key = (_minute(now), group, limit)
                self._shadow[key] = self._shadow.get(key, 0) + count
            kept = sorted(self._throttled.items(), key=lambda item: item[1])[-MAX_THROTTLED:]
            self._throttled = {k: at for k, at in kept if at > now - KEEP_SECONDS}
            oldest = _minute(now - KEEP_SECONDS)
            self._shadow = {k: v for k, v in self._shadow.items() if k[0] >= oldest}

    def read(self, since: float, now: float) -> Activity:
        """What happened since ``since`` (epoch seconds)."""
        found = Activity()
        with self._lock:
            for (group, party), at in self._throttled.items():
                if at >= since:
                    found.throttled.setdefault(group, {})[party] = at
            for (minute, group, limit), count in self._shadow.items():
                if _minute(since) <= minute <= _minute(now):
                    found.shadow[(group, limit)] = found.shadow.get((group, limit), 0) + count
        return found
