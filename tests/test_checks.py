"""System checks: each mistake a project can make in RATELIMIT_APP or its views gets an
error or warning with a stable ID, and a correct configuration gets none."""

import pytest
from django.core import checks

from ratelimit_app.checks import check_settings, check_view_groups


def ids(messages):
    return sorted(message.id for message in messages)


def test_the_test_configuration_passes_every_check():
    assert check_settings() == []


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"UNKNOWN_KEY": 1}, "ratelimit_app.E001"),
        ({"BACKEND": "no.such.Backend"}, "ratelimit_app.E002"),
        (
            {"BACKEND": "ratelimit_app.counters.redis.RedisBackend", "CACHE_ALIAS": "nowhere"},
            "ratelimit_app.E003",
        ),
        ({"FAILURE_MODE": "sometimes"}, "ratelimit_app.E004"),
        ({"RESET_STYLE": "later"}, "ratelimit_app.E004"),
        ({"TRUSTED_PROXIES": ["10.0.0.0/8", "not-a-network"]}, "ratelimit_app.E005"),
        ({"IPV6_PREFIX": 129}, "ratelimit_app.E006"),
        ({"IPV6_PREFIX": 0}, "ratelimit_app.E006"),
        ({"BODY": "no.such.body_function"}, "ratelimit_app.E007"),
        ({"TOKEN_RESOLVER": "no.such.TokenResolver"}, "ratelimit_app.E013"),
        ({"TOKEN_RESOLVER": "ratelimit_app.tokens.SETTING_NAME"}, "ratelimit_app.E013"),
        ({"TOKEN_TENANTS": ["dot-client"]}, "ratelimit_app.E014"),
    ],
)
def test_each_settings_mistake_has_its_error(settings, override, expected):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, **override}
    errors = check_settings()
    assert ids(errors) == [expected]
    assert all(isinstance(error, checks.Error) for error in errors)


@pytest.mark.django_db
def test_views_naming_unknown_groups_are_reported_with_their_routes(settings, demo_data):
    settings.ROOT_URLCONF = "tests.checks_urls"
    warnings = check_view_groups()
    assert ids(warnings) == ["ratelimit_app.W010"] * 4
    reported = {(w.obj, w.msg.split("group ")[1].split(",")[0]) for w in warnings}
    assert reported == {
        ("decorated", "'no-such-group'"),
        ("class", "'no-such-class-group'"),
        ("scoped", "'no-such-scope'"),
        ("api/deep", "'no-such-nested-group'"),
    }


@pytest.mark.django_db
def test_a_group_created_later_is_no_longer_reported(settings, demo_data):
    from ratelimit_app.models import EndpointGroup

    settings.ROOT_URLCONF = "tests.checks_urls"
    for slug in ("no-such-group", "no-such-class-group", "no-such-scope"):
        EndpointGroup.objects.create(slug=slug, name=slug)
    assert [w.obj for w in check_view_groups()] == ["api/deep"]


@pytest.mark.django_db
def test_the_demo_names_only_groups_of_its_catalogue(demo_data):
    assert check_view_groups() == []


def test_trusted_proxies_as_a_string_is_one_clear_error(settings):
    settings.RATELIMIT_APP = {**settings.RATELIMIT_APP, "TRUSTED_PROXIES": "10.0.0.0/8"}
    errors = check_settings()
    assert ids(errors) == ["ratelimit_app.E008"]
    assert "['10.0.0.0/8']" in errors[0].hint


MIDDLEWARE = "ratelimit_app.middleware.RateLimitMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"


@pytest.mark.parametrize(
    "middleware, expected",
    [
        ([SESSIONS, AUTH, MIDDLEWARE], []),
        ([SESSIONS, AUTH], ["ratelimit_app.W011"]),
        ([SESSIONS, MIDDLEWARE, AUTH], ["ratelimit_app.W012"]),
        ([MIDDLEWARE], []),  # no authentication at all: nothing to come after
        ([SESSIONS, AUTH, "tests.checks_urls.OwnMiddleware"], []),  # a subclass counts
        ([SESSIONS, "tests.checks_urls.OwnMiddleware", AUTH], ["ratelimit_app.W012"]),
    ],
)
def test_the_middleware_must_be_there_and_after_authentication(settings, middleware, expected):
    from ratelimit_app.checks import check_middleware

    settings.MIDDLEWARE = middleware
    assert ids(check_middleware()) == expected


def test_the_demo_and_test_settings_place_the_middleware_well():
    from ratelimit_app.checks import check_middleware

    assert check_middleware() == []


@pytest.mark.django_db
def test_a_fresh_install_with_no_group_yet_gets_no_warning(settings):
    # `migrate` runs the checks before the catalogue is loaded: no noise then.
    settings.ROOT_URLCONF = "tests.checks_urls"
    assert check_view_groups() == []
