"""OAuth2 client credentials of a token request: HTTP Basic, form body or JSON body."""

import base64
import binascii
import json
from urllib.parse import unquote_plus

from django.http import HttpRequest

MAX_BODY_BYTES = 64 * 1024


def _from_basic(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    # Header values arrive as latin-1 text: base64 is ASCII, anything else is no pair.
    if scheme.lower() != "basic" or not encoded or not encoded.isascii():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return None
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


def _from_json(request: HttpRequest) -> tuple[str, str] | None:
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY_BYTES:
        return None
    try:
        data = json.loads(request.body)  # an empty body is a ValueError too
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: RecursionError
        return None
    if not isinstance(data, dict):
        return None
    client_id, secret = data.get("client_id"), data.get("client_secret")
    if isinstance(client_id, str) and isinstance(secret, str):
        return client_id, secret
    return None


def _from_form(request: HttpRequest) -> tuple[str, str] | None:
    client_id, secret = request.POST.get("client_id"), request.POST.get("client_secret")
    if client_id is not None and secret is not None:
        return client_id, secret
    return None


def client_credentials(request: HttpRequest) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` of a token request, or None if it carries none.

    The same pair is found whichever of the three RFC 6749 forms the client used.
    Never raises on malformed input: a broken header or body simply carries no pair.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        pair = _from_basic(header)
        if pair:
            return pair
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return _from_json(request)
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            return _from_form(request)
        except Exception:  # noqa: BLE001 - a hostile body must not break the check
            return None
    return None
