"""Pipelines and stages (v2)."""

from __future__ import annotations

from flask import request

from ..pipeline import RouteTable
from ..responses import ok
from ..validation import (
    b_bool,
    b_days,
    b_int,
    b_nullable,
    b_probability,
    b_str,
    parse_body,
    parse_query,
    q_int,
    validation_failed,
)
from .common import apply_changes, body_json, emit, get_or_404, list_spec, page, sb, store

route = RouteTable()


# ===================================================================
# Pipelines and stages
pipeline_body = {"name": b_str(255, allow_empty=False),
                 "is_deal_probability_enabled": b_bool}
stage_body = {"name": b_str(255, allow_empty=False), "pipeline_id": b_int,
              "deal_probability": b_probability, "is_deal_rot_enabled": b_bool,
              "days_to_rotten": b_nullable(b_days)}

@route("/pipelines", ("POST",), "v2_create")
def pipelines_create():
    parse_query(request.args, {})
    with store.lock:
        changes = parse_body(body_json(), pipeline_body, required=("name",))
        now = sb.now()
        order = max((p["order_nr"] for p in store.t["pipelines"].values()), default=0)
        row = {"id": None, "name": "", "order_nr": order + 1, "is_selected": False,
               "is_deal_probability_enabled": False, "is_deleted": False,
               "add_time": now, "update_time": now, **changes}
        store.insert("pipelines", row)
        emit("create", "pipeline", row, None)
        return ok(row)

@route("/pipelines/<int:pipeline_id>", ("PATCH",), "v2_update")
def pipelines_patch(pipeline_id):
    parse_query(request.args, {})
    with store.lock:
        row = get_or_404("pipelines", pipeline_id, "Pipeline", allow_deleted=False)
        previous = apply_changes(row, parse_body(body_json(), pipeline_body), sb.now())
        if previous:
            emit("change", "pipeline", row, previous)
        return ok(row)

def check_stage_pipeline(changes: dict) -> None:
    if "pipeline_id" in changes:
        pipeline = store.t["pipelines"].get(changes["pipeline_id"])
        if pipeline is None or pipeline["is_deleted"]:
            raise validation_failed([("pipeline_id", "Pipeline does not exist.")])

@route("/stages", ("POST",), "v2_create")
def stages_create():
    parse_query(request.args, {})
    with store.lock:
        changes = parse_body(body_json(), stage_body, required=("name", "pipeline_id"))
        check_stage_pipeline(changes)
        now = sb.now()
        order = max((s["order_nr"] for s in store.t["stages"].values()
                     if s["pipeline_id"] == changes["pipeline_id"]), default=0)
        row = {"id": None, "order_nr": order + 1, "name": "", "is_deleted": False,
               "deal_probability": 100, "pipeline_id": None, "is_deal_rot_enabled": False,
               "days_to_rotten": None, "add_time": now, "update_time": now, **changes}
        store.insert("stages", row)
        emit("create", "stage", row, None)
        return ok(row)

@route("/stages/<int:stage_id>", ("PATCH",), "v2_update")
def stages_patch(stage_id):
    parse_query(request.args, {})
    with store.lock:
        row = get_or_404("stages", stage_id, "Stage", allow_deleted=False)
        changes = parse_body(body_json(), stage_body)
        check_stage_pipeline(changes)
        previous = apply_changes(row, changes, sb.now())
        if previous:
            emit("change", "stage", row, previous)
        return ok(row)

@route("/pipelines", ("GET",), "v2_list")
def pipelines_list():
    args = parse_query(request.args, list_spec())
    with store.lock:
        chunk, extra = page([p for p in store.t["pipelines"].values()
                             if not p["is_deleted"]], args)
        return ok(chunk, extra)

@route("/pipelines/<int:pipeline_id>", ("GET",), "v2_get")
def pipelines_get(pipeline_id):
    parse_query(request.args, {})
    with store.lock:
        return ok(get_or_404("pipelines", pipeline_id, "Pipeline"))

@route("/stages", ("GET",), "v2_list")
def stages_list():
    args = parse_query(request.args, list_spec(("id", "update_time", "add_time", "order_nr"),
                                               pipeline_id=q_int(1)))
    with store.lock:
        rows = [s for s in store.t["stages"].values() if not s["is_deleted"]
                and ("pipeline_id" not in args or s["pipeline_id"] == args["pipeline_id"])]
        chunk, extra = page(rows, args)
        return ok(chunk, extra)

@route("/stages/<int:stage_id>", ("GET",), "v2_get")
def stages_get(stage_id):
    parse_query(request.args, {})
    with store.lock:
        return ok(get_or_404("stages", stage_id, "Stage"))
