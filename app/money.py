"""Money rules: Decimal in the domain, integer minor units only at Stripe's boundary.

Stripe's currency exponents: most currencies have two decimals; these have none
or three. Amounts in three-decimal currencies must end in 0 in minor units
(Stripe rounds to the nearest ten).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

# Currencies Stripe can bill in (presentment currencies), upper-case ISO 4217.
STRIPE_CURRENCIES = frozenset(
    """USD AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL
    GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR ISK JMD JOD JPY KES KGS KHR KMF KRW KWD KYD
    KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SEK SGD SHP SLE SOS
    SRD STD SZL THB TJS TND TOP TRY TTD TWD TZS UAH UGX UYU UZS VND VUV WST XAF XCD XOF XPF YER
    ZAR ZMW""".split()
)

# Stripe's largest amount for one invoice total / line, in minor units (8 digits).
MAX_MINOR_UNITS = 99_999_999


def step(currency: str) -> int:
    """The smallest amount Stripe accepts, in minor units: 10 for three-decimal currencies."""
    return 10 if currency.upper() in THREE_DECIMAL else 1


def exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def billable(currency: str | None) -> bool:
    return bool(currency) and currency.upper() in STRIPE_CURRENCIES


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """Major units -> Stripe's integer minor units. Refuses amounts finer than the currency."""
    if not isinstance(amount, Decimal):
        raise TypeError("amounts are Decimal, never float")
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(
            f"{plain_decimal(amount)} has more decimals than {currency.upper()} allows"
        )
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    return (Decimal(minor).scaleb(-exponent(currency))).quantize(quantum(currency))


def round_major(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


# What people type: digits, at most one decimal separator ("." or ","), and optional
# thousands grouping ("," "." spaces or apostrophes) in well-formed groups of three.
_GROUPING_SPACES = " \u00a0\u202f\u2009'\u2019"
_MINUS = "-\u2212"
_EXAMPLE = "Enter a number such as 1200.50 or 1200,50."


def _well_grouped(integer: str, sep: str) -> bool:
    groups = integer.split(sep)
    return (
        1 <= len(groups[0]) <= 3
        and all(g.isdigit() for g in groups)
        and all(len(g) == 3 for g in groups[1:])
    )


# A person's number format (User.number_format): which separator is the decimal one.
# "auto" reads either convention and asks back when a lone separator could be both.
NUMBER_FORMATS = {
    "auto": "Either 1,234.56 or 1.234,56 (“1,500” alone is asked back)",
    "point": "1,234.56 (a decimal point)",
    "comma": "1.234,56 (a decimal comma)",
}
_DECIMAL_MARK = {"point": ".", "comma": ","}


def user_number_format() -> str:
    """The signed-in user's number format; "auto" outside a request or for no user."""
    from flask import has_request_context

    if not has_request_context():
        return "auto"
    from flask_login import current_user

    fmt = getattr(current_user, "number_format", None)
    return fmt if fmt in NUMBER_FORMATS else "auto"


def parse_decimal(
    text: str | None,
    *,
    unchanged: Decimal | None = None,
    example: str = _EXAMPLE,
    fmt: str | None = None,
    places: int | None = None,
) -> Decimal:
    """Read a number as a person typed it, in either decimal convention, exactly.

    The one rule for every amount, quantity, rate and discount field:

    - "1.5" and "1,5" are both one and a half: a lone "." or "," is the decimal
      separator, unless it is followed by exactly three digits and preceded by one
      to three digits (not "0"): "1,500" and "1.500" could be fifteen hundred or one
      and a half, so they are refused with a message giving both readings;
    - with both "." and ",", the last one is the decimal separator and the other
      groups thousands: "12,000.50" and "12.000,50" are the same number;
    - spaces and apostrophes only group thousands: "12 000,50", "1'200.5";
    - groups must be three digits ("1,23,4" is refused), a separator that appears
      twice groups thousands ("1,200,000"), and nothing else is accepted (no
      exponent such as "1e3", no letters, no currency signs).

    With a fixed number format (`fmt` "point" or "comma", by default the signed-in
    user's, see user_number_format) only that separator is the decimal one and the
    other only groups thousands: in "point", "1,500" is 1500 and "1,5" is refused (a
    comma there groups thousands); in "comma", "1.500" is 1500 and "1,5" is 1.5.

    `places`: the decimals of the amount's currency. In "auto", a point followed by
    exactly three digits is the decimal point when the currency has three decimals:
    "49.640" in KWD is what the desk itself shows for that amount ("KWD 49.640"), so the
    same text typed back means the same. A comma there is still asked back.

    `example`: what to say when the text is no number at all (the field's own example).
    `unchanged`: the field's stored value. A form re-sends fields the user did not
    touch as the editor rendered them ("1.125"); that exact text means this value
    even when it would be ambiguous typed afresh.

    Raises ValueError with a sentence fit to show next to the field.
    """
    raw = (text or "").strip()
    if not raw:
        raise ValueError(example)
    if unchanged is not None:
        # The `num` filter the editor renders stored values with is plain_decimal.
        if raw == plain_decimal(unchanged):
            return unchanged
    sign = ""
    body = raw
    if body[0] in _MINUS or body[0] == "+":
        sign = "-" if body[0] in _MINUS else ""
        body = body[1:].lstrip()
    spaced = any(c in _GROUPING_SPACES for c in body)
    for c in _GROUPING_SPACES:
        body = body.replace(c, " ")
    if not body or any(not (c.isdigit() or c in ".,  ") for c in body) or not body.isascii():
        raise ValueError(example)
    marks = [c for c in body if c in ".,"]
    integer, fraction = body, ""
    fmt = fmt or user_number_format()
    if marks and fmt in _DECIMAL_MARK:
        point = _DECIMAL_MARK[fmt]
        group = "," if point == "." else "."
        if marks.count(point) > 1 or (point in marks and marks[-1] != point):
            raise ValueError(_format_message(raw, fmt))
        integer, _, fraction = body.partition(point)
        if point in body and not fraction.isdigit():
            raise ValueError(example)
        if group in integer:
            if spaced or not _well_grouped(integer, group):
                raise ValueError(_format_message(raw, fmt))
            integer = integer.replace(group, "")
        marks = []
    if marks:
        last = body.rfind(marks[-1])
        decimal_mark = marks[-1]
        group_mark = None
        if len(set(marks)) == 2:
            group_mark = "." if decimal_mark == "," else ","
        elif len(marks) > 1:
            group_mark, decimal_mark = marks[0], None  # "1,200,000": grouping only
        if decimal_mark is not None and marks.count(decimal_mark) > 1:
            raise ValueError(_grouping_message(raw))
        if decimal_mark is not None:
            integer, fraction = body[:last], body[last + 1 :]
            if not fraction.isdigit():
                raise ValueError(example)
        if group_mark is not None:
            if spaced:
                raise ValueError(_grouping_message(raw))
            if not _well_grouped(integer, group_mark):
                raise ValueError(_grouping_message(raw))
            integer = integer.replace(group_mark, "")
        elif (
            decimal_mark is not None
            and not spaced
            and len(fraction) == 3
            and integer.isdigit()
            and 1 <= len(integer) <= 3
            and integer != "0"
            and not (decimal_mark == "." and places == 3)
        ):
            as_group = int(integer + fraction)
            as_decimal = f"{Decimal(integer + '.' + fraction).normalize():f}"
            raise ValueError(
                f"“{raw}” could be {sign}{as_group} or {sign}{as_decimal}: type "
                f"{sign}{as_group} or {sign}{as_decimal} to say which (or set your number "
                f"format under Your account)."
            )
    if spaced:
        if not _well_grouped(integer, " "):
            raise ValueError(_grouping_message(raw))
        integer = integer.replace(" ", "")
    if integer == "" and fraction:
        integer = "0"
    if not integer.isdigit():
        raise ValueError(example)
    return Decimal(f"{sign}{integer}.{fraction}" if fraction else f"{sign}{integer}")


def _format_message(raw: str, fmt: str) -> str:
    point, group = ("point", "comma") if fmt == "point" else ("comma", "point")
    return (
        f"“{raw}” does not fit your number format, {NUMBER_FORMATS[fmt]}: the decimal "
        f"separator is a {point} and a {group} only groups thousands in threes. Type it "
        f"again, or change your number format under Your account."
    )


def _grouping_message(raw: str) -> str:
    return (
        f"“{raw}” has its separators in the wrong places: group thousands in threes "
        "(12,000.50 or 12.000,50) or leave them out (12000.50), with one decimal separator."
    )


def parse_amount(
    text: str, currency: str, *, allow_negative: bool = False, unchanged: Decimal | None = None
) -> Decimal:
    """Parse what a person typed ("12,000.50", "1200,5", "1200") as an exact amount.

    The separators follow `parse_decimal`'s rule; then the amount must fit the
    currency (its decimals, and Stripe's steps of 10 minor units for three-decimal
    currencies). Raises ValueError with a sentence fit to show next to the field.
    """
    if not (text or "").strip():
        raise ValueError("Enter an amount.")
    value = parse_decimal(text, unchanged=unchanged, places=exponent(currency))
    if value < 0 and not allow_negative:
        raise ValueError("The amount cannot be negative.")
    problem = misfit(value, currency)
    if problem:
        raise ValueError(problem)
    return value


def misfit(value: Decimal, currency: str) -> str | None:
    """Why `value` is not an amount Stripe takes in `currency` (its decimals, its steps),
    or None. The same words for what is typed and for what a currency change meets."""
    places = exponent(currency)
    digits_after_point = max(0, -value.normalize().as_tuple().exponent)
    if digits_after_point > places:
        if places == 0:
            return f"{currency.upper()} has no decimals: enter a whole amount."
        return f"{currency.upper()} allows at most {places} decimals."
    if step(currency) > 1 and value.scaleb(places) % step(currency):
        return (
            f"Stripe takes {currency.upper()} amounts in steps of 0.010: the last digit must be 0."
        )
    return None


def format_money(amount: Decimal | None, currency: str | None) -> str:
    """'EUR 12,000.00', 'JPY 1,200', 'KWD 1.250' — exact, never through float."""
    if amount is None or not currency:
        return "—"
    q = round_major(Decimal(amount), currency)
    places = exponent(currency)
    sign = "-" if q < 0 else ""
    q = abs(q)
    whole = int(q)
    text = f"{whole:,}"
    if places:
        frac = (q - whole).scaleb(places).to_integral_value()
        text += "." + str(int(frac)).rjust(places, "0")
    return f"{currency.upper()} {sign}{text}"


def plain_decimal(value: Decimal | int | str | None) -> str:
    """A number as people write it: "20", "1000", "0.0000001", "1.5", "-0.5".

    The one place that turns a Decimal into text for people, Stripe descriptions,
    Pipedrive and CSV: never scientific notation ("2E+1", "1E-7"), never the zeros a
    column's scale adds ("120.000000"), never through float. None gives "".
    A string must hold a number (stored audit values are Decimals as strings).
    """
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"a {type(value).__name__} reached the money code: use Decimal")
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"not a finite number: {number}")
    if number.is_zero():
        return "0"  # also "-0", "0E-6" and "0E+3"
    # Fixed-point text, then the trailing zeros off: exact for any number of digits
    # (normalize() would round to the context's 28 digits).
    text = f"{number:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
