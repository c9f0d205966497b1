"""The browser tests' wait for a page to go (tests/browser_support.py), without a browser.

Chromium's driver answers a call on an element of a page being replaced with either a
stale-element error or an "unknown error" saying the node does not belong to the
document; Selenium's own ``staleness_of`` treats only the first as gone, so a CI run
failed on the second (test_the_preview_shows_..., chrome 156).
"""

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

from tests.browser_support import gone

NODE_LEFT = (
    'unknown error: unhandled inspector error: {"code":-32000,'
    '"message":"Node with given id does not belong to the document"}'
)


class Element:
    """An element whose staleness probe raises ``error`` (or answers, if None)."""

    def __init__(self, error=None):
        self.error = error

    def is_enabled(self):
        if self.error:
            raise self.error
        return True


@pytest.mark.parametrize(
    "error, expected",
    [
        (None, False),
        (StaleElementReferenceException("stale element reference"), True),
        (WebDriverException(NODE_LEFT), True),
    ],
)
def test_a_page_is_gone_when_its_element_is_stale_or_left_the_document(error, expected):
    assert gone(Element(error))(None) is expected


def test_any_other_driver_error_is_not_taken_for_a_new_page():
    with pytest.raises(WebDriverException, match="chrome not reachable"):
        gone(Element(WebDriverException("chrome not reachable")))(None)
