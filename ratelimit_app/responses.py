"""Rate-limit headers and 429 bodies: one home for every surface."""

import math
from collections.abc import Callable
from typing import Any

from django.http import HttpResponseBase, JsonResponse
from django.utils.module_loading import import_string

from ratelimit_app.conf import get_config
from ratelimit_app.counters.algorithms import BAN, GCRA
from ratelimit_app.counters.base import Decision, LimitResult

Config = dict[str, Any]
BodyBuilder = Callable[[Decision, int, str], Any]

ERROR_CODE = "rate_limit_exceeded"
# draft-ietf-httpapi-ratelimit-headers: the problem type of a refused request.
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"


def retry_after_seconds(retry_after: float) -> int:
    """Whole seconds for Retry-After: rounded up, so never earlier than allowed; at least 1."""
    return max(1, math.ceil(retry_after - 1e-9))


def _reset_value(now: float, reset_after: float, style: str) -> int:
    if style == "epoch":
        return math.ceil(now + reset_after)
    return math.ceil(reset_after)


def _described(decision: Decision, describe: str) -> tuple[int, int, float]:
    """(limit, remaining, reset_after) of the limit the headers describe: the tightest,
    or with ``describe="window"`` the enforced limit with the longest period (the rolling
    window a document's X-RateLimit-Limit names, with a burst limit beside it)."""
    if describe == "window":
        windows = [r for r in decision.results if not r.spec.shadow and r.spec.algorithm != BAN]
        if windows:
            window = max(windows, key=lambda r: (r.spec.period, -r.remaining))
            return window.limit, window.remaining, window.reset_after
    return decision.limit, decision.remaining, decision.reset_after


def _policy_name(result: LimitResult) -> str:
    spec = result.spec
    return spec.name or spec.key.rsplit(":", 2)[-2]


def rate_limit_headers(
    decision: Decision, config: Config | None = None, style: tuple[str, str] = ("", "tightest")
) -> dict[str, str]:
    """``X-RateLimit-*`` headers, and optionally the IETF fields. ``style`` is an endpoint
    group's (reset style, or "" for RESET_STYLE; which limit the headers describe)."""
    config = config or get_config()
    limit, remaining, reset_after = _described(decision, style[1])
    reset = _reset_value(decision.now, reset_after, style[0] or config["RESET_STYLE"])
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(reset),
    }
    if config["IETF_HEADERS"]:
        headers.update(ietf_fields(decision))
    return headers


def sf_string(text: str) -> str:
    """``text`` as a Structured Field string (RFC 9651): printable ASCII only (anything
    else becomes ``?``), with ``"`` and ``\\`` escaped."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in text)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ietf_fields(decision: Decision) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers-11),
    both Structured Field lists. A policy's ``q`` per ``w`` seconds is its sustained
    rate; a GCRA limit's burst is the ``burst`` parameter. On a refusal no ``t`` is later
    than Retry-After."""
    # Ban checks are not limits a client can pace itself by (and their threshold is
    # not the client's business): only the limits are listed.
    enforced = [r for r in decision.results if not r.spec.shadow and r.spec.algorithm != BAN]
    policies, states = [], []
    wait = None if decision.allowed else retry_after_seconds(decision.retry_after)
    for result in enforced:
        spec, name = result.spec, sf_string(_policy_name(result))
        burst = f";burst={spec.burst}" if spec.algorithm == GCRA and spec.burst else ""
        policies.append(f"{name};q={spec.rate};w={spec.period}{burst}")
        reset = math.ceil(result.reset_after)
        if wait is not None:
            reset = min(reset, wait)
        states.append(f"{name};r={max(0, result.remaining)};t={reset}")
    return {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(states)}


def default_body(decision: Decision, seconds: int, message: str) -> dict[str, Any]:
    """The body of per-key-rolling-windows.md."""
    return {
        "success": False,
        "error": {"code": ERROR_CODE, "message": message, "retry_after_seconds": seconds},
    }


def drf_body(decision: Decision, seconds: int, message: str) -> dict[str, Any]:
    """DRF's shape: ``{"detail": ...}``."""
    return {"detail": f"Request was throttled. Expected available in {seconds} seconds."}


def problem_body(decision: Decision, seconds: int, message: str) -> dict[str, Any]:
    """RFC 9457 problem details of the draft's quota-exceeded type, naming the violated
    policies (as RateLimit-Policy names them) and their figures."""
    violated = [r for r in decision.results if not r.allowed and not r.spec.shadow]
    return {
        "type": QUOTA_EXCEEDED,
        "title": "Too Many Requests",
        "status": 429,
        "detail": message,
        "retry_after_seconds": seconds,
        "violated-policies": [_policy_name(r) for r in violated],
        "violated_limits": [
            {"name": _policy_name(r), "limit": r.limit, "period": r.spec.period} for r in violated
        ],
    }


BODIES: dict[str, BodyBuilder] = {"default": default_body, "drf": drf_body, "problem": problem_body}


def body_builder(config: Config) -> BodyBuilder:
    """The configured body function: a style name, a callable, or a dotted path."""
    body = config["BODY"]
    if callable(body):
        return body
    return BODIES.get(body) or import_string(body)


def throttled_payload(decision: Decision, config: Config | None = None) -> tuple[Any, str, int]:
    """``(body, content_type, retry_after_seconds)`` of a 429 for ``decision``."""
    config = config or get_config()
    seconds = retry_after_seconds(decision.retry_after)
    body = body_builder(config)(decision, seconds, config["MESSAGE"])
    content_type = "application/problem+json" if config["BODY"] == "problem" else "application/json"
    return body, content_type, seconds


def throttled_response(decision: Decision, config: Config | None = None) -> JsonResponse:
    """The 429 response for a denied ``decision``, with every header."""
    config = config or get_config()
    body, content_type, seconds = throttled_payload(decision, config)
    response = JsonResponse(body, status=429, content_type=content_type)
    for name, value in rate_limit_headers(decision, config).items():
        response[name] = value
    response["Retry-After"] = str(seconds)
    return response


TENANT_INACTIVE_MESSAGE = "The tenant of this API key is inactive."


def tenant_inactive_response() -> JsonResponse:
    """403 for a request whose tenant is inactive (Tenant.active off)."""
    return JsonResponse({"detail": TENANT_INACTIVE_MESSAGE, "code": "tenant_inactive"}, status=403)


def unavailable_body(retry_after: float) -> dict[str, Any]:
    """The body of a fail-closed 503, in the shape of the 429 body."""
    return {
        "success": False,
        "error": {
            "code": "rate_limiter_unavailable",
            "message": "Rate limiting is unavailable; try again soon.",
            "retry_after_seconds": retry_after_seconds(retry_after),
        },
    }


def unavailable_response(retry_after: float) -> JsonResponse:
    """503 for fail-closed when the counter store cannot answer."""
    response = JsonResponse(unavailable_body(retry_after), status=503)
    response["Retry-After"] = str(retry_after_seconds(retry_after))
    return response


def add_headers(
    response: HttpResponseBase,
    decision: Decision,
    config: Config | None = None,
    style: tuple[str, str] = ("", "tightest"),
) -> HttpResponseBase:
    """Set the rate-limit headers of ``decision`` on ``response`` (any status), in an
    endpoint group's ``style`` (see rate_limit_headers)."""
    for name, value in rate_limit_headers(decision, config, style).items():
        response[name] = value
    return response
