"""Keyed hashes: the only form in which secrets and identities are stored or used as keys."""

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from django.conf import settings

from ratelimit_app.conf import get_config

API_KEY_PREFIX_BYTES = 4
API_KEY_MAX_LENGTH = 128


@lru_cache(maxsize=16)
def _keyed_template(purpose: str, secret_key: str, salt: str) -> "hmac.HMAC":
    # The key is derived as django.utils.crypto.salted_hmac derives it, once per purpose;
    # copying a keyed HMAC is cheaper than keying a new one for every request.
    key = hashlib.sha256(f"{salt}:{purpose}".encode() + secret_key.encode()).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def _mac(purpose: str, value: str | bytes) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    config = get_config()
    mac = _keyed_template(purpose, settings.SECRET_KEY, config["HASH_SALT"]).copy()
    # Capped before hashing so that a hostile megabyte costs no more than a normal value.
    mac.update(value[: config["MAX_IDENTITY_LENGTH"] * 4])
    return mac.digest()


def keyed_hash(purpose: str, value: str | bytes) -> str:
    """Full keyed hash (hex) of ``value`` for ``purpose``: used for stored fingerprints."""
    return _mac(purpose, value).hex()


def short_hash(purpose: str, value: str) -> str:
    """A 96-bit keyed hash (16 url-safe characters) of ``value``: used inside cache keys.

    Only for values that are not secret (addresses, ids): results are memoized.
    """
    return _short_hash(purpose, value, settings.SECRET_KEY, get_config()["HASH_SALT"])


def secret_hash(purpose: str, value: str) -> str:
    """A 96-bit keyed hash of a secret ``value`` (an access token), as short_hash's but
    never memoized: no secret is kept in the process's memory for it."""
    return base64.urlsafe_b64encode(_mac(purpose, value)[:12]).decode("ascii")


@lru_cache(maxsize=65_536)
def _short_hash(purpose: str, value: str, secret_key: str, salt: str) -> str:
    return base64.urlsafe_b64encode(_mac(purpose, value)[:12]).decode("ascii")


def new_api_key() -> tuple[str, str]:
    """Return ``(prefix, secret)`` for a new API key; the secret starts with the prefix."""
    prefix = secrets.token_hex(API_KEY_PREFIX_BYTES)
    return prefix, f"{prefix}.{secrets.token_urlsafe(32)}"


def hash_api_key(secret: str) -> str:
    """The stored form of an API key secret."""
    return keyed_hash("api-key", secret)


def api_key_prefix(secret: str | None) -> str | None:
    """The lookup prefix of a presented API key, or None if it cannot be one of ours."""
    if not secret or len(secret) > API_KEY_MAX_LENGTH:
        return None
    prefix, dot, _rest = secret.partition(".")
    if not dot or len(prefix) != API_KEY_PREFIX_BYTES * 2:
        return None
    return prefix


def api_key_matches(secret: str, hashed_secret: str) -> bool:
    """Compare a presented secret with a stored hash in constant time."""
    return hmac.compare_digest(hash_api_key(secret), hashed_secret)
