"""Currency rules and rounding. Integers in minor units and Decimal only, never float."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import StripeError

ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
MAX_AMOUNT = 99_999_999  # Stripe: at most 8 digits for a single amount

# Stripe's minimum charge amounts (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts),
# in the currency's minor unit. Currencies not listed: 50 minor units (USD-equivalent).
MINIMUM_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50,
    "czk": 1500, "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50,
    "jpy": 50, "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200,
    "sek": 300, "sgd": 50, "thb": 1000,
}

KNOWN_CURRENCIES = frozenset(
    """usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd
    bwp byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel
    gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd
    kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok
    npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos
    srd std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer
    zar zmw""".split()
)


def check_currency(currency, param: str = "currency") -> str:
    if not isinstance(currency, str) or currency.lower() not in KNOWN_CURRENCIES:
        raise StripeError(
            f"Invalid currency: {str(currency).lower()}. Stripe currently supports these "
            "currencies: " + ", ".join(sorted(KNOWN_CURRENCIES)),
            param=param,
            saved=False,
        )
    return currency.lower()


def check_amount(amount: int, currency: str, param: str, *, allow_negative: bool = False) -> int:
    """Validate an integer amount in minor units for ``currency``."""
    if not allow_negative and amount < 0:
        raise StripeError(
            "This value must be greater than or equal to 0.",
            param=param,
            code="parameter_invalid_integer",
            saved=False,
        )
    if abs(amount) > MAX_AMOUNT:
        raise StripeError(
            f"Invalid integer: {amount}. Amount must be no more than 99,999,999 "
            f"({currency}).",
            param=param,
            code="amount_too_large",
            saved=False,
        )
    if currency in THREE_DECIMAL and amount % 10 != 0:
        raise StripeError(
            f"Invalid amount: {amount}. Amounts in {currency.upper()} must be divisible by 10 "
            "(the last digit of a three-decimal currency amount must be 0).",
            param=param,
            code="parameter_invalid_integer",
            saved=False,
        )
    return amount


def check_charge_amount(amount: int, currency: str, param: str = "amount") -> None:
    minimum = MINIMUM_CHARGE.get(currency)
    if minimum is not None and 0 < amount < minimum:
        raise StripeError(
            f"Amount must be at least {format_major(minimum, currency)} {currency}",
            param=param,
            code="amount_too_small",
        )


def to_decimal(value, param: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise StripeError(
            f"Invalid decimal: {value}", param=param, code="parameter_invalid_decimal",
            saved=False,
        ) from None
    if not d.is_finite():
        raise StripeError(
            f"Invalid decimal: {value}", param=param, code="parameter_invalid_decimal",
            saved=False,
        )
    if d.as_tuple().exponent < -12:  # type: ignore[operator]
        raise StripeError(
            f"Invalid decimal: {value}. Decimals may have at most 12 decimal places.",
            param=param,
            code="parameter_invalid_decimal",
            saved=False,
        )
    return d


def round_half_up(value: Decimal) -> int:
    """Round to the nearest minor unit, halves away from zero."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def decimal_str(value: Decimal) -> str:
    """Stripe renders decimal strings without trailing zeros ("2000", "12.5")."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def exponent(currency: str) -> int:
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def format_major(amount: int, currency: str) -> str:
    exp = exponent(currency)
    if exp == 0:
        return f"{amount}"
    value = Decimal(amount).scaleb(-exp)
    symbol = "$" if currency == "usd" else ""
    return f"{symbol}{value:.{exp}f}"
