"""The hot path's Redis connections: a pre-packed command, one reply.

redis-py's command path (pool checkout with a readiness probe, argument packing,
response callbacks, pool return) costs more per request than the limit check itself;
the check only needs to write bytes it already has and read one reply. Connections
are still redis-py's own, made from the same settings as the pool (password,
database, TLS, Unix socket, timeouts), so nothing about connecting is re-implemented.
"""

import os
import time
from collections.abc import Callable
from typing import Any

import redis

# A connection idle for longer than this is probed before use (one non-blocking read):
# the server, a proxy or a firewall may have closed it meanwhile. Busy connections are
# not probed, so the probe costs nothing under load.
IDLE_PROBE_SECONDS = 1.0


def bulk(value: bytes) -> bytes:
    """One RESP bulk string (``value`` as bytes)."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack(*args: str | bytes) -> bytes:
    """A RESP command of str or bytes arguments."""
    chunks = [bulk(arg.encode() if isinstance(arg, str) else arg) for arg in args]
    return b"*%d\r\n" % len(chunks) + b"".join(chunks)


class Channel:
    """Idle redis-py connections, made from ``pool``'s settings, that calls take and give
    back: one connection per call in flight, never two calls on one connection. Most
    recently used first, so a quiet process keeps using one.

    Not per thread: a server that starts a thread per request would leave a connection
    behind with every thread (Python 3.13 frees thread-locals only when the garbage
    collector runs). A forked child starts with none of its parent's connections.
    ``clock`` (seconds) is a parameter so that tests move time instead of sleeping.
    """

    def __init__(
        self, pool: redis.ConnectionPool, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pool = pool
        self.clock = clock
        # (connection, last used); list.append and .pop are atomic
        self._idle: list[tuple[Any, float]] = []
        self._pid = os.getpid()

    def take(self) -> Any:
        """An idle connection (or a new one) for one exchange; give it back after."""
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._idle, self._pid = [], os.getpid()
        try:
            connection, used_at = self._idle.pop()
        except IndexError:
            connection = self.pool.connection_class(**self.pool.connection_kwargs)
        else:
            if self.clock() - used_at > IDLE_PROBE_SECONDS and _closed_or_out_of_step(connection):
                connection.disconnect()
        if connection._sock is None:
            # Connected here, not by the send: a Sentinel-managed connection asks the
            # sentinels for the primary only in connect(); a send would go to its
            # default address.
            connection.connect()
        return connection

    def call(self, packed: bytes) -> Any:
        """Send one packed command and return its reply.

        Raises redis-py's errors; after a timeout or a broken connection redis-py has
        already closed the socket, so the connection's next use starts on a fresh one
        and can never read a reply meant for an earlier command.
        """
        connection = self.take()
        try:
            connection.send_packed_command([packed], check_health=False)
            return connection.read_response()
        except redis.ResponseError as exc:
            if _wrong_server(exc):
                # The next call connects afresh, which behind Sentinel asks the sentinels
                # for the primary again. Other error replies leave the connection in step.
                connection.disconnect()
            raise
        finally:
            self.give_back(connection)

    def give_back(self, connection: Any) -> None:
        """Return a connection taken for an exchange whose replies were all read (or
        that was disconnected: its next use connects afresh)."""
        self._idle.append((connection, self.clock()))


def _wrong_server(exc: redis.ResponseError) -> bool:
    """An error reply saying this server is no (writable) primary: a demoted one
    (READONLY), or one cut off from its replicas (NOREPLICAS, min-replicas-to-write)."""
    return isinstance(exc, redis.exceptions.ReadOnlyError) or str(exc).startswith(
        ("NOREPLICAS", "MASTERDOWN")
    )


def _closed_or_out_of_step(connection: Any) -> bool:
    """Whether an idle connection was closed by its peer, or holds bytes nobody asked
    for; either way it must not carry the next command."""
    if connection._sock is None:
        return False
    try:
        return connection.can_read()
    except redis.ConnectionError:
        return True
