"""The Stripe side of a push: one gateway per worker run, and the calls a push makes.

Every call goes through `StripeGateway.call` (retries, rate limit, accounting).
`Calls` adds one thing: a hook around each call that changes something, which
the reliability tests use to crash a push right before or right after Stripe
acted, exactly where a real process could die.
"""

from __future__ import annotations

from collections.abc import Callable

from app.stripe_api.client import StripeGateway, TokenBucket
from app.stripe_api.factory import stripe_gateway

Hook = Callable[[str, str], None]  # (step, "before" | "after")


def push_gateway(**overrides) -> StripeGateway:
    """The gateway a push worker uses: its rate limit with a small burst.

    A full one-second burst on top of the steady rate would overshoot Stripe's
    per-second window at the start of every bulk push (a burst of 429s); a
    burst of a tenth of the rate keeps any one-second window under the limit.
    """
    gateway = stripe_gateway(**overrides)
    if "bucket" not in overrides:
        rate = gateway.bucket.rate
        gateway.bucket = TokenBucket(rate, burst=max(1, int(rate / 10)), sleep=gateway.sleep)
    return gateway


class Calls:
    def __init__(self, gateway: StripeGateway, hook: Hook | None = None) -> None:
        self.gateway = gateway
        self.hook = hook
        self.sdk = gateway.client.v1

    @property
    def requests(self) -> int:
        return self.gateway.usage.requests

    def _mutate(self, step: str, operation: str, fn, *args, key: str, **kwargs):
        if self.hook:
            self.hook(step, "before")
        result = self.gateway.call(operation, fn, *args, idempotency_key=key, **kwargs)
        if self.hook:
            self.hook(step, "after")
        return result

    def _read(self, operation: str, fn, *args, **kwargs):
        return self.gateway.call(operation, fn, *args, mutating=False, **kwargs)

    def _each(self, operation: str, fn, *args, params: dict):
        """Every item of a Stripe list, 100 a page, each page one read through the gateway;
        a page is fetched only when the caller goes on past the one before."""
        params = dict(params, limit=100)
        while True:
            page = self._read(operation, fn, *args, params=params)
            yield from page.data
            if not page.has_more or not page.data:
                return
            params = dict(params, starting_after=page.data[-1].id)

    # -- customers
    def search_customers(self, query: str):
        return self._read("customers.search", self.sdk.customers.search,
                          params={"query": query, "limit": 10})

    def customers_by_email(self, email: str):
        return self._read("customers.list", self.sdk.customers.list,
                          params={"email": email, "limit": 10})

    def create_customer(self, params: dict, key: str):
        return self._mutate("customer", "customers.create", self.sdk.customers.create,
                            params=params, key=key)

    def retrieve_customer(self, customer_id: str):
        return self._read("customers.retrieve", self.sdk.customers.retrieve, customer_id)

    def update_customer(self, customer_id: str, params: dict, key: str):
        return self._mutate("customer", "customers.update", self.sdk.customers.update,
                            customer_id, params=params, key=key)

    # -- tax rates
    def tax_rates(self):
        return self._each("tax_rates.list", self.sdk.tax_rates.list, params={"active": True})

    def create_tax_rate(self, params: dict, key: str):
        return self._mutate("tax_rate", "tax_rates.create", self.sdk.tax_rates.create,
                            params=params, key=key)

    # -- invoices
    def create_invoice(self, params: dict, key: str):
        return self._mutate("invoice", "invoices.create", self.sdk.invoices.create,
                            params=params, key=key)

    def draft_invoices(self, customer_id: str):
        return self._each("invoices.list", self.sdk.invoices.list,
                          params={"customer": customer_id, "status": "draft"})

    def add_lines(self, invoice_id: str, params: dict, key: str):
        return self._mutate("lines", "invoices.add_lines", self.sdk.invoices.add_lines,
                            invoice_id, params=params, key=key)

    def invoice_lines(self, invoice_id: str):
        return self._each("invoices.lines", self.sdk.invoices.line_items.list, invoice_id,
                          params={})

    def retrieve_invoice(self, invoice_id: str):
        return self._read("invoices.retrieve", self.sdk.invoices.retrieve, invoice_id)

    def finalize(self, invoice_id: str, params: dict, key: str):
        return self._mutate("finalize", "invoices.finalize", self.sdk.invoices.finalize_invoice,
                            invoice_id, params=params, key=key)

    def send(self, invoice_id: str, key: str):
        return self._mutate("send", "invoices.send", self.sdk.invoices.send_invoice,
                            invoice_id, key=key)

    def void(self, invoice_id: str, key: str):
        return self._mutate("void", "invoices.void", self.sdk.invoices.void_invoice,
                            invoice_id, key=key)

    def delete_draft(self, invoice_id: str, key: str):
        return self._mutate("cleanup", "invoices.delete", self.sdk.invoices.delete,
                            invoice_id, key=key)
