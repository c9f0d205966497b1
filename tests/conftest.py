import os
import uuid

import pytest
from django.conf import settings

from ratelimit_app import runtime


@pytest.fixture(autouse=True)
def _fresh_runtime(settings):
    """Every test gets its own key prefix and a new backend and policy snapshot, so
    counters never leak between tests, on Redis either."""
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "KEY_PREFIX": f"rlt{uuid.uuid4().hex[:8]}",
        "POLICY_REFRESH_INTERVAL": 0,
        "POLICY_FALLBACK_INTERVAL": 0,
        # The request that finds the revision moved refreshes, so that a test sees its
        # edit at once; the background thread has tests of its own (test_policy.py).
        "POLICY_REFRESH": "inline",
    }
    runtime.reset()
    yield
    runtime.reset()


SETTINGS_PID = os.getpid()  # the process that read tests/settings.py (its database name)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database of each process's own, as pytest-xdist's workers get: mutmut's
    test processes are forked from the one that read the settings, so they share its
    process id, and one's teardown would drop the database another is using."""
    if os.getpid() == SETTINGS_PID:
        return
    for database in settings.DATABASES.values():
        name = database.get("TEST", {}).get("NAME")
        if name and name != ":memory:":
            database["TEST"]["NAME"] = f"{name}_{os.getpid()}"


@pytest.fixture
def clock():
    """A movable clock (seconds, ``clock[0]``) for the bans and the counters, Redis
    included: tests move time instead of sleeping."""
    import time

    now = [time.time()]
    runtime.test_clock = lambda: now[0]
    yield now
    runtime.test_clock = None


@pytest.fixture
def demo_data(db):
    """The catalogue plus the demo's tenants and API keys."""
    from project.demo.setup import DEMO_KEYS, load_demo_data

    load_demo_data()
    return {tier: secret for tier, (_name, secret) in DEMO_KEYS.items()}


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium for the browser tests (one for the whole session)."""
    from tests.browser_support import start_chromium

    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def console(chromium, live_server, demo_data, django_user_model):
    """A logged-out browser at the live server, the demo's data, and an operator (a
    superuser) to log in (tests.browser_support.Console)."""
    from tests.browser_support import HEIGHT, PASSWORD, USER, WIDTH, Console

    if settings.STACK != "services":
        pytest.fail("The browser tests run on PostgreSQL and Redis: use make test-browser.")
    django_user_model.objects.create_superuser(USER, "operator@example.invalid", PASSWORD)
    chromium.delete_all_cookies()
    chromium.set_window_size(WIDTH, HEIGHT)
    return Console(chromium, live_server.url)


@pytest.fixture
def stack():
    """The stack this pass runs on: "local" or "services"."""
    return settings.STACK


def pytest_collection_modifyitems(config, items):
    """The browser tests run only when the marker expression names them (make
    test-browser): a pass such as ``-m "not services"`` must not start Chromium."""
    if "browser" in (config.option.markexpr or ""):
        return
    browser = [item for item in items if item.get_closest_marker("browser") is not None]
    if browser:
        config.hook.pytest_deselected(items=browser)
        items[:] = [item for item in items if item.get_closest_marker("browser") is None]


def pytest_report_header(config):
    import django

    from tests.settings import STACK

    return f"ratelimit_app test stack: {STACK}; Django {django.get_version()}"


@pytest.fixture(scope="session")
def private_redis():
    """A throwaway redis-server of this test session's own, for stats, faults and restarts."""
    from tests.services import RedisServer

    if not RedisServer.available():
        pytest.fail("redis-server is not installed: the Redis fault tests cannot run.")
    server = RedisServer().start()
    yield server
    server.stop()


def _topology(kind):
    from tests import topologies

    return getattr(topologies, kind)().start_all()


@pytest.fixture(scope="session")
def redis_cluster():
    """A 3-primary + 3-replica Redis Cluster on loopback ports (make test-cluster)."""
    cluster = _topology("Cluster")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel():
    """A primary, two replicas and three sentinels on loopback ports."""
    sentinels = _topology("SentinelSet")
    yield sentinels
    sentinels.stop()


@pytest.fixture(scope="session")
def valkey_server():
    """A valkey-server on a loopback port."""
    server = _topology("Valkey")
    yield server
    server.stop()


@pytest.fixture
def private_backend(private_redis, settings):
    """A RedisBackend on the private server, through a django-redis cache alias."""
    from tests.counters_support import make_backend

    settings.CACHES = {
        **settings.CACHES,
        "private": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": private_redis.url},
    }
    return make_backend("redis", CACHE_ALIAS="private")


@pytest.fixture(autouse=True, scope="session")
def _live_server_like_a_real_server():
    """The live server (Django's dev server) set up as real servers (gunicorn) are.

    - TCP_NODELAY: the dev server writes headers and body separately; with Nagle's
      algorithm and the client's delayed ACK each request then waits 40 ms, which would
      let GCRA limits refill during a burst.
    - A listen backlog of 128 instead of 10: fifty clients connecting at once overflow
      ten, the kernel answers with SYN cookies, and on a loaded machine some of those fail
      and the client's connection is reset (TcpExtSyncookiesFailed in ``nstat``) before
      the request reaches Django at all. gunicorn listens with 2048.
    """
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    WSGIRequestHandler.disable_nagle_algorithm = True
    ThreadedWSGIServer.request_queue_size = 128
    yield


@pytest.fixture
def redis_down(settings):
    """The Redis backend, pointed at a loopback port where nothing listens (refused)."""
    from tests.services import free_port

    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        },
    }
    settings.RATELIMIT_APP = {
        **settings.RATELIMIT_APP,
        "BACKEND": "ratelimit_app.counters.redis.RedisBackend",
        "CACHE_ALIAS": "down",
    }
