"""RateLimitMiddleware: limits for plain Django views, headers on every limited response."""

from functools import lru_cache

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async

from ratelimit_app import bans, enforcement


def view_group(view_func):
    """The endpoint group a view names (``ratelimit_group`` on a function or class)."""
    group = getattr(view_func, "ratelimit_group", None)
    if group:
        return group
    view_class = getattr(view_func, "view_class", None) or getattr(view_func, "cls", None)
    return getattr(view_class, "ratelimit_group", None)


@lru_cache(maxsize=4096)
def delegated_to_drf(view_func):
    """Whether a DRF view will check the request itself through PolicyThrottle.

    DRF throttles run after DRF authentication, so they see DRF's user; the
    middleware leaves such views to them and only adds the headers.
    """
    view_class = getattr(view_func, "cls", None)
    throttles = getattr(view_class, "throttle_classes", None) or ()
    from ratelimit_app.throttling import PolicyThrottle

    return any(isinstance(t, type) and issubclass(t, PolicyThrottle) for t in throttles)


class RateLimitMiddleware:
    """Checks plain views (group from the view or from the path patterns) before they run,
    and sets X-RateLimit-* on every response of a limited endpoint. Sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            self.process_view = self._process_view_async

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        # Bans first: a banned pair gets its 429 before any credential check runs.
        verdict = bans.precheck(request)
        denied = enforcement.denial_response(verdict) if verdict else None
        response = denied or self.get_response(request)
        bans.observe(request, response)
        return enforcement.finish_response(request, response)

    async def __acall__(self, request):
        verdict = await sync_to_async(bans.precheck, thread_sensitive=False)(request)
        denied = enforcement.denial_response(verdict) if verdict else None
        response = denied or await self.get_response(request)
        await sync_to_async(bans.observe, thread_sensitive=False)(request, response)
        return enforcement.finish_response(request, response)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if delegated_to_drf(view_func):
            return None
        verdict = enforcement.evaluate(request, group=view_group(view_func))
        return enforcement.denial_response(verdict)

    async def _process_view_async(self, request, view_func, view_args, view_kwargs):
        if delegated_to_drf(view_func):
            return None
        # The Redis call runs in a worker thread: the event loop never waits on it.
        verdict = await sync_to_async(enforcement.evaluate, thread_sensitive=False)(
            request, group=view_group(view_func)
        )
        return enforcement.denial_response(verdict)
