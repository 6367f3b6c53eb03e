"""Products (v2)."""

from __future__ import annotations

from decimal import Decimal

from flask import request

from ..pipeline import RouteTable
from ..responses import ok
from ..validation import (
    BILLING_FREQUENCIES,
    b_bool,
    b_enum,
    b_int,
    b_nullable,
    b_num,
    b_str,
    parse_body,
    parse_query,
    q_csv_int,
    q_int,
    q_str,
)
from .common import (
    apply_changes,
    body_json,
    custom_fields_param,
    emit,
    get_or_404,
    list_spec,
    page,
    sb,
    store,
    validate_custom,
    with_custom,
)

route = RouteTable()


# ===================================================================
# Products
def prices_conv(v):
    if not isinstance(v, list):
        raise ValueError("This value should be of type array.")
    out = []
    for p in v:
        if not isinstance(p, dict) or "currency" not in p or "price" not in p:
            raise ValueError("Each price needs 'price' and 'currency'.")
        extra = set(p) - {"price", "currency", "cost", "direct_cost", "notes"}
        if extra:
            raise ValueError(f"Parameter '{sorted(extra)[0]}' is not allowed for this request")
        out.append({"price": b_num(p["price"]), "currency": b_str(3)(p["currency"]).upper(),
                    "cost": b_num(p.get("cost", 0)),
                    "direct_cost": b_num(p.get("direct_cost", 0)),
                    "notes": p.get("notes") or ""})
    return out

product_body = {
    "name": b_str(255, False), "code": b_nullable(b_str(255)),
    "description": b_nullable(b_str()), "unit": b_nullable(b_str(255)), "tax": b_num,
    "category": b_nullable(b_int), "owner_id": b_int, "is_linkable": b_bool,
    "visible_to": b_enum(1, 3, 5, 7), "prices": prices_conv,
    "billing_frequency": b_enum(*BILLING_FREQUENCIES),
    "billing_frequency_cycles": b_nullable(b_int),
}

@route("/products", ("GET",), "v2_list")
def products_list():
    args = parse_query(request.args, list_spec(
        ("id", "name", "add_time", "update_time"), filter_id=q_int(1), ids=q_csv_int(100),
        owner_id=q_int(1), custom_fields=q_str()))
    only = custom_fields_param("product", args.get("custom_fields"))
    with store.lock:
        ids = set(args.get("ids") or ())
        rows = [p for p in store.t["products"].values() if not p["is_deleted"]
                and (not ids or p["id"] in ids)
                and ("owner_id" not in args or p["owner_id"] == args["owner_id"])]
        chunk, extra = page(rows, args)
        return ok([with_custom("product", p, only) for p in chunk], extra)

@route("/products/<int:product_id>", ("GET",), "v2_get")
def products_get(product_id):
    parse_query(request.args, {"custom_fields": q_str()})
    with store.lock:
        return ok(with_custom("product", get_or_404("products", product_id, "Product")))

def product_prepare(changes: dict, product_id: int | None) -> dict:
    if "prices" in changes:
        for p in changes["prices"]:
            p["product_id"] = product_id
    return changes

@route("/products", ("POST",), "v2_create")
def products_create():
    parse_query(request.args, {})
    spec = dict(product_body, custom_fields=lambda v: validate_custom("product", v))
    with store.lock:
        changes = parse_body(body_json(), spec, required=("name",))
        now = sb.now()
        owner = min(store.t["users"]) if store.t["users"] else 1
        row = {"id": store.next_id("products"), "name": "", "code": None,
               "description": None, "unit": None, "tax": Decimal(0), "category": None,
               "owner_id": owner, "is_linkable": True, "is_deleted": False,
               "visible_to": 3, "add_time": now, "update_time": now,
               "billing_frequency": "one-time", "billing_frequency_cycles": None,
               "prices": [], "custom_fields": {}}
        cf = changes.pop("custom_fields", {})
        row.update(product_prepare(changes, row["id"]))
        row["custom_fields"] = {k: v for k, v in cf.items() if v is not None}
        store.insert("products", row)
        emit("create", "product", row, None)
        return ok(with_custom("product", row))

@route("/products/<int:product_id>", ("PATCH",), "v2_update")
def products_patch(product_id):
    parse_query(request.args, {})
    spec = dict(product_body, custom_fields=lambda v: validate_custom("product", v))
    with store.lock:
        row = get_or_404("products", product_id, "Product", allow_deleted=False)
        changes = product_prepare(parse_body(body_json(), spec), product_id)
        previous = apply_changes(row, changes, sb.now())
        if previous:
            emit("change", "product", row, previous)
        return ok(with_custom("product", row))
