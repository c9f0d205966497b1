"""Counters in Redis: every limit of a request in one EVALSHA, on Redis's own clock."""

from functools import cached_property
from importlib import resources

import redis as redis_lib

from ratelimit_app.counters.algorithms import (
    BAN,
    FIXED_WINDOW,
    GCRA,
    SLIDING_WINDOW,
    US,
    Outcome,
)
from ratelimit_app.counters.base import (
    Backend,
    BackendUnavailable,
    key_base,
    make_decision,
    validate_specs,
)
from ratelimit_app.counters.failures import FailureResult

# Long enough to matter, short enough that a lost publish cannot mislead for long.
REVISION_TTL = 24 * 3600
ALGORITHM_CODES = {GCRA: 1, SLIDING_WINDOW: 2, FIXED_WINDOW: 3, BAN: 4}
FIELDS_PER_LIMIT = 5


def load_script(name):
    """A Lua script shipped in ``ratelimit_app/counters/lua/``, after the shared clock."""
    folder = resources.files("ratelimit_app.counters").joinpath("lua")
    return folder.joinpath("clock.lua").read_text() + folder.joinpath(name).read_text()


def limiter_client(alias, timeout):
    """A Redis client on the same server as the django-redis cache ``alias``.

    It has its own pool with short socket timeouts, so a slow Redis costs a request
    at most ``timeout`` seconds whatever the cache's own timeouts are.
    """
    from django_redis import get_redis_connection

    base_pool = get_redis_connection(alias).connection_pool
    kwargs = dict(base_pool.connection_kwargs)
    kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout, retry=None)
    kwargs.pop("retry_on_timeout", None)
    kwargs.pop("retry_on_error", None)
    pool = redis_lib.ConnectionPool(connection_class=base_pool.connection_class, **kwargs)
    return redis_lib.Redis(connection_pool=pool)


def limit_args(spec):
    """check.lua's five arguments for one limit (memoized on the spec)."""
    cached = spec.__dict__.get("_redis_args")
    if cached is None:
        interval = spec.emission_us if spec.algorithm == GCRA else 0
        if spec.algorithm == BAN:
            interval = 1 if spec.extend else 0
        cached = (
            ALGORITHM_CODES[spec.algorithm],
            spec.capacity,
            spec.period_us,
            interval,
            1 if spec.shadow else 0,
        )
        # Specs are frozen; this cache sits beside their fields, not in them.
        spec.__dict__["_redis_args"] = cached
    return cached


def script_args(specs, cost, now, with_revision):
    """ARGV for check.lua."""
    args = ["" if now is None else str(int(now)), str(int(cost)), "1" if with_revision else "0"]
    for spec in specs:
        args.extend(limit_args(spec))
    return args


def parse_reply(specs, reply):
    """Turn check.lua's flat reply into (outcomes, charged, now_us, policy revision)."""
    values = [int(v) for v in reply]
    outcomes = [
        Outcome(values[i] == 1, values[i + 1], values[i + 2], values[i + 3], values[i + 4], None, 0)
        for i in range(3, 3 + FIELDS_PER_LIMIT * len(specs), FIELDS_PER_LIMIT)
    ]
    return outcomes, values[1] == 1, values[0], values[2]


class RedisBackend(Backend):
    """Redis counters through the connection settings of a django-redis cache alias."""

    @cached_property
    def client(self):
        return limiter_client(self.config["CACHE_ALIAS"], float(self.config["SOCKET_TIMEOUT"]))

    @cached_property
    def script(self):
        # redis-py's Script sends EVALSHA and, on NOSCRIPT (after a restart or
        # SCRIPT FLUSH), loads the script and retries: the request does not fail.
        return self.client.register_script(load_script("check.lua"))

    @cached_property
    def revision_key(self):
        return f"{key_base(self.config)}:policy-revision"

    def check(self, specs, cost=1, now=None):
        validate_specs(specs, cost)
        keys = [spec.key for spec in specs]
        keys.append(self.revision_key)
        try:
            reply = self.script(keys=keys, args=script_args(specs, cost, now, True))
        except redis_lib.RedisError as exc:
            raise BackendUnavailable(f"Redis did not answer: {type(exc).__name__}") from exc
        outcomes, charged, now_us, revision = parse_reply(specs, reply)
        return make_decision(specs, outcomes, charged, now_us, cost, revision)

    def publish_revision(self, number, only_if_missing=False):
        """Tell every process of a new policy revision, through the next check they make."""
        try:
            self.client.set(self.revision_key, number, ex=REVISION_TTL, nx=only_if_missing)
        except redis_lib.RedisError as exc:
            raise BackendUnavailable(f"Redis did not answer: {type(exc).__name__}") from exc

    @cached_property
    def failure_script(self):
        return self.client.register_script(load_script("failures.lua"))

    def record_failures(self, counters, now=None):
        keys, args = [], ["" if now is None else str(int(now))]
        for counter in counters:
            keys += [counter.failure_key, counter.ban_key]
            args += [counter.threshold, counter.window * US, counter.cooldown * US]
        try:
            reply = self.failure_script(keys=keys, args=args)
        except redis_lib.RedisError as exc:
            raise BackendUnavailable(f"Redis did not answer: {type(exc).__name__}") from exc
        results = [
            FailureResult(int(reply[1 + 3 * i]), bool(int(reply[2 + 3 * i])), int(reply[3 + 3 * i]))
            for i in range(len(counters))
        ]
        return int(reply[0]), results

    def clear(self, keys):
        if keys:
            try:
                self.client.delete(*keys)
            except redis_lib.RedisError as exc:
                raise BackendUnavailable(f"Redis did not answer: {type(exc).__name__}") from exc
