"""Turn a ready deal into a draft invoice, and re-apply a deal that drifted."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from app.audit.operations import record
from app.extensions import db
from app.intake.fetching import fetch_deal_details
from app.intake.mapping import FieldResolver
from app.intake.models import PdDeal, PdOrganization, PdPerson
from app.intake.snapshots import deal_state
from app.invoices.countries import country_code
from app.invoices.models import LIVE, Invoice, InvoiceDiscount, InvoiceLine
from app.invoices.totals import for_invoice
from app.money import billable
from app.rules.settings import billing_defaults, tax_mapping_for
from app.types import utcnow

DEFAULT_DAYS_UNTIL_DUE = 30


class DraftRefused(Exception):
    """A draft cannot be made from this deal; the message says why and what to do."""


def live_invoice_for(deal_id: int) -> Invoice | None:
    return (
        db.session.execute(
            select(Invoice)
            .where(Invoice.deal_id == deal_id, Invoice.status.in_(LIVE))
            .order_by(Invoice.id.desc())
        )
        .scalars()
        .first()
    )


def _terms_days(value) -> int | None:
    if value in (None, ""):
        return None
    match = re.search(r"(\d{1,3})", str(value))
    if match:
        return int(match.group(1))
    if "receipt" in str(value).lower() or "immediate" in str(value).lower():
        return 0
    return None


def _address(value) -> dict:
    """An address from Pipedrive (its address object, or the text of a plain field)."""
    if isinstance(value, str):
        value = {"value": value.strip()}
    addr = value if isinstance(value, dict) else {}
    line1 = " ".join(x for x in (addr.get("route"), addr.get("street_number")) if x)
    if not line1 and addr.get("value") and not addr.get("locality"):
        line1 = addr["value"]
    out = {
        "line1": line1 or "",
        "line2": addr.get("subpremise") or "",
        "postal_code": addr.get("postal_code") or "",
        "city": addr.get("locality") or "",
        "state": addr.get("admin_area_level_1") or "",
    }
    out = {k: str(v)[:200] for k, v in out.items()}  # the editor's limit
    return {**out, "country": country_code(addr.get("country"))}


def _tax_behavior(percent: Decimal, method: str) -> str:
    """Pipedrive's tax method, unless the admin's tax mapping says otherwise."""
    if method not in ("exclusive", "inclusive") or not percent:
        return "none"
    rule = tax_mapping_for(percent, method)
    return rule.behavior if rule is not None else method


def snapshot_lines(deal: PdDeal) -> list[dict]:
    """The lines a deal gives, as plain data (also what drift compares)."""
    lines = []
    for p in deal.products:
        if not p.is_enabled:
            continue
        lines.append(
            {
                "source": p.id,
                "description": p.name + (f" — {p.comments}" if p.comments else ""),
                "quantity": p.quantity,
                "unit_price": p.item_price,
                "discount_type": p.discount_type if p.discount else None,
                "discount_value": p.discount if p.discount else None,
                "tax_rate": p.tax if p.tax_method != "none" else Decimal(0),
                "tax_behavior": _tax_behavior(p.tax, p.tax_method),
                "excluded": p.recurring,
                "excluded_reason": (
                    f"Recurring ({p.billing_frequency}): billed separately, not in this total"
                    if p.recurring
                    else None
                ),
            }
        )
    if not lines:
        lines.append(
            {
                "source": None,
                "description": deal.title,
                "quantity": Decimal(1),
                "unit_price": deal.value,
                "discount_type": None,
                "discount_value": None,
                "tax_rate": Decimal(0),
                "tax_behavior": "none",
                "excluded": False,
                "excluded_reason": None,
            }
        )
    return lines


LINE_FIELDS = (
    "description",
    "quantity",
    "unit_price",
    "discount_type",
    "discount_value",
    "tax_rate",
    "tax_behavior",
    "excluded",
    "excluded_reason",
)


def _snapshot(deal: PdDeal) -> dict:
    state = deal_state(deal)
    state["lines"] = [
        {k: (str(v) if isinstance(v, Decimal) else v) for k, v in line.items()}
        for line in snapshot_lines(deal)
    ]
    state["discounts"] = [
        {"id": d.id, "description": d.description, "type": d.type, "amount": str(d.amount)}
        for d in deal.discounts
    ]
    return state


def invoice_state(invoice: Invoice) -> dict:
    """What the audit log keeps of an invoice's content."""
    return {
        "currency": invoice.currency,
        "collection_method": invoice.collection_method,
        "days_until_due": invoice.days_until_due,
        "due_date": invoice.due_date,
        "customer_name": invoice.customer_name,
        "billing_email": invoice.billing_email,
        "vat_id": invoice.vat_id,
        "po_number": invoice.po_number,
        "lines": len(invoice.lines),
        "total": invoice.total,
    }


def recompute(invoice: Invoice) -> None:
    totals = for_invoice(invoice)
    # Kept for this request: the editor renders these very totals right after the edit.
    invoice.computed_totals = totals
    invoice.subtotal = totals.major(totals.products)
    invoice.discount_total = totals.major(totals.discounts)
    invoice.tax_total = totals.major(totals.tax_total)
    invoice.total = totals.major(totals.total)


def create_draft(deal: PdDeal, user, client) -> Invoice:
    """Make a draft from a ready deal. `client` reads discounts and installments now."""
    if deal.is_deleted or deal.status in ("lost", "deleted"):
        raise DraftRefused(f"Deal #{deal.id} is {deal.status}: it cannot be billed.")
    existing = live_invoice_for(deal.id)
    if existing is not None:
        raise DraftRefused(
            f"Deal #{deal.id} already has invoice {existing.number} ({existing.status_label}); "
            "open it instead of making a second one."
        )
    defaults = billing_defaults()
    # A deal without a currency is billed in the admin's default currency.
    currency = deal.currency or (defaults.currency or "")
    if not billable(currency):
        raise DraftRefused(
            f"Stripe cannot bill in {currency or 'an empty currency'}: change the deal's "
            "currency in Pipedrive first."
        )
    # Discounts and installments are per deal in Pipedrive: read them fresh, now.
    fetch_deal_details(client, deal)
    person = db.session.get(PdPerson, deal.person_id) if deal.person_id else None
    org = db.session.get(PdOrganization, deal.org_id) if deal.org_id else None
    resolver = FieldResolver()
    records = {"deal": deal, "organization": org, "person": person}

    invoice = Invoice(
        deal_id=deal.id,
        status="draft",
        currency=currency,
        collection_method=defaults.collection_method or "send_invoice",
        days_until_due=_terms_days(resolver.value("payment_terms", records)),
        customer_name=(org.name if org else (person.name if person else "")) or "",
        billing_email=deal.billing_email or "",
        address=_address(resolver.value("billing_address", records)),
        vat_id=str(resolver.value("vat_id", records) or "")[:40],
        po_number=str(resolver.value("po_number", records) or "")[:100],
        org_id=deal.org_id,
        person_id=deal.person_id,
        deal_hash=deal.content_hash,
        deal_snapshot=_snapshot(deal),
        created_by_id=getattr(user, "id", None),
        updated_by_id=getattr(user, "id", None),
        memo=f"{deal.title}",
    )
    if invoice.days_until_due is None:  # no terms on the deal: the admin's default
        invoice.days_until_due = (
            defaults.days_until_due
            if defaults.days_until_due is not None
            else DEFAULT_DAYS_UNTIL_DUE
        )
    for pos, line in enumerate(snapshot_lines(deal)):
        invoice.lines.append(
            InvoiceLine(
                position=pos,
                description=line["description"][:500],
                quantity=line["quantity"],
                unit_price=line["unit_price"],
                discount_type=line["discount_type"],
                discount_value=line["discount_value"],
                tax_rate=line["tax_rate"],
                tax_behavior=line["tax_behavior"],
                excluded=line["excluded"],
                excluded_reason=line["excluded_reason"],
                source_deal_product_id=line["source"],
                edited_fields=[],
            )
        )
    for pos, d in enumerate(deal.discounts):
        invoice.discounts.append(
            InvoiceDiscount(
                position=pos,
                description=d.description or "Deal discount",
                type=d.type if d.type in ("percentage", "amount") else "amount",
                value=d.amount,
                source_deal_discount_id=d.id,
            )
        )
    recompute(invoice)
    db.session.add(invoice)
    db.session.flush()
    record(
        "invoice.create",
        "invoice",
        invoice.id,
        None,
        {**invoice_state(invoice), "deal_id": deal.id},
    )
    return invoice


def drift(invoice: Invoice, deal: PdDeal) -> dict | None:
    """What changed in the deal since the draft was made, line by line; None if nothing."""
    if not deal or deal.content_hash == invoice.deal_hash:
        return None
    old = invoice.deal_snapshot or {}
    new = _snapshot_without_details(deal, old)
    changes: dict = {}
    for key in ("value", "currency", "person_id", "org_id", "billing_email", "title"):
        if old.get(key) != new.get(key):
            changes[key] = (old.get(key), new.get(key))
    old_lines = {str(x["source"]): x for x in old.get("lines", [])}
    new_lines = {str(x["source"]): x for x in new.get("lines", [])}
    line_changes = []
    for key in sorted(set(old_lines) | set(new_lines)):
        a, b = old_lines.get(key), new_lines.get(key)
        if a is None:
            line_changes.append(("added", b["description"], {}))
        elif b is None:
            line_changes.append(("removed", a["description"], {}))
        else:
            diff = {f: (a.get(f), b.get(f)) for f in LINE_FIELDS if a.get(f) != b.get(f)}
            if diff:
                line_changes.append(("changed", b["description"], diff))
    if line_changes:
        changes["lines"] = line_changes
    return changes or None


def _snapshot_without_details(deal: PdDeal, old: dict) -> dict:
    state = deal_state(deal)
    state["lines"] = [
        {k: (str(v) if isinstance(v, Decimal) else v) for k, v in line.items()}
        for line in snapshot_lines(deal)
    ]
    state["discounts"] = old.get("discounts", [])
    return state


def reapply_deal(invoice: Invoice, deal: PdDeal, user, client, *, keep_manual: bool = True):
    """Bring the draft in line with the deal as it is now.

    Lines finance edited keep their edited fields unless `keep_manual` is False;
    lines added by hand stay; lines whose product left the deal go.
    """
    if deal.is_deleted or deal.status in ("lost", "deleted"):
        raise DraftRefused(f"Deal #{deal.id} is {deal.status}: cancel this invoice instead.")
    fetch_deal_details(client, deal)
    before = invoice_state(invoice)
    fresh = snapshot_lines(deal)
    by_source = {
        ln.source_deal_product_id: ln
        for ln in invoice.lines
        if ln.source_deal_product_id is not None
    }
    manual_lines = [
        ln for ln in invoice.lines if ln.source_deal_product_id is None and ln.edited_fields
    ]
    new_lines = []
    for line in fresh:
        current = by_source.get(line["source"]) if line["source"] is not None else None
        if current is None:
            current = InvoiceLine(source_deal_product_id=line["source"], edited_fields=[])
        for f in LINE_FIELDS:
            if keep_manual and f in (current.edited_fields or []):
                continue
            setattr(current, f, line[f] if f != "description" else line[f][:500])
        if not keep_manual:
            current.edited_fields = []
        new_lines.append(current)
    new_lines += manual_lines
    for pos, ln in enumerate(new_lines):
        ln.position = pos
    invoice.lines = new_lines
    if not invoice.currency_manual:
        invoice.currency = deal.currency
    invoice.discounts = [
        InvoiceDiscount(
            position=pos,
            description=d.description or "Deal discount",
            type=d.type if d.type in ("percentage", "amount") else "amount",
            value=d.amount,
            source_deal_discount_id=d.id,
        )
        for pos, d in enumerate(deal.discounts)
    ] + [d for d in invoice.discounts if d.source_deal_discount_id is None]
    if not keep_manual or not invoice.billing_email:
        invoice.billing_email = deal.billing_email or invoice.billing_email
    invoice.deal_hash = deal.content_hash
    invoice.deal_snapshot = _snapshot(deal)
    invoice.updated_at = utcnow()
    recompute(invoice)
    db.session.flush()
    record(
        "invoice.reapply_deal",
        "invoice",
        invoice.id,
        before,
        {**invoice_state(invoice), "kept_manual_edits": keep_manual},
    )
