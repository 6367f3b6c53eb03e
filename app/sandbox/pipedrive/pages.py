"""Human-readable record pages at the paths Pipedrive's web app uses.

The desk links to ``{PIPEDRIVE_BASE_URL}/deal/<id>`` ("Open in Pipedrive"), as it
would to https://<company>.pipedrive.com/deal/<id>; in the demo that base is this
sandbox, so it answers those paths (and /organization/<id>, /person/<id>) with a
plain page showing the record, its fields, products and notes. Read-only, no
sign-in: the sandbox plays the company's Pipedrive for one person on one machine.
"""

from __future__ import annotations

import html
import re
from decimal import Decimal

from flask import Flask, render_template_string
from markupsafe import Markup

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · Pipedrive sandbox</title>
<style>body{font-family:sans-serif;margin:1.5rem;max-width:70rem}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px;text-align:left;vertical-align:top}
table{border-collapse:collapse;margin-bottom:1rem}th{background:#f4f4f4}
.muted{color:#666}.note{border-left:3px solid #ccc;padding:.2rem .8rem;margin:.5rem 0}</style>
</head><body>
<p class="muted"><a href="/_sandbox/">Pipedrive sandbox: {{ company }}</a></p>
{% if missing %}
  <h1>{{ title }}</h1><p>There is no such record in this sandbox.</p>
{% else %}
  <h1>{{ title }}</h1>
  <table>{% for label, value in facts %}
    <tr><th>{{ label }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
  {% for heading, columns, rows in tables if rows %}
    <h2>{{ heading }}</h2>
    <table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
    {% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
    </table>
  {% endfor %}
  {% if notes is not none %}
    <h2>Notes</h2>
    {% for n in notes %}<div class="note">
      <small class="muted">{{ n.add_time }}{% if n.pinned %} · pinned{% endif %}</small>
      <div>{{ n.content }}</div></div>
    {% else %}<p class="muted">No notes.</p>{% endfor %}
  {% endif %}
{% endif %}
</body></html>"""

_LINK = re.compile(r"&lt;a href=&quot;(https?://[^&\"<>]*)&quot;[^&]*?&gt;(.*?)&lt;/a&gt;")
_SIMPLE_TAGS = re.compile(r"&lt;(/?)(b|i|strong|em|p|ul|ol|li|br ?/?)&gt;")


def note_html(content: str) -> Markup:
    """A note's HTML, kept to simple formatting and http(s) links; the rest shown as text."""
    text = html.escape(content or "")
    text = _LINK.sub(lambda m: f'<a href="{m.group(1)}">{m.group(2)}</a>', text)
    text = _SIMPLE_TAGS.sub(lambda m: f"<{m.group(1)}{m.group(2)}>", text)
    return Markup(text)  # noqa: S704 - escaped above; only whitelisted tags restored


def register_pages(app: Flask, sb) -> None:
    store = sb.store

    def money(value, currency) -> str:
        if value is None:
            return ""
        return f"{currency or ''} {Decimal(value):,f}".strip()

    def custom(entity: str, values: dict) -> list[tuple[str, str]]:
        out = []
        for code, value in (values or {}).items():
            field = store.fields[entity].get(code)
            if field is None or value in (None, "", []):
                continue
            if isinstance(value, dict) and "value" in value:
                shown = money(value["value"], value.get("currency"))
            elif field["field_type"] in ("enum", "set") and field.get("options"):
                labels = {o["id"]: o["label"] for o in field["options"]}
                ids = value if isinstance(value, list) else [value]
                shown = ", ".join(str(labels.get(i, i)) for i in ids)
            else:
                shown = str(value)
            out.append((field["field_name"], shown))
        return out

    def name_of(table: str, row_id, path: str | None = None):
        row = store.t[table].get(row_id) if row_id else None
        if row is None:
            return "—"
        if path:
            return Markup('<a href="/{}/{}">{}</a>').format(path, row_id, row.get("name"))
        return row.get("name") or "—"

    def render(title: str, **context):
        context.setdefault("facts", [])
        context.setdefault("tables", [])
        context.setdefault("notes", None)
        return render_template_string(
            PAGE, title=title, company=sb.settings.company_name, missing=False, **context
        )

    def missing(what: str, row_id: int):
        return render_template_string(
            PAGE, title=f"{what} {row_id} not found", company=sb.settings.company_name,
            missing=True), 404

    def notes_for(key: str, row_id: int) -> list[dict]:
        notes = [n for n in store.t["notes"].values() if n.get(key) == row_id]
        return [{"add_time": n.get("add_time"), "pinned": n.get("pinned_to_deal_flag"),
                 "content": note_html(n.get("content"))}
                for n in sorted(notes, key=lambda n: n["id"])]

    @app.get("/deal/<int:deal_id>")
    def deal_page(deal_id: int):
        with store.lock:
            deal = store.t["deals"].get(deal_id)
            if deal is None:
                return missing("Deal", deal_id)
            cur = deal["currency"]
            status = "deleted" if deal["is_deleted"] else deal["status"]
            facts = [
                ("Deal", f"#{deal['id']}"), ("Status", status),
                ("Value", money(deal["value"], cur)),
                ("Pipeline", name_of("pipelines", deal.get("pipeline_id"))),
                ("Stage", name_of("stages", deal.get("stage_id"))),
                ("Owner", name_of("users", deal.get("owner_id"))),
                ("Organization", name_of("organizations", deal.get("org_id"), "organization")),
                ("Person", name_of("persons", deal.get("person_id"), "person")),
                ("Won", deal.get("won_time") or "—"), ("Updated", deal.get("update_time")),
                *custom("deal", deal.get("custom_fields")),
            ]
            products = [
                (p["name"], f"{Decimal(p['quantity']):f}", money(p["item_price"], cur),
                 f"{p.get('discount') or 0} {'%' if p.get('discount_type') != 'amount' else cur}",
                 f"{p.get('tax') or 0} % ({p.get('tax_method')})", money(p.get("sum"), cur),
                 p.get("billing_frequency"), "yes" if p.get("is_enabled", True) else "no")
                for p in store.deal_products(deal_id)
            ]
            discounts = [
                (d.get("description") or "", f"{d['amount']} %" if d["type"] == "percentage"
                 else money(d["amount"], cur))
                for d in store.deal_discounts(deal_id)
            ]
            installments = [
                (i.get("billing_date") or "", money(i["amount"], cur), i.get("description") or "")
                for i in store.deal_installments(deal_id)
            ]
            return render(
                deal["title"] or f"Deal {deal_id}", facts=facts,
                notes=notes_for("deal_id", deal_id),
                tables=[
                    ("Products", ("Product", "Quantity", "Price", "Discount", "Tax", "Sum",
                                  "Billing", "Enabled"), products),
                    ("Discounts", ("Description", "Amount"), discounts),
                    ("Installments", ("Billing date", "Amount", "Description"), installments),
                ],
            )

    def deals_of(key: str, row_id: int) -> list[tuple]:
        return [
            (Markup('<a href="/deal/{}">{}</a>').format(d["id"], d["title"] or d["id"]),
             "deleted" if d["is_deleted"] else d["status"], money(d["value"], d["currency"]))
            for d in sorted(store.t["deals"].values(), key=lambda d: d["id"])
            if d.get(key) == row_id
        ]

    @app.get("/organization/<int:org_id>")
    def organization_page(org_id: int):
        with store.lock:
            org = store.t["organizations"].get(org_id)
            if org is None:
                return missing("Organization", org_id)
            address = org.get("address")
            if isinstance(address, dict):
                address = address.get("value") or ", ".join(
                    str(v) for k, v in address.items() if v and k != "value")
            persons = [
                (Markup('<a href="/person/{}">{}</a>').format(p["id"], p["name"]),
                 ", ".join(e["value"] for e in p.get("emails") or []))
                for p in store.t["persons"].values() if p.get("org_id") == org_id
            ]
            return render(
                org["name"], notes=notes_for("org_id", org_id),
                facts=[("Organization", f"#{org_id}"), ("Address", address or "—"),
                       *custom("organization", org.get("custom_fields"))],
                tables=[("People", ("Name", "Emails"), persons),
                        ("Deals", ("Deal", "Status", "Value"), deals_of("org_id", org_id))],
            )

    @app.get("/person/<int:person_id>")
    def person_page(person_id: int):
        with store.lock:
            person = store.t["persons"].get(person_id)
            if person is None:
                return missing("Person", person_id)
            emails = ", ".join(
                e["value"] + (" (primary)" if e.get("primary") else "")
                for e in person.get("emails") or [])
            return render(
                person["name"], notes=notes_for("person_id", person_id),
                facts=[("Person", f"#{person_id}"), ("Emails", emails or "—"),
                       ("Organization",
                        name_of("organizations", person.get("org_id"), "organization")),
                       *custom("person", person.get("custom_fields"))],
                tables=[("Deals", ("Deal", "Status", "Value"),
                         deals_of("person_id", person_id))],
            )
