"""Invoice totals exactly as Stripe will compute them, and the lines Stripe gets.

The desk pushes each product line as an invoice line (unit price in minor units
as `unit_amount_decimal`, fractional quantities as `quantity_decimal`) and each
discount as a negative line carrying the same tax rate, so Stripe's arithmetic
on what it receives is the arithmetic below, line for line:

- line amount = unit price (minor units) x quantity, rounded half up;
- a percentage discount on a line = its amount x rate, rounded half up; an
  amount discount is taken as typed;
- an invoice-level discount is split over the groups of lines that share a tax
  rate (percentage: per group, rounded; amount: pro rata, largest remainder),
  so tax stays right;
- exclusive tax per line = amount x rate, rounded half up; inclusive tax per
  line = amount - round(amount x 100 / (100 + rate));
- total = sum of line amounts + exclusive taxes; amount due = total.

Collectible in its currency (the same checks Stripe makes, so the desk refuses an
invoice before Stripe would): every line amount Stripe computes, every discount,
the tax per rate, the total and the amount due are whole multiples of the
currency's step (10 minor units for three-decimal currencies, 1 otherwise); the
total is above Stripe's minimum charge and below its maximum. Each problem names
the line or the tax rate and the nearest values that would pass.

Everything is integer minor units inside; Decimal major units outside. No float.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal

from app.money import (
    MAX_MINOR_UNITS,
    exponent,
    format_money,
    from_minor,
    misfit,
    plain_decimal,
    quantum,
    step,
)

MAX_STRIPE_LINES = 250  # Stripe refuses more invoice items on one invoice
# The search for the nearest valid values recomputes the invoice: only for the first few.
MAX_SUGGESTIONS = 5
# Stripe's minimum charge per currency, in minor units (docs.stripe.com/currencies#minimum-
# and-maximum-charge-amounts); other currencies: the equivalent of USD 0.50, taken as 50.
# Below it Stripe marks the invoice paid and moves the amount to the customer's balance:
# nothing is collected. (The sandbox keeps its own copy: the desk never imports it.)
MINIMUM_CHARGE = {
    "USD": 50, "AED": 200, "AUD": 50, "BGN": 100, "BRL": 50, "CAD": 50, "CHF": 50,
    "CZK": 1500, "DKK": 250, "EUR": 50, "GBP": 30, "HKD": 400, "HUF": 17500, "INR": 50,
    "JPY": 50, "MXN": 1000, "MYR": 200, "NOK": 300, "NZD": 50, "PLN": 200, "RON": 200,
    "SEK": 300, "SGD": 50, "THB": 1000,
}


def half_up(value: Decimal, unit: int = 1) -> int:
    """Round half up (away from zero) to a whole number of `unit` minor units."""
    return int((value / unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * unit


@dataclass(frozen=True)
class LineInput:
    key: object
    description: str
    quantity: Decimal
    unit_price: Decimal  # major units
    discount_type: str | None = None
    discount_value: Decimal | None = None
    tax_rate: Decimal = Decimal(0)
    tax_behavior: str = "none"
    excluded: bool = False


@dataclass(frozen=True)
class DiscountInput:
    description: str
    type: str  # percentage | amount
    value: Decimal


@dataclass
class PushLine:
    """One line as Stripe will receive it (minor units)."""

    description: str
    amount: int
    tax_rate: Decimal
    tax_behavior: str
    kind: str  # product | line_discount | invoice_discount
    unit_amount_decimal: Decimal | None = None
    quantity: Decimal | None = None
    source: object = None
    tax: int = 0

    @property
    def is_discount(self) -> bool:
        return self.kind != "product"


@dataclass
class TaxGroup:
    rate: Decimal
    behavior: str
    taxable: int = 0  # minor units the tax was computed on
    tax: int = 0


@dataclass
class Totals:
    currency: str
    push_lines: list[PushLine]
    line_amounts: dict  # key -> (amount, discount, net) minor units, for the editor
    products: int  # sum of product lines before any discount
    discounts: int  # sum of discounts (a positive number)
    subtotal: int  # Stripe's subtotal: all pushed lines
    exclusive_tax: int
    inclusive_tax: int
    total: int
    taxes: list[TaxGroup] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # The problems about one line, by its key: the editor shows them on that line too.
    line_problems: dict = field(default_factory=dict)

    @property
    def amount_due(self) -> int:
        return self.total

    def major(self, minor: int) -> Decimal:
        return from_minor(minor, self.currency)

    def unit_major(self, unit_minor: Decimal) -> Decimal:
        """A unit price in minor units (may be fractional) back in major units, exactly."""
        return unit_minor.scaleb(-exponent(self.currency))

    @property
    def tax_total(self) -> int:
        return self.exclusive_tax + self.inclusive_tax


def minor_decimal(amount: Decimal, currency: str) -> Decimal:
    """Major units to (possibly fractional) minor units, exactly."""
    return amount.scaleb(exponent(currency))


def _tax(amount: int, rate: Decimal, behavior: str) -> int:
    if behavior == "exclusive":
        return half_up(Decimal(amount) * rate / 100)
    if behavior == "inclusive":
        return amount - half_up(Decimal(amount) * 100 / (100 + rate))
    return 0


def _group_key(rate: Decimal, behavior: str) -> tuple[Decimal, str]:
    if behavior == "none":
        return Decimal(0), "none"
    return rate.normalize(), behavior


def _money(minor: int, currency: str) -> str:
    return format_money(from_minor(minor, currency), currency)


def _steps(currency: str) -> str:
    return (
        f"Stripe takes {currency} amounts only in steps of "
        f"{format_money(from_minor(step(currency), currency), currency)}"
    )


def _search(ok: Callable[[Decimal], bool], start: Decimal, by: Decimal, *, limit: int = 400):
    """The nearest values below and above `start` (in steps of `by`, above 0) where `ok`."""
    below = above = None
    for k in range(1, limit + 1):
        if below is None and start - k * by > 0 and ok(start - k * by):
            below = start - k * by
        if above is None and ok(start + k * by):
            above = start + k * by
        if below is not None and above is not None:
            break
    return below, above


def _either(values, show) -> str:
    found = [show(v) for v in values if v is not None]
    return " or ".join(found) if found else ""


def _line_fix(currency: str, ln: LineInput, ok: Callable[[Totals], bool], lines=None,
              discounts=(), limit: int = 400) -> str:
    """'Change the unit price to … or …, or the quantity to … or ….' for one line: the
    nearest values for which the whole invoice, recomputed, satisfies `ok`."""
    lines = list(lines) if lines is not None else [ln]

    def with_line(**change) -> Totals:
        changed = [replace(x, **change) if x.key == ln.key else x for x in lines]
        return compute(currency, changed, list(discounts), suggest=False)

    price_step = quantum(currency) * step(currency)
    prices = _search(lambda p: ok(with_line(unit_price=p)), ln.unit_price, price_step, limit=limit)
    qty_step = Decimal(1).scaleb(min(0, ln.quantity.normalize().as_tuple().exponent))
    quantities = _search(lambda q: ok(with_line(quantity=q)), ln.quantity, qty_step, limit=limit)
    parts = []
    if any(v is not None for v in prices):
        parts.append(
            "the unit price to " + _either(prices, lambda p: format_money(p, currency))
        )
    if qty_step < 1 and any(v is not None for v in quantities):
        parts.append("the quantity to " + _either(quantities, plain_decimal))
    if not parts:
        return "Change its quantity or unit price."
    return f"Change {', or '.join(parts)} on “{ln.description}”."


def _tax_problem(currency: str, group: TaxGroup, lines, discounts) -> str:
    how = "included" if group.behavior == "inclusive" else "added"
    text = (
        f"The {plain_decimal(group.rate)}% tax ({how}) comes to {_money(group.tax, currency)} as "
        f"Stripe computes it (per line, rounded): {_steps(currency)}."
    )
    taxed = [
        x for x in lines
        if not x.excluded and _group_key(x.tax_rate, x.tax_behavior) == (group.rate, group.behavior)
    ]
    if not taxed:
        return text + " Change the amounts taxed at this rate."
    biggest = max(taxed, key=lambda x: x.unit_price * x.quantity)
    unit = step(currency)

    def ok(t: Totals) -> bool:
        same = [g for g in t.taxes if (g.rate, g.behavior) == (group.rate, group.behavior)]
        return biggest.key not in t.line_problems and all(g.tax % unit == 0 for g in same)

    # The whole invoice is recomputed per candidate here: a shorter search.
    return f"{text} {_line_fix(currency, biggest, ok, lines, discounts, limit=100)}"


def _nearest_amounts(value: Decimal, currency: str) -> str:
    by = quantum(currency) * step(currency)
    down = (value / by).to_integral_value(rounding="ROUND_FLOOR") * by
    options = [down, down + by] if down > 0 else [down + by]
    return " or ".join(format_money(v, currency) for v in options)


def misfits(currency: str, lines: list[LineInput], discounts: list[DiscountInput]):
    """Every typed amount that is not an amount of `currency` (decimals it does not have,
    off Stripe's steps): (line key or None, sentence naming it and the nearest amounts)."""
    out = []

    def check(key, what: str, value: Decimal | None) -> None:
        problem = misfit(value, currency) if value is not None else None
        if problem:
            out.append((key, f"{what} is {plain_decimal(value)}: {problem} Nearest: "
                             f"{_nearest_amounts(value, currency)}."))

    for ln in lines:
        if ln.excluded:
            continue
        check(ln.key, f"The unit price of “{ln.description}”", ln.unit_price)
        if ln.discount_type == "amount":
            check(ln.key, f"The discount on “{ln.description}”", ln.discount_value)
    for disc in discounts:
        if disc.type == "amount":
            check(None, f"The discount “{disc.description}”", disc.value)
    return out


def compute(
    currency: str,
    lines: list[LineInput],
    discounts: list[DiscountInput],
    *,
    suggest: bool = True,
) -> Totals:
    """`suggest=False`: only the numbers, and which lines are off the currency's steps
    (the search for the nearest valid values calls this for every candidate)."""
    currency = currency.upper()
    # Three-decimal currencies: Stripe takes only amounts ending in 0, so the amounts
    # the desk sends (discounts) are rounded to that step and products must land on it.
    unit = step(currency)
    push: list[PushLine] = []
    line_amounts: dict = {}
    problems: list[str] = []
    line_problems: dict = {}
    for key, text in misfits(currency, lines, discounts) if suggest else ():
        problems.append(text)
        if key is not None:
            line_problems.setdefault(key, []).append(text)
    products = 0

    for ln in lines:
        if ln.excluded:
            continue
        unit_minor = minor_decimal(ln.unit_price, currency)
        amount = half_up(unit_minor * ln.quantity)
        if amount % unit and not suggest:
            line_problems.setdefault(ln.key, [])  # the numbers only: no words needed
        elif amount % unit:
            text = (
                f"“{ln.description}” comes to {_money(amount, currency)} (quantity × unit "
                f"price, rounded as Stripe rounds it): {_steps(currency)}."
            )
            if len(line_problems) < MAX_SUGGESTIONS:
                text += " " + _line_fix(
                    currency, ln, lambda t, key=ln.key: t.line_amounts[key][0] % unit == 0
                )
            else:
                text += " Change its quantity or unit price."
            problems.append(text)
            line_problems.setdefault(ln.key, []).append(text)
        products += amount
        push.append(
            PushLine(
                ln.description,
                amount,
                ln.tax_rate,
                ln.tax_behavior,
                "product",
                unit_amount_decimal=unit_minor,
                quantity=ln.quantity,
                source=ln.key,
            )
        )
        off = 0
        if ln.discount_type == "percentage" and ln.discount_value:
            off = half_up(Decimal(amount) * ln.discount_value / 100, unit)
        elif ln.discount_type == "amount" and ln.discount_value:
            off = half_up(minor_decimal(ln.discount_value, currency), unit)
        if off > amount:
            problems.append(f"The discount on “{ln.description}” is larger than the line.")
        if off:
            label = (
                f"{plain_decimal(ln.discount_value)}%"
                if ln.discount_type == "percentage"
                else "amount"
            )
            push.append(
                PushLine(
                    f"Discount ({label}) on {ln.description}"[:500],
                    -off,
                    ln.tax_rate,
                    ln.tax_behavior,
                    "line_discount",
                    source=ln.key,
                )
            )
        line_amounts[ln.key] = (amount, off, amount - off)

    # Invoice-level discounts, one negative line per tax group they touch.
    for disc in discounts:
        groups: OrderedDict[tuple, int] = OrderedDict()
        for pl in push:
            key = _group_key(pl.tax_rate, pl.tax_behavior)
            groups[key] = groups.get(key, 0) + pl.amount
        base = sum(v for v in groups.values() if v > 0)
        if base <= 0 or not disc.value:
            continue
        shares: dict[tuple, int] = {}
        if disc.type == "percentage":
            for key, net in groups.items():
                if net > 0:
                    shares[key] = half_up(Decimal(net) * disc.value / 100, unit)
        else:
            total_off = half_up(minor_decimal(disc.value, currency), unit)
            if total_off > base:
                problems.append(f"The discount “{disc.description}” is larger than the invoice.")
                total_off = base - base % unit
            positive = [(k, v) for k, v in groups.items() if v > 0]
            # Split in steps of `unit`; largest remainder: the leftover steps go where
            # rounding down lost most, so the parts add up to the discount exactly.
            steps = total_off // unit
            exact = {k: Decimal(steps) * v / base for k, v in positive}
            floors = {k: int(x) for k, x in exact.items()}
            left = steps - sum(floors.values())
            by_loss = sorted(exact.items(), key=lambda kv: kv[1] - int(kv[1]), reverse=True)
            for k, _x in by_loss[:left]:
                floors[k] += 1
            shares = {k: n * unit for k, n in floors.items()}
        for (rate, behavior), off in shares.items():
            if off:
                suffix = (f" ({plain_decimal(rate)}% tax)"
                          if behavior != "none" and len(shares) > 1 else "")
                push.append(
                    PushLine(
                        f"{disc.description}{suffix}"[:500],
                        -off,
                        rate,
                        behavior,
                        "invoice_discount",
                    )
                )

    taxes: OrderedDict[tuple, TaxGroup] = OrderedDict()
    excl = incl = 0
    for pl in push:
        pl.tax = _tax(pl.amount, pl.tax_rate, pl.tax_behavior)
        if pl.tax_behavior == "none":
            continue
        key = _group_key(pl.tax_rate, pl.tax_behavior)
        group = taxes.setdefault(key, TaxGroup(key[0], key[1]))
        group.tax += pl.tax
        group.taxable += pl.amount - pl.tax if pl.tax_behavior == "inclusive" else pl.amount
        if pl.tax_behavior == "exclusive":
            excl += pl.tax
        else:
            incl += pl.tax

    subtotal = sum(pl.amount for pl in push)
    total = subtotal + excl
    discount_sum = -sum(pl.amount for pl in push if pl.is_discount)
    if unit > 1 and suggest:
        for group in taxes.values():
            if group.tax % unit:
                text = _tax_problem(currency, group, lines, discounts)
                problems.append(text)
        if total % unit:
            problems.append(
                f"The total comes to {_money(total, currency)}: {_steps(currency)}; "
                "it follows once the amounts above are fixed."
            )
    minimum = MINIMUM_CHARGE.get(currency, 50)
    if 0 < total < minimum:
        problems.append(
            f"The total {_money(total, currency)} is below Stripe's minimum charge of "
            f"{_money(minimum, currency)}: Stripe could not collect it."
        )
    if total < 0:
        problems.append("The total is below zero: reduce the discounts.")
    if len(push) > MAX_STRIPE_LINES:
        problems.append(
            f"Stripe takes at most {MAX_STRIPE_LINES} lines per invoice; this one needs "
            f"{len(push)} (discounts count as lines)."
        )
    for pl in push:
        if abs(pl.amount) > MAX_MINOR_UNITS:
            problems.append(f"“{pl.description}” is above Stripe's limit for one amount.")
    if total > MAX_MINOR_UNITS:
        problems.append("The total is above Stripe's limit for one invoice.")
    return Totals(
        currency,
        push,
        line_amounts,
        products,
        discount_sum,
        subtotal,
        excl,
        incl,
        total,
        list(taxes.values()),
        problems,
        line_problems,
    )


def for_invoice(invoice) -> Totals:
    """Totals of an ORM invoice (lines and invoice-level discounts)."""
    return compute(invoice.currency, *inputs(invoice))


def inputs(invoice) -> tuple[list[LineInput], list[DiscountInput]]:
    """An ORM invoice's lines and invoice-level discounts, as `compute` takes them."""
    lines = [
        LineInput(
            ln.id or id(ln),
            ln.description,
            ln.quantity,
            ln.unit_price,
            ln.discount_type,
            ln.discount_value,
            ln.tax_rate or Decimal(0),
            ln.tax_behavior,
            ln.excluded,
        )
        for ln in invoice.lines
    ]
    discounts = [DiscountInput(d.description, d.type, d.value) for d in invoice.discounts]
    return lines, discounts
