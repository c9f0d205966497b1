"""The demo's access tokens: what ``/connect/token`` issues, and their token resolver.

A demo token is signed, not stored: ``<payload>.<signature>`` (django.core.signing,
URL-safe, an RFC 6750 bearer token), its payload the client_id, the expiry and a nonce
(so that two tokens of one client are two parties). The resolver checks the signature
and reads the payload without a query; any other bearer value is offered to
django-oauth-toolkit's resolver, so that the demo's two token endpoints (``/connect/token``
and the toolkit's ``/o/token/``) both issue parties: set as
``RATELIMIT_APP["TOKEN_RESOLVER"] = "project.demo.tokens.DemoTokenResolver"``.
"""

import secrets
import time

from django.core import signing

from ratelimit_app.contrib.oauth_toolkit import AccessTokenResolver
from ratelimit_app.tokens import Grant

SALT = "project.demo.access-token"
LIFETIME = 3600


def _signer():
    return signing.Signer(salt=SALT, sep=".")


def issue_token(client_id, now=None, lifetime=LIFETIME):
    """A new access token for ``client_id``, valid for ``lifetime`` seconds from ``now``."""
    now = time.time() if now is None else now
    payload = {"c": client_id, "e": int(now + lifetime), "n": secrets.token_urlsafe(8)}
    return _signer().sign_object(payload)


def demo_grant(token):
    """The Grant of a demo token whose signature holds, else None."""
    try:
        payload = _signer().unsign_object(token)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("e"), int):
        return None
    return Grant(application=str(payload.get("c")), expires_at=float(payload["e"]))


class DemoTokenResolver(AccessTokenResolver):
    """The demo's tokens (signed, no query), else django-oauth-toolkit's."""

    def load(self, token):
        """A demo token's grant, else the toolkit's row's (or None)."""
        return demo_grant(token) or super().load(token)
