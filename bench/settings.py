"""Settings for one benchmark row: BENCH_ROW, BENCH_LIMIT, BENCH_REDIS_URL, BENCH_DB."""

import os
import tempfile

from bench.rows import ROWS

ROW = os.environ.get("BENCH_ROW", "baseline")
LIMIT = int(os.environ.get("BENCH_LIMIT", "600"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
VIEW, USES_APP, _ = ROWS[ROW]
METRICS = ROW == "rl_three_metrics"
if METRICS:
    # As under gunicorn with several workers: prometheus_client's multiprocess mode, its
    # values in memory-mapped files (set before prometheus_client is first imported).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-metrics-"))

SECRET_KEY = "benchmark-only-secret-key"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.urls"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "ratelimit_app",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
if USES_APP:
    MIDDLEWARE.append("ratelimit_app.middleware.RateLimitMiddleware")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_DB", ":memory:"),
    }
}
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
    }
}
RATELIMIT_APP = {
    "BACKEND": "ratelimit_app.counters.redis.RedisBackend",
    # The admission runs name their client in X-Forwarded-For, through loopback.
    "TRUSTED_PROXIES": ["127.0.0.1/32"],
    "POLICY_REFRESH_INTERVAL": 1.0,
    "METRICS": METRICS,
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_THROTTLE_RATES": {"bench": f"{LIMIT}/min", "anon": f"{LIMIT}/min"},
}
RATELIMIT_USE_CACHE = "default"
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
LOGGING = {"version": 1, "disable_existing_loggers": True}
