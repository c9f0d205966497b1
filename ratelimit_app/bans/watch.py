"""Which ban rule watches a request, the credential pair it carries (as a keyed hash),
and the counter-store keys and checks of that pair."""

import base64
from dataclasses import dataclass
from functools import lru_cache

from django.http import HttpRequest

from ratelimit_app import hashing, paths
from ratelimit_app.counters.algorithms import BAN, LimitSpec
from ratelimit_app.counters.base import party_key
from ratelimit_app.counters.failures import FailureCounter
from ratelimit_app.credentials import client_credentials
from ratelimit_app.policy import BanRuleEntry, PolicySnapshot

# Who failures are counted for: the credential pair, the client_id, the client address
# (the values of models.BanKind).
PAIR, CLIENT_ID, IP = "p", "c", "i"


@dataclass(frozen=True, slots=True)
class BanWatch:
    """A watched token request: its rule and who is trying (``ip`` only when the rule
    counts failures per address)."""

    rule: BanRuleEntry
    client_id: str
    fingerprint: str
    ip: str | None


@dataclass(frozen=True, slots=True)
class Party:
    """One party failures are counted for: its kind, its keyed fingerprint (what a ban
    row stores), its threshold, and what an operator sees of it."""

    kind: str
    fingerprint: str
    threshold: int
    shown_as: str

    @property
    def key_value(self) -> str:
        """The party's part of its counter keys."""
        return key_value(self.kind, self.fingerprint)


def key_value(kind: str, fingerprint: str) -> str:
    """A party's part of its counter keys, derived from the fingerprint its row stores:
    the pair's first 32 hex digits, else hashing.short_hash of the same keyed hash."""
    if kind == PAIR:
        return fingerprint[:32]
    return base64.urlsafe_b64encode(bytes.fromhex(fingerprint)[:12]).decode("ascii")


def counter_key(base: str, letter: str, rule_id: int, kind: str, value: str) -> str:
    """A ban rule's key in the counter store: ``letter`` x counts failures, b holds the ban."""
    return party_key(base, value, f"{letter}{rule_id}{kind}")


def pair_fingerprint(client_id: str, client_secret: str) -> str:
    """Keyed hash of the pair, with a salt of its own; the length prefix keeps
    ("ab", "c") and ("a", "bc") apart."""
    return hashing.keyed_hash("credential-pair", f"{len(client_id)}:{client_id}\0{client_secret}")


def watching_rule(
    snapshot: PolicySnapshot, method: str, path: str, groups: tuple[str | None, ...]
) -> BanRuleEntry | None:
    """The first enabled rule that watches ``method`` on ``path`` in one of ``groups``."""
    if not snapshot.ban_rules:
        return None
    normalized = paths.normalize_path(path)
    return next((r for r in snapshot.ban_rules if r.watches(method, normalized, groups)), None)


def watch(request: HttpRequest, rule: BanRuleEntry, ip: str | None) -> BanWatch | None:
    """The BanWatch of a request ``rule`` watches, or None when it carries no pair."""
    pair = client_credentials(request)
    if pair is None:
        return None
    return watch_pair(rule, *pair, ip)


def watch_pair(rule: BanRuleEntry, client_id: str, secret: str, ip: str | None) -> BanWatch:
    """The BanWatch of a pair parsed elsewhere (by an OAuth2 provider, say)."""
    return BanWatch(
        rule=rule,
        client_id=client_id,
        fingerprint=pair_fingerprint(client_id, secret),
        ip=ip if rule.ip_threshold else None,
    )


@lru_cache(maxsize=4096)
def parties(watched: BanWatch) -> tuple[Party, ...]:
    """Every party failures are counted for, the pair first."""
    rule = watched.rule
    found = [Party(PAIR, watched.fingerprint, rule.threshold, watched.client_id)]
    if rule.client_id_threshold:
        client = hashing.keyed_hash("client-id", watched.client_id)
        found.append(Party(CLIENT_ID, client, rule.client_id_threshold, watched.client_id))
    if rule.ip_threshold and watched.ip:
        address = hashing.keyed_hash("identity", f"ip:{watched.ip}")
        found.append(Party(IP, address, rule.ip_threshold, watched.ip))
    return tuple(found)


@lru_cache(maxsize=4096)
def ban_specs(watched: BanWatch, base: str) -> list[LimitSpec]:
    """Ban checks for the request, to go into the same backend call as its limits; the
    first is the pair's."""
    rule = watched.rule
    return [
        LimitSpec(
            key=counter_key(base, "b", rule.id, party.kind, party.key_value),
            algorithm=BAN,
            rate=party.threshold,
            period=rule.cooldown,
            extend=rule.extend_on_attempt,
            name=f"ban-{party.kind}",
        )
        for party in parties(watched)
    ]


def failure_counters(watched: BanWatch, base: str) -> list[FailureCounter]:
    """FailureCounters for every party of the request; the first is the pair's."""
    rule = watched.rule
    return [
        FailureCounter(
            failure_key=counter_key(base, "x", rule.id, party.kind, party.key_value),
            ban_key=counter_key(base, "b", rule.id, party.kind, party.key_value),
            threshold=party.threshold,
            window=rule.window,
            cooldown=rule.cooldown,
        )
        for party in parties(watched)
    ]
