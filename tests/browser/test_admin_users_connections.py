from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD
from tests.connection_stubs import StripeStub

pytestmark = pytest.mark.browser



@pytest.fixture
def stripe_stub(app):
    stub = StripeStub()
    app.config["STRIPE_API_BASE"] = stub.url  # as if set in the environment
    with stub.server:
        yield stub


def test_admin_creates_a_finance_user_and_saves_a_stripe_key(page, make_user, stripe_stub):
    key = stripe_stub.secret_key
    admin = make_user("admin", name="Ada Admin")
    sign_in(page, admin.email, TEST_PASSWORD)
    page.get_by_role("list", name="Main").get_by_role("link", name="Admin").click()
    page.get_by_role("link", name="Users", exact=True).click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    page.get_by_role("link", name="New user").click()

    page.get_by_label("Email").fill("fin.new@example.com")
    page.get_by_label("Name").fill("Finn Finance")
    page.get_by_label("finance", exact=True).check()
    page.get_by_label("Set an initial password now").check()
    page.get_by_role("textbox", name="Initial password").fill("finance password 123")
    page.get_by_label("Repeat password").fill("finance password 123")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator(".flash-success")).to_contain_text("fin.new@example.com was created")
    expect(page.get_by_label("finance", exact=True)).to_be_checked()
    page.get_by_role("link", name="← All users").click()
    row = page.locator('tr[data-user="fin.new@example.com"]')
    expect(row).to_contain_text("Finn Finance")
    expect(row).to_contain_text("finance")

    page.goto("/admin/")
    page.get_by_role("link", name="Connections").click()
    page.get_by_label("Secret key or restricted key").fill(key)
    page.get_by_role("button", name="Save Stripe connection").click()
    expect(page.locator(".flash-success")).to_contain_text("secret key set")
    expect(page.locator("#stripe_secret_key-state")).to_contain_text(f"•••• {key[-4:]}")
    expect(page.get_by_label("Secret key or restricted key")).to_have_value("")
    assert key not in page.content()
    expect(page.locator("#stripe-webhook-url")).to_have_value(
        re.compile(r"^http://127\.0\.0\.1:\d+/webhooks/stripe$")
    )
    # The connection test answers in place (htmx), without leaving the page.
    page.locator("#test-stripe").click()
    expect(page.locator("#stripe-check")).to_contain_text(
        "Connected to Acme Robotics Billing (test mode, secret key)."
    )
    assert page.url.endswith("/admin/connections/")
