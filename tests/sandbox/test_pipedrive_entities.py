"""Contract tests: persons, organizations, products, pipelines, stages, fields, search,
notes (v1), activities, users (v1)."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import requests

TIMEOUT = 30
http_get = partial(requests.get, timeout=TIMEOUT)
http_post = partial(requests.post, timeout=TIMEOUT)
http_patch = partial(requests.patch, timeout=TIMEOUT)
http_delete = partial(requests.delete, timeout=TIMEOUT)


def test_persons_list_get_create_patch(pipedrive_seeded):
    sb = pipedrive_seeded
    h = sb.headers()
    body = sb.get("/api/v2/persons", limit=500).json()
    persons = body["data"]
    assert len(persons) == 70 and body["additional_data"]["next_cursor"] is None
    multi = [p for p in persons if len(p["emails"]) > 1]
    assert multi and all(sum(e["primary"] for e in p["emails"]) == 1 for p in multi)
    assert set(multi[0]["emails"][0]) == {"value", "primary", "label"}
    r = http_post(f"{sb.url}/api/v2/persons", headers=h, json={
        "name": "Ada Byron", "org_id": 3,
        "emails": [{"value": "ada@example.com", "primary": True, "label": "work"},
                   {"value": "ada@home.example", "label": "home"}]})
    assert r.status_code == 200, r.text
    person = r.json()["data"]
    assert person["org_id"] == 3 and len(person["emails"]) == 2
    assert person["first_name"] == "Ada" and person["last_name"] == "Byron"
    r = http_patch(f"{sb.url}/api/v2/persons/{person['id']}", headers=h,
                       json={"phones": [{"value": "+44 20 1234", "primary": True}]})
    assert r.json()["data"]["phones"][0]["value"] == "+44 20 1234"
    assert http_post(f"{sb.url}/api/v2/persons", headers=h,
                         json={"name": "X", "email": "x@y"}).status_code == 400
    assert http_post(f"{sb.url}/api/v2/persons", headers=h,
                         json={"name": "X", "org_id": 9999}).status_code == 400
    assert sb.get(f"/api/v2/persons/{person['id']}").json()["data"]["name"] == "Ada Byron"
    assert sb.get("/api/v2/persons", org_id=3).json()["data"]
    assert sb.get("/api/v2/persons/99999").status_code == 404


def test_person_search_exact_email(pipedrive_seeded):
    sb = pipedrive_seeded
    persons = sb.get("/api/v2/persons", limit=500).json()["data"]
    person = next(p for p in persons if len(p["emails"]) > 1)
    second = person["emails"][1]["value"]
    holders = [p["id"] for p in persons if second in [e["value"] for e in p["emails"]]]
    assert person["id"] in holders
    r = sb.get("/api/v2/persons/search", term=second, fields="email", exact_match="true")
    assert r.status_code == 200, r.text
    items = r.json()["data"]["items"]
    assert sorted(i["item"]["id"] for i in items) == sorted(holders)
    assert second in items[0]["item"]["emails"] and items[0]["result_score"] > 0
    r = sb.get("/api/v2/persons/search", term=second[:-2], fields="email", exact_match="true")
    assert r.json()["data"]["items"] == []
    assert sb.get("/api/v2/persons/search", term="x").status_code == 400  # too short
    assert sb.get("/api/v2/persons/search", term="ab", fields="colour").status_code == 400
    assert sb.get("/api/v2/persons/search").status_code == 400


def test_organizations_and_search(pipedrive_seeded):
    sb = pipedrive_seeded
    h = sb.headers()
    orgs = sb.get("/api/v2/organizations", limit=500).json()["data"]
    assert len(orgs) == 40 and all(o["address"]["value"] for o in orgs)
    r = http_post(f"{sb.url}/api/v2/organizations", headers=h,
                      json={"name": "Zeta Widgets", "address": {"value": "1 Main St",
                                                                "country": "Ireland"}})
    assert r.status_code == 200, r.text
    org = r.json()["data"]
    r = http_patch(f"{sb.url}/api/v2/organizations/{org['id']}", headers=h,
                       json={"name": "Zeta Widgets Ltd"})
    assert r.json()["data"]["name"] == "Zeta Widgets Ltd"
    found = sb.get("/api/v2/organizations/search", term="Zeta").json()["data"]["items"]
    assert [i["item"]["id"] for i in found] == [org["id"]]
    assert found[0]["item"]["type"] == "organization"


def test_products_with_prices(pipedrive_seeded):
    sb = pipedrive_seeded
    products = sb.get("/api/v2/products", limit=500).json(parse_float=Decimal)["data"]
    assert len(products) == 14
    p = products[0]
    assert {"code", "tax", "billing_frequency", "prices", "unit"} <= set(p)
    assert {x["currency"] for x in p["prices"]} == {"EUR", "USD", "GBP", "JPY", "KWD"}
    r = http_post(f"{sb.url}/api/v2/products", headers=sb.headers(), json={
        "name": "Widget", "code": "W-1", "tax": 21, "billing_frequency": "quarterly",
        "prices": [{"price": 12.5, "currency": "eur"}]})
    assert r.status_code == 200, r.text
    created = r.json(parse_float=Decimal)["data"]
    assert created["prices"][0]["currency"] == "EUR"
    assert created["prices"][0]["price"] == Decimal("12.5")
    assert created["prices"][0]["product_id"] == created["id"]
    assert sb.get(f"/api/v2/products/{created['id']}").json()["data"]["code"] == "W-1"
    assert http_post(f"{sb.url}/api/v2/products", headers=sb.headers(),
                         json={"name": "Bad", "billing_frequency": "daily"}).status_code == 400


def test_pipelines_and_stages(pipedrive_seeded):
    sb = pipedrive_seeded
    pipelines = sb.get("/api/v2/pipelines").json()["data"]
    assert [p["name"] for p in pipelines] == ["New business", "Renewals", "Partners"]
    stages = sb.get("/api/v2/stages", pipeline_id=2).json()["data"]
    assert stages and all(s["pipeline_id"] == 2 for s in stages)
    assert "Ready to invoice" in [s["name"] for s in stages]
    assert sb.get(f"/api/v2/stages/{stages[0]['id']}").json()["data"]["name"] == stages[0]["name"]
    assert sb.get("/api/v2/pipelines/1").json()["data"]["name"] == "New business"


def test_field_definitions_and_custom_field_creation(pipedrive_seeded):
    sb = pipedrive_seeded
    for path in ("dealFields", "personFields", "organizationFields"):
        fields = sb.get(f"/api/v2/{path}", limit=500).json()["data"]
        custom = [f for f in fields if f["is_custom_field"]]
        assert custom and all(len(f["field_code"]) == 40 for f in custom)
        assert all(int(f["field_code"], 16) >= 0 for f in custom)
    deal_fields = sb.get("/api/v2/dealFields", limit=500).json()["data"]
    names = {f["field_name"] for f in deal_fields if f["is_custom_field"]}
    assert {"Billing email", "PO number", "VAT ID", "Payment terms"} <= names
    terms = next(f for f in deal_fields if f["field_name"] == "Payment terms")
    assert terms["field_type"] == "enum" and len(terms["options"]) == 4
    r = http_post(f"{sb.url}/api/v2/dealFields", headers=sb.headers(),
                      json={"field_name": "Invoice number", "field_type": "varchar"})
    assert r.status_code == 200, r.text
    code = r.json()["data"]["field_code"]
    assert len(code) == 40 and all(c in "0123456789abcdef" for c in code)
    r = http_patch(f"{sb.url}/api/v2/deals/1", headers=sb.headers(),
                       json={"custom_fields": {code: "INV-1"}})
    assert r.json()["data"]["custom_fields"][code] == "INV-1"
    r = http_patch(f"{sb.url}/api/v2/deals/1", headers=sb.headers(),
                       json={"custom_fields": {terms["field_code"]: 99999}})
    assert r.status_code == 400  # not an option id
    assert http_post(f"{sb.url}/api/v2/dealFields", headers=sb.headers(),
                         json={"field_name": "Tier", "field_type": "enum"}).status_code == 400
    assert sb.get(f"/api/v2/dealFields/{code}").json()["data"]["field_name"] == "Invoice number"


def test_notes_v1(pipedrive_seeded):
    sb = pipedrive_seeded
    h = sb.headers()
    r = http_post(f"{sb.url}/v1/notes", headers=h,
                      json={"content": "<p>Invoice INV-1 sent</p>", "deal_id": 5,
                            "pinned_to_deal_flag": 1})
    assert r.status_code == 201, r.text
    note = r.json()["data"]
    assert note["deal_id"] == 5 and note["pinned_to_deal_flag"] is True
    assert note["deal"]["title"] and " " in note["add_time"]  # v1 time format
    body = sb.get("/v1/notes", deal_id=5).json()
    assert note["id"] in [n["id"] for n in body["data"]]
    assert all(n["deal_id"] == 5 for n in body["data"])
    pag = body["additional_data"]["pagination"]
    assert pag["start"] == 0 and pag["more_items_in_collection"] is False
    paged = sb.get("/v1/notes", limit=10).json()
    assert paged["additional_data"]["pagination"]["more_items_in_collection"] is True
    assert http_post(f"{sb.url}/v1/notes", headers=h, json={"content": "x"}).status_code == 400
    assert http_post(f"{sb.url}/v1/notes", headers=h,
                         json={"content": "x", "deal_id": 99999}).status_code == 404
    assert http_post(f"{sb.url}/api/v1/notes", headers=h,
                         json={"content": "alias", "deal_id": 5}).status_code == 201


def test_activities(pipedrive_seeded):
    sb = pipedrive_seeded
    h = sb.headers()
    r = http_post(f"{sb.url}/api/v2/activities", headers=h,
                      json={"subject": "Invoice failed", "type": "task", "deal_id": 7,
                            "due_date": "2026-11-30", "owner_id": 2, "note": "Card declined"})
    assert r.status_code == 200, r.text
    act = r.json()["data"]
    assert act["done"] is False and act["deal_id"] == 7
    listed = sb.get("/api/v2/activities", deal_id=7).json()["data"]
    assert act["id"] in [a["id"] for a in listed] and all(a["deal_id"] == 7 for a in listed)
    r = http_patch(f"{sb.url}/api/v2/activities/{act['id']}", headers=h, json={"done": True})
    assert r.json()["data"]["done"] is True and r.json()["data"]["marked_as_done_time"]
    assert sb.get(f"/api/v2/activities/{act['id']}").json()["data"]["done"] is True
    assert http_post(f"{sb.url}/api/v2/activities", headers=h,
                         json={"subject": "x", "due_date": "30/11/2026"}).status_code == 400


def test_users_v1(pipedrive_seeded):
    sb = pipedrive_seeded
    users = sb.get("/v1/users").json()["data"]
    assert 4 <= len(users) <= 6 and all("@" in u["email"] for u in users)
    assert sb.get(f"/v1/users/{users[1]['id']}").json()["data"]["name"] == users[1]["name"]
    assert sb.get("/v1/users/999").status_code == 404
    me = sb.get("/v1/users/me").json()["data"]
    assert me["id"] == users[0]["id"] and me["company_domain"] == sb.settings.company_domain


def test_v1_accepts_form_bodies_v2_requires_json(pipedrive_seeded):
    sb = pipedrive_seeded
    r = http_post(f"{sb.url}/v1/notes", headers=sb.headers(),
                  data={"content": "form note", "deal_id": "6", "pinned_to_deal_flag": "1"})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["deal_id"] == 6 and r.json()["data"]["pinned_to_deal_flag"] is True
    r = http_patch(f"{sb.url}/api/v2/deals/6", headers=sb.headers(), data={"title": "form"})
    assert r.status_code == 415
    r = http_patch(f"{sb.url}/api/v2/deals/6", headers={**sb.headers(),
                   "Content-Type": "application/json"}, data="{not json")
    assert r.status_code == 400 and r.json()["success"] is False


def test_concurrent_patches_are_all_applied(pipedrive_seeded):
    from concurrent.futures import ThreadPoolExecutor

    sb = pipedrive_seeded
    sb.set_burst(1000)
    fields = sb.get("/api/v2/dealFields", limit=500).json()["data"]
    po = next(f["field_code"] for f in fields if f["field_name"] == "PO number")

    def patch(deal_id: int) -> int:
        return http_patch(f"{sb.url}/api/v2/deals/{deal_id}", headers=sb.headers(),
                          json={"custom_fields": {po: f"PO-C{deal_id}"}}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(patch, range(1, 81)))
    assert codes == [200] * 80
    got = sb.get("/api/v2/deals", ids=",".join(map(str, range(1, 81))), limit=100).json()["data"]
    assert {d["id"]: d["custom_fields"][po] for d in got} == {
        i: f"PO-C{i}" for i in range(1, 81)}


def test_a_new_company_has_the_default_pipeline_and_takes_deals_before_any_seed(
        pipedrive_sandbox):
    """Like a real Pipedrive company: a default pipeline with Pipedrive's default stages
    (and the admin who created the company), so a deal can be created at once."""
    sb = pipedrive_sandbox
    [pipeline] = sb.get("/api/v2/pipelines").json()["data"]
    assert pipeline["name"] == "Pipeline" and pipeline["is_selected"] is True
    stages = sb.get("/api/v2/stages", pipeline_id=pipeline["id"], sort_by="order_nr").json()
    assert [s["name"] for s in stages["data"]] == [
        "Lead In", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started"]
    assert sb.get("/v1/users").json()["data"][0]["is_admin"] is True
    r = http_post(f"{sb.url}/api/v2/deals", headers=sb.headers(), json={"title": "First deal"})
    assert r.status_code == 200, r.text
    deal = r.json()["data"]
    assert deal["pipeline_id"] == pipeline["id"]
    assert deal["stage_id"] == stages["data"][0]["id"]


def test_pipelines_and_stages_can_be_created_and_renamed(pipedrive_sandbox):
    sb = pipedrive_sandbox
    url, h = sb.url, sb.headers()
    r = http_post(f"{url}/api/v2/pipelines", headers=h, json={"name": "Renewals"})
    assert r.status_code == 200, r.text
    pipeline = r.json()["data"]
    assert pipeline["is_selected"] is False and pipeline["order_nr"] == 2
    for name in ("Up for renewal", "Ready to invoice"):
        r = http_post(f"{url}/api/v2/stages", headers=h,
                      json={"name": name, "pipeline_id": pipeline["id"], "deal_probability": 50})
        assert r.status_code == 200, r.text
    stages = sb.get("/api/v2/stages", pipeline_id=pipeline["id"]).json()["data"]
    assert [(s["name"], s["order_nr"]) for s in stages] == [
        ("Up for renewal", 1), ("Ready to invoice", 2)]
    # A deal put in the new pipeline starts in its first stage.
    r = http_post(f"{url}/api/v2/deals", headers=h,
                  json={"title": "Renewal", "pipeline_id": pipeline["id"]})
    assert r.json()["data"]["stage_id"] == stages[0]["id"]
    r = requests.patch(f"{url}/api/v2/pipelines/{pipeline['id']}", headers=h,
                       json={"name": "Renewals 2027"}, timeout=10)
    assert r.status_code == 200 and r.json()["data"]["name"] == "Renewals 2027"
    r = requests.patch(f"{url}/api/v2/stages/{stages[1]['id']}", headers=h,
                       json={"name": "Ready to bill"}, timeout=10)
    assert r.status_code == 200 and r.json()["data"]["name"] == "Ready to bill"
    # Refused the way Pipedrive refuses them.
    for body in ({"name": "No pipeline"}, {"name": "Ghost", "pipeline_id": 999},
                 {"name": "Odd", "pipeline_id": pipeline["id"], "deal_probability": 120},
                 {"name": "", "pipeline_id": pipeline["id"]},
                 {"name": "Extra", "pipeline_id": pipeline["id"], "colour": "red"}):
        assert http_post(f"{url}/api/v2/stages", headers=h, json=body).status_code == 400
    assert http_post(f"{url}/api/v2/pipelines", headers=h, json={}).status_code == 400
