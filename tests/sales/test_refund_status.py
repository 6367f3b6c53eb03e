"""A refund of part of a payment is "Partially refunded", a refund of all of it "Refunded"
(issue 15, defect 8: a refund of 200 of 1,670 showed the deal as "Refunded"), on the
Sales pages, in the desk's payment state and in what Pipedrive is told."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.invoices.models import Invoice
from app.payments.operations import run_payment_sync
from app.sales import queries
from app.writeback.models import WritebackItem
from tests.sales.conftest import NOW


def _sync(app) -> None:
    with app.app_context():
        run = run_payment_sync()
        assert run.status == "ok", run.error


def _charge(stripe_sandbox, stripe_invoice_id: str) -> str:
    store = stripe_sandbox.sandbox.store
    payment = next(ip for ip in store.all("invoice_payment") if ip["invoice"] == stripe_invoice_id)
    return store.get("payment_intent", payment["payment"]["payment_intent"])["latest_charge"]


def _seen(app, client, deal_id: int, invoice_id: int) -> tuple[str, str, str, list[str]]:
    """(desk payment state, Pipedrive's payment status, the deal page's badge, the Sales
    list's status filters that list the deal)."""
    with app.app_context():
        state = db.session.get(Invoice, invoice_id).payment_status
        fields = db.session.execute(
            select(WritebackItem).where(WritebackItem.kind == "deal_fields")
            .order_by(WritebackItem.id.desc())
        ).scalars().first().payload["fields"]
    page = client.get(f"/sales/deals/{deal_id}").get_data(as_text=True)
    badge = re.search(r'data-paid-status="([^"]+)">([^<]+)<', page)
    listed = [
        status for status in ("refunded", "partially_refunded", "paid")
        if f'/sales/deals/{deal_id}"' in client.get(
            f"/sales/?period=all&status={status}").get_data(as_text=True)
    ]
    return state, fields["payment_status"], badge.group(2), listed


def test_a_part_refund_is_partially_refunded_and_the_rest_makes_it_refunded(
    app, client, login, make_user, pushed, stripe_sandbox
):
    login(make_user("sales"))
    stripe_sandbox.pay_invoice(pushed["stripe_id"])
    _sync(app)
    with app.app_context():
        total = db.session.get(Invoice, pushed["invoice_id"]).total
    assert total > Decimal("200")
    charge = _charge(stripe_sandbox, pushed["stripe_id"])

    stripe_sandbox.refund(charge, 20_000)  # EUR 200.00 of the whole payment
    _sync(app)
    assert _seen(app, client, pushed["deal_id"], pushed["invoice_id"]) == (
        "partially_refunded", "Partially refunded", "Partially refunded", ["partially_refunded"]
    )

    stripe_sandbox.refund(charge)  # the rest
    _sync(app)
    assert _seen(app, client, pushed["deal_id"], pushed["invoice_id"]) == (
        "refunded", "Refunded", "Refunded", ["refunded"]
    )


def test_a_deal_is_refunded_only_when_no_money_paid_for_it_is_kept(
    app, people, make_deal, make_invoice
):
    part = make_deal("1670")
    make_invoice(part, "1670", paid="1670", refunded="200",
                 payment_status="partially_refunded", stripe_status="paid")
    whole = make_deal("1670")
    make_invoice(whole, "1670", paid="1670", refunded="1670",
                 payment_status="refunded", stripe_status="paid")
    # One invoice refunded in full, another paid and kept: part of the deal's money is kept.
    mixed = make_deal("2000")
    make_invoice(mixed, "1000", paid="1000", refunded="1000",
                 payment_status="refunded", stripe_status="paid")
    make_invoice(mixed, "1000", paid="1000", payment_status="paid", stripe_status="paid")
    with app.app_context():
        assert queries.deal_status(NOW, part) == "partially_refunded"
        assert queries.deal_status(NOW, whole) == "refunded"
        assert queries.deal_status(NOW, mixed) == "partially_refunded"
        assert queries.DEAL_STATUSES["partially_refunded"] == "Partially refunded"
