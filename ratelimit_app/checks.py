"""System checks with stable IDs for mistakes a project can make in RATELIMIT_APP."""

import importlib.util
import ipaddress

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.utils.module_loading import import_string

from ratelimit_app.conf import SETTING_NAME, get_config
from ratelimit_app.counters import storage
from ratelimit_app.named_groups import named_groups

REDIS_BACKEND = "ratelimit_app.counters.redis.RedisBackend"
CHOICES = {
    "FAILURE_MODE": ("open", "closed"),
    "RESET_STYLE": ("delta", "epoch"),
    "POLICY_REFRESH": ("background", "inline"),
}
BODIES = ("default", "drf", "problem")


@checks.register()
def check_settings(app_configs=None, **kwargs):
    """Validate RATELIMIT_APP: known keys, importable backend, usable cache alias."""
    try:
        config = get_config()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="ratelimit_app.E001")]
    errors = []
    errors += _check_backend(config)
    errors += _check_choices(config)
    errors += _check_proxies(config)
    errors += _check_body(config)
    errors += _check_metrics(config)
    errors += _check_tokens(config)
    if config["HASH_TAG"] is not None:
        errors.append(
            checks.Warning(
                f"{SETTING_NAME}['HASH_TAG'] is no longer used: every key carries the "
                "hash tag of the party it counts, so a Redis Cluster spreads them.",
                hint="Remove HASH_TAG from the settings.",
                id="ratelimit_app.W013",
            )
        )
    return errors


def _check_backend(config):
    try:
        import_string(config["BACKEND"])
    except ImportError:
        return [
            checks.Error(
                f"{SETTING_NAME}['BACKEND'] = {config['BACKEND']!r} cannot be imported.",
                hint=f"Use {REDIS_BACKEND!r} or 'ratelimit_app.counters.memory.MemoryBackend'.",
                id="ratelimit_app.E002",
            )
        ]
    if config["STORAGE_URL"]:
        return _check_storage_url(config["STORAGE_URL"])
    if config["BACKEND"] != REDIS_BACKEND:
        return []
    alias = config["CACHE_ALIAS"]
    cache = settings.CACHES.get(alias)
    if cache is None or not cache.get("BACKEND", "").startswith("django_redis."):
        return [
            checks.Error(
                f"The Redis counter backend needs CACHES[{alias!r}] to be a django-redis cache.",
                hint="Add a django_redis.cache.RedisCache to CACHES, set "
                f"{SETTING_NAME}['CACHE_ALIAS'] to its alias, or use the MemoryBackend "
                "for development.",
                id="ratelimit_app.E003",
            )
        ]
    return _check_cache_topology(alias, cache)


def _check_storage_url(url):
    try:
        storage.validate(url)
    except storage.StorageURLError as exc:
        return [checks.Error(f"{SETTING_NAME}['STORAGE_URL']: {exc}", id="ratelimit_app.E009")]
    return []


def _check_cache_topology(alias, cache):
    """The Redis backend copies one server's connection settings from the alias: a
    cluster or Sentinel client there would fail at every request."""
    options = cache.get("OPTIONS", {})
    named = " ".join(
        str(options.get(name, ""))
        for name in ("CLIENT_CLASS", "CONNECTION_FACTORY", "REDIS_CLIENT_CLASS")
    ).lower()
    topology = next((t for t in ("cluster", "sentinel") if t in named), None)
    if topology is None and "SENTINELS" in options:
        topology = "sentinel"
    if topology is None:
        return []
    example = {
        "cluster": "redis+cluster://host:port[,host:port]",
        "sentinel": "redis+sentinel://host:port[,host:port]/service_name",
    }[topology]
    return [
        checks.Error(
            f"CACHES[{alias!r}] connects to a Redis {topology.title()}, which the "
            "counters cannot reach through a cache alias.",
            hint=f"Set {SETTING_NAME}['STORAGE_URL'] = '{example}'.",
            id="ratelimit_app.E010",
        )
    ]


def _check_choices(config):
    errors = []
    for name, allowed in CHOICES.items():
        if config[name] not in allowed:
            errors.append(
                checks.Error(
                    f"{SETTING_NAME}[{name!r}] is {config[name]!r}; use one of {allowed}.",
                    id="ratelimit_app.E004",
                )
            )
    return errors


def _check_proxies(config):
    errors = []
    proxies = config["TRUSTED_PROXIES"]
    if isinstance(proxies, str):
        # A string would be read one character at a time.
        return [
            checks.Error(
                f"{SETTING_NAME}['TRUSTED_PROXIES'] is the string {proxies!r}; it must be a "
                "list of addresses or networks.",
                hint=f"Write it as [{proxies!r}] (or split a comma-separated value).",
                id="ratelimit_app.E008",
            )
        ]
    for cidr in proxies:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            errors.append(
                checks.Error(
                    f"{SETTING_NAME}['TRUSTED_PROXIES'] holds {cidr!r}, which is not an "
                    "address or CIDR network.",
                    hint="Write proxies as '10.0.0.0/8' or '192.0.2.7'.",
                    id="ratelimit_app.E005",
                )
            )
    prefix = config["IPV6_PREFIX"]
    if not isinstance(prefix, int) or not 1 <= prefix <= 128:
        errors.append(
            checks.Error(
                f"{SETTING_NAME}['IPV6_PREFIX'] must be an integer from 1 to 128.",
                id="ratelimit_app.E006",
            )
        )
    return errors


def _check_body(config):
    body = config["BODY"]
    if callable(body) or body in BODIES:
        return []
    try:
        import_string(body)
    except ImportError:
        return [
            checks.Error(
                f"{SETTING_NAME}['BODY'] = {body!r} is neither one of {BODIES} nor an "
                "importable callable.",
                id="ratelimit_app.E007",
            )
        ]
    return []


def _check_metrics(config):
    errors = []
    if config["METRICS"] and importlib.util.find_spec("prometheus_client") is None:
        errors.append(
            checks.Error(
                f"{SETTING_NAME}['METRICS'] is on but prometheus_client is not installed; "
                "install it with: pip install 'ratelimit_app[prometheus]'.",
                id="ratelimit_app.E011",
            )
        )
    token = config["METRICS_TOKEN"]
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        errors.append(
            checks.Error(
                f"{SETTING_NAME}['METRICS_TOKEN'] must be None or a string of at least 16 "
                "characters (a random token, such as secrets.token_urlsafe(32)).",
                id="ratelimit_app.E012",
            )
        )
    return errors


def _check_tokens(config):
    errors = []
    path = config["TOKEN_RESOLVER"]
    if path is not None:
        try:
            resolver = import_string(path) if isinstance(path, str) else None
        except ImportError:
            resolver = None
        if not callable(resolver):
            errors.append(
                checks.Error(
                    f"{SETTING_NAME}['TOKEN_RESOLVER'] = {path!r} does not import as a "
                    "token resolver: bearer tokens would be counted per IP only.",
                    hint="Name a callable or class by its dotted path, such as "
                    "'ratelimit_app.contrib.oauth_toolkit.AccessTokenResolver', or None.",
                    id="ratelimit_app.E013",
                )
            )
    tenants = config["TOKEN_TENANTS"]
    if not isinstance(tenants, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tenants.items()
    ):
        errors.append(
            checks.Error(
                f"{SETTING_NAME}['TOKEN_TENANTS'] must be a dict of application client_id "
                "to tenant slug (both strings).",
                id="ratelimit_app.E014",
            )
        )
    return errors


@checks.register(checks.Tags.urls)
def check_view_groups(app_configs=None, **kwargs):
    """Report views that name an endpoint group no row defines: such a view is limited
    by its path patterns' group instead (W010), which is rarely what its author meant."""
    named = named_groups()
    if not named:
        return []
    from ratelimit_app.models import EndpointGroup

    try:
        known = set(EndpointGroup.objects.values_list("slug", flat=True))
    except DatabaseError:
        return []  # not migrated yet, or no database: nothing to compare with
    if not known:
        return []  # a fresh install (migrate, before the catalogue): nothing defined yet
    return [
        checks.Warning(
            f"The view at {route!r} names the endpoint group {group!r}, which does not exist.",
            hint="Create the group in the admin (or load the catalogue: manage.py "
            "ratelimit_load_catalog), or name an existing group's slug. Until then the "
            "path patterns decide which group's limits apply.",
            obj=route,
            id="ratelimit_app.W010",
        )
        for route, group in sorted(named.items())
        if group not in known
    ]


MIDDLEWARE_PATH = "ratelimit_app.middleware.RateLimitMiddleware"
AUTHENTICATION_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@checks.register()
def check_middleware(app_configs=None, **kwargs):
    """Warn when RateLimitMiddleware is missing (W011: bans and plain views go
    unprotected) or placed before AuthenticationMiddleware (W012: limits per user and
    the bans' early check cannot see the user)."""
    middleware = [import_path(entry) for entry in settings.MIDDLEWARE]
    ours = [n for n, entry in enumerate(middleware) if _is_ours(entry)]
    if not ours:
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: token endpoints are not protected "
                "by credential bans and plain Django views are not limited.",
                hint=f"Add {MIDDLEWARE_PATH!r} to MIDDLEWARE, after AuthenticationMiddleware.",
                id="ratelimit_app.W011",
            )
        ]
    if AUTHENTICATION_MIDDLEWARE in middleware and ours[0] < middleware.index(
        AUTHENTICATION_MIDDLEWARE
    ):
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH} comes before AuthenticationMiddleware: it cannot see "
                "request.user, so limits counted per user do not apply to plain views.",
                hint="Move it after 'django.contrib.auth.middleware.AuthenticationMiddleware'.",
                id="ratelimit_app.W012",
            )
        ]
    return []


def import_path(entry):
    """A MIDDLEWARE entry as its dotted path (entries are strings in practice)."""
    return entry if isinstance(entry, str) else f"{entry.__module__}.{entry.__qualname__}"


def _is_ours(path):
    if path == MIDDLEWARE_PATH:
        return True
    try:  # a project's subclass of ours says so (the checks import no surface)
        return bool(getattr(import_string(path), "is_ratelimit_middleware", False))
    except ImportError:
        return False
