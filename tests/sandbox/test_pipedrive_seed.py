"""The demo company has the promised variety, is deterministic and consistent."""

from __future__ import annotations

import time
from decimal import Decimal

from app.sandbox.pipedrive import PipedriveSandboxSettings, create_app
from app.sandbox.pipedrive.seed import seed_demo
from app.sandbox.pipedrive.state import Store, deal_product_sum, quantize


def _seeded(**kw) -> Store:
    store = Store()
    seed_demo(store, **kw)
    return store


def test_variety():
    store = _seeded()
    deals = list(store.t["deals"].values())
    live = [d for d in deals if not d["is_deleted"]]
    status = {s: sum(d["status"] == s for d in live) for s in ("won", "open", "lost")}
    assert len(live) == 200 and all(v >= 20 for v in status.values())
    assert sum(d["is_deleted"] for d in deals) == 8
    currencies = {d["currency"] for d in live}
    assert currencies == {"EUR", "USD", "GBP", "JPY", "KWD"}
    assert all(sum(d["currency"] == c for d in live) >= 5 for c in currencies)
    assert len(store.t["pipelines"]) == 3
    stage_names = {s["name"] for s in store.t["stages"].values()}
    assert {"Contract signed", "Ready to invoice"} <= stage_names
    assert {d["pipeline_id"] for d in live if d["status"] == "won"} == {1, 2, 3}
    assert 4 <= len(store.t["users"]) <= 6
    persons = list(store.t["persons"].values())
    assert sum(len(p["emails"]) > 1 for p in persons) >= 5
    assert sum(len(p["emails"]) == 0 for p in persons) >= 3
    assert all(o["address"] for o in store.t["organizations"].values())
    dps = list(store.t["deal_products"].values())
    assert {p["tax_method"] for p in dps} == {"exclusive", "inclusive", "none"}
    assert any(p["quantity"] != p["quantity"].to_integral_value() for p in dps)
    assert {p["billing_frequency"] for p in dps} >= {"one-time", "monthly", "annually"}
    assert {p["discount_type"] for p in dps if p["discount"]} == {"percentage", "amount"}
    assert {d["type"] for d in store.t["discounts"].values()} == {"percentage", "amount"}
    with_inst = {i["deal_id"] for i in store.t["installments"].values()}
    assert len(with_inst) >= 5
    for deal_id in with_inst:
        assert not store.has_recurring(deal_id)
        total = sum(i["amount"] for i in store.deal_installments(deal_id))
        assert total == store.t["deals"][deal_id]["value"]
    edited = [d for d in live if d["status"] == "won" and d["update_time"] > d["won_time"]]
    assert len(edited) >= 5
    codes = {f["field_name"]: c for c, f in store.fields["deal"].items() if f["is_custom_field"]}
    assert set(codes) == {"Billing email", "PO number", "VAT ID", "Payment terms"}
    for name, code in codes.items():
        assert sum(code in d["custom_fields"] for d in live) >= 40, name
    assert store.t["notes"] and store.t["activities"]


def test_money_consistent_with_products_and_currency_decimals():
    store = _seeded()
    for deal in store.t["deals"].values():
        places = {"JPY": 0, "KWD": 3}.get(deal["currency"], 2)
        assert deal["value"] == quantize(deal["value"], deal["currency"])
        assert -deal["value"].as_tuple().exponent <= places or deal["value"] == 0
        dps = store.deal_products(deal["id"])
        if not dps:
            continue
        for dp in dps:
            assert dp["currency"] == deal["currency"]
            assert dp["sum"] == deal_product_sum(dp, deal["currency"])
        subtotal = sum(dp["sum"] for dp in dps)
        discounts = store.deal_discounts(deal["id"])
        if not discounts:
            assert deal["value"] == subtotal
        else:
            assert deal["value"] < subtotal
    kwd = [d for d in store.t["deals"].values() if d["currency"] == "KWD"]
    assert any(d["value"].as_tuple().exponent == -3 for d in kwd)


def test_deterministic_and_seed_sensitive():
    a, b, c = _seeded(), _seeded(), _seeded(random_seed=7)
    assert a.snapshot() == b.snapshot()
    assert a.snapshot() != c.snapshot()


def test_synthetic_deals_fast():
    started = time.monotonic()
    store = _seeded(synthetic_deals=10_000)
    assert time.monotonic() - started < 5
    synthetic = [d for d in store.t["deals"].values() if d["title"].startswith("Synthetic")]
    assert len(synthetic) == 10_000
    assert all(d["status"] == "won" and store.dp_by_deal[d["id"]] for d in synthetic[:500])


def test_listing_10k_deals_is_quick(pipedrive_sandbox):
    sb = pipedrive_sandbox
    sb.seed(synthetic_deals=10_000)
    started = time.monotonic()
    cursor, seen = None, 0
    while True:
        params = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        body = sb.get("/api/v2/deals", **params).json()
        seen += len(body["data"])
        cursor = body["additional_data"]["next_cursor"]
        if not cursor:
            break
    assert seen == 10_200
    assert time.monotonic() - started < 5


def test_state_file_persists(tmp_path):
    path = str(tmp_path / "pd.json")
    app = create_app(PipedriveSandboxSettings(state_file=path))
    app.extensions["pipedrive_sandbox"].seed()
    client = app.test_client()
    r = client.patch("/api/v2/deals/1", json={"title": "Persisted"},
                     headers={"x-api-token": "pd_sandbox_token"})
    assert r.status_code == 200
    again = create_app(PipedriveSandboxSettings(state_file=path))
    store = again.extensions["pipedrive_sandbox"].store
    assert store.t["deals"][1]["title"] == "Persisted"
    assert isinstance(store.t["deals"][1]["value"], Decimal | int)
    assert len(store.t["deals"]) == 208 and store.dp_by_deal[1]
    client = again.test_client()
    headers = {"x-api-token": "pd_sandbox_token"}
    r = client.get("/api/v2/deals/1", headers=headers)
    assert r.get_json()["data"]["title"] == "Persisted"
    # whole-number money reloads as int: later arithmetic must still work
    jpy = next(d for d in store.t["deals"].values()
               if d["currency"] == "JPY" and not d["is_deleted"])
    assert isinstance(jpy["value"], int)
    r = client.patch(f"/api/v2/deals/{jpy['id']}", json={"currency": "EUR"}, headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    dp = store.deal_products(1)[0]
    r = client.patch(f"/api/v2/deals/1/products/{dp['id']}", json={"quantity": 2},
                     headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
