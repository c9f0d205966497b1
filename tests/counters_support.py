"""Shared helpers for the counter tests: backends by name and unique keys."""

import uuid

from ratelimit_app.conf import get_config
from ratelimit_app.counters.cluster import RedisClusterBackend
from ratelimit_app.counters.memory import MemoryBackend
from ratelimit_app.counters.redis import RedisBackend
from ratelimit_app.counters.sentinel import RedisSentinelBackend

# Backends named by a storage URL (the topologies of `make test-cluster`).
URL_BACKENDS = {
    "cluster": RedisClusterBackend,
    "sentinel": RedisSentinelBackend,
    "valkey": RedisBackend,
}


def make_backend(name, url=None, **overrides):
    """A fresh backend of kind ``name`` ("memory", "redis", or one of URL_BACKENDS with
    its storage ``url``) on the test settings."""
    config = {**get_config(), **overrides}
    if name == "memory":
        return MemoryBackend(config)
    if name in URL_BACKENDS:
        return URL_BACKENDS[name]({**config, "STORAGE_URL": url})
    return RedisBackend(config)


def unique_key(label=""):
    """A key no other test uses, under the test run's prefix, with a party hash tag of
    its own (on a cluster, two such keys are in different slots)."""
    config = get_config()
    return f"{config['KEY_PREFIX']}:{{{label}{uuid.uuid4().hex[:12]}}}:k"


def party_keys(*names):
    """Keys of one party: one hash tag (one cluster slot), one name each."""
    tag = uuid.uuid4().hex[:12]
    return [f"{get_config()['KEY_PREFIX']}:{{{tag}}}:{name}" for name in names]
