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


def parse_amount(text: str, currency: str, *, allow_negative: bool = False) -> Decimal:
    """Parse what a person typed ("12,000.50", "1200") as an exact amount.

    Raises ValueError with a sentence fit to show next to the field.
    """
    cleaned = (text or "").strip().replace(",", "").replace("\u00a0", "").replace(" ", "")
    if not cleaned:
        raise ValueError("Enter an amount.")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("Enter a number such as 1200.50.") from None
    if not value.is_finite():
        raise ValueError("Enter a number such as 1200.50.")
    if value < 0 and not allow_negative:
        raise ValueError("The amount cannot be negative.")
    places = exponent(currency)
    digits_after_point = max(0, -value.normalize().as_tuple().exponent)
    if digits_after_point > places:
        if places == 0:
            raise ValueError(f"{currency.upper()} has no decimals: enter a whole amount.")
        raise ValueError(f"{currency.upper()} allows at most {places} decimals.")
    if step(currency) > 1 and value.scaleb(places) % step(currency):
        raise ValueError(
            f"Stripe takes {currency.upper()} amounts in steps of 0.010: the last digit must be 0."
        )
    return value


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
