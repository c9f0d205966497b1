"""API keys a process's snapshot does not know yet: looked up once, remembered briefly.

A key created a moment ago (from the shell, by another worker's admin) is in the
database before it is in every worker's snapshot. A request presenting a key prefix the
snapshot lacks reads that one row (one indexed query), and the answer, found or not,
is remembered for REMEMBER_SECONDS in a bounded memo of the snapshot: a client
repeating an unknown key costs one query a second, and the memo cannot grow without
end. Lookups are also capped per process (LOOKUPS_PER_SECOND): a flood of made-up
prefixes cannot turn into a flood of queries; past the cap a prefix is unknown until
the next second.
"""

import time
from collections.abc import Callable

from django.db import DatabaseError

from ratelimit_app import bounded
from ratelimit_app.bounded import LookupBudget
from ratelimit_app.models import ApiKey
from ratelimit_app.policy.entries import KeyEntry
from ratelimit_app.policy.snapshot import PolicySnapshot

REMEMBER_SECONDS = 1.0
LOOKUP_MEMO_SIZE = 10_000
LOOKUPS_PER_SECOND = 20


_budget = LookupBudget(LOOKUPS_PER_SECOND)


def lookup_api_key(
    prefix: str,
    snapshot: PolicySnapshot,
    clock: Callable[[], float] = time.monotonic,
    budget: LookupBudget | None = None,
) -> KeyEntry | None:
    """The KeyEntry of a usable key with ``prefix`` that ``snapshot`` does not hold, from
    the database (or from the memo, for REMEMBER_SECONDS); None if there is none, or if
    the database or this second's lookup budget says nothing."""
    now = clock()
    held = snapshot.key_lookups.get(prefix)
    if held is not None and now - held[0] < REMEMBER_SECONDS:
        return held[1]
    if not (budget or _budget).take():
        return None
    try:
        row = (
            ApiKey.objects.filter(prefix=prefix, revoked=False)
            .values_list("pk", "hashed_secret", "tenant_id")
            .first()
        )
    except DatabaseError:
        return None  # the database down: the key is unknown until it answers again
    entry = KeyEntry(*row) if row else None
    bounded.put(snapshot.key_lookups, prefix, (now, entry), LOOKUP_MEMO_SIZE)
    return entry
