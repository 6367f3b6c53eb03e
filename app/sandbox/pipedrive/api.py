"""The Pipedrive sandbox WSGI app: v2 (and a few v1) endpoints, auth, limits, control API."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from decimal import Decimal

from flask import Flask, g, request

from . import jsonutil
from .settings import COSTS, PipedriveSandboxSettings
from .state import Store, deal_product_sum, iso, quantize, v1_from_iso
from .validation import (
    ApiError,
    b_bool,
    b_contact_list,
    b_date,
    b_datetime,
    b_days,
    b_enum,
    b_int,
    b_int_list,
    b_nullable,
    b_num,
    b_probability,
    b_str,
    b_time,
    make_cursor,
    parse_body,
    parse_query,
    q_bool,
    q_csv_enum,
    q_csv_int,
    q_cursor,
    q_enum,
    q_int,
    q_rfc3339,
    q_str,
    validation_failed,
)
from .webhooks import WebhookDispatcher

BILLING_FREQUENCIES = ("one-time", "weekly", "monthly", "quarterly", "semi-annually", "annually")
TAX_METHODS = ("exclusive", "inclusive", "none")
FIELD_TYPES = ("varchar", "varchar_auto", "text", "double", "monetary", "date", "daterange",
               "time", "timerange", "enum", "set", "user", "org", "people", "phone", "address")


def json_response(body, status: int = 200, headers: dict | None = None):
    from flask import Response

    resp = Response(jsonutil.dumps(body), status=status,
                    content_type="application/json; charset=utf-8")
    for k, v in (headers or {}).items():
        resp.headers[k] = str(v)
    return resp


def ok(data, additional_data=None, status: int = 200):
    body = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    return json_response(body, status)


class RateLimiter:
    """Rolling 2 s burst windows per token (search has its own) and the daily token budget."""

    def __init__(self, settings: PipedriveSandboxSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.lock = threading.Lock()
        self.windows: dict[tuple[str, str], deque] = {}

    def _window(self, token: str, bucket: str) -> deque:
        return self.windows.setdefault((token, bucket), deque())

    def limit_for(self, kind: str, bucket: str) -> int:
        if bucket == "search":
            return self.settings.search_burst_limit
        return self.settings.oauth_burst_limit if kind == "oauth" else self.settings.burst_limit

    def _roll_day(self) -> None:
        today = self.settings.clock.now().date().isoformat()
        if self.store.budget_day != today:
            self.store.budget_day = today
            self.store.budget_used = 0

    def check(self, token: str, kind: str, bucket: str, cost: int) -> dict:
        now = time.monotonic()
        span = self.settings.burst_window_seconds
        with self.lock:
            win = self._window(token, bucket)
            while win and win[0] <= now - span:
                win.popleft()
            limit = self.limit_for(kind, bucket)
            headers = {"x-ratelimit-limit": limit}
            if len(win) >= limit:
                reset = max(1, math.ceil(win[0] + span - now))
                headers.update({"x-ratelimit-remaining": 0, "x-ratelimit-reset": reset,
                                "retry-after": reset})
                headers["x-daily-requests-left"] = self.daily_left()
                raise ApiError(429, "Request over limit", "RATE_LIMIT_EXCEEDED", headers=headers)
            with self.store.lock:
                self._roll_day()
                if self.store.budget_used + cost > self.settings.daily_budget:
                    headers.update({"x-ratelimit-remaining": max(0, limit - len(win)),
                                    "x-ratelimit-reset": max(1, math.ceil(span)),
                                    "x-daily-requests-left": 0})
                    raise ApiError(
                        429,
                        "Daily API token budget exceeded. Requests are blocked until the "
                        "budget resets at midnight.",
                        "DAILY_BUDGET_EXCEEDED", headers=headers,
                    )
                self.store.budget_used += cost
            win.append(now)
            headers["x-ratelimit-remaining"] = max(0, limit - len(win))
            headers["x-ratelimit-reset"] = max(1, math.ceil(win[0] + span - now))
            headers["x-daily-requests-left"] = self.daily_left()
            return headers

    def daily_left(self) -> int:
        with self.store.lock:
            self._roll_day()
            return max(0, self.settings.daily_budget - self.store.budget_used)

    def reset(self) -> None:
        with self.lock:
            self.windows.clear()


class Sandbox:
    """Everything one sandbox app holds; reachable as ``app.extensions['pipedrive_sandbox']``."""

    def __init__(self, settings: PipedriveSandboxSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.store = Store(settings.state_file)
        self.limiter = RateLimiter(settings, self.store)
        self.webhooks = WebhookDispatcher(self.store, settings)
        self.ledger: list[dict] = []
        self.ledger_lock = threading.Lock()
        self.faults: list[dict] = []
        self.fault_lock = threading.Lock()

    def now(self) -> str:
        return iso(self.clock.now())

    def reset(self) -> None:
        self.webhooks.clear()
        self.store.reset(self.now())
        self.limiter.reset()
        with self.ledger_lock:
            self.ledger.clear()
        with self.fault_lock:
            self.faults.clear()
        self.store.save()

    def seed(self, synthetic_deals: int = 0, random_seed: int = 42) -> dict:
        from .seed import seed_demo

        with self.store.lock:
            self.webhooks.clear()
            self.store.reset(self.now())
            summary = seed_demo(self.store, synthetic_deals=synthetic_deals,
                                random_seed=random_seed)
            self.store.save()
        return summary

    def take_fault(self, path: str) -> dict | None:
        with self.fault_lock:
            for fault in self.faults:
                if fault["remaining"] > 0 and path.startswith(fault["path_prefix"]):
                    fault["remaining"] -= 1
                    return fault
            self.faults = [f for f in self.faults if f["remaining"] > 0]
        return None

    def ledger_totals(self) -> dict:
        with self.ledger_lock:
            entries = list(self.ledger)
        return {
            "requests": len(entries),
            "tokens": sum(e["cost"] for e in entries),
            "by_status": _count(e["status"] for e in entries),
        }


def _count(items) -> dict:
    out: dict = {}
    for i in items:
        out[str(i)] = out.get(str(i), 0) + 1
    return out


# ---------------------------------------------------------------------------
def create_app(settings: PipedriveSandboxSettings | None = None) -> Flask:
    settings = settings or PipedriveSandboxSettings()
    app = Flask("pipedrive_sandbox")
    sb = Sandbox(settings)
    app.extensions["pipedrive_sandbox"] = sb
    store = sb.store
    meta: dict[str, tuple[int, str]] = {}

    def route(rule: str, methods: tuple[str, ...], kind: str, *, v1: bool = False):
        def deco(fn):
            rules = [f"/v1{rule}", f"/api/v1{rule}"] if v1 else [f"/api/v2{rule}"]
            for r in rules:
                app.add_url_rule(r, fn.__name__, fn, methods=list(methods))
            bucket = "search" if kind == "v2_search" else "general"
            meta[fn.__name__] = (COSTS[kind], bucket)
            return fn
        return deco

    # -- request pipeline -----------------------------------------------
    def auth() -> tuple[str, str]:
        token = request.headers.get("x-api-token") or request.args.get("api_token")
        if token:
            if token in settings.api_tokens:
                return token, "api_token"
            raise ApiError(401, "unauthorized access")
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            bearer = header[7:].strip()
            if bearer in settings.oauth_tokens:
                return bearer, "oauth"
        raise ApiError(401, "unauthorized access")

    @app.before_request
    def _before():
        g.cost = 0
        g.rl_headers = {}
        path = request.path
        g.is_api = path.startswith(("/api/", "/v1/"))
        if not g.is_api:
            return None
        g.started = time.monotonic()
        token, kind = auth()
        cost, bucket = meta.get(request.endpoint or "", (0, "general"))
        g.rl_headers = sb.limiter.check(token, kind, bucket, cost)
        g.cost = cost
        fault = sb.take_fault(path)
        if fault:
            status = fault["status"]
            msg = "Service Unavailable" if status == 503 else "Internal server error"
            raise ApiError(status, msg, "sandbox_injected_fault")
        return None

    @app.after_request
    def _after(resp):
        if getattr(g, "is_api", False):
            for k, v in g.rl_headers.items():
                resp.headers.setdefault(k, str(v))
            entry = {
                "method": request.method,
                "path": request.path,
                "query": {k: v for k, v in request.args.items() if k != "api_token"},
                "status": resp.status_code,
                "cost": g.cost if resp.status_code not in (401, 429) else 0,
                "time": sb.now(),
                "endpoint": request.endpoint,
            }
            with sb.ledger_lock:
                sb.ledger.append(entry)
            if request.method != "GET" and resp.status_code < 400 and settings.state_file:
                store.save()
        return resp

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        headers = dict(getattr(g, "rl_headers", {}) or {})
        headers.update(exc.headers)
        if exc.status in (401, 429):
            g.cost = 0
        return json_response(exc.body(), exc.status, headers)

    @app.errorhandler(404)
    def _not_found(exc):
        if request.path.startswith(("/api/", "/v1/")):
            return json_response(ApiError(404, "Not found", "not_found").body(), 404)
        return json_response({"error": "not found"}, 404)

    @app.errorhandler(405)
    def _method(exc):
        return json_response(ApiError(405, "Method not allowed").body(), 405)

    @app.errorhandler(500)
    def _internal(exc):
        return json_response(ApiError(500, "Internal server error").body(), 500)

    def body_json() -> dict:
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            if request.path.startswith("/api/v2/"):
                raise ApiError(415, "Unsupported Media Type: send a JSON body",
                               "ERR_UNSUPPORTED_MEDIA_TYPE")
            return request.form.to_dict()
        raw = request.get_data()
        if not raw:
            return {}
        try:
            return jsonutil.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "Invalid JSON in request body", "ERR_INVALID_JSON") from exc

    # -- generic helpers -------------------------------------------------
    def get_or_404(table: str, item_id: int, label: str, allow_deleted: bool = True) -> dict:
        row = store.t[table].get(item_id)
        if row is None or (not allow_deleted and row.get("is_deleted")):
            raise ApiError(404, f"{label} not found", "not_found")
        return row

    def page(rows: list[dict], args: dict, default_sort: str = "id") -> tuple[list, dict]:
        sort_by = args.get("sort_by", default_sort)
        direction = args.get("sort_direction", "asc")
        limit = args.get("limit", 100)
        cursor = args.get("cursor")
        desc = direction == "desc"

        def key(r):
            v = r.get(sort_by)
            return ("" if v is None else v, r["id"])

        if cursor is not None:
            if cursor.get("s") != sort_by or cursor.get("d") != direction:
                raise validation_failed([("cursor", "Invalid cursor.")])
            last = (cursor.get("v") if cursor.get("v") is not None else "", cursor["i"])
            try:
                rows = [r for r in rows if (key(r) < last if desc else key(r) > last)]
            except TypeError as exc:
                raise validation_failed([("cursor", "Invalid cursor.")]) from exc
        rows.sort(key=key, reverse=desc)
        chunk = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            tail = chunk[-1]
            next_cursor = make_cursor({"s": sort_by, "d": direction,
                                       "v": tail.get(sort_by), "i": tail["id"]})
        return chunk, {"next_cursor": next_cursor}

    def list_spec(sorts=("id", "update_time", "add_time"), **extra) -> dict:
        spec = {"cursor": q_cursor, "limit": q_int(1, 500),
                "sort_by": q_enum(*sorts), "sort_direction": q_enum("asc", "desc")}
        spec.update(extra)
        return spec

    def custom_fields_param(entity: str, raw: str | None) -> list[str] | None:
        if raw is None:
            return None
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        if len(keys) > 15:
            raise validation_failed([("custom_fields", "A maximum of 15 keys is allowed.")])
        return keys

    def with_custom(entity: str, row: dict, only: list[str] | None = None) -> dict:
        out = dict(row)
        values = row.get("custom_fields") or {}
        codes = store.custom_field_codes(entity)
        if only is not None:
            codes = [c for c in codes if c in only]
        out["custom_fields"] = {c: values.get(c) for c in codes}
        return out

    def typed_custom(entity: str, values: dict) -> dict:
        out = {}
        for code in store.custom_field_codes(entity):
            field = store.fields[entity][code]
            v = values.get(code)
            if v is None:
                out[code] = None
            elif field["field_type"] == "monetary":
                out[code] = {"type": "monetary", "value": v.get("value"),
                             "currency": v.get("currency")}
            elif field["field_type"] == "enum":
                out[code] = {"type": "enum", "id": v}
            elif field["field_type"] == "set":
                out[code] = {"type": "set", "values": [{"id": x} for x in v]}
            else:
                out[code] = {"type": field["field_type"], "value": v}
        return out

    def hook_data(entity: str, row: dict) -> dict:
        data = dict(row)
        if "custom_fields" in data:
            data["custom_fields"] = typed_custom(entity, row.get("custom_fields") or {})
        return data

    def validate_custom(entity: str, values) -> dict:
        if not isinstance(values, dict):
            raise ValueError("This value should be of type object.")
        out = {}
        for code, v in values.items():
            field = store.fields[entity].get(code)
            if field is None or not field["is_custom_field"]:
                raise ValueError(f"Parameter '{code}' is not allowed for this request")
            if v is None:
                out[code] = None
                continue
            ft = field["field_type"]
            if ft in ("varchar", "varchar_auto", "text", "phone", "address", "time"):
                out[code] = b_str()(v)
            elif ft == "double":
                out[code] = b_num(v)
            elif ft == "date":
                out[code] = b_date(v)
            elif ft == "monetary":
                if not isinstance(v, dict) or "value" not in v:
                    raise ValueError(f"{code}: monetary value needs 'value' and 'currency'")
                out[code] = {"value": b_num(v["value"]),
                             "currency": b_str()(v.get("currency", "EUR"))}
            elif ft == "enum":
                ids = {o["id"] for o in field["options"] or []}
                if b_int(v) not in ids:
                    raise ValueError(f"{code}: option {v} does not exist")
                out[code] = v
            elif ft == "set":
                ids = {o["id"] for o in field["options"] or []}
                if any(x not in ids for x in b_int_list(v)):
                    raise ValueError(f"{code}: unknown option")
                out[code] = v
            else:
                out[code] = b_int(v)
        return out

    def apply_changes(row: dict, changes: dict, now: str) -> dict | None:
        """Write changes; return previous values of changed fields, or None."""
        previous: dict = {}
        for key, value in changes.items():
            if key == "custom_fields":
                cf = row.setdefault("custom_fields", {})
                prev_cf = {}
                for code, v in value.items():
                    if cf.get(code) != v:
                        prev_cf[code] = cf.get(code)
                        cf[code] = v
                if prev_cf:
                    previous["custom_fields"] = prev_cf
            elif row.get(key) != value:
                previous[key] = row.get(key)
                row[key] = value
        if previous:
            previous["update_time"] = row["update_time"]
            row["update_time"] = now
            return previous
        return None

    def emit(action, entity, row, previous, source="api"):
        data = hook_data(entity, row) if row is not None else None
        if previous is not None and "custom_fields" in previous:
            previous = dict(previous)
            prev_cf = previous["custom_fields"]
            typed = typed_custom(entity, prev_cf)
            previous["custom_fields"] = {k: typed[k] for k in prev_cf if k in typed}
        sb.webhooks.emit(action=action, entity=entity, entity_id=row["id"], data=data,
                         previous=previous, change_source=source)

    def check_ref(table: str, value, name: str, problems: list) -> None:
        if value is not None and value not in store.t[table]:
            problems.append((name, f"{name.replace('_id', '').capitalize()} with id {value} "
                                   "does not exist."))

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

    def hook_out(w: dict) -> dict:
        return dict(w)

    @route("/webhooks", ("GET",), "v1_list", v1=True)
    def webhooks_list():
        with store.lock:
            return json_response({"status": "ok", "success": True,
                                  "data": [hook_out(w) for w in store.t["webhooks"].values()]})

    @route("/webhooks", ("POST",), "v1_create", v1=True)
    def webhooks_create():
        body = body_json()
        errors = {}
        url = body.get("subscription_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            errors["subscription_url"] = "Invalid subscription_url"
        actions = ("create", "change", "delete", "*")
        objects = ("activity", "deal", "deal_product", "deal_installment", "lead", "note",
                   "organization", "person", "pipeline", "product", "stage", "user", "*")
        if body.get("event_action") not in actions:
            errors["event_action"] = f"event_action must be one of {', '.join(actions)}"
        if body.get("event_object") not in objects:
            errors["event_object"] = f"event_object must be one of {', '.join(objects)}"
        version = str(body.get("version", "2.0"))
        if version not in ("1.0", "2.0"):
            errors["version"] = "version must be 1.0 or 2.0"
        if errors:
            return json_response({"status": "error", "success": False,
                                  "errors": errors}, 400)
        with store.lock:
            if len(store.t["webhooks"]) >= settings.max_webhooks:
                raise ApiError(400, f"Maximum number of webhooks ({settings.max_webhooks}) "
                                    "reached", "ERR_WEBHOOKS_LIMIT")
            now = sb.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")
            hook = {"id": None, "company_id": settings.company_id,
                    "owner_id": int(body.get("user_id") or 1),
                    "user_id": int(body.get("user_id") or 1),
                    "event_action": body["event_action"], "event_object": body["event_object"],
                    "subscription_url": url, "version": version, "is_active": True,
                    "add_time": now, "remove_time": None, "type": "general",
                    "http_auth_user": body.get("http_auth_user") or None,
                    "http_auth_password": body.get("http_auth_password") or None,
                    "additional_data": {}, "remove_reason": None, "last_delivery_time": None,
                    "last_http_status": None, "admin_id": 1, "name": body.get("name")}
            store.insert("webhooks", hook)
            return json_response({"status": "ok", "success": True, "data": hook_out(hook)}, 201)

    @route("/webhooks/<int:webhook_id>", ("DELETE",), "v1_delete", v1=True)
    def webhooks_delete(webhook_id):
        with store.lock:
            if webhook_id not in store.t["webhooks"]:
                raise ApiError(404, "Webhook not found", "not_found")
            del store.t["webhooks"][webhook_id]
            return json_response({"status": "ok", "success": True})

    # ===================================================================
    from .control import register_control

    register_control(app, sb, update_deal=update_deal, update_deal_product=update_deal_product,
                     with_custom=with_custom)
    return app

