"""Issue 14: whatever the desk accepts for submission, Stripe can bill and collect.

Random invoices in every currency Stripe bills in (lines, quantities, prices, tax
exclusive / inclusive / none, percentage and amount discounts on lines and on the
invoice). When the desk's submission check finds nothing to refuse, the Stripe
sandbox takes the push's own requests (create, add lines, finalize), collects the
invoice in full, and its total equals the desk's to the minor unit.
"""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from app.invoices.totals import DiscountInput, LineInput
from app.invoices.validation import check_invoice
from app.money import STRIPE_CURRENCIES, THREE_DECIMAL, ZERO_DECIMAL, quantum, step
from tests.invoices.test_totals import _stripe_totals

RATES = ["5", "7", "7.5", "8.25", "10", "19", "20"]


@st.composite
def typed_invoices(draw):
    # Every currency Stripe bills in, with the zero- and three-decimal ones drawn as
    # often as all the others together (they are where the arithmetic bites).
    currency = draw(st.one_of(st.sampled_from(sorted(THREE_DECIMAL)),
                              st.sampled_from(sorted(ZERO_DECIMAL)),
                              st.sampled_from(sorted(STRIPE_CURRENCIES))))
    unit = quantum(currency)
    # Prices as finance types them: whole numbers of the currency's smallest unit, so
    # three-decimal ones are often off Stripe's steps (the desk must refuse those).
    small = draw(st.booleans())
    # Mostly amounts on Stripe's steps (so tax and totals get tested), sometimes off them.
    typed = unit * draw(st.sampled_from([step(currency)] * 3 + [1]))
    lines = []
    for key in range(draw(st.integers(1, 4))):
        price = D(draw(st.integers(0, 2_000 if small else 400_000))) * typed
        qty = D(draw(st.integers(1, 30))) / draw(st.sampled_from([1, 1, 2, 4, 10]))
        behavior = draw(st.sampled_from(["none", "exclusive", "inclusive"]))
        rate = D(draw(st.sampled_from(RATES))) if behavior != "none" else D(0)
        dtype = draw(st.sampled_from([None, "percentage", "amount"]))
        dval = None
        if dtype == "percentage":
            dval = D(draw(st.sampled_from(["5", "10", "12.5", "50"])))
        elif dtype == "amount":
            dval = D(draw(st.integers(1, 1_000))) * typed
        lines.append(LineInput(key, f"Item {key}", qty, price, dtype, dval, rate, behavior))
    discounts = []
    if draw(st.booleans()):
        if draw(st.booleans()):
            discounts.append(DiscountInput("Deal", "percentage",
                                           D(draw(st.sampled_from(["3", "10", "15"])))))
        else:
            discounts.append(DiscountInput("Deal", "amount", D(draw(st.integers(1, 500))) * typed))
    return currency, lines, discounts


def _bill_and_collect(stripe_sandbox, stripe_client, currency, lines, discounts):
    """None if the desk refuses the invoice; else push, finalize and pay it in the sandbox."""
    totals, problems = check_invoice(currency, lines, discounts)
    if problems:
        return problems  # refused before submission, with these reasons
    stripe_sandbox.settings(rate_limit_per_second=10_000)
    draft = _stripe_totals(stripe_client, currency, totals)  # the push's own line requests
    assert draft.total == totals.total and draft.subtotal == totals.subtotal
    assert sum(t.amount for t in draft.total_taxes or []) == totals.tax_total
    inv = stripe_client.v1.invoices.finalize_invoice(draft.id, params={"auto_advance": False})
    assert inv.status == "open" and inv.amount_due == totals.amount_due
    paid = stripe_sandbox.pay_invoice(inv.id)
    assert paid["succeeded"], paid
    assert paid["invoice"]["status"] == "paid"
    assert paid["invoice"]["amount_paid"] == totals.total
    return []


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=typed_invoices())
def test_what_the_desk_accepts_stripe_bills_and_collects(stripe_sandbox, stripe_client, data):
    currency, lines, discounts = data
    problems = _bill_and_collect(stripe_sandbox, stripe_client, currency, lines, discounts)
    event("refused" if problems else "collected")
    note(f"{currency}: refused for {problems}" if problems else f"{currency}: collected")


def test_the_property_is_not_vacuous_for_three_decimal_currencies(stripe_sandbox, stripe_client):
    """A KWD invoice with tax and both discount kinds that the desk accepts goes all the way."""
    lines = [LineInput(1, "Licence", D("2"), D("5.000"), "percentage", D("10"), D("10"),
                       "exclusive"),
             LineInput(2, "Setup", D("1"), D("3.000"), "amount", D("0.600"), D("20"),
                       "inclusive")]
    discounts = [DiscountInput("Deal", "percentage", D("10"))]
    assert _bill_and_collect(stripe_sandbox, stripe_client, "KWD", lines, discounts) == []
