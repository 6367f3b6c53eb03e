"""Persons and organizations (v2): CRUD and search."""

from __future__ import annotations

from flask import request

from ..pipeline import RouteTable
from ..responses import ok
from ..validation import (
    ApiError,
    b_contact_list,
    b_date,
    b_datetime,
    b_enum,
    b_int,
    b_int_list,
    b_nullable,
    b_str,
    make_cursor,
    parse_body,
    parse_query,
    q_bool,
    q_csv_enum,
    q_csv_int,
    q_cursor,
    q_int,
    q_rfc3339,
    q_str,
    validation_failed,
)
from .common import (
    apply_changes,
    body_json,
    check_ref,
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
# Persons and organizations
person_body = {
    "name": b_str(255, False), "owner_id": b_int, "org_id": b_nullable(b_int),
    "emails": b_contact_list, "phones": b_contact_list, "visible_to": b_enum(1, 3, 5, 7),
    "label_ids": b_int_list, "add_time": b_datetime, "marketing_status":
    b_enum("no_consent", "unsubscribed", "subscribed", "archived"),
    "job_title": b_nullable(b_str(255)), "birthday": b_nullable(b_date),
}
org_body = {
    "name": b_str(255, False), "owner_id": b_int, "visible_to": b_enum(1, 3, 5, 7),
    "label_ids": b_int_list, "add_time": b_datetime,
    "address": b_nullable(lambda v: address_conv(v)),
}

def address_conv(v):
    if not isinstance(v, dict):
        raise ValueError("This value should be of type object.")
    allowed = {"value", "country", "admin_area_level_1", "admin_area_level_2", "locality",
               "sublocality", "route", "street_number", "postal_code", "subpremise"}
    extra = set(v) - allowed
    if extra:
        raise ValueError(f"Parameter '{sorted(extra)[0]}' is not allowed for this request")
    return {k: v.get(k) for k in sorted(allowed)}

def entity_routes(entity: str, table: str, label: str, body_spec: dict, path: str):
    def list_view():
        extra = dict(filter_id=q_int(1), ids=q_csv_int(100), owner_id=q_int(1),
                     updated_since=q_rfc3339, updated_until=q_rfc3339,
                     include_fields=q_str(), custom_fields=q_str())
        if entity == "person":
            extra["org_id"] = q_int(1)
        args = parse_query(request.args, list_spec(**extra))
        if "filter_id" in args:
            raise ApiError(404, "Filter not found", "not_found")
        only = custom_fields_param(entity, args.get("custom_fields"))
        with store.lock:
            ids = set(args.get("ids") or ())
            rows = []
            for r in store.t[table].values():
                if r["is_deleted"] or (ids and r["id"] not in ids):
                    continue
                if any(k in args and r.get(k) != args[k] for k in ("owner_id", "org_id")):
                    continue
                if "updated_since" in args and r["update_time"] < args["updated_since"]:
                    continue
                if "updated_until" in args and r["update_time"] >= args["updated_until"]:
                    continue
                rows.append(r)
            chunk, more = page(rows, args)
            return ok([with_custom(entity, r, only) for r in chunk], more)

    def get_view(item_id):
        args = parse_query(request.args, {"include_fields": q_str(), "custom_fields": q_str()})
        only = custom_fields_param(entity, args.get("custom_fields"))
        with store.lock:
            return ok(with_custom(entity, get_or_404(table, item_id, label), only))

    def prepare(changes: dict) -> dict:
        problems: list = []
        check_ref("organizations", changes.get("org_id"), "org_id", problems)
        check_ref("users", changes.get("owner_id"), "owner_id", problems)
        if problems:
            raise validation_failed(problems)
        if entity == "person" and "name" in changes:
            first, _, last = changes["name"].partition(" ")
            changes["first_name"], changes["last_name"] = first, last or None
        return changes

    def create_view():
        parse_query(request.args, {})
        spec = dict(body_spec, custom_fields=lambda v: validate_custom(entity, v))
        with store.lock:
            changes = prepare(parse_body(body_json(), spec, required=("name",)))
            now = sb.now()
            owner = min(store.t["users"]) if store.t["users"] else 1
            row = blank_entity(entity, owner, now)
            cf = changes.pop("custom_fields", {})
            row.update(changes)
            row["custom_fields"] = {k: v for k, v in cf.items() if v is not None}
            store.insert(table, row)
            emit("create", entity, row, None)
            return ok(with_custom(entity, row))

    def patch_view(item_id):
        parse_query(request.args, {})
        spec = dict(body_spec, custom_fields=lambda v: validate_custom(entity, v))
        with store.lock:
            row = get_or_404(table, item_id, label, allow_deleted=False)
            changes = prepare(parse_body(body_json(), spec))
            previous = apply_changes(row, changes, sb.now())
            if previous:
                emit("change", entity, row, previous)
            return ok(with_custom(entity, row))

    for fn, suffix, methods, kind in (
        (list_view, "", ("GET",), "v2_list"),
        (get_view, "/<int:item_id>", ("GET",), "v2_get"),
        (create_view, "", ("POST",), "v2_create"),
        (patch_view, "/<int:item_id>", ("PATCH",), "v2_update"),
    ):
        fn.__name__ = f"{table}_{fn.__name__}"
        route(f"/{path}{suffix}", methods, kind)(fn)

def blank_entity(entity: str, owner: int, now: str) -> dict:
    base = {"id": None, "name": "", "owner_id": owner, "add_time": now, "update_time": now,
            "is_deleted": False, "visible_to": 3, "label_ids": [], "custom_fields": {}}
    if entity == "person":
        base.update(first_name="", last_name=None, org_id=None, emails=[], phones=[],
                    picture_id=None, job_title=None, birthday=None,
                    marketing_status="no_consent")
    elif entity == "organization":
        base.update(address=None, picture_id=None)
    return base

entity_routes("person", "persons", "Person", person_body, "persons")
entity_routes("organization", "organizations", "Organization", org_body, "organizations")

def search_args(fields: tuple[str, ...], extra: dict | None = None) -> dict:
    spec = {"term": q_str(1, 500), "fields": q_csv_enum(*fields),
            "exact_match": q_bool, "include_fields": q_str(),
            "cursor": q_cursor, "limit": q_int(1, 500)}
    spec.update(extra or {})
    args = parse_query(request.args, spec, required=("term",))
    min_len = 1 if args.get("exact_match") else 2
    if len(args["term"]) < min_len:
        raise validation_failed([("term", f"This value is too short. It should have "
                                          f"{min_len} characters or more.")])
    return args

def matches(values: list[str], term: str, exact: bool) -> int:
    t = term.lower()
    best = 0
    for v in values:
        v = (v or "").lower()
        if exact and v == t:
            best = max(best, 2)
        elif not exact and t in v:
            best = max(best, 2 if v == t else 1)
    return best

def search_page(scored: list[tuple[int, dict]], args: dict, build) -> tuple[list, dict]:
    scored.sort(key=lambda x: (-x[0], x[1]["id"]))
    offset = 0
    if "cursor" in args:
        offset = int(args["cursor"].get("o", 0))
    limit = args.get("limit", 100)
    chunk = scored[offset:offset + limit]
    nxt = make_cursor({"o": offset + limit, "i": 0}) if len(scored) > offset + limit else None
    items = [{"result_score": round(score / 2, 4), "item": build(r)} for score, r in chunk]
    return items, {"next_cursor": nxt}

@route("/persons/search", ("GET",), "v2_search")
def persons_search():
    args = search_args(("name", "email", "phone", "notes", "custom_fields"),
                       {"organization_id": q_int(1)})
    fields = args.get("fields") or ["name", "email", "phone", "notes", "custom_fields"]
    exact = args.get("exact_match", False)
    with store.lock:
        scored = []
        for p in store.t["persons"].values():
            if p["is_deleted"]:
                continue
            if "organization_id" in args and p["org_id"] != args["organization_id"]:
                continue
            values: list[str] = []
            if "name" in fields:
                values.append(p["name"])
            if "email" in fields:
                values += [e["value"] for e in p["emails"]]
            if "phone" in fields:
                values += [e["value"] for e in p["phones"]]
            if "custom_fields" in fields:
                values += [v for v in (p.get("custom_fields") or {}).values()
                           if isinstance(v, str)]
            score = matches(values, args["term"], exact)
            if score:
                scored.append((score, p))

        def build(p):
            org = store.t["organizations"].get(p["org_id"]) if p["org_id"] else None
            return {"id": p["id"], "type": "person", "name": p["name"],
                    "phones": [x["value"] for x in p["phones"]],
                    "emails": [x["value"] for x in p["emails"]],
                    "visible_to": p["visible_to"], "owner": {"id": p["owner_id"]},
                    "organization": {"id": org["id"], "name": org["name"],
                                     "address": (org["address"] or {}).get("value")}
                    if org else None,
                    "custom_fields": [], "notes": [], "update_time": p["update_time"]}

        items, extra = search_page(scored, args, build)
    return ok({"items": items}, extra)

@route("/organizations/search", ("GET",), "v2_search")
def organizations_search():
    args = search_args(("name", "address", "notes", "custom_fields"))
    fields = args.get("fields") or ["name", "address", "notes", "custom_fields"]
    exact = args.get("exact_match", False)
    with store.lock:
        scored = []
        for o in store.t["organizations"].values():
            if o["is_deleted"]:
                continue
            values = []
            if "name" in fields:
                values.append(o["name"])
            if "address" in fields and o["address"]:
                values.append(o["address"].get("value") or "")
            if "custom_fields" in fields:
                values += [v for v in (o.get("custom_fields") or {}).values()
                           if isinstance(v, str)]
            score = matches(values, args["term"], exact)
            if score:
                scored.append((score, o))

        def build(o):
            return {"id": o["id"], "type": "organization", "name": o["name"],
                    "address": (o["address"] or {}).get("value"),
                    "visible_to": o["visible_to"], "owner": {"id": o["owner_id"]},
                    "custom_fields": [], "notes": [], "update_time": o["update_time"]}

        items, extra = search_page(scored, args, build)
    return ok({"items": items}, extra)
