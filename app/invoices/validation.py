"""Parse and check what finance types into the editor, and what submission needs.

Each parser returns (values, errors): errors map a field name to a sentence fit
to show next to that field. Every number goes through `app.money.parse_decimal`
(one rule for "1.5", "1,5", "12.000,50" and the refused ambiguous "1,500").
`submission_problems` is the one list of reasons an invoice cannot be submitted
(it reads the invoice it is given; nothing here queries or writes the database).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from app.invoices.models import (
    COLLECTION_METHODS,
    DISCOUNT_TYPES,
    TAX_BEHAVIORS,
    InvoiceDiscount,
    InvoiceLine,
)
from app.invoices.totals import DiscountInput, LineInput, Totals, compute, inputs, misfits
from app.money import MAX_MINOR_UNITS, STRIPE_CURRENCIES, exponent, parse_amount, parse_decimal
from app.web.params import parse_int

# What "Add a line" puts in: a line still reading this at a price of 0 was never filled in.
PLACEHOLDER_DESCRIPTION = "New line"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
MAX_QUANTITY = Decimal("1000000")
PERCENT_EXAMPLE = "Enter a percentage such as 10 or 12.5 (or 12,5)."


def _places(value: Decimal) -> int:
    return max(0, -value.normalize().as_tuple().exponent)


def column_scale(column) -> int:
    """The decimals a Numeric column keeps (read from the model, so input and storage agree)."""
    return column.property.columns[0].type.scale


# One precision from input to storage: a number with more decimals than its column keeps
# would be shown with them in the edit response, then rounded by the database, so the
# reloaded editor, the Stripe plan and the stored total would disagree. Refused at input.
QUANTITY_PLACES = column_scale(InvoiceLine.quantity)
LINE_DISCOUNT_PLACES = column_scale(InvoiceLine.discount_value)
TAX_RATE_PLACES = column_scale(InvoiceLine.tax_rate)
DISCOUNT_PLACES = column_scale(InvoiceDiscount.value)


def too_precise(value: Decimal, places: int) -> str | None:
    """'At most 6 decimals.' when `value` has more decimals than `places`, else None."""
    if _places(value) > places:
        return f"At most {places} decimals."
    return None


def _stored(line, name: str):
    return getattr(line, name, None) if line is not None else None


def parse_line(form, currency: str, line=None) -> tuple[dict, dict]:
    """A line's fields. `line`: the stored line, so fields re-sent untouched keep their value."""
    values: dict = {}
    errors: dict = {}
    desc = (form.get("description") or "").strip()
    if not desc:
        errors["description"] = "Describe the line; the customer sees this text."
    elif len(desc) > 500:
        errors["description"] = "At most 500 characters."
    values["description"] = desc

    try:
        qty = parse_decimal(form.get("quantity"), unchanged=_stored(line, "quantity"),
                            example="Enter a number such as 2 or 1.5 (or 1,5).")
        if qty <= 0:
            errors["quantity"] = "The quantity must be more than 0."
        elif qty > MAX_QUANTITY:
            errors["quantity"] = "The quantity is too large."
        elif too_precise(qty, QUANTITY_PLACES):
            errors["quantity"] = too_precise(qty, QUANTITY_PLACES)
        values["quantity"] = qty
    except ValueError as exc:
        errors["quantity"] = str(exc)

    try:
        price = parse_amount(
            form.get("unit_price"), currency, unchanged=_stored(line, "unit_price")
        )
        if price.scaleb(exponent(currency)) > MAX_MINOR_UNITS:
            errors["unit_price"] = "Above Stripe's limit for one amount."
        values["unit_price"] = price
    except ValueError as exc:
        errors["unit_price"] = str(exc)

    dtype = form.get("discount_type") or ""
    raw_discount = (form.get("discount_value") or "").strip()
    if dtype not in ("",) + DISCOUNT_TYPES:
        errors["discount_type"] = "Choose percentage or amount."
    values["discount_type"] = dtype or None
    values["discount_value"] = None
    if dtype and raw_discount:
        stored = _stored(line, "discount_value")
        try:
            if dtype == "percentage":
                pct = parse_decimal(raw_discount, unchanged=stored, example=PERCENT_EXAMPLE)
                if pct < 0 or pct > 100:
                    errors["discount_value"] = "A percentage between 0 and 100."
                elif too_precise(pct, LINE_DISCOUNT_PLACES):
                    errors["discount_value"] = too_precise(pct, LINE_DISCOUNT_PLACES)
                values["discount_value"] = pct
            else:
                values["discount_value"] = parse_amount(raw_discount, currency, unchanged=stored)
        except ValueError as exc:
            errors["discount_value"] = str(exc)
    elif not dtype:
        values["discount_type"] = None

    behavior = form.get("tax_behavior") or "none"
    if behavior not in TAX_BEHAVIORS:
        errors["tax_behavior"] = "Choose exclusive, inclusive or no tax."
    values["tax_behavior"] = behavior
    raw_rate = (form.get("tax_rate") or "").strip() or "0"
    try:
        rate = parse_decimal(raw_rate, unchanged=_stored(line, "tax_rate"),
                             example="Enter a percentage such as 19 or 7.5 (or 7,5).")
        if rate < 0 or rate > 100:
            errors["tax_rate"] = "Tax is a percentage between 0 and 100."
        elif too_precise(rate, TAX_RATE_PLACES):
            errors["tax_rate"] = too_precise(rate, TAX_RATE_PLACES)
        elif behavior != "none" and rate == 0:
            errors["tax_rate"] = "Enter the rate, or choose “no tax”."
        elif behavior == "none" and rate != 0:
            # Never drop a typed rate silently: the line says "no tax", so ask which.
            errors["tax_rate"] = (
                f"This line is set to “no tax”, so {raw_rate}% would not be applied: "
                "choose “+ tax” or “incl.” to apply it, or clear the rate."
            )
        values["tax_rate"] = rate if behavior != "none" else Decimal(0)
    except ValueError as exc:
        errors["tax_rate"] = str(exc)
    return values, errors


def parse_settings(form, today: dt.date) -> tuple[dict, dict]:
    values: dict = {}
    errors: dict = {}
    currency = (form.get("currency") or "").strip().upper()
    if currency not in STRIPE_CURRENCIES:
        errors["currency"] = "Stripe cannot bill in this currency."
    values["currency"] = currency

    method = form.get("collection_method") or "send_invoice"
    if method not in COLLECTION_METHODS:
        errors["collection_method"] = "Choose how the customer pays."
    values["collection_method"] = method

    terms = form.get("terms") or "days"
    values["days_until_due"] = None
    values["due_date"] = None
    if terms == "days":
        days = parse_int(form.get("days_until_due"), minimum=0, maximum=365)
        if days is None:
            errors["days_until_due"] = "Days until due: a whole number from 0 to 365."
        else:
            values["days_until_due"] = days
    elif terms == "date":
        raw = (form.get("due_date") or "").strip()
        try:
            due = dt.date.fromisoformat(raw)
            if due < today:
                errors["due_date"] = "The due date is in the past."
            values["due_date"] = due
        except ValueError:
            errors["due_date"] = "Pick a date such as 2026-12-21."
    else:
        errors["terms"] = "Choose days until due or a due date."
    if method == "charge_automatically":
        # Stripe charges at finalization: there are no payment terms to send.
        values["days_until_due"] = None
        values["due_date"] = None
        errors.pop("days_until_due", None)
        errors.pop("due_date", None)

    for name, limit in (("memo", 1500), ("footer", 5000), ("po_number", 100)):
        text = (form.get(name) or "").strip()
        if len(text) > limit:
            errors[name] = f"At most {limit} characters."
        values[name] = text

    fields = []
    for i in range(4):
        name = (form.get(f"cf_name_{i}") or "").strip()
        value = (form.get(f"cf_value_{i}") or "").strip()
        if not name and not value:
            continue
        if not name or not value:
            errors[f"cf_{i}"] = "Give both a name and a value, or leave both empty."
        elif len(name) > 40 or len(value) > 140:
            errors[f"cf_{i}"] = "Names up to 40 characters, values up to 140."
        fields.append({"name": name, "value": value})
    values["custom_fields"] = fields
    return values, errors


def parse_billto(form) -> tuple[dict, dict]:
    values: dict = {}
    errors: dict = {}
    name = (form.get("customer_name") or "").strip()
    if not name:
        errors["customer_name"] = "The name the invoice is addressed to."
    elif len(name) > 255:
        errors["customer_name"] = "At most 255 characters."
    values["customer_name"] = name
    email = (form.get("billing_email") or "").strip()
    if not email:
        errors["billing_email"] = "Stripe sends the invoice to this address."
    elif not EMAIL_RE.match(email) or len(email) > 254:
        errors["billing_email"] = "This is not a valid email address."
    values["billing_email"] = email
    address = {}
    for key in ("line1", "line2", "postal_code", "city", "state"):
        text = (form.get(f"address_{key}") or "").strip()
        if len(text) > 200:
            errors[f"address_{key}"] = "At most 200 characters."
        address[key] = text
    country = (form.get("address_country") or "").strip().upper()
    if country and not COUNTRY_RE.match(country):
        errors["address_country"] = "Use the two-letter country code, e.g. DE or US."
    address["country"] = country
    values["address"] = address
    vat = (form.get("vat_id") or "").strip().upper().replace(" ", "")
    if vat and not re.match(r"^[A-Z0-9.\-]{4,40}$", vat):
        errors["vat_id"] = "Letters and digits only, e.g. DE123456789."
    values["vat_id"] = vat
    return values, errors


def parse_discount(form, currency: str) -> tuple[dict, dict]:
    values: dict = {}
    errors: dict = {}
    desc = (form.get("description") or "").strip() or "Discount"
    values["description"] = desc[:255]
    dtype = form.get("type") or ""
    if dtype not in DISCOUNT_TYPES:
        errors["type"] = "Choose percentage or amount."
    values["type"] = dtype
    raw = (form.get("value") or "").strip()
    try:
        if dtype == "percentage":
            pct = parse_decimal(raw, example=PERCENT_EXAMPLE)
            if pct <= 0 or pct > 100:
                errors["value"] = "A percentage above 0 and at most 100."
            elif too_precise(pct, DISCOUNT_PLACES):
                errors["value"] = too_precise(pct, DISCOUNT_PLACES)
            values["value"] = pct
        else:
            amount = parse_amount(raw, currency)
            if amount <= 0:
                errors["value"] = "The amount must be more than 0."
            values["value"] = amount
    except ValueError as exc:
        errors["value"] = str(exc)
    return values, errors


def blocking_problems(totals: Totals, lines: list[LineInput]) -> list[str]:
    """Why Stripe could not bill or collect these totals, or the invoice is not ready.

    Pure (no database): the property test runs it on random invoices.
    """
    problems = list(totals.problems)
    for ln in lines:
        if (
            not ln.excluded
            and ln.unit_price == 0
            and ln.description.strip() == PLACEHOLDER_DESCRIPTION
        ):
            problems.append(
                f"“{PLACEHOLDER_DESCRIPTION}” is still the empty line added at 0: describe it "
                "and give it a price, or remove it."
            )
    if totals.total == 0:
        if not any(not ln.excluded for ln in lines):
            problems.append(
                "Every line is left out (recurring products are billed by their subscription): "
                "there is nothing to bill. Add a line, or cancel the draft."
            )
        else:
            problems.append("The total is 0: there is nothing to bill. Add a price, or cancel "
                            "the draft.")
    return problems


def check_invoice(currency: str, lines: list[LineInput],
                  discounts: list[DiscountInput]) -> tuple[Totals, list[str]]:
    """Totals and everything that stops submission, for plain inputs."""
    totals = compute(currency, lines, discounts)
    return totals, blocking_problems(totals, lines)


def submission_problems(invoice) -> list[str]:
    """Everything that stops `invoice` from being submitted, in words fit for the editor.

    The one list: a check added here is shown in the editor and refuses Submit.
    """
    lines, discounts = inputs(invoice)
    return check_invoice(invoice.currency, lines, discounts)[1]


def currency_change_problem(invoice, new_currency: str) -> str | None:
    """Why the invoice's amounts cannot simply become `new_currency` amounts, or None.

    Prices are never converted: the same numbers are read in the new currency. So
    the change is refused while any of them is not an amount of that currency
    (GBP 6500.5 does not become JPY 6,501), listing each with its nearest amounts,
    exactly as typing that amount in the new currency would be refused.
    """
    if not new_currency or new_currency == invoice.currency:
        return None
    found = misfits(new_currency, *inputs(invoice))
    if not found:
        return None
    return (
        f"Not changed to {new_currency}: prices are not converted, and these amounts are not "
        f"{new_currency} amounts. " + " ".join(text for _key, text in found)
        + f" Change them first, or keep {invoice.currency}."
    )
