"""Whole 429 responses of every body style, and the 503, as exact values.

The default body is per-key-rolling-windows.md's; ``drf`` is Django REST framework's
throttled message; ``problem`` is RFC 9457 problem details with the quota-exceeded type
of draft-ietf-httpapi-ratelimit-headers. Retry-After is whole seconds, rounded up (never
earlier than allowed), at least 1.
"""

import json

import pytest
from django.http import HttpResponse

from ratelimit_app import conf
from ratelimit_app.counters.algorithms import FIXED_WINDOW, GCRA, SLIDING_WINDOW, US, LimitSpec
from ratelimit_app.counters.memory import MemoryBackend
from ratelimit_app.responses import (
    add_headers,
    ietf_fields,
    rate_limit_headers,
    retry_after_seconds,
    sf_string,
    tenant_inactive_response,
    throttled_payload,
    throttled_response,
    unavailable_response,
)

# 15 s into a minute: a fixed window of 60 s ends 45 s later.
MINUTE = 1_800_000_000 * US
NOW = MINUTE + 15 * US
MESSAGE = "Too many requests. Please wait before retrying."
OTP = LimitSpec("rl:k:otp", FIXED_WINDOW, rate=2, period=60, name="otp-tenant-60s")


def denied(specs, requests=3):
    """The decision on the last of ``requests`` requests at NOW."""
    backend = MemoryBackend({"MEMORY_MAX_KEYS": 100})
    for _ in range(requests - 1):
        backend.check(specs, now=NOW)
    decision = backend.check(specs, now=NOW)
    assert not decision.allowed
    return decision


def config(**overrides):
    return {**conf.DEFAULTS, **overrides}


BODIES = [
    (
        "default",
        "application/json",
        {
            "success": False,
            "error": {"code": "rate_limit_exceeded", "message": MESSAGE, "retry_after_seconds": 45},
        },
    ),
    (
        "drf",
        "application/json",
        {"detail": "Request was throttled. Expected available in 45 seconds."},
    ),
    (
        "problem",
        "application/problem+json",
        {
            "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
            "title": "Too Many Requests",
            "status": 429,
            "detail": MESSAGE,
            "retry_after_seconds": 45,
            "violated-policies": ["otp-tenant-60s"],
            "violated_limits": [{"name": "otp-tenant-60s", "limit": 2, "period": 60}],
        },
    ),
]


@pytest.mark.parametrize("style, content_type, body", BODIES)
def test_the_whole_429_of_every_body_style(style, content_type, body):
    response = throttled_response(denied([OTP]), config(BODY=style))
    assert response.status_code == 429
    assert response["Content-Type"] == content_type
    assert json.loads(response.content) == body
    headers = {name: value for name, value in response.items() if name != "Content-Type"}
    assert headers == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "45",  # the delta style, the default
        "Retry-After": "45",
    }


def test_the_epoch_reset_style_and_the_configured_message():
    settings = config(RESET_STYLE="epoch", MESSAGE="Slow down.")
    response = throttled_response(denied([OTP]), settings)
    assert response["X-RateLimit-Reset"] == str(NOW // US + 45)
    assert json.loads(response.content)["error"]["message"] == "Slow down."


def test_a_body_function_given_as_a_callable_or_a_dotted_path():
    for body in (custom_body, "tests.test_responses_table.custom_body"):
        payload, content_type, seconds = throttled_payload(denied([OTP]), config(BODY=body))
        assert (payload, content_type, seconds) == (
            {"wait": 45, "said": MESSAGE},
            "application/json",
            45,
        )


def custom_body(decision, seconds, message):
    return {"wait": seconds, "said": message}


def test_problem_details_name_only_the_enforced_limits_that_denied():
    burst = LimitSpec("rl:k:burst", GCRA, rate=300, period=60, burst=5, name="messages-key-60s")
    roomy = LimitSpec("rl:k:roomy", FIXED_WINDOW, rate=100, period=60, name="roomy")
    shadow = LimitSpec("rl:k:shadow", FIXED_WINDOW, rate=1, period=60, shadow=True, name="trial")
    # No name: the policy is named by the key's part before its last (the counter's).
    unnamed = LimitSpec("rl:t:7:media:f", FIXED_WINDOW, rate=5, period=60)
    decision = denied([burst, roomy, shadow, unnamed], requests=6)
    body, content_type, seconds = throttled_payload(decision, config(BODY="problem"))
    assert content_type == "application/problem+json"
    # Both must admit it: GCRA frees one in 0.2 s, the fixed window in 45 s.
    assert seconds == 45 and body["retry_after_seconds"] == 45
    assert body["violated-policies"] == ["messages-key-60s", "media"]
    assert body["violated_limits"] == [
        {"name": "messages-key-60s", "limit": 5, "period": 60},
        {"name": "media", "limit": 5, "period": 60},
    ]


@pytest.mark.parametrize(
    "wait, seconds",
    [(45.0, 45), (44.000001, 45), (44.2, 45), (0.2, 1), (0.0, 1), (1.0, 1), (59.9999, 60)],
)
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait, seconds):
    assert retry_after_seconds(wait) == seconds


def test_the_whole_503():
    response = unavailable_response(4.2)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "5"
    assert json.loads(response.content) == {
        "success": False,
        "error": {
            "code": "rate_limiter_unavailable",
            "message": "Rate limiting is unavailable; try again soon.",
            "retry_after_seconds": 5,
        },
    }


def test_the_ietf_fields_of_a_refusal_list_each_limit_and_no_reset_beyond_retry_after():
    """draft-ietf-httpapi-ratelimit-headers: q per w seconds, a GCRA limit's burst as
    ``burst`` (a fixed window has none, even with a burst in its row), and on a refusal
    no ``t`` later than Retry-After."""
    burst = LimitSpec("rl:k:burst", GCRA, rate=300, period=60, burst=5, name="messages-key-60s")
    roomy = LimitSpec("rl:k:roomy", FIXED_WINDOW, rate=100, period=60, burst=3, name="roomy")
    # Six at one instant: the burst of 5 denies the sixth, which charges nothing.
    decision = denied([burst, roomy], requests=6)
    assert retry_after_seconds(decision.retry_after) == 1  # GCRA frees one in 0.2 s
    assert ietf_fields(decision) == {
        "RateLimit-Policy": '"messages-key-60s";q=300;w=60;burst=5, "roomy";q=100;w=60',
        # The fixed window would reset in 45 s; the refusal says 1 (Retry-After).
        "RateLimit": '"messages-key-60s";r=0;t=1, "roomy";r=95;t=1',
    }


@pytest.mark.parametrize(
    "text, field",
    [
        # RFC 9651 sf-string: printable ASCII, space (0x20) to tilde (0x7E) included.
        ("a b~", '"a b~"'),
        (" ", '" "'),
        ("~", '"~"'),
        # Outside that range: the control characters, DEL (0x7F) and non-ASCII.
        ("tab\there", '"tab?here"'),
        ("del\x7f", '"del?"'),
        ("médias", '"m?dias"'),
        # Escaped: the quote and the backslash.
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
    ],
)
def test_a_policy_name_as_a_structured_field_string(text, field):
    assert sf_string(text) == field


# per-key-rolling-windows.md's messaging: 300 a minute in a rolling window, with a burst
# of 5 a second on top.
MESSAGES_WINDOW = LimitSpec("rl:k:msgw", SLIDING_WINDOW, rate=300, period=60, name="win")
MESSAGES_BURST = LimitSpec("rl:k:msgb", GCRA, rate=5, period=1, burst=5, name="burst")


def test_the_headers_describe_the_window_or_the_tightest_limit_as_the_group_says():
    # Six at one instant: the burst admits five, the sixth is refused and charges nothing.
    decision = denied([MESSAGES_WINDOW, MESSAGES_BURST], requests=6)
    # The document's style: the rolling window, its reset a Unix time. The five stay in
    # the window until 60 s after NOW (their sub-window's last admission).
    assert rate_limit_headers(decision, config(), ("epoch", "window")) == {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "295",
        "X-RateLimit-Reset": str(1_800_000_015 + 60),
    }
    # The tightest limit, its reset in seconds from now: the burst is empty, and full
    # again after 5 x 0.2 s.
    assert rate_limit_headers(decision, config(), ("delta", "tightest")) == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1",
    }


def test_add_headers_writes_the_groups_own_style():
    decision = denied([MESSAGES_WINDOW, MESSAGES_BURST], requests=6)
    response = add_headers(HttpResponse(), decision, config(), ("epoch", "window"))
    # per-key-rolling-windows.md: the window's figures, its reset a Unix time.
    assert (response["X-RateLimit-Limit"], response["X-RateLimit-Reset"]) == (
        "300",
        str(1_800_000_015 + 60),
    )


def test_the_refusal_of_an_inactive_tenant_is_the_documented_403():
    reply = tenant_inactive_response()
    # README, "An inactive tenant": a 403 with this body.
    assert reply.status_code == 403
    assert json.loads(reply.content) == {
        "detail": "The tenant of this API key is inactive.",
        "code": "tenant_inactive",
    }


def test_headers_follow_the_configuration_given_not_the_settings():
    decision = denied([OTP])
    response = add_headers(HttpResponse(), decision, config(RESET_STYLE="epoch"))
    assert response["X-RateLimit-Reset"] == str(1_800_000_000 + 60)  # the window's end
    response = add_headers(HttpResponse(), decision, config(RESET_STYLE="delta"))
    assert response["X-RateLimit-Reset"] == "45"


def test_shadow_limits_are_neither_listed_nor_described_and_an_admission_keeps_its_resets():
    trial = LimitSpec("rl:k:trial", SLIDING_WINDOW, rate=10, period=3600, shadow=True, name="t")
    backend = MemoryBackend({"MEMORY_MAX_KEYS": 100})
    decision = backend.check([OTP, trial], now=NOW)  # the first request: admitted
    assert decision.allowed
    # Only the enforced limit, its reset the window's end (45 s), not a Retry-After.
    assert ietf_fields(decision) == {
        "RateLimit-Policy": '"otp-tenant-60s";q=2;w=60',
        "RateLimit": '"otp-tenant-60s";r=1;t=45',
    }
    # The window a group's headers describe is an enforced one, not the shadow hour.
    assert rate_limit_headers(decision, config(), ("delta", "window")) == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "1",
        "X-RateLimit-Reset": "45",
    }
