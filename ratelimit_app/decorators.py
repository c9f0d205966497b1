"""``@ratelimit(group=...)``: the policies of one endpoint group on a single plain view."""

from functools import wraps

from asgiref.sync import iscoroutinefunction, sync_to_async

from ratelimit_app import enforcement


def ratelimit(group, cost=1):
    """Limit a view by the database limits of endpoint group ``group``.

    Works with sync and async views; a request also seen by the middleware is
    checked and charged once.
    """

    def decorator(view):
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_wrapped(request, *args, **kwargs):
                verdict = await sync_to_async(enforcement.evaluate, thread_sensitive=False)(
                    request, group=group, cost=cost
                )
                denied = enforcement.denial_response(verdict)
                if denied is not None:
                    return denied
                response = await view(request, *args, **kwargs)
                return enforcement.finish_response(request, response)

            async_wrapped.ratelimit_group = group
            return async_wrapped

        @wraps(view)
        def wrapped(request, *args, **kwargs):
            verdict = enforcement.evaluate(request, group=group, cost=cost)
            denied = enforcement.denial_response(verdict)
            if denied is not None:
                return denied
            return enforcement.finish_response(request, view(request, *args, **kwargs))

        wrapped.ratelimit_group = group
        return wrapped

    return decorator
