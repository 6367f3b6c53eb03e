"""Sandbox-only control API under /_sandbox/ (no token; never under /api or /v1)."""

from __future__ import annotations

import html
from datetime import datetime

from flask import Flask, request

from . import jsonutil
from .resources.common import sb, store, with_custom
from .resources.deal_products import update_deal_product
from .resources.deals import update_deal
from .responses import json_response
from .validation import ApiError


class _ControlRoutes:
    """The control views, recorded at import and added to an app with their own names as
    endpoints (no blueprint prefix)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, list[str], object]] = []

    def route(self, rule: str, methods: list[str]):
        def deco(fn):
            self.entries.append((rule, methods, fn))
            return fn
        return deco

    def get(self, rule: str):
        return self.route(rule, ["GET"])

    def post(self, rule: str):
        return self.route(rule, ["POST"])

    def delete(self, rule: str):
        return self.route(rule, ["DELETE"])


control = _ControlRoutes()


def register_control(app: Flask) -> None:
    """Add the sandbox pages and the control API to the sandbox app."""
    from .pages import register_pages

    register_pages(app, app.extensions["pipedrive_sandbox"])
    for rule, methods, fn in control.entries:
        app.add_url_rule(rule, fn.__name__, fn, methods=methods)


def body() -> dict:
    """The JSON body, parsed exactly (numbers with a fraction as Decimal, never
    float, like the API's own bodies); none is {}; bad JSON is a plain 400."""
    raw = request.get_data()
    if not raw.strip():
        return {}
    try:
        data = jsonutil.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "Invalid JSON in request body", "ERR_INVALID_JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object", "ERR_INVALID_JSON")
    return data


def reply(data, status: int = 200):
    return json_response({"success": True, "data": data}, status)


@control.post("/_sandbox/reset")
def sandbox_reset():
    sb.reset()
    return reply({"reset": True})


@control.post("/_sandbox/seed")
def sandbox_seed():
    b = body()
    summary = sb.seed(int(b.get("synthetic_deals", 0)), int(b.get("random_seed", 42)))
    return reply(summary)


@control.get("/_sandbox/ledger")
def sandbox_ledger():
    with sb.ledger_lock:
        entries = list(sb.ledger)
    return reply({"entries": entries, "totals": sb.ledger_totals(),
                  "daily_budget": sb.settings.daily_budget,
                  "budget_used": store.budget_used})


@control.route("/_sandbox/ledger/reset", methods=["POST", "DELETE"])
def sandbox_ledger_reset():
    with sb.ledger_lock:
        sb.ledger.clear()
    return reply({"reset": True})


@control.post("/_sandbox/faults")
def sandbox_faults():
    b = body()
    status = int(b.get("status", 500))
    if status not in (500, 502, 503, 504):
        raise ApiError(400, "status must be 500, 502, 503 or 504")
    fault = {"remaining": int(b.get("count", 1)), "status": status,
             "path_prefix": b.get("path_prefix") or "/"}
    with sb.fault_lock:
        sb.faults.append(fault)
    return reply(fault)


@control.delete("/_sandbox/faults")
def sandbox_faults_clear():
    with sb.fault_lock:
        sb.faults.clear()
    return reply({"cleared": True})


@control.post("/_sandbox/limits")
def sandbox_limits():
    b = body()
    s = sb.settings
    for key in ("daily_budget", "burst_limit", "oauth_burst_limit", "search_burst_limit"):
        if key in b:
            setattr(s, key, int(b[key]))
    if "budget_used" in b:
        with store.lock:
            store.budget_day = sb.clock.now().date().isoformat()
            store.budget_used = int(b["budget_used"])
    if b.get("reset_burst"):
        sb.limiter.reset()
    return reply({"daily_budget": s.daily_budget, "burst_limit": s.burst_limit,
                  "search_burst_limit": s.search_burst_limit,
                  "budget_used": store.budget_used})


@control.get("/_sandbox/clock")
def sandbox_clock():
    return reply({"now": sb.now()})


@control.post("/_sandbox/clock")
def sandbox_clock_set():
    b = body()
    if "set" in b:
        sb.clock.set(datetime.fromisoformat(str(b["set"]).replace("Z", "+00:00")))
    if "advance_seconds" in b:
        sb.clock.advance(float(b["advance_seconds"]))
    return reply({"now": sb.now()})


@control.post("/_sandbox/deals/<int:deal_id>/ui-edit")
def sandbox_ui_edit(deal_id):
    """Change a deal as a user in the Pipedrive UI would (change_source "app").

    Body: any PATCH /api/v2/deals fields, plus optional
    ``products: [{"id": <deal product id>, "quantity": ..., ...}]``.
    """
    b = dict(body())
    products = b.pop("products", None) or []
    if not isinstance(products, list) or not all(
        isinstance(p, dict) and "id" in p for p in products
    ):
        raise ApiError(400, 'products must be a list of {"id": <deal product id>, ...}')
    with store.lock:
        for p in products:
            p = dict(p)
            dp_id = p.pop("id")
            update_deal_product(deal_id, dp_id, p, source="app")
        deal = update_deal(deal_id, b, source="app") if b else store.t["deals"].get(deal_id)
        if deal is None:
            raise ApiError(404, "Deal not found")
        return reply(with_custom("deal", deal))


@control.post("/_sandbox/webhooks/drain")
def sandbox_drain():
    timeout = float(body().get("timeout", 10))
    drained = sb.webhooks.drain(timeout)
    with sb.webhooks.cond:
        log = list(sb.webhooks.log)
    return reply({"drained": drained, "pending": sb.webhooks.pending(), "deliveries": log})


@control.get("/_sandbox/webhooks/deliveries")
def sandbox_deliveries():
    with sb.webhooks.cond:
        return reply(list(sb.webhooks.log))


@control.post("/_sandbox/webhooks/duplicate")
def sandbox_duplicate():
    sb.webhooks.duplicate = bool(body().get("enabled", True))
    return reply({"duplicate": sb.webhooks.duplicate})


@control.get("/_sandbox/summary")
def sandbox_summary():
    with store.lock:
        return reply({name: len(rows) for name, rows in store.t.items()})


@control.get("/_sandbox/")
def sandbox_home():
    with store.lock:
        names = {c: f["field_name"] for c, f in store.fields["deal"].items()}
        notes_by_deal: dict[int, list[str]] = {}
        for n in store.t["notes"].values():
            if n["deal_id"]:
                notes_by_deal.setdefault(n["deal_id"], []).append(n["content"])
        rows = []
        deals = sorted(store.t["deals"].values(), key=lambda d: d["id"])[:500]
        for d in deals:
            cf = ", ".join(f"{html.escape(names.get(k, k))}: {html.escape(str(v))}"
                           for k, v in (d.get("custom_fields") or {}).items()
                           if v is not None)
            notes = "<br>".join(html.escape(x) for x in notes_by_deal.get(d["id"], []))
            status = "deleted" if d["is_deleted"] else d["status"]
            rows.append(
                f"<tr><td><a href='/deal/{d['id']}'>{d['id']}</a></td>"
                f"<td>{html.escape(d['title'])}</td>"
                f"<td>{status}</td><td>{d['value']} {d['currency']}</td>"
                f"<td>{d['update_time']}</td><td>{cf}</td><td>{notes}</td></tr>"
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Pipedrive sandbox</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px;"
        "font-size:13px}table{border-collapse:collapse}</style></head><body>"
        f"<h1>Pipedrive sandbox: {html.escape(sb.settings.company_name)}</h1>"
        f"<p>{len(store.t['deals'])} deals (first 500 shown). Clock: {sb.now()}</p>"
        "<table><tr><th>ID</th><th>Title</th><th>Status</th><th>Value</th>"
        "<th>Updated</th><th>Custom fields</th><th>Notes</th></tr>"
        + "".join(rows) + "</table></body></html>"
    )
    from flask import Response

    return Response(page, content_type="text/html; charset=utf-8")
