"""v1 users and notes (v1 ignores unknown query parameters)."""

from __future__ import annotations

from flask import request

from ..pipeline import RouteTable
from ..responses import json_response
from ..state import v1_from_iso
from ..validation import ApiError, parse_query, q_int, q_str
from .common import body_json, emit, get_or_404, sb, settings, store

route = RouteTable()


# ===================================================================
# v1: users, notes, webhooks (v1 ignores unknown query parameters)
def v1_ok(data, additional_data=None, status=200):
    body = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return json_response(body, status)

def v1_page(rows: list, start: int, limit: int) -> tuple[list, dict]:
    chunk = rows[start:start + limit]
    more = len(rows) > start + limit
    pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    return chunk, {"pagination": pagination}

@route("/users", ("GET",), "v1_list", v1=True)
def users_list():
    with store.lock:
        return v1_ok([u for u in sorted(store.t["users"].values(), key=lambda u: u["id"])])

@route("/users/me", ("GET",), "v1_get", v1=True)
def users_me():
    with store.lock:
        user = dict(get_or_404("users", min(store.t["users"] or [1]), "User"))
        user.update(company_id=settings.company_id, company_name=settings.company_name,
                    company_domain=settings.company_domain)
        return v1_ok(user)

@route("/users/<int:user_id>", ("GET",), "v1_get", v1=True)
def users_get(user_id):
    with store.lock:
        return v1_ok(get_or_404("users", user_id, "User"))

def note_out(n: dict) -> dict:
    out = dict(n)
    for k in ("add_time", "update_time"):
        out[k] = v1_from_iso(n[k])
    deal = store.t["deals"].get(n["deal_id"]) if n["deal_id"] else None
    person = store.t["persons"].get(n["person_id"]) if n["person_id"] else None
    org = store.t["organizations"].get(n["org_id"]) if n["org_id"] else None
    user = store.t["users"].get(n["user_id"])
    out["deal"] = {"title": deal["title"]} if deal else None
    out["person"] = {"name": person["name"]} if person else None
    out["organization"] = {"name": org["name"]} if org else None
    out["user"] = ({"email": user["email"], "name": user["name"], "icon_url": None,
                    "is_you": user["id"] == 1} if user else None)
    return out

def flag(v) -> bool:
    if isinstance(v, bool):
        return v
    if v in (0, 1, "0", "1"):
        return str(v) == "1"
    if v in ("true", "false"):
        return v == "true"
    raise ValueError("flag should be 0 or 1")

@route("/notes", ("POST",), "v1_notes_create", v1=True)
def notes_create():
    body = body_json()
    with store.lock:
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ApiError(400, "Content is required", "ERR_VALIDATION")
        refs = {}
        for key, table in (("deal_id", "deals"), ("person_id", "persons"),
                           ("org_id", "organizations")):
            v = body.get(key)
            if v in (None, ""):
                refs[key] = None
                continue
            try:
                v = int(v)
            except (TypeError, ValueError) as exc:
                raise ApiError(400, f"{key} must be an integer", "ERR_VALIDATION") from exc
            if v not in store.t[table]:
                raise ApiError(404, f"{key.replace('_id', '').capitalize()} not found",
                               "not_found")
            refs[key] = v
        if not any(refs.values()) and not body.get("lead_id"):
            raise ApiError(400, "At least one of deal_id, person_id, org_id or lead_id "
                                "is required", "ERR_VALIDATION")
        try:
            flags = {k: flag(body.get(k, False)) for k in (
                "pinned_to_deal_flag", "pinned_to_person_flag",
                "pinned_to_organization_flag", "pinned_to_lead_flag")}
        except ValueError as exc:
            raise ApiError(400, str(exc), "ERR_VALIDATION") from exc
        now = sb.now()
        user_id = int(body.get("user_id") or 1)
        note = {"id": None, "user_id": user_id, "deal_id": refs["deal_id"],
                "person_id": refs["person_id"], "org_id": refs["org_id"],
                "lead_id": body.get("lead_id"), "project_id": None, "content": content,
                "add_time": now, "update_time": now, "active_flag": True,
                "last_update_user_id": None, **flags}
        store.insert("notes", note)
        emit("create", "note", note, None)
        return v1_ok(note_out(note), status=201)

@route("/notes", ("GET",), "v1_notes_list", v1=True)
def notes_list():
    args = parse_query(request.args, {
        "deal_id": q_int(1), "person_id": q_int(1), "org_id": q_int(1),
        "user_id": q_int(1), "lead_id": q_str(), "start": q_int(0), "limit": q_int(1, 500),
        "sort": q_str(), "start_date": q_str(), "end_date": q_str(),
        "updated_since": q_str(), "pinned_to_deal_flag": q_str(),
        "pinned_to_person_flag": q_str(), "pinned_to_organization_flag": q_str(),
        "pinned_to_lead_flag": q_str(),
    }, strict=False)
    with store.lock:
        rows = [n for n in store.t["notes"].values() if n["active_flag"]
                and all(k not in args or n.get(k) == args[k]
                        for k in ("deal_id", "person_id", "org_id", "user_id", "lead_id"))]
        rows.sort(key=lambda n: (n["add_time"], n["id"]))
        chunk, extra = v1_page(rows, args.get("start", 0), args.get("limit", 100))
        return v1_ok([note_out(n) for n in chunk], extra)

@route("/notes/<int:note_id>", ("GET",), "v1_get", v1=True)
def notes_get(note_id):
    with store.lock:
        return v1_ok(note_out(get_or_404("notes", note_id, "Note")))
