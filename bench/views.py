"""One view per row; every row receives the same request."""

from django.conf import settings
from django.http import JsonResponse
from django_ratelimit.decorators import ratelimit as django_ratelimit
from limits import parse
from limits.storage import RedisStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle
from rest_framework.views import APIView

TOO_MANY = {"success": False}


def plain(request):
    # Every view reads its form body, as the token endpoint a ban rule watches does.
    return JsonResponse({"ok": bool(request.POST)})


class DrfPlain(APIView):
    throttle_classes = []

    def post(self, request):
        return Response({"ok": bool(request.POST)})


class DrfScoped(DrfPlain):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "bench"


class DrfAnon(DrfPlain):
    throttle_classes = [AnonRateThrottle]


def client_key(group, request):
    """The client as every row sees it: the forwarded address, else the peer."""
    return request.META.get("HTTP_X_FORWARDED_FOR") or request.META["REMOTE_ADDR"]


@django_ratelimit(key=client_key, rate=f"{settings.LIMIT}/m", block=False)
def django_ratelimit_view(request):
    if getattr(request, "limited", False):
        return JsonResponse(TOO_MANY, status=429)
    return JsonResponse({"ok": bool(request.POST)})


_storage = RedisStorage(settings.REDIS_URL)
_item = parse(f"{settings.LIMIT}/minute")


def _limits_view(limiter):
    def view(request):
        if not limiter.hit(_item, "bench", client_key(None, request)):
            return JsonResponse(TOO_MANY, status=429)
        return JsonResponse({"ok": bool(request.POST)})

    return view


VIEWS = {
    "plain": plain,
    "drf_plain": DrfPlain.as_view(),
    "drf_scoped": DrfScoped.as_view(),
    "drf_anon": DrfAnon.as_view(),
    "django_ratelimit": django_ratelimit_view,
    "limits_fixed": _limits_view(FixedWindowRateLimiter(_storage)),
    "limits_moving": _limits_view(MovingWindowRateLimiter(_storage)),
    "limits_sliding": _limits_view(SlidingWindowCounterRateLimiter(_storage)),
}
