from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


def test_admin_signs_in_and_sees_admin_navigation(page, make_user):
    admin = make_user("admin", name="Ada Admin")
    sign_in(page, admin.email, TEST_PASSWORD)
    nav = page.get_by_role("list", name="Main")
    expect(nav.get_by_role("link", name="Admin")).to_be_visible()
    nav.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Admin", exact=True)).to_be_visible()
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("#audit-results")).to_contain_text("user.sign_in")
    # Active search swaps only the results (htmx), and the URL follows.
    page.get_by_label("Action").fill("user.create")
    expect(page.locator("#audit-results")).not_to_contain_text("user.sign_in")
    expect(page.locator("#audit-results")).to_contain_text("user.create")
    assert "action=user.create" in page.url
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_sales_user_sees_only_their_navigation_and_a_clear_403(page, make_user):
    sales = make_user("sales", name="Sam Sales")
    sign_in(page, sales.email, TEST_PASSWORD)
    expect(page.get_by_role("heading", name="Welcome, Sam Sales")).to_be_visible()
    expect(page.get_by_role("list", name="Main").get_by_role("link", name="Admin")).to_have_count(0)
    page.goto("/admin/audit/")
    expect(page.locator("#forbidden-reason")).to_contain_text("audit.view")


def test_wrong_password_keeps_the_email_and_says_so(page, make_user):
    user = make_user("finance")
    page.goto("/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_contain_text("not right")
    expect(page.get_by_label("Email")).to_have_value(user.email)
    expect(page.get_by_label("Password")).to_have_value("")
