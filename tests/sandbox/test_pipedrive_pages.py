"""The sandbox answers the desk's "Open in Pipedrive" links with a page a person can
read: the deal (or organization, or person) with its fields, products and notes."""

from __future__ import annotations

import requests


def _deal_with_products_and_note(sb) -> dict:
    store = sb.sandbox.store
    noted = {n["deal_id"] for n in store.t["notes"].values() if n.get("deal_id")}
    return next(d for d in store.t["deals"].values()
                if d["id"] in noted and store.deal_products(d["id"]) and d.get("org_id")
                and d.get("person_id") and not d["is_deleted"]
                and any(v is not None for v in (d.get("custom_fields") or {}).values()))


def test_the_link_the_desk_builds_opens_a_readable_deal_page(app, desk_on_pipedrive):
    from app.mismatches.routes import pipedrive_url

    sb = desk_on_pipedrive
    sb.seed()
    deal = _deal_with_products_and_note(sb)
    r = requests.post(f"{sb.url}/v1/notes", headers=sb.headers(), timeout=10, json={
        "deal_id": deal["id"],
        "content": 'Invoice <b>INV-7</b> sent: <a href="https://pay.example/i/7">pay</a>'
                   '<script>alert(1)</script>'})
    assert r.status_code == 201, r.text
    with app.app_context():
        url = pipedrive_url(deal["id"])
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    text = page.text
    assert deal["title"].split(" #")[0] in text
    product = sb.sandbox.store.deal_products(deal["id"])[0]["name"]
    assert product in text and "Products" in text
    names = sb.sandbox.store.fields["deal"]
    shown = [names[c]["field_name"] for c, v in deal["custom_fields"].items() if v is not None]
    assert shown and all(name in text for name in shown)
    assert not any(code in text for code in deal["custom_fields"])  # names, never hashes
    assert deal["currency"] in text and "Pipeline" in text and "Stage" in text
    assert '<a href="https://pay.example/i/7">pay</a>' in text and "<b>INV-7</b>" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert f'href="/organization/{deal["org_id"]}"' in text
    assert f'href="/person/{deal["person_id"]}"' in text


def test_organization_and_person_pages_and_a_missing_record(pipedrive_seeded):
    sb = pipedrive_seeded
    store = sb.sandbox.store
    org = next(o for o in store.t["organizations"].values()
               if any(p.get("org_id") == o["id"] for p in store.t["persons"].values()))
    page = requests.get(f"{sb.url}/organization/{org['id']}", timeout=10)
    assert page.status_code == 200 and org["name"].split(" ")[0] in page.text
    assert "People" in page.text and 'href="/person/' in page.text
    person = next(p for p in store.t["persons"].values() if p.get("emails"))
    page = requests.get(f"{sb.url}/person/{person['id']}", timeout=10)
    assert page.status_code == 200 and person["emails"][0]["value"] in page.text
    missing = requests.get(f"{sb.url}/deal/999999", timeout=10)
    assert missing.status_code == 404 and "no such record" in missing.text
    home = requests.get(f"{sb.url}/_sandbox/", timeout=10).text
    assert "href='/deal/" in home
