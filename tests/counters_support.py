"""Shared helpers for the counter tests: backends by name and unique keys."""

import uuid

from ratelimit_app.conf import get_config
from ratelimit_app.counters.memory import MemoryBackend
from ratelimit_app.counters.redis import RedisBackend


def make_backend(name, **overrides):
    """A fresh backend of kind ``name`` ("memory" or "redis") on the test settings."""
    config = {**get_config(), **overrides}
    if name == "memory":
        return MemoryBackend(config)
    return RedisBackend(config)


def unique_key(label=""):
    """A key no other test uses, under the test run's prefix and hash tag."""
    config = get_config()
    return f"{config['KEY_PREFIX']}:{{{config['HASH_TAG']}}}:{label}{uuid.uuid4().hex[:12]}"
