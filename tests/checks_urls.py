"""URLs for tests/test_checks.py: views naming endpoint groups in each way a view can."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views import View
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from ratelimit_app.decorators import ratelimit
from ratelimit_app.middleware import RateLimitMiddleware
from ratelimit_app.throttling import PolicyThrottle


def plain(request):
    return HttpResponse("ok")


class NamedView(View):
    ratelimit_group = "no-such-class-group"


class ScopedApiView(APIView):
    throttle_classes = [PolicyThrottle]
    throttle_scope = "no-such-scope"


class ForeignScopeView(APIView):
    # DRF's own throttle reads this scope, not ours: not a group name.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "uploads"


nested = [path("deep", ratelimit(group="no-such-nested-group")(plain))]
urlpatterns = [
    path("known", ratelimit(group="standard")(plain)),
    path("decorated", ratelimit(group="no-such-group")(plain)),
    path("class", NamedView.as_view()),
    path("scoped", ScopedApiView.as_view()),
    path("foreign", ForeignScopeView.as_view()),
    path("api/", include(nested)),
    path("bare", plain),
    path("admin/", admin.site.urls),  # the admin test of a slug in use
]


class OwnMiddleware(RateLimitMiddleware):
    """A project's subclass of the middleware (tests/test_checks.py)."""
