"""Contract tests: deals, deal products, discounts, installments (plain requests)."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest
import requests

TIMEOUT = 30
http_get = partial(requests.get, timeout=TIMEOUT)
http_post = partial(requests.post, timeout=TIMEOUT)
http_patch = partial(requests.patch, timeout=TIMEOUT)
http_delete = partial(requests.delete, timeout=TIMEOUT)

pytestmark = pytest.mark.usefixtures("pipedrive_seeded")


def _all_deals(sb, **params) -> list[dict]:
    out, cursor = [], None
    while True:
        p = dict(params)
        if cursor:
            p["cursor"] = cursor
        r = sb.get("/api/v2/deals", **p)
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body["data"])
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            return out


def test_auth_by_header_query_and_bearer(pipedrive_seeded):
    sb = pipedrive_seeded
    assert http_get(f"{sb.url}/api/v2/deals/1",
                        headers={"x-api-token": sb.api_token}).status_code == 200
    assert http_get(f"{sb.url}/api/v2/deals/1",
                        params={"api_token": sb.api_token}).status_code == 200
    r = http_get(f"{sb.url}/api/v2/deals/1", headers={"x-api-token": "nope"})
    assert r.status_code == 401
    body = r.json()
    assert body["success"] is False and body["error"] == "unauthorized access"
    assert body["data"] is None and "error_info" in body
    assert http_get(f"{sb.url}/api/v2/deals/1").status_code == 401
    bearer = {"Authorization": "Bearer oauth-123"}
    assert http_get(f"{sb.url}/api/v2/deals/1", headers=bearer).status_code == 401
    sb.settings.oauth_tokens = ("oauth-123",)
    assert http_get(f"{sb.url}/api/v2/deals/1", headers=bearer).status_code == 200


def test_unknown_and_malformed_params_are_400(pipedrive_seeded):
    sb = pipedrive_seeded
    r = sb.get("/api/v2/deals", foo="1")
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False
    assert body["error"] == (
        "Validation failed: foo: Parameter 'foo' is not allowed for this request"
    )
    assert body["code"] == "ERR_SCHEMA_VALIDATION_FAILED"
    for params in ({"limit": "abc"}, {"limit": "501"}, {"limit": "0"},
                   {"ids": ",".join(str(i) for i in range(1, 102))},
                   {"status": "won,archived"}, {"sort_by": "title"},
                   {"sort_direction": "up"}, {"updated_since": "2026-01-01"},
                   {"cursor": "not-a-cursor"}):
        r = sb.get("/api/v2/deals", **params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"].startswith("Validation failed: ")
    assert sb.get("/api/v2/deals", ids=",".join(str(i) for i in range(1, 101))).status_code == 200
    r = http_patch(f"{sb.url}/api/v2/deals/1", headers=sb.headers(),
                       json={"title": "x", "colour": "red"})
    assert r.status_code == 400
    assert "Parameter 'colour' is not allowed" in r.json()["error"]
    r = http_patch(f"{sb.url}/api/v2/deals/1", headers=sb.headers(), json={"value": "12"})
    assert r.status_code == 400


def test_cursor_paging_returns_every_deal_once(pipedrive_seeded):
    sb = pipedrive_seeded
    deals = _all_deals(sb, limit=37)
    ids = [d["id"] for d in deals]
    assert len(ids) == len(set(ids)) == 200  # 208 minus 8 deleted
    assert ids == sorted(ids)
    assert all(d["is_deleted"] is False for d in deals)
    default = sb.get("/api/v2/deals").json()
    assert len(default["data"]) == 100 and default["additional_data"]["next_cursor"]
    deleted = _all_deals(sb, status="deleted")
    assert len(deleted) == 8 and all(d["is_deleted"] for d in deleted)
    desc = _all_deals(sb, limit=50, sort_by="update_time", sort_direction="desc")
    keys = [(d["update_time"], d["id"]) for d in desc]
    assert keys == sorted(keys, reverse=True) and len(desc) == 200


def test_filters_status_pipeline_stage_owner_ids(pipedrive_seeded):
    sb = pipedrive_seeded
    everything = _all_deals(sb, limit=500)
    won = _all_deals(sb, status="won", limit=500)
    assert won and all(d["status"] == "won" for d in won)
    assert len(won) == sum(d["status"] == "won" for d in everything)
    won_lost = _all_deals(sb, status="won,lost", limit=500)
    assert {d["status"] for d in won_lost} == {"won", "lost"}
    some = everything[5]
    for key in ("pipeline_id", "stage_id", "owner_id", "person_id", "org_id"):
        got = _all_deals(sb, **{key: some[key]}, limit=500)
        assert got and all(d[key] == some[key] for d in got)
        assert len(got) == sum(d[key] == some[key] for d in everything)
    got = sb.get("/api/v2/deals", ids="3,1,2,9999").json()["data"]
    assert [d["id"] for d in got] == [1, 2, 3]


def test_updated_since_and_until(pipedrive_seeded):
    sb = pipedrive_seeded
    everything = _all_deals(sb, limit=500)
    times = sorted(d["update_time"] for d in everything)
    pivot = times[len(times) // 2]
    newer = _all_deals(sb, updated_since=pivot, limit=500)
    older = _all_deals(sb, updated_until=pivot, limit=500)
    assert all(d["update_time"] >= pivot for d in newer)
    assert all(d["update_time"] < pivot for d in older)
    assert len(newer) + len(older) == len(everything)


def test_get_deal_shape_and_404(pipedrive_seeded):
    sb = pipedrive_seeded
    deal = sb.get("/api/v2/deals/1").json()["data"]
    for key in ("id", "title", "creator_user_id", "owner_id", "value", "currency", "add_time",
                "update_time", "stage_change_time", "is_deleted", "status", "probability",
                "lost_reason", "visible_to", "close_time", "pipeline_id", "won_time",
                "lost_time", "expected_close_date", "label_ids", "stage_id", "person_id",
                "org_id", "custom_fields", "origin_id", "channel"):
        assert key in deal, key
    assert deal["add_time"].endswith("Z") and "T" in deal["add_time"]
    assert isinstance(deal["value"], int | float)
    r = sb.get("/api/v2/deals/99999")
    assert r.status_code == 404 and r.json()["success"] is False


def test_money_is_exact_json_number(pipedrive_seeded):
    sb = pipedrive_seeded
    r = sb.get("/api/v2/deals", limit=500, status="won,open,lost")
    deals = r.json(parse_float=Decimal)["data"]
    kwd = [d for d in deals if d["currency"] == "KWD"]
    jpy = [d for d in deals if d["currency"] == "JPY"]
    assert kwd and jpy
    assert all(isinstance(d["value"], int) for d in jpy)
    assert all(Decimal(d["value"]).as_tuple().exponent >= -3 for d in kwd)
    assert any(Decimal(d["value"]).as_tuple().exponent == -3 for d in kwd)
    assert '"value":"' not in r.text  # numbers, not strings


def test_create_patch_delete_deal_and_update_time(pipedrive_seeded):
    sb = pipedrive_seeded
    h = sb.headers()
    r = http_post(f"{sb.url}/api/v2/deals", headers=h,
                      json={"title": "New deal", "value": 1234.5, "currency": "EUR",
                            "stage_id": 2, "person_id": 1, "org_id": 1})
    assert r.status_code == 200, r.text
    deal = r.json()["data"]
    assert deal["pipeline_id"] == 1 and deal["stage_id"] == 2 and deal["status"] == "open"
    assert http_post(f"{sb.url}/api/v2/deals", headers=h, json={"value": 1}).status_code == 400
    assert http_post(f"{sb.url}/api/v2/deals", headers=h,
                         json={"title": "x", "stage_id": 999}).status_code == 400
    before = deal["update_time"]
    sb.advance_clock(60)
    fields = sb.get("/api/v2/dealFields", limit=500).json()["data"]
    po = next(f["field_code"] for f in fields if f["field_name"] == "PO number")
    r = http_patch(f"{sb.url}/api/v2/deals/{deal['id']}", headers=h,
                       json={"custom_fields": {po: "PO-777"}, "stage_id": 9})
    assert r.status_code == 200, r.text
    patched = r.json()["data"]
    assert patched["custom_fields"][po] == "PO-777"
    assert patched["stage_id"] == 9 and patched["pipeline_id"] == 3
    assert patched["update_time"] > before
    assert sb.get(f"/api/v2/deals/{deal['id']}").json()["data"]["custom_fields"][po] == "PO-777"
    since = _all_deals(sb, updated_since=patched["update_time"])
    assert [d["id"] for d in since] == [deal["id"]]
    r = http_patch(f"{sb.url}/api/v2/deals/{deal['id']}", headers=h,
                       json={"custom_fields": {"0" * 40: "x"}})
    assert r.status_code == 400
    r = http_patch(f"{sb.url}/api/v2/deals/{deal['id']}", headers=h, json={"status": "won"})
    won = r.json()["data"]
    assert won["status"] == "won" and won["won_time"] and won["close_time"]
    r = http_delete(f"{sb.url}/api/v2/deals/{deal['id']}", headers=h)
    assert r.status_code == 200 and r.json()["data"] == {"id": deal["id"]}
    gone = sb.get(f"/api/v2/deals/{deal['id']}").json()["data"]
    assert gone["is_deleted"] is True and gone["status"] == "deleted"
    assert deal["id"] not in [d["id"] for d in _all_deals(sb, limit=500)]
    assert deal["id"] in [d["id"] for d in _all_deals(sb, status="deleted")]


def test_custom_fields_param_limits_keys(pipedrive_seeded):
    sb = pipedrive_seeded
    fields = sb.get("/api/v2/dealFields", limit=500).json()["data"]
    custom = [f["field_code"] for f in fields if f["is_custom_field"]]
    got = sb.get("/api/v2/deals", custom_fields=custom[0], limit=5).json()["data"]
    assert all(list(d["custom_fields"]) == [custom[0]] for d in got)
    r = sb.get("/api/v2/deals", custom_fields=",".join("a" * 40 for _ in range(16)))
    assert r.status_code == 400


def test_deal_products_single_and_batch(pipedrive_seeded):
    sb = pipedrive_seeded
    products = sb.get("/api/v2/deals/1/products").json()["data"]
    assert products and all(p["deal_id"] == 1 for p in products)
    for key in ("id", "deal_id", "product_id", "name", "item_price", "quantity", "discount",
                "discount_type", "tax", "tax_method", "sum", "currency", "is_enabled",
                "billing_frequency", "billing_frequency_cycles", "billing_start_date"):
        assert key in products[0], key
    ids = ",".join(str(i) for i in range(1, 101))
    rows, cursor = [], None
    while True:
        params = {"deal_ids": ids, "limit": 60}
        if cursor:
            params["cursor"] = cursor
        body = sb.get("/api/v2/deals/products", **params).json()
        rows += body["data"]
        cursor = body["additional_data"]["next_cursor"]
        if not cursor:
            break
    expected = sum(len(sb.sandbox.store.deal_products(i)) for i in range(1, 101))
    assert len(rows) == expected and len({r["id"] for r in rows}) == expected
    assert {r["deal_id"] for r in rows} <= set(range(1, 101))
    too_many = ",".join(str(i) for i in range(1, 102))
    assert sb.get("/api/v2/deals/products", deal_ids=too_many).status_code == 400
    assert sb.get("/api/v2/deals/products").status_code == 400


def test_add_product_recomputes_value_and_installment_rules(pipedrive_seeded):
    sb = pipedrive_seeded
    h = sb.headers()
    deal = http_post(f"{sb.url}/api/v2/deals", headers=h,
                         json={"title": "Products", "currency": "KWD"}).json()["data"]
    url = f"{sb.url}/api/v2/deals/{deal['id']}"
    # installments need a one-time product first
    r = http_post(f"{url}/installments", headers=h,
                      json={"description": "1/2", "amount": 1, "billing_date": "2026-12-01"})
    assert r.status_code == 400
    r = http_post(f"{url}/products", headers=h,
                      json={"product_id": 4, "item_price": 10.125, "quantity": 2.5, "tax": 10,
                            "tax_method": "exclusive", "discount": 10,
                            "discount_type": "percentage"})
    assert r.status_code == 200, r.text
    dp = r.json(parse_float=Decimal)["data"]
    # 10.125 * 2.5 = 25.3125; -10% = 22.78125; +10% tax = 25.059375 -> 25.059
    assert dp["sum"] == Decimal("25.059")
    value = sb.get(f"/api/v2/deals/{deal['id']}").json(parse_float=Decimal)["data"]["value"]
    assert value == Decimal("25.059")
    r = http_post(f"{url}/discounts", headers=h,
                      json={"description": "Goodwill", "amount": 5.059, "type": "amount"})
    assert r.status_code == 200
    assert sb.get(f"/api/v2/deals/{deal['id']}/discounts").json()["data"][0]["type"] == "amount"
    value = sb.get(f"/api/v2/deals/{deal['id']}").json(parse_float=Decimal)["data"]["value"]
    assert value == Decimal("20.000")
    r = http_post(f"{url}/installments", headers=h,
                      json={"description": "1/2", "amount": 10, "billing_date": "2026-12-01"})
    assert r.status_code == 200, r.text
    got = sb.get("/api/v2/deals/installments", deal_ids=str(deal["id"])).json()["data"]
    assert [i["description"] for i in got] == ["1/2"]
    r = http_post(f"{url}/products", headers=h,
                      json={"product_id": 1, "item_price": 1, "quantity": 1,
                            "billing_frequency": "monthly"})
    assert r.status_code == 400  # recurring product on a deal with installments
    r = http_post(f"{url}/products", headers=h,
                      json={"product_id": 4, "item_price": 1, "quantity": 1,
                            "billing_frequency": "weekly"})
    assert r.status_code == 400  # weekly needs billing_frequency_cycles
    r = http_post(f"{url}/products", headers=h, json={"product_id": 4, "quantity": 1})
    assert r.status_code == 400  # item_price required


def test_patch_deal_product_bumps_deal(pipedrive_seeded):
    sb = pipedrive_seeded
    dp = sb.get("/api/v2/deals/2/products").json()["data"][0]
    before = sb.get("/api/v2/deals/2").json(parse_float=Decimal)["data"]
    sb.advance_clock(5)
    r = http_patch(f"{sb.url}/api/v2/deals/2/products/{dp['id']}", headers=sb.headers(),
                       json={"quantity": dp["quantity"] + 3})
    assert r.status_code == 200, r.text
    after = sb.get("/api/v2/deals/2").json(parse_float=Decimal)["data"]
    assert after["update_time"] > before["update_time"]
    assert after["value"] > before["value"]


def test_ui_edit_takes_a_decimal_quantity_exactly(pipedrive_seeded):
    """The control API parses its body exactly: 4.5 reaches the deal as Decimal 4.5
    (through float it was refused as "not a number"), and bad bodies are a plain 400."""
    sb = pipedrive_seeded
    dp = sb.get("/api/v2/deals/4/products").json()["data"][0]
    resp = requests.post(f"{sb.url}/_sandbox/deals/4/ui-edit", timeout=TIMEOUT,
                         data=f'{{"products": [{{"id": {dp["id"]}, "quantity": 4.5}}]}}',
                         headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    after = sb.get("/api/v2/deals/4/products").json(parse_float=Decimal)["data"][0]
    assert after["quantity"] == Decimal("4.5")
    for bad in ('{"products": [{"id": 1', '[1, 2]', '{"products": "all"}'):
        resp = requests.post(f"{sb.url}/_sandbox/deals/4/ui-edit", data=bad, timeout=TIMEOUT,
                             headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, (bad, resp.status_code, resp.text)
