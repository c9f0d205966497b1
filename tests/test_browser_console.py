"""The console's own pages in a real browser (make test-browser, as tests/test_browser.py):
the preview of a request, resetting a throttled client, the index dashboard and the
usage page, after real requests to the live server.

The counters run on the held ``clock`` (runtime.test_clock, read by the live server's
threads too: they run in this process), so a GCRA limit does not refill between two
requests and the figures are exact. Redis still expires a counter in real time when it
would be full again (its TTL), so the requests are sent just before the page that reads
them is submitted. Expected values come from the free tier's Admin limit
in tenant-api-group-tiers.md: 300 a minute (one request every 0.2 s), burst 50.
"""

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from project.demo.setup import DEMO_KEYS
from ratelimit_app import activity
from ratelimit_app.models import PolicyEdit, Tenant
from tests.browser_support import USER, screenshot
from tests.http_support import HttpClient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FREE_ADMIN = "300/min · burst 50 · per tenant"
BURST = 50
SECONDS_PER_REQUEST = 60 / 300
ADMIN_PATH = "/acp/admin/ping"


@pytest.fixture
def http(live_server):
    """Real HTTP requests to the live server."""
    client = HttpClient(live_server.url)
    yield client
    client.close()


def free_admin_request(http):
    """One request to the ACP Admin group with the free tenant's API key."""
    return http.get(ADMIN_PATH, Authorization=f"Bearer {DEMO_KEYS['free'][1]}")


def throttle_the_free_tenant(http):
    """Use up the free Admin burst over HTTP: the next request is a 429."""
    statuses = [free_admin_request(http).status for _ in range(BURST + 1)]
    assert statuses == [200] * BURST + [429]


def fill_the_preview_form(console):
    """Open the preview page and choose the free tenant and the Admin path."""
    tenant = Tenant.objects.get(slug="free-tenant")
    console.open("admin:ratelimit_app_preview")
    Select(console.find("#id_tenant")).select_by_value(str(tenant.pk))
    console.find("#id_path").send_keys(ADMIN_PATH)


def shown_preview(console):
    """The free Admin limit's row and the headers on the preview page."""
    console.wait_for("#preview-limits")
    [row] = [r for r in console.find_all(".preview-limit") if FREE_ADMIN in r.text]
    figures = {
        "remaining": int(row.find_element(By.CSS_SELECTOR, ".remaining-now").text),
        "reset_after": row.find_element(By.CSS_SELECTOR, ".reset-after").text,
    }
    headers = {
        line.find_element(By.TAG_NAME, "th").text: line.find_element(By.TAG_NAME, "td").text
        for line in console.find_all("#preview-headers tr")
    }
    return figures, headers


def test_the_preview_shows_the_burst_minus_the_requests_made_and_charges_nothing(
    console, http, clock
):
    console.log_in()
    fill_the_preview_form(console)
    # The requests just before the preview: the clock is held, but Redis expires a GCRA
    # counter in real time once it would be full again (here after 45 x 0.2 = 9 s).
    made = 45
    assert [free_admin_request(http).status for _ in range(made)] == [200] * made
    console.submit("#preview-submit")
    figures, headers = shown_preview(console)
    assert [h1.text for h1 in console.find_all("#content h1")] == ["Preview a request"]
    assert "Group admin, tenant free-tenant" in console.text("#preview-summary")
    assert figures == {
        "remaining": BURST - made,
        # GCRA: each request pushes the reset 0.2 s further.
        "reset_after": f"{made * SECONDS_PER_REQUEST:.0f}",
    }
    # The headers a request would get now: it would take one more.
    assert headers["X-RateLimit-Limit"] == str(BURST)
    assert headers["X-RateLimit-Remaining"] == str(BURST - made - 1)
    # Previewing charged nothing: the same preview again shows the same, and the next
    # real request is the 46th.
    console.driver.refresh()
    assert shown_preview(console) == (figures, headers)
    reply = free_admin_request(http)
    assert reply.status == 200
    assert reply.header("X-RateLimit-Remaining") == str(BURST - made - 1)
    screenshot(console.driver, "preview")


def test_an_operator_resets_a_throttled_tenant_and_its_next_request_is_admitted(
    console, http, clock
):
    tenant = Tenant.objects.get(slug="free-tenant")
    console.log_in()
    console.open("admin:ratelimit_app_tenant_changelist")
    # Throttled just before the reset: Redis expires the full counter in real time
    # (after 10 s), which would admit the next request without any reset.
    throttle_the_free_tenant(http)
    console.run_action("reset_tenant_counters", tenant.pk)
    reply = free_admin_request(http)
    assert reply.status == 200
    assert reply.header("X-RateLimit-Remaining") == str(BURST - 1)  # a full burst again
    [message] = console.messages()
    assert message.startswith("Counters reset for free-tenant ("), message
    screenshot(console.driver, "reset-counters")
    # The reset is in the policy edits list, with who made it.
    console.open("admin:ratelimit_app_policyedit_changelist", query="?object_type=counters")
    [row] = console.find_all("#result_list tbody tr")
    assert "counters" in row.text and "tenant free-tenant" in row.text and USER in row.text
    [edit] = PolicyEdit.objects.filter(object_type="counters")
    assert edit.user.username == USER
    assert edit.summary == "Reset the counters of tenant free-tenant"
    screenshot(console.driver, "reset-in-policy-edits")


def figure_once_recorded(console, css, timeout=10.0):
    """Reload the index until ``css`` shows a figure above 0 (the recorder's thread
    writes its notes within activity.FLUSH_SECONDS), or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        console.open("admin:index")
        figure = int(console.find(f"{css} .dashboard-figure").text)
        if figure > 0 or time.monotonic() > deadline:
            return figure
        time.sleep(0.2)  # polling a thread's output, not waiting for a window


def test_the_dashboard_and_the_usage_page_show_the_throttled_tenant(console, http, clock):
    activity.recorder.clear()  # notes an earlier test left unwritten are not this test's
    throttle_the_free_tenant(http)
    console.log_in()
    # One party was refused: the free tenant, by its Admin limit.
    assert figure_once_recorded(console, "#dashboard-throttled") == 1
    assert console.text("#dashboard-throttled td") == "1: admin 1"
    assert console.text("#dashboard-active-bans .dashboard-figure") == "0"
    assert console.text("#dashboard-store .dashboard-store-state") == "answering"
    assert console.text("#dashboard-store .dashboard-breaker") == "closed"
    screenshot(console.driver, "dashboard")
    console.find("#dashboard-usage-link").click()
    row = console.wait_for("#usage-groups tr.usage-group[data-group='admin']")
    assert row.find_element(By.CSS_SELECTOR, ".usage-throttled-count").text == "1"
    assert "tenant free-tenant" in row.text
    assert [h1.text for h1 in console.find_all("#content h1")] == ["Who is using it"]
    screenshot(console.driver, "usage")
