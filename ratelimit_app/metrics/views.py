"""The metrics view: Prometheus's text format, for staff users or the scraper's token.

Wire it in the project's urls (``path("metrics", metrics_view)``); serve that path to
the scraper only (see the README). With ``PROMETHEUS_MULTIPROC_DIR`` set (several
gunicorn workers) it reads every worker's figures from that directory.
"""

import hmac
import os

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

from ratelimit_app import metrics
from ratelimit_app.conf import get_config


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def may_read(request: HttpRequest) -> bool:
    """Whether ``request`` may read the metrics: a staff user, or METRICS_TOKEN presented
    as ``Authorization: Bearer <token>`` (compared in constant time)."""
    expected = get_config()["METRICS_TOKEN"]
    presented = _bearer(request)
    if expected and presented is not None:
        return hmac.compare_digest(presented.encode(), str(expected).encode())
    user = getattr(request, "user", None)
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def render() -> tuple[bytes, str]:
    """The exposition of every metric of this process (or, in multiprocess mode, of every
    process) and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        # A registry per scrape: the collector reads the workers' files as they are now.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET: the metrics (404 while they are off; 401 without a credential, 403 with a
    wrong one)."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    if not (metrics.wanted() and metrics.available()):
        return HttpResponse("Metrics are off.\n", status=404, content_type="text/plain")
    if not may_read(request):
        authenticated = _bearer(request) is not None or getattr(
            getattr(request, "user", None), "is_authenticated", False
        )
        status = 403 if authenticated else 401
        response = HttpResponse(status=status, content_type="text/plain")
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = render()
    return HttpResponse(body, content_type=content_type)
