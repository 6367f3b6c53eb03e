"""v1 webhook management and v2 payload delivery (basic auth, retries, duplicates)."""

from __future__ import annotations

import base64
from functools import partial

import requests

TIMEOUT = 30
http_get = partial(requests.get, timeout=TIMEOUT)
http_post = partial(requests.post, timeout=TIMEOUT)
http_patch = partial(requests.patch, timeout=TIMEOUT)
http_delete = partial(requests.delete, timeout=TIMEOUT)


def _create_hook(sb, url: str, **extra) -> dict:
    payload = {"subscription_url": url, "event_action": "*", "event_object": "deal",
               "version": "2.0", "http_auth_user": "desk", "http_auth_password": "s3cret"}
    payload.update(extra)
    r = http_post(f"{sb.url}/v1/webhooks", headers=sb.headers(), json=payload)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def test_webhooks_create_list_delete_and_limits(pipedrive_sandbox):
    sb = pipedrive_sandbox
    sb.set_burst(200)  # 45 calls in a row would otherwise hit the 40/2 s burst limit
    hook = _create_hook(sb, "https://desk.example/hooks")
    assert hook["event_object"] == "deal" and hook["version"] == "2.0" and hook["is_active"]
    listed = http_get(f"{sb.url}/v1/webhooks", headers=sb.headers()).json()
    assert listed["success"] is True and [h["id"] for h in listed["data"]] == [hook["id"]]
    r = http_delete(f"{sb.url}/v1/webhooks/{hook['id']}", headers=sb.headers())
    assert r.status_code == 200 and r.json()["success"] is True
    assert http_get(f"{sb.url}/v1/webhooks", headers=sb.headers()).json()["data"] == []
    assert http_delete(f"{sb.url}/v1/webhooks/{hook['id']}",
                           headers=sb.headers()).status_code == 404
    bad = http_post(f"{sb.url}/v1/webhooks", headers=sb.headers(),
                        json={"subscription_url": "ftp://x", "event_action": "update",
                              "event_object": "deal"})
    assert bad.status_code == 400 and bad.json()["success"] is False
    for i in range(40):
        _create_hook(sb, f"https://desk.example/hooks/{i}")
    r = http_post(f"{sb.url}/v1/webhooks", headers=sb.headers(),
                      json={"subscription_url": "https://x.example", "event_action": "*",
                            "event_object": "*"})
    assert r.status_code == 400


def test_delivery_v2_payload_with_basic_auth(pipedrive_seeded, webhook_receiver):
    sb = pipedrive_seeded
    hook = _create_hook(sb, webhook_receiver.url)
    fields = sb.get("/api/v2/dealFields", limit=500).json()["data"]
    po = next(f["field_code"] for f in fields if f["field_name"] == "PO number")
    r = http_patch(f"{sb.url}/api/v2/deals/1", headers=sb.headers(),
                       json={"title": "Renamed", "custom_fields": {po: "PO-1"}})
    assert r.status_code == 200
    sb.drain_webhooks()
    assert len(webhook_receiver.requests) == 1
    req = webhook_receiver.requests[0]
    expected = "Basic " + base64.b64encode(b"desk:s3cret").decode()
    assert req["authorization"] == expected
    assert req["content_type"].startswith("application/json")
    payload = req["body"]
    meta = payload["meta"]
    assert meta["action"] == "change" and meta["entity"] == "deal"
    assert meta["entity_id"] == "1" and meta["version"] == "2.0"
    assert meta["webhook_id"] == str(hook["id"]) and meta["attempt"] == 1
    assert meta["change_source"] == "api" and meta["is_bulk_edit"] is False
    for key in ("id", "timestamp", "correlation_id", "company_id", "user_id", "host"):
        assert meta[key], key
    assert payload["data"]["title"] == "Renamed"
    assert payload["data"]["custom_fields"][po] == {"type": "varchar", "value": "PO-1"}
    previous = payload["previous"]
    assert set(previous) == {"title", "custom_fields", "update_time"}
    assert previous["custom_fields"] == {po: None}
    # a create has previous = null
    http_post(f"{sb.url}/api/v2/deals", headers=sb.headers(), json={"title": "Fresh"})
    sb.drain_webhooks()
    created = webhook_receiver.requests[-1]["body"]
    assert created["meta"]["action"] == "create" and created["previous"] is None


def test_filters_by_action_and_object(pipedrive_seeded, webhook_receiver):
    sb = pipedrive_seeded
    _create_hook(sb, webhook_receiver.url, event_action="create", event_object="note")
    http_patch(f"{sb.url}/api/v2/deals/1", headers=sb.headers(), json={"title": "x"})
    http_post(f"{sb.url}/v1/notes", headers=sb.headers(), json={"content": "n", "deal_id": 1})
    sb.drain_webhooks()
    assert [r["body"]["meta"]["entity"] for r in webhook_receiver.requests] == ["note"]


def test_retries_after_failures_then_success(pipedrive_seeded, webhook_receiver):
    sb = pipedrive_seeded
    _create_hook(sb, webhook_receiver.url)
    webhook_receiver.fail_first = 2
    http_patch(f"{sb.url}/api/v2/deals/2", headers=sb.headers(), json={"title": "retry"})
    log = sb.drain_webhooks()["deliveries"]
    attempts = [r["body"]["meta"]["attempt"] for r in webhook_receiver.requests]
    assert attempts == [1, 2, 3]
    ids = {r["body"]["meta"]["id"] for r in webhook_receiver.requests}
    assert len(ids) == 1  # the same event, retried
    assert [e["status"] for e in log] == [500, 500, 200]
    assert [e["retry_in_seconds"] for e in log] == [0.003, 0.03, None]


def test_gives_up_after_three_retries(pipedrive_seeded, webhook_receiver):
    sb = pipedrive_seeded
    _create_hook(sb, webhook_receiver.url)
    webhook_receiver.fail_first = 10
    http_patch(f"{sb.url}/api/v2/deals/2", headers=sb.headers(), json={"title": "lost"})
    log = sb.drain_webhooks()["deliveries"]
    assert len(webhook_receiver.requests) == 4  # first attempt + retries after 3, 30, 150 s
    assert [e["ok"] for e in log] == [False] * 4


def test_unique_event_ids_and_duplicate_switch(pipedrive_seeded, webhook_receiver):
    sb = pipedrive_seeded
    _create_hook(sb, webhook_receiver.url)
    for i in range(3):
        http_patch(f"{sb.url}/api/v2/deals/3", headers=sb.headers(), json={"title": f"t{i}"})
    sb.drain_webhooks()
    ids = [r["body"]["meta"]["id"] for r in webhook_receiver.requests]
    assert len(ids) == 3 and len(set(ids)) == 3
    sb.duplicate_webhooks(True)
    http_patch(f"{sb.url}/api/v2/deals/3", headers=sb.headers(), json={"title": "dup"})
    sb.drain_webhooks()
    dup_ids = [r["body"]["meta"]["id"] for r in webhook_receiver.requests[3:]]
    assert len(dup_ids) == 2 and dup_ids[0] == dup_ids[1]


def test_ui_edit_fires_app_change_and_bumps_update_time(pipedrive_seeded, webhook_receiver):
    sb = pipedrive_seeded
    _create_hook(sb, webhook_receiver.url)
    before = sb.get("/api/v2/deals/4").json()["data"]
    dp = sb.get("/api/v2/deals/4/products").json()["data"][0]
    sb.advance_clock(120)
    sb.ui_edit(4, products=[{"id": dp["id"], "quantity": dp["quantity"] + 1}])
    sb.drain_webhooks()
    after = sb.get("/api/v2/deals/4").json()["data"]
    assert after["update_time"] > before["update_time"]
    assert after["value"] != before["value"]
    bodies = [r["body"] for r in webhook_receiver.requests]
    assert bodies and all(b["meta"]["change_source"] == "app" for b in bodies)
    assert {b["meta"]["entity"] for b in bodies} == {"deal"}  # hook is for deals only
    assert "value" in bodies[-1]["previous"]
    # the ledger only records API calls, not the UI edit
    assert all(not e["path"].startswith("/_sandbox") for e in sb.ledger()["entries"])


def test_ban_after_ten_failed_first_attempts(pipedrive_seeded, webhook_receiver):
    sb = pipedrive_seeded
    sb.set_burst(500)
    _create_hook(sb, webhook_receiver.url)
    webhook_receiver.fail_first = 10_000
    for i in range(10):
        http_patch(f"{sb.url}/api/v2/deals/5", headers=sb.headers(), json={"title": f"b{i}"})
    sb.drain_webhooks()
    assert len(webhook_receiver.requests) == 40  # 10 events x (1 + 3 retries)
    http_patch(f"{sb.url}/api/v2/deals/5", headers=sb.headers(), json={"title": "banned"})
    log = sb.drain_webhooks()["deliveries"]
    assert len(webhook_receiver.requests) == 40  # lost while banned
    assert log[-1]["dropped"] == "webhook banned"
    sb.advance_clock(31 * 60)
    webhook_receiver.fail_first = 0
    http_patch(f"{sb.url}/api/v2/deals/5", headers=sb.headers(), json={"title": "back"})
    sb.drain_webhooks()
    assert webhook_receiver.requests[-1]["body"]["data"]["title"] == "back"


def test_deleted_after_three_days_without_success(pipedrive_seeded, webhook_receiver):
    sb = pipedrive_seeded
    hook = _create_hook(sb, webhook_receiver.url)
    webhook_receiver.fail_first = 10_000
    http_patch(f"{sb.url}/api/v2/deals/5", headers=sb.headers(), json={"title": "fail"})
    sb.drain_webhooks()
    sb.advance_clock(3 * 86400 + 60)
    http_patch(f"{sb.url}/api/v2/deals/5", headers=sb.headers(), json={"title": "gone"})
    sb.drain_webhooks()
    hooks = http_get(f"{sb.url}/v1/webhooks", headers=sb.headers()).json()["data"]
    assert hook["id"] not in [h["id"] for h in hooks]
