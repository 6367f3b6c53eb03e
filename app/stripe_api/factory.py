"""Build the Stripe gateway from the effective connection settings."""

from __future__ import annotations

from flask import current_app

from app.connections.store import SecretUnreadable, credential, destination
from app.stripe_api.client import StripeGateway, StripeGatewayError


def stripe_gateway(**kwargs) -> StripeGateway:
    options = dict(current_app.config.get("STRIPE_GATEWAY_OPTIONS") or {})
    options.update(kwargs)
    try:
        key = credential("STRIPE_SECRET_KEY")  # never for a host other than Stripe's
        base = destination("STRIPE_SECRET_KEY")
    except SecretUnreadable as exc:
        raise StripeGatewayError(
            str(exc), retryable=False, hint="Enter the Stripe key again on the Connections page."
        ) from None
    return StripeGateway(key, base, **options)
