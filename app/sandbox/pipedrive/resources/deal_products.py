"""Deal products, discounts and installments (v2)."""

from __future__ import annotations

from decimal import Decimal

from flask import request

from ..pipeline import RouteTable
from ..responses import ok
from ..state import deal_product_sum, quantize
from ..validation import (
    BILLING_FREQUENCIES,
    TAX_METHODS,
    ApiError,
    b_bool,
    b_date,
    b_enum,
    b_int,
    b_nullable,
    b_num,
    b_str,
    parse_body,
    parse_query,
    q_csv_int,
    validation_failed,
)
from .common import apply_changes, body_json, emit, get_or_404, list_spec, page, sb, store

route = RouteTable()


# -- deal products --------------------------------------------------
dp_sorts = ("id", "add_time", "update_time", "order_nr")

def dp_out(dp: dict) -> dict:
    return dict(dp)

@route("/deals/<int:deal_id>/products", ("GET",), "v2_deal_products")
def deal_products_list(deal_id):
    args = parse_query(request.args, list_spec(dp_sorts))
    with store.lock:
        get_or_404("deals", deal_id, "Deal")
        chunk, extra = page(store.deal_products(deal_id), args)
        return ok([dp_out(p) for p in chunk], extra)

@route("/deals/products", ("GET",), "v2_deal_products")
def deal_products_batch():
    args = parse_query(request.args, list_spec(dp_sorts, deal_ids=q_csv_int(100)),
                       required=("deal_ids",))
    with store.lock:
        rows = []
        for did in dict.fromkeys(args["deal_ids"]):
            rows.extend(store.deal_products(did))
        chunk, extra = page(rows, args)
        return ok([dp_out(p) for p in chunk], extra)

dp_body = {
    "product_id": b_int, "product_variation_id": b_nullable(b_int),
    "item_price": b_num, "quantity": b_num, "tax": b_num, "comments": b_nullable(b_str()),
    "discount": b_num, "discount_type": b_enum("percentage", "amount"),
    "is_enabled": b_bool, "tax_method": b_enum(*TAX_METHODS),
    "billing_frequency": b_enum(*BILLING_FREQUENCIES),
    "billing_frequency_cycles": b_nullable(b_int),
    "billing_start_date": b_nullable(b_date),
}

def check_billing(dp: dict) -> None:
    cycles = dp.get("billing_frequency_cycles")
    if dp["billing_frequency"] == "one-time" and cycles is not None:
        raise validation_failed([("billing_frequency_cycles",
                                  "Only allowed for recurring billing frequencies.")])
    if dp["billing_frequency"] == "weekly" and cycles is None:
        raise validation_failed([("billing_frequency_cycles",
                                  "Required for weekly billing frequency.")])
    if cycles is not None and not 1 <= cycles <= 208:
        raise validation_failed([("billing_frequency_cycles",
                                  "This value should be between 1 and 208.")])

def after_dp_change(deal: dict, now: str, source: str = "api") -> None:
    before = {"value": deal["value"], "update_time": deal["update_time"]}
    store.recompute_deal_value(deal)
    previous = {"update_time": before["update_time"]}
    if deal["value"] != before["value"]:
        previous["value"] = before["value"]
    deal["update_time"] = now
    emit("change", "deal", deal, previous, source)

@route("/deals/<int:deal_id>/products", ("POST",), "v2_create")
def deal_products_add(deal_id):
    parse_query(request.args, {})
    with store.lock:
        deal = get_or_404("deals", deal_id, "Deal", allow_deleted=False)
        changes = parse_body(body_json(), dp_body,
                             required=("product_id", "item_price", "quantity"))
        product = store.t["products"].get(changes["product_id"])
        if product is None or product["is_deleted"]:
            raise validation_failed([("product_id", "Product not found.")])
        now = sb.now()
        dp = {
            "id": None, "deal_id": deal_id, "product_id": product["id"],
            "product_variation_id": None, "name": product["name"],
            "order_nr": len(store.dp_by_deal.get(deal_id, [])) + 1,
            "item_price": Decimal(0), "quantity": Decimal(1), "discount": Decimal(0),
            "discount_type": "percentage", "tax": Decimal(product["tax"]),
            "tax_method": "exclusive", "sum": Decimal(0), "currency": deal["currency"],
            "comments": None, "is_enabled": True, "add_time": now, "update_time": now,
            "billing_frequency": product.get("billing_frequency", "one-time"),
            "billing_frequency_cycles": product.get("billing_frequency_cycles"),
            "billing_start_date": None,
        }
        dp.update(changes)
        check_billing(dp)
        if dp["billing_frequency"] != "one-time" and store.deal_installments(deal_id):
            raise ApiError(400, "Recurring products cannot be added to a deal that has "
                                "installments.", "ERR_INSTALLMENTS_PRESENT")
        dp["sum"] = deal_product_sum(dp, deal["currency"])
        store.insert("deal_products", dp)
        emit("create", "deal_product", dp, None)
        after_dp_change(deal, now)
        return ok(dp_out(dp))

def update_deal_product(deal_id: int, dp_id: int, body: dict, source: str = "api"):
    deal = get_or_404("deals", deal_id, "Deal", allow_deleted=False)
    dp = store.t["deal_products"].get(dp_id)
    if dp is None or dp["deal_id"] != deal_id:
        raise ApiError(404, "Deal product not found", "not_found")
    spec = dict(dp_body)
    spec.pop("product_id")
    changes = parse_body(body, spec)
    trial = dict(dp, **changes)
    check_billing(trial)
    if trial["billing_frequency"] != "one-time" and store.deal_installments(deal_id):
        raise ApiError(400, "Recurring products cannot be added to a deal that has "
                            "installments.", "ERR_INSTALLMENTS_PRESENT")
    changes["sum"] = deal_product_sum(trial, deal["currency"])
    now = sb.now()
    previous = apply_changes(dp, changes, now)
    if previous:
        emit("change", "deal_product", dp, previous, source)
        after_dp_change(deal, now, source)
    return dp

@route("/deals/<int:deal_id>/products/<int:dp_id>", ("PATCH",), "v2_update")
def deal_products_patch(deal_id, dp_id):
    parse_query(request.args, {})
    with store.lock:
        return ok(dp_out(update_deal_product(deal_id, dp_id, body_json())))

@route("/deals/<int:deal_id>/products/<int:dp_id>", ("DELETE",), "v2_delete")
def deal_products_delete(deal_id, dp_id):
    parse_query(request.args, {})
    with store.lock:
        deal = get_or_404("deals", deal_id, "Deal", allow_deleted=False)
        dp = store.t["deal_products"].get(dp_id)
        if dp is None or dp["deal_id"] != deal_id:
            raise ApiError(404, "Deal product not found", "not_found")
        del store.t["deal_products"][dp_id]
        store.dp_by_deal[deal_id].remove(dp_id)
        emit("delete", "deal_product", dp, None)
        after_dp_change(deal, sb.now())
        return ok({"id": dp_id})

# -- discounts ------------------------------------------------------
@route("/deals/<int:deal_id>/discounts", ("GET",), "v2_list")
def discounts_list(deal_id):
    parse_query(request.args, {})
    with store.lock:
        get_or_404("deals", deal_id, "Deal")
        return ok(store.deal_discounts(deal_id))

@route("/deals/<int:deal_id>/discounts", ("POST",), "v2_create")
def discounts_add(deal_id):
    parse_query(request.args, {})
    with store.lock:
        deal = get_or_404("deals", deal_id, "Deal", allow_deleted=False)
        body = parse_body(body_json(), {"description": b_str(255, False), "amount": b_num,
                                        "type": b_enum("percentage", "amount")},
                          required=("description", "amount", "type"))
        if body["amount"] < 0 or (body["type"] == "percentage" and body["amount"] > 100):
            raise validation_failed([("amount", "Out of range.")])
        now = sb.now()
        disc = {"id": None, "deal_id": deal_id, "description": body["description"],
                "amount": body["amount"], "type": body["type"],
                "created_at": now, "created_by_user_id": deal["owner_id"],
                "updated_at": now, "updated_by_user_id": deal["owner_id"]}
        store.insert("discounts", disc)
        after_dp_change(deal, now)
        return ok(disc)

# -- installments ---------------------------------------------------
@route("/deals/installments", ("GET",), "v2_list")
def installments_list():
    args = parse_query(request.args,
                       list_spec(("id", "billing_date", "deal_id"), deal_ids=q_csv_int(100)),
                       required=("deal_ids",))
    with store.lock:
        rows = []
        for did in dict.fromkeys(args["deal_ids"]):
            rows.extend(store.deal_installments(did))
        chunk, extra = page(rows, args)
        return ok(chunk, extra)

@route("/deals/<int:deal_id>/installments", ("POST",), "v2_create")
def installments_add(deal_id):
    parse_query(request.args, {})
    with store.lock:
        deal = get_or_404("deals", deal_id, "Deal", allow_deleted=False)
        body = parse_body(body_json(), {"description": b_str(255, False), "amount": b_num,
                                        "billing_date": b_date},
                          required=("description", "amount", "billing_date"))
        products = store.deal_products(deal_id)
        if not any(p["billing_frequency"] == "one-time" for p in products):
            raise ApiError(400, "An installment can only be added if the deal includes at "
                                "least one one-time product.", "ERR_NO_ONE_TIME_PRODUCTS")
        if store.has_recurring(deal_id):
            raise ApiError(400, "Installments are not allowed on deals with recurring "
                                "products.", "ERR_RECURRING_PRODUCTS_PRESENT")
        inst = {"id": None, "deal_id": deal_id, "description": body["description"],
                "amount": quantize(body["amount"], deal["currency"]),
                "billing_date": body["billing_date"]}
        store.insert("installments", inst)
        emit("create", "deal_installment", inst, None)
        return ok(inst)
