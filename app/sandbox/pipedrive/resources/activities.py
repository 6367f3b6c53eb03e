"""Activities (v2)."""

from __future__ import annotations

from flask import request

from ..pipeline import RouteTable
from ..responses import ok
from ..validation import (
    b_bool,
    b_date,
    b_int,
    b_nullable,
    b_str,
    b_time,
    parse_body,
    parse_query,
    q_bool,
    q_csv_int,
    q_int,
    q_rfc3339,
    q_str,
    validation_failed,
)
from .common import (
    apply_changes,
    body_json,
    check_ref,
    emit,
    get_or_404,
    list_spec,
    page,
    sb,
    store,
)

route = RouteTable()


# ===================================================================
# Activities (v2)
activity_body = {
    "subject": b_str(255, False), "type": b_str(255), "owner_id": b_int,
    "deal_id": b_nullable(b_int), "lead_id": b_nullable(b_str()),
    "person_id": b_nullable(b_int), "org_id": b_nullable(b_int),
    "project_id": b_nullable(b_int), "due_date": b_nullable(b_date),
    "due_time": b_nullable(b_time), "duration": b_nullable(b_time), "busy": b_bool,
    "done": b_bool, "location": lambda v: v, "participants": lambda v: v,
    "attendees": lambda v: v, "public_description": b_nullable(b_str()),
    "priority": b_nullable(b_int), "note": b_nullable(b_str()),
}

def activity_prepare(changes: dict, row: dict | None, now: str) -> dict:
    problems: list = []
    check_ref("deals", changes.get("deal_id"), "deal_id", problems)
    check_ref("persons", changes.get("person_id"), "person_id", problems)
    check_ref("organizations", changes.get("org_id"), "org_id", problems)
    check_ref("users", changes.get("owner_id"), "owner_id", problems)
    if problems:
        raise validation_failed(problems)
    if "done" in changes and (row is None or row["done"] != changes["done"]):
        changes["marked_as_done_time"] = now if changes["done"] else None
    return changes

@route("/activities", ("GET",), "v2_list")
def activities_list():
    args = parse_query(request.args, list_spec(
        ("id", "update_time", "add_time", "due_date"), filter_id=q_int(1),
        ids=q_csv_int(100), owner_id=q_int(1), deal_id=q_int(1), lead_id=q_str(),
        person_id=q_int(1), org_id=q_int(1), done=q_bool, updated_since=q_rfc3339,
        updated_until=q_rfc3339, include_fields=q_str()))
    with store.lock:
        ids = set(args.get("ids") or ())
        rows = []
        for a in store.t["activities"].values():
            if a["is_deleted"] or (ids and a["id"] not in ids):
                continue
            if any(k in args and a.get(k) != args[k] for k in
                   ("owner_id", "deal_id", "lead_id", "person_id", "org_id", "done")):
                continue
            if "updated_since" in args and a["update_time"] < args["updated_since"]:
                continue
            if "updated_until" in args and a["update_time"] >= args["updated_until"]:
                continue
            rows.append(a)
        chunk, extra = page(rows, args)
        return ok(chunk, extra)

@route("/activities/<int:activity_id>", ("GET",), "v2_get")
def activities_get(activity_id):
    parse_query(request.args, {"include_fields": q_str()})
    with store.lock:
        return ok(get_or_404("activities", activity_id, "Activity"))

@route("/activities", ("POST",), "v2_create")
def activities_create():
    parse_query(request.args, {})
    with store.lock:
        now = sb.now()
        changes = activity_prepare(parse_body(body_json(), activity_body,
                                              required=("subject",)), None, now)
        owner = min(store.t["users"]) if store.t["users"] else 1
        row = {"id": None, "subject": "", "type": "task", "owner_id": owner,
               "creator_user_id": owner, "is_deleted": False, "add_time": now,
               "update_time": now, "deal_id": None, "lead_id": None, "person_id": None,
               "org_id": None, "project_id": None, "due_date": None, "due_time": None,
               "duration": None, "busy": False, "done": False, "marked_as_done_time": None,
               "location": None, "participants": [], "attendees": [],
               "public_description": None, "priority": None, "note": None}
        row.update(changes)
        store.insert("activities", row)
        emit("create", "activity", row, None)
        return ok(row)

@route("/activities/<int:activity_id>", ("PATCH",), "v2_update")
def activities_patch(activity_id):
    parse_query(request.args, {})
    with store.lock:
        row = get_or_404("activities", activity_id, "Activity", allow_deleted=False)
        now = sb.now()
        changes = activity_prepare(parse_body(body_json(), activity_body), row, now)
        previous = apply_changes(row, changes, now)
        if previous:
            emit("change", "activity", row, previous)
        return ok(row)
