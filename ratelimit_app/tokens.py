"""Access tokens as a party: which application's token a request's bearer value is.

ip-token-endpoint-limits.md gives "each API access token its own rate limit
allocation". The app issues no tokens; a token resolver, named by a dotted path in
``RATELIMIT_APP["TOKEN_RESOLVER"]``, says whether a bearer value is a live token and
whose. A resolver is a callable ``resolver(token, now) -> TokenParty | None`` (``now``
in epoch seconds); a class named by the path is instantiated once per process.

``MemoizedResolver`` is the base of the shipped resolvers (the demo's signed tokens,
django-oauth-toolkit's ``AccessToken``): a subclass says only how to ``load`` one
token's grant; the base keeps it off the request path's database:

- the answer for a token, found or not, is remembered for ``remember_seconds`` (1 s)
  in a memo bounded in size, keyed by a keyed hash of the token (never the token);
  a token revoked (deleted) at its store is refused at most that long after;
- the grant's expiry is remembered with it and compared with ``now`` on every
  request: an expired token is refused at once, not when the memo is next refreshed;
- loads are capped per process and second (a flood of made-up tokens cannot become
  a flood of queries); past the cap, or if the store fails, a token is no party until
  the next second (its requests are counted per IP meanwhile).

The party's key is a keyed hash of the token (``hashing``), so no token reaches a
counter key, a row or a log; tokens that cannot be RFC 6750 bearer tokens (non-ASCII,
longer than the hash reads) are never looked up.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ratelimit_app import bounded, hashing
from ratelimit_app.conf import SETTING_NAME, get_config

# RFC 6750's b64token: the only characters a bearer token has.
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class Grant(NamedTuple):
    """What a token's store says of a live token: its application (a client_id, or
    None) and when it expires (epoch seconds, or None for never)."""

    application: str | None
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class TokenParty:
    """A live access token: ``key`` is a keyed hash of it (its counters' party)."""

    key: str
    application: str | None
    expires_at: float | None

    def expired(self, now: float) -> bool:
        """Whether the token has expired at ``now`` (epoch seconds)."""
        return self.expires_at is not None and now >= self.expires_at


class LookupFailed(Exception):
    """A resolver's store did not answer (the database down): the token is no party
    for this request, and the failure is not remembered."""


def is_bearer_token(value: str) -> bool:
    """Whether ``value`` can be a bearer token: b64token characters, and no longer than
    the keyed hash reads (a longer one could share a hash with another token)."""
    return len(value) <= get_config()["MAX_IDENTITY_LENGTH"] * 4 and bool(
        BEARER_TOKEN.fullmatch(value)
    )


class MemoizedResolver:
    """A token resolver that remembers each answer for ``remember_seconds``, bounded."""

    remember_seconds = 1.0
    memo_size = 10_000
    loads_per_second = 50

    def __init__(self) -> None:
        # keyed hash of a token -> (loaded at, its TokenParty or None)
        self.memo: dict[str, tuple[float, TokenParty | None]] = {}
        self.budget = bounded.LookupBudget(self.loads_per_second)

    def load(self, token: str) -> Grant | None:
        """The grant of a live ``token`` from its store, or None; raise LookupFailed
        when the store does not answer. Subclasses implement it."""
        raise NotImplementedError

    def __call__(self, token: str, now: float) -> TokenParty | None:
        """The TokenParty of ``token`` at ``now``, or None if it is no live token."""
        if not is_bearer_token(token):
            return None
        key = hashing.secret_hash("access-token", token)
        held = self.memo.get(key)
        if held is None or not 0 <= now - held[0] < self.remember_seconds:
            if not self.budget.take(now):
                return None
            try:
                grant = self.load(token)
            except LookupFailed:
                return None
            held = (now, None if grant is None else TokenParty(key, *grant))
            bounded.put(self.memo, key, held, self.memo_size)
        party = held[1]
        return None if party is None or party.expired(now) else party


Resolver = Callable[[str, float], TokenParty | None]


def get_resolver(path: str | None) -> Resolver | None:
    """The process's token resolver named by ``path`` (TOKEN_RESOLVER), or None."""
    return _resolver(path) if path else None


@lru_cache(maxsize=4)
def _resolver(path: str) -> Resolver:
    found: Any = import_string(path)
    return found() if isinstance(found, type) else found


def reset() -> None:
    """Forget the process's resolver (and so its memo)."""
    _resolver.cache_clear()


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        reset()
