import pytest
from django.conf import settings

from ratelimit_app import runtime


@pytest.fixture(autouse=True)
def _fresh_runtime():
    """Every test starts with a new backend, so counters never leak between tests."""
    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture
def stack():
    """The stack this pass runs on: "local" or "services"."""
    return settings.STACK
