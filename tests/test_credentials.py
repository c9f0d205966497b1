"""The one credential parser, used by the ban stage and by the demo's token view alike.

RFC 6749 section 2.3.1: a client sends its id and secret in HTTP Basic (each part
form-urlencoded, then base64) or in the body. Whatever the encoding, it is one pair.
"""

import base64
import json
from urllib.parse import quote_plus, urlencode

from django.test import RequestFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from project.demo import views
from ratelimit_app.bans import watch
from ratelimit_app.credentials import client_credentials

# Any text a client may send (no lone surrogates: no encoding carries them).
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)
factory = RequestFactory()


def as_basic(client_id, secret):
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return factory.post(
        "/connect/token", HTTP_AUTHORIZATION="Basic " + base64.b64encode(raw).decode()
    )


def as_form(client_id, secret):
    body = urlencode({"client_id": client_id, "client_secret": secret})
    return factory.post("/connect/token", body, content_type="application/x-www-form-urlencoded")


def as_json(client_id, secret):
    body = json.dumps({"client_id": client_id, "client_secret": secret})
    return factory.post("/connect/token", body, content_type="application/json")


@settings(max_examples=200, deadline=None)
@given(client_id=TEXT, secret=TEXT)
def test_every_encoding_of_a_pair_is_the_same_pair(client_id, secret):
    for encode in (as_basic, as_form, as_json):
        assert client_credentials(encode(client_id, secret)) == (client_id, secret)


def test_the_demo_view_and_the_ban_stage_share_the_parser():
    # One function object: the two cannot disagree about which pair a request carries.
    assert views.client_credentials is client_credentials
    assert watch.client_credentials is client_credentials


@settings(max_examples=200, deadline=None)
@given(header=st.text(st.characters(max_codepoint=255), max_size=80), body=st.binary(max_size=200))
def test_any_header_and_body_give_a_pair_or_none_and_never_raise(header, body):
    request = factory.generic(
        "POST", "/connect/token", body, content_type="application/json", HTTP_AUTHORIZATION=header
    )
    pair = client_credentials(request)
    assert pair is None or (isinstance(pair[0], str) and isinstance(pair[1], str))


def exact_json(size):
    """A JSON pair body of exactly ``size`` bytes (39 of them the framing)."""
    body = b'{"client_id": "a", "client_secret": "' + b"x" * (size - 39) + b'"}'
    assert len(body) == size
    return body


def b64(text):
    return base64.b64encode(text.encode()).decode()


# Exact examples written from RFC 6749 section 2.3.1 and RFC 7617, not from the code:
# (Authorization header, content type, body) -> the pair, or None.
EXAMPLES = [
    (f"Basic {b64('demo-client:demo-secret')}", "", b"", ("demo-client", "demo-secret")),
    (f"basic {b64('demo-client:demo-secret')}", "", b"", ("demo-client", "demo-secret")),
    (f"Digest {b64('demo-client:demo-secret')}", "", b"", None),  # not Basic
    (f"Bearer {b64('demo-client:demo-secret')}", "", b"", None),
    (f"Basic {b64('id:se:cr:et')}", "", b"", ("id", "se:cr:et")),  # the first ':' splits
    (f"Basic {b64('my%20id:p%2Bw+x')}", "", b"", ("my id", "p+w x")),  # form-urlencoded
    (f"Basic {b64('no-colon')}", "", b"", None),
    (f"Basic {b64(':')}", "", b"", ("", "")),  # both parts present, both empty
    ("Basic", "", b"", None),
    ("Basic !!!not-base64!!!", "", b"", None),
    # RFC 4648 base64 only: a character outside the alphabet is no pair, not skipped.
    (f"Basic {b64('a:b')[:2]}*{b64('a:b')[2:]}", "", b"", None),
    (f"Basic {b64('a:b')[:2]} {b64('a:b')[2:]}", "", b"", None),
    ("Basic \u00e9t\u00e9", "", b"", None),  # latin-1 text, not base64
    (f"Basic  {b64('a:b')} ", "", b"", ("a", "b")),  # spaces around the token
    (
        "",
        "application/x-www-form-urlencoded",
        b"client_id=a&client_secret=b%3Ac",
        ("a", "b:c"),
    ),
    (
        "",
        "application/x-www-form-urlencoded; charset=utf-8",
        b"client_id=a&client_secret=b",
        ("a", "b"),
    ),
    ("", "application/x-www-form-urlencoded", b"client_id=a", None),  # half a pair
    ("", "application/x-www-form-urlencoded", b"client_secret=b", None),
    ("", "text/plain", b"client_id=a&client_secret=b", None),  # not a form
    ("", "application/json", b'{"client_id": "a", "client_secret": "b"}', ("a", "b")),
    ("", "application/json", b'{"client_id": "a", "client_secret": 7}', None),
    ("", "application/json", b'{"client_id": "a"}', None),
    ("", "application/json", b'["a", "b"]', None),
    (
        "",
        "application/json",
        b'{"client_id": "a", "client_secret": "' + b"x" * (64 * 1024) + b'"}',
        None,  # over the 64 KB cap: not read
    ),
    # The cap is 64 KiB inclusive: a body of exactly 65,536 bytes is read.
    ("", "application/json", exact_json(64 * 1024), ("a", "x" * (64 * 1024 - 39))),
    ("", "application/json", exact_json(64 * 1024 + 1), None),
    ("", "application/json", b"", None),  # an empty body carries nothing
]


def test_exact_examples_of_every_encoding_and_malformed_form():
    for header, content_type, body, expected in EXAMPLES:
        extra = {"HTTP_AUTHORIZATION": header} if header else {}
        request = factory.generic(
            "POST", "/connect/token", body, content_type=content_type or "", **extra
        )
        assert client_credentials(request) == expected, (header, content_type, body[:60])


def test_a_multipart_form_carries_its_pair():
    request = factory.post("/connect/token", {"client_id": "a", "client_secret": "b"})
    assert request.META["CONTENT_TYPE"].startswith("multipart/form-data")
    assert client_credentials(request) == ("a", "b")


def test_a_request_without_content_type_or_authorization_carries_no_pair():
    request = factory.get("/connect/token")
    request.META.pop("CONTENT_TYPE", None)
    request.META.pop("HTTP_AUTHORIZATION", None)
    assert client_credentials(request) is None
    basic = factory.get("/connect/token", HTTP_AUTHORIZATION=f"Basic {b64('a:b')}")
    basic.META.pop("CONTENT_TYPE", None)
    assert client_credentials(basic) == ("a", "b")
