"""Counters in Redis: every limit of a request in one EVALSHA, on Redis's own clock."""

from collections.abc import Sequence
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any

import redis as redis_lib

from ratelimit_app.counters import activity
from ratelimit_app.counters.algorithms import (
    BAN,
    FIXED_WINDOW,
    GCRA,
    SLIDING_WINDOW,
    SUBWINDOWS,
    US,
    LimitSpec,
)
from ratelimit_app.counters.base import (
    FIELDS,
    Backend,
    BackendUnavailable,
    Decision,
    key_base,
    party_key,
    validate_specs,
)
from ratelimit_app.counters.channel import Channel, bulk
from ratelimit_app.counters.failures import FailureCounter, FailureResult

# Long enough to matter, short enough that a lost publish cannot mislead for long.
REVISION_TTL = 24 * 3600
# What a failing Redis raises (redis-py's cluster errors are not all RedisErrors), and
# what a connection the settings cannot make raises (system checks E003 and E009 say
# why): either way the failure mode applies, never a 500.
REDIS_ERRORS = (
    redis_lib.RedisError,
    redis_lib.exceptions.RedisClusterException,
    AttributeError,
    TypeError,
)
ALGORITHM_CODES = {GCRA: 1, SLIDING_WINDOW: 2, FIXED_WINDOW: 3, BAN: 4}


def load_script(name: str, *parts: str) -> str:
    """A Lua script shipped in ``ratelimit_app/counters/lua/``, after the shared clock
    and the shared ``parts`` it uses (ring.lua: the rolling window's encoding)."""
    folder = resources.files("ratelimit_app.counters").joinpath("lua")
    names = ("clock.lua", *parts, name)
    return "".join(folder.joinpath(part).read_text() for part in names)


def limiter_client(alias: str, timeout: float) -> redis_lib.Redis:
    """A Redis client on the same server as the django-redis cache ``alias``.

    It has its own pool with short socket timeouts, so a slow Redis costs a request
    at most ``timeout`` seconds whatever the cache's own timeouts are.
    """
    from django.core.cache import caches

    # A cache object of our own, not the request cycle's: Django closes every cache a
    # thread has used at the end of each request, which would then cost every request.
    cache: Any = caches.create_connection(alias)  # a django-redis cache (system check E003)
    base_pool = cache.client.get_client(write=True).connection_pool
    kwargs = dict(base_pool.connection_kwargs)
    kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout, retry=None)
    kwargs.pop("retry_on_timeout", None)
    kwargs.pop("retry_on_error", None)
    pool = redis_lib.ConnectionPool(connection_class=base_pool.connection_class, **kwargs)
    return redis_lib.Redis(connection_pool=pool)


def unavailable(exc: Exception) -> BackendUnavailable:
    """The BackendUnavailable for a Redis error (its type only: messages can hold
    addresses and keys)."""
    exceptions = redis_lib.exceptions
    if isinstance(exc, (exceptions.AskError, exceptions.ClusterCrossSlotError)):
        # MOVED or CROSSSLOT on a one-server URL: the server is a cluster node, and no
        # request's limits would ever be counted.
        return BackendUnavailable(
            f"Redis answered {type(exc).__name__}: it is a Redis Cluster node; set "
            "STORAGE_URL to redis+cluster://host:port[,host:port]",
            kind=type(exc).__name__,
        )
    kind = type(exc).__name__
    return BackendUnavailable(f"Redis did not answer: {kind}", kind=kind)


def url_client(url: str, timeout: float) -> redis_lib.Redis:
    """A Redis client for a ``redis://``, ``rediss://`` or ``unix://`` storage URL, with
    the same short timeouts and no retries as ``limiter_client``."""
    return redis_lib.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=None
    )


def limit_args(spec: LimitSpec) -> tuple[int, int, int, int, int]:
    """check.lua's five arguments for one limit."""
    interval = spec.emission_us if spec.algorithm == GCRA else 0
    if spec.algorithm == SLIDING_WINDOW:
        interval = SUBWINDOWS  # one constant, in algorithms.py, for both implementations
    if spec.algorithm == BAN:
        interval = 1 if spec.extend else 0
    return (
        ALGORITHM_CODES[spec.algorithm],
        spec.capacity,
        spec.period_us,
        interval,
        1 if spec.shadow else 0,
    )


def packed_spec(spec: LimitSpec) -> tuple[bytes, bytes]:
    """A limit's key and its five arguments as RESP bulk strings, packed once per spec."""
    cached = spec.__dict__.get("_packed")
    if cached is None:
        args = b"".join(bulk(str(value).encode()) for value in limit_args(spec))
        cached = (bulk(spec.key.encode()), args)
        # Specs are frozen; this cache sits beside their fields, not in them.
        spec.__dict__["_packed"] = cached
    return cached


@lru_cache(maxsize=256)
def _command_frame(
    sha: str, count: int, revision_key: str | None, cost: int, now: int | None
) -> tuple[bytes, bytes]:
    """What check.lua's EVALSHA holds besides the limits: the part before their keys and
    the part between their keys and their arguments (the same for every request).
    Without ``revision_key`` (a cluster, where it lives in another slot) the script
    reads no revision."""
    keys = count + (revision_key is not None)
    total = 3 + keys + 3 + count * FIELDS
    head = b"*%d\r\n" % total + bulk(b"EVALSHA") + bulk(sha.encode()) + bulk(b"%d" % keys)
    revision = (revision_key, "1") if revision_key is not None else ("0",)
    fixed = (*revision[:-1], "" if now is None else str(int(now)), str(int(cost)), revision[-1])
    return head, b"".join(bulk(value.encode()) for value in fixed)


def check_command(
    sha: str, specs: Sequence[LimitSpec], revision_key: str | None, cost: int, now: int | None
) -> bytes:
    """The whole EVALSHA of check.lua for ``specs`` as bytes (the revision key last)."""
    packed = [packed_spec(spec) for spec in specs]
    head, fixed = _command_frame(sha, len(specs), revision_key, cost, now)
    keys = b"".join([key for key, _args in packed])
    return head + keys + fixed + b"".join([args for _key, args in packed])


def decision_from_reply(specs: Sequence[LimitSpec], reply: list[int], cost: int) -> Decision:
    """check.lua's flat reply (now, charged, policy revision, then FIELDS integers per
    limit) as a Decision."""
    return Decision(specs, reply[3:], reply[1] == 1, reply[0], cost, reply[2])


def peek_args(specs: Sequence[LimitSpec], now: int | None) -> list[int | str]:
    """The peek script's arguments: check.lua's for a cost-1 request, no revision key."""
    args: list[int | str] = ["" if now is None else str(int(now)), 1, "0"]
    for spec in specs:
        args += limit_args(spec)
    return args


class RedisBackend(Backend):
    """Redis counters on one server: a ``redis://``, ``rediss://`` or ``unix://``
    STORAGE_URL, else the connection settings of a django-redis cache alias."""

    @cached_property
    def client(self) -> redis_lib.Redis:
        timeout = float(self.config["SOCKET_TIMEOUT"])
        if self.config["STORAGE_URL"]:
            return url_client(self.config["STORAGE_URL"], timeout)
        return limiter_client(self.config["CACHE_ALIAS"], timeout)

    @cached_property
    def script(self) -> Any:
        # Only its text and SHA1 are used: checks go through the channel.
        return self.client.register_script(load_script("check.lua", "ring.lua"))

    @cached_property
    def revision_key(self) -> str:
        return party_key(key_base(self.config), "policy", "revision")

    @cached_property
    def channel(self) -> Channel:
        return Channel(self.client.connection_pool)

    def check(self, specs: Sequence[LimitSpec], cost: int = 1, now: int | None = None) -> Decision:
        validate_specs(specs, cost)
        try:
            command = check_command(self.script.sha, specs, self.revision_key, cost, now)
            try:
                reply = self.channel.call(command)
            except redis_lib.exceptions.NoScriptError:
                # After a restart or SCRIPT FLUSH: load it and send the same call again.
                self.client.script_load(self.script.script)
                reply = self.channel.call(command)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        return decision_from_reply(specs, reply, cost)

    @cached_property
    def peek_script(self) -> Any:
        # check.lua behind peek.lua's guard: the same figures, no write.
        folder = resources.files("ratelimit_app.counters").joinpath("lua")
        text = folder.joinpath("peek.lua").read_text() + load_script("check.lua", "ring.lua")
        return self.client.register_script(text)

    def peek(self, specs: Sequence[LimitSpec], now: int | None = None) -> Decision:
        """See Backend.peek: one read-only script call (not on the hot path's channel)."""
        validate_specs(specs, 1)
        try:
            reply = self.peek_script(keys=[spec.key for spec in specs], args=peek_args(specs, now))
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        return decision_from_reply(specs, reply, 1)

    @cached_property
    def revision_script(self) -> Any:
        return self.client.register_script(load_script("revision.lua"))

    def publish_revision(self, number: int, only_if_missing: bool = False) -> None:
        """Tell every process of a new policy revision, through the next check they make.

        The published number only moves forward, whoever publishes (``only_if_missing``
        is kept for callers: a lower or equal number changes nothing either way).
        """
        try:
            self.revision_script(keys=[self.revision_key], args=["", number, REVISION_TTL])
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    def published_revision(self) -> int | None:
        """See Backend.published_revision: one GET."""
        try:
            value: Any = self.client.get(self.revision_key)  # bytes or None (a sync client)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        return int(value or 0)

    @cached_property
    def failure_script(self) -> Any:
        return self.client.register_script(load_script("failures.lua"))

    def record_failures(
        self, counters: Sequence[FailureCounter], now: int | None = None
    ) -> tuple[int, list[FailureResult]]:
        keys: list[str] = []
        args: list[str | int] = ["" if now is None else str(int(now))]
        for counter in counters:
            keys += [counter.failure_key, counter.ban_key]
            args += [counter.threshold, counter.window * US, counter.cooldown * US]
        try:
            reply = self.failure_script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        results = [
            FailureResult(int(reply[1 + 3 * i]), bool(int(reply[2 + 3 * i])), int(reply[3 + 3 * i]))
            for i in range(len(counters))
        ]
        return int(reply[0]), results

    def write_activity(self, batch: activity.Batch, now: float) -> None:
        """Record a batch of recent traffic for the console: one pipelined round trip."""
        try:
            activity.write_to_redis(self.client, key_base(self.config), batch, now)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    def read_activity(self, since: float, now: float) -> activity.Activity:
        """The console's record of traffic since ``since`` (epoch seconds)."""
        try:
            return activity.read_from_redis(self.client, key_base(self.config), since, now)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    def last_seen(self, parties: Sequence[str]) -> dict[str, float]:
        """When each of ``parties`` (API keys' hash tags) was last counted."""
        try:
            return activity.last_seen_in_redis(self.client, key_base(self.config), parties)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc

    def clear(self, keys: Sequence[str]) -> None:
        if keys:
            try:
                self.client.delete(*keys)
            except REDIS_ERRORS as exc:
                raise unavailable(exc) from exc
