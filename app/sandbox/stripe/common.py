"""What the Stripe sandbox's operations share: constants, the request context, and
small helpers for addresses, metadata, percentages and `created` filters."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

DAY = 86400
RESETTABLE_SETTINGS = (
    "rate_limit_per_second", "webhooks_enabled", "webhook_duplicate", "webhook_shuffle",
    "webhook_delay_seconds", "webhook_time_scale", "webhook_max_attempts", "webhook_hold",
    "search_lag_seconds", "search_rate_limit_per_second",
)
CARD_TOKENS = {"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_discover",
               "pm_card_us", "pm_card_de"}
ACCOUNT_ID = "acct_1SandboxBillingDesk"
DECLINE_TOKENS = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_visa_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
}


@dataclass
class RequestCtx:
    request_id: str | None = None
    idempotency_key: str | None = None


ADDRESS_NULL = {
    "city": None, "country": None, "line1": None, "line2": None, "postal_code": None,
    "state": None,
}


def address_fields(value) -> dict | None:
    if not value:
        return None
    out = dict(ADDRESS_NULL)
    out.update({k: v for k, v in value.items() if k in out})
    return out


def metadata_update(current: dict, value) -> dict:
    """Stripe metadata semantics: "" clears all, key="" removes a key."""
    if value == "":
        return {}
    out = dict(current)
    for k, v in (value or {}).items():
        if v == "":
            out.pop(k, None)
        else:
            out[k] = str(v)
    return out


def pct_json(value: Decimal):
    return int(value) if value == value.to_integral_value() else float(value)



def created_match(created: int, flt) -> bool:
    if isinstance(flt, int):
        return created == flt
    ops = {"gt": created.__gt__, "gte": created.__ge__, "lt": created.__lt__,
           "lte": created.__le__}
    return all(ops[k](v) for k, v in flt.items())


