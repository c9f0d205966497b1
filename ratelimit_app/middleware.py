"""RateLimitMiddleware: limits for plain Django views, headers on every limited response."""

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase

from ratelimit_app import enforcement
from ratelimit_app.named_groups import view_group


@lru_cache(maxsize=4096)
def delegated_to_drf(view_func: Any) -> bool:
    """Whether a DRF view will check the request itself through PolicyThrottle.

    DRF throttles run after DRF authentication, so they see DRF's user; the
    middleware leaves such views to them (but for bans) and adds the headers.
    """
    view_class = getattr(view_func, "cls", None)
    throttles = getattr(view_class, "throttle_classes", None) or ()
    # PolicyThrottle and its subclasses say so; the surfaces do not import each other.
    return any(getattr(t, "checks_through_pipeline", False) for t in throttles)


class RateLimitMiddleware:
    """Checks requests before their view runs (the group from the view or from the path
    patterns), and after it feeds the response back: failure counting for ban rules and
    X-RateLimit-* on every response of a limited endpoint. Sync and async."""

    sync_capable = True
    async_capable = True
    # Read by the system check that finds this middleware (or a subclass) in MIDDLEWARE.
    is_ratelimit_middleware = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            self.process_view = self._process_view_async  # type: ignore[assignment]

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return enforcement.feed_back(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)
        return await sync_to_async(enforcement.feed_back, thread_sensitive=False)(request, response)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        verdict = _check_before_view(request, view_func)
        return enforcement.denial_response(verdict) if verdict is not None else None

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        """A refusal raised inside a view (the toolkit's validator refusing a banned pair
        outside oauthlib's endpoints) becomes its 429, not a 500."""
        as_response = getattr(exception, "ratelimit_response", None)
        return as_response() if callable(as_response) else None

    async def _process_view_async(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        # The Redis call runs in a worker thread: the event loop never waits on it.
        verdict = await sync_to_async(_check_before_view, thread_sensitive=False)(
            request, view_func
        )
        return enforcement.denial_response(verdict) if verdict is not None else None


def _check_before_view(request: HttpRequest, view_func: Any) -> "enforcement.Verdict | None":
    return enforcement.check(
        request, group=view_group(view_func), defer_to_drf=delegated_to_drf(view_func)
    )
