"""Storage URLs: which Redis topology the counters use, in the `limits` library's words.

``redis://``, ``rediss://`` and ``unix://`` name one server; ``redis+cluster://`` a
Redis Cluster by one or more of its nodes; ``redis+sentinel://`` a primary found through
Sentinel (``host:port[,host:port]/service_name``). Password and TLS options go where
redis-py's own URLs put them (``redis://:password@host``, ``?ssl_cert_reqs=none``). One
backend class per topology; the scheme chooses it, like Django's session engines are
chosen by a dotted path.
"""

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEMES = {
    "redis": "ratelimit_app.counters.redis.RedisBackend",
    "rediss": "ratelimit_app.counters.redis.RedisBackend",
    "unix": "ratelimit_app.counters.redis.RedisBackend",
    "redis+cluster": "ratelimit_app.counters.cluster.RedisClusterBackend",
    "rediss+cluster": "ratelimit_app.counters.cluster.RedisClusterBackend",
    "redis+sentinel": "ratelimit_app.counters.sentinel.RedisSentinelBackend",
    "rediss+sentinel": "ratelimit_app.counters.sentinel.RedisSentinelBackend",
}
EXAMPLES = (
    "redis://127.0.0.1:6379/0, redis+cluster://10.0.0.1:7000,10.0.0.2:7000, "
    "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster"
)


class StorageURLError(ValueError):
    """A storage URL the counters cannot use; the message says why and how to write it."""


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage URL: its scheme, nodes, and connection options."""

    scheme: str
    nodes: tuple[tuple[str, int], ...]
    password: str | None = None
    username: str | None = None
    db: int = 0
    service: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        """Whether connections use TLS (a ``rediss`` scheme)."""
        return self.scheme.startswith("rediss")


def backend_path(url: str) -> str:
    """The dotted path of the backend class for ``url``'s scheme."""
    scheme = url.partition("://")[0].lower()
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise StorageURLError(
            f"The storage URL scheme {scheme!r} is unknown; use one of "
            f"{sorted(SCHEMES)}, for example {EXAMPLES}."
        ) from None


def parse(url: str) -> StorageURL:
    """Parse a cluster or sentinel URL (several ``host:port``, comma-separated)."""
    backend_path(url)  # an unknown scheme is reported first
    scheme, _, rest = url.partition("://")
    credentials, _, rest = rest.rpartition("@")
    location, _, query = rest.partition("?")
    hosts, _, path = location.partition("/")
    nodes = tuple(_node(host, scheme) for host in hosts.split(",") if host)
    if not nodes:
        raise StorageURLError(f"The storage URL {_redacted(url)!r} names no host; {EXAMPLES}.")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    options = dict(parse_qsl(query))
    parsed = StorageURL(
        scheme=scheme.lower(),
        nodes=nodes,
        password=unquote(password) or None,
        username=unquote(username) or None,
        db=_db(options.pop("db", "0"), url),
        service=unquote(path.strip("/")),
        options=options,
    )
    if "sentinel" in parsed.scheme and not parsed.service:
        raise StorageURLError(
            f"The Sentinel URL {_redacted(url)!r} names no service; write "
            "redis+sentinel://host:port[,host:port]/service_name."
        )
    return parsed


def validate(url: str) -> None:
    """Raise StorageURLError if ``url`` cannot be used (checked at start-up, see checks)."""
    scheme = url.partition("://")[0].lower()
    if "+" in scheme:
        parse(url)
        return
    backend_path(url)
    if not urlsplit(url).netloc and scheme != "unix":
        raise StorageURLError(f"The storage URL {_redacted(url)!r} names no host; {EXAMPLES}.")


def connection_options(parsed: StorageURL, timeout: float) -> dict[str, Any]:
    """redis-py keyword arguments for the servers of ``parsed``: short timeouts, no
    retries (the breaker decides when to try again), the URL's password and TLS."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "password": parsed.password,
        "username": parsed.username,
    }
    if parsed.tls:
        options["ssl"] = True
        for name in ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if name in parsed.options:
                options[name] = parsed.options[name]
    return options


def _node(host: str, scheme: str) -> tuple[str, int]:
    default = 26379 if "sentinel" in scheme else 6379
    name, _, port = host.rpartition(":") if ":" in host else (host, "", str(default))
    name = name.strip("[]")  # an IPv6 address in brackets
    try:
        return name, int(port)
    except ValueError:
        raise StorageURLError(f"{host!r} in the storage URL has no valid port.") from None


def _db(value: str, url: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise StorageURLError(f"db={value!r} in {_redacted(url)!r} is not a number.") from None


def _redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    scheme, _, rest = url.partition("://")
    credentials, at, rest = rest.rpartition("@")
    return f"{scheme}://{'***@' if at else ''}{rest}"
