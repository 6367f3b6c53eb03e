"""Deals (v2): list, get, create, update, delete."""

from __future__ import annotations

from decimal import Decimal

from flask import request

from ..pipeline import RouteTable
from ..responses import ok
from ..state import quantize
from ..validation import (
    ApiError,
    b_bool,
    b_date,
    b_datetime,
    b_enum,
    b_int,
    b_int_list,
    b_nullable,
    b_num,
    b_str,
    parse_body,
    parse_query,
    q_csv_enum,
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
# Deals
DEAL_STATUS = ("open", "won", "lost", "deleted")
deal_body = {
    "title": b_str(255, allow_empty=False), "owner_id": b_int,
    "person_id": b_nullable(b_int), "org_id": b_nullable(b_int),
    "pipeline_id": b_int, "stage_id": b_int, "value": b_num,
    "currency": b_str(3), "add_time": b_datetime, "won_time": b_nullable(b_datetime),
    "lost_time": b_nullable(b_datetime), "close_time": b_nullable(b_datetime),
    "status": b_enum("open", "won", "lost"), "probability": b_nullable(b_num),
    "lost_reason": b_nullable(b_str(255)), "visible_to": b_enum(1, 3, 5, 7),
    "expected_close_date": b_nullable(b_date), "label_ids": b_int_list,
    "origin_id": b_nullable(b_str(255)), "channel": b_nullable(b_int),
    "channel_id": b_nullable(b_str(255)), "is_archived": b_bool,
    "archive_time": b_nullable(b_datetime),
}

def deal_changes(body: dict, deal: dict | None, now: str) -> dict:
    spec = dict(deal_body)
    spec["custom_fields"] = lambda v: validate_custom("deal", v)
    changes = parse_body(body, spec, required=("title",) if deal is None else ())
    problems: list = []
    check_ref("persons", changes.get("person_id"), "person_id", problems)
    check_ref("organizations", changes.get("org_id"), "org_id", problems)
    check_ref("users", changes.get("owner_id"), "owner_id", problems)
    if "currency" in changes:
        changes["currency"] = changes["currency"].upper()
        if len(changes["currency"]) != 3:
            problems.append(("currency", "Currency must be a 3-letter code."))
    if "stage_id" in changes:
        stage = store.t["stages"].get(changes["stage_id"])
        if stage is None:
            problems.append(("stage_id",
                             f"Stage with id {changes['stage_id']} does not exist."))
        elif "pipeline_id" in changes and changes["pipeline_id"] != stage["pipeline_id"]:
            problems.append(("stage_id", "Stage does not belong to the given pipeline."))
        else:
            changes["pipeline_id"] = stage["pipeline_id"]
    elif "pipeline_id" in changes:
        if changes["pipeline_id"] not in store.t["pipelines"]:
            problems.append(("pipeline_id", "Pipeline does not exist."))
        elif deal is None or changes["pipeline_id"] != deal["pipeline_id"]:
            first = first_stage(changes["pipeline_id"])
            if first is None:
                problems.append(("pipeline_id", "Pipeline has no stages."))
            else:
                changes["stage_id"] = first["id"]
    if problems:
        raise validation_failed(problems)
    if "value" in changes:
        cur = changes.get("currency") or (deal or {}).get("currency") or "EUR"
        changes["value"] = quantize(changes["value"], cur)
    if "stage_id" in changes and (deal is None or deal["stage_id"] != changes["stage_id"]):
        changes["stage_change_time"] = now
    status = changes.get("status")
    if status and (deal is None or deal["status"] != status):
        if status == "won":
            changes.setdefault("won_time", now)
            changes.setdefault("close_time", changes["won_time"])
            changes.setdefault("lost_time", None)
        elif status == "lost":
            changes.setdefault("lost_time", now)
            changes.setdefault("close_time", changes["lost_time"])
            changes.setdefault("won_time", None)
        else:
            changes.update(won_time=None, lost_time=None, close_time=None)
    if changes.get("is_archived") and "archive_time" not in changes:
        changes["archive_time"] = now
    return changes

def first_stage(pipeline_id: int) -> dict | None:
    stages = [s for s in store.t["stages"].values() if s["pipeline_id"] == pipeline_id]
    return min(stages, key=lambda s: (s["order_nr"], s["id"])) if stages else None

def new_deal(now: str) -> dict:
    owner = min(store.t["users"]) if store.t["users"] else 1
    live = [p for p in store.t["pipelines"].values() if not p["is_deleted"]]
    # New deals go to the company's default (selected) pipeline, like in Pipedrive.
    default = min(live, key=lambda p: (not p.get("is_selected"), p["order_nr"], p["id"]),
                  default=None)
    pipeline = default["id"] if default else None
    stage = first_stage(pipeline) if pipeline else None
    return {
        "id": None, "title": "", "creator_user_id": owner, "owner_id": owner,
        "value": Decimal(0), "currency": "EUR", "add_time": now, "update_time": now,
        "stage_change_time": None, "is_deleted": False, "is_archived": False,
        "archive_time": None, "status": "open", "probability": None,
        "lost_reason": None, "visible_to": 3, "close_time": None,
        "pipeline_id": pipeline, "won_time": None, "lost_time": None,
        "expected_close_date": None, "label_ids": [],
        "stage_id": stage["id"] if stage else None,
        "person_id": None, "org_id": None, "origin": "API", "origin_id": None,
        "channel": None, "channel_id": None, "arr": None, "mrr": None, "acv": None,
        "custom_fields": {},
    }

@route("/deals", ("GET",), "v2_list")
def deals_list():
    spec = list_spec(
        filter_id=q_int(1), ids=q_csv_int(100), owner_id=q_int(1), person_id=q_int(1),
        org_id=q_int(1), pipeline_id=q_int(1), stage_id=q_int(1),
        status=q_csv_enum(*DEAL_STATUS), updated_since=q_rfc3339,
        updated_until=q_rfc3339, include_fields=q_str(), custom_fields=q_str(),
    )
    args = parse_query(request.args, spec)
    if "filter_id" in args:
        raise ApiError(404, "Filter not found", "not_found")
    only = custom_fields_param("deal", args.get("custom_fields"))
    statuses = set(args.get("status") or ("open", "won", "lost"))
    with store.lock:
        if "ids" in args:
            rows = [store.t["deals"][i] for i in set(args["ids"]) if i in store.t["deals"]]
        else:
            rows = list(store.t["deals"].values())
        out = []
        for d in rows:
            if d["is_archived"]:
                continue
            st = "deleted" if d["is_deleted"] else d["status"]
            if st not in statuses:
                continue
            if any(k in args and d[k] != args[k] for k in
                   ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id")):
                continue
            if "updated_since" in args and d["update_time"] < args["updated_since"]:
                continue
            if "updated_until" in args and d["update_time"] >= args["updated_until"]:
                continue
            out.append(d)
        chunk, extra = page(out, args)
        data = [with_custom("deal", d, only) for d in chunk]
    return ok(data, extra)

@route("/deals/<int:deal_id>", ("GET",), "v2_get")
def deals_get(deal_id):
    args = parse_query(request.args, {"include_fields": q_str(), "custom_fields": q_str()})
    only = custom_fields_param("deal", args.get("custom_fields"))
    with store.lock:
        return ok(with_custom("deal", get_or_404("deals", deal_id, "Deal"), only))

@route("/deals", ("POST",), "v2_create")
def deals_create():
    with store.lock:
        now = sb.now()
        deal = new_deal(now)
        changes = deal_changes(body_json(), None, now)
        cf = changes.pop("custom_fields", {})
        deal.update(changes)
        deal["custom_fields"] = {k: v for k, v in cf.items() if v is not None}
        if deal["stage_id"] is None:
            raise validation_failed([("stage_id", "No pipeline/stage exists yet.")])
        store.insert("deals", deal)
        emit("create", "deal", deal, None)
        return ok(with_custom("deal", deal))

def update_deal(deal_id: int, body: dict, source: str = "api"):
    with store.lock:
        deal = get_or_404("deals", deal_id, "Deal")
        if deal["is_deleted"]:
            raise ApiError(404, "Deal not found", "not_found")
        now = sb.now()
        changes = deal_changes(body, deal, now)
        if "currency" in changes and "value" not in changes:
            changes["value"] = quantize(deal["value"], changes["currency"])
        previous = apply_changes(deal, changes, now)
        if previous:
            emit("change", "deal", deal, previous, source)
        return deal

@route("/deals/<int:deal_id>", ("PATCH",), "v2_update")
def deals_patch(deal_id):
    parse_query(request.args, {})
    deal = update_deal(deal_id, body_json())
    with store.lock:
        return ok(with_custom("deal", deal))

@route("/deals/<int:deal_id>", ("DELETE",), "v2_delete")
def deals_delete(deal_id):
    parse_query(request.args, {})
    with store.lock:
        deal = get_or_404("deals", deal_id, "Deal")
        if deal["is_deleted"]:
            raise ApiError(404, "Deal not found", "not_found")
        now = sb.now()
        previous = apply_changes(deal, {"is_deleted": True, "status": "deleted"}, now)
        emit("delete", "deal", deal, previous)
        return ok({"id": deal_id})
