"""Entity field definitions (dealFields, personFields, ...) (v2)."""

from __future__ import annotations

from flask import request

from ..pipeline import RouteTable
from ..responses import ok
from ..validation import (
    FIELD_TYPES,
    ApiError,
    b_enum,
    b_nullable,
    b_str,
    parse_body,
    parse_query,
    q_cursor,
    q_int,
    q_str,
    validation_failed,
)
from .common import body_json, page, sb, store

route = RouteTable()


# ===================================================================
# Field definitions
def field_routes(entity: str, path: str):
    def list_view():
        args = parse_query(request.args, {"cursor": q_cursor, "limit": q_int(1, 500),
                                          "include_fields": q_str()})
        with store.lock:
            rows = list(store.fields[entity].values())
            chunk, extra = page(rows, args)
            return ok([{k: v for k, v in f.items() if k != "id"} for f in chunk], extra)

    def get_view(field_code):
        parse_query(request.args, {"include_fields": q_str()})
        with store.lock:
            f = store.fields[entity].get(field_code)
            if f is None:
                raise ApiError(404, "Field not found", "not_found")
            return ok({k: v for k, v in f.items() if k != "id"})

    def create_view():
        parse_query(request.args, {})
        spec = {"field_name": b_str(255, False), "field_type": b_enum(*FIELD_TYPES),
                "options": lambda v: options_conv(v), "description": b_nullable(b_str()),
                "ui_visibility": lambda v: v, "important_fields": lambda v: v,
                "required_fields": lambda v: v}
        with store.lock:
            body = parse_body(body_json(), spec, required=("field_name", "field_type"))
            if body["field_type"] in ("enum", "set") and not body.get("options"):
                raise validation_failed([("options", "Options are required for enum and "
                                                     "set fields.")])
            if body["field_type"] not in ("enum", "set") and "options" in body:
                raise validation_failed([("options", "Options are only allowed for enum "
                                                     "and set fields.")])
            f = store.add_field(entity, body, sb.now())
            return ok({k: v for k, v in f.items() if k != "id"})

    for fn, suffix, methods, kind in (
        (list_view, "", ("GET",), "v2_list"),
        (get_view, "/<field_code>", ("GET",), "v2_get"),
        (create_view, "", ("POST",), "v2_create"),
    ):
        fn.__name__ = f"{entity}_fields_{fn.__name__}"
        route(f"/{path}{suffix}", methods, kind)(fn)

def options_conv(v):
    if not isinstance(v, list) or not all(isinstance(o, dict) and isinstance(
            o.get("label"), str) for o in v):
        raise ValueError("Options should be an array of {label}.")
    return v

for ent, path in (("deal", "dealFields"), ("person", "personFields"),
                  ("organization", "organizationFields"), ("product", "productFields")):
    field_routes(ent, path)
