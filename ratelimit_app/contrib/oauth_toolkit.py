"""django-oauth-toolkit: its access tokens as a party, and credential bans inside its own
client authentication.

Access tokens: set ``RATELIMIT_APP["TOKEN_RESOLVER"] =
"ratelimit_app.contrib.oauth_toolkit.AccessTokenResolver"``. A bearer token the
toolkit issued then has its own budget (limits "per API key (access token)"), and
belongs to the tenant ``RATELIMIT_APP["TOKEN_TENANTS"]`` maps its application's
client_id to. The resolver reads a token's row (by the toolkit's own checksum) at most
once a second per process and remembers its expiry (ratelimit_app.tokens): a revoked
token is refused within a second, an expired one at once.

Credential bans:
Set ``OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"] =
"ratelimit_app.contrib.oauth_toolkit.RateLimitedOAuth2Validator"`` (or mix
``BanCheckingValidatorMixin`` into your own validator) and give a ban rule
"failures are: client authentications". Then every client authentication of the
toolkit (token, revoke_token, introspect) checks the ban of the pair *the toolkit
parsed*, before its secret is hashed, and counts the failures: stray characters in a
Basic header, a decoy Basic header with the real pair in the body, or any other
encoding reach the same ban. A banned pair gets 429 with ``Retry-After`` and the
configured body, as from the middleware.
"""

import hashlib
import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from oauth2_provider.models import get_access_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from ratelimit_app import enforcement, responses
from ratelimit_app.tokens import Grant, LookupFailed, MemoizedResolver


class CredentialPairBanned(OAuth2Error):
    """429 for a banned pair; oauthlib's endpoints turn it into the response."""

    error = "rate_limit_exceeded"
    status_code = 429

    def __init__(self, decision: enforcement.Decision, request: Any = None) -> None:
        super().__init__(description="Too many failed client authentications.", request=request)
        self.body, _content_type, self.seconds = responses.throttled_payload(decision)
        self.limit_headers = responses.rate_limit_headers(decision)

    @property
    def json(self) -> str:
        """The configured 429 body (the same as the middleware's)."""
        return json.dumps(self.body)

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` and the rate-limit headers of the ban."""
        return {**self.limit_headers, "Retry-After": str(self.seconds)}

    def ratelimit_response(self) -> HttpResponse:
        """The 429 itself, for views that call the validator outside oauthlib's
        endpoints (the toolkit's introspect view): RateLimitMiddleware sends it."""
        response = JsonResponse(self.body, status=429)
        for name, value in self.headers.items():
            response[name] = value
        return response


@dataclass
class _Attempt:
    """One call of authenticate_client: the request's META and the client_id in hand."""

    meta: Any
    client_id: str | None = None
    checked: list[tuple[str, str, bool]] = field(default_factory=list)


# The authentication in progress in this thread or task (the toolkit's _check_secret
# is not given the request).
_attempt: ContextVar[_Attempt | None] = ContextVar("ratelimit_client_authentication", default=None)


class BanCheckingValidatorMixin:
    """Checks and counts credential bans where the toolkit authenticates a client."""

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        """The toolkit's client authentication, with every pair it checks subject to the
        ban rule: a banned pair raises CredentialPairBanned (429) before its hash."""
        attempt = _Attempt(meta=request.headers)
        token = _attempt.set(attempt)
        try:
            return bool(super().authenticate_client(request, *args, **kwargs))  # type: ignore[misc]
        finally:
            _attempt.reset(token)
            # Every pair checked counts, a decoy's before a refused pair's included.
            for client_id, secret, succeeded in attempt.checked:
                enforcement.record_client_authentication(client_id, secret, attempt.meta, succeeded)

    def _authenticate_basic_auth(self, request: Any) -> bool:
        # The toolkit catches undecodable base64 but not non-ASCII bytes after "Basic"
        # (base64 raises ValueError): that header is no Basic pair either, not a 500.
        try:
            return bool(super()._authenticate_basic_auth(request))  # type: ignore[misc]
        except ValueError:
            return False

    def _load_application(self, client_id: str, request: Any) -> Any:
        attempt = _attempt.get()
        if attempt is not None:
            attempt.client_id = client_id
        return super()._load_application(client_id, request)  # type: ignore[misc]

    def _check_secret(self, provided_secret: str, stored_secret: str) -> bool:
        attempt = _attempt.get()
        if attempt is None or attempt.client_id is None:
            return bool(super()._check_secret(provided_secret, stored_secret))  # type: ignore[misc]
        client_id = attempt.client_id
        refusal = enforcement.refused_pair(client_id, provided_secret, attempt.meta)
        if refusal is not None:
            raise CredentialPairBanned(refusal)
        succeeded = bool(super()._check_secret(provided_secret, stored_secret))  # type: ignore[misc]
        attempt.checked.append((client_id, provided_secret, succeeded))
        return succeeded


class RateLimitedOAuth2Validator(BanCheckingValidatorMixin, OAuth2Validator):
    """django-oauth-toolkit's validator with credential bans (OAUTH2_VALIDATOR_CLASS)."""


class AccessTokenResolver(MemoizedResolver):
    """TOKEN_RESOLVER for the toolkit's AccessToken: a token revoked (its row deleted)
    is no party a second later at most, an expired one from its expiry on."""

    def load(self, token: str) -> Grant | None:
        """The grant of the toolkit's row for ``token``, looked up by the toolkit's own
        checksum (an indexed column), or None if there is no such row."""
        checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
        try:
            row = (
                get_access_token_model()
                .objects.filter(token_checksum=checksum)
                .values_list("expires", "application__client_id")
                .first()
            )
        except DatabaseError as exc:
            raise LookupFailed from exc
        if row is None:
            return None
        expires, client_id = row
        return Grant(application=client_id, expires_at=expires.timestamp())
