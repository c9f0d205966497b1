"""Counters on a Redis Cluster: one script call per slot a request touches, sent to
every shard at once, with a refund when one shard denies what another charged.

A party's keys share its hash tag (see base.party_key), so a request whose limits all
belong to one party is one atomic call, as on one Redis. A request with limits of
several parties (an address and a token, say) sends one call per slot, all written
before any reply is read; calls for slots on the same shard share one connection and
one round trip. No limit is ever over-admitted: each slot's call checks and charges its
own limits atomically. When a slot denies, the slots that charged are given back their
charge by refund.lua, one round trip later.

The policy revision lives in a slot of its own and is not read by checks (that would
pull every request onto one shard): each process's policy thread reads it once per
POLICY_REFRESH_INTERVAL (see policy.holder).
"""

import threading
import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import redis as redis_lib
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from ratelimit_app.counters.algorithms import BAN, LimitSpec
from ratelimit_app.counters.base import BackendUnavailable, Decision, validate_specs
from ratelimit_app.counters.breaker import CircuitBreaker
from ratelimit_app.counters.channel import Channel
from ratelimit_app.counters.failures import FailureCounter, FailureResult
from ratelimit_app.counters.redis import (
    REDIS_ERRORS,
    RedisBackend,
    check_command,
    limit_args,
    load_script,
    peek_args,
    unavailable,
)
from ratelimit_app.counters.storage import connection_options, parse

# Errors of a cluster in motion (a failover, a slot moving): the slot map is read again
# before the next call, and the call fails over to FAILURE_MODE meanwhile.
MOVING = (redis_lib.exceptions.AskError, redis_lib.exceptions.ClusterDownError)
# A redirected call is sent again at most this many times within one check.
REDIRECTS = 2
# After a shard failed or a slot moved, the slot map is read again at most this often.
MAP_REFRESH_SECONDS = 0.25


def slot_of(spec: LimitSpec) -> int:
    """The cluster slot of a spec's key, computed once per spec."""
    slot = spec.__dict__.get("_slot")
    if slot is None:
        slot = spec.__dict__["_slot"] = key_slot(spec.key.encode())
    return int(slot)


def refund_args(spec: LimitSpec) -> list[int]:
    """refund.lua's four arguments for one charged limit (check.lua's first four)."""
    return list(limit_args(spec)[:4])


class RedisClusterBackend(RedisBackend):
    """Counters on a Redis Cluster named by a ``redis+cluster://`` STORAGE_URL.

    It keeps a circuit breaker per shard (``guards_itself``): one shard down fails the
    requests whose limits live there, not every request of the process.
    """

    guards_itself = True

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._channels: dict[str, tuple[Any, Channel]] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._stale_map = False
        self._map_read_at = float("-inf")
        self._lock = threading.Lock()

    @cached_property
    def cluster(self) -> RedisCluster:
        parsed = parse(self.config["STORAGE_URL"])
        options = connection_options(parsed, float(self.config["SOCKET_TIMEOUT"]))
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
            require_full_coverage=False,
            **options,
        )

    @cached_property
    def client(self) -> Any:
        return self.cluster  # scripts are registered on the cluster client

    @cached_property
    def refund_script(self) -> Any:
        # Any: redis-py 7 types register_script for Redis only (it works on a cluster).
        cluster: Any = self.cluster
        return cluster.register_script(load_script("refund.lua", "ring.lua"))

    # -- checks ---------------------------------------------------------------------------

    def check(self, specs: Sequence[LimitSpec], cost: int = 1, now: int | None = None) -> Decision:
        validate_specs(specs, cost)
        by_slot: dict[int, list[int]] = {}
        for index, spec in enumerate(specs):
            by_slot.setdefault(slot_of(spec), []).append(index)
        try:
            replies = self._check_slots(specs, by_slot, cost, now)
        except REDIS_ERRORS as exc:
            self._stale_map = True  # a node gone: the next call reads the slot map again
            raise unavailable(exc) from exc
        decision = _combine(specs, by_slot, replies, cost)
        if not decision.allowed and len(by_slot) > 1:
            self._refund(specs, by_slot, replies, cost)
        return decision

    def peek(self, specs: Sequence[LimitSpec], now: int | None = None) -> Decision:
        """See Backend.peek: one read-only script call per slot, nothing to refund."""
        validate_specs(specs, 1)
        by_slot: dict[int, list[int]] = {}
        for index, spec in enumerate(specs):
            by_slot.setdefault(slot_of(spec), []).append(index)
        replies = {}
        try:
            for slot, indices in by_slot.items():
                some = [specs[i] for i in indices]
                keys = [spec.key for spec in some]
                replies[slot] = self.peek_script(keys=keys, args=peek_args(some, now))
        except REDIS_ERRORS as exc:
            self._stale_map = True
            raise unavailable(exc) from exc
        return _combine(specs, by_slot, replies, 1)

    def _check_slots(
        self,
        specs: Sequence[LimitSpec],
        by_slot: dict[int, list[int]],
        cost: int,
        now: int | None,
    ) -> dict[int, list[int]]:
        sha = self.script.sha
        commands = {
            slot: check_command(sha, [specs[i] for i in indices], None, cost, now)
            for slot, indices in by_slot.items()
        }
        replies: dict[int, list[int]] = {}
        for _attempt in range(REDIRECTS + 1):
            self._refresh_map_if_stale()
            pending = {slot: commands[slot] for slot in by_slot if slot not in replies}
            answers = self._exchange(pending)
            for slot, answer in answers.items():
                if isinstance(answer, redis_lib.exceptions.NoScriptError):
                    self._load_script_on(slot)
                elif isinstance(answer, MOVING):
                    # A slot moved: read the map now, not after MAP_REFRESH_SECONDS.
                    self._stale_map, self._map_read_at = True, float("-inf")
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    replies[slot] = answer
            if len(replies) == len(by_slot):
                return replies
        raise redis_lib.exceptions.ClusterDownError("slots kept moving during one check")

    def _exchange(self, commands: dict[int, bytes]) -> dict[int, Any]:
        """Send every slot's command, grouped per shard on one connection each, before
        reading any reply; return each slot's reply or error reply. A shard that fails
        (or whose breaker is open) fails the check; the other shards' breakers and
        connections are not touched by it."""
        per_node: dict[str, list[int]] = {}
        for slot in commands:
            node = self.cluster.nodes_manager.get_node_from_slot(slot)
            per_node.setdefault(node.name, []).append(slot)
        sent, failures = [], []
        for name, slots in per_node.items():
            try:
                sent.append((name, slots, self._send(name, [commands[s] for s in slots])))
            except (BackendUnavailable, *REDIS_ERRORS) as exc:
                failures.append(exc)
        answers: dict[int, Any] = {}
        for name, slots, (channel, connection) in sent:
            try:
                for slot in slots:
                    answers[slot] = _read_one(connection)
                self._breaker(name).record_success()
            except REDIS_ERRORS as exc:
                connection.disconnect()  # replies may be left unread on it
                self._breaker(name).record_failure(unavailable(exc))
                failures.append(exc)
            finally:
                channel.give_back(connection)
        if failures:
            self._stale_map = True
            raise failures[0]
        return answers

    def _send(self, name: str, packets: list[bytes]) -> tuple[Channel, Any]:
        breaker = self._breaker(name)
        if breaker.is_open:
            raise BackendUnavailable("a shard's breaker is open: not calling it")
        channel = self._channel(name)
        connection = None
        try:
            connection = channel.take()
            connection.send_packed_command(packets, check_health=False)
        except REDIS_ERRORS as exc:
            if connection is not None:
                connection.disconnect()
                channel.give_back(connection)
            breaker.record_failure(unavailable(exc))
            raise
        return channel, connection

    def _breaker(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            threshold, cooldown = self.config["BREAKER_THRESHOLD"], self.config["BREAKER_COOLDOWN"]
            breaker = self._breakers[name] = CircuitBreaker(threshold, float(cooldown))
        return breaker

    def _channel(self, node_name: str) -> Channel:
        node = self.cluster.nodes_manager.nodes_cache[node_name]
        pool = self.cluster.get_redis_connection(node).connection_pool
        held = self._channels.get(node_name)
        if held is None or held[0] is not pool:
            held = self._channels[node_name] = (pool, Channel(pool))
        return held[1]

    def _refresh_map_if_stale(self) -> None:
        # At most every MAP_REFRESH_SECONDS: during a failover every request would
        # otherwise ask the cluster for its slots.
        now = time.monotonic()
        if not self._stale_map or now - self._map_read_at < MAP_REFRESH_SECONDS:
            return
        with self._lock:
            if self._stale_map and now - self._map_read_at >= MAP_REFRESH_SECONDS:
                self._map_read_at = now
                self.cluster.nodes_manager.initialize()
                self._stale_map = False

    def published_revision(self) -> int | None:
        """See Backend.published_revision. The policy thread calls it every second, so
        a slot map made stale by a failover is read again even while no request comes."""
        try:
            self._refresh_map_if_stale()
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc
        return super().published_revision()

    def _load_script_on(self, slot: int) -> None:
        node = self.cluster.nodes_manager.get_node_from_slot(slot)
        self.cluster.get_redis_connection(node).script_load(self.script.script)

    def _refund(
        self,
        specs: Sequence[LimitSpec],
        by_slot: dict[int, list[int]],
        replies: dict[int, list[int]],
        cost: int,
    ) -> None:
        """Give back the charges of the slots that allowed a request denied elsewhere.

        Best effort: a refund that fails leaves those counts one request higher until
        their window passes (never over-admitting)."""
        for slot, indices in by_slot.items():
            reply = replies[slot]
            if reply[1] != 1:
                continue  # this slot denied: it charged nothing
            charged = [
                specs[i]
                for at, i in enumerate(indices)
                if specs[i].algorithm != BAN and reply[3 + at * 5] == 1
            ]
            if not charged:
                continue
            args: list[int | str] = ["", reply[0], cost]
            for spec in charged:
                args += refund_args(spec)
            try:
                self.refund_script(keys=[spec.key for spec in charged], args=args)
            except REDIS_ERRORS:
                self._stale_map = True

    # -- failures, bans and the revision ----------------------------------------------

    def record_failures(
        self, counters: Sequence[FailureCounter], now: int | None = None
    ) -> tuple[int, list[FailureResult]]:
        # A party's failure and ban keys share its tag: one call per party's slot.
        results: list[FailureResult] = []
        now_us = 0
        for counter in counters:
            now_us, (result,) = super().record_failures([counter], now)
            results.append(result)
        return now_us, results

    def clear(self, keys: Sequence[str]) -> None:
        try:
            for key in keys:
                self.cluster.delete(key)
        except REDIS_ERRORS as exc:
            raise unavailable(exc) from exc


def _read_one(connection: Any) -> Any:
    """One reply, or the error reply as an exception object (the connection stays in
    step for the replies after it)."""
    try:
        return connection.read_response()
    except redis_lib.exceptions.ResponseError as exc:
        return exc


def _combine(
    specs: Sequence[LimitSpec],
    by_slot: dict[int, list[int]],
    replies: dict[int, list[int]],
    cost: int,
) -> Decision:
    """One Decision from the slots' replies, figures back in the specs' order: allowed
    only if every slot charged."""
    figures = [0] * (5 * len(specs))
    charged, now_us = True, 0
    for slot, indices in by_slot.items():
        reply = replies[slot]
        now_us = max(now_us, reply[0])
        charged = charged and reply[1] == 1
        for at, index in enumerate(indices):
            figures[5 * index : 5 * index + 5] = reply[3 + 5 * at : 8 + 5 * at]
    # No revision: the policy thread reads it (None tells the pipeline so).
    return Decision(specs, figures, charged, now_us, cost, None)
