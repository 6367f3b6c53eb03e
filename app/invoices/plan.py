"""The exact Stripe requests an invoice becomes: shown in the preview, executed by the push.

One source for both, so what finance checks before approval is what is sent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from app.invoices.models import Invoice
from app.invoices.totals import PushLine, Totals, for_invoice
from app.money import plain_decimal

ADD_LINES_CHUNK = 250


@dataclass
class PlannedCall:
    step: str
    method: str
    path: str
    params: dict = field(default_factory=dict)
    note: str = ""


def tax_rate_key(rate: Decimal, behavior: str) -> str:
    return f"{plain_decimal(rate)}:{behavior}"


def _decimal_str(value: Decimal) -> str:
    return plain_decimal(value)


def invoice_params(invoice: Invoice, customer: str) -> dict:
    params: dict = {
        "customer": customer,
        "currency": invoice.currency.lower(),
        "collection_method": invoice.collection_method,
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "metadata": {
            "desk_invoice_id": str(invoice.id),
            "desk_invoice_number": invoice.number,
            "desk_invoice_version": str(invoice.approved_version or invoice.version),
            "pipedrive_deal_id": str(invoice.deal_id),
        },
    }
    if invoice.collection_method == "send_invoice":
        if invoice.due_date:
            due = dt.datetime.combine(invoice.due_date, dt.time(23, 59), dt.UTC)
            params["due_date"] = int(due.timestamp())
        else:
            params["days_until_due"] = invoice.days_until_due or 0
    if invoice.memo:
        params["description"] = invoice.memo
    if invoice.footer:
        params["footer"] = invoice.footer
    custom = []
    if invoice.po_number:
        custom.append({"name": "PO number", "value": invoice.po_number})
    custom += [{"name": f["name"], "value": f["value"]} for f in invoice.custom_fields or []]
    if custom:
        params["custom_fields"] = custom[:4]
    return params


def line_params(
    line: PushLine, currency: str, tax_rate_ids: dict[str, str], stripe_product: str | None = None
) -> dict:
    params: dict = {"description": line.description}
    if line.kind == "product":
        # A Pipedrive product mapped (by its code) to a Stripe product is billed as that
        # product; any other line gets an ad-hoc product named after it.
        product = (
            {"product": stripe_product}
            if stripe_product
            else {"product_data": {"name": line.description[:250]}}
        )
        params["price_data"] = {
            "currency": currency.lower(),
            **product,
            "unit_amount_decimal": _decimal_str(line.unit_amount_decimal),
        }
        if line.quantity == line.quantity.to_integral_value():
            params["quantity"] = int(line.quantity)
        else:
            params["quantity_decimal"] = _decimal_str(line.quantity)
    else:
        params["amount"] = line.amount
        params["discountable"] = False
    if line.tax_behavior != "none":
        key = tax_rate_key(line.tax_rate, line.tax_behavior)
        params["tax_rates"] = [tax_rate_ids.get(key, f"<tax rate {key}>")]
    params["metadata"] = {"desk_line_kind": line.kind}
    return params


def stripe_products(invoice: Invoice) -> dict:
    """Invoice line id -> the Stripe product its Pipedrive product maps to (by code)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.intake.models import PdDealProduct
    from app.rules.settings import stripe_product_for

    sources = {
        ln.source_deal_product_id: ln.id
        for ln in invoice.lines
        if ln.source_deal_product_id is not None
    }
    if not sources:
        return {}
    rows = db.session.execute(
        select(PdDealProduct.id, PdDealProduct.product_code).where(
            PdDealProduct.id.in_(list(sources))
        )
    ).all()
    out = {}
    for dp_id, code in rows:
        product = stripe_product_for(code) if code else None
        if product:
            out[sources[dp_id]] = product
    return out


def tax_rates_needed(totals: Totals) -> list[tuple[Decimal, str]]:
    seen: dict[str, tuple[Decimal, str]] = {}
    for pl in totals.push_lines:
        if pl.tax_behavior != "none":
            seen.setdefault(
                tax_rate_key(pl.tax_rate, pl.tax_behavior),
                (pl.tax_rate.normalize(), pl.tax_behavior),
            )
    return list(seen.values())


def build_plan(
    invoice: Invoice,
    *,
    customer: str = "<customer>",
    tax_rate_ids: dict[str, str] | None = None,
    stripe_invoice: str = "<invoice>",
    totals: Totals | None = None,
) -> tuple[list[PlannedCall], Totals]:
    totals = totals or for_invoice(invoice)
    tax_rate_ids = tax_rate_ids or {}
    calls: list[PlannedCall] = []
    for rate, behavior in tax_rates_needed(totals):
        key = tax_rate_key(rate, behavior)
        if key not in tax_rate_ids:
            calls.append(
                PlannedCall(
                    "tax_rate",
                    "POST",
                    "/v1/tax_rates",
                    {
                        "display_name": "VAT",
                        "percentage": _decimal_str(rate),
                        "inclusive": behavior == "inclusive",
                        "metadata": {"desk_tax_key": key},
                    },
                    note="created once, then reused by every invoice with this rate",
                )
            )
    calls.append(PlannedCall("invoice", "POST", "/v1/invoices", invoice_params(invoice, customer)))
    products = stripe_products(invoice)
    lines = [
        line_params(pl, invoice.currency, tax_rate_ids, products.get(pl.source))
        for pl in totals.push_lines
    ]
    for start in range(0, len(lines), ADD_LINES_CHUNK):
        calls.append(
            PlannedCall(
                "lines",
                "POST",
                f"/v1/invoices/{stripe_invoice}/add_lines",
                {"lines": lines[start : start + ADD_LINES_CHUNK]},
            )
        )
    calls.append(
        PlannedCall(
            "finalize", "POST", f"/v1/invoices/{stripe_invoice}/finalize", {"auto_advance": False}
        )
    )
    if invoice.collection_method == "send_invoice":
        calls.append(PlannedCall("send", "POST", f"/v1/invoices/{stripe_invoice}/send"))
    return calls, totals
