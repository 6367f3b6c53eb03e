"""The Stripe sandbox's domain logic: objects, totals, state machines, events."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import money
from .errors import StripeError, invalid, missing, not_editable, param_invalid, param_missing
from .settings import StripeSandboxSettings
from .store import Store, public
from .webhooks import WebhookDispatcher

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


def _address(value) -> dict | None:
    if not value:
        return None
    out = dict(ADDRESS_NULL)
    out.update({k: v for k, v in value.items() if k in out})
    return out


def _metadata_update(current: dict, value) -> dict:
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


def _pct_json(value: Decimal):
    return int(value) if value == value.to_integral_value() else float(value)


class StripeSandbox:
    def __init__(self, settings: StripeSandboxSettings | None = None) -> None:
        self.settings = settings or StripeSandboxSettings()
        self.store = Store(self.settings)
        self.local = threading.local()
        self.rate_window: dict[str, deque] = {}
        self._initial_switches = {k: getattr(self.settings, k) for k in RESETTABLE_SETTINGS}
        self._outbox: list[tuple[dict, dict]] = []
        self.webhooks = WebhookDispatcher(self)

    # ------------------------------------------------------------------ helpers
    @property
    def ctx(self) -> RequestCtx:
        ctx = getattr(self.local, "ctx", None)
        return ctx if ctx is not None else RequestCtx()

    def now(self) -> int:
        return self.store.now()

    def reset(self) -> None:
        """Forget everything: objects, events, keys, ledger, faults, clock offset, and
        switches changed through /_sandbox/settings."""
        with self.store.lock:
            self.webhooks.clear()
            self.store.reset()
            self.rate_window.clear()
            self.settings.clock.set_offset(0)
            for key, value in self._initial_switches.items():
                setattr(self.settings, key, value)
            self.webhooks.wake()
            self.store.save()

    def get(self, kind: str, obj_id, label: str | None = None, param: str = "id") -> dict:
        obj = self.store.get(kind, obj_id)
        if obj is None:
            raise missing(label or kind, str(obj_id), param)
        return obj

    # ------------------------------------------------------------------ events
    def emit(self, event_type: str, obj: dict, previous: dict | None = None) -> dict:
        st = self.store
        data: dict[str, Any] = {"object": self.render(obj)}
        if previous:
            data["previous_attributes"] = previous
        endpoints = [
            ep for ep in st.all("webhook_endpoint")
            if ep["status"] == "enabled"
            and ("*" in ep["enabled_events"] or event_type in ep["enabled_events"])
        ]
        ctx = self.ctx
        event = {
            "id": st.new_id("evt"),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": len(endpoints) if self.settings.webhooks_enabled else 0,
            "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
            "type": event_type,
        }
        st.add("event", event)
        if self.settings.webhooks_enabled:
            rendered = public(event)
            for ep in sorted(endpoints, key=lambda e: e["_seq"]):
                self._outbox.append((ep, rendered))
        return event

    # ------------------------------------------------------------------ transactions
    def transaction(self):
        """``with sb.transaction():`` run a mutation atomically: on an error (other than one
        marked keep_changes) state and pending webhooks are rolled back; on success the
        webhooks of the new events are queued."""
        return _Transaction(self)

    def flush_outbox(self) -> None:
        with self.store.lock:
            outbox, self._outbox = self._outbox, []
        for ep, event in outbox:
            self.webhooks.enqueue(ep, event)

    def emit_update(self, event_type: str, obj: dict, before: dict) -> None:
        after = self.render(obj)
        previous = {k: v for k, v in before.items() if after.get(k) != v}
        if previous:  # Stripe sends no *.updated event when nothing changed
            self.emit(event_type, obj, previous)

    def webhook_delivered(self, event_id: str) -> None:
        with self.store.lock:
            ev = self.store.get("event", event_id)
            if ev and ev["pending_webhooks"] > 0:
                ev["pending_webhooks"] -= 1

    # ------------------------------------------------------------------ rendering
    def render(self, obj: dict, expand: list[str] | None = None) -> dict:
        out = public(obj)
        if obj.get("object") == "invoice":
            out["lines"] = self._invoice_lines_list(obj)
            if expand and any(e == "payments" or e.startswith("payments.") for e in expand):
                out["payments"] = self._list_body(
                    [self.render(self.store.get("invoice_payment", p)) for p in obj["_payments"]],
                    f"/v1/invoices/{obj['id']}/payments",
                )
        if obj.get("object") == "charge":
            refunds = [self.render(self.store.get("refund", r)) for r in obj["_refunds"]]
            out["refunds"] = self._list_body(refunds[::-1], f"/v1/charges/{obj['id']}/refunds")
        for path in expand or []:
            if path in ("payments", "lines") and obj.get("object") == "invoice":
                continue
            self._expand(out, path.split("."), path)
        return out

    def _expand(self, node: Any, parts: list[str], full: str) -> None:
        if not parts or not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        if head == "data" and isinstance(node.get("data"), list):
            for item in node["data"]:
                self._expand(item, rest, full)
            return
        if head not in node:
            raise invalid(f"This property cannot be expanded ({full}).", param="expand")
        value = node[head]
        if rest:
            if isinstance(value, list):
                for item in value:
                    self._expand(item, rest, full)
            else:
                self._expand(value, rest, full)
            return
        node[head] = self._expand_value(value, full)

    def _expand_value(self, value: Any, full: str) -> Any:
        if isinstance(value, list):
            return [self._expand_value(v, full) for v in value]
        if isinstance(value, dict) or value is None:
            return value
        kind = self.store.kind_of(value)
        obj = self.store.get(kind, value) if kind else None
        if obj is None:
            raise invalid(f"This property cannot be expanded ({full}).", param="expand")
        return self.render(obj)

    @staticmethod
    def _list_body(data: list, url: str, has_more: bool = False) -> dict:
        return {"object": "list", "data": data, "has_more": has_more, "url": url}

    # ------------------------------------------------------------------ lists
    def list_page(
        self,
        items: list[dict],
        params: dict,
        url: str,
        expand: list[str] | None = None,
        render=None,
    ) -> dict:
        """Newest first; ``starting_after``/``ending_before`` cursors; ``limit`` 1..100."""
        limit = params.get("limit", 10)
        if not 1 <= limit <= 100:
            raise StripeError(
                f"Invalid integer: {limit}. This value must be between 1 and 100.",
                param="limit", code="parameter_invalid_integer", saved=False,
            )
        if "starting_after" in params and "ending_before" in params:
            raise invalid(
                "You may only specify one of these parameters: ending_before, starting_after."
            )
        created = params.get("created")
        if created is not None:
            items = [o for o in items if _created_match(o["created"], created)]
        ids = [o["id"] for o in items]
        if "starting_after" in params:
            cursor = params["starting_after"]
            if cursor not in ids:
                raise missing("object", cursor, "starting_after")
            start = ids.index(cursor) + 1
            page = items[start:start + limit]
            has_more = start + limit < len(items)
        elif "ending_before" in params:
            cursor = params["ending_before"]
            if cursor not in ids:
                raise missing("object", cursor, "ending_before")
            end = ids.index(cursor)
            begin = max(0, end - limit)
            page = items[begin:end]
            has_more = begin > 0
        else:
            page = items[:limit]
            has_more = len(items) > limit
        sub = [p[len("data."):] for p in (expand or []) if p.startswith("data.")]
        render = render or self.render
        return self._list_body([render(o, sub) for o in page], url, has_more)

    # ------------------------------------------------------------------ customers
    def create_customer(self, p: dict) -> dict:
        st = self.store
        cid = st.new_id("cus", 14)
        cust = {
            "id": cid,
            "object": "customer",
            "address": _address(p.get("address")),
            "balance": p.get("balance", 0),
            "created": self.now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": p.get("description"),
            "discount": None,
            "email": p.get("email"),
            "invoice_prefix": p.get("invoice_prefix")
            or "".join(st.rng.choice("0123456789ABCDEF") for _ in range(8)),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": _metadata_update({}, p.get("metadata")),
            "name": p.get("name"),
            "next_invoice_sequence": p.get("next_invoice_sequence", 1),
            "phone": p.get("phone"),
            "preferred_locales": p.get("preferred_locales", []),
            "shipping": p.get("shipping") or None,
            "tax_exempt": p.get("tax_exempt", "none"),
            "test_clock": None,
        }
        self._apply_invoice_settings(cust, p.get("invoice_settings"))
        self._check_payment_method(cust["invoice_settings"]["default_payment_method"],
                                   "invoice_settings[default_payment_method]")
        st.add("customer", cust)
        self._index(cust)
        self.emit("customer.created", cust)
        return cust

    def _index(self, cust: dict) -> None:
        """Record what Search will see of this customer once the index catches up."""
        cust.setdefault("_search", []).append({
            "at": self.now(),
            "doc": {k: cust.get(k) for k in ("email", "name", "phone", "created", "metadata")},
        })
        del cust["_search"][:-20]

    def _check_payment_method(self, pm, param: str) -> None:
        if pm and pm not in CARD_TOKENS and pm not in DECLINE_TOKENS:
            raise missing("PaymentMethod", pm, param)

    def _apply_invoice_settings(self, cust: dict, value) -> None:
        if not value:
            return
        s = cust["invoice_settings"]
        for key in ("default_payment_method", "footer"):
            if key in value:
                s[key] = value[key] or None
        if "custom_fields" in value:
            s["custom_fields"] = value["custom_fields"] or None

    def update_customer(self, cust: dict, p: dict) -> dict:
        self._check_payment_method((p.get("invoice_settings") or {}).get(
            "default_payment_method"), "invoice_settings[default_payment_method]")
        before = self.render(cust)
        for key in ("description", "email", "name", "phone", "tax_exempt", "balance",
                    "preferred_locales", "invoice_prefix", "next_invoice_sequence"):
            if key in p:
                cust[key] = p[key] if p[key] != "" else None
        if "address" in p:
            cust["address"] = _address(p["address"])
        if "shipping" in p:
            cust["shipping"] = p["shipping"] or None
        if "metadata" in p:
            cust["metadata"] = _metadata_update(cust["metadata"], p["metadata"])
        self._apply_invoice_settings(cust, p.get("invoice_settings"))
        self._index(cust)
        self.emit_update("customer.updated", cust, before)
        return cust

    def delete_customer(self, cust: dict) -> dict:
        self.store.delete("customer", cust["id"])
        self.emit("customer.deleted", cust)
        return {"id": cust["id"], "object": "customer", "deleted": True}

    def search_customers(self, query: str) -> list[dict]:
        clauses, joiner = _parse_search(query)
        horizon = self.now() - self.settings.search_lag_seconds
        out = []
        for cust in self.store.all("customer"):
            visible = [v["doc"] for v in cust.get("_search", []) if v["at"] <= horizon]
            if not visible:
                continue  # not indexed yet
            hits = [_search_match(visible[-1], c) for c in clauses]
            if (all(hits) if joiner == "AND" else any(hits)):
                out.append(cust)
        return out

    # ------------------------------------------------------------------ catalog
    def create_product(self, p: dict) -> dict:
        now = self.now()
        prod = {
            "id": p.get("id") or self.store.new_id("prod", 14),
            "object": "product",
            "active": p.get("active", True),
            "created": now,
            "default_price": None,
            "description": p.get("description"),
            "images": p.get("images", []),
            "livemode": False,
            "marketing_features": p.get("marketing_features", []),
            "metadata": _metadata_update({}, p.get("metadata")),
            "name": p["name"] if "name" in p else self._raise(param_missing("name")),
            "package_dimensions": p.get("package_dimensions"),
            "shippable": p.get("shippable"),
            "statement_descriptor": p.get("statement_descriptor"),
            "tax_code": p.get("tax_code"),
            "type": p.get("type", "service"),
            "unit_label": p.get("unit_label"),
            "updated": now,
            "url": p.get("url"),
        }
        if self.store.get("product", prod["id"]):
            raise invalid("Product already exists.", param="id", code="resource_already_exists")
        self.store.add("product", prod)
        self.emit("product.created", prod)
        if "default_price_data" in p:
            dp = dict(p["default_price_data"])
            dp["product"] = prod["id"]
            price = self.create_price(dp, "default_price_data")
            prod["default_price"] = price["id"]
        return prod

    @staticmethod
    def _raise(exc: Exception):
        raise exc

    def create_price(self, p: dict, prefix: str = "", active: bool = True) -> dict:
        pre = f"{prefix}[" if prefix else ""
        post = "]" if prefix else ""
        currency = money.check_currency(p.get("currency"), f"{pre}currency{post}")
        unit_dec = self._unit_amount(p, currency, pre, post)
        product_id = p.get("product")
        if product_id is None and "product_data" in p:
            product_id = self.create_product(p["product_data"])["id"]
        if product_id is None:
            raise param_missing(f"{pre}product{post}")
        self.get("product", product_id, param=f"{pre}product{post}")
        recurring = None
        if p.get("recurring"):
            r = p["recurring"]
            recurring = {
                "interval": r["interval"],
                "interval_count": r.get("interval_count", 1),
                "meter": r.get("meter"),
                "trial_period_days": r.get("trial_period_days"),
                "usage_type": r.get("usage_type", "licensed"),
            }
        unit_int = int(unit_dec) if unit_dec == unit_dec.to_integral_value() else None
        price = {
            "id": self.store.new_id("price"),
            "object": "price",
            "active": p.get("active", active),
            "billing_scheme": "per_unit",
            "created": self.now(),
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": p.get("lookup_key"),
            "metadata": _metadata_update({}, p.get("metadata")),
            "nickname": p.get("nickname"),
            "product": product_id,
            "recurring": recurring,
            "tax_behavior": p.get("tax_behavior", "unspecified"),
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_int,
            "unit_amount_decimal": money.decimal_str(unit_dec),
        }
        self.store.add("price", price)
        self.emit("price.created", price)
        return price

    def _unit_amount(self, p: dict, currency: str, pre: str = "", post: str = "") -> Decimal:
        if "unit_amount" in p and "unit_amount_decimal" in p:
            raise invalid(
                "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
                param=f"{pre}unit_amount{post}",
            )
        if "unit_amount" in p:
            money.check_amount(p["unit_amount"], currency, f"{pre}unit_amount{post}")
            return Decimal(p["unit_amount"])
        if "unit_amount_decimal" in p:
            d = money.to_decimal(p["unit_amount_decimal"], f"{pre}unit_amount_decimal{post}")
            if d < 0:
                raise param_invalid(f"{pre}unit_amount_decimal{post}",
                                    "This value must be greater than or equal to 0.",
                                    "parameter_invalid_decimal")
            if d > money.MAX_AMOUNT:
                raise param_invalid(f"{pre}unit_amount_decimal{post}",
                                    "Amount must be no more than 99,999,999.", "amount_too_large")
            return d
        raise param_missing(f"{pre}unit_amount{post}")

    def create_tax_rate(self, p: dict) -> dict:
        pct = money.to_decimal(p["percentage"], "percentage")
        if not 0 <= pct <= 100:
            raise param_invalid("percentage", "Percentage must be between 0 and 100.",
                                "parameter_invalid_decimal")
        rate = {
            "id": self.store.new_id("txr"),
            "object": "tax_rate",
            "active": p.get("active", True),
            "country": p.get("country"),
            "created": self.now(),
            "description": p.get("description"),
            "display_name": p["display_name"],
            "effective_percentage": _pct_json(pct),
            "flat_amount": None,
            "inclusive": p["inclusive"],
            "jurisdiction": p.get("jurisdiction"),
            "jurisdiction_level": None,
            "livemode": False,
            "metadata": _metadata_update({}, p.get("metadata")),
            "percentage": _pct_json(pct),
            "rate_type": "percentage",
            "state": p.get("state"),
            "tax_type": p.get("tax_type"),
            "_pct": str(pct),
        }
        self.store.add("tax_rate", rate)
        self.emit("tax_rate.created", rate)
        return rate

    def create_coupon(self, p: dict) -> dict:
        has_pct, has_amt = "percent_off" in p, "amount_off" in p
        if has_pct == has_amt:
            raise invalid("Coupons require exactly one of percent_off or amount_off.",
                          param="percent_off")
        currency = None
        if has_amt:
            if "currency" not in p:
                raise param_missing("currency")
            currency = money.check_currency(p["currency"])
            money.check_amount(p["amount_off"], currency, "amount_off")
        pct = money.to_decimal(p["percent_off"], "percent_off") if has_pct else None
        if pct is not None and not 0 < pct <= 100:
            raise param_invalid("percent_off", "percent_off must be between 0 and 100.",
                                "parameter_invalid_decimal")
        duration = p.get("duration", "once")
        coupon = {
            "id": p.get("id") or "".join(self.store.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
                                         for _ in range(8)),
            "object": "coupon",
            "amount_off": p.get("amount_off"),
            "created": self.now(),
            "currency": currency,
            "duration": duration,
            "duration_in_months": p.get("duration_in_months") if duration == "repeating" else None,
            "livemode": False,
            "max_redemptions": p.get("max_redemptions"),
            "metadata": _metadata_update({}, p.get("metadata")),
            "name": p.get("name"),
            "percent_off": _pct_json(pct) if pct is not None else None,
            "redeem_by": p.get("redeem_by"),
            "times_redeemed": 0,
            "valid": True,
            "_pct": str(pct) if pct is not None else None,
        }
        if self.store.get("coupon", coupon["id"]):
            raise invalid("Coupon already exists.", param="id", code="resource_already_exists")
        self.store.add("coupon", coupon)
        self.emit("coupon.created", coupon)
        return coupon

    def _make_discounts(self, value, param: str, *, customer: str, invoice: str | None,
                        invoice_item: str | None, currency: str) -> list[str]:
        if not value:
            return []
        ids = []
        for i, d in enumerate(value):
            if "discount" in d:
                self.get("discount", d["discount"], param=f"{param}[{i}][discount]")
                ids.append(d["discount"])
                continue
            if "coupon" not in d:
                raise param_missing(f"{param}[{i}][coupon]")
            coupon = self.store.get("coupon", d["coupon"])
            if coupon is None:
                raise missing("coupon", d["coupon"], f"{param}[{i}][coupon]")
            if coupon["currency"] and coupon["currency"] != currency:
                raise invalid(
                    f"The coupon currency ({coupon['currency']}) must match the currency of "
                    f"the invoice ({currency}).", param=f"{param}[{i}][coupon]")
            disc = {
                "id": self.store.new_id("di"),
                "object": "discount",
                "checkout_session": None,
                "customer": customer,
                "customer_account": None,
                "end": None,
                "invoice": invoice,
                "invoice_item": invoice_item,
                "promotion_code": None,
                "source": {"coupon": coupon["id"], "type": "coupon"},
                "start": self.now(),
                "subscription": None,
                "subscription_item": None,
            }
            coupon["times_redeemed"] += 1
            self.store.add("discount", disc)
            ids.append(disc["id"])
        return ids

    # ------------------------------------------------------------------ invoices
    def create_invoice(self, p: dict) -> dict:
        st = self.store
        if "customer" not in p:
            raise param_missing("customer")
        cust = self.get("customer", p["customer"], param="customer")
        method = p.get("collection_method", "charge_automatically")
        now = self.now()
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
        currency = money.check_currency(p.get("currency", cust["currency"] or "usd"))
        if cust["currency"] and currency != cust["currency"]:
            pass  # Stripe allows multi-currency customers for invoices
        tax_rates = self._tax_rate_ids(p.get("default_tax_rates"), "default_tax_rates")
        if p.get("pending_invoice_items_behavior") == "include":
            pass  # handled below: pulls in the customer's pending items
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
            "metadata": _metadata_update({}, p.get("metadata")),
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
            inv["metadata"] = _metadata_update(inv["metadata"], p["metadata"])
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
            inv["metadata"] = _metadata_update(inv["metadata"], p["invoice_metadata"])
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
            "metadata": _metadata_update({}, p.get("metadata")),
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

    # ---- totals
    def recalc(self, inv: dict) -> None:
        """Compute line and invoice totals as Stripe does (per-line rounding, half up)."""
        st = self.store
        items = [st.get("invoiceitem", i) for i in inv["_items"]]
        cur = inv["currency"]
        disc_totals: dict[str, int] = {}
        tax_totals: dict[tuple[str, str], list[int]] = {}
        subtotal = inv_disc_total = excl_tax = incl_tax = 0
        line_after: list[int] = []
        line_discounts: list[list[dict]] = []
        # 1. line-level discounts
        for item in items:
            remaining = item["amount"]
            amounts = []
            for did in item["discounts"]:
                off = self._discount_off(did, remaining, cur)
                remaining -= off
                amounts.append({"amount": off, "discount": did})
            line_after.append(remaining)
            line_discounts.append(amounts)
        subtotal = sum(line_after)
        # 2. invoice-level discounts, prorated over discountable lines
        for did in inv["discounts"]:
            idx = [i for i, it in enumerate(items) if it["discountable"] and line_after[i] > 0]
            base = sum(line_after[i] for i in idx)
            coupon = self._coupon_of(did)
            if not idx or base <= 0:
                continue
            if coupon["percent_off"] is not None:
                shares = {
                    i: money.round_half_up(line_after[i] * Decimal(coupon["_pct"]) / 100)
                    for i in idx
                }
            else:
                total_off = min(coupon["amount_off"], base)
                shares, given = {}, 0
                for n, i in enumerate(idx):
                    if n == len(idx) - 1:
                        shares[i] = total_off - given
                    else:
                        shares[i] = money.round_half_up(Decimal(total_off) * line_after[i] / base)
                        given += shares[i]
            for i, off in shares.items():
                off = min(off, line_after[i])
                line_after[i] -= off
                line_discounts[i].append({"amount": off, "discount": did})
                inv_disc_total += off
        # 3. taxes per line on the discounted amount
        for n, item in enumerate(items):
            taxable = line_after[n]
            rate_ids = item["tax_rates"] or inv["default_tax_rates"]
            rates = [st.get("tax_rate", r) for r in rate_ids]
            taxes = []
            incl = [r for r in rates if r["inclusive"]]
            excl = [r for r in rates if not r["inclusive"]]
            net = taxable
            if incl:
                total_pct = sum(Decimal(r["_pct"]) for r in incl)
                net = money.round_half_up(Decimal(taxable) * 100 / (100 + total_pct))
                contained = taxable - net
                given = 0
                for k, r in enumerate(incl):
                    if k == len(incl) - 1:
                        amt = contained - given
                    else:
                        amt = money.round_half_up(Decimal(net) * Decimal(r["_pct"]) / 100)
                        given += amt
                    taxes.append(_tax_entry(amt, "inclusive", r["id"], net))
                    incl_tax += amt
            for r in excl:
                amt = money.round_half_up(Decimal(net) * Decimal(r["_pct"]) / 100)
                taxes.append(_tax_entry(amt, "exclusive", r["id"], net))
                excl_tax += amt
            for t in taxes:
                key = (t["tax_rate_details"]["tax_rate"], t["tax_behavior"])
                acc = tax_totals.setdefault(key, [0, 0])
                acc[0] += t["amount"]
                acc[1] += t["taxable_amount"]
            for d in line_discounts[n]:
                disc_totals[d["discount"]] = disc_totals.get(d["discount"], 0) + d["amount"]
            item["net_amount"] = line_after[n]
            item["_calc"] = {"discount_amounts": line_discounts[n], "taxes": taxes}
        gross = sum(it["amount"] for it in items)
        total_disc = sum(disc_totals.values())
        total = gross - total_disc + excl_tax
        inv["subtotal"] = subtotal
        inv["subtotal_excluding_tax"] = subtotal - incl_tax
        inv["total"] = total
        inv["total_excluding_tax"] = total - excl_tax - incl_tax
        inv["total_discount_amounts"] = [
            {"amount": a, "discount": d} for d, a in disc_totals.items()
        ]
        inv["total_pretax_credit_amounts"] = [
            {"amount": a, "credit_balance_transaction": None, "discount": d, "type": "discount"}
            for d, a in disc_totals.items()
        ]
        inv["total_taxes"] = [
            _tax_entry(a[0], behavior, rid, a[1]) for (rid, behavior), a in tax_totals.items()
        ]
        inv["_incl_tax"] = incl_tax
        inv["_excl_tax"] = excl_tax
        self._recalc_amounts(inv)

    def _recalc_amounts(self, inv: dict) -> None:
        due = inv["total"] + inv["_balance_applied"] - inv["pre_payment_credit_notes_amount"]
        inv["amount_due"] = max(0, due)
        if inv["status"] == "paid":
            inv["amount_remaining"] = 0
        else:
            inv["amount_remaining"] = max(0, inv["amount_due"] - inv["amount_paid"])
        inv["amount_overpaid"] = max(0, inv["amount_paid"] - inv["amount_due"])

    def _coupon_of(self, discount_id: str) -> dict:
        disc = self.store.get("discount", discount_id)
        return self.store.get("coupon", disc["source"]["coupon"])

    def _discount_off(self, discount_id: str, amount: int, currency: str) -> int:
        if amount <= 0:
            return 0
        coupon = self._coupon_of(discount_id)
        if coupon["percent_off"] is not None:
            return min(amount, money.round_half_up(amount * Decimal(coupon["_pct"]) / 100))
        return min(amount, coupon["amount_off"])

    def _invoice_lines_list(self, inv: dict) -> dict:
        """The invoice embeds its first 10 lines only (has_more tells there are more:
        page through /v1/invoices/{id}/lines), as Stripe does."""
        ids = inv["_items"]
        lines = [self.render_line(self.store.get("invoiceitem", i), inv) for i in ids[:10]]
        return self._list_body(lines, f"/v1/invoices/{inv['id']}/lines", len(ids) > 10)

    def render_line(self, item: dict, inv: dict, expand=None) -> dict:
        calc = item.get("_calc", {"discount_amounts": [], "taxes": []})
        return {
            "id": item["_line_id"],
            "object": "line_item",
            "amount": item["amount"],
            "currency": item["currency"],
            "description": item["description"],
            "discount_amounts": calc["discount_amounts"],
            "discountable": item["discountable"],
            "discounts": list(item["discounts"]),
            "invoice": inv["id"],
            "livemode": False,
            "metadata": dict(item["metadata"]),
            "parent": {
                "invoice_item_details": {
                    "invoice_item": item["id"],
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": None,
                },
                "subscription_item_details": None,
                "type": "invoice_item_details",
            },
            "period": dict(item["period"]),
            "pretax_credit_amounts": [
                {"amount": d["amount"], "credit_balance_transaction": None,
                 "discount": d["discount"], "type": "discount"}
                for d in calc["discount_amounts"]
            ],
            "pricing": public(item["pricing"]),
            "quantity": item["quantity"],
            "quantity_decimal": item["quantity_decimal"],
            "subscription": None,
            "subtotal": item["amount"],
            "taxes": calc["taxes"],
        }

    # ---- state transitions
    def finalize(self, inv: dict, p: dict | None = None) -> dict:
        if inv["status"] != "draft":
            raise invalid("This invoice is already finalized, you can't re-finalize a "
                          "non-draft invoice.")
        if inv["total"] > money.MAX_AMOUNT:
            raise invalid(
                f"The invoice total ({inv['total']}) is greater than the maximum amount "
                f"allowed ({money.MAX_AMOUNT}).", code="amount_too_large")
        before = self.render(inv)
        cust = self.get("customer", inv["customer"])
        now = self.now()
        inv["status"] = "open"
        inv["status_transitions"]["finalized_at"] = now
        inv["effective_at"] = now
        inv["number"] = f"{cust['invoice_prefix']}-{cust['next_invoice_sequence']:04d}"
        cust["next_invoice_sequence"] += 1
        if cust["currency"] is None:
            cust["currency"] = inv["currency"]
        token = inv["id"].split("_", 1)[1]
        inv["hosted_invoice_url"] = f"https://invoice.stripe.com/i/{ACCOUNT_ID}/test_{token}"
        inv["invoice_pdf"] = f"https://pay.stripe.com/invoice/{ACCOUNT_ID}/test_{token}/pdf"
        if p and "auto_advance" in p:
            inv["auto_advance"] = p["auto_advance"]
        if inv["collection_method"] == "send_invoice":
            if inv["_days_until_due"] is not None:
                inv["due_date"] = now + inv["_days_until_due"] * DAY
        elif inv["auto_advance"]:
            inv["next_payment_attempt"] = now + 3600
        # customer balance: a credit (negative balance) is applied to the invoice
        balance = cust["balance"]
        inv["starting_balance"] = balance
        total = inv["total"]
        if total <= 0:
            # nothing to collect; a negative total (credit lines) becomes customer credit
            applied = 0
            inv["ending_balance"] = balance + total
        else:
            # a credit (negative balance) reduces what is due; a debt is added to it
            applied = max(balance, -total) if balance < 0 else balance
            inv["ending_balance"] = balance - applied
        inv["_balance_applied"] = applied
        if balance != inv["ending_balance"]:
            cb = self.render(cust)
            cust["balance"] = inv["ending_balance"]
            self.emit_update("customer.updated", cust, cb)
        inv["webhooks_delivered_at"] = now
        self.recalc(inv)
        self.emit("invoice.finalized", inv)
        minimum = money.MINIMUM_CHARGE.get(inv["currency"], 0)
        if 0 < inv["amount_due"] < minimum:
            # Stripe: below the minimum charge amount, the invoice is marked paid and the
            # amount due is added to the customer's balance for the next invoice.
            cb = self.render(cust)
            cust["balance"] += inv["amount_due"]
            inv["ending_balance"] = cust["balance"]
            inv["_balance_applied"] -= inv["amount_due"]
            self._recalc_amounts(inv)
            self.emit_update("customer.updated", cust, cb)
        if inv["amount_due"] == 0:
            self._mark_paid(inv)
            self.emit("invoice.paid", inv)
        self.emit_update("invoice.updated", inv, before)
        return inv

    def send(self, inv: dict) -> dict:
        if inv["status"] == "draft":
            raise invalid("You can't send a draft invoice. Finalize the invoice first.")
        if inv["status"] == "void":
            raise invalid("You can't send a void invoice.")
        if inv["collection_method"] != "send_invoice":
            raise invalid("You can only manually send an invoice if its collection method is "
                          "'send_invoice'.")
        # Sent to the customer's address; one given to the customer after finalization counts.
        cust = self.store.get("customer", inv["customer"]) or {}
        if not (inv["customer_email"] or cust.get("email")):
            raise invalid("This invoice cannot be sent because the customer does not have an "
                          "email address.", code="email_invalid")
        self.emit("invoice.sent", inv)
        return inv

    def void(self, inv: dict) -> dict:
        if inv["status"] == "draft":
            raise invalid("You can't void a draft invoice. Delete the draft instead.")
        if inv["status"] not in ("open", "uncollectible"):
            raise invalid(f"You can only void open or uncollectible invoices; this invoice is "
                          f"{inv['status']}.")
        if inv["amount_paid"] > 0:
            raise invalid("You can't void an invoice that has been partially paid. Use a "
                          "credit note instead.")
        before = self.render(inv)
        inv["status"] = "void"
        inv["status_transitions"]["voided_at"] = self.now()
        inv["next_payment_attempt"] = None
        self._recalc_amounts(inv)
        self._restore_balance(inv)
        self.emit("invoice.voided", inv)
        self.emit_update("invoice.updated", inv, before)
        return inv

    def _restore_balance(self, inv: dict) -> None:
        if inv["_balance_applied"]:
            cust = self.store.get("customer", inv["customer"])
            if cust:
                cb = self.render(cust)
                cust["balance"] += inv["_balance_applied"]
                self.emit_update("customer.updated", cust, cb)

    def mark_uncollectible(self, inv: dict) -> dict:
        if inv["status"] != "open":
            raise invalid(f"You can only mark open invoices as uncollectible; this invoice is "
                          f"{inv['status']}.")
        before = self.render(inv)
        inv["status"] = "uncollectible"
        inv["status_transitions"]["marked_uncollectible_at"] = self.now()
        inv["next_payment_attempt"] = None
        self.emit("invoice.marked_uncollectible", inv)
        self.emit_update("invoice.updated", inv, before)
        return inv

    def delete_invoice(self, inv: dict) -> dict:
        if inv["status"] != "draft":
            raise invalid("You can only delete draft invoices. Void finalized invoices "
                          "instead.")
        # The event renders the invoice with its lines: emit it before they are gone.
        self.emit("invoice.deleted", inv)
        for iid in inv["_items"]:
            self.store.delete("invoiceitem", iid)
        self.store.delete("invoice", inv["id"])
        return {"id": inv["id"], "object": "invoice", "deleted": True}

    def delete_invoiceitem(self, item: dict) -> dict:
        if item["invoice"]:
            inv = self.store.get("invoice", item["invoice"])
            self._require_draft(inv, "remove invoice items from")
            before = self.render(inv)
            inv["_items"].remove(item["id"])
            self.store.delete("invoiceitem", item["id"])
            self.recalc(inv)
            self.emit_update("invoice.updated", inv, before)
        else:
            self.store.delete("invoiceitem", item["id"])
        self.emit("invoiceitem.deleted", item)
        return {"id": item["id"], "object": "invoiceitem", "deleted": True}

    def _mark_paid(self, inv: dict) -> None:
        inv["status"] = "paid"
        inv["status_transitions"]["paid_at"] = self.now()
        inv["next_payment_attempt"] = None
        self._recalc_amounts(inv)

    # ---- payments
    def pay(self, inv: dict, p: dict) -> dict:
        if inv["status"] == "paid":
            raise invalid("Invoice is already paid.")
        if inv["status"] == "void":
            raise invalid("This invoice is void and can no longer be paid.")
        if inv["status"] == "draft":
            self.finalize(inv)
            if inv["status"] == "paid":
                return inv
        if p.get("paid_out_of_band"):
            if "payment_method" in p or "source" in p:
                raise invalid("You cannot pass `payment_method` when `paid_out_of_band` is "
                              "true.", param="paid_out_of_band")
            before = self.render(inv)
            inv["amount_paid"] = inv["amount_due"]
            self._mark_paid(inv)
            self.emit("invoice.paid", inv)
            self.emit_update("invoice.updated", inv, before)
            return inv
        cust = self.get("customer", inv["customer"])
        pm = (p.get("payment_method") or inv["default_payment_method"]
              or cust["invoice_settings"]["default_payment_method"])
        if not pm:
            raise StripeError("Cannot charge a customer that has no active card",
                              status=402, type="card_error", code="missing", param="card")
        self._check_payment_method(pm, "payment_method")
        amount = inv["amount_remaining"]
        ok = self.charge_invoice(inv, amount, pm)
        if not ok:
            raise StripeError("Your card was declined.", status=402, type="card_error",
                              code="card_declined", decline_code=DECLINE_TOKENS[pm],
                              param="payment_method", keep_changes=True)
        return inv

    def charge_invoice(self, inv: dict, amount: int, pm: str = "pm_card_visa") -> bool:
        """A payment attempt on an open invoice (API /pay, or the customer paying)."""
        if inv["status"] not in ("open", "uncollectible"):
            raise invalid(f"Invoice {inv['id']} is {inv['status']} and cannot be paid.")
        if amount <= 0 or amount > inv["amount_remaining"]:
            raise invalid(f"The payment amount must be between 1 and the amount remaining "
                          f"({inv['amount_remaining']}).", param="amount")
        money.check_amount(amount, inv["currency"], "amount")
        money.check_charge_amount(amount, inv["currency"])
        st = self.store
        now = self.now()
        before = self.render(inv)
        failed = pm in DECLINE_TOKENS
        pi_id = st.new_id("pi")
        pi = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0 if failed else amount,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{pi_id}_secret_{secrets.token_hex(12)}",
            "confirmation_method": "automatic",
            "created": now,
            "currency": inv["currency"],
            "customer": inv["customer"],
            "customer_account": None,
            "description": f"Payment for Invoice {inv['number']}",
            "excluded_payment_method_types": None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": {},
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": f"pm_{pi_id[3:]}",
            "payment_method_configuration_details": None,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": None,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "requires_payment_method" if failed else "succeeded",
            "transfer_data": None,
            "transfer_group": None,
            "managed_payments": {"enabled": False},
        }
        st.add("payment_intent", pi)
        ch_id = st.new_id("ch")
        ch = {
            "id": ch_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": 0 if failed else amount,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": None if failed else st.new_id("txn"),
            "billing_details": {"address": dict(ADDRESS_NULL), "email": None, "name": None,
                                "phone": None, "tax_id": None},
            "calculated_statement_descriptor": "BILLING DESK",
            "captured": not failed,
            "created": now,
            "currency": inv["currency"],
            "customer": inv["customer"],
            "description": pi["description"],
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": "card_declined" if failed else None,
            "failure_message": "Your card was declined." if failed else None,
            "fraud_details": {},
            "livemode": False,
            "metadata": {},
            "on_behalf_of": None,
            "outcome": {
                "advice_code": None, "network_advice_code": None, "network_decline_code": None,
                "network_status": "declined_by_network" if failed else "approved_by_network",
                "reason": DECLINE_TOKENS.get(pm),
                "seller_message": "The bank did not return any further details with this "
                "decline." if failed else "Payment complete.",
                "type": "issuer_declined" if failed else "authorized",
            },
            "paid": not failed,
            "payment_intent": pi_id,
            "payment_method": pi["payment_method"],
            "payment_method_details": {"card": _card_details(amount, failed),
                                       "type": "card"},
            "receipt_email": None,
            "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/payment/test_{ch_id[3:]}",
            "refunded": False,
            "review": None,
            "shipping": None,
            "source": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "failed" if failed else "succeeded",
            "transfer_data": None,
            "transfer_group": None,
            "_refunds": [],
        }
        st.add("charge", ch)
        pi["latest_charge"] = ch_id
        inv["attempted"] = True
        inv["attempt_count"] += 1
        self.emit("payment_intent.created", pi)
        if failed:
            pi["last_payment_error"] = {
                "charge": ch_id, "code": "card_declined", "decline_code": DECLINE_TOKENS[pm],
                "message": "Your card was declined.", "type": "card_error",
            }
            self.emit("charge.failed", ch)
            self.emit("payment_intent.payment_failed", pi)
            if inv["collection_method"] == "charge_automatically":
                inv["next_payment_attempt"] = now + 3 * DAY
            self.emit("invoice.payment_failed", inv)
            self.emit_update("invoice.updated", inv, before)
            return False
        ip = {
            "id": st.new_id("inpay"),
            "object": "invoice_payment",
            "amount_paid": amount,
            "amount_requested": amount,
            "created": now,
            "currency": inv["currency"],
            "invoice": inv["id"],
            "is_default": not inv["_payments"],
            "livemode": False,
            "payment": {"payment_intent": pi_id, "type": "payment_intent"},
            "status": "paid",
            "status_transitions": {"canceled_at": None, "paid_at": now},
        }
        st.add("invoice_payment", ip)
        inv["_payments"].append(ip["id"])
        inv["amount_paid"] += amount
        self.emit("charge.succeeded", ch)
        self.emit("payment_intent.succeeded", pi)
        self._recalc_amounts(inv)
        self.emit("invoice_payment.paid", ip)
        if inv["amount_remaining"] == 0:
            self._mark_paid(inv)
            self.emit("invoice.paid", inv)
            self.emit("invoice.payment_succeeded", inv)
        self.emit_update("invoice.updated", inv, before)
        return True

    # ---- refunds
    def create_refund(self, p: dict) -> dict:
        st = self.store
        if "charge" in p and "payment_intent" in p:
            raise invalid("You may only specify one of these parameters: charge, "
                          "payment_intent.", param="payment_intent")
        if "charge" in p:
            ch = self.get("charge", p["charge"], param="charge")
        elif "payment_intent" in p:
            pi = self.get("payment_intent", p["payment_intent"], param="payment_intent")
            if pi["status"] != "succeeded":
                raise invalid(f"This PaymentIntent ({pi['id']}) does not have a successful "
                              "charge to refund.", param="payment_intent")
            ch = st.get("charge", pi["latest_charge"])
        else:
            raise invalid("One of the following params should be provided for this request: "
                          "payment_intent or charge.", code="parameter_missing")
        if ch["status"] != "succeeded":
            raise invalid(f"Charge {ch['id']} has not succeeded and cannot be refunded.")
        left = ch["amount"] - ch["amount_refunded"]
        if left == 0:
            raise invalid(f"Charge {ch['id']} has already been refunded.",
                          code="charge_already_refunded")
        amount = p.get("amount", left)
        if amount <= 0:
            raise param_invalid("amount", "Refund amount must be positive.",
                                "parameter_invalid_integer")
        if amount > left:
            cur = ch["currency"]
            raise invalid(
                f"Refund amount ({money.format_major(amount, cur)}) is greater than unrefunded "
                f"amount on charge ({money.format_major(left, cur)})", param="amount",
                code="amount_too_large")
        money.check_amount(amount, ch["currency"], "amount")
        return self._refund(ch, amount, p.get("reason"), p.get("metadata"))

    def _refund(self, ch: dict, amount: int, reason=None, metadata=None) -> dict:
        st = self.store
        before = self.render(ch)
        ref = {
            "id": st.new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": st.new_id("txn"),
            "charge": ch["id"],
            "created": self.now(),
            "currency": ch["currency"],
            "customer": ch["customer"],
            "customer_account": None,
            "destination_details": {"card": {"type": "refund"}, "type": "card"},
            "metadata": _metadata_update({}, metadata),
            "payment_intent": ch["payment_intent"],
            "payment_method": ch["payment_method"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        st.add("refund", ref)
        ch["_refunds"].append(ref["id"])
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] == ch["amount"]
        self.emit("refund.created", ref)
        self.emit("charge.refunded", ch, {k: v for k, v in before.items()
                                          if k in ("amount_refunded", "refunded", "refunds")})
        return ref

    # ---- credit notes
    def create_credit_note(self, p: dict) -> dict:
        st = self.store
        inv = self.get("invoice", p.get("invoice"), param="invoice")
        if inv["status"] == "draft":
            raise invalid("You can't create a credit note for a draft invoice. Finalize the "
                          "invoice first, or edit the draft.", param="invoice")
        if inv["status"] == "void":
            raise invalid("You can't create a credit note for a void invoice.", param="invoice")
        cur = inv["currency"]
        cn_id = st.new_id("cn")
        lines_out: list[dict] = []
        subtotal = excl_tax = incl_tax = 0
        tax_acc: dict[tuple[str, str], list[int]] = {}
        for i, line in enumerate(p.get("lines") or []):
            pre = f"lines[{i}]"
            qty = line.get("quantity", 1)
            rate_ids: list[str]
            if line["type"] == "invoice_line_item":
                lid = line.get("invoice_line_item")
                if not lid:
                    raise param_missing(f"{pre}[invoice_line_item]")
                item = next((st.get("invoiceitem", x) for x in inv["_items"]
                             if st.get("invoiceitem", x)["_line_id"] == lid), None)
                if item is None:
                    raise missing("invoice line item", lid, f"{pre}[invoice_line_item]")
                if "amount" in line:
                    amount = line["amount"]
                else:
                    if item["quantity"] and qty > item["quantity"]:
                        raise invalid("The quantity to credit exceeds the quantity on the "
                                      "invoice line.", param=f"{pre}[quantity]")
                    net = item["net_amount"]
                    amount = money.round_half_up(Decimal(net) * qty / (item["quantity"] or 1))
                rate_ids = item["tax_rates"] or inv["default_tax_rates"]
                desc = item["description"]
                unit = None
            else:
                if "unit_amount" in line:
                    unit = Decimal(line["unit_amount"])
                elif "unit_amount_decimal" in line:
                    unit = money.to_decimal(line["unit_amount_decimal"],
                                            f"{pre}[unit_amount_decimal]")
                else:
                    raise param_missing(f"{pre}[unit_amount]")
                amount = money.round_half_up(unit * qty)
                rate_ids = self._tax_rate_ids(line.get("tax_rates"), f"{pre}[tax_rates]")
                desc = line.get("description")
                lid = None
            money.check_amount(amount, cur, f"{pre}[amount]")
            rates = [st.get("tax_rate", r) for r in rate_ids]
            taxes = []
            incl = [r for r in rates if r["inclusive"]]
            net = amount
            if incl:
                pct = sum(Decimal(r["_pct"]) for r in incl)
                net = money.round_half_up(Decimal(amount) * 100 / (100 + pct))
                contained, given = amount - net, 0
                for k, r in enumerate(incl):
                    amt = contained - given if k == len(incl) - 1 else money.round_half_up(
                        Decimal(net) * Decimal(r["_pct"]) / 100)
                    given += amt
                    taxes.append(_tax_entry(amt, "inclusive", r["id"], net))
                    incl_tax += amt
            for r in rates:
                if not r["inclusive"]:
                    amt = money.round_half_up(Decimal(net) * Decimal(r["_pct"]) / 100)
                    taxes.append(_tax_entry(amt, "exclusive", r["id"], net))
                    excl_tax += amt
            for t in taxes:
                acc = tax_acc.setdefault((t["tax_rate_details"]["tax_rate"], t["tax_behavior"]),
                                         [0, 0])
                acc[0] += t["amount"]
                acc[1] += t["taxable_amount"]
            subtotal += amount
            lines_out.append({
                "id": st.new_id("cnli"),
                "object": "credit_note_line_item",
                "amount": amount,
                "description": desc,
                "discount_amount": 0,
                "discount_amounts": [],
                "invoice_line_item": lid,
                "livemode": False,
                "metadata": line.get("metadata") or {},
                "pretax_credit_amounts": [],
                "quantity": qty,
                "tax_rates": [self.render(r) for r in rates],
                "taxes": taxes,
                "type": line["type"],
                "unit_amount": int(unit) if unit is not None else None,
                "unit_amount_decimal": money.decimal_str(unit) if unit is not None else None,
            })
        if "amount" in p:
            if lines_out:
                total = subtotal + excl_tax
                if p["amount"] != total:
                    raise invalid(f"The amount ({p['amount']}) must equal the sum of the credit "
                                  f"note lines ({total}).", param="amount")
            else:
                money.check_amount(p["amount"], cur, "amount")
                subtotal = p["amount"]
        if not lines_out and "amount" not in p:
            raise invalid("You must pass either `amount` or `lines` to create a credit note.",
                          param="lines", code="parameter_missing")
        total = subtotal + excl_tax
        if total <= 0:
            raise invalid("The credit note total must be greater than 0.", param="amount")
        credited = sum(st.get("credit_note", c)["total"] for c in inv.get("_credit_notes", [])
                       if st.get("credit_note", c)["status"] == "issued")
        creditable = inv["total"] - credited
        if total > creditable:
            raise invalid(
                f"The credit note total ({total}) exceeds the amount of the invoice that can "
                f"still be credited ({creditable}).", param="amount")
        # split between pre-payment (reduces what is still owed) and post-payment
        pre_amt = min(total, inv["amount_remaining"]) if inv["status"] in (
            "open", "uncollectible") else 0
        post_amt = total - pre_amt
        refund_amount = p.get("refund_amount", 0)
        credit_amount = p.get("credit_amount", 0)
        oob_amount = p.get("out_of_band_amount", 0)
        refunds_param = p.get("refunds") or []
        if refunds_param:
            refund_amount += sum(r.get("amount_refunded", 0) for r in refunds_param)
        if post_amt and refund_amount + credit_amount + oob_amount != post_amt:
            raise invalid(
                f"The sum of credit amount, refund amount and out of band amount "
                f"({refund_amount + credit_amount + oob_amount}) must equal the credit note "
                f"post-payment amount ({post_amt}).", param="refund_amount")
        if not post_amt and (refund_amount or credit_amount or oob_amount):
            raise invalid("You can only refund or credit amounts that have been paid; this "
                          "credit note only reduces the amount due.", param="refund_amount")
        before = self.render(inv)
        refunds_out = []
        if refund_amount:
            left = refund_amount
            for ip_id in inv["_payments"]:
                ip = st.get("invoice_payment", ip_id)
                pi = st.get("payment_intent", ip["payment"]["payment_intent"])
                ch = st.get("charge", pi["latest_charge"])
                room = ch["amount"] - ch["amount_refunded"]
                take = min(room, left)
                if take > 0:
                    ref = self._refund(ch, take)
                    refunds_out.append({"amount_refunded": take, "refund": ref["id"],
                                        "payment_record_refund": None, "type": "refund"})
                    left -= take
                if left == 0:
                    break
            if left:
                raise invalid("The refund amount exceeds what was paid on this invoice.",
                              param="refund_amount")
        cust = st.get("customer", inv["customer"])
        if credit_amount and cust:
            cb = self.render(cust)
            cust["balance"] -= credit_amount
            self.emit_update("customer.updated", cust, cb)
        seq = len(inv.setdefault("_credit_notes", [])) + 1
        cn = {
            "id": cn_id,
            "object": "credit_note",
            "amount": total,
            "amount_shipping": 0,
            "created": self.now(),
            "currency": cur,
            "customer": inv["customer"],
            "customer_account": None,
            "customer_balance_transaction": st.new_id("cbtxn") if credit_amount else None,
            "discount_amount": 0,
            "discount_amounts": [],
            "effective_at": p.get("effective_at", self.now()),
            "invoice": inv["id"],
            "lines": self._list_body(lines_out, f"/v1/credit_notes/{cn_id}/lines"),
            "livemode": False,
            "memo": p.get("memo"),
            "metadata": _metadata_update({}, p.get("metadata")),
            "number": f"{inv['number']}-CN-{seq:02d}",
            "out_of_band_amount": oob_amount or None,
            "pdf": f"https://pay.stripe.com/credit_notes/{ACCOUNT_ID}/test_{cn_id[3:]}/pdf",
            "post_payment_amount": post_amt,
            "pre_payment_amount": pre_amt,
            "pretax_credit_amounts": [],
            "reason": p.get("reason"),
            "refunds": refunds_out,
            "shipping_cost": None,
            "status": "issued",
            "subtotal": subtotal,
            "subtotal_excluding_tax": subtotal - incl_tax,
            "total": total,
            "total_excluding_tax": total - excl_tax - incl_tax,
            "total_taxes": [_tax_entry(a[0], b, r, a[1]) for (r, b), a in tax_acc.items()],
            "type": "pre_payment" if not post_amt else (
                "post_payment" if not pre_amt else "mixed"),
            "voided_at": None,
            "_credit_amount": credit_amount,
        }
        st.add("credit_note", cn)
        inv["_credit_notes"].append(cn_id)
        inv["pre_payment_credit_notes_amount"] += pre_amt
        inv["post_payment_credit_notes_amount"] += post_amt
        self._recalc_amounts(inv)
        self.emit("credit_note.created", cn)
        if inv["status"] in ("open", "uncollectible") and inv["amount_remaining"] == 0:
            self._mark_paid(inv)
            self.emit("invoice.paid", inv)
        self.emit_update("invoice.updated", inv, before)
        return cn

    def void_credit_note(self, cn: dict) -> dict:
        if cn["status"] == "void":
            raise invalid(f"Credit note {cn['id']} is already void.")
        inv = self.get("invoice", cn["invoice"])
        if cn["refunds"]:
            raise invalid("You can't void a credit note that refunded a payment.")
        if cn["pre_payment_amount"] and inv["status"] == "paid" and inv["amount_paid"] < (
                inv["total"]):
            raise invalid("You can't void this credit note: the invoice it reduced is now "
                          "paid.")
        before = self.render(inv)
        cn["status"] = "void"
        cn["voided_at"] = self.now()
        inv["pre_payment_credit_notes_amount"] -= cn["pre_payment_amount"]
        inv["post_payment_credit_notes_amount"] -= cn["post_payment_amount"]
        if cn["_credit_amount"]:
            cust = self.store.get("customer", inv["customer"])
            if cust:
                cb = self.render(cust)
                cust["balance"] += cn["_credit_amount"]
                self.emit_update("customer.updated", cust, cb)
        self._recalc_amounts(inv)
        self.emit("credit_note.voided", cn)
        self.emit_update("invoice.updated", inv, before)
        return cn

    # ------------------------------------------------------------------ webhooks
    def create_webhook_endpoint(self, p: dict) -> dict:
        url = p["url"]
        if p.get("api_version") not in (None, "2026-10-28.endive"):
            raise invalid(
                f"The Stripe sandbox only renders events in API version 2026-10-28.endive, "
                f"not {p['api_version']}.", param="api_version")
        if not url.startswith(("http://", "https://")):
            raise invalid("Invalid URL: URL must be publicly accessible and use http(s).",
                          param="url", code="url_invalid")
        ep = {
            "id": self.store.new_id("we"),
            "object": "webhook_endpoint",
            "api_version": p.get("api_version"),
            "application": None,
            "created": self.now(),
            "description": p.get("description") or None,
            "enabled_events": list(p["enabled_events"]),
            "livemode": False,
            "metadata": _metadata_update({}, p.get("metadata")),
            "status": "enabled",
            "url": url,
            "_secret": "whsec_" + secrets.token_hex(24),
        }
        self.store.add("webhook_endpoint", ep)
        return ep

    # ------------------------------------------------------------------ clock
    def tick(self) -> None:
        """Emit invoice.overdue for open invoices whose due date the clock has passed."""
        now = self.now()
        with self.store.lock:
            for inv in self.store.all("invoice")[::-1]:
                if (inv["status"] == "open" and inv["due_date"] and inv["due_date"] < now
                        and not inv["_overdue_sent"]):
                    inv["_overdue_sent"] = True
                    self.emit("invoice.overdue", inv)

    def advance_clock(self, seconds: int) -> int:
        with self.store.lock:
            self.settings.clock.advance(seconds)
            self.tick()
            self.flush_outbox()
            self.store.save()
        return self.now()

    # ------------------------------------------------------------------ rate limiting
    def over_rate_limit(self, key: str, limit: int | None = None) -> bool:
        if limit is None:
            limit = self.settings.rate_limit_per_second
        if not limit or limit <= 0:
            return False
        now = time.monotonic()
        with self.store.lock:
            window = self.rate_window.setdefault(key, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                return True
            window.append(now)
            return False


class _Transaction:
    def __init__(self, sandbox: StripeSandbox) -> None:
        self.sb = sandbox

    def __enter__(self):
        self.sb.store.lock.acquire()
        self.sb.store.begin()
        self.outbox_len = len(self.sb._outbox)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        store = self.sb.store
        try:
            if exc is not None and not getattr(exc, "keep_changes", False):
                store.rollback()
                del self.sb._outbox[self.outbox_len:]
            else:
                store.commit()
                if store._depth == 0:
                    self.sb.flush_outbox()
        finally:
            store.lock.release()
        return False


def _card_details(amount: int, failed: bool) -> dict:
    return {
        "amount_authorized": None if failed else amount,
        "authorization_code": None if failed else "123456",
        "brand": "visa",
        "checks": {"address_line1_check": None, "address_postal_code_check": None,
                   "cvc_check": "pass"},
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": "SandboxFp4242abcd",
        "funding": "credit",
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": "4242",
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": "visa",
        "network_token": {"used": False},
        "network_transaction_id": None if failed else "123456789012345",
        "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
        "regulated_status": "unregulated",
        "three_d_secure": None,
        "transaction_link_id": None,
        "wallet": None,
    }


def _tax_entry(amount: int, behavior: str, rate_id: str, taxable: int) -> dict:
    return {
        "amount": amount,
        "tax_behavior": behavior,
        "tax_rate_details": {"tax_rate": rate_id},
        "taxability_reason": "standard_rated",
        "taxable_amount": taxable,
        "type": "tax_rate_details",
    }


def _created_match(created: int, flt) -> bool:
    if isinstance(flt, int):
        return created == flt
    ops = {"gt": created.__gt__, "gte": created.__ge__, "lt": created.__lt__,
           "lte": created.__le__}
    return all(ops[k](v) for k, v in flt.items())


def _parse_search(query: str) -> tuple[list[tuple[str, str, str]], str]:
    """Parse Stripe's search query language (a subset): field:'v', field~'v',
    metadata['k']:'v', joined by AND or OR (not mixed)."""
    import re

    if not query or not query.strip():
        raise invalid("The `query` parameter is required.", param="query",
                      code="parameter_missing")
    has_and = re.search(r"\sAND\s", query) is not None
    has_or = re.search(r"\sOR\s", query) is not None
    if has_and and has_or:
        raise invalid("Queries cannot mix AND and OR.", param="query")
    joiner = "OR" if has_or else "AND"
    parts = re.split(r"\s(?:AND|OR)\s", query.strip())
    clause_re = re.compile(
        r"""^\s*(metadata\[(['"])(.+?)\2\]|[a-z_]+)\s*([:~])\s*(['"])(.*?)\5\s*$""")
    clauses = []
    for part in parts:
        m = clause_re.match(part)
        if not m:
            raise invalid(f"The query `{query}` is invalid: could not parse `{part.strip()}`.",
                          param="query")
        field = f"metadata.{m.group(3)}" if m.group(3) else m.group(1)
        if not field.startswith("metadata.") and field not in (
                "email", "name", "phone", "created"):
            raise invalid(f"Field `{field}` is an unsupported search field for customers.",
                          param="query")
        clauses.append((field, m.group(4), m.group(6)))
    return clauses, joiner


def _search_match(cust: dict, clause: tuple[str, str, str]) -> bool:
    field, op, value = clause
    if field.startswith("metadata."):
        actual = cust["metadata"].get(field[len("metadata."):])
    else:
        actual = cust.get(field)
    if actual is None:
        return False
    actual = str(actual)
    if op == "~":
        return value.lower() in actual.lower()
    return actual.lower() == value.lower() if field == "email" else actual == value
