import pytest

from ratelimit_app.paths import compile_pattern, normalize_path, pattern_specificity


@pytest.mark.parametrize(
    "variant",
    [
        "/v1/messages",
        "//v1//messages",
        "/v1/messages/",
        "/V1/Messages",
        "/v1/%6Dessages",
        "/v1/%256Dessages",
        "/v1/./messages",
        "/v1/x/../messages",
    ],
)
def test_path_variants_normalize_to_one_path(variant):
    assert normalize_path(variant) == "/v1/messages"


def test_patterns():
    below = compile_pattern("/v1/messages/*")
    assert below.match("/v1/messages") and below.match("/v1/messages/1/read")
    assert not below.match("/v1/messagesx")
    exact = compile_pattern("/connect/token")
    assert exact.match("/connect/token") and not exact.match("/connect/token/x")
    segment = compile_pattern("/acp/*/ping")
    assert segment.match("/acp/admin/ping") and not segment.match("/acp/a/b/ping")
    with pytest.raises(ValueError, match="must start with"):
        compile_pattern("v1")


# Exact examples of compile_pattern's documented forms (its docstring and the group
# form's help text), each path matched or not: (pattern, path, matches).
PATTERN_EXAMPLES = [
    ("/", "/", True),
    ("/", "/x", False),
    ("/*", "/", True),  # the catch-all: the root and everything below it
    ("/*", "/anything/at/all", True),
    ("/v1/messages", "/v1/messages", True),
    ("/v1/messages", "/v1/messages/1", False),
    ("/v1/messages/*", "/v1/messages", True),  # the path itself and below
    ("/v1/messages/*", "/v1/messages/1/2", True),
    ("/v1/messages/*", "/v1/messagesx", False),
    ("/acp/*/ping", "/acp/admin/ping", True),  # a `*` segment: exactly one segment
    ("/acp/*/ping", "/acp/ping", False),
    ("/acp/*/ping", "/acp/a/b/ping", False),
    ("/files/img-*", "/files/img-1", True),  # a `*` inside a segment
    ("/files/img-*", "/files/img-1/x", False),
    ("/files/img-*", "/files/doc-1", False),
    ("/a.b", "/axb", False),  # regex characters are literal
    ("/a.b", "/a.b", True),
    ("/V1//Messages/*", "/v1/messages/7", True),  # a pattern is normalized like a path
    ("  /v1/status  ", "/v1/status", True),  # surrounding spaces of a form line
    ("/files/*-*.png", "/files/a-b.png", True),  # two in one segment
    ("/files/*-*.png", "/files/ab.png", False),
]


@pytest.mark.parametrize("pattern, path, matches", PATTERN_EXAMPLES)
def test_pattern_examples(pattern, path, matches):
    assert bool(compile_pattern(pattern).match(normalize_path(path))) is matches


def test_a_pattern_must_start_with_a_slash():
    with pytest.raises(ValueError, match="must start with '/'"):
        compile_pattern("v1/messages")


def test_longer_then_exact_patterns_are_more_specific():
    # pattern_specificity's docstring: longer, exact patterns win over shorter or wildcard
    # ones; the length leaves out a trailing `*`.
    assert pattern_specificity("/v1/messages") == (12, True)
    assert pattern_specificity("/acp/*/ping") == (11, False)
    assert pattern_specificity("/v1/messages/*") == (13, False)
    assert pattern_specificity("/*") == (1, False)
    patterns = ["/*", "/acp/*/ping", "/acp/admin/ping", "/acp/*"]
    ranked = sorted(patterns, key=pattern_specificity, reverse=True)
    assert ranked == ["/acp/admin/ping", "/acp/*/ping", "/acp/*", "/*"]
