from __future__ import annotations

import threading

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def worker(app):
    """Stands in for the scheduler process: runs queued jobs until the test ends."""
    from app.jobs.queue import run_queued

    stop = threading.Event()

    def loop():
        while not stop.is_set():
            with app.app_context():
                run_queued()
            stop.wait(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


def test_finance_filters_searches_opens_a_deal_and_syncs(page, app, synced, make_user, worker):
    finance = make_user("finance")
    sign_in(page, finance.email, TEST_PASSWORD)
    page.get_by_role("list", name="Main").get_by_role("link", name="Queue").click()
    expect(page.get_by_role("heading", name="Ready to bill")).to_be_visible()
    count = page.locator("#queue-count")
    expect(count).to_contain_text("deals ready to bill")
    total_text = count.inner_text()

    page.locator("#queue-filters select[name=currency]").select_option("JPY")
    expect(count).not_to_have_text(total_text)
    expect(count).to_contain_text("match these filters")
    for cell in page.locator("#queue-rows td.num.nowrap").all():
        assert cell.inner_text().startswith("JPY")
    page.locator("#queue-filters select[name=currency]").select_option("")
    expect(count).to_have_text(total_text)

    first_title = page.locator("#queue-rows tr[data-deal] td:nth-child(2) a").first.inner_text()
    page.get_by_label("Search").fill(first_title)
    expect(page.locator("#queue-rows tr[data-deal]").first).to_contain_text(first_title)
    assert "q=" in page.url

    page.locator("#queue-rows tr[data-deal] td:nth-child(2) a").first.click()
    expect(page.get_by_role("heading", name=first_title)).to_be_visible()
    expect(page.locator("#billing-email")).to_be_visible()
    expect(page.get_by_role("heading", name="Sync history")).to_be_visible()

    page.go_back()
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#sync-result")).to_contain_text("Sync finished", timeout=20_000)
