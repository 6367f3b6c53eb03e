"""The /v1 endpoints. Each handler gets the sandbox, the validated params and path args,
and returns a Stripe-shaped body (status 200) or ``(status, body)``."""

from __future__ import annotations

from .common import created_match, metadata_update
from .errors import StripeError, invalid, missing

ROUTES: list[tuple[str, str, object]] = []


def route(method: str, rule: str, params_class: str | None = None):
    """Register a handler. ``params_class`` names the SDK params TypedDict to validate
    against when validation.py's endpoint table does not list this endpoint."""

    def deco(fn):
        fn.params_class = params_class
        ROUTES.append((method, rule, fn))
        return fn

    return deco


def _expand(p: dict) -> list[str]:
    return list(p.get("expand") or [])


def _one(sb, kind: str, obj_id: str, p: dict, label: str | None = None):
    return sb.render(sb.get(kind, obj_id, label), _expand(p))


def _filtered(sb, kind: str, p: dict, **filters):
    items = sb.store.all(kind)
    for key, value in filters.items():
        if value is not None:
            items = [o for o in items if o.get(key) == value]
    return items


# ---------------------------------------------------------------- customers
@route("POST", "/v1/customers")
def customers_create(sb, p):
    return sb.render(sb.create_customer(p), _expand(p))


@route("GET", "/v1/customers")
def customers_list(sb, p):
    items = sb.store.all("customer")
    if "email" in p:
        items = [c for c in items if (c["email"] or "").lower() == p["email"].lower()]
    return sb.list_page(items, p, "/v1/customers", _expand(p))


@route("GET", "/v1/customers/search")
def customers_search(sb, p):
    items = sb.search_customers(p.get("query", ""))
    limit = p.get("limit", 10)
    if not 1 <= limit <= 100:
        raise StripeError(f"Invalid integer: {limit}. This value must be between 1 and 100.",
                          param="limit", code="parameter_invalid_integer", saved=False)
    start = 0
    if p.get("page"):
        try:
            start = int(p["page"].rsplit("_", 1)[-1])
        except ValueError:
            raise invalid("Invalid page token.", param="page") from None
    page = items[start:start + limit]
    more = start + limit < len(items)
    sub = [x[5:] for x in _expand(p) if x.startswith("data.")]
    return {
        "object": "search_result",
        "data": [sb.render(c, sub) for c in page],
        "has_more": more,
        "next_page": f"page_{start + limit}" if more else None,
        "url": "/v1/customers/search",
    }


@route("GET", "/v1/customers/<customer>")
def customers_retrieve(sb, p, customer):
    return _one(sb, "customer", customer, p)


@route("POST", "/v1/customers/<customer>")
def customers_update(sb, p, customer):
    return sb.render(sb.update_customer(sb.get("customer", customer), p), _expand(p))


@route("DELETE", "/v1/customers/<customer>")
def customers_delete(sb, p, customer):
    return sb.delete_customer(sb.get("customer", customer))


# ---------------------------------------------------------------- products & prices
@route("POST", "/v1/products")
def products_create(sb, p):
    return sb.render(sb.create_product(p), _expand(p))


@route("GET", "/v1/products")
def products_list(sb, p):
    return sb.list_page(_filtered(sb, "product", p, active=p.get("active")), p, "/v1/products",
                        _expand(p))


@route("GET", "/v1/products/<product>")
def products_retrieve(sb, p, product):
    return _one(sb, "product", product, p)


def _simple_update(sb, obj: dict, p: dict, fields: tuple[str, ...], event: str):
    unsupported = sorted(set(p) - set(fields) - {"metadata", "expand"})
    if unsupported:
        raise invalid(f"The Stripe sandbox does not support updating `{unsupported[0]}`.",
                      param=unsupported[0])
    before = sb.render(obj)
    for key in fields:
        if key in p:
            obj[key] = p[key] if p[key] != "" else None
    if "metadata" in p:
        obj["metadata"] = metadata_update(obj["metadata"], p["metadata"])
    if "updated" in obj:
        obj["updated"] = sb.now()
    sb.emit_update(event, obj, before)
    return sb.render(obj, _expand(p))


@route("POST", "/v1/products/<product>")
def products_update(sb, p, product):
    return _simple_update(sb, sb.get("product", product), p,
                          ("name", "description", "active", "url", "unit_label",
                           "statement_descriptor", "default_price", "tax_code"),
                          "product.updated")


@route("POST", "/v1/prices")
def prices_create(sb, p):
    return sb.render(sb.create_price(p), _expand(p))


@route("GET", "/v1/prices")
def prices_list(sb, p):
    items = _filtered(sb, "price", p, product=p.get("product"), active=p.get("active"),
                      currency=p.get("currency"), type=p.get("type"))
    return sb.list_page(items, p, "/v1/prices", _expand(p))


@route("GET", "/v1/prices/<price>")
def prices_retrieve(sb, p, price):
    return _one(sb, "price", price, p)


@route("POST", "/v1/prices/<price>", "PriceUpdateParams")
def prices_update(sb, p, price):
    return _simple_update(sb, sb.get("price", price), p,
                          ("active", "nickname", "lookup_key", "tax_behavior"), "price.updated")


# ---------------------------------------------------------------- tax rates & coupons
@route("POST", "/v1/tax_rates")
def tax_rates_create(sb, p):
    return sb.render(sb.create_tax_rate(p), _expand(p))


@route("GET", "/v1/tax_rates")
def tax_rates_list(sb, p):
    items = _filtered(sb, "tax_rate", p, active=p.get("active"), inclusive=p.get("inclusive"))
    return sb.list_page(items, p, "/v1/tax_rates", _expand(p))


@route("GET", "/v1/tax_rates/<tax_rate>")
def tax_rates_retrieve(sb, p, tax_rate):
    return _one(sb, "tax_rate", tax_rate, p)


@route("POST", "/v1/tax_rates/<tax_rate>")
def tax_rates_update(sb, p, tax_rate):
    return _simple_update(sb, sb.get("tax_rate", tax_rate), p,
                          ("active", "display_name", "description", "country", "jurisdiction",
                           "state", "tax_type"), "tax_rate.updated")


@route("POST", "/v1/coupons")
def coupons_create(sb, p):
    return sb.render(sb.create_coupon(p), _expand(p))


@route("GET", "/v1/coupons")
def coupons_list(sb, p):
    return sb.list_page(sb.store.all("coupon"), p, "/v1/coupons", _expand(p))


@route("GET", "/v1/coupons/<coupon>")
def coupons_retrieve(sb, p, coupon):
    return _one(sb, "coupon", coupon, p)


@route("DELETE", "/v1/coupons/<coupon>", "CouponDeleteParams")
def coupons_delete(sb, p, coupon):
    c = sb.get("coupon", coupon)
    c["valid"] = False
    sb.store.delete("coupon", coupon)
    sb.emit("coupon.deleted", c)
    return {"id": coupon, "object": "coupon", "deleted": True}


# ---------------------------------------------------------------- invoices
@route("POST", "/v1/invoices")
def invoices_create(sb, p):
    return sb.render(sb.create_invoice(p), _expand(p))


@route("GET", "/v1/invoices")
def invoices_list(sb, p):
    items = _filtered(sb, "invoice", p, customer=p.get("customer"), status=p.get("status"),
                      collection_method=p.get("collection_method"))
    if "due_date" in p:
        items = [i for i in items if i["due_date"] and created_match(i["due_date"],
                                                                      p["due_date"])]
    return sb.list_page(items, p, "/v1/invoices", _expand(p))


def _invoice(sb, invoice):
    return sb.get("invoice", invoice)


@route("GET", "/v1/invoices/<invoice>")
def invoices_retrieve(sb, p, invoice):
    return _one(sb, "invoice", invoice, p)


@route("POST", "/v1/invoices/<invoice>")
def invoices_update(sb, p, invoice):
    return sb.render(sb.update_invoice(_invoice(sb, invoice), p), _expand(p))


@route("DELETE", "/v1/invoices/<invoice>")
def invoices_delete(sb, p, invoice):
    return sb.delete_invoice(_invoice(sb, invoice))


@route("POST", "/v1/invoices/<invoice>/add_lines")
def invoices_add_lines(sb, p, invoice):
    return sb.render(sb.add_lines(_invoice(sb, invoice), p), _expand(p))


@route("POST", "/v1/invoices/<invoice>/finalize")
def invoices_finalize(sb, p, invoice):
    return sb.render(sb.finalize(_invoice(sb, invoice), p), _expand(p))


@route("POST", "/v1/invoices/<invoice>/send")
def invoices_send(sb, p, invoice):
    return sb.render(sb.send(_invoice(sb, invoice)), _expand(p))


@route("POST", "/v1/invoices/<invoice>/pay")
def invoices_pay(sb, p, invoice):
    return sb.render(sb.pay(_invoice(sb, invoice), p), _expand(p))


@route("POST", "/v1/invoices/<invoice>/void")
def invoices_void(sb, p, invoice):
    return sb.render(sb.void(_invoice(sb, invoice)), _expand(p))


@route("POST", "/v1/invoices/<invoice>/mark_uncollectible")
def invoices_mark_uncollectible(sb, p, invoice):
    return sb.render(sb.mark_uncollectible(_invoice(sb, invoice)), _expand(p))


@route("GET", "/v1/invoices/<invoice>/lines")
def invoices_lines(sb, p, invoice):
    inv = _invoice(sb, invoice)
    # lines are listed in invoice order; cursors are line ids (il_...)
    rows = [{"id": it["_line_id"], "_item": it}
            for it in (sb.store.get("invoiceitem", i) for i in inv["_items"])]
    return sb.list_page(rows, p, f"/v1/invoices/{invoice}/lines",
                        render=lambda row, _e: sb.render_line(row["_item"], inv))


# ---------------------------------------------------------------- invoice items
@route("POST", "/v1/invoiceitems")
def invoiceitems_create(sb, p):
    return sb.render_item(sb.create_invoiceitem(p), _expand(p))


@route("GET", "/v1/invoiceitems")
def invoiceitems_list(sb, p):
    items = _filtered(sb, "invoiceitem", p, customer=p.get("customer"), invoice=p.get("invoice"))
    if p.get("pending") is True:
        items = [i for i in items if i["invoice"] is None]
    return sb.list_page(items, p, "/v1/invoiceitems", _expand(p), render=sb.render_item)


@route("GET", "/v1/invoiceitems/<invoiceitem>")
def invoiceitems_retrieve(sb, p, invoiceitem):
    return sb.render_item(sb.get("invoiceitem", invoiceitem), _expand(p))


@route("POST", "/v1/invoiceitems/<invoiceitem>")
def invoiceitems_update(sb, p, invoiceitem):
    item = sb.get("invoiceitem", invoiceitem)
    inv = sb.store.get("invoice", item["invoice"]) if item["invoice"] else None
    if inv:
        sb._require_draft(inv, "update invoice items on")
    unsupported = sorted(set(p) - {"description", "metadata", "expand", "discountable",
                                   "tax_rates"})
    if unsupported:
        raise invalid(f"The Stripe sandbox does not support updating `{unsupported[0]}` on "
                      "invoice items; delete the item and add a new one.",
                      param=unsupported[0])
    before_inv = sb.render(inv) if inv else None
    before = sb.render_item(item)
    if "description" in p:
        item["description"] = p["description"] or None
    if "metadata" in p:
        item["metadata"] = metadata_update(item["metadata"], p["metadata"])
    if "discountable" in p:
        item["discountable"] = p["discountable"]
    if "tax_rates" in p:
        item["tax_rates"] = sb._tax_rate_ids(p["tax_rates"], "tax_rates")
    after = sb.render_item(item)
    sb.emit("invoiceitem.updated", item,
            {k: v for k, v in before.items() if after.get(k) != v} or None)
    if inv:
        sb.recalc(inv)
        sb.emit_update("invoice.updated", inv, before_inv)
    return sb.render_item(item, _expand(p))


@route("DELETE", "/v1/invoiceitems/<invoiceitem>")
def invoiceitems_delete(sb, p, invoiceitem):
    return sb.delete_invoiceitem(sb.get("invoiceitem", invoiceitem))


# ---------------------------------------------------------------- credit notes
@route("POST", "/v1/credit_notes")
def credit_notes_create(sb, p):
    return sb.render(sb.create_credit_note(p), _expand(p))


@route("GET", "/v1/credit_notes")
def credit_notes_list(sb, p):
    items = _filtered(sb, "credit_note", p, invoice=p.get("invoice"), customer=p.get("customer"))
    return sb.list_page(items, p, "/v1/credit_notes", _expand(p))


@route("GET", "/v1/credit_notes/<credit_note>")
def credit_notes_retrieve(sb, p, credit_note):
    return _one(sb, "credit_note", credit_note, p)


@route("POST", "/v1/credit_notes/<credit_note>", "CreditNoteUpdateParams")
def credit_notes_update(sb, p, credit_note):
    return _simple_update(sb, sb.get("credit_note", credit_note), p, ("memo",),
                          "credit_note.updated")


@route("POST", "/v1/credit_notes/<credit_note>/void")
def credit_notes_void(sb, p, credit_note):
    return sb.render(sb.void_credit_note(sb.get("credit_note", credit_note)), _expand(p))


@route("GET", "/v1/credit_notes/<credit_note>/lines", "CreditNoteLineItemListParams")
def credit_notes_lines(sb, p, credit_note):
    cn = sb.get("credit_note", credit_note)
    rows = list(cn["lines"]["data"])
    return sb.list_page(rows, p, f"/v1/credit_notes/{credit_note}/lines",
                        render=lambda row, _e: dict(row))


# ---------------------------------------------------------------- payments
@route("POST", "/v1/refunds")
def refunds_create(sb, p):
    return sb.render(sb.create_refund(p), _expand(p))


@route("GET", "/v1/refunds")
def refunds_list(sb, p):
    items = _filtered(sb, "refund", p, charge=p.get("charge"),
                      payment_intent=p.get("payment_intent"))
    return sb.list_page(items, p, "/v1/refunds", _expand(p))


@route("GET", "/v1/refunds/<refund>")
def refunds_retrieve(sb, p, refund):
    return _one(sb, "refund", refund, p)


@route("GET", "/v1/charges")
def charges_list(sb, p):
    items = _filtered(sb, "charge", p, customer=p.get("customer"),
                      payment_intent=p.get("payment_intent"))
    return sb.list_page(items, p, "/v1/charges", _expand(p))


@route("GET", "/v1/charges/<charge>")
def charges_retrieve(sb, p, charge):
    return _one(sb, "charge", charge, p)


@route("GET", "/v1/payment_intents")
def payment_intents_list(sb, p):
    items = _filtered(sb, "payment_intent", p, customer=p.get("customer"))
    return sb.list_page(items, p, "/v1/payment_intents", _expand(p))


@route("GET", "/v1/payment_intents/<intent>")
def payment_intents_retrieve(sb, p, intent):
    return _one(sb, "payment_intent", intent, p)


@route("GET", "/v1/invoice_payments")
def invoice_payments_list(sb, p):
    items = _filtered(sb, "invoice_payment", p, invoice=p.get("invoice"),
                      status=p.get("status"))
    pay = p.get("payment")
    if pay and pay.get("payment_intent"):
        items = [i for i in items if i["payment"]["payment_intent"] == pay["payment_intent"]]
    return sb.list_page(items, p, "/v1/invoice_payments", _expand(p))


@route("GET", "/v1/invoice_payments/<invoice_payment>")
def invoice_payments_retrieve(sb, p, invoice_payment):
    return _one(sb, "invoice_payment", invoice_payment, p)


# ---------------------------------------------------------------- events
@route("GET", "/v1/events")
def events_list(sb, p):
    if "type" in p and "types" in p:
        raise invalid("You may only specify one of these parameters: type, types.",
                      param="types")
    types = p.get("types")
    if types is not None and len(types) > 20:
        raise invalid("You may pass at most 20 values for `types`.", param="types")
    oldest = sb.now() - sb.settings.event_retention_seconds
    items = [e for e in sb.store.all("event") if e["created"] >= oldest]
    if "type" in p:
        t = p["type"]
        if t.endswith(".*"):
            items = [e for e in items if e["type"].startswith(t[:-1])]
        else:
            items = [e for e in items if e["type"] == t]
    if types:
        items = [e for e in items if e["type"] in set(types)]
    if "delivery_success" in p:
        want = p["delivery_success"]
        items = [e for e in items if (e["pending_webhooks"] == 0) == want]
    return sb.list_page(items, p, "/v1/events", _expand(p))


@route("GET", "/v1/events/<event_id>")
def events_retrieve(sb, p, event_id):
    ev = sb.store.get("event", event_id)
    if ev is None or ev["created"] < sb.now() - sb.settings.event_retention_seconds:
        raise missing("event", event_id)
    return sb.render(ev, _expand(p))


# ---------------------------------------------------------------- webhook endpoints
@route("POST", "/v1/webhook_endpoints")
def webhook_endpoints_create(sb, p):
    ep = sb.create_webhook_endpoint(p)
    body = sb.render(ep, _expand(p))
    body["secret"] = ep["_secret"]  # returned on creation only
    return body


@route("GET", "/v1/webhook_endpoints")
def webhook_endpoints_list(sb, p):
    return sb.list_page(sb.store.all("webhook_endpoint"), p, "/v1/webhook_endpoints",
                        _expand(p))


@route("GET", "/v1/webhook_endpoints/<webhook_endpoint>")
def webhook_endpoints_retrieve(sb, p, webhook_endpoint):
    return _one(sb, "webhook_endpoint", webhook_endpoint, p)


@route("POST", "/v1/webhook_endpoints/<webhook_endpoint>")
def webhook_endpoints_update(sb, p, webhook_endpoint):
    ep = sb.get("webhook_endpoint", webhook_endpoint)
    if "disabled" in p:
        ep["status"] = "disabled" if p.pop("disabled") else "enabled"
    if "enabled_events" in p:
        ep["enabled_events"] = list(p.pop("enabled_events"))
    if "url" in p:
        ep["url"] = p.pop("url")
    if "description" in p:
        ep["description"] = p.pop("description") or None
    return _update_meta(sb, ep, p)


def _update_meta(sb, ep, p):
    if "metadata" in p:
        ep["metadata"] = metadata_update(ep["metadata"], p["metadata"])
    return sb.render(ep, _expand(p))


@route("DELETE", "/v1/webhook_endpoints/<webhook_endpoint>")
def webhook_endpoints_delete(sb, p, webhook_endpoint):
    sb.get("webhook_endpoint", webhook_endpoint)
    sb.store.delete("webhook_endpoint", webhook_endpoint)
    return {"id": webhook_endpoint, "object": "webhook_endpoint", "deleted": True}


# ---------------------------------------------------------------- account
ACCOUNT_NAME = "Billing Desk Sandbox GmbH"


@route("GET", "/v1/account", "AccountRetrieveCurrentParams")
def account_retrieve(sb, p):
    """The account the key belongs to, in Stripe's shape (the desk's "Test connection")."""
    created = 1767225600  # 2026-01-01, fixed: the sandbox account always existed
    return {
        "id": "acct_1SandboxBillingDesk",
        "object": "account",
        "business_profile": {
            "annual_revenue": None, "estimated_worker_count": None, "mcc": "5734",
            "minority_owned_business_designation": None, "name": ACCOUNT_NAME,
            "product_description": "Sandbox for Billing Desk", "support_address": None,
            "support_email": "billing@sandbox.example", "support_phone": None,
            "support_url": None, "url": None,
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "DE",
        "created": created,
        "default_currency": "eur",
        "details_submitted": True,
        "email": "billing@sandbox.example",
        "external_accounts": {"object": "list", "data": [], "has_more": False,
                              "url": "/v1/accounts/acct_1SandboxBillingDesk/external_accounts"},
        "future_requirements": None,
        "metadata": {},
        "payouts_enabled": True,
        "requirements": None,
        "settings": {
            "branding": {"icon": None, "logo": None, "primary_color": None,
                         "secondary_color": None},
            "dashboard": {"display_name": ACCOUNT_NAME, "timezone": "Europe/Berlin"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": None},
            "payments": {"statement_descriptor": "BILLINGDESK", "statement_descriptor_kana": None,
                         "statement_descriptor_kanji": None,
                         "statement_descriptor_prefix_kana": None,
                         "statement_descriptor_prefix_kanji": None},
        },
        "tos_acceptance": {"date": created, "ip": None, "user_agent": None},
        "type": "standard",
    }
