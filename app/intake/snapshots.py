"""Deal snapshots: a Pipedrive deal written onto the desk's copy, and what it is worth.

`apply_*` write what Pipedrive sent; `finish_deal` derives the columns the queue
reads (billing email, flags, readiness, search text, content hash); `deal_state`
is what a draft invoice is built from, compared to see changes and drift.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal

from app.extensions import db
from app.intake.mapping import FieldResolver
from app.intake.models import (
    EPOCH,
    PdDeal,
    PdDealProduct,
    PdInstallment,
    PdOrganization,
    PdPerson,
    PdProduct,
)
from app.intake.parsing import dec, id_of, parse_date, parse_time
from app.intake.readiness import Rules
from app.money import plain_decimal


def _product_state(p: PdDealProduct, number: Callable[[Decimal], str]) -> dict:
    return {
        "name": p.name,
        "item_price": number(p.item_price),
        "quantity": number(p.quantity),
        "discount": number(p.discount),
        "discount_type": p.discount_type,
        "tax": number(p.tax),
        "tax_method": p.tax_method,
        "enabled": p.is_enabled,
        "billing_frequency": p.billing_frequency,
    }


def deal_state(deal: PdDeal, number: Callable[[Decimal], str] = plain_decimal) -> dict:
    """What a draft invoice is built from; compared to detect drift and changes.

    Canonical: every number as plain_decimal text, so a deal just parsed ("10234.00")
    and the same deal reloaded from a Numeric(20, 6) column ("10234.000000") give the
    same state and the same content_hash. `number` is only ever str in migration
    0019, which recomputes the hashes stored before (see there).
    """
    return {
        "title": deal.title,
        "value": number(deal.value),
        "currency": deal.currency,
        "status": deal.status,
        "stage_id": deal.stage_id,
        "pipeline_id": deal.pipeline_id,
        "person_id": deal.person_id,
        "org_id": deal.org_id,
        "billing_email": deal.billing_email,
        "products": {str(p.id): _product_state(p, number) for p in deal.products},
    }


def content_hash(state: dict) -> str:
    """The digest of a deal_state() (PdDeal.content_hash, Invoice.deal_hash)."""
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def apply_deal(deal: PdDeal, data: dict) -> None:
    """Write a deal as Pipedrive sends it onto `deal` (no derived columns)."""
    deal.title = data.get("title") or ""
    deal.value = dec(data.get("value"))
    deal.currency = (data.get("currency") or "").upper()[:3]
    deal.is_deleted = bool(data.get("is_deleted")) or data.get("status") == "deleted"
    deal.status = "deleted" if deal.is_deleted else (data.get("status") or "open")
    deal.pipeline_id = id_of(data.get("pipeline_id"))
    deal.stage_id = id_of(data.get("stage_id"))
    deal.owner_id = id_of(data.get("owner_id") or data.get("user_id"))
    deal.person_id = id_of(data.get("person_id"))
    deal.org_id = id_of(data.get("org_id"))
    deal.won_time = parse_time(data.get("won_time"))
    deal.add_time = parse_time(data.get("add_time"))
    deal.update_time = parse_time(data.get("update_time"))
    deal.custom_fields = data.get("custom_fields") or {}


def apply_products(deal: PdDeal, items: list[dict]) -> None:
    """Replace the deal's products with `items`, in their order."""
    existing = {p.id: p for p in deal.products}
    keep = []
    for pos, item in enumerate(items):
        p = existing.get(item["id"]) or PdDealProduct(id=item["id"])
        p.position = pos
        p.product_id = id_of(item.get("product_id"))
        catalogue = db.session.get(PdProduct, p.product_id) if p.product_id else None
        p.product_code = catalogue.code if catalogue else None
        p.name = item.get("name") or ""
        p.item_price = dec(item.get("item_price"))
        p.quantity = dec(item.get("quantity"), "1")
        p.discount = dec(item.get("discount"))
        p.discount_type = item.get("discount_type") or "percentage"
        p.tax = dec(item.get("tax"))
        p.tax_method = item.get("tax_method") or "none"
        p.sum = dec(item.get("sum")) if item.get("sum") is not None else None
        p.currency = (item.get("currency") or "").upper()[:3] or None
        p.is_enabled = item.get("is_enabled", True) is not False
        p.billing_frequency = item.get("billing_frequency") or "one-time"
        p.billing_frequency_cycles = item.get("billing_frequency_cycles")
        p.billing_start_date = parse_date(item.get("billing_start_date"))
        p.comments = item.get("comments")
        keep.append(p)
    deal.products = keep


def apply_installments(deal: PdDeal, items: list[dict]) -> None:
    """Replace the deal's installments with `items`."""
    existing = {i.id: i for i in deal.installments}
    keep = []
    for item in items:
        inst = existing.get(int(item["id"])) or PdInstallment(id=int(item["id"]))
        inst.amount = dec(item.get("amount"))
        inst.billing_date = parse_date(item.get("billing_date"))
        inst.description = item.get("description") or ""
        keep.append(inst)
    deal.installments = keep
    deal.has_installments = bool(keep)


def finish_deal(deal: PdDeal, rules: Rules, resolver: FieldResolver) -> None:
    """Derived columns: billing email, flags, readiness, search text, content hash."""
    person = db.session.get(PdPerson, deal.person_id) if deal.person_id else None
    org = db.session.get(PdOrganization, deal.org_id) if deal.org_id else None
    email = resolver.value("billing_email", {"deal": deal, "organization": org, "person": person})
    deal.billing_email = (str(email).strip() if email else None) or (
        person.primary_email if person else None
    )
    enabled = [p for p in deal.products if p.is_enabled]
    deal.product_count = len(enabled)
    deal.has_recurring = any(p.recurring for p in enabled)
    deal.has_installments = bool(deal.installments)
    deal.ready = rules.ready(deal)
    deal.won_sort = deal.won_time or EPOCH
    deal.update_sort = deal.update_time or deal.add_time or EPOCH
    deal.search_text = " ".join(
        x
        for x in (
            deal.title,
            org.name if org else "",
            person.name if person else "",
            deal.billing_email or "",
            str(deal.id),
        )
        if x
    ).lower()
    deal.content_hash = content_hash(deal_state(deal))


def diff(before: dict, after: dict) -> dict:
    """What changed between two deal_state()s, as a DealChange records it."""
    out = {}
    for key in sorted(set(before) | set(after)):
        if key == "products":
            b, a = before.get(key) or {}, after.get(key) or {}
            added = sorted(set(a) - set(b))
            removed = sorted(set(b) - set(a))
            changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
            if added or removed or changed:
                out["products"] = {
                    "added": [a[k]["name"] for k in added],
                    "removed": [b[k]["name"] for k in removed],
                    "changed": {
                        b[k]["name"]: {f: [b[k][f], a[k][f]] for f in a[k] if a[k][f] != b[k][f]}
                        for k in changed
                    },
                }
        elif before.get(key) != after.get(key):
            out[key] = [before.get(key), after.get(key)]
    return out
