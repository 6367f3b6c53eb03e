"""Every purpose a Pipedrive field can be mapped to, with what it may be mapped into.

A purpose is what a value means (billing email, Stripe invoice id, ...). The
intake purposes are read from Pipedrive (defaults in app.intake.mapping); the
write-back purposes are written to it (defaults in app.writeback.mapping, plus
the payment fields the payments capability reports).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.intake.mapping import DEFAULT_MAPPINGS
from app.writeback.mapping import CONTACT_TARGETS, DEAL_TARGETS, Target

ENTITIES = {"deal": "Deal", "organization": "Organization", "person": "Person"}

# What kind of value a purpose carries -> the Pipedrive field types that can hold it.
KIND_TYPES: dict[str, tuple[str, ...]] = {
    "text": ("varchar", "text", "varchar_auto"),
    "email": ("varchar", "text", "varchar_auto"),
    "terms": ("varchar", "text", "varchar_auto", "enum", "double"),
    "address": ("address", "varchar", "text", "varchar_auto"),
    "amount": ("monetary", "double"),
    "date": ("date",),
    "status": ("varchar", "text", "varchar_auto", "enum"),
}
KIND_WORDS = {
    "text": "text",
    "email": "an email address",
    "terms": "payment terms",
    "address": "an address",
    "amount": "an amount",
    "date": "a date",
    "status": "a status",
}
TYPE_WORDS = {
    "varchar": "text",
    "varchar_auto": "text (autocomplete)",
    "text": "long text",
    "double": "number",
    "monetary": "monetary",
    "date": "date",
    "enum": "single option",
    "set": "multiple options",
    "address": "address",
    "user": "user",
    "org": "organization",
    "people": "person",
    "phone": "phone",
    "stage": "stage",
    "time": "time",
    "daterange": "date range",
    "timerange": "time range",
}

# The payment fields the payments capability reports (app.payments.crm.tell), in the
# same shape as the write-back's own targets, so app.writeback can adopt them as is.
PAYMENT_TARGETS: dict[str, Target] = {
    key: Target(f"wb_deal_{key}", "deal", name, ftype)
    for key, name, ftype in (
        ("payment_status", "Payment status", "varchar"),
        ("amount_collected", "Amount collected", "monetary"),
        ("amount_outstanding", "Amount outstanding", "monetary"),
        ("last_payment_date", "Last payment date", "date"),
    )
}


@dataclass(frozen=True)
class Purpose:
    key: str  # FieldMapping.purpose
    label: str
    direction: str  # "intake" (read from Pipedrive) or "writeback" (written to it)
    kind: str  # a KIND_TYPES key
    entities: tuple[str, ...]  # where the field may live
    defaults: tuple[tuple[str, str], ...]  # (entity, field name) used until mapped
    create_type: str  # the field type "Create in Pipedrive" uses
    help: str

    @property
    def allowed_types(self) -> tuple[str, ...]:
        return KIND_TYPES[self.kind]

    @property
    def writes(self) -> bool:
        return self.direction == "writeback"


def _intake(key, label, kind, entities, create_type, help_text, defaults=None) -> Purpose:
    found = defaults if defaults is not None else DEFAULT_MAPPINGS.get(key, [])
    return Purpose(key, label, "intake", kind, entities, tuple(found), create_type, help_text)


_WB_KIND = {
    "amount_invoiced": "amount",
    "invoice_due_date": "date",
    "amount_collected": "amount",
    "amount_outstanding": "amount",
    "last_payment_date": "date",
    "payment_status": "status",
}
_WB_LABELS = {
    "stripe_customer_id": "Stripe customer id (deal)",
    "stripe_invoice_id": "Stripe invoice id",
    "invoice_number": "Invoice number",
    "invoice_status": "Invoice status in Stripe",
    "amount_invoiced": "Amount invoiced",
    "invoice_url": "Invoice URL",
    "invoice_due_date": "Invoice due date",
    "payment_status": "Payment status",
    "amount_collected": "Amount collected",
    "amount_outstanding": "Amount outstanding",
    "last_payment_date": "Last payment date",
}


def _writeback(key: str, target: Target, help_text: str, label: str | None = None) -> Purpose:
    return Purpose(
        target.purpose,
        label or _WB_LABELS.get(key, key.replace("_", " ").capitalize()),
        "writeback",
        _WB_KIND.get(key, "text"),
        (target.entity,),
        ((target.entity, target.name),),
        target.field_type,
        help_text,
    )


def _build() -> dict[str, Purpose]:
    everyone = ("deal", "organization", "person")
    items = [
        _intake("billing_email", "Billing email", "email", everyone, "varchar",
                "Where invoices are sent; the person's primary email when empty."),
        _intake("po_number", "PO number", "text", ("deal",), "varchar",
                "The customer's purchase order number, printed on the invoice."),
        _intake("vat_id", "VAT id", "text", ("deal", "organization"), "varchar",
                "The customer's tax id, printed on the invoice."),
        _intake("payment_terms", "Payment terms", "terms", ("deal", "organization"), "varchar",
                "E.g. “Net 30”: the invoice is due that many days after it is sent."),
        _intake("billing_address", "Billing address", "address",
                ("organization", "person", "deal"), "address",
                "Where the invoice is addressed."),
    ]
    items += [_writeback(k, t, "Written on the deal when Stripe reports a payment fact."
                         if k in PAYMENT_TARGETS else
                         "Written on the deal when its invoice is in Stripe.")
              for k, t in DEAL_TARGETS.items()]
    # The payment targets come from DEAL_TARGETS where app.writeback lists them.
    items += [_writeback(k, t, "Written on the deal when Stripe reports a payment fact.")
              for k, t in PAYMENT_TARGETS.items() if k not in DEAL_TARGETS]
    items += [
        _writeback(k, t, f"Written on the {k} when its Stripe customer is made or found.",
                   f"Stripe customer id ({k})")
        for k, t in CONTACT_TARGETS.items()
    ]
    return {p.key: p for p in items}


PURPOSES: dict[str, Purpose] = _build()
INTAKE = [p for p in PURPOSES.values() if p.direction == "intake"]
WRITEBACK = [p for p in PURPOSES.values() if p.direction == "writeback"]
