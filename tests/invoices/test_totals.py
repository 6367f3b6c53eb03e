"""Money: the desk's totals equal what Stripe computes for the same invoice.

Unit tests pin the rules (JPY, KWD, inclusive/exclusive tax, both discount kinds);
a property-based test sends random invoices to the Stripe sandbox, exactly as the
push will (the same request plan), and compares every total.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.invoices.plan import line_params, tax_rate_key, tax_rates_needed
from app.invoices.totals import DiscountInput, LineInput, compute
from app.money import exponent, parse_amount, to_minor


def line(key, qty, price, tax="0", behavior="none", dtype=None, dval=None):
    return LineInput(
        key, f"Line {key}", D(qty), D(price), dtype, D(dval) if dval else None, D(tax), behavior
    )


def test_jpy_has_no_minor_unit():
    t = compute("JPY", [line(1, "3", "1200", "10", "exclusive")], [])
    assert t.subtotal == 3600 and t.exclusive_tax == 360 and t.total == 3960
    assert t.major(t.total) == D("3960")
    with pytest.raises(ValueError):
        parse_amount("1200.5", "JPY")


def test_kwd_has_three_decimals():
    t = compute("KWD", [line(1, "2", "1.250")], [])
    assert t.total == 2500 and t.major(t.total) == D("2.500")
    assert to_minor(D("12.345"), "KWD") == 12345
    assert exponent("kwd") == 3


def test_exclusive_tax_is_rounded_per_line_half_up():
    # 19% of 0.05 = 0.0095 -> 1 cent per line, so 3 lines give 3 cents, not 1.
    t = compute("EUR", [line(i, "1", "0.05", "19", "exclusive") for i in range(3)], [])
    assert t.exclusive_tax == 3 and t.total == 18


def test_inclusive_tax_is_inside_the_amount():
    t = compute("EUR", [line(1, "1", "119.00", "19", "inclusive")], [])
    assert t.total == 11900 and t.inclusive_tax == 1900 and t.exclusive_tax == 0
    assert t.taxes[0].taxable == 10000


def test_fractional_quantity_rounds_the_line_half_up():
    t = compute("EUR", [line(1, "1.5", "33.33")], [])
    assert t.subtotal == 5000  # 3333 x 1.5 = 4999.5 -> 5000


def test_percentage_and_amount_line_discounts():
    t = compute(
        "EUR",
        [
            line(1, "3", "100", dtype="percentage", dval="10"),
            line(2, "1", "50", dtype="amount", dval="5.50"),
        ],
        [],
    )
    assert t.products == 35000 and t.discounts == 3000 + 550
    assert t.total == 35000 - 3550


def test_invoice_amount_discount_is_split_over_tax_groups_exactly():
    t = compute(
        "EUR",
        [line(1, "1", "100", "19", "exclusive"), line(2, "1", "200", "7", "exclusive")],
        [DiscountInput("Deal discount", "amount", D("10"))],
    )
    parts = [pl.amount for pl in t.push_lines if pl.kind == "invoice_discount"]
    assert sum(parts) == -1000 and sorted(parts) == [-667, -333]


def test_invoice_percentage_discount_and_problems():
    t = compute("EUR", [line(1, "1", "100")], [DiscountInput("Big", "amount", D("150"))])
    assert any("larger than the invoice" in p for p in t.problems)
    t = compute("EUR", [line(1, "1", "100", dtype="amount", dval="150")], [])
    assert any("larger than the line" in p for p in t.problems)


def test_more_lines_than_stripe_takes_is_a_problem():
    t = compute("EUR", [line(i, "1", "1") for i in range(251)], [])
    assert any("at most 250 lines" in p for p in t.problems)


# -- the desk against the Stripe sandbox ------------------------------------------------

CURRENCIES = st.sampled_from(["EUR", "USD", "JPY", "KWD", "GBP"])


@st.composite
def invoices(draw):
    currency = draw(CURRENCIES)
    places = exponent(currency)
    # Stripe takes three-decimal amounts in steps of 0.010 (the desk refuses others).
    quantum = D(1).scaleb(-places) * (10 if places == 3 else 1)
    lines = []
    for key in range(draw(st.integers(1, 6))):
        price = D(draw(st.integers(0, 500_000))) * quantum
        qty = D(draw(st.integers(1, 40))) / draw(st.sampled_from([1, 2, 4, 10]))
        behavior = draw(st.sampled_from(["none", "exclusive", "inclusive"]))
        tax = (
            draw(st.sampled_from(["0", "5", "7", "19", "20", "8.5"])) if behavior != "none" else "0"
        )
        if behavior != "none" and tax == "0":
            tax = "19"
        dtype = draw(st.sampled_from([None, "percentage", "amount"]))
        dval = None
        if dtype == "percentage":
            dval = str(draw(st.sampled_from([5, 10, 12.5, 50])))
        elif dtype == "amount":
            dval = str(D(draw(st.integers(0, 1000))) * quantum)
        lines.append(
            LineInput(
                key, f"Item {key}", qty, price, dtype, D(dval) if dval else None, D(tax), behavior
            )
        )
    discounts = []
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["percentage", "amount"]))
        value = (
            D(draw(st.sampled_from(["3", "10", "15"])))
            if kind == "percentage"
            else (D(draw(st.integers(1, 500))) * quantum)
        )
        discounts.append(DiscountInput("Deal discount", kind, value))
    return currency, lines, discounts


def _stripe_totals(client, currency, totals):
    customer = client.v1.customers.create(params={"name": "Property test"})
    rate_ids = {}
    for rate, behavior in tax_rates_needed(totals):
        tr = client.v1.tax_rates.create(
            params={
                "display_name": "VAT",
                "percentage": f"{rate:f}",
                "inclusive": behavior == "inclusive",
            }
        )
        rate_ids[tax_rate_key(rate, behavior)] = tr.id
    inv = client.v1.invoices.create(
        params={
            "customer": customer.id,
            "currency": currency.lower(),
            "auto_advance": False,
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    lines = [line_params(pl, currency, rate_ids) for pl in totals.push_lines]
    if lines:
        client.v1.invoices.add_lines(inv.id, params={"lines": lines})
    return client.v1.invoices.retrieve(inv.id)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=invoices())
def test_desk_totals_equal_stripe_sandbox_totals(stripe_sandbox, stripe_client, data):
    currency, lines, discounts = data
    totals = compute(currency, lines, discounts)
    assume(not totals.problems)  # the desk refuses these before they reach Stripe
    stripe_sandbox.settings(rate_limit_per_second=10_000)
    inv = _stripe_totals(stripe_client, currency, totals)
    assert inv.subtotal == totals.subtotal
    assert inv.total == totals.total
    assert inv.amount_due == totals.amount_due
    stripe_tax = sum(t.amount for t in (inv.total_taxes or []))
    assert stripe_tax == totals.tax_total
