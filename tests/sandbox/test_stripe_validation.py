"""Parameter decoding and validation of the Stripe sandbox.

Requests are encoded with the stripe SDK's own form encoder, exactly as its
requestor does, then decoded and validated against the SDK's params classes.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

import pytest
from stripe._encode import _api_encode

from app.sandbox.stripe.validation import (
    StripeParamError,
    UnknownEndpoint,
    decode_form,
    endpoint_table,
    resolve,
    validate,
)
from app.sandbox.stripe.validation.params import _fields, _shape


def sdk_encode(params: dict) -> str:
    """What stripe._api_requestor sends for these params (body or query string)."""
    encoded = urlencode(list(_api_encode(params)))
    return encoded.replace("%5B", "[").replace("%5D", "]")


def roundtrip(method: str, path: str, params: dict) -> dict:
    return validate(method, path, decode_form(sdk_encode(params)))


def error_of(method: str, path: str, body: str | dict) -> StripeParamError:
    if isinstance(body, dict):
        body = sdk_encode(body)
    with pytest.raises(StripeParamError) as info:
        validate(method, path, decode_form(body))
    return info.value


# ---------------------------------------------------------------------------
# Round trips: SDK encoding -> decode_form -> validate == the original params
# ---------------------------------------------------------------------------

CUSTOMER_CREATE = {
    "name": "Acme GmbH",
    "email": "billing@acme.example",
    "address": {
        "line1": "Hauptstraße 1",
        "line2": "3. OG",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
    "preferred_locales": ["de", "en"],
    "tax_exempt": "none",
    "invoice_settings": {"custom_fields": [{"name": "PO", "value": "4711"}]},
    "metadata": {"pipedrive_deal_id": "1234", "source": "billing-desk"},
    "expand": ["tax"],
}

INVOICE_CREATE = {
    "customer": "cus_123",
    "collection_method": "send_invoice",
    "days_until_due": 30,
    "auto_advance": False,
    "currency": "eur",
    "custom_fields": [
        {"name": "Deal", "value": "D-42"},
        {"name": "PO number", "value": "PO 7 & 8"},
    ],
    "discounts": [{"coupon": "SPRING"}, {"promotion_code": "promo_1"}],
    "metadata": {"deal": "42", "note": "a=b&c[d]"},
    "pending_invoice_items_behavior": "exclude",
    "description": "Won deal #42",
}

ADD_LINES = {
    "lines": [
        {
            "price_data": {
                "currency": "eur",
                "product": "prod_1",
                "unit_amount_decimal": Decimal("1234.5678"),
                "tax_behavior": "exclusive",
            },
            "quantity_decimal": Decimal("1.5"),
            "tax_rates": ["txr_1", "txr_2"],
            "discounts": [{"coupon": "TEN"}],
            "metadata": {"line": "1"},
            "description": "Consulting",
        },
        {
            "pricing": {"price": "price_1"},
            "quantity": 3,
            "tax_rates": ["txr_1"],
            "discounts": [{"discount": "di_1"}, {"coupon": "FIVE"}],
            "metadata": {"line": "2"},
            "period": {"start": 1767225600, "end": 1769904000},
        },
        {
            "price_data": {
                "currency": "eur",
                "product_data": {"name": "Setup fee", "metadata": {"kind": "setup"}},
                "unit_amount": 50000,
            },
            "quantity_decimal": Decimal("0.25"),
            "tax_rates": "",
            "discounts": "",
            "metadata": {"line": "3", "free": ""},
            "discountable": True,
        },
    ],
    "invoice_metadata": {"lines_added": "3"},
    "expand": ["lines", "customer"],
}

CREDIT_NOTE_CREATE = {
    "invoice": "in_123",
    "reason": "order_change",
    "memo": "Partial credit",
    "lines": [
        {"type": "invoice_line_item", "invoice_line_item": "il_1", "quantity": 1},
        {
            "type": "custom_line_item",
            "description": "Goodwill",
            "unit_amount_decimal": Decimal("100.5"),
            "quantity": 2,
            "tax_rates": ["txr_1"],
        },
    ],
    "credit_amount": 500,
    "metadata": {"ticket": "T-9"},
}

EVENTS_LIST = {
    "created": {"gte": 1767225600, "lt": 1769904000},
    "types": ["invoice.paid", "invoice.finalized", "charge.refunded"],
    "limit": 100,
    "delivery_success": True,
    "starting_after": "evt_1",
}

REFUND_CREATE = {
    "charge": "ch_123",
    "amount": 1999,
    "reason": "requested_by_customer",
    "metadata": {"credit_note": "cn_1"},
    "refund_application_fee": False,
}


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("POST", "/v1/customers", CUSTOMER_CREATE),
        ("POST", "/v1/invoices", INVOICE_CREATE),
        ("POST", "/v1/invoices/{invoice}/add_lines", ADD_LINES),
        ("POST", "/v1/credit_notes", CREDIT_NOTE_CREATE),
        ("GET", "/v1/events", EVENTS_LIST),
        ("POST", "/v1/refunds", REFUND_CREATE),
        ("POST", "/v1/invoices/{invoice}", {"metadata": "", "footer": "Thanks"}),
        ("GET", "/v1/invoices", {"customer": "cus_1", "status": "open", "created": 1767225600}),
    ],
    ids=[
        "customer-create",
        "invoice-create",
        "add-lines",
        "credit-note",
        "events-list",
        "refund",
        "invoice-update-unset",
        "invoice-list",
    ],
)
def test_round_trip(method, path, params):
    assert roundtrip(method, path, params) == params


def test_round_trip_coerces_types():
    out = roundtrip("POST", "/v1/invoices/{invoice}/add_lines", ADD_LINES)
    first, second, third = out["lines"]
    assert isinstance(first["quantity_decimal"], Decimal)
    assert isinstance(first["price_data"]["unit_amount_decimal"], Decimal)
    assert second["quantity"] == 3 and isinstance(second["quantity"], int)
    assert third["discountable"] is True
    assert third["tax_rates"] == ""  # unset
    out = roundtrip("POST", "/v1/invoices", INVOICE_CREATE)
    assert out["auto_advance"] is False
    assert out["days_until_due"] == 30


def test_query_string_appended_arrays():
    params = decode_form(
        "types[]=invoice.paid&types[]=charge.refunded&created[gte]=5&expand[]=data"
    )
    assert validate("GET", "/v1/events", params) == {
        "types": ["invoice.paid", "charge.refunded"],
        "created": {"gte": 5},
        "expand": ["data"],
    }


def test_decode_form_bytes_and_plus():
    assert decode_form(b"description=a+b%26c&metadata[k]=") == {
        "description": "a b&c",
        "metadata": {"k": ""},
    }


@pytest.mark.parametrize("body", [b"name=%FF", b"name=\xff"])
def test_decode_form_rejects_bad_utf8(body):
    with pytest.raises(StripeParamError):
        decode_form(body)


def test_decode_numeric_metadata_keys_stay_a_hash():
    params = decode_form("metadata[0]=a&metadata[1]=b&customer=cus_1")
    assert validate("POST", "/v1/invoices", params)["metadata"] == {"0": "a", "1": "b"}
    params = decode_form("metadata[7]=a")
    assert validate("POST", "/v1/invoices", params)["metadata"] == {"7": "a"}


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "param", "message"),
    [
        pytest.param(
            "POST",
            "/v1/customers",
            {"name": "x", "nickname": "y"},
            "parameter_unknown",
            "nickname",
            "Received unknown parameter: nickname",
            id="unknown-top-level",
        ),
        pytest.param(
            "POST",
            "/v1/invoices/in_1/add_lines",
            {"lines": [{"pricing": {"price": "price_1"}}, {"amount": 5, "currency": "eur"}]},
            "parameter_unknown",
            "lines[1][currency]",
            "Received unknown parameter: lines[1][currency]",
            id="unknown-nested",
        ),
        pytest.param(
            "POST",
            "/v1/customers",
            {"foo": "1", "address": {"bar": "2"}},
            "parameter_unknown",
            "foo",
            "Received unknown parameters: foo, address[bar]",
            id="unknown-several",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            {"api_key": "sk_test_x"},
            "parameter_unknown",
            "api_key",
            "Received unknown parameter: api_key",
            id="request-option-is-not-a-param",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            "days_until_due=10.0",
            "parameter_invalid_integer",
            "days_until_due",
            "Invalid integer: 10.0",
            id="bad-integer",
        ),
        pytest.param(
            "GET",
            "/v1/events",
            "created[gte]=yesterday",
            "parameter_invalid_integer",
            "created[gte]",
            "Invalid integer: yesterday",
            id="bad-integer-in-query",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            "auto_advance=True",
            None,
            "auto_advance",
            "Invalid boolean: True",
            id="bad-boolean",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            "collection_method=send_invoices",
            None,
            "collection_method",
            "Invalid collection_method: must be one of charge_automatically or send_invoice",
            id="bad-enum",
        ),
        pytest.param(
            "POST",
            "/v1/refunds",
            "charge=ch_1&reason=changed_mind",
            None,
            "reason",
            "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
            id="bad-enum-three",
        ),
        pytest.param(
            "POST",
            "/v1/invoices/in_1/add_lines",
            "lines[0][price_data][currency]=eur&lines[0][price_data][tax_behavior]=gross",
            None,
            "lines[0][price_data][tax_behavior]",
            "Invalid lines[0][price_data][tax_behavior]: must be one of exclusive, "
            "inclusive, or unspecified",
            id="bad-enum-nested",
        ),
        pytest.param(
            "POST",
            "/v1/credit_notes",
            {"reason": "duplicate"},
            "parameter_missing",
            "invoice",
            "Missing required param: invoice.",
            id="missing-required",
        ),
        pytest.param(
            "POST",
            "/v1/invoices/in_1/add_lines",
            {"invoice_metadata": {"a": "b"}},
            "parameter_missing",
            "lines",
            "Missing required param: lines.",
            id="missing-required-list",
        ),
        pytest.param(
            "POST",
            "/v1/invoices/in_1/add_lines",
            {"lines": [{"price_data": {"product": "prod_1", "unit_amount": 5}}]},
            "parameter_missing",
            "lines[0][price_data][currency]",
            "Missing required param: lines[0][price_data][currency].",
            id="missing-required-nested",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            {"description": ""},
            "parameter_invalid_empty",
            "description",
            "You passed an empty string for 'description'. We assume empty values are an "
            "attempt to unset a parameter; however 'description' cannot be unset. You should "
            "remove 'description' from your request or supply a non-empty value.",
            id="empty-not-unsettable",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            "default_tax_rates[0]=",
            "parameter_invalid_empty",
            "default_tax_rates[0]",
            None,
            id="empty-array-element",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            {"metadata": {f"k{i}": "v" for i in range(51)}},
            None,
            "metadata",
            "Metadata can have up to 50 keys, but you passed in 51 keys.",
            id="too-many-metadata-keys",
        ),
        pytest.param(
            "POST",
            "/v1/customers",
            {"metadata": {"k" * 41: "v"}},
            None,
            "metadata[" + "k" * 41 + "]",
            "Metadata keys can have up to 40 characters, but you passed in a key that is "
            "41 characters.",
            id="long-metadata-key",
        ),
        pytest.param(
            "POST",
            "/v1/invoices/in_1/add_lines",
            {"lines": [{"pricing": {"price": "p"}, "metadata": {"k": "v" * 501}}]},
            None,
            "lines[0][metadata][k]",
            "Metadata values can have up to 500 characters, but you passed in a value that "
            "is 501 characters.",
            id="long-metadata-value",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            "custom_fields[0][name]=a&custom_fields[0][value]=b&custom_fields[2][name]=c",
            None,
            "custom_fields",
            None,
            id="array-with-gap",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            "expand[]=a&expand[1]=b",
            None,
            "expand",
            None,
            id="array-mixed-append-and-index",
        ),
        pytest.param(
            "POST",
            "/v1/customers",
            "address=Berlin",
            None,
            "address",
            None,
            id="string-for-hash",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            "customer[id]=cus_1",
            None,
            "customer",
            None,
            id="hash-for-string",
        ),
        pytest.param(
            "POST",
            "/v1/invoices",
            "customer=cus_1&customer[id]=cus_1",
            None,
            "customer",
            None,
            id="value-and-hash",
        ),
    ],
)
def test_errors(method, path, body, code, param, message):
    err = error_of(method, path, body)
    assert (err.code, err.param) == (code, param)
    if message is not None:
        assert err.message == message


def test_unknown_endpoint():
    with pytest.raises(UnknownEndpoint) as info:
        validate("GET", "/v1/foo", {})
    assert (info.value.method, info.value.path) == ("GET", "/v1/foo")
    assert str(info.value) == "Unrecognized request URL (GET: /v1/foo)"
    with pytest.raises(UnknownEndpoint):
        validate("POST", "/v1/charges", {})  # charges are served read-only
    with pytest.raises(UnknownEndpoint):
        validate("DELETE", "/v1/prices/{price}", {})


def test_to_error_shape():
    err = error_of("POST", "/v1/customers", {"nickname": "y"})
    assert err.to_error() == {
        "type": "invalid_request_error",
        "code": "parameter_unknown",
        "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown",
        "param": "nickname",
        "message": "Received unknown parameter: nickname",
    }
    err = error_of("POST", "/v1/invoices", "auto_advance=yes")
    assert err.to_error() == {
        "type": "invalid_request_error",
        "param": "auto_advance",
        "message": "Invalid boolean: yes",
    }


# ---------------------------------------------------------------------------
# Endpoint table
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/customers/search", "CustomerSearchParams"),
        ("GET", "/v1/customers/cus_123", "CustomerRetrieveParams"),
        ("GET", "/v1/customers/{id}", "CustomerRetrieveParams"),
        ("post", "/v1/credit_notes/{credit_note}/void", "CreditNoteVoidCreditNoteParams"),
        ("GET", "/v1/credit_notes/preview", "CreditNotePreviewParams"),
        ("GET", "/v1/credit_notes/cn_1", "CreditNoteRetrieveParams"),
        ("POST", "/v1/invoices/in_1/finalize", "InvoiceFinalizeInvoiceParams"),
        ("GET", "/v1/invoices/in_1/lines?limit=3", "InvoiceLineItemListParams"),
        ("DELETE", "/v1/webhook_endpoints/we_1", "WebhookEndpointDeleteParams"),
    ],
)
def test_resolve(method, path, expected):
    assert resolve(method, path).params_class.__name__ == expected


def test_table_covers_the_brief():
    table = endpoint_table()
    assert len(table) == 58
    for key in [
        ("POST", "/v1/invoices/{invoice}/mark_uncollectible"),
        ("GET", "/v1/invoice_payments/{invoice_payment}"),
        ("GET", "/v1/events/{id}"),
        ("DELETE", "/v1/invoiceitems/{invoiceitem}"),
    ]:
        assert key in table


@pytest.mark.parametrize("key", sorted(endpoint_table()), ids=lambda k: f"{k[0]} {k[1]}")
def test_every_endpoint_accepts_expand_and_checks_required(key):
    endpoint = endpoint_table()[key]
    fields, required = _fields(endpoint.params_class)
    if key[0] == "DELETE":  # Stripe's delete endpoints take no expand
        assert "expand" not in fields
        assert error_of(*key, "expand[0]=data").code == "parameter_unknown"
        assert validate(*key, {}) == {}
        return
    try:
        out = validate(key[0], key[1], decode_form("expand[0]=data"))
    except StripeParamError as err:
        assert err.code == "parameter_missing"
        assert err.param in required
    else:
        assert not required
        assert out == {"expand": ["data"]}


def test_every_reachable_type_is_understood():
    """Guards SDK upgrades: every field type maps to a known shape."""
    seen: set[type] = set()
    pending = [ep.params_class for ep in endpoint_table().values()]
    checked = 0
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        fields, _ = _fields(cls)
        for name, tp in fields.items():
            stack = [tp]
            while stack:
                shape = _shape(stack.pop())
                checked += 1
                assert not shape.anything, f"{cls.__name__}.{name}: {tp}"
                if shape.obj is not None:
                    pending.append(shape.obj)
                if shape.array is not None:
                    stack.append(shape.array)
                if shape.mapping is not None:
                    stack.append(shape.mapping)
    assert checked > 1000
