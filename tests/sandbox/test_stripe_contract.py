"""Contract tests: endpoints, auth, parameter strictness and response shapes, driven through
the official stripe SDK and plain HTTP."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import stripe

# A copy of shared/reference/stripe-fixtures3.json (Stripe's example objects).
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "stripe-fixtures3.json"


def _auth(sb):
    return {"Authorization": f"Bearer {sb.api_key}"}


# ---------------------------------------------------------------- auth and errors
def test_wrong_key_is_401_with_stripe_shape(stripe_sandbox):
    client = stripe.StripeClient("sk_test_wrong_1234", base_addresses={"api": stripe_sandbox.url},
                                 max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError) as exc:
        client.v1.customers.list()
    assert exc.value.http_status == 401
    err = exc.value.json_body["error"]
    assert err["type"] == "invalid_request_error"
    assert err["message"].startswith("Invalid API Key provided: sk_test_")
    assert "wrong_1234" not in err["message"] and err["message"].endswith("1234")


def test_missing_key_and_live_key_rejected(stripe_sandbox):
    r = requests.get(f"{stripe_sandbox.url}/v1/customers", timeout=10)
    assert r.status_code == 401
    assert "You did not provide an API key" in r.json()["error"]["message"]
    r = requests.get(f"{stripe_sandbox.url}/v1/customers", timeout=10,
                     headers={"Authorization": "Bearer sk_live_sandbox"})
    assert r.status_code == 401


def test_basic_auth_accepted(stripe_sandbox):
    r = requests.get(f"{stripe_sandbox.url}/v1/customers", auth=(stripe_sandbox.api_key, ""),
                     timeout=10)
    assert r.status_code == 200
    assert r.json() == {"object": "list", "data": [], "has_more": False, "url": "/v1/customers"}


def test_unknown_parameter_rejected(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.customers.create(params={"emial": "a@example.com"})  # type: ignore
    assert exc.value.http_status == 400
    assert exc.value.code == "parameter_unknown"
    assert exc.value.param == "emial"
    assert exc.value.json_body["error"]["doc_url"].endswith("/parameter-unknown")


def test_wrongly_typed_parameter_rejected(stripe_sandbox):
    r = requests.post(f"{stripe_sandbox.url}/v1/invoices", headers=_auth(stripe_sandbox),
                      data={"customer": "cus_x", "days_until_due": "ten"}, timeout=10)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "parameter_invalid_integer"
    assert err["param"] == "days_until_due"


def test_nested_unknown_parameter_rejected(stripe_client, stripe_sandbox):
    cus = stripe_client.v1.customers.create()
    inv = stripe_client.v1.invoices.create(params={"customer": cus.id})
    r = requests.post(f"{stripe_sandbox.url}/v1/invoices/{inv.id}/add_lines",
                      headers=_auth(stripe_sandbox), timeout=10,
                      data={"lines[0][amount]": "100", "lines[0][colour]": "red"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "parameter_unknown"
    assert r.json()["error"]["param"] == "lines[0][colour]"


def test_missing_object_is_404_resource_missing(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.invoices.retrieve("in_doesnotexist")
    assert exc.value.http_status == 404
    assert exc.value.code == "resource_missing"
    assert "No such invoice: 'in_doesnotexist'" in str(exc.value)


def test_unrecognized_url(stripe_sandbox):
    r = requests.get(f"{stripe_sandbox.url}/v1/nothing_here", headers=_auth(stripe_sandbox),
                     timeout=10)
    assert r.status_code == 404
    assert r.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nothing")


def test_response_headers(stripe_sandbox):
    r = requests.post(f"{stripe_sandbox.url}/v1/customers", headers=_auth(stripe_sandbox),
                      timeout=10)
    assert r.headers["Request-Id"].startswith("req_")
    assert r.headers["Stripe-Version"] == stripe._api_version._ApiVersion.CURRENT
    assert r.headers["Content-Type"].startswith("application/json")


# ---------------------------------------------------------------- customers
def test_customers_crud_list_and_search(stripe_client, stripe_sandbox):
    a = stripe_client.v1.customers.create(
        params={"email": "Ada@Example.com", "name": "Ada", "metadata": {"deal_id": "42"}})
    b = stripe_client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada 2"})
    stripe_client.v1.customers.create(params={"email": "bob@example.com"})
    assert a.id.startswith("cus_") and a.object == "customer" and a.livemode is False
    assert isinstance(a.created, int)
    assert stripe_client.v1.customers.retrieve(a.id).metadata.to_dict() == {"deal_id": "42"}

    # Stripe allows duplicates by email; list by email finds both, newest first
    found = stripe_client.v1.customers.list(params={"email": "ada@example.com"})
    assert [c.id for c in found.data] == [b.id, a.id]

    def search(query):
        res = stripe_client.v1.customers.search(params={"query": query})
        assert res.object == "search_result" and res.url == "/v1/customers/search"
        return [c.id for c in res.data]

    # Search is eventually consistent (not for read-after-write): nothing yet ...
    assert search("metadata['deal_id']:'42'") == []
    stripe_sandbox.advance_clock(seconds=61)
    # ... until the index caught up
    assert search("metadata['deal_id']:'42'") == [a.id]
    assert search("metadata['deal_id']:'43'") == []
    assert search("email:'ada@example.com' AND name:'Ada 2'") == [b.id]

    upd = stripe_client.v1.customers.update(a.id, params={"name": "Ada L", "metadata": {
        "deal_id": "", "crm": "pd"}})
    assert upd.name == "Ada L" and upd.metadata.to_dict() == {"crm": "pd"}
    assert search("metadata['deal_id']:'42'") == [a.id]  # the stale version, for now
    assert search("metadata['crm']:'pd'") == []
    stripe_sandbox.advance_clock(seconds=61)
    assert search("metadata['deal_id']:'42'") == []
    assert search("metadata['crm']:'pd'") == [a.id]

    deleted = stripe_client.v1.customers.delete(b.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.retrieve(b.id)


def test_search_rejects_bad_query(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.customers.search(params={"query": "metadata['a']:'1' AND x OR y"})
    assert exc.value.param == "query"


def test_list_cursors_and_limit(stripe_client):
    ids = [stripe_client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(5)]
    newest_first = ids[::-1]
    page1 = stripe_client.v1.customers.list(params={"limit": 2})
    assert [c.id for c in page1.data] == newest_first[:2] and page1.has_more
    page2 = stripe_client.v1.customers.list(
        params={"limit": 2, "starting_after": page1.data[-1].id})
    assert [c.id for c in page2.data] == newest_first[2:4] and page2.has_more
    page3 = stripe_client.v1.customers.list(
        params={"limit": 2, "starting_after": page2.data[-1].id})
    assert [c.id for c in page3.data] == newest_first[4:] and not page3.has_more
    back = stripe_client.v1.customers.list(params={"limit": 2, "ending_before": ids[1]})
    # the `limit` objects just newer than the cursor, still newest first
    assert [c.id for c in back.data] == newest_first[1:3] and back.has_more
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.customers.list(params={"limit": 101})
    assert exc.value.param == "limit"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.list(params={"limit": 0})


# ---------------------------------------------------------------- catalog
def test_products_prices_tax_rates(stripe_client):
    prod = stripe_client.v1.products.create(params={"name": "Consulting"})
    assert prod.id.startswith("prod_")
    price = stripe_client.v1.prices.create(
        params={"product": prod.id, "currency": "EUR", "unit_amount_decimal": "1234.5678"})
    assert price.id.startswith("price_") and price.currency == "eur"
    assert price.unit_amount is None and price.unit_amount_decimal == Decimal("1234.5678")
    assert price.type == "one_time"
    assert stripe_client.v1.prices.list(params={"product": prod.id}).data[0].id == price.id
    txr = stripe_client.v1.tax_rates.create(
        params={"display_name": "MwSt", "percentage": 19.0, "inclusive": True, "country": "DE"})
    assert txr.id.startswith("txr_") and txr.percentage == 19 and txr.inclusive is True
    assert stripe_client.v1.tax_rates.retrieve(txr.id).display_name == "MwSt"
    assert [t.id for t in stripe_client.v1.tax_rates.list().data] == [txr.id]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.tax_rates.create(params={"display_name": "x", "inclusive": False})


def test_invalid_currency_rejected(stripe_client):
    prod = stripe_client.v1.products.create(params={"name": "X"})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client.v1.prices.create(params={"product": prod.id, "currency": "xyz",
                                               "unit_amount": 100})
    assert exc.value.param == "currency"


def test_webhook_endpoints(stripe_client):
    we = stripe_client.v1.webhook_endpoints.create(
        params={"url": "https://desk.example/hooks", "enabled_events": ["invoice.paid"]})
    assert we.id.startswith("we_") and we.secret.startswith("whsec_")
    again = stripe_client.v1.webhook_endpoints.retrieve(we.id)
    assert "secret" not in again
    assert [w.id for w in stripe_client.v1.webhook_endpoints.list().data] == [we.id]
    assert stripe_client.v1.webhook_endpoints.delete(we.id).deleted is True
    assert stripe_client.v1.webhook_endpoints.list().data == []


# ---------------------------------------------------------------- shapes
def _norm_type(value):
    if isinstance(value, bool):
        return bool
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Decimal):  # the SDK parses decimal strings
        return str
    return type(value)


def _shape_diff(fixture, ours, path=""):
    problems = []
    for key in fixture:
        if key not in ours:
            problems.append(f"{path}{key}: missing")
    for key, fx in fixture.items():
        if key not in ours or fx is None or ours[key] is None or key == "metadata":
            continue
        if _norm_type(fx) != _norm_type(ours[key]):
            problems.append(f"{path}{key}: {type(ours[key]).__name__} != {type(fx).__name__}")
        elif isinstance(fx, dict):
            problems += _shape_diff(fx, ours[key], f"{path}{key}.")
        elif isinstance(fx, list) and fx and ours[key] and isinstance(fx[0], dict):
            problems += _shape_diff(fx[0], ours[key][0], f"{path}{key}[].")
    return problems


def _sdk_fields(resource: str) -> set[str]:
    cls = {
        "customer": stripe.Customer, "invoice": stripe.Invoice,
        "invoiceitem": stripe.InvoiceItem, "line_item": stripe.InvoiceLineItem,
        "credit_note": stripe.CreditNote, "refund": stripe.Refund, "event": stripe.Event,
        "tax_rate": stripe.TaxRate, "product": stripe.Product, "price": stripe.Price,
        "webhook_endpoint": stripe.WebhookEndpoint, "charge": stripe.Charge,
        "payment_intent": stripe.PaymentIntent, "invoice_payment": stripe.InvoicePayment,
        "coupon": stripe.Coupon, "credit_note_line_item": stripe.CreditNoteLineItem,
    }[resource]
    fields: set[str] = set()
    for klass in cls.__mro__:
        fields |= set(getattr(klass, "__annotations__", {}))
    return fields


def test_shapes_match_stripe_fixtures(stripe_client, stripe_sandbox):
    fixtures = json.loads(FIXTURES.read_text())["resources"]
    c = stripe_client
    cus = c.v1.customers.create(params={"email": "shape@example.com"})
    txr = c.v1.tax_rates.create(params={"display_name": "VAT", "percentage": 19,
                                        "inclusive": False})
    prod = c.v1.products.create(params={"name": "P"})
    price = c.v1.prices.create(params={"product": prod.id, "currency": "usd",
                                       "unit_amount": 1000})
    coupon = c.v1.coupons.create(params={"percent_off": 10, "duration": "once"})
    inv = c.v1.invoices.create(params={"customer": cus.id, "discounts": [{"coupon": coupon.id}]})
    item = c.v1.invoice_items.create(params={"customer": cus.id, "invoice": inv.id,
                                             "pricing": {"price": price.id},
                                             "tax_rates": [txr.id]})
    inv = c.v1.invoices.finalize_invoice(inv.id)
    stripe_sandbox.pay_invoice(inv.id)
    inv = c.v1.invoices.retrieve(inv.id)
    charge = c.v1.charges.list().data[0]
    pi = c.v1.payment_intents.list().data[0]
    inpay = c.v1.invoice_payments.list(params={"invoice": inv.id}).data[0]
    refund = c.v1.refunds.create(params={"charge": charge.id, "amount": 100})
    charge = c.v1.charges.retrieve(charge.id)
    cn = c.v1.credit_notes.create(params={
        "invoice": inv.id, "refund_amount": 500, "credit_amount": inv.total - 500,
        "lines": [{"type": "invoice_line_item", "invoice_line_item": inv.lines.data[0].id,
                   "quantity": 1}]})
    we = c.v1.webhook_endpoints.create(params={"url": "http://127.0.0.1:9/x",
                                               "enabled_events": ["*"]})
    event = c.v1.events.list(params={"limit": 1}).data[0]
    ours = {
        "customer": cus, "tax_rate": txr, "product": prod, "price": price, "coupon": coupon,
        "invoice": inv, "invoiceitem": item, "line_item": inv.lines.data[0], "charge": charge,
        "payment_intent": pi, "invoice_payment": inpay, "refund": refund, "credit_note": cn,
        "credit_note_line_item": cn.lines.data[0], "webhook_endpoint": we, "event": event,
    }
    problems = {}
    for name, obj in ours.items():
        data = obj.to_dict_recursive() if hasattr(obj, "to_dict_recursive") else obj.to_dict()
        fixture = fixtures[name]
        if name == "event":  # the fixture's event carries a plan; compare the envelope
            fixture = dict(fixture, data={})
            data = dict(data, data={})
        diff = _shape_diff(fixture, data)
        # keys beyond the fixture must at least be fields of the SDK's typed resource
        extra = set(data) - set(fixture) - _sdk_fields(name) - {"secret"}
        diff += [f"{k}: not a field of the SDK resource" for k in sorted(extra)]
        if diff:
            problems[name] = diff
        assert data["object"] == fixture["object"]
        assert data["livemode"] is False if "livemode" in fixture else True
    assert problems == {}
    prefixes = {"customer": "cus_", "invoice": "in_", "invoiceitem": "ii_", "line_item": "il_",
                "tax_rate": "txr_", "product": "prod_", "price": "price_", "credit_note": "cn_",
                "refund": "re_", "charge": "ch_", "payment_intent": "pi_",
                "invoice_payment": "inpay_", "event": "evt_", "webhook_endpoint": "we_"}
    for name, prefix in prefixes.items():
        assert ours[name].id.startswith(prefix), name


def test_expand_payments_and_customer(stripe_client, stripe_sandbox):
    cus = stripe_client.v1.customers.create(params={"email": "x@example.com"})
    inv = stripe_client.v1.invoices.create(params={"customer": cus.id})
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 5000}]})
    stripe_client.v1.invoices.finalize_invoice(inv.id)
    stripe_sandbox.pay_invoice(inv.id, 2000)
    plain = stripe_client.v1.invoices.retrieve(inv.id)
    assert "payments" not in plain  # includable only, as in the 2026 API
    full = stripe_client.v1.invoices.retrieve(
        inv.id, params={"expand": ["payments", "lines", "customer"]})
    assert full.customer.email == "x@example.com"
    assert full.payments.object == "list"
    [payment] = full.payments.data
    assert payment.id.startswith("inpay_") and payment.amount_paid == 2000
    assert payment.payment.type == "payment_intent"
    listed = stripe_client.v1.invoices.list(params={"expand": ["data.customer"]})
    assert listed.data[0].customer.id == cus.id
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.retrieve(inv.id, params={"expand": ["nonsense"]})


def test_nested_expand_through_payments(stripe_client, stripe_sandbox):
    cus = stripe_client.v1.customers.create()
    inv = stripe_client.v1.invoices.create(params={"customer": cus.id})
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 5000}]})
    stripe_client.v1.invoices.finalize_invoice(inv.id)
    stripe_sandbox.pay_invoice(inv.id)
    full = stripe_client.v1.invoices.retrieve(
        inv.id, params={"expand": ["payments.data.payment.payment_intent"]})
    pi = full.payments.data[0].payment.payment_intent
    assert pi.object == "payment_intent" and pi.amount_received == 5000
    charge = stripe_client.v1.charges.list(params={"expand": ["data.payment_intent"]}).data[0]
    assert charge.payment_intent.id == pi.id
