"""Test settings: the demo project's, on the stack RATELIMIT_TEST_STACK names.

local:    SQLite in memory, counters in process memory.
services: PostgreSQL (DATABASE_URL) and Redis (REDIS_URL), over real connections.
"""

import os

import dj_database_url

from project.settings import *  # noqa: F403
from tests.services import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL

STACK = os.environ.get("RATELIMIT_TEST_STACK", "local")
REDIS_URL = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)

if STACK == "services":
    DATABASES = {
        "default": dj_database_url.parse(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    }
    # A test database of this run's own: runs side by side on one server do not collide.
    RUN_ID = os.environ.get("RATELIMIT_RUN_ID", str(os.getpid()))
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{RUN_ID}"}
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
    BACKEND = "ratelimit_app.counters.redis.RedisBackend"
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    BACKEND = "ratelimit_app.counters.memory.MemoryBackend"

RATELIMIT_APP = {
    # The demo's access tokens (/connect/token, django-oauth-toolkit) and their tenants.
    "TOKEN_RESOLVER": RATELIMIT_APP["TOKEN_RESOLVER"],  # noqa: F405
    "TOKEN_TENANTS": RATELIMIT_APP["TOKEN_TENANTS"],  # noqa: F405
    "BACKEND": BACKEND,
    # Each test run gets its own key space on a shared Redis.
    "KEY_PREFIX": f"rltest{os.getpid()}",
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
