"""Every payment state, from a real push to the Stripe sandbox through the payment sync
and the write-back, as the Pipedrive sandbox ends up holding it on the deal."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from app.extensions import db
from app.invoices.models import Invoice
from app.payments.operations import run_payment_sync
from app.writeback import operations as wb
from app.writeback.mapping import amount_text, field_value
from app.writeback.models import WritebackItem


def _charge(stripe_sandbox, stripe_invoice_id: str) -> str:
    store = stripe_sandbox.sandbox.store
    payment = next(ip for ip in store.all("invoice_payment") if ip["invoice"] == stripe_invoice_id)
    return store.get("payment_intent", payment["payment"]["payment_intent"])["latest_charge"]


def _deal_fields(pipedrive, deal_id: int) -> dict:
    """The deal's custom fields by name, numbers exactly as Pipedrive holds them."""
    codes = {f["field_code"]: f["field_name"]
             for f in pipedrive.get("/api/v2/dealFields", limit=500).json()["data"]}
    raw = pipedrive.get(f"/api/v2/deals/{deal_id}").text
    deal = json.loads(raw, parse_float=Decimal)["data"]
    return {codes[c]: v for c, v in deal["custom_fields"].items() if c in codes}


def _sync_and_write_back(app) -> None:
    with app.app_context():
        run = run_payment_sync()
        assert run.status == "ok", run.error
        counts = wb.process_outbox()
        errors = [w.last_error for w in db.session.query(WritebackItem) if w.last_error]
        assert counts["failed"] == counts["retrying"] == 0, (counts, errors)


def _half(total_minor: int) -> int:
    return total_minor // 2


SCENARIOS = {
    # name: (actions, payment status, Stripe's invoice status, collected, outstanding)
    "partially_paid": (["pay_half"], "Partially paid", "open", "half", "rest"),
    "paid": (["pay_half", "pay_rest"], "Paid", "paid", "total", "zero"),
    "partially_refunded": (["pay_all", "refund_ten"], "Partially refunded", "paid",
                           "total_minus_ten", "zero"),
    "refunded": (["pay_all", "refund_all"], "Refunded", "paid", "zero", "zero"),
    "credited": (["credit_all"], "Credited", "paid", "zero", "zero"),
    "void": (["void"], "Void", "void", "zero", "zero"),
    "payment_failed": (["fail"], "Payment failed", "open", "zero", "total"),
    "overdue": (["fail", "past_due"], "Overdue", "open", "zero", "total"),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_payment_state_reaches_the_deal(app, pushed_deal, synced, stripe_sandbox, name):
    actions, status, stripe_status, collected, outstanding = SCENARIOS[name]
    synced.set_burst(1000)  # the client waits out 429s in production; tests do not wait
    _sync_and_write_back(app)  # the push's own fields and note
    with app.app_context():
        inv = db.session.get(Invoice, pushed_deal["invoice_id"])
        sid, total, deal_id = inv.stripe_invoice_id, inv.total, inv.deal_id
        days = inv.days_until_due or 30
    minor = int(total * 100)
    for action in actions:
        if action == "pay_half":
            stripe_sandbox.pay_invoice(sid, _half(minor))
        elif action == "pay_rest":
            stripe_sandbox.pay_invoice(sid)
        elif action == "pay_all":
            stripe_sandbox.pay_invoice(sid)
        elif action == "refund_ten":
            stripe_sandbox.refund(_charge(stripe_sandbox, sid), 1000)
        elif action == "refund_all":
            stripe_sandbox.refund(_charge(stripe_sandbox, sid))
        elif action == "credit_all":
            stripe_sandbox.credit_note(sid, minor, refund=False)
        elif action == "void":
            stripe_sandbox.void_invoice(sid)
        elif action == "fail":
            stripe_sandbox.fail_payment(sid)
        elif action == "past_due":
            stripe_sandbox.advance_clock(days=days + 2)
        _sync_and_write_back(app)

    expected = {
        "half": Decimal(_half(minor)) / 100,
        "rest": total - Decimal(_half(minor)) / 100,
        "total": total,
        "total_minus_ten": total - 10,
        "zero": Decimal(0),
    }
    fields = _deal_fields(synced, deal_id)
    assert fields["Payment status"] == status
    assert fields["Invoice status"] == stripe_status
    assert fields["Amount collected"]["value"] == expected[collected]
    assert fields["Amount outstanding"]["value"] == expected[outstanding]
    for key in ("Amount collected", "Amount outstanding", "Amount invoiced"):
        value = fields[key]["value"]
        assert value.as_tuple().exponent == -2, (key, value)  # EUR: two decimals, no more
        assert fields[key]["currency"] == "EUR"
    paid_anything = any(a.startswith("pay") for a in actions)
    if paid_anything:
        today = dt.datetime.fromtimestamp(stripe_sandbox.now(), dt.UTC).date().isoformat()
        assert fields["Last payment date"] == today
    else:
        assert fields.get("Last payment date") is None
    with app.app_context():
        assert db.session.get(Invoice, pushed_deal["invoice_id"]).payment_status == name


def test_amounts_reach_pipedrive_with_their_currency_decimals(app, pushed_deal, synced):
    """KRW 270000 (not "270000.000000"), EUR 12.50, KWD 1.250: in fields and in notes."""
    assert amount_text(Decimal("270000.000000"), "KRW") == "270000"
    assert amount_text(Decimal("12.5"), "EUR") == "12.50"
    assert amount_text(Decimal("1.25"), "KWD") == "1.250"
    assert amount_text(Decimal("1E+3"), "JPY") == "1000"
    synced.set_burst(1000)
    with app.app_context():
        inv = db.session.get(Invoice, pushed_deal["invoice_id"])
        # The invoice as a KRW one, as stored (Numeric(20, 6) keeps six decimals).
        inv.currency, inv.total = "KRW", Decimal("270000.000000")
        db.session.flush()
        db.session.query(WritebackItem).delete()
        items = wb.enqueue_for_pushed_invoice(inv)
        assert items[0].payload["fields"]["amount_invoiced"] == "270000"
        db.session.commit()
        assert wb.process_outbox()["done"] == len(items)
        deal_id = inv.deal_id
    raw = synced.get(f"/api/v2/deals/{deal_id}").text
    assert "270000.000000" not in raw and "E+" not in raw
    fields = _deal_fields(synced, deal_id)
    invoiced = fields["Amount invoiced"]
    assert (str(invoiced["value"]), invoiced["currency"]) == ("270000", "KRW")
    notes = synced.get("/v1/notes", deal_id=deal_id).json()["data"]
    assert any("KRW 270,000" in n["content"] for n in notes)


def test_a_queued_amount_with_stored_zeros_is_written_with_the_currency_decimals(app, ctx):
    from app.intake.models import PdField

    money = PdField(entity="deal", field_code="m" * 40, name="Amount collected",
                    field_type="monetary")
    text = PdField(entity="deal", field_code="t" * 40, name="Collected", field_type="varchar")
    value = field_value(money, "270000.000000", "krw")
    assert value == {"value": Decimal("270000"), "currency": "KRW"}
    assert str(value["value"]) == "270000"
    assert str(field_value(money, "1.25", "KWD")["value"]) == "1.250"
    assert field_value(text, Decimal("12.500000"), "EUR") == "12.50"
    assert field_value(text, Decimal("1E+3")) == "1000"


def test_a_retried_older_write_back_does_not_overwrite_a_newer_state(
    app, pushed_deal, synced, stripe_sandbox
):
    """The push's fields ("open") wait for a retry while the payment's ("paid") go through:
    the retry must not put "open" back."""
    synced.set_burst(1000)
    with app.app_context():
        [push_fields] = [w for w in db.session.query(WritebackItem) if w.kind == "deal_fields"]
        push_fields.attempts, push_fields.last_error = 1, "Pipedrive: 503"
        push_fields.next_attempt_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        inv = db.session.get(Invoice, pushed_deal["invoice_id"])
        sid, deal_id = inv.stripe_invoice_id, inv.deal_id
        db.session.commit()
    stripe_sandbox.pay_invoice(sid)
    _sync_and_write_back(app)
    with app.app_context():
        assert wb.process_outbox(now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))["done"] == 1
    fields = _deal_fields(synced, deal_id)
    assert (fields["Invoice status"], fields["Payment status"]) == ("paid", "Paid")
    assert fields["Amount outstanding"]["value"] == 0
    assert fields["Stripe invoice id"] == sid  # what only the push reports is still written
