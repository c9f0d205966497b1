"""Counters on a primary found through Redis Sentinel (``redis+sentinel://`` URLs).

The checks are the one-server backend's: one script call per request. Connections ask
the sentinels for the primary whenever they connect, so after a failover the next
connection reaches the promoted replica; a connection still open to the demoted primary
gets READONLY on its next write, which redis-py turns into a connection error (the
failure mode applies to that one request) and the connection is made again.
"""

from functools import cached_property
from typing import Any

import redis as redis_lib
from redis.sentinel import Sentinel

from ratelimit_app.counters.redis import RedisBackend
from ratelimit_app.counters.storage import connection_options, parse


class RedisSentinelBackend(RedisBackend):
    """Counters on the primary of a Sentinel service named by STORAGE_URL.

    ``?sentinel_password=`` gives the sentinels' own password, if they have one.
    """

    @cached_property
    def client(self) -> redis_lib.Redis:
        parsed = parse(self.config["STORAGE_URL"])
        timeout = float(self.config["SOCKET_TIMEOUT"])
        options = connection_options(parsed, timeout)
        sentinel_options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        if "sentinel_password" in parsed.options:
            sentinel_options["password"] = parsed.options["sentinel_password"]
        sentinel = Sentinel(list(parsed.nodes), sentinel_kwargs=sentinel_options)
        return sentinel.master_for(parsed.service, db=parsed.db, retry=None, **options)
