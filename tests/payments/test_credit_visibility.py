"""A credit note is visible where the invoice is: its status says what was credited and
what is due after the credit, and its timeline gives every amount with its currency."""

from __future__ import annotations

import re
from decimal import Decimal

from app.extensions import db
from app.invoices.models import Invoice
from app.money import format_money
from app.payments.operations import run_payment_sync


def _sync(app) -> Invoice:
    with app.app_context():
        run = run_payment_sync()
        assert run.status == "ok", run.error


def _status(html: str) -> str:
    match = re.search(r'<small[^>]*id="invoice-status".*?</small>', html, re.S)
    assert match, "no status on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(0))).strip()


def test_a_part_credit_shows_the_credit_and_the_amount_due_after_it(
    app, client, login, pushed, stripe_sandbox
):
    stripe_sandbox.credit_note(pushed["stripe_id"], 27_000, refund=False)  # EUR 270.00
    _sync(app)
    with app.app_context():
        inv = db.session.get(Invoice, pushed["invoice_id"])
        assert inv.amount_credited == Decimal("270.00")
        due = format_money(inv.amount_remaining, "EUR")
        assert inv.payment_status == "open"
    login(pushed["finance"])
    page = client.get(f"/invoices/{pushed['invoice_id']}").get_data(as_text=True)
    status = _status(page)
    assert "credited EUR 270.00" in status
    assert f"amount due {due} after credit" in status
    fragment = client.get(f"/invoices/{pushed['invoice_id']}/status").get_data(as_text=True)
    assert _status(fragment) == status
    # The invoice's timeline: the Stripe update with the currency on every amount.
    timeline = page[page.index('id="invoice-timeline"'):]
    assert "Credited: <del>EUR 0.00</del> → <ins>EUR 270.00</ins>" in timeline
    assert not re.search(r"\d\.0{6}", timeline)


def test_a_full_credit_says_credited_with_nothing_due(app, client, login, pushed,
                                                      stripe_sandbox):
    with app.app_context():
        total = db.session.get(Invoice, pushed["invoice_id"]).total
    stripe_sandbox.credit_note(pushed["stripe_id"], int(total * 100), refund=False)
    _sync(app)
    login(pushed["finance"])
    status = _status(client.get(f"/invoices/{pushed['invoice_id']}").get_data(as_text=True))
    assert "credited" in status.split("·")[1]  # the state itself
    assert f"credited {format_money(total, 'EUR')}" in status
    assert "amount due EUR 0.00 after credit" in status


def test_the_deal_timeline_gives_every_amount_its_currency(app, pushed, stripe_sandbox,
                                                           make_user, client, login):
    stripe_sandbox.pay_invoice(pushed["stripe_id"], 10_000)
    stripe_sandbox.credit_note(pushed["stripe_id"], 5_000, refund=False)
    _sync(app)
    login(make_user("sales"))
    page = client.get(f"/sales/deals/{pushed['deal_id']}").get_data(as_text=True)
    timeline = page[page.index('id="deal-timeline"'):page.index("</ol>", page.index(
        'id="deal-timeline"'))]
    entries = re.findall(r"<li[^>]*>(.*?)</li>", timeline, re.S)
    kinds = re.findall(r'data-kind="(\w+)"', timeline)
    assert {"payment", "credit_note"} <= set(kinds)
    for kind, text in zip(kinds, entries, strict=True):
        if kind in ("payment", "credit_note", "pushed", "refund"):
            assert re.search(r"EUR [\d,]+\.\d\d", text), (kind, text)
    assert any("EUR 50.00" in e for e in entries)
