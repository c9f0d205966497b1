"""Headless Chromium for the admin's browser tests (make test-browser).

Debian's chromium and chromedriver only: the driver is given by path, and SE_OFFLINE
stops Selenium Manager from downloading a browser or a driver of its own.
"""

import os
from pathlib import Path

import pytest
from django.urls import reverse
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "admin"
WIDTH, HEIGHT = 1400, 1000
# The operator every browser test logs in as (a superuser, made by the console fixture).
USER, PASSWORD = "operator", "operator-password"


def start_chromium():
    """A headless Chromium driven by the system chromedriver; a failure, never a skip,
    when either is missing or does not start."""
    os.environ["SE_OFFLINE"] = "1"  # Selenium Manager: never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: make test-browser installs chromium-driver.")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},{HEIGHT}",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    port = int(os.environ.get("CHROMEDRIVER_PORT", "0"))
    service = Service(CHROMEDRIVER, port=port)
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception as exc:  # noqa: BLE001  (any start-up error fails the suite)
        pytest.fail(f"Chromium did not start: {exc}")
    driver.implicitly_wait(0)
    return driver


def screenshot(driver, name):
    """Save the page as docs/admin/<name>.png (the pictures of docs/admin.md)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # The whole page, not only the window: grow the window to the document's height.
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], min(max(height + 120, 600), 4000))
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.set_window_size(size["width"], size["height"])


def gone(element):
    """A wait condition: ``element``'s page has been replaced.

    Selenium's ``staleness_of`` knows only the stale-element error; Chromium's driver
    sometimes answers for a page mid-replacement that the node "does not belong to the
    document", which is the same fact and must not fail the test."""

    def predicate(_driver):
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return predicate


class Console:
    """The browser at the live server: open admin pages, log in, read and click."""

    def __init__(self, driver, base_url):
        self.driver, self.base_url = driver, base_url

    def open(self, url_name, *args, query=""):
        self.driver.get(f"{self.base_url}{reverse(url_name, args=args)}{query}")

    def log_in(self):
        self.open("admin:login")
        self.find("#id_username").send_keys(USER)
        self.find("#id_password").send_keys(PASSWORD)
        # The login page has a #site-name too: wait for it to go, not for the header.
        self.submit("input[type=submit]")
        self.wait_for("#site-name")

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_for(self, css, timeout=10):
        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    def submit(self, css="input[name=_save]"):
        """Press a button and wait for the next page."""
        page = self.find("html")
        self.find(css).click()
        WebDriverWait(self.driver, 10).until(gone(page))

    def run_action(self, action, *object_ids):
        """Tick ``object_ids`` in the change list, choose ``action`` and press Go."""
        for object_id in object_ids:
            self.find(f"input[name=_selected_action][value='{object_id}']").click()
        Select(self.find("select[name=action]")).select_by_value(action)
        self.submit("button[name=index]")

    def messages(self):
        return [m.text for m in self.find_all("ul.messagelist li")]

    def text(self, css="body"):
        return self.find(css).text
