"""Settings of the demo project.

With no environment it runs with no services at all: SQLite and counters in process
memory. Set DATABASE_URL (for example postgres://postgres@127.0.0.1:5432/ratelimit_demo)
and REDIS_URL (for example redis://127.0.0.1:6379/0) to run on PostgreSQL and Redis.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

# Development only: a real deployment sets DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-ratelimit-demo-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "oauth2_provider",
    "ratelimit_app",
    "project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication (it may count per user); before the views it protects.
    "ratelimit_app.middleware.RateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL")
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)
    if DATABASE_URL
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "demo.sqlite3"}
}

# Any storage URL the limiter takes: redis://, rediss://, unix://,
# redis+cluster://host:port[,host:port] or redis+sentinel://host:port[,...]/service.
REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL and "+" not in REDIS_URL.partition("://")[0]:
    # One server: Django's own cache uses it too.
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

RATELIMIT_APP = {
    # Empty: the counters live in process memory (one process, development only).
    "STORAGE_URL": REDIS_URL or "",
    "BACKEND": "ratelimit_app.counters.memory.MemoryBackend",
    # Behind a proxy, list it here (comma-separated CIDRs) so X-Forwarded-For is read.
    "TRUSTED_PROXIES": [p for p in os.environ.get("RATELIMIT_TRUSTED_PROXIES", "").split(",") if p],
    # Prometheus metrics at /metrics (pip install 'ratelimit_app[prometheus]').
    "METRICS": os.environ.get("RATELIMIT_METRICS") == "1",
    "METRICS_TOKEN": os.environ.get("RATELIMIT_METRICS_TOKEN") or None,
    # Access tokens of /connect/token (signed) and of django-oauth-toolkit's /o/token/ are
    # parties with budgets of their own; each client's tokens belong to a demo tenant.
    "TOKEN_RESOLVER": "project.demo.tokens.DemoTokenResolver",
    "TOKEN_TENANTS": {"demo-client": "free-tenant", "dot-client": "paid-tenant"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": ["ratelimit_app.throttling.PolicyThrottle"],
}

# Development-only OAuth2 client of the demo's /connect/token.
DEMO_OAUTH_CLIENTS = {"demo-client": "demo-secret"}
# django-oauth-toolkit serves /o/token/ too (its demo client is made by demo_setup).
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    # Credential bans inside the toolkit's own client authentication (token,
    # revoke_token, introspect), with the pair the toolkit parses.
    "OAUTH2_VALIDATOR_CLASS": "ratelimit_app.contrib.oauth_toolkit.RateLimitedOAuth2Validator",
}

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"ratelimit_app": {"handlers": ["console"], "level": "INFO"}},
}
