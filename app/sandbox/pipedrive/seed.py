"""Deterministic demo company for the Pipedrive sandbox.

``seed_demo(state, synthetic_deals=0, random_seed=42)`` fills a new ``Store``:
5 users, 3 pipelines each with a billing-ready stage, ~40 organizations, ~70
persons, 14 products, 200 live deals (won/open/lost) plus 8 deleted, in EUR, USD,
GBP, JPY and KWD, with tax variants, discounts, recurring products,
installments, custom fields, notes and activities. All times are relative to a
fixed anchor so that the same seed always yields the same data.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .state import Store, deal_product_sum, iso, quantize

ANCHOR = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
CURRENCIES = ("EUR", "USD", "GBP", "JPY", "KWD")
FX = {"EUR": Decimal("1"), "USD": Decimal("1.08"), "GBP": Decimal("0.86"),
      "JPY": Decimal("160"), "KWD": Decimal("0.331")}

USERS = [
    ("Maren Albrecht", "maren.albrecht@billingdesk-demo.example"),
    ("Tomás Oyelaran", "tomas.oyelaran@billingdesk-demo.example"),
    ("Priya Nandakumar", "priya.nandakumar@billingdesk-demo.example"),
    ("Jonas Eriksen", "jonas.eriksen@billingdesk-demo.example"),
    ("Keiko Tanabe", "keiko.tanabe@billingdesk-demo.example"),
]
PIPELINES = [
    ("New business", ["Qualified", "Demo held", "Proposal made", "Negotiation",
                      "Contract signed"], "Contract signed"),
    ("Renewals", ["Up for renewal", "Renewal quote sent", "Ready to invoice"],
     "Ready to invoice"),
    ("Partners", ["Partner sourced", "Joint proposal", "Ready to invoice"], "Ready to invoice"),
]
# code, name, billing_frequency, tax %, EUR price, unit
PRODUCTS = [
    ("BD-PLAT-M", "Platform subscription (monthly)", "monthly", "19", "490", "month"),
    ("BD-PLAT-Y", "Platform subscription (annual)", "annually", "19", "4900", "year"),
    ("BD-SEAT-M", "Additional seat (monthly)", "monthly", "19", "29", "seat"),
    ("BD-ONB", "Onboarding package", "one-time", "19", "2500", "package"),
    ("BD-CONS-H", "Consulting hour", "one-time", "19", "150", "hour"),
    ("BD-TRAIN", "Training day", "one-time", "7", "1200", "day"),
    ("BD-IMPL", "Implementation project", "one-time", "19", "8000", "project"),
    ("BD-SUP-Y", "Premium support (annual)", "annually", "19", "1800", "year"),
    ("BD-HW", "Hardware gateway", "one-time", "20", "640", "unit"),
    ("BD-LIC", "Perpetual license", "one-time", "0", "12000", "license"),
    ("BD-DATA-M", "Data add-on (monthly)", "monthly", "19", "99.50", "month"),
    ("BD-AUDIT", "Compliance audit", "one-time", "0", "3400", "audit"),
    ("BD-PART", "Partner referral bundle", "one-time", "19", "5000", "bundle"),
    ("BD-TRAVEL", "Travel expenses (flat)", "one-time", "0", "350", "trip"),
]
ORGS = [
    # name, currency, country, city, street, postal
    ("Hallberg Logistik GmbH", "EUR", "Germany", "Hamburg", "Speicherstadt 14", "20457"),
    ("Café Lumière SARL", "EUR", "France", "Lyon", "Rue Mercière 22", "69002"),
    ("Van Dijk Installaties B.V.", "EUR", "Netherlands", "Utrecht", "Oudegracht 101", "3511"),
    ("Brightwater Analytics Inc.", "USD", "United States", "Austin", "401 Congress Ave", "78701"),
    ("Kestrel Freight LLC", "USD", "United States", "Denver", "1600 Market St", "80202"),
    ("Pemberton & Hale Ltd", "GBP", "United Kingdom", "Leeds", "12 Park Row", "LS1 5JA"),
    ("Thistle Robotics Ltd", "GBP", "United Kingdom", "Edinburgh", "8 Rose Street", "EH2 2PR"),
    ("Sakura Precision K.K.", "JPY", "Japan", "Osaka", "2-4-1 Umeda", "530-0001"),
    ("Hoshino Trading Co.", "JPY", "Japan", "Tokyo", "1-9-2 Marunouchi", "100-0005"),
    ("Al-Noor Facilities W.L.L.", "KWD", "Kuwait", "Kuwait City", "Block 3, Sharq", "15300"),
    ("Gulf Pearl Systems K.S.C.", "KWD", "Kuwait", "Salmiya", "Salem Al Mubarak St", "22001"),
    ("Nordlicht Energie AG", "EUR", "Germany", "Munich", "Leopoldstraße 50", "80802"),
    ("Atelier Dubois", "EUR", "France", "Bordeaux", "Cours de l'Intendance 5", "33000"),
    ("Ortega Distribuciones S.L.", "EUR", "Spain", "Valencia", "Carrer de Colón 18", "46004"),
    ("Lakeshore Dental Group", "USD", "United States", "Chicago", "233 S Wacker Dr", "60606"),
    ("Redwood Civic Partners", "USD", "United States", "Sacramento", "915 L St", "95814"),
    ("Ashcombe Estates Ltd", "GBP", "United Kingdom", "Bristol", "3 Queen Square", "BS1 4JQ"),
    ("Fennick Labs Ltd", "GBP", "United Kingdom", "Cambridge", "20 Station Rd", "CB1 2JD"),
    ("Kobayashi Foods", "JPY", "Japan", "Fukuoka", "1-1 Tenjin", "810-0001"),
    ("Mubarak Engineering", "KWD", "Kuwait", "Hawalli", "Tunis Street 7", "32001"),
    ("Vågen Maritime AS", "EUR", "Norway", "Bergen", "Bryggen 9", "5003"),
    ("Polder Data B.V.", "EUR", "Netherlands", "Rotterdam", "Coolsingel 40", "3011"),
    ("Sierra Outdoor Co.", "USD", "United States", "Boise", "800 W Main St", "83702"),
    ("Northgate Clinics Ltd", "GBP", "United Kingdom", "Manchester", "1 Spinningfields", "M3 3AP"),
    ("Blauwe Haven Cooperatie", "EUR", "Belgium", "Antwerp", "Meir 78", "2000"),
    ("Quillon Software Inc.", "USD", "United States", "Seattle", "1201 3rd Ave", "98101"),
    ("Tavistock Print Ltd", "GBP", "United Kingdom", "London", "44 Tavistock Pl", "WC1H 9RG"),
    ("Morikawa Design Studio", "JPY", "Japan", "Kyoto", "Shijo-dori 300", "600-8001"),
    ("Falkenrath Maschinenbau KG", "EUR", "Germany", "Stuttgart", "Königstraße 1", "70173"),
    ("Liberty Harbor Foods", "USD", "United States", "Boston", "100 Atlantic Ave", "02110"),
    ("Anders & Lund ApS", "EUR", "Denmark", "Aarhus", "Åboulevarden 30", "8000"),
    ("Corvus Security Ltd", "GBP", "United Kingdom", "Belfast", "6 Donegall Sq", "BT1 6JE"),
    ("Silvermine Partners", "USD", "United States", "New York", "55 Water St", "10041"),
    ("Dasman Medical Supplies", "KWD", "Kuwait", "Kuwait City", "Dasman Tower", "15462"),
    ("Rivière Verte SAS", "EUR", "France", "Nantes", "Quai de la Fosse 3", "44000"),
    ("Oakfield Academy Trust", "GBP", "United Kingdom", "Oxford", "9 Broad St", "OX1 3AJ"),
    ("Pacific Rim Holdings", "USD", "United States", "San Diego", "600 B St", "92101"),
    ("Yamato Logistics", "JPY", "Japan", "Nagoya", "3-1 Sakae", "460-0008"),
    ("Stern & Söhne OHG", "EUR", "Austria", "Graz", "Herrengasse 16", "8010"),
    ("Castellan Consulting", "EUR", "Ireland", "Dublin", "25 Dawson St", "D02 T2X6"),
]
FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jakob",
         "Kofi", "Lena", "Mateo", "Nora", "Oskar", "Paula", "Rania", "Sven", "Tara", "Umar",
         "Vera", "Wen", "Yusuf", "Zoe", "Aiko", "Bruno", "Carmen", "Dev", "Emma", "Finn"]
LAST = ["Schulz", "Moreau", "de Vries", "Carter", "Nguyen", "Okafor", "Patel", "Rossi",
        "Suzuki", "Al-Sabah", "Walsh", "Kowalski", "Lindqvist", "García", "Brennan",
        "Fischer", "Yamada", "Hughes", "Haddad", "Novak"]
LOST_REASONS = ["Price too high", "Chose a competitor", "No budget this year", "No decision",
                "Timing"]
NOTE_TEXTS = [
    "Customer confirmed the PO by email.",
    "<b>Billing:</b> send the invoice to accounts payable, not the champion.",
    "Asked for quarterly invoicing; agreed on annual with net 30.",
    "Signed contract uploaded to the deal files.",
    "Quantity of consulting hours adjusted after the kickoff call.",
]
PAYMENT_TERMS = ["Due on receipt", "Net 14", "Net 30", "Net 60"]


def _price(eur: str, currency: str) -> Decimal:
    return quantize(Decimal(eur) * FX[currency], currency)


def _base_fields(store: Store, when: str) -> dict[str, dict[str, str]]:
    system = {
        "deal": [("Title", "title", "varchar"), ("Value", "value", "monetary"),
                 ("Currency", "currency", "varchar"), ("Status", "status", "enum"),
                 ("Stage", "stage_id", "stage"), ("Pipeline", "pipeline_id", "double"),
                 ("Owner", "owner_id", "user"), ("Person", "person_id", "people"),
                 ("Organization", "org_id", "org"), ("Won time", "won_time", "date"),
                 ("Update time", "update_time", "date"), ("Add time", "add_time", "date"),
                 ("Expected close date", "expected_close_date", "date")],
        "person": [("Name", "name", "varchar"), ("Email", "emails", "varchar"),
                   ("Phone", "phones", "phone"), ("Organization", "org_id", "org"),
                   ("Owner", "owner_id", "user")],
        "organization": [("Name", "name", "varchar"), ("Address", "address", "address"),
                         ("Owner", "owner_id", "user")],
        "product": [("Name", "name", "varchar"), ("Product code", "code", "varchar"),
                    ("Unit", "unit", "varchar"), ("Tax", "tax", "double"),
                    ("Billing frequency", "billing_frequency", "enum")],
    }
    for entity, defs in system.items():
        for name, code, ftype in defs:
            store.add_field(entity, {"field_name": name, "field_code": code,
                                     "field_type": ftype, "is_custom_field": False}, when)
    terms = [{"label": t} for t in PAYMENT_TERMS]
    custom = {
        "deal": [("Billing email", "varchar", None), ("PO number", "varchar", None),
                 ("VAT ID", "varchar", None), ("Payment terms", "enum", terms)],
        "person": [("Billing email", "varchar", None)],
        "organization": [("VAT ID", "varchar", None), ("Billing email", "varchar", None),
                         ("Payment terms", "enum", terms)],
    }
    codes: dict[str, dict[str, str]] = {}
    for entity, defs in custom.items():
        for name, ftype, options in defs:
            definition = {"field_name": name, "field_type": ftype}
            if options:
                definition["options"] = options
            f = store.add_field(entity, definition, when)
            codes.setdefault(entity, {})[name] = f["field_code"]
    return codes


def _option_id(store: Store, entity: str, code: str, label: str) -> int:
    for o in store.fields[entity][code]["options"]:
        if o["label"] == label:
            return o["id"]
    raise KeyError(label)


def seed_demo(state: Store, synthetic_deals: int = 0, random_seed: int = 42,
              anchor: datetime = ANCHOR) -> dict:
    """Fill an empty ``Store`` (``state``) with the demo company; returns a summary."""
    store = state
    rng = random.Random(random_seed)
    with store.lock:
        if store.is_new_company():
            # The demo's own users and pipelines take over the new company's default
            # ones (the first keeps id 1), so the same seed always yields the same ids.
            for table in ("users", "pipelines", "stages"):
                store.t[table].clear()
                store.seq[table] = 0
        t0 = iso(anchor - timedelta(days=400))
        codes = _base_fields(store, t0)
        for i, (name, email) in enumerate(USERS, start=1):
            store.insert("users", {
                "id": i, "name": name, "email": email, "active_flag": True,
                "is_admin": i == 1, "default_currency": "EUR", "locale": "en_GB",
                "lang": 1, "timezone_name": "Europe/Berlin", "timezone_offset": "+01:00",
                "role_id": 1, "icon_url": None, "is_you": i == 1,
                "created": t0.replace("T", " ").rstrip("Z"), "modified": None,
                "last_login": None, "has_created_company": i == 1, "access": [],
            })
        stage_ids: dict[int, list[int]] = {}
        ready_stage: dict[int, int] = {}
        for p_nr, (pname, stages, ready) in enumerate(PIPELINES, start=1):
            pl = store.insert("pipelines", {
                "id": p_nr, "name": pname, "order_nr": p_nr, "is_selected": p_nr == 1,
                "is_deal_probability_enabled": False, "is_deleted": False,
                "add_time": t0, "update_time": t0})
            for s_nr, sname in enumerate(stages, start=1):
                st = store.insert("stages", {
                    "id": None, "order_nr": s_nr, "name": sname, "is_deleted": False,
                    "deal_probability": min(100, s_nr * 100 // len(stages)),
                    "pipeline_id": pl["id"], "is_deal_rot_enabled": False,
                    "days_to_rotten": None, "add_time": t0, "update_time": t0})
                stage_ids.setdefault(pl["id"], []).append(st["id"])
                if sname == ready:
                    ready_stage[pl["id"]] = st["id"]

        # organizations
        org_currency: dict[int, str] = {}
        oc = codes["organization"]
        for i, (name, cur, country, city, street, postal) in enumerate(ORGS, start=1):
            cf = {}
            if i % 3 != 0:
                cf[oc["VAT ID"]] = f"{country[:2].upper()}{100000000 + i * 7919}"
            if i % 2 == 0:
                cf[oc["Billing email"]] = f"ap@{name.split()[0].lower()}.example"
            if i % 4 != 3:
                cf[oc["Payment terms"]] = _option_id(
                    store, "organization", oc["Payment terms"], PAYMENT_TERMS[i % 4])
            when = iso(anchor - timedelta(days=380 - i))
            store.insert("organizations", {
                "id": i, "name": name, "owner_id": 1 + i % len(USERS), "add_time": when,
                "update_time": when, "is_deleted": False, "visible_to": 3, "label_ids": [],
                "picture_id": None, "custom_fields": cf,
                "address": {"value": f"{street}, {postal} {city}, {country}",
                            "country": country, "admin_area_level_1": None,
                            "admin_area_level_2": None, "locality": city,
                            "sublocality": None, "route": street, "street_number": None,
                            "postal_code": postal, "subpremise": None},
            })
            org_currency[i] = cur

        # persons
        persons_by_org: dict[int | None, list[int]] = {}
        pc = codes["person"]
        n_persons = 70
        for i in range(1, n_persons + 1):
            first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
            org_id = ((i - 1) % len(ORGS)) + 1 if i <= 62 else None
            domain = (store.t["organizations"][org_id]["name"].split()[0].lower()
                      if org_id else "mail")
            local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
            if i % 9 == 0:
                emails = []
            elif i % 4 == 1:
                emails = [{"value": f"{local}@{domain}.example", "primary": True,
                           "label": "work"},
                          {"value": f"{local}@home.example", "primary": False,
                           "label": "home"}]
                if i % 8 == 1:
                    emails.append({"value": f"billing+{i}@{domain}.example", "primary": False,
                                   "label": "other"})
            else:
                emails = [{"value": f"{local}@{domain}.example", "primary": True,
                           "label": "work"}]
            phones = ([{"value": f"+49 30 {5550000 + i}", "primary": True, "label": "work"}]
                      if i % 3 else [])
            cf = {pc["Billing email"]: f"invoices+{i}@{domain}.example"} if i % 5 == 0 else {}
            when = iso(anchor - timedelta(days=370 - i))
            store.insert("persons", {
                "id": i, "name": f"{first} {last}", "first_name": first, "last_name": last,
                "owner_id": 1 + i % len(USERS), "org_id": org_id, "add_time": when,
                "update_time": when, "emails": emails, "phones": phones, "is_deleted": False,
                "visible_to": 3, "label_ids": [], "picture_id": None, "job_title": None,
                "birthday": None, "marketing_status": "no_consent", "custom_fields": cf,
            })
            persons_by_org.setdefault(org_id, []).append(i)

        # products
        products = []
        for i, (code, name, freq, tax, eur, unit) in enumerate(PRODUCTS, start=1):
            row = store.insert("products", {
                "id": i, "name": name, "code": code, "description": None, "unit": unit,
                "tax": Decimal(tax), "category": None, "owner_id": 1, "is_linkable": True,
                "is_deleted": False, "visible_to": 3, "add_time": t0, "update_time": t0,
                "billing_frequency": freq, "billing_frequency_cycles": None,
                "prices": [{"product_id": i, "price": _price(eur, c), "currency": c,
                            "cost": Decimal(0), "direct_cost": Decimal(0), "notes": ""}
                           for c in CURRENCIES],
                "custom_fields": {},
            })
            products.append(row)

        ctx = {"rng": rng, "store": store, "anchor": anchor, "stage_ids": stage_ids,
               "ready": ready_stage, "products": products, "codes": codes["deal"],
               "org_currency": org_currency, "persons_by_org": persons_by_org}
        edited = 0
        for n in range(1, 209):
            deal = _make_deal(ctx, n, deleted=n > 200)
            if deal["status"] == "won" and n % 11 == 0 and _edit_after_won(ctx, deal):
                edited += 1
        for n in range(synthetic_deals):
            _synthetic_deal(ctx, n + 1)

        # notes and activities
        won = [d for d in store.t["deals"].values() if d["status"] == "won"][:30]
        for k, d in enumerate(won):
            when = iso(_parse(d["won_time"]) + timedelta(hours=2))
            store.insert("notes", {
                "id": None, "user_id": d["owner_id"], "deal_id": d["id"],
                "person_id": d["person_id"], "org_id": d["org_id"], "lead_id": None,
                "project_id": None, "content": NOTE_TEXTS[k % len(NOTE_TEXTS)],
                "add_time": when, "update_time": when, "active_flag": True,
                "last_update_user_id": None, "pinned_to_deal_flag": k % 4 == 0,
                "pinned_to_person_flag": False, "pinned_to_organization_flag": False,
                "pinned_to_lead_flag": False})
        for k, d in enumerate(won[:20]):
            when = iso(_parse(d["won_time"]) + timedelta(hours=3))
            store.insert("activities", {
                "id": None, "subject": f"Check invoice details for {d['title']}",
                "type": "task", "owner_id": d["owner_id"], "creator_user_id": d["owner_id"],
                "is_deleted": False, "add_time": when, "update_time": when,
                "deal_id": d["id"], "lead_id": None, "person_id": d["person_id"],
                "org_id": d["org_id"], "project_id": None,
                "due_date": (_parse(d["won_time"]) + timedelta(days=3)).date().isoformat(),
                "due_time": None, "duration": None, "busy": False, "done": k % 3 == 0,
                "marked_as_done_time": when if k % 3 == 0 else None, "location": None,
                "participants": [], "attendees": [], "public_description": None,
                "priority": None, "note": None})
        return summarize(store, edited_after_won=edited)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _add_product(store: Store, deal: dict, product: dict, quantity: Decimal, tax_method: str,
                 when: str, discount: Decimal = Decimal(0), discount_type: str = "percentage",
                 order_nr: int = 1) -> dict:
    cur = deal["currency"]
    price = next(p["price"] for p in product["prices"] if p["currency"] == cur)
    dp = {
        "id": None, "deal_id": deal["id"], "product_id": product["id"],
        "product_variation_id": None, "name": product["name"], "order_nr": order_nr,
        "item_price": price, "quantity": quantity, "discount": discount,
        "discount_type": discount_type,
        "tax": Decimal(0) if tax_method == "none" else product["tax"],
        "tax_method": tax_method, "sum": Decimal(0), "currency": cur, "comments": None,
        "is_enabled": True, "add_time": when, "update_time": when,
        "billing_frequency": product["billing_frequency"],
        "billing_frequency_cycles": None,
        "billing_start_date": None,
    }
    if product["billing_frequency"] != "one-time":
        dp["billing_start_date"] = _parse(when).date().isoformat()
    dp["sum"] = deal_product_sum(dp, cur)
    return store.insert("deal_products", dp)


def _make_deal(ctx: dict, n: int, deleted: bool) -> dict:
    rng: random.Random = ctx["rng"]
    store: Store = ctx["store"]
    anchor: datetime = ctx["anchor"]
    org_id = rng.randint(1, len(ORGS))
    people = ctx["persons_by_org"].get(org_id) or [rng.randint(1, 70)]
    person_id = rng.choice(people)
    # each currency appears; org currency mostly
    currency = CURRENCIES[n % 5] if n % 7 == 0 else ctx["org_currency"][org_id]
    pipeline = rng.choices([1, 2, 3], weights=[60, 25, 15])[0]
    status = rng.choices(["won", "open", "lost"], weights=[45, 35, 20])[0]
    stages = ctx["stage_ids"][pipeline]
    if status == "won":
        stage = ctx["ready"][pipeline] if rng.random() < 0.85 else stages[-2]
    elif status == "open":
        stage = rng.choice(stages[:-1]) if rng.random() < 0.9 else stages[-1]
    else:
        stage = rng.choice(stages)
    add = anchor - timedelta(days=rng.randint(20, 360), minutes=rng.randint(0, 1439))
    close = add + timedelta(days=rng.randint(3, 15), hours=rng.randint(0, 9))
    owner = rng.randint(1, len(USERS))
    org = store.t["organizations"][org_id]
    title = f"{org['name'].split(' ')[0]} - {PIPELINES[pipeline - 1][0]} #{n}"
    deal = store.insert("deals", {
        "id": None, "title": title, "creator_user_id": owner, "owner_id": owner,
        "value": Decimal(0), "currency": currency, "add_time": iso(add),
        "update_time": iso(add), "stage_change_time": iso(add), "is_deleted": False,
        "is_archived": False, "archive_time": None, "status": status,
        "probability": None, "lost_reason": None, "visible_to": 3, "close_time": None,
        "pipeline_id": pipeline, "won_time": None, "lost_time": None,
        "expected_close_date": (add + timedelta(days=30)).date().isoformat(),
        "label_ids": [], "stage_id": stage, "person_id": person_id, "org_id": org_id,
        "origin": "ManuallyCreated", "origin_id": None, "channel": None, "channel_id": None,
        "arr": None, "mrr": None, "acv": None, "custom_fields": {},
    })
    tax_method = rng.choices(["exclusive", "inclusive", "none"], weights=[60, 25, 15])[0]
    products = ctx["products"]
    if pipeline == 2:
        pool = [p for p in products if p["billing_frequency"] != "one-time"] + products[3:5]
    elif pipeline == 3:
        pool = [products[12], products[3], products[4], products[1], products[5]]
    else:
        pool = products
    has_products = not (status == "open" and n % 10 == 0)
    if has_products:
        chosen = rng.sample(pool, k=min(len(pool), rng.randint(1, 4)))
        for k, product in enumerate(chosen, start=1):
            if product["code"] == "BD-CONS-H":
                qty = Decimal(rng.choice(["7.5", "12.25", "3.5", "20", "1.75"]))
            elif product["code"] == "BD-SEAT-M":
                qty = Decimal(rng.randint(5, 40))
            else:
                qty = Decimal(rng.choice([1, 1, 1, 2, 3]))
            discount, dtype = Decimal(0), "percentage"
            roll = rng.random()
            if roll < 0.15:
                discount = Decimal(rng.choice([5, 10, 15]))
            elif roll < 0.22:
                discount, dtype = _price(rng.choice(["50", "100", "250"]), currency), "amount"
            _add_product(store, deal, product, qty, tax_method, deal["add_time"], discount,
                         dtype, k)
        if n % 9 == 0:
            pct = n % 2 == 0
            store.insert("discounts", {
                "id": None, "deal_id": deal["id"],
                "description": "Loyalty discount" if pct else "Goodwill credit",
                "amount": Decimal(rng.choice([5, 10])) if pct else _price("200", currency),
                "type": "percentage" if pct else "amount",
                "created_at": deal["add_time"], "created_by_user_id": owner,
                "updated_at": deal["add_time"], "updated_by_user_id": owner})
        store.recompute_deal_value(deal)
    else:
        deal["value"] = _price(str(rng.randint(20, 400) * 50), currency)

    if status == "won":
        deal.update(won_time=iso(close), close_time=iso(close), update_time=iso(close),
                    stage_change_time=iso(close))
    elif status == "lost":
        deal.update(lost_time=iso(close), close_time=iso(close), update_time=iso(close),
                    lost_reason=rng.choice(LOST_REASONS))
    else:
        deal["update_time"] = iso(add + timedelta(days=rng.randint(0, 10)))

    codes = ctx["codes"]
    cf = deal["custom_fields"]
    if rng.random() < 0.7:
        cf[codes["Billing email"]] = f"billing@{org['name'].split()[0].lower()}.example"
    if rng.random() < 0.5:
        cf[codes["PO number"]] = f"PO-{2026000 + n * 13}"
    if rng.random() < 0.6 and org["custom_fields"].get(
            store.field_by_name("organization", "VAT ID")["field_code"]):
        cf[codes["VAT ID"]] = org["custom_fields"][
            store.field_by_name("organization", "VAT ID")["field_code"]]
    if rng.random() < 0.75:
        cf[codes["Payment terms"]] = _option_id(store, "deal", codes["Payment terms"],
                                                rng.choice(PAYMENT_TERMS))

    if (status == "won" and has_products and n % 6 == 0
            and not store.has_recurring(deal["id"])):
        parts = 3 if n % 12 == 0 else 2
        total = deal["value"]
        share = quantize(total / parts, currency)
        for k in range(parts):
            amount = share if k < parts - 1 else total - share * (parts - 1)
            store.insert("installments", {
                "id": None, "deal_id": deal["id"], "description": f"Installment {k + 1}",
                "amount": amount,
                "billing_date": (close + timedelta(days=30 * k)).date().isoformat()})
    if deleted:
        deal.update(is_deleted=True, status="deleted",
                    update_time=iso(_parse(deal["update_time"]) + timedelta(days=1)))
    return deal


def _edit_after_won(ctx: dict, deal: dict) -> bool:
    store: Store = ctx["store"]
    dps = store.deal_products(deal["id"])
    if not dps or store.deal_installments(deal["id"]):
        return False
    won = _parse(deal["won_time"])
    when = iso(min(won + timedelta(days=ctx["rng"].randint(2, 9)),
                   ctx["anchor"] - timedelta(hours=1)))
    dp = dps[0]
    dp["quantity"] = dp["quantity"] + 1
    dp["sum"] = deal_product_sum(dp, deal["currency"])
    dp["update_time"] = when
    store.recompute_deal_value(deal)
    deal["update_time"] = when
    return True


def _synthetic_deal(ctx: dict, n: int) -> None:
    rng: random.Random = ctx["rng"]
    store: Store = ctx["store"]
    anchor: datetime = ctx["anchor"]
    pipeline = rng.choice((1, 2, 3))
    currency = rng.choice(CURRENCIES)
    add = anchor - timedelta(days=rng.randint(5, 300), seconds=rng.randint(0, 86399))
    won = add + timedelta(days=rng.randint(1, 4))
    org_id = rng.randint(1, len(ORGS))
    owner = rng.randint(1, len(USERS))
    deal = store.insert("deals", {
        "id": None, "title": f"Synthetic deal {n}", "creator_user_id": owner,
        "owner_id": owner, "value": Decimal(0), "currency": currency, "add_time": iso(add),
        "update_time": iso(won), "stage_change_time": iso(won), "is_deleted": False,
        "is_archived": False, "archive_time": None, "status": "won", "probability": None,
        "lost_reason": None, "visible_to": 3, "close_time": iso(won),
        "pipeline_id": pipeline, "won_time": iso(won), "lost_time": None,
        "expected_close_date": None, "label_ids": [], "stage_id": ctx["ready"][pipeline],
        "person_id": (ctx["persons_by_org"].get(org_id) or [1])[0], "org_id": org_id,
        "origin": "API", "origin_id": None, "channel": None, "channel_id": None,
        "arr": None, "mrr": None, "acv": None,
        "custom_fields": {ctx["codes"]["PO number"]: f"PO-S{n}"},
    })
    for k, product in enumerate(rng.sample(ctx["products"], k=rng.randint(1, 3)), start=1):
        _add_product(store, deal, product, Decimal(rng.randint(1, 5)), "exclusive",
                     deal["add_time"], order_nr=k)
    store.recompute_deal_value(deal)


def summarize(store: Store, **extra) -> dict:
    deals = list(store.t["deals"].values())
    status: dict[str, int] = {}
    currencies: dict[str, int] = {}
    for d in deals:
        status[d["status"]] = status.get(d["status"], 0) + 1
        currencies[d["currency"]] = currencies.get(d["currency"], 0) + 1
    return {
        "deals": len(deals), "status": status, "currencies": currencies,
        "pipelines": len(store.t["pipelines"]), "stages": len(store.t["stages"]),
        "persons": len(store.t["persons"]), "organizations": len(store.t["organizations"]),
        "products": len(store.t["products"]), "deal_products": len(store.t["deal_products"]),
        "installments": len(store.t["installments"]), "discounts": len(store.t["discounts"]),
        "notes": len(store.t["notes"]), "activities": len(store.t["activities"]),
        "users": len(store.t["users"]), **extra,
    }
