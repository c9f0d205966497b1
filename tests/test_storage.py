"""Storage URLs, the topology each picks, and keys spread by owner (their hash tags)."""

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from redis.crc import key_slot

from ratelimit_app import hashing, runtime
from ratelimit_app.bans.watch import counter_key
from ratelimit_app.checks import check_settings
from ratelimit_app.conf import get_config
from ratelimit_app.counters import storage
from ratelimit_app.counters.base import BackendUnavailable
from ratelimit_app.enforcement.specs import build_specs
from ratelimit_app.identity import Identity
from ratelimit_app.policy import LimitEntry
from ratelimit_app.policy.entries import TenantEntry


@pytest.mark.parametrize(
    "url, nodes, password, service, db",
    [
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001",
            (("10.0.0.1", 7000), ("10.0.0.2", 7001)),
            None,
            "",
            0,
        ),
        ("redis+cluster://:s%3Acret@node", (("node", 6379),), "s:cret", "", 0),
        (
            "redis+sentinel://s1,s2:26380/mymaster?db=3",
            (("s1", 26379), ("s2", 26380)),
            None,
            "mymaster",
            3,
        ),
        ("redis+cluster://[::1]:7000", (("::1", 7000),), None, "", 0),
    ],
)
def test_cluster_and_sentinel_urls_are_read_as_the_limits_library_writes_them(
    url, nodes, password, service, db
):
    parsed = storage.parse(url)
    assert (parsed.nodes, parsed.password, parsed.service, parsed.db) == (
        nodes,
        password,
        service,
        db,
    )


def test_tls_options_are_passed_to_redis_py():
    parsed = storage.parse("rediss+cluster://h:7000?ssl_cert_reqs=none&other=1")
    options = storage.connection_options(parsed, 0.1)
    assert options["ssl"] is True and options["ssl_cert_reqs"] == "none"
    assert options["socket_timeout"] == 0.1 and "other" not in options


@pytest.mark.parametrize(
    "url, message",
    [
        ("memcached://h:11211", "scheme 'memcached' is unknown"),
        ("redis+sentinel://s1:26379", "names no service"),
        ("redis+cluster://", "names no host"),
        ("redis://", "names no host"),
        ("redis+cluster://h:port", "no valid port"),
        ("redis+sentinel://h/m?db=one", "is not a number"),
    ],
)
def test_an_unusable_url_is_a_clear_error(url, message):
    with pytest.raises(storage.StorageURLError, match=message):
        storage.validate(url)


def test_a_password_never_appears_in_an_error():
    with pytest.raises(storage.StorageURLError) as caught:
        storage.validate("redis+sentinel://user:hunter2@s1:26379")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url, backend",
    [
        ("redis://127.0.0.1:6379/0", "RedisBackend"),
        ("rediss://127.0.0.1:6380/0", "RedisBackend"),
        ("unix:///run/redis.sock", "RedisBackend"),
        ("redis+cluster://127.0.0.1:7000", "RedisClusterBackend"),
        ("redis+sentinel://127.0.0.1:26379/main", "RedisSentinelBackend"),
    ],
)
def test_the_scheme_picks_the_backend_whatever_backend_says(settings, url, backend):
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "STORAGE_URL": url,
        "BACKEND": "ratelimit_app.counters.memory.MemoryBackend",
    }
    assert type(runtime.get_backend().backend).__name__ == backend
    assert check_settings() == []


def test_an_unknown_scheme_is_system_check_e009(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "STORAGE_URL": "mongodb://h"}
    assert [e.id for e in check_settings()] == ["ratelimit_app.E009"]
    with pytest.raises(ImproperlyConfigured, match="unknown"):
        runtime.get_backend()


@pytest.mark.parametrize(
    "options, topology",
    [
        ({"CLIENT_CLASS": "django_redis.client.SentinelClient"}, "Sentinel"),
        ({"CONNECTION_FACTORY": "myproject.redis.ClusterConnectionFactory"}, "Cluster"),
        ({"SENTINELS": [("127.0.0.1", 26379)]}, "Sentinel"),
    ],
)
def test_a_cache_alias_on_a_cluster_or_sentinel_is_e010_with_the_url_to_use(
    settings, options, topology
):
    settings.CACHES = {
        **settings.CACHES,
        "shared": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://mymaster/0",
            "OPTIONS": options,
        },
    }
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "BACKEND": "ratelimit_app.counters.redis.RedisBackend",
        "CACHE_ALIAS": "shared",
    }
    (error,) = check_settings()
    assert error.id == "ratelimit_app.E010" and topology in error.msg
    assert f"redis+{topology.lower()}://" in error.hint


def test_hash_tag_is_reported_as_no_longer_used(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "HASH_TAG": "rl"}
    (warning,) = check_settings()
    assert warning.id == "ratelimit_app.W013" and isinstance(warning, checks.Warning)


def test_a_cache_the_backend_cannot_use_is_the_store_being_down(settings):
    """The issue's AttributeError at request time: an alias whose client has no
    connection pool is now the store being down, which FAILURE_MODE answers."""
    settings.CACHES = {
        **settings.CACHES,
        "odd": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "BACKEND": "ratelimit_app.counters.redis.RedisBackend",
        "CACHE_ALIAS": "odd",
    }
    backend = runtime.get_backend().backend
    with pytest.raises(BackendUnavailable):
        backend.check(build_specs((LIMIT,), WHO, settings.RATELIMIT_APP | {"KEY_PREFIX": "t"}))


LIMIT = LimitEntry("standard", "ip", "gcra", 60, 60, 10, False)
WHO = Identity(ip="198.51.100.7", api_key_id=42, user_id=None, tenant=TenantEntry(7, "t", 1, True))


def tag(key):
    return key[key.index("{") + 1 : key.index("}")]


def test_every_key_of_a_party_carries_that_partys_hash_tag():
    limits = tuple(
        LimitEntry("standard", scope, "gcra", 60, period, 10, False)
        for scope in ("ip", "api_key", "tenant")
        for period in (1, 60)
    )
    specs = build_specs(limits, WHO, {"KEY_PREFIX": "rl"})
    by_scope = {}
    for limit, spec in zip(limits, specs, strict=True):
        by_scope.setdefault(limit.scope, set()).add(tag(spec.key))
    expected = {
        "ip": hashing.short_hash("identity", "ip:198.51.100.7"),
        "api_key": hashing.short_hash("identity", "api_key:42"),
        "tenant": hashing.short_hash("identity", "tenant:7"),
    }
    # One tag per party (its two periods share it), a different one for each party.
    assert by_scope == {scope: {value} for scope, value in expected.items()}
    assert all(spec.key.startswith("rl:{") for spec in specs)
    assert "198.51.100.7" not in "".join(spec.key for spec in specs)


def test_a_partys_failure_count_and_ban_share_a_slot():
    failure = counter_key("rl", "x", 3, "p", "abc123")
    ban = counter_key("rl", "b", 3, "p", "abc123")
    assert (failure, ban) == ("rl:{abc123}:x3p", "rl:{abc123}:b3p")
    assert key_slot(failure.encode()) == key_slot(ban.encode())


def test_ten_thousand_parties_spread_over_three_shards_evenly():
    """Slots of 10,000 addresses' keys, split as a 3-primary cluster splits its 16,384
    slots: each shard gets about a third (none more than 40 %)."""
    shards = [0, 0, 0]
    for i in range(10_000):
        who = Identity(ip=f"10.{i // 256}.{i % 256}.1", api_key_id=None, user_id=None, tenant=None)
        (spec,) = build_specs((LIMIT,), who, {"KEY_PREFIX": "rl"})
        shards[min(2, key_slot(spec.key.encode()) * 3 // 16384)] += 1
    assert max(shards) < 4_000, shards


def test_a_backend_with_breakers_of_its_own_is_called_directly_and_still_observed(
    settings, monkeypatch
):
    """The cluster backend keeps a breaker per shard: the process-wide one must not
    stop every shard for one, yet the metrics still see each call."""
    from ratelimit_app.counters import breaker as breaker_module
    from ratelimit_app.counters.breaker import CircuitBreaker, GuardedBackend
    from ratelimit_app.counters.memory import MemoryBackend

    class SelfGuarded(MemoryBackend):
        guards_itself = True

    seen = []
    monkeypatch.setattr(breaker_module, "call_observers", [lambda *call: seen.append(call)])
    process_wide = CircuitBreaker(threshold=1, cooldown=60)
    process_wide.record_failure(BackendUnavailable("down"))  # opened: it would refuse
    guarded = GuardedBackend(SelfGuarded(get_config()), process_wide)
    (spec,) = build_specs((LIMIT,), WHO, {"KEY_PREFIX": "t"})
    assert guarded.check([spec]).allowed
    assert [(operation, error) for operation, _elapsed, error in seen] == [("check", None)]
