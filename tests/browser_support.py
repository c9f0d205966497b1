"""Headless Chromium for the admin's browser tests (make test-browser).

Debian's chromium and chromedriver only: the driver is given by path, and SE_OFFLINE
stops Selenium Manager from downloading a browser or a driver of its own.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "admin"
WIDTH, HEIGHT = 1400, 1000


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
