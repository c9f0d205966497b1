"""What the operators' console shows of recent traffic, kept in the counter store: the
parties throttled per group (the time each was last refused), the would-deny counts of
shadow limits per minute, the sampled use per group and party per minute (the top
consumers), and when each API key was last counted. Bounded: at most MAX_THROTTLED
parties (the most recent), MAX_CONSUMERS per minute (the busiest), one time per API key,
KEEP_SECONDS of history; written in batches by each process (never by a request), under
one hash tag of its own (one cluster slot).
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ratelimit_app.counters.base import party_key

KEEP_SECONDS = 15 * 60
MAX_THROTTLED = 2000
MAX_CONSUMERS = 5000
SEEN_SECONDS = 30 * 86400  # an API key's last use is kept this long
TAG = "activity"
SEP = "|"

# (group, party, epoch seconds) of one refusal; (group, limit name, count) of shadow
# denials in one batch.
Throttled = tuple[str, str, float]
ShadowHits = tuple[str, str, int]
# (group, party, estimated requests) of sampled use; (party, epoch seconds) last counted.
Used = tuple[str, str, int]
Seen = tuple[str, float]


@dataclass
class Batch:
    """What one process noted between two writes."""

    throttled: Sequence[Throttled] = ()
    shadow: Sequence[ShadowHits] = ()
    used: Sequence[Used] = ()
    seen: Sequence[Seen] = ()


@dataclass
class Activity:
    """What was read: per group, the parties throttled since then (party -> last time),
    and per (group, limit) the shadow denials counted since then."""

    throttled: dict[str, dict[str, float]] = field(default_factory=dict)
    shadow: dict[tuple[str, str], int] = field(default_factory=dict)
    used: dict[str, dict[str, int]] = field(default_factory=dict)


def _minute(at: float) -> int:
    return int(at // 60)


def throttled_key(base: str) -> str:
    """The sorted set of recently throttled parties (member group|party, score a time)."""
    return party_key(base, TAG, "throttled")


def used_key(base: str, minute: int) -> str:
    """The sorted set of one minute's sampled use (member group|party, score requests)."""
    return party_key(base, TAG, f"used:{minute}")


def seen_key(base: str) -> str:
    """The hash of API key parties' last use (field party, value a time)."""
    return party_key(base, TAG, "seen")


def shadow_key(base: str, minute: int) -> str:
    """The hash of one minute's shadow denials (field group|limit, value a count)."""
    return party_key(base, TAG, f"shadow:{minute}")


def write_to_redis(client: Any, base: str, batch: Batch, now: float) -> None:
    """One pipelined round trip: the batch added, what is too old or too many dropped."""
    pipe = client.pipeline(transaction=False)
    key = throttled_key(base)
    if batch.throttled:
        pipe.zadd(key, {f"{group}{SEP}{party}": at for group, party, at in batch.throttled})
        pipe.zremrangebyscore(key, "-inf", now - KEEP_SECONDS)
        pipe.zremrangebyrank(key, 0, -(MAX_THROTTLED + 1))
        pipe.expire(key, KEEP_SECONDS)
    if batch.shadow:
        minute_key = shadow_key(base, _minute(now))
        for group, limit, count in batch.shadow:
            pipe.hincrby(minute_key, f"{group}{SEP}{limit}", count)
        pipe.expire(minute_key, KEEP_SECONDS + 60)
    if batch.used:
        minute_key = used_key(base, _minute(now))
        for group, party, count in batch.used:
            pipe.zincrby(minute_key, count, f"{group}{SEP}{party}")
        pipe.zremrangebyrank(minute_key, 0, -(MAX_CONSUMERS + 1))
        pipe.expire(minute_key, KEEP_SECONDS + 60)
    if batch.seen:
        pipe.hset(seen_key(base), mapping={party: at for party, at in batch.seen})
        pipe.expire(seen_key(base), SEEN_SECONDS)
    pipe.execute()


def read_from_redis(client: Any, base: str, since: float, now: float) -> Activity:
    """What happened since ``since`` (epoch seconds), in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(throttled_key(base), since, "+inf", withscores=True)
    minutes = range(_minute(since), _minute(now) + 1)
    for minute in minutes:
        pipe.hgetall(shadow_key(base, minute))
        pipe.zrange(used_key(base, minute), 0, -1, withscores=True)
    replies = pipe.execute()
    found = Activity()
    for member, at in replies[0]:
        group, _, party = _text(member).partition(SEP)
        found.throttled.setdefault(group, {})[party] = float(at)
    for hits in replies[1::2]:
        for name, count in hits.items():
            group, _, limit = _text(name).partition(SEP)
            found.shadow[(group, limit)] = found.shadow.get((group, limit), 0) + int(count)
    for used in replies[2::2]:
        for member, count in used:
            group, _, party = _text(member).partition(SEP)
            per_group = found.used.setdefault(group, {})
            per_group[party] = per_group.get(party, 0) + int(count)
    return found


def last_seen_in_redis(client: Any, base: str, parties: Sequence[str]) -> dict[str, float]:
    """When each of ``parties`` was last counted (absent: not within SEEN_SECONDS)."""
    if not parties:
        return {}
    values = client.hmget(seen_key(base), list(parties))
    return {party: float(at) for party, at in zip(parties, values, strict=True) if at}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ProcessActivity:
    """The same records in process memory (the in-process backend: one process's own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._throttled: dict[tuple[str, str], float] = {}
        self._shadow: dict[tuple[int, str, str], int] = {}
        self._used: dict[tuple[int, str, str], int] = {}
        self._seen: dict[str, float] = {}

    def write(self, batch: Batch, now: float) -> None:
        """Add a batch; drop what is too old or too many, as in Redis."""
        with self._lock:
            for group, party, at in batch.throttled:
                self._throttled[(group, party)] = max(at, self._throttled.get((group, party), 0))
            for group, limit, count in batch.shadow:
                key = (_minute(now), group, limit)
                self._shadow[key] = self._shadow.get(key, 0) + count
            for group, party, count in batch.used:
                used = (_minute(now), group, party)
                self._used[used] = self._used.get(used, 0) + count
            self._seen.update(batch.seen)
            kept = sorted(self._throttled.items(), key=lambda item: item[1])[-MAX_THROTTLED:]
            self._throttled = {k: at for k, at in kept if at > now - KEEP_SECONDS}
            oldest = _minute(now - KEEP_SECONDS)
            self._shadow = {k: v for k, v in self._shadow.items() if k[0] >= oldest}
            self._used = {k: v for k, v in self._used.items() if k[0] >= oldest}
            this_minute = sorted(
                (count, key) for key, count in self._used.items() if key[0] == _minute(now)
            )
            for _count, key in this_minute[: max(0, len(this_minute) - MAX_CONSUMERS)]:
                del self._used[key]  # the least busy of the minute, as ZREMRANGEBYRANK does

    def last_seen(self, parties: Sequence[str]) -> dict[str, float]:
        """When each of ``parties`` was last counted."""
        with self._lock:
            return {party: self._seen[party] for party in parties if party in self._seen}

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
            for (minute, group, party), count in self._used.items():
                if _minute(since) <= minute <= _minute(now):
                    per_group = found.used.setdefault(group, {})
                    per_group[party] = per_group.get(party, 0) + count
        return found
