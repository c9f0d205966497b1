"""PolicyThrottle: the DRF surface, for DEFAULT_THROTTLE_CLASSES or a view's throttle_classes."""

from typing import Any

from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from ratelimit_app import enforcement, responses
from ratelimit_app.conf import get_config


class RateLimited(exceptions.Throttled):
    """429 whose body is the app's configured rate-limit body, as the middleware sends."""

    def __init__(self, decision: enforcement.Decision) -> None:
        body, _content_type, seconds = responses.throttled_payload(decision)
        super().__init__(wait=seconds)
        # A raw dict: DRF's exception handler sends it as the response data unchanged.
        self.detail = body


class RateLimiterUnavailable(exceptions.APIException):
    """503 when the counter store fails and FAILURE_MODE is "closed"."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Rate limiting is unavailable; try again soon."
    default_code = "rate_limiter_unavailable"

    def __init__(self, wait: float) -> None:
        super().__init__()
        self.wait = responses.retry_after_seconds(wait)
        if get_config()["BODY"] != "drf":
            # The same body as the middleware's 503 (a raw dict: DRF sends it unchanged).
            self.detail = responses.unavailable_body(wait)


class PolicyThrottle(BaseThrottle):
    """Applies the database policies to a DRF view.

    The group is the view's ``ratelimit_group``, else its ``throttle_scope``, else the
    group whose path patterns match. The user is DRF's authenticated user.
    """

    verdict: enforcement.Verdict | None = None
    # Tells RateLimitMiddleware that this throttle checks the view's requests itself.
    checks_through_pipeline = True

    def allow_request(self, request: Request, view: Any) -> bool:
        group = getattr(view, "ratelimit_group", None) or getattr(view, "throttle_scope", None)
        # DRF's user when DRF authenticated one, else Django's (a session, say).
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        self.verdict = enforcement.check(request._request, group=group, user=user)
        if self.verdict.allowed:
            return True
        if self.verdict.tenant_inactive:
            raise exceptions.PermissionDenied(responses.TENANT_INACTIVE_MESSAGE)
        if self.verdict.unavailable:
            raise RateLimiterUnavailable(self.verdict.retry_after)
        if get_config()["BODY"] == "drf":
            return False  # DRF's own Throttled path: {"detail": ...} and Retry-After
        assert self.verdict.decision is not None  # denied, and the store answered
        raise RateLimited(self.verdict.decision)

    def wait(self) -> int | None:
        """Seconds until the request would be allowed (whole, rounded up), or None."""
        if self.verdict is None or self.verdict.allowed:
            return None
        return responses.retry_after_seconds(self.verdict.retry_after)
