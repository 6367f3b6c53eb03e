"""Which values of an invoice's audit entries are money, and in which currency.

The invoice timeline shows every amount with its currency ("EUR 2,757.03", as
format_money writes it), never a bare number; quantities, rates and percentages stay
plain numbers. An entry's values are in the currency the entry itself names (a draft's
creation, a currency change), else the invoice's.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from app.money import format_money, plain_decimal, round_major

# Fields that are always an amount of the invoice's currency.
MONEY_FIELDS = frozenset({
    "unit_price", "amount", "total", "subtotal", "discount_total", "tax_total",
    "amount_paid", "amount_refunded", "amount_credited", "amount_remaining",
})
# Fields that are an amount only when their type says so (else a percentage).
TYPED_FIELDS = {"discount_value": "discount_type", "value": "type"}


def money_currency(field: str, side: dict, other: dict, currency: str,
                   line_types: dict | None = None) -> str | None:
    """The currency `field`'s value on this side of an entry is in, or None when it is
    no money. `side`: the entry's before or after the value is from; `other`: the other
    one; `line_types`: line id -> its discount type now, for older entries that recorded
    a discount value without its type."""
    if field in TYPED_FIELDS:
        type_field = TYPED_FIELDS[field]
        kind = side.get(type_field) or other.get(type_field)
        if kind is None and line_types is not None:
            kind = line_types.get(side.get("line", other.get("line")))
        if kind != "amount":
            return None
    elif field not in MONEY_FIELDS:
        return None
    return side.get("currency") or other.get("currency") or currency or None


def money_text(value, currency: str) -> str | None:
    """An amount with its currency, exactly: 'EUR 2,757.03'; a value with more decimals
    than its currency has is shown as it is ('EUR 2757.028'), never rounded away.
    None when `value` is no number (shown as it is by the caller)."""
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    if number == round_major(number, currency):
        return format_money(number, currency)
    return f"{currency.upper()} {plain_decimal(number)}"
