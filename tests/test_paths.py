import pytest

from ratelimit_app.paths import compile_pattern, normalize_path


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
