"""The one settings dict, ``RATELIMIT_APP``, read lazily and re-read on ``setting_changed``."""

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING_NAME = "RATELIMIT_APP"

DEFAULTS: dict[str, Any] = {
    # Counter storage: a dotted path to a Backend class (like SESSION_ENGINE).
    "BACKEND": "ratelimit_app.counters.redis.RedisBackend",
    # Where the counters live, as a URL whose scheme picks the topology (one backend
    # class each): redis://, rediss://, unix://, redis+cluster://host:port[,host:port],
    # redis+sentinel://host:port[,host:port]/service_name. Empty: BACKEND and
    # CACHE_ALIAS below (the django-redis cache's server).
    "STORAGE_URL": "",
    # django-redis cache alias whose connection settings the Redis backend uses.
    "CACHE_ALIAS": "default",
    # Every Redis key starts with this prefix, then its party's hash tag.
    "KEY_PREFIX": "rl",
    # No longer used (every key carries its party's hash tag); accepted so that older
    # settings keep loading, and reported by system check W013.
    "HASH_TAG": None,
    # Seconds the limiter waits for Redis before giving up on one request.
    "SOCKET_TIMEOUT": 0.1,
    # "open": allow when the counter store fails; "closed": answer 503.
    "FAILURE_MODE": "open",
    # Circuit breaker: after this many consecutive failures, skip Redis for COOLDOWN seconds.
    "BREAKER_THRESHOLD": 3,
    "BREAKER_COOLDOWN": 5.0,
    # In-process backend: most keys held at once (oldest dropped first).
    "MEMORY_MAX_KEYS": 100_000,
    # Keys known to be over their limit, answered locally until their Retry-After
    # (no Redis round trip for a client already denied); 0 turns this off.
    "DENY_CACHE_SIZE": 10_000,
    # Client identity.
    "TRUSTED_PROXIES": [],
    "IPV6_PREFIX": 64,
    "MAX_IDENTITY_LENGTH": 512,
    "TENANT_RESOLVER": None,
    # Access tokens as a party (ip-token-endpoint-limits.md: each token its own
    # allocation): a dotted path to a token resolver (ratelimit_app.tokens), such as
    # "ratelimit_app.contrib.oauth_toolkit.AccessTokenResolver". None: a bearer value
    # that is no API key is counted per IP only.
    "TOKEN_RESOLVER": None,
    # A token's application (client_id) -> the slug of the tenant its tokens belong to.
    "TOKEN_TENANTS": {},
    # Policy snapshot: how often (seconds) a process asks the database for admin edits.
    # With Redis, every check also returns the policy revision, so edits arrive with the
    # next request and the database is asked only every POLICY_FALLBACK_INTERVAL.
    "POLICY_REFRESH_INTERVAL": 1.0,
    "POLICY_FALLBACK_INTERVAL": 30.0,
    # "background": a thread of each process watches the revision and builds a new
    # snapshot beside the one requests use, then swaps it in; no request waits for a
    # rebuild. "inline": the request that finds the revision moved rebuilds (tests).
    "POLICY_REFRESH": "background",
    # Responses.
    "RESET_STYLE": "delta",
    "IETF_HEADERS": False,
    "BODY": "default",
    "MESSAGE": "Too many requests. Please wait before retrying.",
    # Keyed hashes: salts for API keys, identities and credential pairs.
    "HASH_SALT": "ratelimit_app",
    # Prometheus metrics (needs prometheus_client: pip install ratelimit_app[prometheus]).
    # Off, the request path sends no metrics signal and times no counter-store call.
    "METRICS": False,
    # A bearer token that may read the metrics view besides staff users (None: staff
    # only). Give it to the scraper alone; it is compared in constant time.
    "METRICS_TOKEN": None,
}


# Settings whose change makes the app's process-wide objects stale (see runtime).
WATCHED_SETTINGS = (SETTING_NAME, "SECRET_KEY", "CACHES")


@lru_cache(maxsize=1)
def get_config() -> dict[str, Any]:
    """Return the effective settings: DEFAULTS updated with the project's RATELIMIT_APP."""
    user = getattr(settings, SETTING_NAME, {}) or {}
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(
            f"{SETTING_NAME} has unknown keys {sorted(unknown)}; "
            f"the known keys are {sorted(DEFAULTS)}."
        )
    return {**DEFAULTS, **user}


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    if setting in WATCHED_SETTINGS:
        get_config.cache_clear()
