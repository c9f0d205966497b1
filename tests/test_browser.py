"""The operators' console in a real browser: headless Chromium (Debian's, driven by its
chromedriver through Selenium) against Django's live server on PostgreSQL and Redis.

Run by ``make test-browser``. Each test saves a screenshot of the page it checks to
docs/admin/<name>.png, shown in docs/admin.md.
"""

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from project.demo.setup import DEMO_KEYS
from ratelimit_app.models import CredentialBan, Limit, Tenant, Tier
from tests.browser_support import USER, screenshot
from tests.http_support import HttpClient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_operator_logs_in_and_reads_a_tenants_effective_limits(console):
    tenant = Tenant.objects.get(slug="free-tenant")
    console.open("admin:ratelimit_app_tenant_change", tenant.pk)
    assert console.find("#id_username")  # the login page first
    console.log_in()
    console.open("admin:ratelimit_app_tenant_change", tenant.pk)
    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in console.find_all("table.ratelimit-effective tbody tr")
    ]
    # The free tier's published Admin limit (tenant-api-group-tiers.md), from the tier.
    assert ["admin", "300/min · burst 50 · per tenant", "tier"] in rows
    assert len(rows) == Limit.objects.filter(tier=tenant.tier, enabled=True).count()
    screenshot(console.driver, "tenant-effective-limits")


def test_an_operator_unbans_a_credential_pair_banned_by_the_token_endpoint(console, live_server):
    http = HttpClient(live_server.url)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = "client_id=demo-client&client_secret=guessed-wrong"
    statuses = [http.post("/connect/token", wrong, **form).status for _ in range(6)]
    assert statuses == [400] * 5 + [429]  # the demo rule: five failures ban the pair
    ban = CredentialBan.objects.get(client_id="demo-client")
    console.log_in()
    console.open("admin:ratelimit_app_credentialban_changelist", query="?status=active")
    assert "demo-client" in console.text("#result_list")
    console.run_action("unban_selected", ban.pk)
    assert "Lifted 1 ban(s)." in console.messages()
    ban.refresh_from_db()
    assert ban.lifted_at is not None and ban.lifted_by.username == USER
    # The pair is heard again at once: a wrong secret is a 400 again, not a 429.
    assert http.post("/connect/token", wrong, **form).status == 400
    http.close()
    console.open("admin:ratelimit_app_credentialban_changelist")
    screenshot(console.driver, "credential-bans")


def test_a_duplicate_limit_in_the_tier_table_is_an_error_on_the_form(console):
    tier = Tier.objects.get(name="free")
    admin_limit = Limit.objects.get(tier=tier, group__slug="admin", period=60, enabled=True)
    console.log_in()
    console.open("admin:ratelimit_app_tier_change", tier.pk)
    console.find("#limits-group .add-row a").click()
    row = console.find_all("#limits-group tbody tr.form-row:not(.empty-form)")[-1]
    prefix = row.get_attribute("id")  # limits-N
    Select(console.find(f"#id_{prefix}-group")).select_by_visible_text(str(admin_limit.group))
    Select(console.find(f"#id_{prefix}-scope")).select_by_value(admin_limit.scope)
    console.find(f"#id_{prefix}-rate").send_keys("3000")
    period = console.find(f"#id_{prefix}-period")
    period.clear()
    period.send_keys("60")
    console.submit()
    assert "Server Error" not in console.driver.title
    error = console.text(".errornote") + console.text("#limits-group")
    assert "Please correct the error" in console.text(".errornote")
    assert "'admin'" in error and "same period" in error
    assert Limit.objects.filter(tier=tier, group__slug="admin", period=60).count() == 1
    screenshot(console.driver, "duplicate-limit-error")


def test_the_limits_list_fits_a_500_px_window(console):
    console.log_in()
    console.driver.set_window_size(500, 900)
    console.open("admin:ratelimit_app_limit_changelist")
    viewport = console.driver.execute_script("return document.documentElement.clientWidth")
    page = console.driver.execute_script("return document.documentElement.scrollWidth")
    # Nothing sticks out sideways but the results table, which scrolls in its own box.
    assert page <= viewport, (page, viewport)
    assert console.find("#changelist-search input[name=q]").is_displayed()
    assert console.find("#result_list").is_displayed()
    assert len(console.find_all("#result_list tbody tr")) == Limit.objects.count()
    screenshot(console.driver, "limits-500px")


def free_admin_limit():
    return Limit.objects.get(tier__name="free", group__slug="admin", period=60, enabled=True)


def set_field(console, css, value):
    field = console.find(css)
    field.clear()
    field.send_keys(value)


def test_an_operator_reverts_an_edit_and_requests_see_the_old_limit_again(console, live_server):
    http = HttpClient(live_server.url)
    key = {"Authorization": f"Bearer {DEMO_KEYS['free'][1]}"}
    assert http.get("/acp/admin/ping", **key).header("X-RateLimit-Limit") == "50"
    limit = free_admin_limit()
    console.log_in()
    console.open("admin:ratelimit_app_limit_change", limit.pk)
    set_field(console, "#id_burst", "20")  # tighter: saved without a confirmation
    console.submit()
    assert http.get("/acp/admin/ping", **key).header("X-RateLimit-Limit") == "20"
    console.open("admin:ratelimit_app_policyedit_changelist", query="?object_type=limit")
    console.find("#result_list tbody tr th a").click()
    console.wait_for("#revert-edit")
    assert "20" in console.text(".ratelimit-audit-changes")
    console.submit("#revert-edit")
    assert any(m.startswith("Reverted #") for m in console.messages()), console.messages()
    limit.refresh_from_db()
    assert limit.burst == 50
    assert http.get("/acp/admin/ping", **key).header("X-RateLimit-Limit") == "50"
    http.close()
    operator = User.objects.get(username=USER)
    console.open(
        "admin:ratelimit_app_policyedit_changelist", query=f"?user__id__exact={operator.pk}"
    )
    rows = console.text("#result_list")
    assert "revert of #" in rows and "burst: 20 → 50" in rows and "burst: 50 → 20" in rows
    screenshot(console.driver, "policy-edits")


def test_loosening_a_limit_asks_for_a_confirmation_that_says_what_changes(console):
    limit = free_admin_limit()
    console.log_in()
    console.open("admin:ratelimit_app_limit_change", limit.pk)
    set_field(console, "#id_rate", "3000")
    console.submit()
    tenants = Tenant.objects.filter(tier__name="free").count()
    assert console.text("h1") == "Confirm this change"
    assert console.text("ul.ratelimit-risks") == (
        "free tier, Admin: 300/min · burst 50 · per tenant → 3000/min · burst 50 · per tenant "
        f"for {tenants} tenant and every request with no tenant"
    )
    assert free_admin_limit().rate == 300  # nothing saved yet
    screenshot(console.driver, "confirm-loosening")
    console.submit("#confirm-edit")
    assert any("was changed successfully" in m for m in console.messages())
    assert free_admin_limit().rate == 3000
