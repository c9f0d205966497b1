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
