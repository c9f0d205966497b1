"""The enforcement core: the one pipeline every surface (middleware, DRF throttle,
decorator) calls. ``check`` before the view, ``feed_back`` after it."""

from ratelimit_app.counters.base import Decision
from ratelimit_app.enforcement.client_auth import record_client_authentication, refused_pair
from ratelimit_app.enforcement.pipeline import VERDICT_ATTRIBUTE, check, feed_back
from ratelimit_app.enforcement.specs import ALGORITHM_LETTERS, build_specs, cached_specs
from ratelimit_app.enforcement.verdict import NOT_LIMITED, Verdict, denial_response

__all__ = [
    "ALGORITHM_LETTERS",
    "Decision",
    "NOT_LIMITED",
    "VERDICT_ATTRIBUTE",
    "Verdict",
    "build_specs",
    "cached_specs",
    "check",
    "denial_response",
    "feed_back",
    "record_client_authentication",
    "refused_pair",
]
