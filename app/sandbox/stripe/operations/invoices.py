"""Invoices and invoice items: create, update, add lines."""

from __future__ import annotations

from decimal import Decimal

from .. import money
from ..common import DAY, metadata_update
from ..errors import invalid, missing, not_editable, param_invalid, param_missing
from ..store import public


class InvoicesMixin:
    """Mixed into ``StripeSandbox``: invoices and invoice items: create, update, add lines."""

    # ------------------------------------------------------------------ invoices
    def create_invoice(self, p: dict) -> dict:
        st = self.store
        if "customer" not in p:
            raise param_missing("customer")
        cust = self.get("customer", p["customer"], param="customer")
        method = p.get("collection_method", "charge_automatically")
        now = self.now()
        self._check_due(p, method, now)
        currency = money.check_currency(p.get("currency", cust["currency"] or "usd"))
        if cust["currency"] and currency != cust["currency"]:
            pass  # Stripe allows multi-currency customers for invoices
        tax_rates = self._tax_rate_ids(p.get("default_tax_rates"), "default_tax_rates")
        if p.get("pending_invoice_items_behavior") == "include":
            pass  # handled below: pulls in the customer's pending items
        inv = self._new_invoice(p, cust, method, currency, tax_rates, now)
        inv_id = inv["id"]
        if "due_date" in p:
            inv["due_date"] = p["due_date"]
        elif p.get("days_until_due") is not None:
            inv["due_date"] = now + p["days_until_due"] * DAY
        inv["discounts"] = self._make_discounts(
            p.get("discounts"), "discounts", customer=cust["id"], invoice=inv_id,
            invoice_item=None, currency=currency)
        st.add("invoice", inv)
        if p.get("pending_invoice_items_behavior") == "include":
            for item in st.all("invoiceitem")[::-1]:
                if (item["customer"] == cust["id"] and item["invoice"] is None
                        and item["currency"] == currency):
                    item["invoice"] = inv_id
                    inv["_items"].append(item["id"])
        self.recalc(inv)
        self.emit("invoice.created", inv)
        return inv

    @staticmethod
    def _check_due(p: dict, method: str, now: int) -> None:
        """A send_invoice invoice needs exactly one of days_until_due and a future due_date;
        a charge_automatically one takes neither."""
        if method == "send_invoice":
            if "days_until_due" not in p and "due_date" not in p:
                raise invalid(
                    "Invoices with `collection_method=send_invoice` require either "
                    "`days_until_due` or `due_date`.", param="days_until_due")
        else:
            for key in ("days_until_due", "due_date"):
                if key in p:
                    raise invalid(
                        f"Invoices with `collection_method=charge_automatically` cannot have "
                        f"`{key}`.", param=key)
        if "days_until_due" in p and "due_date" in p:
            raise invalid("You may only specify one of these parameters: days_until_due, "
                          "due_date.", param="due_date")
        if "due_date" in p and p["due_date"] < now:
            raise invalid("The `due_date` must be in the future.", param="due_date")

    def _new_invoice(self, p: dict, cust: dict, method: str, currency: str,
                     tax_rates: list[str], now: int) -> dict:
        """A new draft invoice for ``cust``, with no lines and no due date yet."""
        st = self.store
        inv_id = st.new_id("in")
        inv = {
            "id": inv_id,
            "object": "invoice",
            "account_country": self.settings.account_country,
            "account_name": "Billing Desk Sandbox",
            "account_tax_ids": None,
            "amount_due": 0,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": 0,
            "amount_shipping": 0,
            "application": None,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": p.get("auto_advance", False),
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                              "provider": None, "status": None},
            "automatically_finalizes_at": None,
            "billing_reason": "manual",
            "collection_method": method,
            "created": now,
            "currency": currency,
            "custom_fields": p.get("custom_fields") or None,
            "customer": cust["id"],
            "customer_account": None,
            "customer_address": cust["address"],
            "customer_email": cust["email"],
            "customer_name": cust["name"],
            "customer_phone": cust["phone"],
            "customer_shipping": cust["shipping"],
            "customer_tax_exempt": cust["tax_exempt"],
            "customer_tax_ids": [],
            "default_payment_method": p.get("default_payment_method"),
            "default_source": None,
            "default_tax_rates": tax_rates,
            "description": p.get("description"),
            "discounts": [],
            "due_date": None,
            "effective_at": None,
            "ending_balance": None,
            "footer": p.get("footer"),
            "from_invoice": None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "livemode": False,
            "metadata": metadata_update({}, p.get("metadata")),
            "next_payment_attempt": None,
            "number": None,
            "on_behalf_of": None,
            "parent": None,
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": now,
            "period_start": now,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": None,
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": 0,
            "statement_descriptor": p.get("statement_descriptor"),
            "status": "draft",
            "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                                   "paid_at": None, "voided_at": None},
            "subscription": None,
            "subtotal": 0,
            "subtotal_excluding_tax": 0,
            "test_clock": None,
            "total": 0,
            "total_discount_amounts": [],
            "total_excluding_tax": 0,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": None,
            "_items": [],
            "_payments": [],
            "_days_until_due": p.get("days_until_due"),
            "_balance_applied": 0,
            "_overdue_sent": False,
        }
        return inv

    def _tax_rate_ids(self, value, param: str) -> list[str]:
        if not value:
            return []
        for i, rid in enumerate(value):
            rate = self.store.get("tax_rate", rid)
            if rate is None:
                raise missing("tax_rate", rid, f"{param}[{i}]")
            if not rate["active"]:
                raise invalid(f"Tax rate {rid} is inactive and cannot be used.",
                              param=f"{param}[{i}]")
        return list(value)

    EDITABLE_AFTER_FINALIZE = {"metadata", "description", "footer", "custom_fields",
                               "statement_descriptor", "auto_advance", "expand"}

    def update_invoice(self, inv: dict, p: dict) -> dict:
        if inv["status"] != "draft":
            bad = sorted(set(p) - self.EDITABLE_AFTER_FINALIZE)
            if bad:
                raise not_editable(
                    "This invoice can no longer be edited: only draft invoices can have "
                    f"`{bad[0]}` changed. Finalized invoices can be corrected with credit notes."
                )
            if inv["status"] in ("paid", "void") and "auto_advance" in p:
                raise not_editable(
                    f"You cannot update `auto_advance` on a {inv['status']} invoice.")
        before = self.render(inv)
        for key in ("description", "footer", "statement_descriptor", "auto_advance",
                    "default_payment_method"):
            if key in p:
                inv[key] = p[key] if p[key] != "" else None
        if "custom_fields" in p:
            inv["custom_fields"] = p["custom_fields"] or None
        if "metadata" in p:
            inv["metadata"] = metadata_update(inv["metadata"], p["metadata"])
        if "collection_method" in p:
            inv["collection_method"] = p["collection_method"]
        if "days_until_due" in p:
            inv["_days_until_due"] = p["days_until_due"]
            inv["due_date"] = self.now() + p["days_until_due"] * DAY
        if "due_date" in p:
            inv["due_date"] = p["due_date"] or None
        if inv["collection_method"] == "charge_automatically" and inv["status"] == "draft":
            inv["due_date"] = None
            inv["_days_until_due"] = None
        elif inv["collection_method"] == "send_invoice" and inv["due_date"] is None:
            raise invalid("Invoices with `collection_method=send_invoice` require either "
                          "`days_until_due` or `due_date`.", param="days_until_due")
        if "default_tax_rates" in p:
            inv["default_tax_rates"] = self._tax_rate_ids(p["default_tax_rates"],
                                                          "default_tax_rates")
        if "discounts" in p:
            inv["discounts"] = self._make_discounts(
                p["discounts"], "discounts", customer=inv["customer"], invoice=inv["id"],
                invoice_item=None, currency=inv["currency"])
        self.recalc(inv)
        self.emit_update("invoice.updated", inv, before)
        return inv

    def _require_draft(self, inv: dict, what: str) -> None:
        if inv["status"] != "draft":
            raise not_editable(
                f"You can only {what} draft invoices. This invoice ({inv['id']}) has status "
                f"`{inv['status']}`; use credit notes to adjust finalized invoices."
            )

    def add_lines(self, inv: dict, p: dict) -> dict:
        self._require_draft(inv, "add lines to")
        lines = p.get("lines")
        if not lines:
            raise param_missing("lines")
        before = self.render(inv)
        for i, line in enumerate(lines):
            prefix = f"lines[{i}]"
            if "invoice_item" in line:
                item = self.get("invoiceitem", line["invoice_item"], "invoiceitem",
                                f"{prefix}[invoice_item]")
                if item["invoice"] is not None:
                    raise invalid(f"Invoice item {item['id']} is already attached to an "
                                  "invoice.", param=f"{prefix}[invoice_item]")
                item["invoice"] = inv["id"]
                inv["_items"].append(item["id"])
                continue
            spec = dict(line)
            spec["customer"] = inv["customer"]
            self._build_item(spec, prefix, inv)
        if "invoice_metadata" in p:
            inv["metadata"] = metadata_update(inv["metadata"], p["invoice_metadata"])
        self.recalc(inv)
        self.emit_update("invoice.updated", inv, before)
        return inv

    def _build_item(self, p: dict, prefix: str, inv: dict | None) -> dict:
        """Create an invoice item (the object behind an invoice line)."""
        pre = f"{prefix}[" if prefix else ""
        post = "]" if prefix else ""
        sources = [k for k in ("amount", "price_data", "pricing", "unit_amount_decimal") if k in p]
        if len(sources) > 1:
            raise invalid("You may only specify one of these parameters: "
                          + ", ".join(sources) + ".", param=f"{pre}{sources[1]}{post}")
        if not sources:
            raise param_missing(f"{pre}amount{post}")
        if "quantity" in p and "quantity_decimal" in p:
            raise invalid("You may only specify one of these parameters: quantity, "
                          "quantity_decimal.", param=f"{pre}quantity_decimal{post}")
        currency = inv["currency"] if inv else None
        price_id = product_id = None
        src = sources[0]
        if src == "pricing":
            if "price" not in p["pricing"]:
                raise param_missing(f"{pre}pricing][price{post}")
            price = self.get("price", p["pricing"]["price"], param=f"{pre}pricing][price{post}")
            if price["type"] != "one_time":
                raise invalid(f"The price specified ({price['id']}) is a recurring price; "
                              "only one-time prices can be used for invoice items.",
                              param=f"{pre}pricing][price{post}")
            price_currency = price["currency"]
            unit = Decimal(price["unit_amount_decimal"])
            price_id, product_id = price["id"], price["product"]
        elif src == "price_data":
            pd = dict(p["price_data"])
            if "product" not in pd and "product_data" not in pd:
                raise param_missing(f"{pre}price_data][product{post}")
            price = self.create_price(pd, f"{pre}price_data{post}".replace("][", "]["),
                                      active=False)
            price_currency = price["currency"]
            unit = Decimal(price["unit_amount_decimal"])
            price_id, product_id = price["id"], price["product"]
        else:
            price_currency = p.get("currency") or currency
            if price_currency is None:
                raise param_missing(f"{pre}currency{post}")
            price_currency = money.check_currency(price_currency, f"{pre}currency{post}")
            if src == "amount":
                money.check_amount(p["amount"], price_currency, f"{pre}amount{post}",
                                   allow_negative=True)
                unit = Decimal(p["amount"])
            else:
                unit = money.to_decimal(p["unit_amount_decimal"], f"{pre}unit_amount_decimal{post}")
        if currency and price_currency != currency:
            raise invalid(
                f"The currency of the line ({price_currency}) must match the currency of the "
                f"invoice ({currency}).", param=f"{pre}currency{post}")
        currency = price_currency
        if "quantity_decimal" in p:
            qty_dec = money.to_decimal(p["quantity_decimal"], f"{pre}quantity_decimal{post}")
        else:
            qty_dec = Decimal(p.get("quantity", 1))
        if qty_dec < 0:
            raise param_invalid(f"{pre}quantity{post}", "Quantity must be non-negative.",
                                "parameter_invalid_integer")
        amount = money.round_half_up(unit * qty_dec)
        money.check_amount(amount, currency, f"{pre}amount{post}", allow_negative=True)
        quantity = int(qty_dec) if qty_dec == qty_dec.to_integral_value() else 1
        customer = p.get("customer")
        if customer is None:
            raise param_missing("customer")
        self.get("customer", customer, param="customer")
        tax_rates = self._tax_rate_ids(p.get("tax_rates"), f"{pre}tax_rates{post}")
        if p.get("tax_amounts"):
            raise invalid("The sandbox does not support `tax_amounts`; use `tax_rates`.",
                          param=f"{pre}tax_amounts{post}")
        now = self.now()
        period = p.get("period") or {"start": now, "end": now}
        if period["end"] < period["start"]:
            raise invalid("The period end must be greater than or equal to the start.",
                          param=f"{pre}period][end{post}")
        item_id = self.store.new_id("ii")
        item = {
            "id": item_id,
            "object": "invoiceitem",
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "customer_account": None,
            "date": now,
            "description": p.get("description"),
            "discountable": p.get("discountable", amount >= 0),
            "discounts": [],
            "invoice": inv["id"] if inv else None,
            "livemode": False,
            "metadata": metadata_update({}, p.get("metadata")),
            "net_amount": amount,
            "parent": None,
            "period": {"end": period["end"], "start": period["start"]},
            "pricing": {
                "price_details": {"price": price_id, "product": product_id} if price_id else None,
                "type": "price_details",
                "unit_amount_decimal": money.decimal_str(unit),
            },
            "proration": False,
            "quantity": quantity,
            "quantity_decimal": money.decimal_str(qty_dec),
            "tax_rates": tax_rates,
            "test_clock": None,
            "_line_id": self.store.new_id("il"),
        }
        item["discounts"] = self._make_discounts(
            p.get("discounts"), f"{pre}discounts{post}", customer=customer,
            invoice=None, invoice_item=item_id, currency=currency)
        self.store.add("invoiceitem", item)
        if inv:
            inv["_items"].append(item_id)
        self.emit("invoiceitem.created", item)
        return item

    def create_invoiceitem(self, p: dict) -> dict:
        inv = None
        if "invoice" in p:
            inv = self.get("invoice", p["invoice"], param="invoice")
            self._require_draft(inv, "add invoice items to")
            if p.get("customer") not in (None, inv["customer"]):
                raise invalid("The invoice item's customer must match the invoice's customer.",
                              param="customer")
            p = dict(p, customer=inv["customer"])
        elif "customer" not in p:
            raise param_missing("customer")
        before = self.render(inv) if inv else None
        item = self._build_item(p, "", inv)
        if inv:
            self.recalc(inv)
            self.emit_update("invoice.updated", inv, before)
        return item

    def render_item(self, item: dict, expand=None) -> dict:
        out = public(item)
        out["tax_rates"] = [self.render(self.store.get("tax_rate", r)) for r in item["tax_rates"]]
        if expand:
            for path in expand:
                self._expand(out, path.split("."), path)
        return out
