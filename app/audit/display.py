"""What the audit log shows: values in plain words, and an object filter that takes what
the rows show ("invoice 3", "invoice:3", "invoice #3") or an invoice's number.

The stored entries (and so the hash chain) are never touched: everything here only
reads them and turns them into text.
"""

from __future__ import annotations

import dataclasses
import re

from sqlalchemy import and_, func, or_, select

from app.audit.models import AuditEntry
from app.extensions import db
from app.money import plain_decimal

NONE = "—"

# Exactly what str(Decimal) writes when it is not a whole number: "120.000000",
# "-0.50", "1E+3", "1E-7". Decimals reach the audit log as such strings (app.types.json_safe);
# whole numbers ("1000") are already plain, and leading zeros ("007.5") are someone's text.
DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+(?:E[+-]\d+)?|E[+-]\d+)")
# Fields that hold people's text, shown as typed even when it looks like a number.
TEXT_FIELDS = frozenset(
    {"description", "memo", "footer", "po_number", "vat_id", "name", "number", "reason",
     "comment", "hold_reason", "customer_name", "title", "value_text"}
)


def show_value(value, field: str | None = None, *, inline: bool = False) -> str:
    """One audit value as people read it: None "—", lists "a, b", Decimals plain
    ("20", not "2E+1"; "0", not "0.000000"), a dict "key: value" per line (`inline`:
    separated by commas, for a place that shows one line)."""
    if value is None or value == "" or value == [] or value == {}:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        # Sorted: PostgreSQL's JSONB keeps no key order, so both databases show one order.
        parts = [f"{k}: {show_value(v, str(k), inline=True)}"
                 for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
        return ", ".join(parts) if inline else "\n".join(parts)
    if isinstance(value, (list, tuple)):
        items = [show_value(v, field, inline=True) for v in value]
        joiner = "; " if any(isinstance(v, dict) for v in value) else ", "
        return joiner.join(items)
    if isinstance(value, str):
        if field not in TEXT_FIELDS and DECIMAL_TEXT.fullmatch(value):
            return plain_decimal(value)
        return value
    if isinstance(value, int):
        return str(value)
    try:  # a Decimal handed over directly
        return plain_decimal(value)
    except (TypeError, ValueError):
        return str(value)


def readable_changes(before, after) -> list[tuple[str, str, str]]:
    """[(field, old, new)] for the fields that differ, each value in plain words."""
    from app.audit.operations import changes

    before = before if isinstance(before, dict) else ({} if before is None else {"": before})
    after = after if isinstance(after, dict) else ({} if after is None else {"": after})
    return [
        (field, show_value(old, field), show_value(new, field))
        for field, (old, new) in changes(before, after).items()
    ]


# -- the object filter ----------------------------------------------------------------

# "invoice 3", "invoice:3", "invoice #3", "invoice: #3", "push_job", "tax_mapping 19 vat".
_OBJECT = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\s*[:#\s]\s*#?\s*(.*))?", re.S)
HINT = (
    "Enter an object as the rows show it (invoice 3, invoice:3, invoice #3, user 2) "
    "or an invoice number (the desk's, such as BD-00003, or Stripe's)."
)


@dataclasses.dataclass
class ObjectFilter:
    """The entries an object search means, or why it means none."""

    # (object type, its ids or None for any): an entry about any of them matches.
    targets: list[tuple[str, list[str] | None]] = dataclasses.field(default_factory=list)
    error: str | None = None
    note: str | None = None  # what an invoice number was resolved to

    def apply(self, query):
        if not self.targets:
            return query
        return query.where(or_(*(
            AuditEntry.object_type == kind if ids is None
            else and_(AuditEntry.object_type == kind, AuditEntry.object_id.in_(ids))
            for kind, ids in self.targets
        )))


def _db_id(text: str) -> int | None:
    """`text` as a row id, when it can be one (digits only, within a 32-bit integer)."""
    if text.isdigit() and len(text) <= 10 and int(text) <= 2**31 - 1:
        return int(text)
    return None


def invoices_numbered(text: str) -> list:
    """The invoices whose desk number (BD-00003), Stripe number or Stripe id is `text`."""
    from app.invoices.models import Invoice

    wanted = text.strip().upper()
    if not wanted:
        return []
    found = {
        inv.id: inv
        for inv in db.session.execute(
            select(Invoice).where(
                or_(func.upper(Invoice.stripe_number) == wanted,
                    Invoice.stripe_invoice_id == text.strip())
            )
        ).scalars()
    }
    # The desk's own number is made from the id: read the id off the end and let the
    # invoice say whether that is its number (the format stays the model's alone).
    digits = re.search(r"(\d+)$", wanted)
    ident = _db_id(digits.group(1)) if digits else None
    if ident is not None and ident not in found:
        inv = db.session.get(Invoice, ident)
        if inv is not None and inv.number.upper() == wanted:
            found[inv.id] = inv
    return list(found.values())


def _invoice_targets(invoice_ids: list[int]) -> list[tuple[str, list[str] | None]]:
    """The invoices and what the desk did for them under other objects: their push jobs
    and their Pipedrive write-backs."""
    from app.push.models import PushJob
    from app.writeback.models import WritebackItem

    targets: list[tuple[str, list[str] | None]] = [("invoice", [str(i) for i in invoice_ids])]
    for kind, model in (("push_job", PushJob), ("writeback", WritebackItem)):
        ids = db.session.execute(
            select(model.id).where(model.invoice_id.in_(invoice_ids))
        ).scalars().all()
        if ids:
            targets.append((kind, [str(i) for i in ids]))
    return targets


def _type_exists(object_type: str) -> bool:
    return db.session.execute(
        select(AuditEntry.id).where(AuditEntry.object_type == object_type).limit(1)
    ).first() is not None


def object_filter(text: str) -> ObjectFilter:
    text = (text or "").strip()
    if not text:
        return ObjectFilter()
    invoices = invoices_numbered(text)
    if invoices:
        names = ", ".join(
            f"invoice {inv.id} ({inv.number}"
            + (f", Stripe {inv.stripe_number}" if inv.stripe_number else "") + ")"
            for inv in invoices
        )
        return ObjectFilter(
            _invoice_targets([inv.id for inv in invoices]),
            note=f"{text} is {names}; shown with its pushes to Stripe and its "
                 "write-backs to Pipedrive.",
        )
    match = _OBJECT.fullmatch(text)
    if match is None:
        return ObjectFilter(error=f"No invoice is numbered “{text}”. {HINT}")
    kind = match.group(1).lower()
    ident = (match.group(2) or "").strip()
    if not _type_exists(kind):
        if ident:
            return ObjectFilter(error=f"Nothing called “{kind}” is in the audit log. {HINT}")
        return ObjectFilter(
            error=f"Nothing called “{kind}” is in the audit log, and no invoice is numbered "
                  f"“{text}”. {HINT}"
        )
    return ObjectFilter([(kind, [ident] if ident else None)])


def invoice_numbers(entries) -> dict[str, str]:
    """object id -> "BD-00003 · DESK-0001" for the invoice rows on this page."""
    from app.invoices.models import Invoice

    ids = {_db_id(e.object_id) for e in entries if e.object_type == "invoice"} - {None}
    if not ids:
        return {}
    rows = db.session.execute(select(Invoice).where(Invoice.id.in_(ids))).scalars()
    return {
        str(inv.id): inv.number + (f" · {inv.stripe_number}" if inv.stripe_number else "")
        for inv in rows
    }
