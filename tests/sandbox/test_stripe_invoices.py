"""Invoices: lines, totals (discounts, exclusive and inclusive tax), currencies, the state
machine and its errors, payments (full, partial, failed), refunds and credit notes."""

from __future__ import annotations

import pytest
import requests
import stripe


@pytest.fixture
def customer(stripe_client):
    return stripe_client.v1.customers.create(params={"email": "buyer@example.com",
                                                     "name": "Buyer"})


def _draft(client, customer, currency="usd", **extra):
    params = {"customer": customer.id, "currency": currency, "collection_method": "send_invoice",
              "days_until_due": 30}
    params.update(extra)
    return client.v1.invoices.create(params=params)


def _open_invoice(client, customer, amount=10000, currency="usd"):
    inv = _draft(client, customer, currency)
    client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": amount,
                                                            "description": "Work"}]})
    return client.v1.invoices.finalize_invoice(inv.id)


# ---------------------------------------------------------------- lines and totals
def test_add_lines_price_data_decimal_quantities(stripe_client, customer):
    inv = _draft(stripe_client, customer)
    assert inv.status == "draft" and inv.id.startswith("in_") and inv.number is None
    inv = stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [
        {"price_data": {"currency": "usd", "product_data": {"name": "Hours"},
                        "unit_amount_decimal": "1250.5"},
         "quantity_decimal": "2.5", "description": "Consulting"},   # 3126.25 -> 3126
        {"price_data": {"currency": "usd", "product_data": {"name": "Fee"},
                        "unit_amount_decimal": "0.5"}, "quantity": 3},  # 1.5 -> 2 (half up)
    ]})
    amounts = [line.amount for line in inv.lines.data]
    assert amounts == [3126, 2]
    line = inv.lines.data[0]
    assert line.id.startswith("il_") and line.object == "line_item"
    assert line.parent.invoice_item_details.invoice_item.startswith("ii_")
    assert str(line.pricing.unit_amount_decimal) == "1250.5"
    assert inv.subtotal == inv.total == inv.amount_due == 3128
    lines = stripe_client.v1.invoices.line_items.list(inv.id, params={"limit": 1})
    assert [x.id for x in lines.data] == [line.id] and lines.has_more


def test_invoice_items_with_invoice_param(stripe_client, customer):
    inv = _draft(stripe_client, customer)
    item = stripe_client.v1.invoice_items.create(params={
        "customer": customer.id, "invoice": inv.id, "amount": 1999, "currency": "usd",
        "description": "Setup"})
    assert item.id.startswith("ii_") and item.invoice == inv.id
    stray = stripe_client.v1.invoice_items.create(params={
        "customer": customer.id, "amount": 500, "currency": "usd"})
    assert stray.invoice is None
    inv = stripe_client.v1.invoices.retrieve(inv.id)
    # pending items are NOT pulled in (pending_invoice_items_behavior defaults to exclude)
    assert inv.total == 1999 and len(inv.lines.data) == 1
    pending = stripe_client.v1.invoice_items.list(params={"pending": True})
    assert [i.id for i in pending.data] == [stray.id]


def test_exclusive_tax_rounded_per_line(stripe_client, customer):
    vat = stripe_client.v1.tax_rates.create(params={"display_name": "VAT", "percentage": 19,
                                                    "inclusive": False})
    inv = _draft(stripe_client, customer)
    inv = stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [
        {"amount": 1005, "tax_rates": [vat.id]},   # 190.95 -> 191
        {"amount": 1005, "tax_rates": [vat.id]},   # 191 (rounded per line, not 381.9 -> 382)
        {"amount": 250},                           # untaxed
    ]})
    assert [line.taxes[0].amount for line in inv.lines.data[:2]] == [191, 191]
    assert inv.lines.data[2].taxes == []
    assert inv.subtotal == 2260
    assert inv.total == 2260 + 382
    assert inv.total_excluding_tax == 2260
    assert inv.subtotal_excluding_tax == 2260
    [tax] = inv.total_taxes
    assert (tax.amount, tax.tax_behavior, tax.taxable_amount) == (382, "exclusive", 2010)
    assert tax.tax_rate_details.tax_rate == vat.id
    assert inv.amount_due == inv.total


def test_inclusive_tax_contained_in_amount(stripe_client, customer):
    vat = stripe_client.v1.tax_rates.create(params={"display_name": "MwSt", "percentage": 19,
                                                    "inclusive": True})
    inv = _draft(stripe_client, customer, "eur", default_tax_rates=[vat.id])
    inv = stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 11900},
                                                                        {"amount": 1000}]})
    # 11900 / 1.19 = 10000 -> tax 1900 ; 1000 / 1.19 = 840.34 -> 840, tax 160
    assert [line.taxes[0].amount for line in inv.lines.data] == [1900, 160]
    assert inv.total == 12900 and inv.subtotal == 12900
    assert inv.total_excluding_tax == 10840
    assert inv.subtotal_excluding_tax == 10840
    [tax] = inv.total_taxes
    assert tax.tax_behavior == "inclusive" and tax.amount == 2060 and tax.taxable_amount == 10840


def test_discounts_invoice_and_line_level(stripe_client, customer):
    ten = stripe_client.v1.coupons.create(params={"percent_off": 10, "duration": "once"})
    five_off = stripe_client.v1.coupons.create(params={"amount_off": 500, "currency": "usd",
                                                       "duration": "once"})
    vat = stripe_client.v1.tax_rates.create(params={"display_name": "VAT", "percentage": 20,
                                                    "inclusive": False})
    inv = _draft(stripe_client, customer, discounts=[{"coupon": ten.id}],
                 default_tax_rates=[vat.id])
    inv = stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [
        {"amount": 10000, "discounts": [{"coupon": five_off.id}]},  # 10000-500=9500, -950
        {"amount": 3333},                                            # -333.3 -> -333
    ]})
    l1, l2 = inv.lines.data
    assert [d.amount for d in l1.discount_amounts] == [500, 950]
    assert [d.amount for d in l2.discount_amounts] == [333]
    assert inv.subtotal == 9500 + 3333  # line-level discounts already incorporated
    assert sum(d.amount for d in inv.total_discount_amounts) == 500 + 950 + 333
    taxable = 8550 + 3000
    assert inv.total_taxes[0].taxable_amount == taxable
    assert inv.total == taxable + 1710 + 600
    assert inv.total_excluding_tax == taxable


def test_jpy_is_zero_decimal(stripe_client, customer):
    inv = _draft(stripe_client, customer, "jpy")
    inv = stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [
        {"price_data": {"currency": "jpy", "product_data": {"name": "x"}, "unit_amount": 1500},
         "quantity": 3}]})
    assert inv.total == 4500 and inv.currency == "jpy"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [
            {"price_data": {"currency": "usd", "product_data": {"name": "x"},
                            "unit_amount": 1}}]})
    assert "currency" in str(exc.value)


def test_three_decimal_currency_requires_trailing_zero(stripe_client, customer):
    inv = _draft(stripe_client, customer, "kwd")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 12345}]})
    assert exc.value.param == "lines[0][amount]"
    assert "KWD" in str(exc.value)
    ok = stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 12340}]})
    assert ok.total == 12340


def test_amount_over_eight_digits_rejected(stripe_client, customer):
    inv = _draft(stripe_client, customer)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 100_000_000}]})
    assert exc.value.code == "amount_too_large"


def test_currency_is_lowercased(stripe_client, customer):
    inv = _draft(stripe_client, customer, "EUR")
    assert inv.currency == "eur"


# ---------------------------------------------------------------- state machine
def test_finalize_numbers_and_due_date(stripe_client, customer, stripe_sandbox):
    inv = _open_invoice(stripe_client, customer)
    assert inv.status == "open"
    assert inv.number.endswith("-0001")
    assert inv.status_transitions.finalized_at == inv.effective_at
    assert inv.due_date == inv.status_transitions.finalized_at + 30 * 86400
    assert inv.hosted_invoice_url and inv.invoice_pdf
    second = _open_invoice(stripe_client, customer)
    assert second.number.endswith("-0002")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.finalize_invoice(inv.id)
    assert "already finalized" in str(exc.value)


def test_finalized_invoice_cannot_be_edited(stripe_client, customer):
    inv = _open_invoice(stripe_client, customer)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 100}]})
    assert exc.value.code == "invoice_not_editable"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.update(inv.id, params={"days_until_due": 5})
    assert exc.value.code == "invoice_not_editable"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoice_items.create(params={"customer": customer.id,
                                                      "invoice": inv.id, "amount": 5,
                                                      "currency": "usd"})
    assert exc.value.code == "invoice_not_editable"
    # metadata stays editable after finalization
    upd = stripe_client.v1.invoices.update(inv.id, params={"metadata": {"desk": "1"}})
    assert upd.metadata.to_dict() == {"desk": "1"}


def test_draft_update_and_delete(stripe_client, customer):
    inv = _draft(stripe_client, customer)
    upd = stripe_client.v1.invoices.update(inv.id, params={"description": "Deal 7",
                                                           "days_until_due": 10})
    assert upd.description == "Deal 7" and upd.due_date == upd.created + 10 * 86400
    assert stripe_client.v1.invoices.delete(inv.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.retrieve(inv.id)
    assert exc.value.http_status == 404


def test_state_errors(stripe_client, customer):
    draft = _draft(stripe_client, customer)
    with pytest.raises(stripe.InvalidRequestError, match="Delete the draft"):
        stripe_client.v1.invoices.void_invoice(draft.id)
    with pytest.raises(stripe.InvalidRequestError, match="draft"):
        stripe_client.v1.invoices.send_invoice(draft.id)
    with pytest.raises(stripe.InvalidRequestError, match="draft"):
        stripe_client.v1.credit_notes.create(params={"invoice": draft.id, "amount": 100})
    with pytest.raises(stripe.InvalidRequestError, match="uncollectible"):
        stripe_client.v1.invoices.mark_uncollectible(draft.id)
    opened = _open_invoice(stripe_client, customer)
    with pytest.raises(stripe.InvalidRequestError, match="only delete draft"):
        stripe_client.v1.invoices.delete(opened.id)
    voided = stripe_client.v1.invoices.void_invoice(opened.id)
    assert voided.status == "void" and voided.status_transitions.voided_at
    with pytest.raises(stripe.InvalidRequestError, match="void"):
        stripe_client.v1.invoices.pay(voided.id, params={"paid_out_of_band": True})
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.void_invoice(voided.id)


def test_send_and_mark_uncollectible_then_pay(stripe_client, customer):
    inv = _open_invoice(stripe_client, customer)
    sent = stripe_client.v1.invoices.send_invoice(inv.id)
    assert sent.status == "open"
    unc = stripe_client.v1.invoices.mark_uncollectible(inv.id)
    assert unc.status == "uncollectible" and unc.status_transitions.marked_uncollectible_at
    paid = stripe_client.v1.invoices.pay(inv.id, params={"paid_out_of_band": True})
    assert paid.status == "paid" and paid.amount_paid == 10000 and paid.amount_remaining == 0
    with pytest.raises(stripe.InvalidRequestError, match="already paid"):
        stripe_client.v1.invoices.pay(inv.id, params={"paid_out_of_band": True})


def test_charge_automatically_cannot_be_sent(stripe_client, customer):
    inv = stripe_client.v1.invoices.create(params={"customer": customer.id})
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 100}]})
    stripe_client.v1.invoices.finalize_invoice(inv.id)
    with pytest.raises(stripe.InvalidRequestError, match="send_invoice"):
        stripe_client.v1.invoices.send_invoice(inv.id)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.create(params={"customer": customer.id, "days_until_due": 3})


def test_pay_without_payment_method_is_card_error(stripe_client, customer):
    inv = _open_invoice(stripe_client, customer)
    with pytest.raises(stripe.CardError) as exc:
        stripe_client.v1.invoices.pay(inv.id)
    assert exc.value.http_status == 402 and exc.value.code == "missing"


def test_pay_with_test_card_and_declined_card(stripe_client, customer):
    inv = _open_invoice(stripe_client, customer)
    with pytest.raises(stripe.CardError) as exc:
        stripe_client.v1.invoices.pay(inv.id, params={"payment_method": "pm_card_chargeDeclined"})
    assert exc.value.code == "card_declined"
    inv = stripe_client.v1.invoices.retrieve(inv.id)
    assert inv.status == "open" and inv.attempt_count == 1 and inv.amount_paid == 0
    paid = stripe_client.v1.invoices.pay(inv.id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "paid" and paid.amount_paid == 10000 and paid.attempt_count == 2


def test_zero_total_invoice_is_paid_on_finalize(stripe_client, customer):
    inv = _draft(stripe_client, customer)
    inv = stripe_client.v1.invoices.finalize_invoice(inv.id)
    assert inv.status == "paid" and inv.amount_due == 0


# ---------------------------------------------------------------- payments
def test_partial_then_full_payment(stripe_client, customer, stripe_sandbox):
    inv = _open_invoice(stripe_client, customer)
    stripe_sandbox.pay_invoice(inv.id, 4000)
    inv = stripe_client.v1.invoices.retrieve(inv.id, params={"expand": ["payments"]})
    assert inv.status == "open"
    assert (inv.amount_due, inv.amount_paid, inv.amount_remaining) == (10000, 4000, 6000)
    assert len(inv.payments.data) == 1
    pi = stripe_client.v1.payment_intents.retrieve(inv.payments.data[0].payment.payment_intent)
    assert pi.status == "succeeded" and pi.amount_received == 4000
    charge = stripe_client.v1.charges.retrieve(pi.latest_charge)
    assert charge.paid and charge.amount == 4000 and charge.payment_intent == pi.id
    stripe_sandbox.pay_invoice(inv.id)
    inv = stripe_client.v1.invoices.retrieve(inv.id, params={"expand": ["payments"]})
    assert inv.status == "paid" and inv.amount_paid == 10000 and inv.amount_remaining == 0
    assert inv.status_transitions.paid_at
    assert sorted(p.amount_paid for p in inv.payments.data) == [4000, 6000]
    listed = stripe_client.v1.invoice_payments.list(params={"invoice": inv.id})
    assert len(listed.data) == 2


def test_failed_payment_leaves_invoice_open(stripe_client, customer, stripe_sandbox):
    inv = _open_invoice(stripe_client, customer)
    stripe_sandbox.fail_payment(inv.id)
    inv = stripe_client.v1.invoices.retrieve(inv.id)
    assert inv.status == "open" and inv.amount_paid == 0 and inv.attempted
    charge = stripe_client.v1.charges.list().data[0]
    assert charge.status == "failed" and charge.failure_code == "card_declined"
    types = [e.type for e in stripe_client.v1.events.list(params={"limit": 100}).data]
    assert "invoice.payment_failed" in types and "invoice.paid" not in types


def test_control_rejects_overpayment(stripe_sandbox, stripe_client, customer):
    inv = _open_invoice(stripe_client, customer)
    r = requests.post(f"{stripe_sandbox.url}/_sandbox/invoices/{inv.id}/pay",
                      json={"amount": 10001}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "amount"


# ---------------------------------------------------------------- refunds
def test_full_and_partial_refunds(stripe_client, customer, stripe_sandbox):
    inv = _open_invoice(stripe_client, customer)
    stripe_sandbox.pay_invoice(inv.id)
    charge = stripe_client.v1.charges.list().data[0]
    r1 = stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 2500})
    assert r1.id.startswith("re_") and r1.status == "succeeded" and r1.amount == 2500
    charge = stripe_client.v1.charges.retrieve(charge.id)
    assert charge.amount_refunded == 2500 and charge.refunded is False
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 7501})
    assert exc.value.param == "amount"
    assert "greater than unrefunded amount" in str(exc.value)
    r2 = stripe_client.v1.refunds.create(params={"payment_intent": charge.payment_intent})
    assert r2.amount == 7500
    charge = stripe_client.v1.charges.retrieve(charge.id)
    assert charge.refunded is True and charge.amount_refunded == 10000
    assert [r.id for r in charge.refunds.data] == [r2.id, r1.id]
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.refunds.create(params={"charge": charge.id})
    assert exc.value.code == "charge_already_refunded"
    assert stripe_client.v1.invoices.retrieve(inv.id).status == "paid"  # refunds leave it paid
    assert {r.id for r in stripe_client.v1.refunds.list(params={"charge": charge.id}).data} == {
        r1.id, r2.id}


# ---------------------------------------------------------------- credit notes
def test_credit_note_pre_payment_reduces_amount_due(stripe_client, customer):
    inv = _open_invoice(stripe_client, customer)
    cn = stripe_client.v1.credit_notes.create(params={
        "invoice": inv.id, "reason": "order_change",
        "lines": [{"type": "invoice_line_item", "invoice_line_item": inv.lines.data[0].id,
                   "amount": 3000}]})
    assert cn.id.startswith("cn_") and cn.type == "pre_payment" and cn.total == 3000
    assert cn.number == f"{inv.number}-CN-01"
    inv = stripe_client.v1.invoices.retrieve(inv.id)
    assert inv.pre_payment_credit_notes_amount == 3000
    assert (inv.amount_due, inv.amount_remaining, inv.status) == (7000, 7000, "open")
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.credit_notes.create(params={"invoice": inv.id, "amount": 7001})
    voided = stripe_client.v1.credit_notes.void_credit_note(cn.id)
    assert voided.status == "void" and voided.voided_at
    inv = stripe_client.v1.invoices.retrieve(inv.id)
    assert inv.amount_due == 10000 and inv.pre_payment_credit_notes_amount == 0
    listed = stripe_client.v1.credit_notes.list(params={"invoice": inv.id})
    assert [c.id for c in listed.data] == [cn.id]


def test_credit_note_for_whole_remaining_marks_paid(stripe_client, customer):
    inv = _open_invoice(stripe_client, customer, 5000)
    stripe_client.v1.credit_notes.create(params={"invoice": inv.id, "amount": 5000})
    assert stripe_client.v1.invoices.retrieve(inv.id).status == "paid"


def test_credit_note_post_payment_refund_and_credit(stripe_client, customer, stripe_sandbox):
    vat = stripe_client.v1.tax_rates.create(params={"display_name": "VAT", "percentage": 10,
                                                    "inclusive": False})
    inv = _draft(stripe_client, customer)
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [
        {"amount": 10000, "tax_rates": [vat.id]}]})
    inv = stripe_client.v1.invoices.finalize_invoice(inv.id)
    stripe_sandbox.pay_invoice(inv.id)
    line = inv.lines.data[0]
    with pytest.raises(stripe.InvalidRequestError, match="must equal"):
        stripe_client.v1.credit_notes.create(params={
            "invoice": inv.id,
            "lines": [{"type": "invoice_line_item", "invoice_line_item": line.id,
                       "amount": 2000}]})
    cn = stripe_client.v1.credit_notes.create(params={
        "invoice": inv.id, "refund_amount": 1200, "credit_amount": 1000,
        "lines": [{"type": "invoice_line_item", "invoice_line_item": line.id,
                   "amount": 2000}]})
    assert cn.type == "post_payment" and cn.total == 2200 and cn.subtotal == 2000
    assert cn.total_taxes[0].amount == 200
    assert cn.refunds[0].amount_refunded == 1200
    refund = stripe_client.v1.refunds.retrieve(cn.refunds[0].refund)
    assert refund.amount == 1200
    inv = stripe_client.v1.invoices.retrieve(inv.id)
    assert inv.post_payment_credit_notes_amount == 2200 and inv.status == "paid"
    assert stripe_client.v1.customers.retrieve(customer.id).balance == -1000
    lines = stripe_client.v1.credit_notes.line_items.list(cn.id)
    assert lines.data[0].invoice_line_item == line.id


def test_customer_credit_balance_applied_on_finalize(stripe_client):
    cus = stripe_client.v1.customers.create(params={"balance": -3000})
    inv = stripe_client.v1.invoices.create(params={"customer": cus.id})
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 5000}]})
    inv = stripe_client.v1.invoices.finalize_invoice(inv.id)
    assert inv.starting_balance == -3000 and inv.ending_balance == 0
    assert inv.amount_due == 2000 and inv.total == 5000
    assert stripe_client.v1.customers.retrieve(cus.id).balance == 0


def test_amount_due_below_minimum_charge_goes_to_balance(stripe_client, customer):
    inv = _draft(stripe_client, customer)
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 30}]})
    inv = stripe_client.v1.invoices.finalize_invoice(inv.id)
    # Stripe: below the USD minimum (50 cents) the invoice is marked paid and the amount
    # is carried to the customer's balance, collected with the next invoice
    assert inv.status == "paid" and inv.total == 30 and inv.amount_due == 0
    assert stripe_client.v1.customers.retrieve(customer.id).balance == 30
    nxt = _draft(stripe_client, customer)
    stripe_client.v1.invoices.add_lines(nxt.id, params={"lines": [{"amount": 1000}]})
    nxt = stripe_client.v1.invoices.finalize_invoice(nxt.id)
    assert nxt.starting_balance == 30 and nxt.amount_due == 1030


def test_partial_payment_below_minimum_rejected(stripe_sandbox, stripe_client, customer):
    inv = _open_invoice(stripe_client, customer)
    r = requests.post(f"{stripe_sandbox.url}/_sandbox/invoices/{inv.id}/pay",
                      json={"amount": 49}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "amount_too_small"


def test_unknown_payment_method_is_404(stripe_client, customer):
    inv = _open_invoice(stripe_client, customer)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.pay(inv.id, params={"payment_method": "pm_made_up"})
    assert exc.value.http_status == 404 and exc.value.param == "payment_method"
    assert stripe_client.v1.invoices.retrieve(inv.id).attempt_count == 0


def test_invoice_embeds_first_ten_lines_only(stripe_client, customer):
    inv = _draft(stripe_client, customer)
    inv = stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [
        {"amount": 100 + i, "description": f"line {i}"} for i in range(12)]})
    assert len(inv.lines.data) == 10 and inv.lines.has_more is True
    assert inv.total == sum(100 + i for i in range(12))
    everything = [line.description for line in
                  stripe_client.v1.invoices.line_items.list(inv.id, params={"limit": 100}).data]
    assert everything == [f"line {i}" for i in range(12)]
    page = stripe_client.v1.invoices.line_items.list(
        inv.id, params={"starting_after": inv.lines.data[-1].id})
    assert [line.description for line in page.data] == ["line 10", "line 11"]


def test_negative_total_becomes_customer_credit(stripe_client, customer):
    inv = _draft(stripe_client, customer)
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 1000},
                                                                  {"amount": -1500}]})
    inv = stripe_client.v1.invoices.finalize_invoice(inv.id)
    assert inv.total == -500 and inv.amount_due == 0 and inv.status == "paid"
    assert inv.ending_balance == -500
    assert stripe_client.v1.customers.retrieve(customer.id).balance == -500


def test_default_payment_method_charged_by_pay(stripe_client, customer):
    stripe_client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    inv = stripe_client.v1.invoices.create(params={"customer": customer.id})
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 2000}]})
    paid = stripe_client.v1.invoices.pay(inv.id)  # finalizes the draft, then charges
    assert paid.status == "paid" and paid.amount_paid == 2000 and paid.number
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.update(customer.id, params={
            "invoice_settings": {"default_payment_method": "pm_nope"}})
    kept = stripe_client.v1.customers.retrieve(customer.id)
    assert kept.invoice_settings.default_payment_method == "pm_card_visa"


def test_failed_request_leaves_no_trace(stripe_client, customer):
    inv = _draft(stripe_client, customer)
    events_before = len(stripe_client.v1.events.list(params={"limit": 100}).data)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [
            {"price_data": {"currency": "usd", "product_data": {"name": "ok"},
                            "unit_amount": 1000}},
            {"pricing": {"price": "price_missing"}}]})
    assert exc.value.http_status == 404
    again = stripe_client.v1.invoices.retrieve(inv.id)
    assert again.lines.data == [] and again.total == 0
    assert stripe_client.v1.invoice_items.list().data == []
    assert stripe_client.v1.products.list().data == []
    assert len(stripe_client.v1.events.list(params={"limit": 100}).data) == events_before


def test_list_invoices_by_customer_and_status(stripe_client, customer):
    other = stripe_client.v1.customers.create()
    draft = _draft(stripe_client, customer)
    opened = _open_invoice(stripe_client, customer)
    foreign = _open_invoice(stripe_client, other)
    by_customer = stripe_client.v1.invoices.list(params={"customer": customer.id})
    assert [i.id for i in by_customer.data] == [opened.id, draft.id]
    open_only = stripe_client.v1.invoices.list(params={"status": "open"})
    assert [i.id for i in open_only.data] == [foreign.id, opened.id]
    both = stripe_client.v1.invoices.list(params={"customer": customer.id, "status": "draft"})
    assert [i.id for i in both.data] == [draft.id]
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.list(params={"status": "pending"})  # type: ignore
    assert exc.value.param == "status"
