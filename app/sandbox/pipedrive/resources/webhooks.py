"""v1 webhook subscriptions."""

from __future__ import annotations

from ..pipeline import RouteTable
from ..responses import json_response
from ..validation import ApiError
from .common import body_json, sb, settings, store

route = RouteTable()



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
