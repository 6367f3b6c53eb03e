"""Edits to a draft. Each checks the version the editor loaded (two people editing
one draft: the later save is refused, never silently applied), applies the
change, recomputes the totals and writes the audit entry. Helpers flush; the
view commits.
"""

from __future__ import annotations

from decimal import Decimal

from app.approvals.workflow import content_edited
from app.audit.operations import record
from app.extensions import db
from app.invoices.drafting import recompute
from app.invoices.models import EDITABLE, Invoice, InvoiceDiscount, InvoiceLine
from app.invoices.totals import MAX_STRIPE_LINES
from app.invoices.validation import PLACEHOLDER_DESCRIPTION

LINE_EDIT_FIELDS = (
    "description",
    "quantity",
    "unit_price",
    "discount_type",
    "discount_value",
    "tax_rate",
    "tax_behavior",
)


class EditConflict(Exception):
    """The invoice changed since the editor loaded it."""

    def __init__(self, invoice: Invoice, seen_version: int | None) -> None:
        who = invoice.updated_by_id
        super().__init__(
            f"This invoice was changed by someone else (now version {invoice.version}, you "
            f"edited version {seen_version}). Your input is kept below and was NOT saved: "
            "reload to see their change, then apply yours again."
        )
        self.invoice = invoice
        self.updated_by_id = who


class EditRefused(Exception):
    pass


def check_editable(invoice: Invoice, seen_version) -> None:
    if invoice.stripe_status not in (None, "draft", "void"):  # void bills nobody
        raise EditRefused(
            f"Invoice {invoice.number} is already finalized in Stripe "
            f"({invoice.stripe_number or invoice.stripe_invoice_id}): it can no longer be "
            "edited. Void it in Stripe or issue a credit note instead."
        )
    if invoice.status not in EDITABLE:
        raise EditRefused(
            f"Invoice {invoice.number} is {invoice.status_label.lower()}: "
            "it can no longer be edited."
        )
    from app.push.recovery import edit_refusal  # a version of it may be billed in Stripe

    if refused := edit_refusal(invoice):
        raise EditRefused(refused)
    try:
        seen = int(seen_version)
    except (TypeError, ValueError):
        seen = None
    if seen != invoice.version:
        raise EditConflict(invoice, seen)


def _edited(invoice: Invoice, user) -> None:
    """A content change: bump the version; an approval or submission no longer counts."""
    content_edited(invoice, user)


def _line_state(line: InvoiceLine) -> dict:
    return {f: getattr(line, f) for f in LINE_EDIT_FIELDS}


def update_line(invoice: Invoice, line: InvoiceLine, values: dict, user, seen_version) -> bool:
    check_editable(invoice, seen_version)
    before = _line_state(line)
    changed = [f for f in LINE_EDIT_FIELDS if f in values and values[f] != getattr(line, f)]
    if not changed:
        return False
    for f in changed:
        setattr(line, f, values[f])
    line.edited_fields = sorted(set(line.edited_fields or []) | set(changed))
    _edited(invoice, user)
    recompute(invoice)
    db.session.flush()
    # A discount value is money or a percentage by its type: the entry keeps the type too.
    kept = changed + (["discount_type"] if "discount_value" in changed
                      and "discount_type" not in changed else [])
    record(
        "invoice.line_update",
        "invoice",
        invoice.id,
        {"line": line.id, **{f: before[f] for f in kept}},
        {"line": line.id, **{f: getattr(line, f) for f in kept}},
    )
    return True


def add_line(invoice: Invoice, user, seen_version) -> InvoiceLine:
    check_editable(invoice, seen_version)
    if len(invoice.lines) >= MAX_STRIPE_LINES:
        raise EditRefused(f"Stripe takes at most {MAX_STRIPE_LINES} lines on one invoice.")
    line = InvoiceLine(
        position=len(invoice.lines),
        description=PLACEHOLDER_DESCRIPTION,
        quantity=Decimal(1),
        unit_price=Decimal(0),
        tax_rate=Decimal(0),
        tax_behavior="none",
        edited_fields=list(LINE_EDIT_FIELDS),
    )
    invoice.lines.append(line)
    _edited(invoice, user)
    recompute(invoice)
    db.session.flush()
    record("invoice.line_add", "invoice", invoice.id, None, {"line": line.id})
    return line


def remove_line(invoice: Invoice, line: InvoiceLine, user, seen_version) -> None:
    check_editable(invoice, seen_version)
    if len([ln for ln in invoice.lines if not ln.excluded]) <= 1 and not line.excluded:
        raise EditRefused("An invoice needs at least one line; change this one instead.")
    before = {"line": line.id, **_line_state(line)}
    invoice.lines.remove(line)
    for pos, ln in enumerate(invoice.lines):
        ln.position = pos
    _edited(invoice, user)
    recompute(invoice)
    db.session.flush()
    record("invoice.line_remove", "invoice", invoice.id, before, None)


def move_line(invoice: Invoice, line: InvoiceLine, direction: str, user, seen_version) -> None:
    check_editable(invoice, seen_version)
    lines = list(invoice.lines)
    i = lines.index(line)
    j = i - 1 if direction == "up" else i + 1
    if not 0 <= j < len(lines):
        return
    lines[i], lines[j] = lines[j], lines[i]
    for pos, ln in enumerate(lines):
        ln.position = pos
    invoice.lines = lines
    _edited(invoice, user)
    db.session.flush()
    record(
        "invoice.line_move",
        "invoice",
        invoice.id,
        {"line": line.id, "position": i},
        {"line": line.id, "position": j},
    )


SETTINGS_FIELDS = (
    "currency",
    "collection_method",
    "days_until_due",
    "due_date",
    "memo",
    "footer",
    "po_number",
    "custom_fields",
)
BILLTO_FIELDS = ("customer_name", "billing_email", "address", "vat_id")


def _update_fields(invoice: Invoice, fields, values: dict, user, seen_version, action: str) -> bool:
    check_editable(invoice, seen_version)
    before = {f: getattr(invoice, f) for f in fields}
    changed = [f for f in fields if f in values and values[f] != before[f]]
    if not changed:
        return False
    if "currency" in changed:
        # Prices are not converted: they stay as typed, now in the new currency.
        invoice.currency_manual = True
    for f in changed:
        setattr(invoice, f, values[f])
    _edited(invoice, user)
    recompute(invoice)
    db.session.flush()
    record(
        action,
        "invoice",
        invoice.id,
        {f: before[f] for f in changed},
        {f: getattr(invoice, f) for f in changed},
    )
    return True


def update_settings(invoice: Invoice, values: dict, user, seen_version) -> bool:
    return _update_fields(
        invoice, SETTINGS_FIELDS, values, user, seen_version, "invoice.settings_update"
    )


def update_billto(invoice: Invoice, values: dict, user, seen_version) -> bool:
    return _update_fields(
        invoice, BILLTO_FIELDS, values, user, seen_version, "invoice.billto_update"
    )


def add_discount(invoice: Invoice, values: dict, user, seen_version) -> InvoiceDiscount:
    check_editable(invoice, seen_version)
    disc = InvoiceDiscount(position=len(invoice.discounts), **values)
    invoice.discounts.append(disc)
    _edited(invoice, user)
    recompute(invoice)
    db.session.flush()
    record("invoice.discount_add", "invoice", invoice.id, None, values)
    return disc


def remove_discount(invoice: Invoice, disc: InvoiceDiscount, user, seen_version) -> None:
    check_editable(invoice, seen_version)
    before = {"description": disc.description, "type": disc.type, "value": disc.value}
    invoice.discounts.remove(disc)
    _edited(invoice, user)
    recompute(invoice)
    db.session.flush()
    record("invoice.discount_remove", "invoice", invoice.id, before, None)
