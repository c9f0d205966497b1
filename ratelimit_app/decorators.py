"""``@ratelimit(group=...)``: the policies of one endpoint group on a single plain view."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase

from ratelimit_app import enforcement


def ratelimit(group: str, cost: int = 1) -> Callable[[Any], Any]:
    """Limit a view by the database limits of endpoint group ``group``.

    Works with sync and async views; a request also seen by the middleware is
    checked, charged and fed back once.
    """

    def decorator(view: Any) -> Any:
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                verdict = await sync_to_async(_check, thread_sensitive=False)(request, group, cost)
                denied = enforcement.denial_response(verdict)
                if denied is not None:
                    return denied
                response = await view(request, *args, **kwargs)
                return await sync_to_async(enforcement.feed_back, thread_sensitive=False)(
                    request, response
                )

            async_wrapped.ratelimit_group = group  # type: ignore[attr-defined]
            return async_wrapped

        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            verdict = _check(request, group, cost)
            denied = enforcement.denial_response(verdict)
            if denied is not None:
                return denied
            return enforcement.feed_back(request, view(request, *args, **kwargs))

        wrapped.ratelimit_group = group  # type: ignore[attr-defined]
        return wrapped

    return decorator


def _check(request: HttpRequest, group: str, cost: int) -> enforcement.Verdict:
    return enforcement.check(request, group=group, cost=cost)
